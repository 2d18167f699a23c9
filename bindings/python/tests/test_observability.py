"""Sampled latency, hot keys, dump and load (SPEC 5 and 8) from Python."""

import os
import uuid

import pytest

import memshelf


def test_hot_keys_and_share(cache):
    cache.put("hot", b"1")
    cache.put(b"cold", b"2")
    for _ in range(10_000):
        cache.get("hot")
    cache.get("cold")
    hot = cache.hot_keys(1)
    assert len(hot) == 1
    key, count = hot[0]
    assert key == b"hot" and isinstance(count, int) and count > 0
    every = cache.hot_keys()
    assert 1 <= len(every) <= 10
    assert all(isinstance(k, bytes) and isinstance(c, int) for k, c in every)
    assert [c for _, c in every] == sorted((c for _, c in every), reverse=True)
    assert cache.hot_keys(n=0) == []
    s = cache.stats()
    assert isinstance(s["hot_key_share"], float) and 0.9 < s["hot_key_share"] <= 1.0
    cache.delete("hot")
    assert b"hot" not in [k for k, _ in cache.hot_keys(10)]


def test_latency_in_stats(name):
    c = memshelf.Cache(name, capacity="4MiB")
    s = c.stats()
    for op in ("get", "put"):
        assert s[f"{op}_p50_ns"] is None and s[f"{op}_p99_ns"] is None
        assert s[f"{op}_latency_buckets"] == [0] * 32 and s[f"{op}_samples"] == 0
    assert s["hot_key_share"] == 0.0
    # Puts, then gets (the engine samples about one get and one put in 64
    # per thread, at random intervals of 32-95 of each kind).
    for i in range(1000):
        c.put(f"k{i}", b"v")
    for i in range(1000):
        c.get(f"k{i}")
    s = c.stats()
    for op in ("get", "put"):
        p50, p99 = s[f"{op}_p50_ns"], s[f"{op}_p99_ns"]
        assert isinstance(p50, int) and isinstance(p99, int) and 0 < p50 <= p99
        # Bucket upper bounds: powers of two.
        assert p50 & (p50 - 1) == 0 and p99 & (p99 - 1) == 0
        buckets = s[f"{op}_latency_buckets"]
        assert len(buckets) == 32 and sum(buckets) == s[f"{op}_samples"] >= 1000 // 96  # one sample per 32-95 ops
    # The existing keys stay.
    assert s["hits"] >= 1000 and s["inserts"] >= 1000
    c.close()
    with pytest.raises(memshelf.ClosedError):
        c.hot_keys()


def test_dump_and_load_across_capacities(cache, tmp_path):
    cache.put("a", b"1", ttl=300)
    cache.put(b"\xffb", b"2" * 1000)
    path = tmp_path / "seg.dump"
    d = cache.dump(path)
    assert d == {"entries": 2, "bytes": path.stat().st_size, "vanished": 0}
    other = f"py-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        o = memshelf.Cache(other, capacity="16MiB")
        o.put("a", b"newer")
        r = o.load(str(path))
        assert r == {
            "records": 2, "loaded": 1, "expired": 0, "kept_newer": 1, "rejected": 0,
            "expected": 2, "skipped": 0, "complete": True, "problem": None,
        }
        assert o.get("a") == b"newer" and o.get(b"\xffb") == b"2" * 1000
        o.clear()
        assert o.load(path)["loaded"] == 2
        remaining = o.ttl("a")
        assert remaining is not None and 290 < remaining <= 300

        cut = tmp_path / "cut.dump"
        cut.write_bytes(path.read_bytes()[: path.stat().st_size - 10])
        o.clear()
        r = o.load(cut)
        assert not r["complete"] and isinstance(r["problem"], str) and "truncated" in r["problem"]
        assert r["expected"] == 2 and r["records"] == 1 and r["skipped"] == 1 and r["loaded"] == 1
        with pytest.raises(memshelf.IOFailure):
            o.load(tmp_path / "missing.dump")
        o.close()
    finally:
        memshelf.unlink(other)
