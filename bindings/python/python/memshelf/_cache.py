"""``memshelf.Cache``: the native class plus its asyncio API and memoize."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
from typing import Any, Callable, ParamSpec, Protocol, TypeVar, Union

from . import _memshelf  # type: ignore[attr-defined]  # (native; typed in __init__.pyi)

P = ParamSpec("P")
R_co = TypeVar("R_co")


class Memoized(Protocol[P, R_co]):
    """What ``@cache.memoize()`` returns: the function, plus its cache key
    and a way to drop its cached result for given arguments."""

    __wrapped__: Callable[P, R_co]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> Union[str, bytes]: ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool: ...

# What _begin_fill answers (see bindings/python/src/fill.rs).
_HIT, _ABSENT, _LEAD, _WAIT = 0, 1, 2, 3

# A waiting coroutine asks again after 1 ms, doubling up to this: the wait
# costs a few microseconds per step and never blocks the event loop.
_MAX_POLL = 0.010


def _as_bytes(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


class Cache(_memshelf.Cache):
    __doc__ = _memshelf.Cache.__doc__
    __slots__ = ()

    async def aget(self, key: Any, default: Any = None) -> Any:
        """The value of key, or default (the lookup runs inline: it takes
        microseconds, less than a hop to a thread)."""
        return self.get(key, default)

    async def aput(self, key: Any, value: Any, ttl: Any = None, tags: Any = None) -> None:
        """put(), as a coroutine (inline, as aget)."""
        self.put(key, value, ttl, tags)

    async def aget_or_set(
        self,
        key: Any,
        factory: Any,
        ttl: Any = None,
        lease: Any = None,
        grace: Any = None,
        negative_ttl: Any = None,
        tags: Any = None,
    ) -> Any:
        """get_or_set() for asyncio: factory may be async (a coroutine
        function) or plain. One caller across all processes runs it; the
        others wait without blocking the event loop (they ask again after
        1, 2, 4, 8, then every 10 ms). A factory that raises, or a caller
        cancelled while its factory runs, releases the lease at once, so a
        waiter takes over."""
        return await self._afill(key, factory, False, ttl, lease, grace, negative_ttl, tags)

    async def _aget_or_set_timed(
        self,
        key: Any,
        factory: Any,
        ttl: Any = None,
        lease: Any = None,
        grace: Any = None,
        negative_ttl: Any = None,
        tags: Any = None,
    ) -> Any:
        """aget_or_set() whose factory returns ``(value, ttl)``: the TTL of
        the value (None: the ttl given here), as _get_or_set_timed()."""
        return await self._afill(key, factory, True, ttl, lease, grace, negative_ttl, tags)

    async def _afill(
        self, key: Any, factory: Any, timed: bool, ttl: Any, lease: Any, grace: Any, negative_ttl: Any, tags: Any
    ) -> Any:
        if not callable(factory):
            raise TypeError(f"factory must be callable, not {type(factory).__name__}")
        delay = 0.001
        call = _memshelf._FillCall()  # the engine counts this call's wait once
        while True:
            kind, got = self._begin_fill(key, ttl, lease, grace, negative_ttl, tags, call)
            if kind == _HIT:
                return got
            if kind == _ABSENT:
                return None
            if kind == _LEAD:
                try:
                    value = factory()
                    if inspect.isawaitable(value):
                        value = await value
                    value_ttl = None
                    if timed:
                        if not (isinstance(value, tuple) and len(value) == 2):
                            raise TypeError("the factory must return a (value, ttl) pair")
                        value, value_ttl = value
                    got.fill(value, value_ttl)
                except BaseException:
                    got.release()
                    raise
                return _as_bytes(value) if self.codec == "raw" else value
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_POLL)

    def memoize(
        self,
        ttl: Any = None,
        *,
        key: Any = None,
        lease: Any = None,
        grace: Any = None,
        negative_ttl: Any = None,
        tags: Any = None,
    ) -> Any:
        """Decorator caching a function's results in this Cache through
        get_or_set (aget_or_set for ``async def`` functions), so one call
        across all processes computes each result. key: a function of the
        call's arguments returning the cache key (default: the function's
        module and qualified name plus a hash of ``repr()`` of the
        arguments, which needs arguments whose repr is stable across
        processes). The decorated function has ``cache_key(*args,
        **kwargs)`` and ``invalidate(*args, **kwargs)``. Results are stored
        with the Cache's codec (raw: bytes/str only); a None result is not
        cached unless negative_ttl is given."""
        if callable(ttl):
            raise TypeError("memoize takes options: write @cache.memoize() or @cache.memoize(ttl=60)")

        def decorate(func: Any) -> Any:
            prefix = f"memoize:{func.__module__}.{func.__qualname__}:"

            def cache_key(*args: Any, **kwargs: Any) -> Any:
                if key is not None:
                    return key(*args, **kwargs)
                blob = repr((args, sorted(kwargs.items()))).encode()
                return prefix + hashlib.blake2b(blob, digest_size=16).hexdigest()

            opts = dict(ttl=ttl, lease=lease, grace=grace, negative_ttl=negative_ttl, tags=tags)
            wrapper: Any
            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def wrapper(*args: Any, **kwargs: Any) -> Any:
                    return await self.aget_or_set(
                        cache_key(*args, **kwargs), lambda: func(*args, **kwargs), **opts
                    )

            else:

                @functools.wraps(func)
                def wrapper(*args: Any, **kwargs: Any) -> Any:
                    return self.get_or_set(
                        cache_key(*args, **kwargs), lambda: func(*args, **kwargs), **opts
                    )

            def invalidate(*args: Any, **kwargs: Any) -> bool:
                return bool(self.delete(cache_key(*args, **kwargs)))

            wrapper.cache_key = cache_key
            wrapper.invalidate = invalidate
            return wrapper

        return decorate
