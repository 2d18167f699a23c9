"""Several processes and threads on one segment."""

import hashlib
import multiprocessing as mp
import os
import random
import signal
import subprocess
import threading
import time

import pytest

import memshelf

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def make_value(key, n, salt):
    body = key.encode() + n.to_bytes(4, "little") + random.Random(salt).randbytes(n)
    return body + hashlib.blake2b(body, digest_size=8).digest()


def value_ok(key, v):
    k = key.encode()
    if not v.startswith(k) or len(v) < len(k) + 12:
        return False
    n = int.from_bytes(v[len(k):len(k) + 4], "little")
    if len(v) != len(k) + 4 + n + 8:
        return False
    return hashlib.blake2b(v[:-8], digest_size=8).digest() == v[-8:]


def mixed_worker(name, ctl, seed, seconds):
    c = memshelf.Cache(name, create=False)
    control = memshelf.Cache(ctl, create=False)
    rng = random.Random(seed)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        k = f"key:{rng.randrange(200)}"
        r = rng.random()
        if r < 0.5:
            v = c.get(k)
            if v is not None and not value_ok(k, v):
                control.incr("corrupt")
                raise AssertionError(f"corrupt value for {k}")
        elif r < 0.85:
            c.put(k, make_value(k, rng.choice([0, 10, 100, 2000]), rng.random()))
        else:
            c.delete(k)
        if rng.random() < 0.05:
            control.incr("counter")
            n += 1
        control.incr(f"hb:{seed}")
    control.incr("done")
    return n


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_four_processes_self_checking(name, method):
    ctl = name + "-ctl"
    memshelf.Cache(name, capacity="1MiB")  # small: constant eviction
    # The control segment must never evict (a lost "done" or "corrupt"):
    # every heartbeat incr appends to its log, ~150k per run, and in 1 MiB
    # the log wrapped ~9 times and evicted keys written once.
    control = memshelf.Cache(ctl, capacity="128MiB")
    try:
        with mp.get_context(method).Pool(4) as pool:
            counts = pool.starmap(mixed_worker, [(name, ctl, i, 1.5) for i in range(4)])
        assert control.get("corrupt") is None
        assert int(control.get("done")) == 4
        assert int(control.get("counter") or 0) == sum(counts)
    finally:
        memshelf.unlink(ctl)


def test_sigkill_does_not_disturb_others(name):
    ctl = name + "-ctl"
    memshelf.Cache(name, capacity="2MiB")
    # The control segment must never evict (a lost "done" or "corrupt"):
    # every heartbeat incr appends to its log, ~150k per run, and in 1 MiB
    # the log wrapped ~9 times and evicted keys written once.
    control = memshelf.Cache(ctl, capacity="128MiB")
    ctx = mp.get_context("spawn")
    try:
        survivor = ctx.Process(target=mixed_worker, args=(name, ctl, 100, 4.0))
        survivor.start()
        rng = random.Random(5)
        end = time.monotonic() + 2.5
        kills = 0
        while time.monotonic() < end:
            victim = ctx.Process(target=mixed_worker, args=(name, ctl, 200 + kills, 60.0))
            victim.start()
            time.sleep(0.1 + rng.random() * 0.2)
            os.kill(victim.pid, signal.SIGKILL)
            victim.join()
            kills += 1
        before = int(control.get("hb:100") or 0)
        time.sleep(0.3)
        assert int(control.get("hb:100") or 0) > before, "the survivor stopped making progress"
        survivor.join(30)
        assert survivor.exitcode == 0
        assert control.get("corrupt") is None
        c = memshelf.Cache(name, create=False)
        for i in range(2000):
            c.put(f"after:{i}", b"v")
        assert c.get("after:1999") == b"v"
    finally:
        memshelf.unlink(ctl)


def gos_worker(name, idx):
    c = memshelf.Cache(name, create=False)
    while c.get("go") is None:
        time.sleep(0.001)

    def factory():
        c.incr("runs")
        time.sleep(0.3)
        return b"the-value"

    v = c.get_or_set("answer", factory, lease=30)
    c.put(f"result:{idx}", v)


def test_get_or_set_runs_once_across_processes(name):
    c = memshelf.Cache(name, capacity="1MiB")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=gos_worker, args=(name, i)) for i in range(6)]
    for p in procs:
        p.start()
    time.sleep(0.2)
    c.put("go", b"1")
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert c.get("runs") == b"1"
    assert all(c.get(f"result:{i}") == b"the-value" for i in range(6))
    assert c.stats()["get_or_set_waits"] >= 1


def test_get_or_set_waiter_releases_the_gil(name):
    c = memshelf.Cache(name, capacity="1MiB")
    started = threading.Event()
    ticks = []

    def leader():
        def slow():
            started.set()
            time.sleep(0.5)
            return b"v"
        c.get_or_set("k", slow)

    def waiter():
        started.wait()
        assert c.get_or_set("k", lambda: b"other") == b"v"

    def ticker():
        started.wait()
        for _ in range(20):
            ticks.append(1)
            time.sleep(0.01)

    ts = [threading.Thread(target=f) for f in (leader, waiter, ticker)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert len(ticks) == 20


def test_eight_threads_one_cache(cache):
    errors = []

    def hammer(seed):
        rng = random.Random(seed)
        try:
            for _ in range(3000):
                k = f"t:{rng.randrange(100)}"
                if rng.random() < 0.3:
                    cache.put(k, make_value(k, rng.randrange(300), rng.random()))
                else:
                    v = cache.get(k)
                    assert v is None or value_ok(k, v)
                cache.incr("total")
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert cache.get("total") == b"24000"


def test_interop_with_rust(name):
    """A segment written by Python is read by the Rust engine and back."""
    c = memshelf.Cache(name, capacity="4MiB")
    c.put("from-python", "héllo")
    env = dict(os.environ)
    cmd = ["cargo", "run", "--quiet", "-p", "memshelf", "--example", "shared_segment", "--", name]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "from-python=héllo" in out.stdout
    assert c.get("from-rust") == b"written by rust"


def test_get_or_set_waiter_answers_ctrl_c(name):
    import _thread

    c = memshelf.Cache(name, capacity="1MiB")
    started, release = threading.Event(), threading.Event()

    def leader():
        def slow():
            started.set()
            release.wait(10)
            return b"v"
        c.get_or_set("k", slow, lease=30)

    t = threading.Thread(target=leader)
    t.start()
    try:
        assert started.wait(10)
        threading.Timer(0.2, _thread.interrupt_main).start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            c.get_or_set("k", lambda: b"other", lease=30)  # waits for the leader
        assert time.monotonic() - t0 < 5, "the waiter did not answer the interrupt while waiting"
    finally:
        release.set()
        t.join(10)
    assert c.get("k") == b"v"


def test_a_child_forked_inside_the_factory_leaves_the_parents_lease_alone(name):
    # The child's copy of the lease used to be released when SystemExit
    # unwound it out of the factory: another caller then led the same fill
    # and the parent's value was never stored.
    c = memshelf.Cache(name, capacity="4MiB")
    seen = []

    def factory():
        pid = os.fork()
        if pid == 0:
            raise SystemExit(0)
        os.waitpid(pid, 0)
        other = memshelf.Cache(name)
        kind, got = other._begin_fill("fk")  # one step of get_or_set
        if kind == 2:  # LEAD: the parent's lease was given away
            got.release()
        seen.append(kind)
        return b"parent"

    parent = os.getpid()
    try:
        v = c.get_or_set("fk", factory)
    except SystemExit:
        if os.getpid() != parent:
            os._exit(0)  # the child, once SystemExit left get_or_set
        raise
    assert v == b"parent"
    assert seen == [3], f"another caller's step while the parent fills: {seen} (3 = WAIT)"
    assert c.get("fk") == b"parent"
