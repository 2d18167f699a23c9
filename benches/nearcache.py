"""Near-cache benchmark: a Zipf read workload from several processes of one
host against a local redis-server, three ways:

  memshelf   memshelf.redis.NearCache (one shared segment for the host)
  redis-csc  redis-py's client-side cache (protocol=3, cache_config=
             CacheConfig(max_size=...), one cache per process)
  plain      plain redis-py (every read is a Redis GET)

Reports, per mode: reads/s (all processes), Redis GETs/s issued (origin
load), the share of reads served without a GET (hit ratio), read latency
p50/p99 (one read in 8 timed), the entries the caches hold and their bytes
(memshelf: the segment's entries and used_bytes, one copy for the host;
redis-csc: summed over the processes' private caches, keys plus values
only, Python object overhead not counted).

    python benches/nearcache.py [--procs 8] [--keys 10000] [--seconds 8]

Needs memshelf (a release wheel: scripts/test-python.sh leaves one in
target/py-wheel-venv) and redis-py >= 5.1 in that Python, and redis-server
on PATH. Not a test: numbers depend on the machine (2 shared cores here, so
8 readers plus redis-server are CPU-bound and latencies include queueing).
"""

from __future__ import annotations

import argparse
import bisect
import multiprocessing as mp
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import memshelf
import redis
from memshelf.redis import NearCache
from redis.cache import CacheConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(tmp: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", tmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port).ping():
                return proc, port
        except redis.ConnectionError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit("redis-server did not start")


def allow_csc_on(version: str) -> str:
    """redis-py refuses client-side caching below Redis 7.4 ("to maximize
    compatibility"), though 6.0+ has the RESP3 CLIENT TRACKING it uses.
    Debian's redis-server here is 7.0: lower the gate for this benchmark."""
    from redis.connection import CacheProxyConnection

    if tuple(int(x) for x in version.split(".")[:2]) < (7, 4):
        CacheProxyConnection.MIN_ALLOWED_VERSION = version
        return f" (redis-py's 7.4 gate for client-side caching lowered to {version})"
    return ""


def zipf_cdf(n: int, s: float) -> list[float]:
    weights = [1 / (i + 1) ** s for i in range(n)]
    total, acc, out = sum(weights), 0.0, []
    for w in weights:
        acc += w
        out.append(acc / total)
    return out


def reader(mode: str, port: int, seg: str, nkeys: int, seconds: float, seed: int, start_at: float, q: "mp.Queue[tuple[int, list[int], tuple[int, int]]]") -> None:
    cdf = zipf_cdf(nkeys, 1.0)
    rng = random.Random(seed)
    # Ranks are shuffled so the hot keys are spread over the key space.
    names = [f"key:{i}" for i in range(nkeys)]
    random.Random(7).shuffle(names)
    samples = [names[bisect.bisect_left(cdf, rng.random())] for _ in range(200_000)]
    if mode == "redis-csc":
        client = redis.Redis(port=port, protocol=3, cache_config=CacheConfig(max_size=nkeys))
    else:
        client = redis.Redis(port=port)
    client.ping()  # connect before the clock starts
    if mode == "memshelf":
        get = NearCache(client, memshelf.Cache(seg, create=False), default_ttl=300).get
    else:
        get = client.get
    while time.time() < start_at:
        time.sleep(0.001)
    lat: list[int] = []
    n = 0
    end = time.perf_counter() + seconds
    clock = time.perf_counter_ns
    m = len(samples)
    while True:
        for _ in range(256):
            k = samples[n % m]
            if n & 7 == 0:
                t0 = clock()
                v = get(k)
                lat.append(clock() - t0)
            else:
                v = get(k)
            if v is None:
                raise SystemExit(f"{mode}: {k} missing")
            n += 1
        if time.perf_counter() >= end:
            break
    entries = payload = 0
    if mode == "redis-csc":
        csc = client.get_cache()
        assert csc is not None
        for key, entry in list(csc.collection.items()):
            entries += 1
            payload += sum(len(k) for k in key.redis_keys) + len(entry.cache_value)
    q.put((n, lat, (entries, payload)))


def pct(sorted_ns: list[int], p: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(p * len(sorted_ns)))] / 1000


def run(mode: str, port: int, nkeys: int, procs: int, seconds: float) -> dict[str, float]:
    r = redis.Redis(port=port)
    seg = f"bench-nearcache-{os.getpid()}"
    cache = memshelf.Cache(seg, capacity="64MiB") if mode == "memshelf" else None
    r.config_resetstat()
    ctx = mp.get_context("fork")
    q: "mp.Queue[tuple[int, list[int], tuple[int, int]]]" = ctx.Queue()
    start_at = time.time() + 1.5
    ps = [ctx.Process(target=reader, args=(mode, port, seg, nkeys, seconds, i, start_at, q)) for i in range(procs)]
    for p in ps:
        p.start()
    results = [q.get() for _ in ps]
    for p in ps:
        p.join()
    stats = r.info("commandstats")
    gets = int(stats.get("cmdstat_get", {}).get("calls", 0))
    reads = sum(n for n, _, _ in results)
    lat = sorted(x for _, l, _ in results for x in l)
    if mode == "memshelf":
        assert cache is not None
        st = cache.stats()
        entries, mem = st["entries"], st["used_bytes"]
        cache.close()
        memshelf.unlink(seg)
    else:
        entries = sum(m[0] for _, _, m in results)
        mem = sum(m[1] for _, _, m in results)
    return {
        "reads_s": reads / seconds,
        "gets_s": gets / seconds,
        "hit": 1 - gets / reads,
        "p50": pct(lat, 0.50),
        "p99": pct(lat, 0.99),
        "entries": entries,
        "mem": mem,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--modes", default="memshelf,redis-csc,plain")
    a = ap.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not on PATH")
    tmp = tempfile.mkdtemp(prefix="bench-nearcache-")
    proc, port = start_redis(tmp)
    try:
        r = redis.Redis(port=port)
        rng = random.Random(1)
        pipe = r.pipeline(transaction=False)
        for i in range(a.keys):
            pipe.set(f"key:{i}", rng.randbytes(rng.randint(100, 200)), ex=3600)
        pipe.execute()
        version = r.info()["redis_version"]
        note = allow_csc_on(version)
        print(f"{a.keys} keys (100-200 B, TTL 1 h), Zipf s=1.0, {a.procs} reader processes, "
              f"{a.seconds:g} s per mode, redis-server {version}{note}, "
              f"redis-py {redis.__version__}, memshelf {memshelf.__version__}, {os.cpu_count()} CPUs")
        print(f"{'mode':<10} {'reads/s':>10} {'Redis GET/s':>12} {'hit ratio':>10} "
              f"{'p50 us':>8} {'p99 us':>8} {'entries held':>13} {'cache bytes':>12}")
        for mode in a.modes.split(","):
            m = run(mode, port, a.keys, a.procs, a.seconds)
            mem = "-" if mode == "plain" else f"{m['mem'] / 2**20:.2f} MiB"
            print(f"{mode:<10} {m['reads_s']:>10,.0f} {m['gets_s']:>12,.0f} {m['hit']:>10.4f} "
                  f"{m['p50']:>8.1f} {m['p99']:>8.1f} {m['entries']:>13,} {mem:>12}", flush=True)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
