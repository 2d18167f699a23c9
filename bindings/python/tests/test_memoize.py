"""@cache.memoize: one computation per key across processes."""

import asyncio
import multiprocessing as mp
import time

import pytest

import memshelf


def memo_worker(name, ctl):
    c = memshelf.Cache(name, create=False, codec="pickle")
    control = memshelf.Cache(ctl, create=False)

    @c.memoize(ttl=60, lease=30)
    def slow(x, scale=1):
        control.incr("calls")
        time.sleep(0.2)
        return {"x": x * scale}

    return [slow(2, scale=3), slow(2, scale=3)]


def test_memoize_runs_once_across_processes(name):
    ctl = name + "-ctl"
    memshelf.Cache(name, capacity="4MiB")
    control = memshelf.Cache(ctl, capacity="1MiB")
    try:
        with mp.get_context("spawn").Pool(4) as pool:
            results = pool.starmap(memo_worker, [(name, ctl)] * 4)
        assert results == [[{"x": 6}, {"x": 6}]] * 4
        assert control.get("calls") == b"1"
    finally:
        memshelf.unlink(ctl)


def test_memoize_keys_ttl_and_invalidate(name):
    c = memshelf.Cache(name, capacity="4MiB", codec="json")
    calls = []

    @c.memoize(ttl=30)
    def f(a, b=0):
        """Doc."""
        calls.append((a, b))
        return [a, b]

    assert f(1) == [1, 0] and f(1) == [1, 0] and f(1, b=2) == [1, 2] and f(1, 2) == [1, 2]
    assert calls == [(1, 0), (1, 2), (1, 2)]  # kwargs and positionals are distinct calls
    assert f.__name__ == "f" and f.__doc__ == "Doc." and f.__wrapped__ is not None
    k = f.cache_key(1)
    assert k.startswith("memoize:test_memoize.test_memoize_keys_ttl_and_invalidate.<locals>.f:")
    assert 0 < c.ttl(k) <= 30
    assert f.invalidate(1) is True and f.invalidate(1) is False
    assert f(1) == [1, 0] and len(calls) == 4

    @c.memoize(key=lambda user: f"user:{user}")
    def user(user):
        return {"id": user}

    assert user(7) == {"id": 7} and c.get("user:7") == {"id": 7}
    assert user.cache_key(7) == "user:7"

    with pytest.raises(TypeError, match="memoize\\(\\)"):

        @c.memoize
        def bare():
            return 1


def test_memoize_none_and_negative_ttl(name):
    c = memshelf.Cache(name, capacity="4MiB", codec="pickle")
    calls = []

    @c.memoize()
    def none():
        calls.append(1)

    @c.memoize(negative_ttl=30)
    def cached_none():
        calls.append(2)

    none(), none(), cached_none(), cached_none()
    assert calls == [1, 1, 2]


def test_memoize_async_function(name):
    c = memshelf.Cache(name, capacity="4MiB", codec="pickle")
    calls = []

    @c.memoize(ttl=60)
    async def fetch(x):
        calls.append(x)
        await asyncio.sleep(0.05)
        return {"x": x}

    async def main():
        many = await asyncio.gather(*(fetch(5) for _ in range(20)))
        return many, await fetch(6), await fetch(6)

    assert asyncio.run(main()) == ([{"x": 5}] * 20, {"x": 6}, {"x": 6})
    assert calls == [5, 6]
    assert asyncio.iscoroutinefunction(fetch)
