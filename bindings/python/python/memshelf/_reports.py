"""The dicts ``Cache.stats()``, ``Cache.dump()`` and ``Cache.load()`` return
(typed; the engine computes every value, the binding only converts)."""

from __future__ import annotations

from typing import Optional, TypedDict


class Stats(TypedDict):
    """Segment-wide statistics (every process), as ``Cache.stats()`` returns."""

    capacity_bytes: int
    used_bytes: int
    data_bytes: int
    entries: int
    ghosts: int
    index_slots: int
    hits: int
    misses: int
    inserts: int
    updates: int
    deletes: int
    evictions: int
    expirations: int
    get_or_set_waits: int
    promotions: int
    moved_to_main: int
    reinsertions: int
    ghost_hits: int
    lock_takeovers: int
    lease_takeovers: int
    max_value_size: int
    layout_version: int
    #: Sampled gets (one in 64 per thread) and writes in the histograms.
    get_samples: int
    put_samples: int
    #: Sampled latency quantiles in ns (upper bounds of log2 buckets), None
    #: before any sample.
    get_p50_ns: Optional[int]
    get_p99_ns: Optional[int]
    put_p50_ns: Optional[int]
    put_p99_ns: Optional[int]
    #: The sampled histograms: entry b counts samples in [2**(b-1), 2**b) ns.
    get_latency_buckets: list[int]
    put_latency_buckets: list[int]
    #: The hottest key's share of the sampled hits (0-1).
    hot_key_share: float


class DumpReport(TypedDict):
    """What ``Cache.dump()`` wrote."""

    entries: int
    bytes: int
    #: Listed keys gone (deleted, expired, evicted) by the time they were read.
    vanished: int


class LoadReport(TypedDict):
    """What ``Cache.load()`` did."""

    records: int
    loaded: int
    expired: int
    kept_newer: int
    rejected: int
    #: Records the dump announces; None when its writer did not finish.
    expected: Optional[int]
    skipped: int
    #: Whether the dump was read to its announced end with nothing amiss.
    complete: bool
    #: Why the valid prefix ends early ("truncated at byte N"...), if it does.
    problem: Optional[str]
