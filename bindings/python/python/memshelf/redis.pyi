"""Type stubs of memshelf.redis: read-through helpers for Redis."""

from datetime import timedelta
from typing import Iterable, Optional, Union

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from . import Cache, _Never

__all__ = ["NearCache", "AsyncNearCache"]

_Key = Union[str, bytes]
_Value = Union[bytes, bytearray, memoryview, str, int, float]
_Seconds = Union[int, float]
_Expiry = Union[int, timedelta, None]

class NearCache:
    """memshelf in front of a synchronous redis-py client."""

    def __init__(
        self,
        client: Union[redis.Redis, redis.cluster.RedisCluster],
        cache: Cache,
        *,
        default_ttl: Union[_Seconds, _Never, None] = 60.0,
        lease: Optional[_Seconds] = None,
        negative_ttl: Optional[_Seconds] = None,
    ) -> None: ...
    @property
    def redis(self) -> Union[redis.Redis, redis.cluster.RedisCluster]:
        """The Redis client."""
    @property
    def cache(self) -> Cache:
        """The memshelf segment."""
    def get(self, key: _Key) -> Optional[bytes]:
        """The segment's entry, or Redis's value (then stored with its remaining TTL)."""
    def get_many(self, keys: Iterable[_Key]) -> list[Optional[bytes]]:
        """[get(k) for k in keys], with one Redis round trip for the misses."""
    def set(
        self,
        key: _Key,
        value: _Value,
        *,
        ex: _Expiry = None,
        px: _Expiry = None,
        nx: bool = False,
        xx: bool = False,
        keepttl: bool = False,
    ) -> Optional[bool]:
        """Redis SET, then delete key from the local segment."""
    def delete(self, *keys: _Key) -> int:
        """Redis DEL, then delete the keys from the local segment."""

class AsyncNearCache:
    """NearCache over redis.asyncio: the same methods, as coroutines."""

    def __init__(
        self,
        client: Union[redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster],
        cache: Cache,
        *,
        default_ttl: Union[_Seconds, _Never, None] = 60.0,
        lease: Optional[_Seconds] = None,
        negative_ttl: Optional[_Seconds] = None,
    ) -> None: ...
    @property
    def redis(self) -> Union[redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster]:
        """The Redis client."""
    @property
    def cache(self) -> Cache:
        """The memshelf segment."""
    async def get(self, key: _Key) -> Optional[bytes]: ...
    async def get_many(self, keys: Iterable[_Key]) -> list[Optional[bytes]]: ...
    async def set(
        self,
        key: _Key,
        value: _Value,
        *,
        ex: _Expiry = None,
        px: _Expiry = None,
        nx: bool = False,
        xx: bool = False,
        keepttl: bool = False,
    ) -> Optional[bool]: ...
    async def delete(self, *keys: _Key) -> int: ...
