//! The buffers the wrapper registers once, so hot calls pass only lengths
//! and offsets (a Buffer argument costs a napi call and a type check each
//! time):
//! - the key buffer: the wrapper encodes every key into it;
//! - the value buffer: `getString`, `has` and JSON reads copy into it, and
//!   `put` of a string value reads from it;
//! - the slab: `get` copies values into it at offsets the wrapper hands out
//!   (the wrapper returns Buffer views of those bytes and registers a fresh
//!   slab when this one is used up).
//!
//! Each registered buffer is kept alive by a napi reference until the next
//! registration of the same kind replaces it, so its memory cannot be freed
//! while this module may touch it. JavaScript runs one call at a time per
//! thread and none of these calls re-enters JavaScript, so no other view of
//! the bytes is used during a call.

use std::cell::{Cell, RefCell};
use std::ptr;

use memshelf::Cache;
use napi::bindgen_prelude::{BufferSlice, JsValue, ToNapiValue, Unknown};
use napi::{Env, Result, sys};
use napi_derive::napi;

use crate::error::{invalid, to_js};

/// A registered buffer of this thread: its bytes and the reference that
/// keeps it alive.
#[derive(Clone, Copy)]
struct Region {
    ptr: *mut u8,
    len: usize,
    keep: sys::napi_ref,
}

const EMPTY: Region = Region {
    ptr: ptr::null_mut(),
    len: 0,
    keep: ptr::null_mut(),
};

/// What this module keeps per thread (per JavaScript environment: one per
/// Node worker thread): the open caches and the registered buffers, in one
/// thread-local so a hot call pays for one thread-local lookup.
pub(crate) struct Thread {
    /// Open caches indexed by handle; `None` once closed. Slots are never
    /// reused, so a stale handle can only ever name a closed cache.
    pub(crate) handles: RefCell<Vec<Option<Cache>>>,
    key: Cell<Region>,
    value: Cell<Region>,
    slab: Cell<Region>,
}

thread_local! {
    pub(crate) static THREAD: Thread = const {
        Thread {
            handles: RefCell::new(Vec::new()),
            key: Cell::new(EMPTY),
            value: Cell::new(EMPTY),
            slab: Cell::new(EMPTY),
        }
    };
}

impl Thread {
    /// The open cache behind handle `h`, or `Closed`.
    ///
    /// The returned reference lives while the table is not changed, which
    /// only `open`/`close` do (never during another call).
    pub(crate) fn cache<'t>(&'t self, env: &Env, h: u32) -> Result<std::cell::Ref<'t, Cache>> {
        std::cell::Ref::filter_map(self.handles.borrow(), |t| {
            t.get(h as usize).and_then(Option::as_ref)
        })
        .map_err(|_| to_js(env, memshelf::Error::Closed))
    }
}

/// Registers `buf` in `slot`, releasing the buffer it replaces.
fn register(env: &Env, slot: &Cell<Region>, buf: BufferSlice<'_>) -> Result<()> {
    let len = buf.len();
    let data = if len == 0 {
        ptr::null_mut()
    } else {
        // Only the pointer is kept; the reference below keeps the memory.
        buf.as_ptr().cast_mut()
    };
    // SAFETY: `env` is the current environment and `&buf` converts to the
    // JavaScript value it was read from.
    let value = unsafe { ToNapiValue::to_napi_value(env.raw(), &buf)? };
    let mut keep = ptr::null_mut();
    // SAFETY: valid env and value; `keep` receives the new reference.
    let status = unsafe { sys::napi_create_reference(env.raw(), value, 1, &mut keep) };
    if status != sys::Status::napi_ok {
        return Err(napi::Error::from_reason(
            "cannot reference a scratch buffer",
        ));
    }
    let old = slot.replace(Region {
        ptr: data,
        len,
        keep,
    });
    if !old.keep.is_null() {
        // SAFETY: `old.keep` was created by this function on this thread's
        // environment and is deleted once, here.
        unsafe { sys::napi_delete_reference(env.raw(), old.keep) };
    }
    Ok(())
}

/// Registers the key and value buffers (once per module instance).
#[napi]
pub fn set_scratch(env: &Env, key: BufferSlice<'_>, value: BufferSlice<'_>) -> Result<()> {
    THREAD.with(|t| {
        register(env, &t.key, key)?;
        register(env, &t.value, value)
    })
}

/// Registers the slab `get` copies into.
#[napi]
pub fn set_slab(env: &Env, slab: BufferSlice<'_>) -> Result<()> {
    THREAD.with(|t| register(env, &t.slab, slab))
}

/// The registered region of `slot` as a mutable slice.
///
/// # Safety
/// The caller must not hold another slice of the same region (each region
/// is borrowed at most once per call; the key, value and slab regions are
/// distinct buffers).
unsafe fn region<'a>(slot: &Cell<Region>) -> &'a mut [u8] {
    let r = slot.get();
    if r.ptr.is_null() {
        return &mut [];
    }
    // SAFETY: `r` describes a live buffer (kept by `r.keep` until it is
    // replaced, which only a later call can do); JavaScript is not running
    // while this call runs, and the caller borrows the region once.
    unsafe { std::slice::from_raw_parts_mut(r.ptr, r.len) }
}

/// The first `klen` bytes of the key buffer.
pub(crate) fn key<'a>(env: &Env, klen: u32) -> Result<&'a [u8]> {
    THREAD.with(|t| t.key(env, klen))
}

/// The value buffer.
pub(crate) fn value<'a>() -> &'a mut [u8] {
    THREAD.with(|t| t.value())
}

/// The slab from `off` on.
pub(crate) fn slab_from<'a>(env: &Env, off: u32) -> Result<&'a mut [u8]> {
    THREAD.with(|t| t.slab_from(env, off))
}

impl Thread {
    /// The first `klen` bytes of the key buffer.
    pub(crate) fn key<'a>(&self, env: &Env, klen: u32) -> Result<&'a [u8]> {
        // SAFETY: the key region is borrowed once per call (only here), and it
        // is a different buffer from the value and slab regions.
        let k = unsafe { region(&self.key) };
        k.get(..klen as usize).ok_or_else(|| {
            to_js(
                env,
                invalid(format!("key length {klen} past the key buffer")),
            )
        })
    }

    /// The value buffer.
    pub(crate) fn value<'a>(&self) -> &'a mut [u8] {
        // SAFETY: borrowed once per call (callers take it once), distinct from
        // the key and slab regions.
        unsafe { region(&self.value) }
    }

    /// The slab from `off` on.
    pub(crate) fn slab_from<'a>(&self, env: &Env, off: u32) -> Result<&'a mut [u8]> {
        // SAFETY: borrowed once per call (only here), distinct from the key and
        // value regions.
        let s = unsafe { region(&self.slab) };
        s.get_mut(off as usize..)
            .ok_or_else(|| to_js(env, invalid(format!("slab offset {off} past the slab"))))
    }

    /// A `TypeError` with `code`, as the wrapper throws for bad arguments.
    fn type_error(env: &Env, code: &str, msg: String) -> napi::Error {
        let e = napi::Error::new(code.to_owned(), msg);
        napi::Error::from(napi::JsTypeError::from(e).into_unknown(*env))
    }

    /// Whether the UTF-16 string `v` has a lone surrogate (the slow check, run
    /// only when its UTF-8 form contains U+FFFD, which is what V8 writes for
    /// one).
    fn has_lone_surrogate(env: &Env, v: sys::napi_value) -> Result<bool> {
        let mut len = 0usize;
        // SAFETY: a null buffer asks only for the length in UTF-16 units.
        let status =
            unsafe { sys::napi_get_value_string_utf16(env.raw(), v, ptr::null_mut(), 0, &mut len) };
        if status != sys::Status::napi_ok {
            return Err(napi::Error::from_reason("cannot read a key string"));
        }
        let mut units = vec![0u16; len + 1];
        let mut got = 0usize;
        // SAFETY: `units` has room for `len` units plus the terminator.
        let status = unsafe {
            sys::napi_get_value_string_utf16(
                env.raw(),
                v,
                units.as_mut_ptr(),
                units.len(),
                &mut got,
            )
        };
        if status != sys::Status::napi_ok {
            return Err(napi::Error::from_reason("cannot read a key string"));
        }
        Ok(char::decode_utf16(units[..got].iter().copied()).any(|c| c.is_err()))
    }

    /// The key argument of the hot reads, converted here rather than by the
    /// wrapper (one napi call instead of a JavaScript encode call): a string
    /// is written as UTF-8 into the key buffer (a lone surrogate is a
    /// `TypeError`, as in the wrapper), a Buffer or Uint8Array is used in place.
    pub(crate) fn key_arg<'a>(&self, env: &Env, key: &'a Unknown<'_>) -> Result<&'a [u8]> {
        let v = key.raw();
        let mut t = 0;
        // SAFETY: valid env and value.
        unsafe { sys::napi_typeof(env.raw(), v, &mut t) };
        if t == sys::ValueType::napi_string {
            // SAFETY: borrowed once per call (the caller takes one key), and
            // distinct from the value and slab regions.
            let buf = unsafe { region(&self.key) };
            if buf.is_empty() {
                return Err(napi::Error::from_reason("key buffer not registered"));
            }
            let mut len = 0usize;
            // SAFETY: `buf` is writable for `buf.len()` bytes; V8 writes at
            // most `buf.len() - 1` bytes plus a terminator, never splitting a
            // character.
            let status = unsafe {
                sys::napi_get_value_string_utf8(
                    env.raw(),
                    v,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut len,
                )
            };
            if status != sys::Status::napi_ok {
                return Err(napi::Error::from_reason("cannot read a key string"));
            }
            let bytes = &buf[..len];
            // U+FFFD is EF BF BD; most keys have no 0xEF byte at all.
            if bytes.contains(&0xEF)
                && bytes.windows(3).any(|w| w == [0xEF, 0xBF, 0xBD])
                && Self::has_lone_surrogate(env, v)?
            {
                return Err(Self::type_error(
                    env,
                    "ERR_INVALID_ARG_VALUE",
                    "key contains a lone surrogate (not valid UTF-16), so it has no UTF-8 form"
                        .into(),
                ));
            }
            if len + 4 > buf.len() {
                // Possibly truncated (napi stops at the last whole character
                // that fits, up to 3 bytes short of the end): any key this
                // long is too long anyway; report its whole length.
                let mut full = 0usize;
                // SAFETY: a null buffer asks only for the UTF-8 length.
                unsafe {
                    sys::napi_get_value_string_utf8(env.raw(), v, ptr::null_mut(), 0, &mut full)
                };
                return Err(to_js(
                    env,
                    memshelf::Error::KeyTooLong {
                        len: full,
                        max: memshelf::MAX_KEY_LEN,
                    },
                ));
            }
            return Ok(bytes);
        }
        if t == sys::ValueType::napi_object {
            let mut is_ta = false;
            // SAFETY: valid env and value.
            unsafe { sys::napi_is_typedarray(env.raw(), v, &mut is_ta) };
            if is_ta {
                let mut kind = 0;
                let mut len = 0usize;
                let mut data = ptr::null_mut();
                // SAFETY: `v` is a typed array; the out pointers are valid.
                let status = unsafe {
                    sys::napi_get_typedarray_info(
                        env.raw(),
                        v,
                        &mut kind,
                        &mut len,
                        &mut data,
                        ptr::null_mut(),
                        ptr::null_mut(),
                    )
                };
                if status == sys::Status::napi_ok && kind == sys::TypedarrayType::uint8_array {
                    if len == 0 || data.is_null() {
                        return Ok(&[]);
                    }
                    // SAFETY: the typed array's `len` bytes at `data` stay alive
                    // (the argument is referenced by the call frame) and
                    // JavaScript does not run during the call.
                    return Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) });
                }
            }
        }
        Err(Self::type_error(
            env,
            "ERR_INVALID_ARG_TYPE",
            "key must be a string, Buffer or Uint8Array".into(),
        ))
    }
}
