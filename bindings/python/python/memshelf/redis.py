"""Read-through helpers for Redis: memshelf as a host-wide near-cache in
front of a redis-py client (SPEC section 9).

    import redis, memshelf
    from memshelf.redis import NearCache

    near = NearCache(redis.Redis(), memshelf.Cache("users", capacity="256MiB"))
    near.get("user:42")            # memshelf hit, or one Redis GET per host
    near.set("user:42", b"...")    # Redis SET, then drops the local entry
    near.delete("user:42")         # Redis DEL, then drops the local entry

``get(key)`` returns the segment's entry if it has one. On a miss it takes
the key's ``get_or_set`` lease *before* asking Redis, then sends ``GET`` and
``PTTL`` in one MULTI/EXEC round trip: of all the processes of the host
that miss the key at once, one asks Redis and the others wait for its
value. The value is stored with the key's remaining Redis TTL (less the
round trip; ``default_ttl`` when the key has none), unchanged (bytes).

A key Redis does not have returns None and is not cached (each miss asks
Redis again, one process at a time), unless ``negative_ttl`` is given: then
the absence is cached that long (keep it short).

``set``/``delete`` write Redis, then delete the key from the local segment,
so this host reads its own write at once; the agent's ``tracking`` feed
(``memshelf-agent --feed tracking``) deletes it on every other host. A
delete that lands while a fill is in flight (the agent applying a write
made elsewhere, or a local ``set``) voids the fill's lease: the value
fetched before the write goes back to that one caller but is not stored.

``AsyncNearCache`` is the same over ``redis.asyncio.Redis``; its waits
never block the event loop.

The segment must use the raw codec (values are Redis's bytes); the Redis
client must not decode responses. Every rule (keys, TTLs, leases) is the
segment's; these classes only compose calls.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, List, Optional

try:
    import redis as _redis
    import redis.asyncio as _aredis
except ImportError as e:  # pragma: no cover - redis is a test requirement
    raise ImportError("memshelf.redis needs redis-py: pip install redis") from e

from . import _cache

__all__ = ["NearCache", "AsyncNearCache"]

_HIT, _ABSENT, _LEAD = _cache._HIT, _cache._ABSENT, _cache._LEAD
# The shortest TTL stored (the engine's resolution): a key whose Redis TTL
# runs out during the round trip is stored for 1 ms rather than not at all.
_MIN_TTL = 0.001


def _check(cache: Any, client: Any, asyncio: bool) -> None:
    if not isinstance(cache, _cache.Cache):
        raise TypeError(f"cache must be a memshelf.Cache, not {type(cache).__name__}")
    if cache.codec != "raw":
        raise ValueError(f"cache must use the raw codec (values are Redis's bytes), not {cache.codec!r}")
    is_async = isinstance(client, _aredis.Redis) or type(client).__module__.startswith("redis.asyncio")
    if asyncio and not is_async:
        raise TypeError(f"AsyncNearCache needs a redis.asyncio client, not {type(client).__name__}")
    if not asyncio and is_async:
        raise TypeError("NearCache needs a synchronous redis client: use AsyncNearCache for redis.asyncio")
    if not callable(getattr(client, "pipeline", None)):
        raise TypeError(f"client must be a redis-py client, not {type(client).__name__}")
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    if kwargs.get("decode_responses"):
        raise ValueError("the redis client must not decode responses (decode_responses=False): values are bytes")


def _ttl_of(pttl: Any, started: float) -> Optional[float]:
    """The TTL to store a value with: its remaining Redis TTL less the time
    since the request was sent (so the copy never outlives the key), or
    None (the default TTL) when the key has none."""
    if isinstance(pttl, int) and pttl > 0:
        return max(pttl / 1000 - (time.monotonic() - started), _MIN_TTL)
    if pttl == -1:
        return None
    return _MIN_TTL  # -2 beside a value cannot happen inside MULTI


class _Base:
    __slots__ = ("_redis", "_cache", "_default_ttl", "_lease", "_negative_ttl")

    def __init__(
        self,
        client: Any,
        cache: Any,
        *,
        default_ttl: Any = 60.0,
        lease: Any = None,
        negative_ttl: Any = None,
        asyncio: bool,
    ) -> None:
        _check(cache, client, asyncio)
        self._redis = client
        self._cache = cache
        self._default_ttl = default_ttl
        self._lease = lease
        self._negative_ttl = negative_ttl

    @property
    def redis(self) -> Any:
        """The Redis client."""
        return self._redis

    @property
    def cache(self) -> Any:
        """The memshelf segment."""
        return self._cache

    def _check_keys(self, keys: Iterable[Any]) -> List[Any]:
        # Asks the segment about each key before Redis is written, so a key
        # the segment refuses (type, length) raises and changes nothing.
        keys = list(keys)
        for k in keys:
            self._cache.ttl(k)
        return keys

    def _forget(self, keys: Iterable[Any]) -> None:
        for k in keys:
            self._cache.delete(k)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._redis!r}, {self._cache.name!r})"


class NearCache(_Base):
    """memshelf in front of a synchronous redis-py client (``redis.Redis``
    or ``redis.RedisCluster``).

    default_ttl: seconds to keep a value whose Redis key has no TTL (None:
    the segment's default TTL, or never); lease: seconds a fill may take
    before a waiting process takes over (default 10); negative_ttl: cache a
    key Redis does not have that long (default: not cached).
    """

    __slots__ = ()

    def __init__(
        self,
        client: Any,
        cache: Any,
        *,
        default_ttl: Any = 60.0,
        lease: Any = None,
        negative_ttl: Any = None,
    ) -> None:
        super().__init__(
            client, cache, default_ttl=default_ttl, lease=lease, negative_ttl=negative_ttl, asyncio=False
        )

    def _fetch(self, key: Any) -> Any:
        started = time.monotonic()
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(key)
        pipe.pttl(key)
        value, pttl = pipe.execute()
        if value is None:
            return None, None
        return value, _ttl_of(pttl, started)

    def get(self, key: Any) -> Optional[bytes]:
        """The value of key: the segment's entry, or Redis's (then stored
        with its remaining TTL); None if Redis does not have it."""
        result: Optional[bytes] = self._cache._get_or_set_timed(
            key, lambda: self._fetch(key), self._default_ttl, self._lease, None, self._negative_ttl
        )
        return result

    def get_many(self, keys: Iterable[Any]) -> List[Optional[bytes]]:
        """[get(k) for k in keys]: one segment lookup for all, then one
        Redis round trip for the keys this process leads the fill of (keys
        another process is filling are waited for, as get does)."""
        keys = list(keys)
        c = self._cache
        out: List[Optional[bytes]] = c.get_many(keys)
        missing = [i for i, v in enumerate(out) if v is None]
        if not missing:
            return out
        leads: List[Any] = []  # (index, lease)
        waits: List[int] = []
        try:
            for i in missing:
                kind, got = c._begin_fill(keys[i], self._default_ttl, self._lease, None, self._negative_ttl)
                if kind == _HIT:
                    out[i] = got
                elif kind == _LEAD:
                    leads.append((i, got))
                elif kind != _ABSENT:
                    waits.append(i)
            if leads:
                started = time.monotonic()
                pipe = self._redis.pipeline(transaction=True)
                for i, _ in leads:
                    pipe.get(keys[i])
                    pipe.pttl(keys[i])
                replies = pipe.execute()
                for n, (i, lease) in enumerate(leads):
                    value, pttl = replies[2 * n], replies[2 * n + 1]
                    out[i] = value
                    lease.fill(value, None if value is None else _ttl_of(pttl, started))
        finally:
            for _, lease in leads:
                lease.release()  # a no-op once filled
        for i in waits:
            out[i] = self.get(keys[i])
        return out

    def set(
        self,
        key: Any,
        value: Any,
        *,
        ex: Any = None,
        px: Any = None,
        nx: bool = False,
        xx: bool = False,
        keepttl: bool = False,
    ) -> Any:
        """Redis SET (options as redis-py's), then delete key from the
        local segment; returns Redis's answer."""
        self._check_keys([key])
        try:
            return self._redis.set(key, value, ex=ex, px=px, nx=nx, xx=xx, keepttl=keepttl)
        finally:
            self._forget([key])  # also when the reply is lost: the write may have landed

    def delete(self, *keys: Any) -> int:
        """Redis DEL of keys, then delete them from the local segment;
        returns how many Redis had."""
        keys_ = self._check_keys(keys)
        if not keys_:
            return 0
        try:
            return int(self._redis.delete(*keys_))
        finally:
            self._forget(keys_)


class AsyncNearCache(_Base):
    """NearCache over ``redis.asyncio.Redis``: the same options and
    methods, as coroutines. A process that waits for another's fill polls
    the segment (1, 2, 4, 8, then every 10 ms) without blocking its event
    loop."""

    __slots__ = ()

    def __init__(
        self,
        client: Any,
        cache: Any,
        *,
        default_ttl: Any = 60.0,
        lease: Any = None,
        negative_ttl: Any = None,
    ) -> None:
        super().__init__(
            client, cache, default_ttl=default_ttl, lease=lease, negative_ttl=negative_ttl, asyncio=True
        )

    async def _fetch(self, key: Any) -> Any:
        started = time.monotonic()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(key)
            pipe.pttl(key)
            value, pttl = await pipe.execute()
        if value is None:
            return None, None
        return value, _ttl_of(pttl, started)

    async def get(self, key: Any) -> Optional[bytes]:
        """As NearCache.get."""
        result: Optional[bytes] = await self._cache._aget_or_set_timed(
            key, lambda: self._fetch(key), self._default_ttl, self._lease, None, self._negative_ttl
        )
        return result

    async def get_many(self, keys: Iterable[Any]) -> List[Optional[bytes]]:
        """As NearCache.get_many."""
        keys = list(keys)
        c = self._cache
        out: List[Optional[bytes]] = c.get_many(keys)
        missing = [i for i, v in enumerate(out) if v is None]
        if not missing:
            return out
        leads: List[Any] = []
        waits: List[int] = []
        try:
            for i in missing:
                kind, got = c._begin_fill(keys[i], self._default_ttl, self._lease, None, self._negative_ttl)
                if kind == _HIT:
                    out[i] = got
                elif kind == _LEAD:
                    leads.append((i, got))
                elif kind != _ABSENT:
                    waits.append(i)
            if leads:
                started = time.monotonic()
                async with self._redis.pipeline(transaction=True) as pipe:
                    for i, _ in leads:
                        pipe.get(keys[i])
                        pipe.pttl(keys[i])
                    replies = await pipe.execute()
                for n, (i, lease) in enumerate(leads):
                    value, pttl = replies[2 * n], replies[2 * n + 1]
                    out[i] = value
                    lease.fill(value, None if value is None else _ttl_of(pttl, started))
        finally:
            for _, lease in leads:
                lease.release()
        for i in waits:
            out[i] = await self.get(keys[i])
        return out

    async def set(
        self,
        key: Any,
        value: Any,
        *,
        ex: Any = None,
        px: Any = None,
        nx: bool = False,
        xx: bool = False,
        keepttl: bool = False,
    ) -> Any:
        """As NearCache.set."""
        self._check_keys([key])
        try:
            return await self._redis.set(key, value, ex=ex, px=px, nx=nx, xx=xx, keepttl=keepttl)
        finally:
            self._forget([key])  # also when the reply is lost: the write may have landed

    async def delete(self, *keys: Any) -> int:
        """As NearCache.delete."""
        keys_ = self._check_keys(keys)
        if not keys_:
            return 0
        try:
            return int(await self._redis.delete(*keys_))
        finally:
            self._forget(keys_)
