"""The exceptions of memshelf (raised by the native module).

Each class is named after the engine's error kind (``memshelf::Error::kind_name``
in Rust, the ``code`` of a Node error, ``MEMSHELF_ERR_<KIND>`` in C): one
table, the same names in every language. The names of 0.1 (``InvalidTTL``,
``SegmentNotFound``, ``IOFailure``, ``ClosedError``) remain as aliases of
the same classes.
"""


class Error(Exception):
    """Base class of every memshelf error."""


class InvalidName(Error, ValueError):
    """A segment name outside 1-200 characters of [A-Za-z0-9._-], or starting with '.'."""


class KeyTooLong(Error, ValueError):
    """A key of 0 bytes or more than 4096 bytes."""


class ValueTooLarge(Error, ValueError):
    """A value larger than the segment's max_value_size."""


class InvalidTtl(Error, ValueError):
    """A negative, NaN, infinite or too long TTL (or lease, grace, negative_ttl)."""


class InvalidArgument(Error, ValueError):
    """An argument out of its range (capacity, ttl_jitter, mode, tags...)."""


class IncompatibleSegment(Error):
    """The segment is not a memshelf segment of this layout version."""


class NotFound(Error, FileNotFoundError):
    """create=False and no segment of that name exists."""


class NotAnInteger(Error, ValueError):
    """incr on a value that is not an ASCII decimal 64-bit integer, or an overflow."""


class NoSpace(Error, OSError):
    """The segment's memory could not be reserved (full /dev/shm)."""


class Io(Error, OSError):
    """An operating-system call failed."""


class PermissionDenied(Error, PermissionError):
    """The segment belongs to another user, or its mode grants more than the
    opener's ``mode`` asks for (a planted segment); the message names owner
    and mode."""


class Timeout(Error, TimeoutError):
    """A bounded wait ran out (another process initialising the segment)."""


class Closed(Error):
    """The Cache was closed."""


class CodecError(Error, ValueError):
    """The Cache's codec could not encode a value (an unpicklable object, a
    value JSON cannot represent) or decode stored bytes (written by another
    codec). The codec's own exception is the ``__cause__``."""


# The 0.1 names (aliases: the same classes).
InvalidTTL = InvalidTtl
SegmentNotFound = NotFound
IOFailure = Io
ClosedError = Closed

__all__ = [
    "Error",
    "InvalidName",
    "KeyTooLong",
    "ValueTooLarge",
    "InvalidTtl",
    "InvalidArgument",
    "IncompatibleSegment",
    "NotFound",
    "NotAnInteger",
    "NoSpace",
    "Io",
    "PermissionDenied",
    "Timeout",
    "Closed",
    "CodecError",
    "InvalidTTL",
    "SegmentNotFound",
    "IOFailure",
    "ClosedError",
]
