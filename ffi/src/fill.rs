//! `get_or_set` with a C factory callback.

use std::ffi::c_void;
use std::time::Duration;

use engine::{FillError, GetOrSetOptions};

use crate::cache::{handle, memshelf_cache, tag_list, ttl};
use crate::guard::guard;
use crate::ptr::{bytes, memshelf_bytes, read_versioned, required, store};
use crate::status::Failure;
use crate::status::memshelf_status::{self, *};

/// Options for `memshelf_get_or_set`. Fill with
/// `memshelf_get_or_set_options_init`, then change what you need.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct memshelf_get_or_set_options {
    /// `sizeof(memshelf_get_or_set_options)` as the caller compiled it.
    pub struct_size: usize,
    /// Lifetime of the stored value, as `memshelf_put`'s `ttl_ms`.
    pub ttl_ms: u64,
    /// How long the factory may run before a waiter takes over. 0 = 10 s.
    pub lease_ms: u64,
    /// Keep the entry this long past its TTL and serve it stale while one
    /// caller refreshes it (stale-while-revalidate). 0 = no grace.
    pub grace_ms: u64,
    /// Cache a factory's "no value" this long (negative caching). 0 = off.
    pub negative_ttl_ms: u64,
    /// Tags of the stored value (NULL when `ntags` is 0).
    pub tags: *const memshelf_bytes,
    /// Number of tags (at most `MEMSHELF_MAX_TAGS`).
    pub ntags: usize,
}

/// Where a factory puts its value: pass it to `memshelf_fill_set`. Opaque;
/// owned by the library and valid only during the factory call.
pub struct memshelf_fill {
    value: Option<Vec<u8>>,
}

/// The factory of `memshelf_get_or_set`, called at most once per call, on
/// the caller's thread, only in the one caller (across all processes) that
/// must compute the value. `ctx` is the caller's pointer, passed through;
/// `key` is the key (valid during the call).
///
/// Return 0 for success: the value is what was last given to
/// `memshelf_fill_set(fill, ...)`, or "no value" if it was never called.
/// Return any other number for failure: nothing is stored, a waiter takes
/// over, and `memshelf_get_or_set` returns `MEMSHELF_ERR_FACTORY` (the
/// number is in `memshelf_last_error()`). The factory must not unwind
/// (C++ exceptions, longjmp) through the library: catch them inside.
pub type memshelf_factory = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        key: *const u8,
        key_len: usize,
        fill: *mut memshelf_fill,
    ) -> i32,
>;

/// Fills `opts` with the defaults: `struct_size` set, default TTL, a 10 s
/// lease, no grace, no negative caching, no tags.
///
/// Errors: `MEMSHELF_ERR_NULL_ARGUMENT`.
///
/// # Safety
/// `opts` NULL or writable for one `memshelf_get_or_set_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_get_or_set_options_init(
    opts: *mut memshelf_get_or_set_options,
) -> memshelf_status {
    guard(|| {
        let opts = required(opts, "opts")?;
        let value = memshelf_get_or_set_options {
            struct_size: size_of::<memshelf_get_or_set_options>(),
            ttl_ms: 0,
            lease_ms: 10_000,
            grace_ms: 0,
            negative_ttl_ms: 0,
            tags: std::ptr::null(),
            ntags: 0,
        };
        // SAFETY: `opts` was checked non-NULL by `required` above and is valid
        // for writing one aligned value of its type (the `# Safety` promise
        // above).
        unsafe { store(opts, value) };
        Ok(MEMSHELF_OK)
    })
}

/// Sets the factory's value (copied; a second call replaces the first).
/// Call only from inside the factory, with the `fill` it was given.
///
/// Errors: `MEMSHELF_ERR_NULL_ARGUMENT` (fill, or a NULL value with a
/// non-zero length).
///
/// # Safety
/// `fill` NULL or the pointer the factory received; `value` readable for
/// `value_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_fill_set(
    fill: *mut memshelf_fill,
    value: *const u8,
    value_len: usize,
) -> memshelf_status {
    guard(|| {
        if fill.is_null() {
            return Err(Failure::null("fill"));
        }
        // SAFETY: `value` is readable for `value_len` bytes (the `# Safety`
        // promise above); `bytes` refuses NULL with a non-zero length and a
        // length over isize::MAX, and bytes need no alignment.
        let value = unsafe { bytes(value, value_len, "value") }?;
        // SAFETY: `fill` is non-NULL (checked above) and, by the `# Safety`
        // promise, the pointer the factory received: the `memshelf_fill` on
        // `memshelf_get_or_set`'s stack, live and not otherwise borrowed
        // while the factory runs.
        unsafe { (*fill).value = Some(value.to_vec()) };
        Ok(MEMSHELF_OK)
    })
}

/// Returns the value of `key`; on a miss exactly one caller across all
/// processes runs `factory` while the others wait (sleeping, not spinning)
/// and get its value. A delete, tag invalidation or clear that lands while
/// the factory runs voids the fill: the value is returned but not stored.
///
/// On `MEMSHELF_OK`, `*value` receives a buffer allocated with `malloc`
/// holding the value and `*value_len` its length. Ownership: the caller
/// owns it and must release it with `free()` (or `memshelf_free`). On any
/// other status `*value` is NULL and `*value_len` 0. `MEMSHELF_MISS`: the
/// factory gave no value, or a cached absence (`negative_ttl_ms`) was found.
///
/// `opts`: NULL for the defaults, else initialised with
/// `memshelf_get_or_set_options_init`. `ctx` is passed to the factory.
///
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT` (cache, factory,
/// value, value_len, key), `MEMSHELF_ERR_KEY_TOO_LONG`,
/// `MEMSHELF_ERR_VALUE_TOO_LARGE` (the factory's value),
/// `MEMSHELF_ERR_INVALID_TTL`, `MEMSHELF_ERR_INVALID_ARGUMENT` (tags,
/// struct_size), `MEMSHELF_ERR_FACTORY`, `MEMSHELF_ERR_OUT_OF_MEMORY`.
///
/// # Safety
/// `cache` NULL or an open handle; `key` readable for `key_len` bytes;
/// `opts` NULL or a valid struct; `factory` a valid function as described
/// at `memshelf_factory`; `value`, `value_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_get_or_set(
    cache: *const memshelf_cache,
    key: *const u8,
    key_len: usize,
    opts: *const memshelf_get_or_set_options,
    factory: memshelf_factory,
    ctx: *mut c_void,
    value: *mut *mut u8,
    value_len: *mut usize,
) -> memshelf_status {
    guard(|| {
        let value = required(value, "value")?;
        let value_len = required(value_len, "value_len")?;
        // SAFETY: `value` and `value_len` were checked non-NULL by `required`
        // above and are writable for one aligned pointer and one `size_t`
        // (the `# Safety` promise).
        unsafe {
            store(value, std::ptr::null_mut());
            store(value_len, 0);
        }
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        // SAFETY: `key` is readable for `key_len` bytes (the `# Safety` promise
        // above); `bytes` refuses NULL with a non-zero length and a length over
        // isize::MAX, and bytes need no alignment.
        let key = unsafe { bytes(key, key_len, "key") }?;
        let Some(factory) = factory else {
            return Err(Failure::null("factory"));
        };
        let mut o = GetOrSetOptions::default();
        let tags;
        if !opts.is_null() {
            // SAFETY: `opts` is non-NULL (checked above) and a valid
            // `memshelf_get_or_set_options` of its `struct_size` bytes (the
            // `# Safety` promise); `read_versioned` reads it unaligned and
            // checks `struct_size` before reading past its first field.
            let g = unsafe { read_versioned(opts, "memshelf_get_or_set_options") }?;
            // SAFETY: `g.tags` and `g.ntags` come from the valid options the
            // `# Safety` promise gives: NULL or `g.ntags` readable, aligned
            // `memshelf_bytes`, each readable for its length; `tag_list`
            // refuses more than `MEMSHELF_MAX_TAGS` before reading any.
            tags = unsafe { tag_list(g.tags, g.ntags) }?;
            o.tags = &tags;
            o.ttl = ttl(g.ttl_ms)?;
            if g.lease_ms != 0 {
                o.lease = Duration::from_millis(g.lease_ms);
            }
            if g.grace_ms != 0 {
                o.grace = Some(Duration::from_millis(g.grace_ms));
            }
            if g.negative_ttl_ms != 0 {
                o.negative_ttl = Some(Duration::from_millis(g.negative_ttl_ms));
            }
        }
        let result = c.get_or_set(key, &o, || {
            let mut fill = memshelf_fill { value: None };
            // SAFETY: `factory` is a valid C function that does not unwind,
            // as `memshelf_factory` describes (the `# Safety` promise); the
            // key pointer and length come from the live slice `key`, and
            // `fill` lives on this frame for the whole call.
            let code = unsafe { factory(ctx, key.as_ptr(), key.len(), &mut fill) };
            if code == 0 { Ok(fill.value) } else { Err(code) }
        });
        let bytes = match result {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(MEMSHELF_MISS),
            Err(FillError::Factory(code)) => {
                return Err(Failure::new(
                    MEMSHELF_ERR_FACTORY,
                    format!("the get_or_set factory returned {code}"),
                ));
            }
            Err(FillError::Cache(e)) => return Err(e.into()),
        };
        // SAFETY: `malloc` has no precondition; at least one byte is asked
        // for, so an empty value does not come back as NULL; NULL (out of
        // memory) is checked below.
        let buf = unsafe { libc::malloc(bytes.len().max(1)) }.cast::<u8>();
        if buf.is_null() {
            return Err(Failure::new(
                MEMSHELF_ERR_OUT_OF_MEMORY,
                format!("malloc of {} bytes failed", bytes.len()),
            ));
        }
        // SAFETY: `buf` is a fresh, non-NULL allocation of at least
        // `bytes.len()` bytes, so the copy stays inside both and they do not
        // overlap; `value` and `value_len` were checked non-NULL by
        // `required` and are writable (the `# Safety` promise).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
            store(value, buf);
            store(value_len, bytes.len());
        }
        Ok(MEMSHELF_OK)
    })
}
