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

use std::cell::Cell;
use std::ptr;

use napi::bindgen_prelude::{BufferSlice, ToNapiValue};
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

thread_local! {
    static KEY: Cell<Region> = const { Cell::new(EMPTY) };
    static VALUE: Cell<Region> = const { Cell::new(EMPTY) };
    static SLAB: Cell<Region> = const { Cell::new(EMPTY) };
}

/// Registers `buf` in `slot`, releasing the buffer it replaces.
fn register(
    env: &Env,
    slot: &'static std::thread::LocalKey<Cell<Region>>,
    buf: BufferSlice<'_>,
) -> Result<()> {
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
    let old = slot.with(|s| {
        s.replace(Region {
            ptr: data,
            len,
            keep,
        })
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
    register(env, &KEY, key)?;
    register(env, &VALUE, value)
}

/// Registers the slab `get` copies into.
#[napi]
pub fn set_slab(env: &Env, slab: BufferSlice<'_>) -> Result<()> {
    register(env, &SLAB, slab)
}

/// The registered region of `slot` as a mutable slice.
///
/// # Safety
/// The caller must not hold another slice of the same region (each region
/// is borrowed at most once per call; the key, value and slab regions are
/// distinct buffers).
unsafe fn region<'a>(slot: &'static std::thread::LocalKey<Cell<Region>>) -> &'a mut [u8] {
    let r = slot.with(Cell::get);
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
    // SAFETY: the key region is borrowed once per call (only here), and it
    // is a different buffer from the value and slab regions.
    let k = unsafe { region(&KEY) };
    k.get(..klen as usize).ok_or_else(|| {
        to_js(
            env,
            invalid(format!("key length {klen} past the key buffer")),
        )
    })
}

/// The value buffer.
pub(crate) fn value<'a>() -> &'a mut [u8] {
    // SAFETY: borrowed once per call (callers take it once), distinct from
    // the key and slab regions.
    unsafe { region(&VALUE) }
}

/// The slab from `off` on.
pub(crate) fn slab_from<'a>(env: &Env, off: u32) -> Result<&'a mut [u8]> {
    // SAFETY: borrowed once per call (only here), distinct from the key and
    // value regions.
    let s = unsafe { region(&SLAB) };
    s.get_mut(off as usize..)
        .ok_or_else(|| to_js(env, invalid(format!("slab offset {off} past the slab"))))
}
