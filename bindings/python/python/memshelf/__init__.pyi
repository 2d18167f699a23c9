"""Type stubs of memshelf."""

from os import PathLike
from types import TracebackType
from typing import (
    Any,
    Awaitable,
    Callable,
    Final,
    Iterable,
    Iterator,
    Literal,
    Mapping,
    Optional,
    ParamSpec,
    Protocol,
    Self,
    TypeVar,
    Union,
    final,
    type_check_only,
)

from . import codecs as codecs
from ._reports import DumpReport as DumpReport, LoadReport as LoadReport, Stats as Stats
from ._errors import (
    Closed as Closed,
    ClosedError as ClosedError,
    CodecError as CodecError,
    Error as Error,
    IncompatibleSegment as IncompatibleSegment,
    InvalidArgument as InvalidArgument,
    InvalidName as InvalidName,
    InvalidTtl as InvalidTtl,
    InvalidTTL as InvalidTTL,
    Io as Io,
    IOFailure as IOFailure,
    KeyTooLong as KeyTooLong,
    NoSpace as NoSpace,
    NotAnInteger as NotAnInteger,
    PermissionDenied as PermissionDenied,
    NotFound as NotFound,
    SegmentNotFound as SegmentNotFound,
    Timeout as Timeout,
    ValueTooLarge as ValueTooLarge,
)

#: What keys, tags, prefixes (and raw values) may be: str is UTF-8.
_BytesLike = Union[bytes, bytearray, memoryview, str]
_Seconds = Union[int, float]

@final
@type_check_only
class _Never: ...

#: A _TTL that never expires, also over a segment's default _TTL.
NEVER: Final[_Never]
_TTL = Union[_Seconds, _Never, None]

__all__ = [
    "Cache",
    "FillLease",
    "Memoized",
    "Stats",
    "DumpReport",
    "LoadReport",
    "codecs",
    "unlink",
    "parse_size",
    "invalidation_message",
    "LAYOUT_VERSION",
    "MAX_KEY_LEN",
    "NEVER",
    "__version__",
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

LAYOUT_VERSION: int
MAX_KEY_LEN: int
__version__: str

@type_check_only
class _CodecObject(Protocol):
    def dumps(self, value: Any, /) -> Union[bytes, bytearray, memoryview, str]: ...
    def loads(self, data: bytes, /) -> Any: ...

#: The codec option: None/"raw" (bytes and str only), "pickle", "json", or
#: an object with dumps() and loads().
_Codec = Union[None, Literal["raw", "pickle", "json"], _CodecObject]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_R_co = TypeVar("_R_co")

class Memoized(Protocol[_P, _R_co]):
    """What @cache.memoize() returns: the function plus cache_key/invalidate."""

    __wrapped__: Callable[_P, _R_co]
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R_co: ...
    def cache_key(self, *args: _P.args, **kwargs: _P.kwargs) -> Union[str, bytes]: ...
    def invalidate(self, *args: _P.args, **kwargs: _P.kwargs) -> bool: ...

@final
class FillLease:
    """The right to compute one key's value (from the asyncio API)."""

    def fill(self, value: Any, ttl: _TTL = None) -> bool:
        """Store value (encoded by the codec; None: absence); whether it was stored.

        ttl: the value's TTL instead of the one the fill began with (None: that one)."""
    def release(self) -> None:
        """Give the lease up without storing (a waiter takes over)."""
    @property
    def active(self) -> bool: ...

class Cache:
    """A shared-memory cache segment, opened (created or attached) by name.

    Values are bytes/str with the raw codec (get returns bytes), any object
    the codec can encode otherwise; hence the Any in value positions.
    """

    def __new__(
        cls,
        name: str,
        capacity: Union[int, str, None] = None,
        *,
        create: bool = True,
        mode: int = 0o600,
        ttl: Optional[_Seconds] = None,
        ttl_jitter: float = 0.0,
        max_value_size: Optional[int] = None,
        expected_entry_size: Optional[int] = None,
        path: Optional[str] = None,
        codec: _Codec = None,
    ) -> Self:
        """capacity: bytes or "256MiB" (default 64MiB; used only when creating)."""
    @property
    def name(self) -> str: ...
    @property
    def codec(self) -> Union[str, _CodecObject]:
        """ "raw", "pickle", "json" or the codec object given."""
    @property
    def capacity(self) -> int: ...
    @property
    def max_value_size(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def get(self, key: _BytesLike, default: Any = None) -> Any:
        """The value of key, or default."""
    def get_many(self, keys: Iterable[_BytesLike], default: Any = None) -> list[Any]:
        """[get(k, default) for k in keys], in one call."""
    def put(self, key: _BytesLike, value: Any, ttl: _TTL = None, tags: Optional[Iterable[_BytesLike]] = None) -> None:
        """Insert or replace key."""
    def put_many(
        self,
        items: Union[Mapping[Any, Any], Iterable[tuple[Any, Any]]],
        ttl: _TTL = None,
        tags: Optional[Iterable[_BytesLike]] = None,
    ) -> None:
        """put() every (key, value) of items."""
    def add(self, key: _BytesLike, value: Any, ttl: _TTL = None, tags: Optional[Iterable[_BytesLike]] = None) -> bool:
        """Insert key only if absent; returns whether it did."""
    def delete(self, key: _BytesLike) -> bool:
        """Remove key; returns whether it was present."""
    def incr(self, key: _BytesLike, delta: int = 1, ttl: _TTL = None) -> int:
        """Atomically add delta to the integer at key (missing: 0)."""
    def get_or_set(
        self,
        key: _BytesLike,
        factory: Callable[[], Any],
        ttl: _TTL = None,
        lease: Optional[_Seconds] = None,
        grace: Optional[_Seconds] = None,
        negative_ttl: Optional[_Seconds] = None,
        tags: Optional[Iterable[_BytesLike]] = None,
    ) -> Any:
        """The value of key; on a miss exactly one caller across all processes runs
        factory() while the others wait without the GIL.

        lease: seconds (default 10) the factory may take before a waiter takes
        over. grace: serve the expired value that long while one caller
        refreshes it. negative_ttl: cache a None result that long. An exception
        in factory propagates to this caller and hands the lease on.
        """
    async def aget(self, key: _BytesLike, default: Any = None) -> Any:
        """get() as a coroutine."""
    async def aput(self, key: _BytesLike, value: Any, ttl: _TTL = None, tags: Optional[Iterable[_BytesLike]] = None) -> None:
        """put() as a coroutine."""
    async def aget_or_set(
        self,
        key: _BytesLike,
        factory: Union[Callable[[], Awaitable[Any]], Callable[[], Any]],
        ttl: _TTL = None,
        lease: Optional[_Seconds] = None,
        grace: Optional[_Seconds] = None,
        negative_ttl: Optional[_Seconds] = None,
        tags: Optional[Iterable[_BytesLike]] = None,
    ) -> Any:
        """get_or_set() for asyncio: async or plain factory; waiting never blocks
        the event loop; cancellation releases the lease."""
    def memoize(
        self,
        ttl: _TTL = None,
        *,
        key: Optional[Callable[..., _BytesLike]] = None,
        lease: Optional[_Seconds] = None,
        grace: Optional[_Seconds] = None,
        negative_ttl: Optional[_Seconds] = None,
        tags: Optional[Iterable[_BytesLike]] = None,
    ) -> Callable[[Callable[_P, _R]], Memoized[_P, _R]]:
        """Decorator: cache a (sync or async) function's results via get_or_set."""
    def ttl(self, key: _BytesLike) -> Optional[float]:
        """Remaining seconds (math.inf: never), or None if absent."""
    def touch(self, key: _BytesLike, ttl: _TTL = None) -> bool:
        """Give a live key a new _TTL; returns whether it was present."""
    def invalidate_tag(self, tag: _BytesLike) -> None:
        """Every entry put with tag becomes a miss."""
    def delete_prefix(self, prefix: _BytesLike) -> int:
        """Remove every key with prefix; returns how many."""
    def clear(self) -> None:
        """Every entry becomes a miss."""
    def keys(self, prefix: Optional[_BytesLike] = None) -> list[bytes]:
        """The live keys (best effort under concurrent writes)."""
    def stats(self) -> Stats:
        """Segment-wide statistics, sampled latency and hot-key share."""
    def hot_keys(self, n: int = 10) -> list[tuple[bytes, int]]:
        """The n keys with the most sampled hits still present: (key, count)."""
    def dump(self, path: Union[str, PathLike[str]]) -> DumpReport:
        """Write every live entry to path (replaced atomically)."""
    def load(self, path: Union[str, PathLike[str]]) -> LoadReport:
        """Insert a dump's entries (never over a live one; a truncated dump loads its valid prefix)."""
    def close(self) -> None:
        """Detach; further calls raise Closed."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...
    def __getitem__(self, key: _BytesLike, /) -> Any: ...
    def __setitem__(self, key: _BytesLike, value: Any, /) -> None: ...
    def __delitem__(self, key: _BytesLike, /) -> None: ...
    def __contains__(self, key: _BytesLike, /) -> bool: ...
    def __len__(self) -> int:
        """The number of live entries."""
    def __iter__(self) -> Iterator[bytes]:
        """The live keys."""

def unlink(name: str) -> None:
    """Remove the segment name."""

def parse_size(text: str) -> int:
    """Parse a size such as "64MiB" into bytes."""

def invalidation_message(
    op: str,
    *,
    keys: Optional[Iterable[_BytesLike]] = None,
    prefix: Optional[_BytesLike] = None,
    tag: Optional[_BytesLike] = None,
    cache: Optional[str] = None,
    origin: Optional[str] = None,
    seq: Optional[int] = None,
    ts: Optional[int] = None,
) -> bytes:
    """An invalidation message (JSON bytes) for memshelf-agent.

    op: "del" (keys=...), "del_prefix" (prefix=...), "tag" (tag=...), "clear"
    or "hb". seq= needs origin=. Non-UTF-8 keys go in "keys_b64".
    """
