"""The near-cache demo (scripts/demo-nearcache.sh runs it): memshelf in
front of Redis, kept coherent by Redis itself.

A memshelf-agent in `tracking` mode is already running for SEGMENT. Four
worker processes read keys through memshelf.redis.NearCache (a hit is a
shared-memory read; a miss is one Redis GET per host, however many
processes miss); this process is the writer: it updates keys with
`redis-cli SET` and notes each acknowledged version in a side segment, so
the workers can count stale reads (a version older than one acknowledged
more than 100 ms before the read).

    python nearcache_demo.py REDIS_PORT SEGMENT [SECONDS]
"""

import multiprocessing as mp
import random
import subprocess
import sys
import time

import redis

import memshelf
from memshelf.redis import NearCache

KEYS = 1000
WORKERS = 4
STALE_MS = 100


def worker(port, segment, acks, stop_at, out):
    near = NearCache(redis.Redis(port=port), memshelf.Cache(segment, capacity="64MiB"))
    notes = memshelf.Cache(acks, capacity="8MiB")
    hot = [1.0 / (i + 1) for i in range(KEYS)]  # Zipf: a few keys are hot
    reads = stale = 0
    while time.time() < stop_at:
        i = random.choices(range(KEYS), hot)[0]
        began = time.time() * 1000
        value = near.get(f"demo:{i}")
        note = notes.get(f"ack:{i}")
        reads += 1
        if value is not None and note is not None:
            acked, at = (int(x) for x in note.split(b":"))
            stale += int(value) < acked and began - at > STALE_MS
    out.put((reads, stale))


def main():
    port, segment = int(sys.argv[1]), sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
    acks = segment + "-acks"
    r = redis.Redis(port=port)
    r.flushall()
    for i in range(KEYS):
        r.set(f"demo:{i}", b"0")
    r.config_resetstat()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    stop_at = time.time() + seconds
    procs = [ctx.Process(target=worker, args=(port, segment, acks, stop_at, out)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    notes = memshelf.Cache(acks, capacity="8MiB")
    version, writes = {}, 0
    while time.time() < stop_at:  # the writer: redis-cli, as any client would
        i = random.randrange(20)  # the hottest keys change most
        version[i] = version.get(i, 0) + 1
        subprocess.run(["redis-cli", "-p", str(port), "SET", f"demo:{i}", str(version[i])],
                       check=True, stdout=subprocess.DEVNULL)
        notes.put(f"ack:{i}", b"%d:%d" % (version[i], int(time.time() * 1000)))
        writes += 1
        time.sleep(0.02)
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    reads = sum(x[0] for x in results)
    stale = sum(x[1] for x in results)
    gets = int(r.info("commandstats").get("cmdstat_get", {}).get("calls", 0))
    s = memshelf.Cache(segment, create=False).stats()
    memshelf.unlink(acks)
    print(f"{WORKERS} workers, {seconds:.0f} s: {reads} reads ({reads / seconds:,.0f}/s), "
          f"{writes} writes with redis-cli")
    print(f"hit ratio {s['hits'] / max(1, s['hits'] + s['misses']):.3f}; "
          f"Redis GETs {gets} (saved {reads - gets} of {reads}, {100 * (reads - gets) / max(1, reads):.1f} %)")
    print(f"stale reads (older than a write acknowledged > {STALE_MS} ms earlier): {stale}")
    print(f"memory: {s['entries']} entries, {s['used_bytes'] / 2**20:.1f} MiB, one copy for the host")
    sys.exit(1 if stale else 0)


if __name__ == "__main__":
    main()
