//! Status codes, the one mapping from engine errors to them, and the
//! thread-local last error. The panic boundary that reports them is
//! `guard.rs`; the pointer and length checks are `ptr.rs`.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};

use engine::Error;

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
