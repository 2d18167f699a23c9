"""The asyncio API: aget, aput, aget_or_set (async factories, waiting that
never blocks the event loop, cancellation releases the lease)."""

import asyncio
import multiprocessing as mp
import time

import pytest

import memshelf


def hold_lease(name, ctl, key, seconds):
    """In another process: lead get_or_set on key and take `seconds`."""
    c = memshelf.Cache(name, create=False)
    control = memshelf.Cache(ctl, create=False)

    def slow():
        control.put("started", b"1")
        time.sleep(seconds)
        return b"from-the-other-process"

    return c.get_or_set(key, slow, lease=30)


def runqueue_seconds():
    """Seconds this thread has spent runnable but waiting for a CPU (the
    kernel's schedstat): load from other processes, not a blocked loop."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except OSError:
        return 0.0


async def measure_lag(done):
    """Ticks of 1 ms until done is set: each tick's lateness, less the time
    the kernel kept the thread waiting for a CPU meanwhile (on a loaded
    2-core machine that alone reaches 5-8 ms with no memshelf involved). A
    loop blocked in a call (a futex wait, a sleep) still counts in full."""
    loop = asyncio.get_running_loop()
    lags, raw = [], []
    while not done.is_set():
        t, q = loop.time(), runqueue_seconds()
        await asyncio.sleep(0.001)
        late = loop.time() - t - 0.001
        raw.append(late)
        lags.append(late - (runqueue_seconds() - q))
    return lags, raw


# The defect these tests look for is a wait on the event-loop thread: the
# core's blocking wait sleeps in slices of FILL_WAIT_SLICE (50 ms) or for the
# whole fill (0.5 s here), so a blocked loop lags 50 ms or more at once. What
# remains after the run-queue correction on this shared 2-core VM (steal time,
# a GC pass, the spawned process starting) reached 11 ms in CI with nothing
# blocking; the bar sits between the two.
BLOCKING_WAIT = 0.05
MAX_LAG = 0.025


def assert_loop_never_blocked(lags, raw):
    assert len(lags) > 50
    assert max(lags) < MAX_LAG, (
        f"event-loop lag {max(lags) * 1000:.2f} ms (max; {max(raw) * 1000:.2f} ms "
        f"with CPU waits) over {len(lags)} ticks"
    )


def test_lag_measure_sees_a_blocked_loop():
    async def main():
        done = asyncio.Event()
        tick = asyncio.create_task(measure_lag(done))
        await asyncio.sleep(0.1)
        time.sleep(BLOCKING_WAIT)  # blocks the loop for one wait slice
        await asyncio.sleep(0.1)
        done.set()
        return await tick

    lags, raw = asyncio.run(main())
    with pytest.raises(AssertionError, match="event-loop lag"):
        assert_loop_never_blocked(lags, raw)


def test_aget_aput(name):
    async def main():
        c = memshelf.Cache(name, capacity="4MiB", codec="pickle")
        await c.aput("k", {"a": 1}, ttl=60, tags=["t"])
        assert await c.aget("k") == {"a": 1}
        assert await c.aget("missing") is None
        assert await c.aget("missing", 5) == 5
        c.invalidate_tag("t")
        assert await c.aget("k") is None

    asyncio.run(main())


def test_loop_lag_stays_low_while_another_process_holds_the_lease(name):
    # Up to three measurements, each with its own held lease: a loop that
    # really blocks on the wait (the defect) lags in every one, while a
    # single scheduling hiccup of this shared 2-core machine does not fail
    # the test (see MAX_LAG).
    # test_lag_measure_sees_a_blocked_loop shows the measure detects a
    # blocked loop.
    failures = []
    for attempt in range(3):
        seg = f"{name}-{attempt}"
        try:
            _loop_lag_once(seg)
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


def _loop_lag_once(name):
    ctl = name + "-ctl"
    memshelf.Cache(name, capacity="4MiB")
    control = memshelf.Cache(ctl, capacity="1MiB")
    ctx = mp.get_context("spawn")
    try:
        with ctx.Pool(1) as pool:
            other = pool.apply_async(hold_lease, (name, ctl, "k", 0.5))
            deadline = time.monotonic() + 30
            while control.get("started") is None:
                assert time.monotonic() < deadline, "the other process never started"
                time.sleep(0.005)

            async def main():
                c = memshelf.Cache(name)
                done = asyncio.Event()

                async def never():
                    raise AssertionError("this process must not run the factory")

                tick = asyncio.create_task(measure_lag(done))
                await asyncio.sleep(0.01)
                t0 = time.monotonic()
                v = await c.aget_or_set("k", never, lease=30)
                waited = time.monotonic() - t0
                done.set()
                return v, waited, *(await tick)

            v, waited, lags, raw = asyncio.run(main())
            assert other.get(timeout=30) == b"from-the-other-process"
        assert v == b"from-the-other-process"
        assert waited > 0.3, waited  # it really waited for the other process
        assert_loop_never_blocked(lags, raw)
        assert memshelf.Cache(name).stats()["get_or_set_waits"] >= 1
    finally:
        memshelf.unlink(ctl)


def test_fifty_coroutines_run_the_async_factory_once(name):
    async def main():
        c = memshelf.Cache(name, capacity="4MiB", codec="json")
        calls = 0

        async def factory():
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.1)
            return {"answer": 42}

        results = await asyncio.gather(*(c.aget_or_set("k", factory, ttl=60) for _ in range(50)))
        return calls, results, c.get("k")

    calls, results, stored = asyncio.run(main())
    assert calls == 1
    assert results == [{"answer": 42}] * 50
    assert stored == {"answer": 42}


def test_plain_factory_and_raw_results_are_bytes(name):
    async def main():
        c = memshelf.Cache(name, capacity="4MiB")
        assert await c.aget_or_set("k", lambda: "text") == b"text"
        assert await c.aget_or_set("k", lambda: "other") == b"text"
        assert await c.aget_or_set("none", lambda: None, negative_ttl=60) is None
        assert await c.aget_or_set("none", lambda: b"late") is None  # cached absence
        with pytest.raises(TypeError, match="callable"):
            await c.aget_or_set("k2", b"not callable")

    asyncio.run(main())


def test_cancelling_the_leader_releases_the_lease(name):
    async def main():
        c = memshelf.Cache(name, capacity="4MiB")
        started = asyncio.Event()

        async def forever():
            started.set()
            await asyncio.Event().wait()

        leader = asyncio.create_task(c.aget_or_set("k", forever, lease=30))
        await started.wait()

        async def second():
            return b"second"

        waiter = asyncio.create_task(c.aget_or_set("k", second, lease=30))
        await asyncio.sleep(0.05)
        assert not waiter.done()  # it waits for the leader
        t0 = time.monotonic()
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        v = await asyncio.wait_for(waiter, 5)
        return v, time.monotonic() - t0

    v, took = asyncio.run(main())
    assert v == b"second"
    assert took < 1.0, took  # not the 30 s lease


def test_failing_async_factory_hands_over(name):
    async def main():
        c = memshelf.Cache(name, capacity="4MiB")

        async def boom():
            await asyncio.sleep(0.05)
            raise RuntimeError("boom")

        async def ok():
            return b"ok"

        first = asyncio.create_task(c.aget_or_set("k", boom, lease=30))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(c.aget_or_set("k", ok, lease=30))
        with pytest.raises(RuntimeError, match="boom"):
            await first
        assert await asyncio.wait_for(second, 5) == b"ok"

    asyncio.run(main())


def async_worker(name, ctl, key):
    async def main():
        c = memshelf.Cache(name, create=False, codec="pickle")
        control = memshelf.Cache(ctl, create=False)

        async def compute():
            control.incr("calls")
            await asyncio.sleep(0.2)
            return ("value", key)

        return await asyncio.gather(*(c.aget_or_set(key, compute, lease=30) for _ in range(5)))

    return asyncio.run(main())


def test_async_fill_is_once_across_processes(name):
    # One key: two keys in flight at once may share a lease record (direct
    # mapped by hash, 128 records in 4 MiB), and then the core computes
    # without a lease (see the README).
    ctl = name + "-ctl"
    memshelf.Cache(name, capacity="4MiB")
    control = memshelf.Cache(ctl, capacity="1MiB")
    try:
        with mp.get_context("spawn").Pool(3) as pool:
            results = pool.starmap(async_worker, [(name, ctl, "k")] * 3)
        assert results == [[("value", "k")] * 5] * 3
        assert control.get("calls") == b"1"
    finally:
        memshelf.unlink(ctl)


def test_async_codec_failure_releases_the_lease_and_grace_serves_stale(name):
    async def main():
        c = memshelf.Cache(name, capacity="4MiB", codec="pickle")
        import threading

        async def unpicklable():
            return threading.Lock()

        with pytest.raises(memshelf.CodecError):
            await c.aget_or_set("k", unpicklable, lease=30)
        # Released at once: the next caller leads without waiting 30 s.
        t0 = time.monotonic()
        assert await c.aget_or_set("k", lambda: {"v": 1}, lease=30) == {"v": 1}
        assert time.monotonic() - t0 < 1

        # grace: past its TTL the old value is served while one refreshes.
        await c.aget_or_set("g", lambda: "old", ttl=0.05, grace=30)
        await asyncio.sleep(0.1)
        refreshing = asyncio.Event()
        release = asyncio.Event()

        async def slow_new():
            refreshing.set()
            await release.wait()
            return "new"

        leader = asyncio.create_task(c.aget_or_set("g", slow_new, ttl=60, grace=30))
        await refreshing.wait()
        assert await c.aget_or_set("g", slow_new, ttl=60, grace=30) == "old"
        release.set()
        assert await leader == "new"
        assert c.get("g") == "new"

    asyncio.run(main())


def test_fill_lease_is_used_once(name):
    c = memshelf.Cache(name, capacity="4MiB")
    kind, lease = c._begin_fill("k", lease=30)
    assert kind == 2 and isinstance(lease, memshelf.FillLease) and lease.active
    assert lease.fill(b"v") is True
    assert not lease.active
    with pytest.raises(RuntimeError, match="already"):
        lease.fill(b"again")
    lease.release()  # harmless
    assert c._begin_fill("k") == (0, b"v")


def test_fill_with_a_ttl_chosen_by_the_factory(name):
    # What memshelf.redis uses: the TTL is known only with the value.
    c = memshelf.Cache(name, capacity="4MiB")
    kind, lease = c._begin_fill("k", ttl=100, lease=30)
    assert kind == 2
    with pytest.raises(memshelf.InvalidTTL):
        lease.fill(b"v", -1)
    assert lease.active  # a bad ttl loses nothing: the lease is still ours
    assert lease.fill(b"v", 5) is True
    assert 4 < c.ttl("k") <= 5
    assert c._get_or_set_timed("t", lambda: (b"x", 7)) == b"x"
    assert 6 < c.ttl("t") <= 7
    assert c._get_or_set_timed("t", lambda: (b"other", 1)) == b"x"  # a hit
    assert c._get_or_set_timed("u", lambda: (b"y", None), ttl=9) == b"y"
    assert 8 < c.ttl("u") <= 9  # None: the call's ttl
    assert c._get_or_set_timed("n", lambda: ("never", memshelf.NEVER)) == b"never"
    assert c.ttl("n") == float("inf")
    with pytest.raises(TypeError, match="pair"):
        c._get_or_set_timed("w", lambda: b"not a pair", lease=30)
    with pytest.raises(memshelf.InvalidTTL):
        c._get_or_set_timed("w", lambda: (b"z", float("nan")), lease=30)
    # Both released the lease: the next caller leads at once.
    t0 = time.monotonic()
    assert c._get_or_set_timed("w", lambda: (b"z", None), lease=30) == b"z"
    assert time.monotonic() - t0 < 1

    async def main():
        assert await c._aget_or_set_timed("a", lambda: (b"av", 3)) == b"av"
        assert 2 < c.ttl("a") <= 3

        async def fetch():
            return b"bv", None

        assert await c._aget_or_set_timed("b", fetch, ttl=11) == b"bv"
        assert 10 < c.ttl("b") <= 11
        with pytest.raises(TypeError, match="pair"):
            await c._aget_or_set_timed("c", lambda: b"x", lease=30)
        assert await c._aget_or_set_timed("c", lambda: (b"cv", 2), lease=30) == b"cv"

    asyncio.run(main())
