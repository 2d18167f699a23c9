"""Type stubs of memshelf."""

from typing import Callable, Iterable, Optional, Union

from ._errors import (
    ClosedError as ClosedError,
    Error as Error,
    IncompatibleSegment as IncompatibleSegment,
    InvalidArgument as InvalidArgument,
    InvalidName as InvalidName,
    InvalidTTL as InvalidTTL,
    IOFailure as IOFailure,
    KeyTooLong as KeyTooLong,
    NoSpace as NoSpace,
    NotAnInteger as NotAnInteger,
    SegmentNotFound as SegmentNotFound,
    Timeout as Timeout,
    ValueTooLarge as ValueTooLarge,
)

BytesLike = Union[bytes, bytearray, memoryview, str]
Seconds = Union[int, float]

LAYOUT_VERSION: int
MAX_KEY_LEN: int
__version__: str

class Cache:
    """A shared-memory cache segment, opened (created or attached) by name."""

    def __init__(
        self,
        name: str,
        capacity: Union[int, str, None] = "64MiB",
        *,
        create: bool = True,
        mode: int = 0o600,
        ttl: Optional[Seconds] = None,
        ttl_jitter: float = 0.0,
        max_value_size: Optional[int] = None,
        path: Optional[str] = None,
    ) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def capacity(self) -> int: ...
    @property
    def max_value_size(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def get(self, key: BytesLike) -> Optional[bytes]:
        """The value of key, or None."""
    def put(self, key: BytesLike, value: BytesLike, ttl: Optional[Seconds] = None, tags: Optional[Iterable[BytesLike]] = None) -> None:
        """Insert or replace key."""
    def add(self, key: BytesLike, value: BytesLike, ttl: Optional[Seconds] = None, tags: Optional[Iterable[BytesLike]] = None) -> bool:
        """Insert key only if absent; returns whether it did."""
    def delete(self, key: BytesLike) -> bool:
        """Remove key; returns whether it was present."""
    def incr(self, key: BytesLike, delta: int = 1, ttl: Optional[Seconds] = None) -> int:
        """Atomically add delta to the integer at key (missing: 0)."""
    def get_or_set(
        self,
        key: BytesLike,
        factory: Callable[[], Optional[BytesLike]],
        ttl: Optional[Seconds] = None,
        lease: Optional[Seconds] = None,
        grace: Optional[Seconds] = None,
        negative_ttl: Optional[Seconds] = None,
        tags: Optional[Iterable[BytesLike]] = None,
    ) -> Optional[bytes]:
        """The value of key; on a miss exactly one caller across all processes runs
        factory() (bytes, str or None) while the others wait without the GIL.

        lease: seconds (default 10) the factory may take before a waiter takes
        over. grace: serve the expired value that long while one caller
        refreshes it. negative_ttl: cache a None result that long. An exception
        in factory propagates to this caller and hands the lease on.
        """
    def ttl(self, key: BytesLike) -> Optional[float]:
        """Remaining seconds (math.inf: never), or None if absent."""
    def touch(self, key: BytesLike, ttl: Optional[Seconds] = None) -> bool:
        """Give a live key a new TTL; returns whether it was present."""
    def invalidate_tag(self, tag: BytesLike) -> None:
        """Every entry put with tag becomes a miss."""
    def delete_prefix(self, prefix: BytesLike) -> int:
        """Remove every key with prefix; returns how many."""
    def clear(self) -> None:
        """Every entry becomes a miss."""
    def keys(self, prefix: Optional[BytesLike] = None) -> list[bytes]:
        """The live keys (best effort under concurrent writes)."""
    def stats(self) -> dict[str, int]:
        """Segment-wide statistics."""
    def close(self) -> None:
        """Detach; further calls raise ClosedError."""
    def __enter__(self) -> "Cache": ...
    def __exit__(self, *exc: object) -> bool: ...
    def __getitem__(self, key: BytesLike) -> bytes: ...
    def __setitem__(self, key: BytesLike, value: BytesLike) -> None: ...
    def __delitem__(self, key: BytesLike) -> None: ...
    def __contains__(self, key: BytesLike) -> bool: ...

def unlink(name: str) -> None:
    """Remove the segment name."""

def parse_size(text: str) -> int:
    """Parse a size such as "64MiB" into bytes."""

def invalidation_message(
    op: str,
    *,
    keys: Optional[Iterable[BytesLike]] = None,
    prefix: Optional[BytesLike] = None,
    tag: Optional[BytesLike] = None,
    cache: Optional[str] = None,
    origin: Optional[str] = None,
    seq: Optional[int] = None,
    ts: Optional[int] = None,
) -> bytes:
    """An invalidation message (JSON bytes) for memshelf-agent.

    op: "del" (keys=...), "del_prefix" (prefix=...), "tag" (tag=...), "clear"
    or "hb". seq= needs origin=. Non-UTF-8 keys go in "keys_b64".
    """
