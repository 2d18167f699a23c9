#!/usr/bin/env python3
"""memshelf from Python: batch calls and codec overhead, in one run.

  get_many   ns per key of get_many(100 keys) against 100 get() calls (the
             same keys, hits, 100 B values): what one call per batch saves
             of Python's per-call cost. Also put_many against put.
  codecs     ns per get/put of a small object with codec="pickle" and
             codec="json", against the raw codec storing the bytes of the
             same object (json.dumps done by the caller, once, outside).

Median of --reps repetitions of --rounds rounds each, GC off while timing.
With --keyspace N (e.g. 100000, in a 256 MiB segment) each round reads a
different batch of --keys random keys out of N loaded ones: lookups then
miss the CPU caches, as in a large cache, and get_many's prefetching shows.
Run it against a release wheel (what users install):

    bash scripts/build-wheels.sh
    python3 -m venv /tmp/mb && /tmp/mb/bin/pip install target/wheels/memshelf-*.whl
    /tmp/mb/bin/python benches/python_batch_codec.py [--json out.json]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import time

import memshelf


def per_op(fn, ops: int, rounds: int, reps: int) -> float:
    """Median over reps of the mean ns per op of `rounds` calls of fn (each
    doing `ops` operations)."""
    out = []
    for _ in range(reps):
        gc.disable()
        t = time.perf_counter_ns()
        for _ in range(rounds):
            fn()
        dt = time.perf_counter_ns() - t
        gc.enable()
        out.append(dt / (rounds * ops))
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--keyspace", type=int, default=0,
                    help="load this many keys and read random batches of --keys of them")
    ap.add_argument("--json")
    a = ap.parse_args()
    name = f"bench-batch-{os.getpid()}"
    c = memshelf.Cache(name, capacity="256MiB" if a.keyspace else "64MiB")
    try:
        space = [f"user:{i:06d}:{i * 7919 % 65536:x}" for i in range(max(a.keys, a.keyspace))]
        keys = space[:a.keys]
        value = os.urandom(100)
        for k in space:
            c.put(k, value)
        get = c.get
        items = {k: value for k in keys}
        rng = random.Random(1)
        batches = [rng.sample(space, a.keys) for _ in range(512)] if a.keyspace else [keys]
        nb = len(batches)
        at = [0]

        def batch() -> list:
            at[0] += 1
            return batches[at[0] % nb]

        def gets() -> None:
            for k in batch():
                get(k)

        def floor() -> None:  # the same loop calling a near no-op builtin
            for k in batch():
                noop(k)

        noop = len

        def many() -> None:
            c.get_many(batch())

        def puts() -> None:
            for k in keys:
                c.put(k, value)

        def put_many() -> None:
            c.put_many(items)

        assert len(c.get_many(keys)) == len(keys)
        n = len(keys)
        res = {
            "loop_and_call_floor_ns": per_op(floor, n, a.rounds, a.reps),
            "get_ns_per_key": per_op(gets, n, a.rounds, a.reps),
            "get_many_ns_per_key": per_op(many, n, a.rounds, a.reps),
            "put_ns_per_key": per_op(puts, n, a.rounds // 4, a.reps),
            "put_many_ns_per_key": per_op(put_many, n, a.rounds // 4, a.reps),
        }
        res["get_many_speedup"] = res["get_ns_per_key"] / res["get_many_ns_per_key"]
        res["put_many_speedup"] = res["put_ns_per_key"] / res["put_many_ns_per_key"]

        obj = {"id": 42, "name": "Ada Lovelace", "tags": ["math", "engines"], "score": 9.5, "active": True}
        raw_bytes = json.dumps(obj).encode()
        codecs = {"raw": None, "pickle": "pickle", "json": "json"}
        for label, codec in codecs.items():
            cc = memshelf.Cache(name, codec=codec)
            v = raw_bytes if codec is None else obj
            cc.put("obj", v)
            g, p = cc.get, cc.put
            res[f"{label}_get_ns"] = per_op(lambda: [g("obj") for _ in range(100)], 100, a.rounds // 2, a.reps)
            res[f"{label}_put_ns"] = per_op(lambda: [p("obj", v) for _ in range(100)], 100, a.rounds // 2, a.reps)
    finally:
        c.close()
        memshelf.unlink(name)

    space = f", random batches out of {a.keyspace:,} keys" if a.keyspace else ""
    print(f"{a.keys} keys of 100 B{space}, hits; median of {a.reps} reps")
    print(f"  len() x{a.keys}      {res['loop_and_call_floor_ns']:8.0f} ns/key   (loop + call floor)")
    print(f"  get x{a.keys}        {res['get_ns_per_key']:8.0f} ns/key")
    print(f"  get_many({a.keys})    {res['get_many_ns_per_key']:8.0f} ns/key   {res['get_many_speedup']:.1f}x")
    print(f"  put x{a.keys}        {res['put_ns_per_key']:8.0f} ns/key")
    print(f"  put_many({a.keys})    {res['put_many_ns_per_key']:8.0f} ns/key   {res['put_many_speedup']:.1f}x")
    print(f"codec overhead, a {len(raw_bytes)} B JSON-able dict (raw stores its JSON bytes)")
    for label in codecs:
        print(f"  {label:7s} get {res[label + '_get_ns']:7.0f} ns   put {res[label + '_put_ns']:7.0f} ns")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
