"""memshelf.redis: the read-through helpers over redis-py (sync and asyncio),
against a real redis-server."""

import asyncio
import multiprocessing as mp
import threading
import time

import pytest
import redis
import redis.asyncio

import memshelf
from memshelf.redis import AsyncNearCache, NearCache
from redis_server import RedisServer, command_calls


@pytest.fixture(scope="module")
def server():
    s = RedisServer()
    yield s
    s.stop()


@pytest.fixture
def r(server):
    c = redis.Redis.from_url(server.url)
    c.flushall()
    c.config_resetstat()
    yield c
    c.close()


def gets(r):
    return command_calls(r, "get")


# --- basics -------------------------------------------------------------


def test_miss_fetches_with_the_redis_ttl_then_hits(r, cache):
    near = NearCache(r, cache)
    r.set("k", b"v1", px=50_000)
    r.config_resetstat()
    assert near.get("k") == b"v1"
    assert gets(r) == 1
    redis_left = r.pttl("k") / 1000  # asked first: the entry is read later
    left = cache.ttl("k")
    # Stored with the key's remaining Redis TTL, less the round trip (ms
    # resolution on both sides).
    assert 0 < left <= redis_left + 0.001, (left, redis_left)
    assert left > 40
    assert near.get("k") == b"v1"
    assert near.get("k") == b"v1"
    assert gets(r) == 1  # memshelf hits: Redis not asked again
    assert cache.stats()["hits"] >= 2


def test_key_without_ttl_gets_default_ttl(r, cache):
    near = NearCache(r, cache, default_ttl=123)
    r.set("k", b"v")
    assert near.get("k") == b"v"
    assert 122 < cache.ttl("k") <= 123
    never = NearCache(r, cache, default_ttl=memshelf.NEVER)
    r.set("n", b"v")
    assert never.get("n") == b"v"
    assert cache.ttl("n") == float("inf")


def test_missing_key_is_none_and_not_cached(r, cache):
    near = NearCache(r, cache)
    assert near.get("absent") is None
    assert cache.ttl("absent") is None
    assert len(cache) == 0
    assert near.get("absent") is None
    assert gets(r) == 2  # not cached: asked again
    r.set("absent", b"now")
    assert near.get("absent") == b"now"


def test_negative_caching_is_opt_in(r, cache):
    near = NearCache(r, cache, negative_ttl=5)
    assert near.get("absent") is None
    assert near.get("absent") is None
    assert gets(r) == 1  # the absence was cached
    assert cache.get("absent") is None
    near.set("absent", b"v")  # drops the cached absence too
    assert near.get("absent") == b"v"


def test_set_and_delete_write_redis_and_drop_the_local_entry(r, cache):
    near = NearCache(r, cache)
    r.set("k", b"v1", ex=100)
    assert near.get("k") == b"v1"
    assert cache.get("k") == b"v1"
    assert near.set("k", b"v2", ex=50) is True
    assert r.get("k") == b"v2" and 0 < r.ttl("k") <= 50
    assert cache.get("k") is None  # this host reads its own write
    assert near.get("k") == b"v2"
    assert cache.get("k") == b"v2"
    assert near.set("k", b"v3", nx=True) is None  # Redis's answer
    assert r.get("k") == b"v2"
    assert near.delete("k", "other") == 1
    assert r.exists("k") == 0
    assert cache.get("k") is None
    assert near.get("k") is None
    assert near.delete() == 0


class LostReply(redis.Redis):
    """A client whose writes reach Redis but whose replies are lost."""

    def set(self, *args, **kwargs):
        super().set(*args, **kwargs)
        raise redis.ConnectionError("reply lost")

    def delete(self, *keys):
        super().delete(*keys)
        raise redis.ConnectionError("reply lost")


def test_a_write_whose_reply_is_lost_still_drops_the_local_entry(server, r, cache):
    near = NearCache(LostReply.from_url(server.url), cache)
    r.set("k", b"v1")
    assert near.get("k") == b"v1"
    with pytest.raises(redis.ConnectionError):
        near.set("k", b"v2")
    assert cache.get("k") is None and near.get("k") == b"v2"
    with pytest.raises(redis.ConnectionError):
        near.delete("k")
    assert cache.get("k") is None and near.get("k") is None


def test_values_and_keys_pass_through_unchanged(r, cache):
    near = NearCache(r, cache)
    key, value = b"\xff\x00bin", bytes(range(256)) * 3
    r.set(key, value)
    assert near.get(key) == value
    assert cache.get(key) == value
    r.set("empty", b"")
    assert near.get("empty") == b""
    assert near.get("empty") == b""
    assert gets(r) == 2  # an empty value is a value: cached
    r.set("é", "text")
    assert near.get("é") == b"text"  # str keys: UTF-8 in both


def test_get_many_one_round_trip_for_the_misses(r, cache):
    near = NearCache(r, cache, default_ttl=30)
    r.set("a", b"1", ex=100)
    r.set("b", b"2")
    r.set("c", b"3")
    assert near.get("c") == b"3"
    r.config_resetstat()
    assert near.get_many(["a", "b", "c", "missing"]) == [b"1", b"2", b"3", None]
    assert command_calls(r, "exec") == 1  # one MULTI/EXEC for a, b, missing
    assert gets(r) == 3
    assert 29 < cache.ttl("b") <= 30 and 0 < cache.ttl("a") <= 100
    assert near.get_many(["a", "b", "c"]) == [b"1", b"2", b"3"]
    assert gets(r) == 3
    assert near.get_many([]) == []


def test_bad_input_is_refused_and_changes_nothing(r, cache, name):
    near = NearCache(r, cache)
    long_key = "k" * 5000
    with pytest.raises(memshelf.KeyTooLong):
        near.get(long_key)
    with pytest.raises(memshelf.KeyTooLong):
        near.set(long_key, b"v")
    with pytest.raises(memshelf.KeyTooLong):
        near.get_many(["ok", long_key])
    r.set("ok", b"kept")
    with pytest.raises(memshelf.KeyTooLong):
        near.delete("ok", long_key)
    assert r.exists(long_key) == 0 and r.get("ok") == b"kept"
    with pytest.raises(TypeError):
        near.get(42)
    assert gets(r) == 1  # the r.get above: bad keys never reach Redis
    bad = NearCache(r, cache, default_ttl=-1)
    with pytest.raises(memshelf.InvalidTTL):
        bad.get("ok")
    with pytest.raises(ValueError, match="raw codec"):
        NearCache(r, memshelf.Cache(name, codec="pickle"))
    with pytest.raises(ValueError, match="decode_responses"):
        NearCache(redis.Redis(decode_responses=True), cache)
    with pytest.raises(TypeError, match="AsyncNearCache"):
        NearCache(redis.asyncio.Redis(), cache)
    with pytest.raises(TypeError, match="redis.asyncio"):
        AsyncNearCache(r, cache)
    with pytest.raises(TypeError, match="memshelf.Cache"):
        NearCache(r, "not a cache")
    assert len(cache) == 0


# --- one Redis GET per host ----------------------------------------------


class HookedRedis(redis.Redis):
    """A redis.Redis whose MULTI/EXEC calls `after_fetch` once its reply is
    in (the helper's fill is then between Redis's answer and its store)."""

    after_fetch = None

    @classmethod
    def hooked(cls, url, after_fetch=None):
        c = cls.from_url(url)
        c.after_fetch = after_fetch
        return c

    def pipeline(self, transaction=True, shard_hint=None):
        p = super().pipeline(transaction, shard_hint)
        execute = p.execute

        def hooked(*a, **kw):
            reply = execute(*a, **kw)
            if self.after_fetch is not None:
                self.after_fetch(reply)
            return reply

        p.execute = hooked
        return p


def stampede_worker(url, name, n):
    cache = memshelf.Cache(name, create=False)

    def wait_for_the_others(_reply):
        # The leader holds its fill until every other worker waits for it,
        # so the test really has n processes missing at once.
        deadline = time.monotonic() + 30
        while cache.stats()["get_or_set_waits"] < n - 1 and time.monotonic() < deadline:
            time.sleep(0.002)

    near = NearCache(HookedRedis.hooked(url, wait_for_the_others), cache)
    return near.get("hot")


def test_stampede_one_redis_get_per_host(server, r, name):
    n = 6
    cache = memshelf.Cache(name, capacity="8MiB")
    r.set("hot", b"value", ex=100)
    r.config_resetstat()
    with mp.get_context("spawn").Pool(n) as pool:
        results = pool.starmap(stampede_worker, [(server.url, name, n)] * n)
    assert results == [b"value"] * n
    assert gets(r) == 1
    assert cache.stats()["get_or_set_waits"] >= n - 1  # they really all missed at once
    assert cache.get("hot") == b"value"


# --- the read-through race -----------------------------------------------


def test_a_failed_fetch_raises_and_hands_the_lease_on(server, r, cache):
    def fail(_reply):
        raise redis.ConnectionError("connection lost")

    near = NearCache(HookedRedis.hooked(server.url, fail), cache, lease=30)
    r.set("k", b"v")
    with pytest.raises(redis.ConnectionError):
        near.get("k")
    assert cache.get("k") is None
    near.redis.after_fetch = None
    t0 = time.monotonic()
    assert near.get("k") == b"v"  # the lease was released: no 30 s wait
    assert time.monotonic() - t0 < 10


def run_race(near, r, cache, rounds, local_set_every=3):
    """Each round: a reader's fill fetches v1 from Redis; while it is held
    between Redis's answer and its store, a writer sets v2 in Redis and
    the invalidation lands (the agent's delete, simulated with
    cache.delete; every third round the writer's own near.set). The stale
    v1 goes back to that reader but must never be served from memshelf."""
    fetched, written = threading.Event(), threading.Event()

    def hold(_reply):
        fetched.set()
        assert written.wait(10), "the writer never wrote"

    near.redis.after_fetch = hold
    stale_served = 0
    for i in range(rounds):
        key = f"race:{i % 7}"
        v1, v2 = f"v1:{i}".encode(), f"v2:{i}".encode()
        r.set(key, v1, ex=600)
        cache.delete(key)
        fetched.clear()
        written.clear()
        got = []
        reader = threading.Thread(target=lambda: got.append(near.get(key)))
        reader.start()
        assert fetched.wait(10), "the reader never fetched"
        if i % local_set_every == 0:
            near.set(key, v2, ex=600)  # Redis SET + the local delete
        else:
            r.set(key, v2, ex=600)
            cache.delete(key)  # the agent applying the tracking invalidation
        written.set()
        reader.join()
        assert got == [v1]  # the fetched value goes back to its caller
        if cache.get(key) == v1:
            stale_served += 1
        near.redis.after_fetch = None
        assert near.get(key) == v2
        near.redis.after_fetch = hold
    near.redis.after_fetch = None
    return stale_served


def test_read_through_race_never_stores_the_stale_value(server, r, cache):
    near = NearCache(HookedRedis.hooked(server.url), cache)
    assert run_race(near, r, cache, rounds=2000) == 0


# --- asyncio ---------------------------------------------------------------


def test_async_basics(server, r, cache):
    async def main():
        client = redis.asyncio.Redis.from_url(server.url)
        near = AsyncNearCache(client, cache, default_ttl=77)
        r.set("k", b"v1", px=50_000)
        r.set("nottl", b"x")
        r.config_resetstat()
        assert await near.get("k") == b"v1"
        redis_left = r.pttl("k") / 1000
        assert 40 < cache.ttl("k") <= redis_left + 0.001
        assert await near.get("k") == b"v1"
        assert gets(r) == 1
        assert await near.get("nottl") == b"x"
        assert 76 < cache.ttl("nottl") <= 77
        assert await near.get("absent") is None
        assert cache.ttl("absent") is None
        assert await near.get_many(["k", "nottl", "absent", "k"]) == [b"v1", b"x", None, b"v1"]
        assert await near.set("k", b"v2") is True
        assert r.get("k") == b"v2" and cache.get("k") is None
        assert await near.get("k") == b"v2"
        assert await near.delete("k") == 1
        assert r.exists("k") == 0 and cache.get("k") is None
        with pytest.raises(memshelf.KeyTooLong):
            await near.set("k" * 5000, b"v")
        await client.aclose()

    asyncio.run(main())


def hold_fill(url, name, seconds):
    """In another process: lead a NearCache fill of "slow" and hold it."""
    cache = memshelf.Cache(name, create=False)

    def slow(_reply):
        cache.put("holding", b"1")
        time.sleep(seconds)

    return NearCache(HookedRedis.hooked(url, slow), cache).get("slow")


def _async_lag_once(server, r, name):
    from test_asyncio import assert_loop_never_blocked, measure_lag

    cache = memshelf.Cache(name, capacity="8MiB")
    r.set("slow", b"from-redis", ex=100)
    r.set("paused", b"p", ex=100)
    with mp.get_context("spawn").Pool(1) as pool:
        other = pool.apply_async(hold_fill, (server.url, name, 0.5))
        deadline = time.monotonic() + 30
        while cache.get("holding") is None:
            assert time.monotonic() < deadline, "the other process never started"
            time.sleep(0.005)

        async def main():
            client = redis.asyncio.Redis.from_url(server.url)
            near = AsyncNearCache(client, cache)
            done = asyncio.Event()
            tick = asyncio.create_task(measure_lag(done))
            await asyncio.sleep(0.01)
            # 1. Waiting for another process's fill.
            t0 = time.monotonic()
            waited_value = await near.get("slow")
            waited = time.monotonic() - t0
            # 2. Leading a fill whose Redis reply is slow (Redis paused).
            r.client_pause(300)
            t0 = time.monotonic()
            led_value = await near.get("paused")
            led = time.monotonic() - t0
            done.set()
            await client.aclose()
            return waited_value, waited, led_value, led, *(await tick)

        waited_value, waited, led_value, led, lags, raw = asyncio.run(main())
        assert other.get(timeout=30) == b"from-redis"
    assert waited_value == b"from-redis" and led_value == b"p"
    assert waited > 0.2 and led > 0.1, (waited, led)  # both really waited
    assert_loop_never_blocked(lags, raw)


def test_async_fill_and_wait_never_block_the_loop(server, r, name):
    # As test_asyncio's lag test: up to three measurements (one scheduling
    # hiccup of this shared machine must not fail it; a loop that really
    # blocks lags every time, and test_lag_measure_sees_a_blocked_loop
    # shows the measure sees it).
    failures = []
    for attempt in range(3):
        seg = f"{name}-{attempt}"
        try:
            r.flushall()
            _async_lag_once(server, r, seg)
            return
        except AssertionError as e:
            if "event-loop lag" not in str(e):
                raise
            failures.append(str(e))
        finally:
            try:
                memshelf.unlink(seg)
            except memshelf.SegmentNotFound:
                pass
    raise AssertionError("; ".join(failures))
