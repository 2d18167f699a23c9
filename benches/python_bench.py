#!/usr/bin/env python3
"""memshelf from Python against a dict, py-lmdb and Redis, in one run.

Loads N keys (16-24 B: 'user:000123:' plus 4-12 hex chars) with 100 B
values into every target, then measures on hits:

  GET p50   single process; ops timed in batches of --batch ops (per-op
            figure = batch time / batch), p50 over all batches of a
            repetition, median over --reps repetitions; keys in a fixed
            random order (uniform over the N keys);
  SET       mean ns per overwrite (same method, new 100 B values);
  GET x P   aggregate GET ops/s of P 'spawn' worker processes that each
            open their own handle, start together and run for --duration s.

Every target is called the way a user calls it, through the bound method
(`c.get(k)`, `d.get(k)`, `txn.get(k)` in a read transaction per op for LMDB,
one request per op for Redis over a unix socket, no pipelining). The GC is
off while timing. Redis is started here (`redis-server` on a unix socket in a
temp dir, no persistence) when `redis-server` and the `redis` package exist;
LMDB is measured when `lmdb` is importable; otherwise their rows say why not.

    .venv/bin/python benches/python_bench.py                 # 100k keys
    .venv/bin/python benches/python_bench.py -n 100000 --reps 5 -p 2 --json out.json

The Python figures include the interpreter's call overhead (~20-40 ns); the
"loop overhead" line is the same loop calling a no-op builtin.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import random
import uuid

import memshelf


def make_keys(n: int) -> list[bytes]:
    keys = []
    for i in range(n):
        h = hashlib.sha256(str(i).encode()).hexdigest()
        keys.append(f"user:{i:06d}:{h[: 4 + i % 9]}".encode())
    return keys


def make_value(i: int, gen: int, size: int) -> bytes:
    return hashlib.blake2b(f"{gen}:{i}".encode(), digest_size=64).digest() * (size // 64 + 1)


# ------------------------------------------------------------- targets ----
# Each opener returns (get, set, close) bound to a fresh handle; it runs in
# the parent and in every worker process.


def open_dict(spec):
    d = {}
    return d.get, d.__setitem__, lambda: None


def open_memshelf(spec):
    c = memshelf.Cache(spec["name"], spec["capacity"])
    return c.get, c.put, c.close


def open_lmdb(spec):
    import lmdb

    env = lmdb.open(spec["dir"], map_size=spec["map_size"], sync=False, metasync=False,
                    max_readers=64, lock=True)
    begin = env.begin

    def get(k):
        with begin() as txn:
            return txn.get(k)

    def put(k, v):
        with begin(write=True) as txn:
            txn.put(k, v)

    return get, put, env.close


def open_redis(spec):
    import redis

    r = redis.Redis(unix_socket_path=spec["sock"])
    return r.get, r.set, r.close


OPENERS = {"dict": open_dict, "memshelf": open_memshelf, "lmdb": open_lmdb, "redis-unix": open_redis}


# -------------------------------------------------------------- timing ----
def time_batches(fn, keys, order, batch, values=None):
    """Per-op ns of each batch of `batch` ops, calling fn(key) (or fn(key, value))."""
    per_op = []
    clock = time.perf_counter_ns
    seq = [keys[i] for i in order]
    gc.collect()
    gc.disable()
    try:
        if values is None:
            for s in range(0, len(seq) - batch + 1, batch):
                chunk = seq[s : s + batch]
                t0 = clock()
                for k in chunk:
                    fn(k)
                per_op.append((clock() - t0) / batch)
        else:
            vals = [values[i] for i in order]
            for s in range(0, len(seq) - batch + 1, batch):
                chunk = seq[s : s + batch]
                vchunk = vals[s : s + batch]
                t0 = clock()
                for k, v in zip(chunk, vchunk):
                    fn(k, v)
                per_op.append((clock() - t0) / batch)
    finally:
        gc.enable()
    return per_op


def throughput_worker(target, spec, keys, order, start_at, duration, q):
    get, _, close = OPENERS[target](spec)
    seq = [keys[i] for i in order]
    for k in seq[:2000]:  # warm up
        get(k)
    while time.time() < start_at:
        time.sleep(0.0005)
    ops = 0
    t0 = time.perf_counter()
    end = t0 + duration
    n = len(seq)
    i = 0
    while True:
        chunk = seq[i : i + 256]
        for k in chunk:
            get(k)
        ops += len(chunk)
        i = (i + 256) % n
        if time.perf_counter() >= end:
            break
    q.put(ops / (time.perf_counter() - t0))
    close()


def throughput(target, spec, keys, order, procs, duration):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 2.0 + 0.3 * procs
    ps = [ctx.Process(target=throughput_worker,
                      args=(target, spec, keys, order[i::procs], start_at, duration, q))
          for i in range(procs)]
    for p in ps:
        p.start()
    rates = [q.get(timeout=120) for _ in ps]
    for p in ps:
        p.join()
    return sum(rates)


# ---------------------------------------------------------------- main ----
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--keys", type=int, default=100_000)
    ap.add_argument("-m", "--ops", type=int, default=200_000, help="ops per GET repetition")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("-p", "--procs", type=int, default=2, help="throughput workers (0: skip)")
    ap.add_argument("--duration", type=float, default=1.5)
    ap.add_argument("--targets", default="dict,memshelf,lmdb,redis-unix")
    ap.add_argument("--json", help="write every figure to this file")
    args = ap.parse_args()

    keys = make_keys(args.keys)
    values = [make_value(i, 0, args.value_size)[: args.value_size] for i in range(args.keys)]
    values2 = [make_value(i, 1, args.value_size)[: args.value_size] for i in range(args.keys)]
    rng = random.Random(42)
    order = [rng.randrange(args.keys) for _ in range(args.ops)]
    tmp = tempfile.mkdtemp(prefix="memshelf-pybench-")
    name = f"pybench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    redis_proc = None
    results = {}
    try:
        specs = {}
        for t in args.targets.split(","):
            try:
                if t == "dict":
                    specs[t] = {}
                elif t == "memshelf":
                    cap = max(64 << 20, 4 * args.keys * (24 + args.value_size + 64))
                    specs[t] = {"name": name, "capacity": cap}
                elif t == "lmdb":
                    import lmdb  # noqa: F401

                    specs[t] = {"dir": os.path.join(tmp, "lmdb"),
                                "map_size": max(1 << 30, 8 * args.keys * (args.value_size + 64))}
                elif t == "redis-unix":
                    import redis  # noqa: F401

                    if not shutil.which("redis-server"):
                        raise RuntimeError("redis-server not installed")
                    sock = os.path.join(tmp, "redis.sock")
                    redis_proc = subprocess.Popen(
                        ["redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
                         "--appendonly", "no", "--dir", tmp],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    deadline = time.monotonic() + 10
                    while not os.path.exists(sock) and time.monotonic() < deadline:
                        time.sleep(0.01)
                    specs[t] = {"sock": sock}
                else:
                    raise RuntimeError("unknown target")
            except Exception as e:  # noqa: BLE001
                results[t] = {"unavailable": f"{type(e).__name__}: {e}"}

        # the loop and call overhead alone
        noop = {}.get
        loop_ns = statistics.median(
            statistics.median(time_batches(noop, keys, order, args.batch)) for _ in range(3))

        for t, spec in specs.items():
            get, put, close = OPENERS[t](spec)
            for k, v in zip(keys, values):
                put(k, v)
            for i in range(0, args.keys, max(1, args.keys // 2000)):
                if get(keys[i]) != values[i]:
                    raise SystemExit(f"{t}: key {keys[i]!r} missing or wrong after load")
            time_batches(get, keys, order[:20_000], args.batch)  # warm up
            p50s, means = [], []
            for _ in range(args.reps):
                per = time_batches(get, keys, order, args.batch)
                p50s.append(statistics.median(per))
                means.append(statistics.fmean(per))
            set_ns = statistics.median(
                statistics.fmean(time_batches(put, keys, order[: args.ops // 2], args.batch,
                                              values2 if r % 2 == 0 else values))
                for r in range(3))
            r = {"get_p50_ns": statistics.median(p50s), "get_mean_ns": statistics.median(means),
                 "set_ns": set_ns, "get_p50_reps": p50s}
            if args.procs and t != "dict":
                r["get_ops_s"] = throughput(t, spec, keys, order, args.procs, args.duration)
            results[t] = r
            close()
            print(f"# {t}: done", file=sys.stderr)
    finally:
        if redis_proc:
            redis_proc.terminate()
            redis_proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            memshelf.unlink(name)
        except memshelf.SegmentNotFound:
            pass

    load = os.getloadavg()
    print(f"\n{args.keys} keys of 16-24 B, {args.value_size} B values, hits, uniform keys; "
          f"batches of {args.batch}, median of {args.reps} reps; {args.procs} procs for throughput; "
          f"loadavg {load[0]:.2f}; loop overhead {loop_ns:.0f} ns/op (included below)\n")
    print(f"| target | GET p50 ns | GET mean ns | SET ns/op | GET ops/s x{args.procs} procs |")
    print("|---|--:|--:|--:|--:|")
    for t, r in results.items():
        if "unavailable" in r:
            print(f"| {t} | unavailable: {r['unavailable']} | | | |")
            continue
        tp = f"{r['get_ops_s']:,.0f}" if "get_ops_s" in r else "n/a"
        print(f"| {t} | {r['get_p50_ns']:.0f} | {r['get_mean_ns']:.0f} | {r['set_ns']:.0f} | {tp} |")
    ms = results.get("memshelf", {})
    if "get_p50_ns" in ms:
        print()
        for t in ("dict", "lmdb", "redis-unix"):
            if "get_p50_ns" in results.get(t, {}):
                ratio = ms["get_p50_ns"] / results[t]["get_p50_ns"]
                print(f"memshelf GET p50 / {t} GET p50 = {ratio:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "loop_ns": loop_ns, "loadavg": load, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
