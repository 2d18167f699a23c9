"""A Django cache backend on a memshelf segment.

    CACHES = {
        "default": {
            "BACKEND": "memshelf.django.MemshelfCache",
            "LOCATION": "myapp",                      # the segment's name
            "TIMEOUT": 300,                           # Django's default TIMEOUT
            "OPTIONS": {"capacity": "256MiB"},        # memshelf.Cache options
        }
    }

Every process of the host (all gunicorn/uWSGI workers, management
commands, Celery workers) shares the entries, at memory speed, with no
server. Values are pickled (like Django's Redis and memcached backends),
except integers, which are stored as ASCII decimal so that incr()/decr()
are the engine's atomic add across processes. Timeouts follow Django: None
is forever, 0 (or less) means not stored, anything else is seconds (over 30
days is still relative). OPTIONS: capacity, path, mode, create, ttl_jitter,
max_value_size (as memshelf.Cache), pickle_protocol; MAX_ENTRIES and
CULL_FREQUENCY are ignored (the segment evicts by capacity).
"""

from __future__ import annotations

import pickle
import threading
from typing import Any, Dict, Iterable, List, Optional, Tuple

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]

import memshelf

__all__ = ["MemshelfCache", "NotAnIntegerError"]

_OPTIONS = {"capacity", "path", "mode", "create", "ttl_jitter", "max_value_size", "expected_entry_size"}
_IGNORED = {"max_entries", "cull_frequency"}
_MAX_SECONDS = 100 * 365 * 24 * 3600  # the engine's longest TTL
_NOT_STORED = object()

# One memshelf.Cache per segment and options in a process, shared by the
# backend objects of every thread (Django makes one per thread): it is
# thread-safe and survives fork, and each open maps the segment again.
_open: Dict[Tuple[Any, ...], memshelf.Cache] = {}
_open_lock = threading.Lock()


class NotAnIntegerError(memshelf.NotAnInteger, TypeError):
    """incr()/decr() of a value that is not an integer (a ValueError and a
    TypeError, as Django's own backends raise one or the other)."""


class MemshelfCache(BaseCache):
    """Django's cache API on a shared-memory memshelf segment."""

    def __init__(self, location: str, params: Dict[str, Any]) -> None:
        super().__init__(params)
        if not location or not isinstance(location, str):
            raise ImproperlyConfigured("memshelf.django.MemshelfCache needs LOCATION: the segment's name")
        self._location = location
        options = {str(k).lower(): v for k, v in (params.get("OPTIONS") or {}).items()}
        self._pickle_protocol = int(options.pop("pickle_protocol", pickle.HIGHEST_PROTOCOL))
        if not 2 <= self._pickle_protocol <= pickle.HIGHEST_PROTOCOL:
            raise ImproperlyConfigured(f"pickle_protocol must be 2-{pickle.HIGHEST_PROTOCOL}")
        for k in _IGNORED:
            options.pop(k, None)
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ImproperlyConfigured(
                f"unknown memshelf OPTIONS {sorted(unknown)}: expected {sorted(_OPTIONS)} or pickle_protocol"
            )
        self._options = options
        self._shelf: Optional[memshelf.Cache] = None

    @property
    def _cache(self) -> memshelf.Cache:
        c = self._shelf
        if c is None:
            ident = (self._location, tuple(sorted((k, repr(v)) for k, v in self._options.items())))
            with _open_lock:
                c = _open.get(ident)
                if c is None or c.closed:
                    c = _open[ident] = memshelf.Cache(self._location, **self._options)
            self._shelf = c
        return c

    # Values: integers as ASCII decimal (the engine's incr), the rest pickled
    # (pickle protocol >= 2 starts with 0x80, which no decimal does).
    def _encode(self, value: Any) -> bytes:
        if type(value) is int and -(2**63) <= value < 2**63:
            return str(value).encode()
        return pickle.dumps(value, self._pickle_protocol)

    @staticmethod
    def _decode(data: bytes) -> Any:
        if data[:1] == b"\x80":
            return pickle.loads(data)
        return int(data)

    def _ttl(self, timeout: Any) -> Any:
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return memshelf.NEVER
        if timeout <= 0:
            return _NOT_STORED
        return min(float(timeout), _MAX_SECONDS)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        data = self._encode(value)
        ttl = self._ttl(timeout)
        if ttl is _NOT_STORED:
            return key not in self._cache
        return self._cache.add(key, data, ttl)

    def get(self, key: Any, default: Any = None, version: Optional[int] = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        data = self._cache.get(key)
        return default if data is None else self._decode(data)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> None:
        key = self.make_and_validate_key(key, version=version)
        data = self._encode(value)
        ttl = self._ttl(timeout)
        if ttl is _NOT_STORED:
            self._cache.delete(key)
        else:
            self._cache.put(key, data, ttl)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        if ttl is _NOT_STORED:
            return self._cache.delete(key)
        return self._cache.touch(key, ttl)

    def delete(self, key: Any, version: Optional[int] = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._cache.delete(key)

    def has_key(self, key: Any, version: Optional[int] = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return key in self._cache

    def incr(self, key: Any, delta: int = 1, version: Optional[int] = None) -> int:
        key = self.make_and_validate_key(key, version=version)
        # Django raises ValueError for a missing key where the engine would
        # count from 0. (A delete between the check and the add makes the
        # add count from 0, as with Django's Redis backend.)
        if key not in self._cache:
            raise ValueError(f"Key '{key}' not found")
        try:
            return self._cache.incr(key, delta)
        except memshelf.NotAnInteger as e:
            raise NotAnIntegerError(str(e)) from e

    def get_many(self, keys: Iterable[Any], version: Optional[int] = None) -> Dict[Any, Any]:
        keys = list(keys)
        made = [self.make_and_validate_key(k, version=version) for k in keys]
        found = self._cache.get_many(made)
        return {k: self._decode(v) for k, v in zip(keys, found) if v is not None}

    def set_many(self, data: Dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> List[Any]:
        items = [(self.make_and_validate_key(k, version=version), self._encode(v)) for k, v in data.items()]
        ttl = self._ttl(timeout)
        if ttl is _NOT_STORED:
            for k, _ in items:
                self._cache.delete(k)
        else:
            self._cache.put_many(items, ttl)
        return []

    def delete_many(self, keys: Iterable[Any], version: Optional[int] = None) -> None:
        c = self._cache
        for k in [self.make_and_validate_key(k, version=version) for k in keys]:
            c.delete(k)

    def clear(self) -> None:
        """Every entry of the segment becomes a miss (also those of other
        KEY_PREFIXes and of non-Django users of the segment, as Redis's
        FLUSHDB)."""
        self._cache.clear()

    def close(self, **kwargs: Any) -> None:
        """Django calls this at the end of every request: nothing to do (the
        mapping stays for the next request)."""

    # The async API: the calls take microseconds, so they run inline rather
    # than in a thread (Django's default is sync_to_async).
    async def aadd(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> bool:
        return self.add(key, value, timeout, version)

    async def aget(self, key: Any, default: Any = None, version: Optional[int] = None) -> Any:
        return self.get(key, default, version)

    async def aset(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> None:
        self.set(key, value, timeout, version)

    async def atouch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> bool:
        return self.touch(key, timeout, version)

    async def adelete(self, key: Any, version: Optional[int] = None) -> bool:
        return self.delete(key, version)

    async def ahas_key(self, key: Any, version: Optional[int] = None) -> bool:
        return self.has_key(key, version)

    async def aincr(self, key: Any, delta: int = 1, version: Optional[int] = None) -> int:
        return self.incr(key, delta, version)

    async def aget_many(self, keys: Iterable[Any], version: Optional[int] = None) -> Dict[Any, Any]:
        return self.get_many(keys, version)

    async def aset_many(self, data: Dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> List[Any]:
        return self.set_many(data, timeout, version)

    async def adelete_many(self, keys: Iterable[Any], version: Optional[int] = None) -> None:
        self.delete_many(keys, version)

    async def aclear(self) -> None:
        self.clear()

    async def aclose(self, **kwargs: Any) -> None:
        self.close(**kwargs)
