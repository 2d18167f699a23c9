//! Status codes, the one mapping from engine errors to them, the
//! thread-local last error, the panic boundary, and the checks that turn
//! C pointers and lengths into Rust references.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use engine::Error;

use crate::cache::memshelf_bytes;

/// What a memshelf call returned. `MEMSHELF_OK` (0) is success,
/// `MEMSHELF_MISS` (1) is a normal "nothing there" answer; every other code
/// is an error, and `memshelf_last_error()` then holds a detailed message.
/// Codes are stable: new ones may be added, none is ever renumbered.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum memshelf_status {
    /// Success.
    MEMSHELF_OK = 0,
    /// No live entry for the key (get, ttl, get_or_set), or no more keys
    /// (keys_next). Not an error: `memshelf_last_error()` is not set.
    MEMSHELF_MISS = 1,
    /// A required pointer argument was NULL (or a NULL data pointer came with
    /// a non-zero length).
    MEMSHELF_ERR_NULL_ARGUMENT = 10,
    /// The caller's buffer is too small; the length out-parameter holds the
    /// bytes needed and nothing was copied. Retry with a larger buffer.
    MEMSHELF_ERR_BUFFER_TOO_SMALL = 11,
    /// An argument out of its range (capacity, jitter, mode, tags, lengths,
    /// struct_size, a string that is not UTF-8...).
    MEMSHELF_ERR_INVALID_ARGUMENT = 12,
    /// A segment name outside `[A-Za-z0-9._-]{1,200}` or starting with '.'.
    MEMSHELF_ERR_INVALID_NAME = 13,
    /// A key of 0 bytes or more than `MEMSHELF_MAX_KEY_LEN` bytes.
    MEMSHELF_ERR_KEY_TOO_LONG = 14,
    /// A value larger than the segment's `max_value_size`.
    MEMSHELF_ERR_VALUE_TOO_LARGE = 15,
    /// A TTL (or lease, grace, negative TTL) out of range.
    MEMSHELF_ERR_INVALID_TTL = 16,
    /// The segment exists but is not a memshelf segment of this layout.
    MEMSHELF_ERR_INCOMPATIBLE_SEGMENT = 17,
    /// `create = 0` and no segment of that name exists (also: unlink of a
    /// missing segment).
    MEMSHELF_ERR_NOT_FOUND = 18,
    /// incr on a value that is not an ASCII decimal signed 64-bit integer, or
    /// an incr that would overflow.
    MEMSHELF_ERR_NOT_AN_INTEGER = 19,
    /// The memory for the segment could not be reserved (full /dev/shm).
    MEMSHELF_ERR_NO_SPACE = 20,
    /// An operating-system call failed (details in memshelf_last_error()).
    MEMSHELF_ERR_IO = 21,
    /// A bounded wait ran out (segment initialisation by another process).
    MEMSHELF_ERR_TIMEOUT = 22,
    /// The handle is closed.
    MEMSHELF_ERR_CLOSED = 23,
    /// get_or_set: the factory returned a non-zero code (in the message).
    MEMSHELF_ERR_FACTORY = 24,
    /// malloc failed.
    MEMSHELF_ERR_OUT_OF_MEMORY = 25,
    /// The segment belongs to another user, or its mode grants more than
    /// the opener's `mode` (a planted segment); the message names owner and
    /// mode.
    MEMSHELF_ERR_PERMISSION_DENIED = 26,
    /// A bug: the library caught an internal panic. The handle stays usable.
    MEMSHELF_ERR_INTERNAL = 98,
    /// An engine error this version of the C ABI has no code for.
    MEMSHELF_ERR_UNKNOWN = 99,
}

use memshelf_status::*;

impl memshelf_status {
    /// Every code, for `memshelf_strerror`.
    const ALL: &[memshelf_status] = &[
        MEMSHELF_OK,
        MEMSHELF_MISS,
        MEMSHELF_ERR_NULL_ARGUMENT,
        MEMSHELF_ERR_BUFFER_TOO_SMALL,
        MEMSHELF_ERR_INVALID_ARGUMENT,
        MEMSHELF_ERR_INVALID_NAME,
        MEMSHELF_ERR_KEY_TOO_LONG,
        MEMSHELF_ERR_VALUE_TOO_LARGE,
        MEMSHELF_ERR_INVALID_TTL,
        MEMSHELF_ERR_INCOMPATIBLE_SEGMENT,
        MEMSHELF_ERR_NOT_FOUND,
        MEMSHELF_ERR_NOT_AN_INTEGER,
        MEMSHELF_ERR_NO_SPACE,
        MEMSHELF_ERR_IO,
        MEMSHELF_ERR_TIMEOUT,
        MEMSHELF_ERR_CLOSED,
        MEMSHELF_ERR_FACTORY,
        MEMSHELF_ERR_OUT_OF_MEMORY,
        MEMSHELF_ERR_PERMISSION_DENIED,
        MEMSHELF_ERR_INTERNAL,
        MEMSHELF_ERR_UNKNOWN,
    ];

    pub(crate) fn from_code(code: i32) -> Option<memshelf_status> {
        Self::ALL.iter().copied().find(|s| *s as i32 == code)
    }

    /// A short, static, NUL-terminated description.
    pub(crate) fn description(self) -> &'static CStr {
        match self {
            MEMSHELF_OK => c"success",
            MEMSHELF_MISS => c"no such key",
            MEMSHELF_ERR_NULL_ARGUMENT => c"a required pointer argument is NULL",
            MEMSHELF_ERR_BUFFER_TOO_SMALL => c"buffer too small",
            MEMSHELF_ERR_INVALID_ARGUMENT => c"invalid argument",
            MEMSHELF_ERR_INVALID_NAME => c"invalid segment name",
            MEMSHELF_ERR_KEY_TOO_LONG => c"key empty or too long",
            MEMSHELF_ERR_VALUE_TOO_LARGE => c"value too large",
            MEMSHELF_ERR_INVALID_TTL => c"invalid TTL",
            MEMSHELF_ERR_INCOMPATIBLE_SEGMENT => c"incompatible segment",
            MEMSHELF_ERR_NOT_FOUND => c"segment not found",
            MEMSHELF_ERR_NOT_AN_INTEGER => c"not an integer",
            MEMSHELF_ERR_NO_SPACE => c"no space for the segment",
            MEMSHELF_ERR_IO => c"I/O error",
            MEMSHELF_ERR_TIMEOUT => c"timed out",
            MEMSHELF_ERR_CLOSED => c"the cache handle is closed",
            MEMSHELF_ERR_FACTORY => c"the get_or_set factory failed",
            MEMSHELF_ERR_OUT_OF_MEMORY => c"out of memory",
            MEMSHELF_ERR_PERMISSION_DENIED => c"segment refused: another owner or a wider mode",
            MEMSHELF_ERR_INTERNAL => c"internal error (a bug in memshelf)",
            MEMSHELF_ERR_UNKNOWN => c"unknown error",
        }
    }
}

/// An error on its way to C: a code and the detailed message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: memshelf_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: memshelf_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
    pub fn null(what: &str) -> Failure {
        Failure::new(MEMSHELF_ERR_NULL_ARGUMENT, format!("{what} is NULL"))
    }
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(MEMSHELF_ERR_INVALID_ARGUMENT, message)
    }
}

/// The one mapping from engine errors to status codes.
impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let status = match &e {
            Error::InvalidName { .. } => MEMSHELF_ERR_INVALID_NAME,
            Error::KeyTooLong { .. } => MEMSHELF_ERR_KEY_TOO_LONG,
            Error::ValueTooLarge { .. } => MEMSHELF_ERR_VALUE_TOO_LARGE,
            Error::InvalidTtl(_) => MEMSHELF_ERR_INVALID_TTL,
            Error::InvalidArgument(_) => MEMSHELF_ERR_INVALID_ARGUMENT,
            Error::IncompatibleSegment { .. } => MEMSHELF_ERR_INCOMPATIBLE_SEGMENT,
            Error::NotFound { .. } => MEMSHELF_ERR_NOT_FOUND,
            Error::NotAnInteger { .. } => MEMSHELF_ERR_NOT_AN_INTEGER,
            Error::NoSpace { .. } => MEMSHELF_ERR_NO_SPACE,
            Error::Io { .. } => MEMSHELF_ERR_IO,
            Error::Timeout(_) => MEMSHELF_ERR_TIMEOUT,
            Error::PermissionDenied { .. } => MEMSHELF_ERR_PERMISSION_DENIED,
            Error::Closed => MEMSHELF_ERR_CLOSED,
            _ => MEMSHELF_ERR_UNKNOWN,
        };
        Failure::new(status, e.to_string())
    }
}

pub(crate) type Result<T, E = Failure> = std::result::Result<T, E>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    // An interior NUL would cut the C string short: replace it.
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // `try_with`: during thread teardown the slot may be gone; then the
    // message is dropped rather than panicking.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
}

/// A pointer to this thread's last error message (valid until the next
/// error on this thread).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// The panic boundary: runs `body`, turns its error into a status code plus
/// last-error message, and a panic into `MEMSHELF_ERR_INTERNAL`.
#[inline(always)]
pub(crate) fn guard(body: impl FnOnce() -> Result<memshelf_status>) -> memshelf_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (Rust panic): {what}"));
            MEMSHELF_ERR_INTERNAL
        }
    }
}

/// Runs `body` for a function without a status (close, free): a panic is
/// recorded as the last error and swallowed.
pub(crate) fn guard_void(body: impl FnOnce()) {
    guard(|| {
        body();
        Ok(MEMSHELF_OK)
    });
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
    // SAFETY: non-NULL, len <= isize::MAX, and the caller promises `len`
    // readable bytes for 'a.
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
    // SAFETY: non-NULL, len <= isize::MAX, and the caller promises `len`
    // writable, unaliased bytes for 'a.
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
    // SAFETY: non-NULL, aligned C array of `n` elements by the caller's
    // promise, total size within isize::MAX.
    let list = unsafe { std::slice::from_raw_parts(ptr, n) };
    list.iter()
        // SAFETY: each element is valid by the caller's promise.
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
    // SAFETY: non-NULL and NUL-terminated by the caller's promise.
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
        // SAFETY: non-NULL and writable by the caller's promise; `write`
        // does not read (or drop) the possibly uninitialised old value.
        unsafe { ptr.write(value) }
    }
}
