#!/usr/bin/env python3
"""memshelf `get` from Python by value size: what the copy costs.

For each value size (default 100 B, 4 KiB, 64 KiB, 1 MiB), --keys keys are
loaded into a fresh segment and read in random order; the figure is the
median over --reps repetitions of the mean ns per get, GC off while
timing, and the same reads as `get_many` batches of 64 keys (ns per
key). Beside them, in the same run: `bytes(m)` of a memoryview over a
buffer of the same size (one memcpy into a new bytes object: the floor any
get that returns a new `bytes` pays).

A get copies the value straight from the segment into the new `bytes`
(one copy, `ValueSink`; `get_many` too, through `get_many_into`); before,
it copied into a buffer and `bytes` copied it again. Compare two wheels by running this script with each, alternately:

    bash scripts/build-wheels.sh
    python3 -m venv /tmp/vs && /tmp/vs/bin/pip install target/wheels/memshelf-*.whl
    /tmp/vs/bin/python benches/python_value_size.py [--json out.json]
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


def per_op(fn, ops: int, reps: int) -> float:
    out = []
    for _ in range(reps):
        gc.disable()
        t = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t) / ops)
        gc.enable()
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,4096,65536,1048576")
    ap.add_argument("--keys", type=int, default=64)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--json")
    a = ap.parse_args()
    rows = []
    for size in (int(s) for s in a.sizes.split(",")):
        name = f"bench-vs-{os.getpid()}-{size}"
        cap = max(64 << 20, 4 * a.keys * (size + 256))
        c = memshelf.Cache(name, capacity=cap)
        try:
            keys = [f"k:{i}" for i in range(a.keys)]
            for k in keys:
                c.put(k, os.urandom(size))
            order = [random.choice(keys) for _ in range(max(256, 4096 * 100 // size))]
            get = c.get

            def gets() -> None:
                for k in order:
                    get(k)

            get_many = c.get_many
            batches = [order[i:i + 64] for i in range(0, len(order), 64)]

            def batched() -> None:
                for b in batches:
                    get_many(b)

            view = memoryview(bytearray(os.urandom(size)))

            def copies() -> None:
                for _ in order:
                    bytes(view)

            gets()
            g = per_op(gets, len(order), a.reps)
            m = per_op(batched, len(order), a.reps)
            b = per_op(copies, len(order), a.reps)
            rows.append({"size": size, "get_ns": g, "get_many_ns": m, "bytes_copy_ns": b})
            print(f"{size:>8} B  get {g:>10.0f} ns   get_many {m:>10.0f} ns/key   "
                  f"bytes(memoryview) {b:>10.0f} ns   get/copy {g / b:5.2f}")
        finally:
            c.close()
            memshelf.unlink(name)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"memshelf": memshelf.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
