//! The C byte string `memshelf_bytes` and the checks that turn C pointers
//! and lengths into Rust references: byte slices (read and write), arrays
//! of byte strings, NUL-terminated strings, out-parameters, and structs
//! versioned by their leading `struct_size`.

use std::ffi::{CStr, c_char};

use crate::status::memshelf_status;
use crate::status::{Failure, Result};

/// A byte string: `len` bytes at `data` (`data` may be NULL when `len` is 0).
/// The library only reads through it during the call it is passed to.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct memshelf_bytes {
    /// The first byte.
    pub data: *const u8,
    /// The number of bytes.
    pub len: usize,
}

/// The bytes at `ptr..ptr+len`. A zero length needs no pointer; a NULL
/// pointer with a non-zero length is `MEMSHELF_ERR_NULL_ARGUMENT`.
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr` must be valid for reads of
/// `len` bytes for `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(&format!("{what} (with length {len})")));
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!("{what} length {len} is absurd")));
    }
    // SAFETY: `ptr` is non-NULL and `len` at most isize::MAX (both checked
    // above), and the `# Safety` promise makes `ptr` readable for `len` bytes
    // for 'a; `u8` needs no alignment.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A writable buffer `ptr..ptr+len` (empty when `len == 0`, whatever `ptr`).
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr` must be valid for writes of
/// `len` bytes for `'a` and not aliased.
pub(crate) unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize, what: &str) -> Result<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(Failure::null(&format!("{what} (with length {len})")));
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!("{what} length {len} is absurd")));
    }
    // SAFETY: `ptr` is non-NULL and `len` at most isize::MAX (both checked
    // above), and the `# Safety` promise makes `ptr` writable for `len` bytes,
    // aliased by nothing else, for 'a; `u8` needs no alignment.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// `n` byte strings from a C array of `memshelf_bytes`.
///
/// # Safety
/// When `n > 0` and `ptr` is not NULL, `ptr` must point to `n` readable
/// `memshelf_bytes`, each valid as [`bytes`] requires, for `'a`.
pub(crate) unsafe fn byte_strings<'a>(
    ptr: *const memshelf_bytes,
    n: usize,
    what: &str,
) -> Result<Vec<&'a [u8]>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(Failure::null(&format!("{what} (with count {n})")));
    }
    if n > isize::MAX as usize / size_of::<memshelf_bytes>() {
        return Err(Failure::invalid(format!("{what} count {n} is absurd")));
    }
    // SAFETY: `ptr` is non-NULL and `n` elements stay within isize::MAX bytes
    // (both checked above); the `# Safety` promise makes it an aligned C array
    // of `n` readable `memshelf_bytes` for 'a (`#[repr(C)]`, so Rust reads
    // the C layout).
    let list = unsafe { std::slice::from_raw_parts(ptr, n) };
    list.iter()
        // SAFETY: each element's `data` is readable for its `len` bytes for
        // 'a (the `# Safety` promise: "each valid as `bytes` requires").
        .map(|b| unsafe { bytes(b.data, b.len, what) })
        .collect()
}

/// A NUL-terminated UTF-8 string.
///
/// # Safety
/// When not NULL, `ptr` must point to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn text<'a>(
    ptr: *const c_char,
    what: &str,
    bad: memshelf_status,
) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: `ptr` is non-NULL (checked above) and, by the `# Safety`
    // promise, a NUL-terminated string valid for 'a; `c_char` needs no
    // alignment.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str()
        .map_err(|_| Failure::new(bad, format!("{what} {s:?} is not valid UTF-8")))
}

/// Checks that an out-parameter is not NULL (before any work is done, so a
/// NULL out-parameter leaves the cache untouched).
pub(crate) fn required<T>(ptr: *mut T, what: &str) -> Result<*mut T> {
    if ptr.is_null() {
        Err(Failure::null(what))
    } else {
        Ok(ptr)
    }
}

/// Writes `value` to an optional out-parameter (NULL: ignored).
///
/// # Safety
/// When not NULL, `ptr` must be valid for a write of one `T`.
#[inline]
pub(crate) unsafe fn store<T>(ptr: *mut T, value: T) {
    if !ptr.is_null() {
        // SAFETY: `ptr` is non-NULL (checked above) and, by the `# Safety`
        // promise, valid and aligned for a write of one `T`; `write` does not
        // read (or drop) the possibly uninitialised old value.
        unsafe { ptr.write(value) }
    }
}

/// Checks a caller's `struct_size` against the size this library knows and
/// copies the struct. A larger `struct_size` (a newer caller) is accepted
/// when the fields this library does not know are all zero.
///
/// # Safety
/// `ptr` must point to a readable struct of `struct_size` bytes whose first
/// field is `size_t struct_size`.
pub(crate) unsafe fn read_versioned<T: Copy>(ptr: *const T, what: &str) -> Result<T> {
    // SAFETY: the caller's promise, passed on.
    unsafe { read_versioned_since(ptr, what, size_of::<T>()) }
}

/// `read_versioned` for a struct that has grown: a caller compiled against
/// an older header (`first <= struct_size < size_of::<T>()`, `first` the
/// struct's first published size) gets the fields it does not know zeroed,
/// which every such field documents as "the default".
///
/// # Safety
/// As `read_versioned`; `T` must be valid all-zero (integers, floats,
/// pointers).
pub(crate) unsafe fn read_versioned_since<T: Copy>(
    ptr: *const T,
    what: &str,
    first: usize,
) -> Result<T> {
    let known = size_of::<T>();
    // SAFETY: by the `# Safety` promise `ptr` points to a readable struct
    // whose first field is `size_t struct_size`, so its first
    // `size_of::<usize>()` bytes are readable; read unaligned, so the
    // caller's alignment does not matter.
    let given = unsafe { ptr.cast::<usize>().read_unaligned() };
    if (first..known).contains(&given) {
        let mut out = std::mem::MaybeUninit::<T>::zeroed();
        // SAFETY: the promise makes `given` bytes readable from `ptr`;
        // `given < known`, so they fit in `out`; `u8` copies need no
        // alignment and the two do not overlap (`out` is our local).
        unsafe {
            std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), out.as_mut_ptr().cast::<u8>(), given)
        };
        // SAFETY: `out` was all zero (valid for `T`, the promise above),
        // then its first `given` bytes were overwritten with the caller's
        // values of the same fields.
        return Ok(unsafe { out.assume_init() });
    }
    if given < known {
        return Err(Failure::invalid(format!(
            "{what}.struct_size is {given}, expected {known}: initialise it with its _init function or sizeof"
        )));
    }
    if given > known {
        // SAFETY: the `# Safety` promise makes `struct_size` = `given` bytes
        // readable from `ptr` (one object, so `given` is within isize::MAX);
        // `known < given`, so the `given - known` bytes after the first
        // `known` stay inside it. `u8` needs no alignment.
        let tail =
            unsafe { std::slice::from_raw_parts(ptr.cast::<u8>().add(known), given - known) };
        if tail.iter().any(|b| *b != 0) {
            return Err(Failure::invalid(format!(
                "{what} sets fields this version of memshelf does not know (struct_size {given}, known {known})"
            )));
        }
    }
    // SAFETY: `given >= known = size_of::<T>()` (checked above), so the
    // `# Safety` promise makes `size_of::<T>()` bytes readable from `ptr`;
    // read unaligned; `T` is Copy plain data of integers, floats and
    // pointers, valid for any bit pattern.
    Ok(unsafe { ptr.read_unaligned() })
}
