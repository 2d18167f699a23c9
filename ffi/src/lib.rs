//! The C ABI of memshelf: `libmemshelf.so` / `libmemshelf.a` and
//! `include/memshelf.h` (generated from this crate by cbindgen).
//!
//! Conventions (see `ffi/README.md`):
//! - every symbol starts with `memshelf_`; handles are opaque;
//! - every function returns a `memshelf_status` (0 = `MEMSHELF_OK`) except
//!   the few that cannot fail; on an error `memshelf_last_error()` holds a
//!   detailed message for the calling thread;
//! - no Rust panic crosses the boundary: each function catches it and
//!   returns `MEMSHELF_ERR_INTERNAL`;
//! - NULL pointers and bad lengths are errors, never crashes; a NULL data
//!   pointer is fine with a zero length;
//! - structs that may grow start with `size_t struct_size`;
//! - a handle may be used from any number of threads at once.
//!
//! This crate only converts types and errors; the cache is the engine's.
#![allow(non_camel_case_types)]
#![warn(missing_docs)]

// cbindgen writes the header's declarations in the order it meets the
// functions, module by module: `stats` right after `cache` keeps
// `memshelf_stats` and `memshelf_get_stats` where the header has them.
mod cache;
mod stats;

mod fill;
mod guard;
mod keys;
mod message;
mod observe;
mod ptr;
mod status;

use std::ffi::{c_char, c_void};

pub use cache::{
    memshelf_add, memshelf_cache, memshelf_clear, memshelf_close, memshelf_delete,
    memshelf_delete_prefix, memshelf_get, memshelf_incr, memshelf_invalidate_tag, memshelf_open,
    memshelf_options, memshelf_options_init, memshelf_put, memshelf_touch, memshelf_ttl,
    memshelf_unlink, memshelf_unlink_path,
};
pub use fill::{
    memshelf_factory, memshelf_fill, memshelf_fill_set, memshelf_get_or_set,
    memshelf_get_or_set_options, memshelf_get_or_set_options_init,
};
pub use keys::{memshelf_keys, memshelf_keys_free, memshelf_keys_next, memshelf_keys_open};
pub use message::{
    memshelf_message, memshelf_message_build, memshelf_message_init, memshelf_message_op,
};
pub use observe::{
    MEMSHELF_PROBLEM_LEN, memshelf_dump, memshelf_dump_report, memshelf_hot_keys, memshelf_load,
    memshelf_load_report,
};
pub use ptr::memshelf_bytes;
pub use stats::{memshelf_get_stats, memshelf_stats};
pub use status::memshelf_status;

/// The version of this C ABI. It changes only when a function or struct
/// changes incompatibly; compare with `memshelf_abi_version()` at run time.
/// It is also the SONAME's number (`libmemshelf.so.1`, set in build.rs).
pub const MEMSHELF_ABI_VERSION: u32 = 1;

/// `ttl_ms` value meaning "never expires" (UINT64_MAX).
pub const MEMSHELF_TTL_NEVER: u64 = u64::MAX;

/// Longest key, in bytes.
pub const MEMSHELF_MAX_KEY_LEN: usize = 4096;

/// Most tags one entry can carry.
pub const MEMSHELF_MAX_TAGS: usize = 8;

/// `memshelf_get_many`: the length reported for a key that has no entry
/// (`SIZE_MAX`; the header defines it in `after_includes`, as cbindgen
/// cannot spell `usize::MAX`).
pub(crate) const MEMSHELF_ABSENT: usize = usize::MAX;

const _: () = assert!(MEMSHELF_MAX_KEY_LEN == engine::MAX_KEY_LEN);
const _: () = assert!(MEMSHELF_MAX_TAGS == engine::MAX_TAGS);

/// The ABI version of the loaded library (`MEMSHELF_ABI_VERSION` of the
/// header it was built from). Thread-safe; cannot fail.
#[unsafe(no_mangle)]
pub extern "C" fn memshelf_abi_version() -> u32 {
    MEMSHELF_ABI_VERSION
}

/// The library's version, e.g. "0.1.0": a static string, never freed.
/// Thread-safe; cannot fail.
#[unsafe(no_mangle)]
pub extern "C" fn memshelf_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}

/// The segment layout version this library reads and writes. Thread-safe;
/// cannot fail.
#[unsafe(no_mangle)]
pub extern "C" fn memshelf_layout_version() -> u32 {
    engine::LAYOUT_VERSION
}

/// A short description of a status code: a static string, never freed
/// (an unknown code gives "unknown status code"). Thread-safe; cannot fail.
#[unsafe(no_mangle)]
pub extern "C" fn memshelf_strerror(code: i32) -> *const c_char {
    match memshelf_status::from_code(code) {
        Some(s) => s.description().as_ptr(),
        None => c"unknown status code".as_ptr(),
    }
}

/// The detailed message of the most recent error on the calling thread (""
/// if none yet). Successful calls and `MEMSHELF_MISS` leave it unchanged.
///
/// Ownership: the library owns the string; it stays valid until the next
/// error on this thread. Copy it to keep it. Thread-safe (per thread).
#[unsafe(no_mangle)]
pub extern "C" fn memshelf_last_error() -> *const c_char {
    std::panic::catch_unwind(status::last_error_ptr).unwrap_or(c"".as_ptr())
}

/// Frees a buffer the library allocated (`memshelf_get_or_set`'s value);
/// the same as `free()`, for languages that cannot call it. NULL is a no-op.
///
/// # Safety
/// `ptr` NULL or a buffer from the library not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_free(ptr: *mut c_void) {
    // SAFETY: by the `# Safety` promise `ptr` is NULL (a no-op for `free`) or
    // a buffer the library allocated with `malloc` (`memshelf_get_or_set`'s
    // value) not yet freed, so it is freed exactly once.
    unsafe { libc::free(ptr) }
}
