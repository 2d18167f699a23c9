//! The one error type of the engine. Every binding converts it in one place.

use std::fmt;
use std::io;

/// Everything that can go wrong in a memshelf operation.
///
/// Bad input never changes the cache: an operation that returns an error
/// stored nothing and removed nothing.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A segment name outside `[A-Za-z0-9._-]{1,200}` or starting with `.`.
    #[allow(missing_docs)]
    InvalidName { name: String, reason: &'static str },
    /// A key of 0 bytes or more than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN).
    #[allow(missing_docs)]
    KeyTooLong { len: usize, max: usize },
    /// A value larger than the segment's `max_value_size`.
    #[allow(missing_docs)]
    ValueTooLarge { len: usize, max: usize },
    /// A negative, NaN, infinite or out-of-range TTL (or lease, grace...).
    InvalidTtl(String),
    /// Any other argument out of its range (capacity, jitter, mode, tags...).
    InvalidArgument(String),
    /// The segment exists but is not a memshelf segment of this layout.
    #[allow(missing_docs)]
    IncompatibleSegment {
        name: String,
        found: Option<u32>,
        expected: u32,
        detail: String,
    },
    /// `create(false)` and no segment of that name exists.
    #[allow(missing_docs)]
    NotFound { name: String },
    /// `incr` on a value that is not an ASCII decimal signed 64-bit integer,
    /// or an `incr` that would overflow.
    #[allow(missing_docs)]
    NotAnInteger { detail: String },
    /// The memory for the segment could not be reserved (full /dev/shm):
    /// at creation, or at attach to a file with holes.
    #[allow(missing_docs)]
    NoSpace {
        name: String,
        bytes: u64,
        source: io::Error,
    },
    /// An operating-system call failed.
    #[allow(missing_docs)]
    Io { op: &'static str, source: io::Error },
    /// The segment belongs to another user, or its mode grants more than the
    /// opener's `mode` asks for (a planted segment); nothing was attached.
    #[allow(missing_docs)]
    PermissionDenied {
        name: String,
        path: String,
        owner: u32,
        mode: u32,
        detail: String,
    },
    /// A bounded wait ran out: segment initialisation by another process, a
    /// bucket lock held by a live but stopped process, no free lease.
    Timeout(String),
    /// The handle was closed (bindings only; a Rust `Cache` cannot be used
    /// after drop).
    Closed,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, source: io::Error) -> Self {
        Error::Io { op, source }
    }
    pub(crate) fn last_os(op: &'static str) -> Self {
        Error::Io {
            op,
            source: io::Error::last_os_error(),
        }
    }
    /// A short, stable, machine-readable name for the error kind, used by
    /// the bindings as an error code (`"KeyTooLong"`, `"Io"`, ...).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::InvalidName { .. } => "InvalidName",
            Error::KeyTooLong { .. } => "KeyTooLong",
            Error::ValueTooLarge { .. } => "ValueTooLarge",
            Error::InvalidTtl(_) => "InvalidTtl",
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::IncompatibleSegment { .. } => "IncompatibleSegment",
            Error::NotFound { .. } => "NotFound",
            Error::NotAnInteger { .. } => "NotAnInteger",
            Error::NoSpace { .. } => "NoSpace",
            Error::Io { .. } => "Io",
            Error::PermissionDenied { .. } => "PermissionDenied",
            Error::Timeout(_) => "Timeout",
            Error::Closed => "Closed",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidName { name, reason } => {
                write!(f, "invalid segment name {name:?}: {reason}")
            }
            Error::KeyTooLong { len, max } if *len == 0 => {
                write!(f, "empty key: keys must be 1 to {max} bytes")
            }
            Error::KeyTooLong { len, max } => {
                write!(
                    f,
                    "key of {len} bytes is too long: the limit is {max} bytes"
                )
            }
            Error::ValueTooLarge { len, max } => write!(
                f,
                "value of {len} bytes is too large: this segment's max_value_size is {max} bytes"
            ),
            Error::InvalidTtl(m) => write!(f, "invalid TTL: {m}"),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::IncompatibleSegment {
                name,
                found,
                expected,
                detail,
            } => match found {
                Some(v) => write!(
                    f,
                    "segment {name:?} has layout version {v}, this library speaks layout version {expected}: {detail}"
                ),
                None => write!(
                    f,
                    "segment {name:?} is not a memshelf segment (this library speaks layout version {expected}): {detail}"
                ),
            },
            Error::NotFound { name } => write!(f, "segment {name:?} does not exist"),
            Error::NotAnInteger { detail } => write!(f, "not an integer: {detail}"),
            Error::NoSpace {
                name,
                bytes,
                source,
            } => write!(
                f,
                "cannot reserve {bytes} bytes for segment {name:?}: {source} (is /dev/shm or the file system full?)"
            ),
            Error::Io { op, source } => write!(f, "{op} failed: {source}"),
            Error::PermissionDenied {
                name,
                path,
                owner,
                mode,
                detail,
            } => write!(
                f,
                "refusing segment {name:?} ({path}, owner uid {owner}, mode {mode:04o}): {detail}"
            ),
            Error::Timeout(m) => write!(f, "timed out: {m}"),
            Error::Closed => write!(f, "the cache handle is closed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::NoSpace { source, .. } => Some(source),
            _ => None,
        }
    }
}
