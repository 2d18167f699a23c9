"""Near-cache mode end to end (SPEC 6b, 9): memshelf.redis.NearCache readers
in front of a real redis-server, the real memshelf-agent in `tracking` mode
deleting whatever any client writes, and a stale-read audit.

6 reader processes and 2 writer processes for 20 s on versioned values. A
writer owns its keys (versions rise per key), and after each acknowledged
SET records (version, time) in a side segment the agent does not serve. A
reader that gets a version older than one acknowledged more than BOUND_MS
before its read began has read stale data: there must be none.
"""

import multiprocessing as mp
import os
import random
import subprocess
import time
import urllib.request

import pytest
import redis

import memshelf
from memshelf.redis import NearCache

from redis_server import RedisServer, command_calls, free_port

AGENT = os.environ.get("MEMSHELF_AGENT_BIN")
KEYS = 200
SECONDS = 20.0
READERS = 6
WRITERS = 2
# Propagation (Redis -> agent -> delete) is about a millisecond; the bound
# leaves room for a loaded 2-core CI machine. Without the agent a stale
# value would be served for the whole default TTL (60 s).
BOUND_MS = 1000


def key(i):
    return f"audit:{i}"


@pytest.fixture(scope="module")
def server():
    s = RedisServer()
    yield s
    s.stop()


def start_agent(server, segment, feed="tracking"):
    if not AGENT or not os.access(AGENT, os.X_OK):
        pytest.fail("MEMSHELF_AGENT_BIN must name the memshelf-agent binary "
                    "(scripts/test-python.sh builds it)")
    port = free_port()
    args = [AGENT, "--segment", segment, "--create-capacity", "64MiB", "--broker", server.url,
            "--feed", feed, "--metrics-addr", f"127.0.0.1:{port}", "--log-level", "warn"]
    if feed == "tracking":
        args += ["--tracking-prefix", "audit:"]
    proc = subprocess.Popen(args)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the agent exited: {proc.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the agent never became ready")


def writer(url, acks, me, seconds, out):
    r = redis.Redis.from_url(url)
    audit = memshelf.Cache(acks, capacity="8MiB")
    stop_at = time.time() + seconds  # from its own start: spawning takes seconds
    version = {}
    writes = 0
    while time.time() < stop_at:
        i = random.randrange(me, KEYS, WRITERS)  # this writer's keys only
        v = version.get(i, 0) + 1
        version[i] = v
        r.set(key(i), b"v%d" % v)
        # acknowledged: from now on, BOUND_MS later, no reader may see older
        audit.put(f"ack:{i}", b"%d:%d" % (v, int(time.time() * 1000)))
        writes += 1
        time.sleep(0.002)
    out.put(("writer", writes))


def reader(url, segment, acks, seconds, out):
    near = NearCache(redis.Redis.from_url(url), memshelf.Cache(segment, capacity="64MiB"))
    audit = memshelf.Cache(acks, capacity="8MiB")
    stop_at = time.time() + seconds
    reads = stale = newer_seen = 0
    worst = None
    weights = [1.0 / (i + 1) for i in range(KEYS)]  # Zipf-like: a few hot keys
    while time.time() < stop_at:
        i = random.choices(range(KEYS), weights)[0]
        began = int(time.time() * 1000)
        got = near.get(key(i))
        ack = audit.get(f"ack:{i}")
        reads += 1
        if got is None or ack is None:
            continue
        have = int(got[1:])
        acked, at = (int(x) for x in ack.split(b":"))
        if have >= acked:
            newer_seen += have > 1
            continue
        if began - at > BOUND_MS:
            stale += 1
            worst = max(worst or 0, began - at)
        time.sleep(0.0002)  # leave the agent some CPU on a small machine
    out.put(("reader", reads, stale, worst, newer_seen))


def run_audit(server, name, feed, seconds=SECONDS):
    acks = name + "-acks"
    agent = start_agent(server, name, feed)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    r = redis.Redis.from_url(server.url)
    r.flushall()
    r.config_resetstat()
    for i in range(KEYS):
        r.set(key(i), b"v0")
    procs = [ctx.Process(target=writer, args=(server.url, acks, w, seconds, out)) for w in range(WRITERS)]
    procs += [ctx.Process(target=reader, args=(server.url, name, acks, seconds, out))
              for _ in range(READERS)]
    try:
        for p in procs:
            p.start()
        results = [out.get(timeout=seconds + 120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0, p.exitcode
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    gets = command_calls(r, "get")
    stats = memshelf.Cache(name, create=False).stats()
    memshelf.unlink(name)
    memshelf.unlink(acks)
    readers = [x for x in results if x[0] == "reader"]
    writes = sum(x[1] for x in results if x[0] == "writer")
    return dict(
        reads=sum(x[1] for x in readers),
        stale=sum(x[2] for x in readers),
        worst_ms=max((x[3] for x in readers if x[3] is not None), default=None),
        newer_seen=sum(x[4] for x in readers),
        writes=writes,
        redis_gets=gets,
        hits=stats["hits"],
        misses=stats["misses"],
    )


def test_stale_read_audit_with_the_tracking_agent(server):
    name = f"pytest-audit-{os.getpid()}"
    res = run_audit(server, name, "tracking")
    print(f"\nnear-cache audit: {res}")
    # The run means something: many reads, most from memshelf, new versions
    # written and seen (so invalidations happened and were refilled).
    assert res["reads"] > 5_000 and res["writes"] > 1_000, res
    assert res["hits"] > res["misses"], res
    assert res["redis_gets"] < res["reads"] / 2, res
    assert res["newer_seen"] > 1_000, res
    assert res["stale"] == 0, res


def test_the_audit_sees_stale_reads_without_invalidation(server):
    """The control: the same run with an agent that follows no feed serves
    old versions (so the audit above can fail)."""
    res = run_audit(server, f"pytest-audit-none-{os.getpid()}", "none", seconds=5.0)
    print(f"\nwithout invalidation: {res}")
    assert res["stale"] > 0, res
