//! Segment-wide statistics: the `Counter`s, `Engine::count` (adding to
//! one) and `entry_removed`, and the `Stats` snapshot built from them.
//! Counters are striped over 64 cache lines (each thread adds to its own
//! stripe), so no single line bounces between cores on every get; `stats()`
//! sums the stripes. Called by every engine module (to count) and by
//! `cache.rs` (`collect`, `reset_entries`); calls only `engine.rs`.

use std::sync::atomic::Ordering;

use crate::engine::Engine;
use crate::index::{KIND_GHOST, Slot};
use crate::layout::SLOTS;
use crate::layout::{LAYOUT_VERSION, NCOUNTERS, NSTRIPES};
use crate::sys;

/// Segment-wide counters (striped, see the module comment).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Counter {
    Hits = 0,
    Misses,
    Inserts,
    Updates,
    Deletes,
    Evictions,
    Expirations,
    GetOrSetWaits,
    Promotions,
    Reinsertions,
    LockTakeovers,
    LeaseTakeovers,
    GhostHits,
    MovedToMain,
    /// Entries of the current clear epoch that left the index (deleted,
    /// evicted, expired, invalidated, replaced while dead): `stats.rs`
    /// derives the live `entries` from it and `Inserts`.
    EntriesRemoved,
    /// Hits sampled for the hot-key table (`sampling.rs`).
    SampledHits,
}
const _: () = assert!((Counter::SampledHits as usize) < NCOUNTERS);

impl Engine {
    /// The statistics stripe (of `NSTRIPES`) this thread of this handle
    /// adds to: the handle's base, handed out by the segment one handle at
    /// a time (`Header::stripe_next`, taken again in a forked child), plus
    /// 17 per thread of the process (17 is odd: the 64 threads of one
    /// handle get 64 different stripes). Single-threaded processes, the
    /// usual worker, share no stripe until there are more than 64 of them;
    /// before, a random stripe per thread made two of 16 processes share
    /// one most of the time, and every child of a pre-fork server shared
    /// the stripe its parent's thread had picked.
    #[inline(always)]
    pub fn stripe(&self) -> u32 {
        // A base is stored only by `new_stripe_base`, after `fork_epoch`
        // installed the fork handler: comparing with the bare epoch is then
        // exact (and 0, no base yet, never matches an epoch).
        let st = self.stripe_base.load(Ordering::Relaxed);
        let base = if st >> 32 == u64::from(sys::fork_epoch_now()) {
            st as u32
        } else {
            self.new_stripe_base()
        };
        (base.wrapping_add(sys::thread_ordinal().wrapping_mul(17))) % NSTRIPES as u32
    }

    #[cold]
    #[inline(never)]
    fn new_stripe_base(&self) -> u32 {
        let epoch = sys::fork_epoch();
        let base = self
            .seg
            .header_word(memoffset::offset_of!(crate::layout::Header, stripe_next))
            .fetch_add(1, Ordering::Relaxed) as u32
            % NSTRIPES as u32;
        self.stripe_base.store(
            (u64::from(epoch) << 32) | u64::from(base),
            Ordering::Relaxed,
        );
        base
    }

    #[inline]
    pub fn count(&self, c: Counter, n: u64) {
        self.seg
            .counter(self.stripe(), c as usize)
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Counts an entry (an item of clear epoch `epoch`) leaving the index;
    /// items of an older epoch were forgotten by `clear` already.
    pub fn entry_removed(&self, epoch: u64) {
        if epoch == self.seg.clear_epoch().load(Ordering::Relaxed) {
            self.count(Counter::EntriesRemoved, 1);
        }
    }
}

/// A snapshot of a segment's statistics. Counters are monotonic for the
/// segment's life and cover every process.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Bytes of the segment.
    pub capacity_bytes: u64,
    /// Bytes of the logs holding items (live or not yet reclaimed).
    pub used_bytes: u64,
    /// Bytes available to items (both logs).
    pub data_bytes: u64,
    /// Live entries (0 after `clear()`; an expired entry counts until it is
    /// reclaimed). Read from counters, never by scanning the index.
    pub entries: u64,
    /// Index slots holding a ghost (a recently evicted key), estimated from
    /// a sample of buckets.
    pub ghosts: u64,
    /// Index slots in all.
    pub index_slots: u64,
    /// Gets that found a live entry.
    pub hits: u64,
    /// Gets that found none.
    pub misses: u64,
    /// Puts of a key that had no live entry.
    pub inserts: u64,
    /// Puts that replaced a live entry.
    pub updates: u64,
    /// Deletes that removed a live entry.
    pub deletes: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Entries dropped because their TTL passed.
    pub expirations: u64,
    /// `get_or_set` calls that waited for another caller's factory.
    pub get_or_set_waits: u64,
    /// Items moved from the small to the main log (hit while small).
    pub promotions: u64,
    /// Items moved from the small to the main log without a hit, because
    /// the main log had room (the cache was not yet full, or after a clear).
    pub moved_to_main: u64,
    /// Items kept in the main log at its tail (hit since insertion).
    pub reinsertions: u64,
    /// Inserts that found their key's ghost (went straight to main).
    pub ghost_hits: u64,
    /// Bucket locks taken over from a dead (or stalled) holder.
    pub lock_takeovers: u64,
    /// get_or_set leases taken over from a dead or late leader.
    pub lease_takeovers: u64,
    /// Largest value accepted.
    pub max_value_size: u64,
    /// Layout version of the segment.
    pub layout_version: u32,
    /// Sampled latency of `get` (one in 64 per thread), log2 buckets of ns.
    pub get_latency: crate::Histogram,
    /// Sampled latency of writes (`put`, `add`, `incr`, fills...).
    pub put_latency: crate::Histogram,
    /// The hottest key's share of the sampled hits (0-1): hot-key skew.
    pub hot_key_share: f64,
}

impl Stats {
    /// Every statistic as `(name, value)`, with the SPEC's names, in a fixed
    /// order: what the bindings and the CLI expose.
    pub fn fields(&self) -> [(&'static str, u64); 22] {
        [
            ("capacity_bytes", self.capacity_bytes),
            ("used_bytes", self.used_bytes),
            ("data_bytes", self.data_bytes),
            ("entries", self.entries),
            ("ghosts", self.ghosts),
            ("index_slots", self.index_slots),
            ("hits", self.hits),
            ("misses", self.misses),
            ("inserts", self.inserts),
            ("updates", self.updates),
            ("deletes", self.deletes),
            ("evictions", self.evictions),
            ("expirations", self.expirations),
            ("get_or_set_waits", self.get_or_set_waits),
            ("promotions", self.promotions),
            ("moved_to_main", self.moved_to_main),
            ("reinsertions", self.reinsertions),
            ("ghost_hits", self.ghost_hits),
            ("lock_takeovers", self.lock_takeovers),
            ("lease_takeovers", self.lease_takeovers),
            ("max_value_size", self.max_value_size),
            ("layout_version", u64::from(self.layout_version)),
        ]
    }
}

/// Buckets sampled to estimate the ghost count.
const GHOST_SAMPLE: u64 = 64;

fn sum(e: &Engine, c: Counter) -> u64 {
    (0..NSTRIPES as u32)
        .map(|s| e.seg.counter(s, c as usize).load(Ordering::Relaxed))
        .fold(0u64, u64::wrapping_add)
}

fn entries_base(e: &Engine) -> &std::sync::atomic::AtomicU64 {
    e.seg
        .header_word(memoffset::offset_of!(crate::layout::Header, entries_base))
}

/// Live entries: inserts minus entries removed, less both at the last clear.
/// Maintained by the striped counters (no shared line on the write path);
/// an entry that expired but was not yet reaped still counts.
fn live_count(e: &Engine) -> u64 {
    let now = sum(e, Counter::Inserts).wrapping_sub(sum(e, Counter::EntriesRemoved));
    let n = now.wrapping_sub(entries_base(e).load(Ordering::Acquire)) as i64;
    n.max(0) as u64
}

/// Called by `clear()`: every entry is gone.
pub(crate) fn reset_entries(e: &Engine) {
    let now = sum(e, Counter::Inserts).wrapping_sub(sum(e, Counter::EntriesRemoved));
    entries_base(e).store(now, Ordering::Release);
}

pub(crate) fn collect(e: &Engine) -> Stats {
    let seg = &e.seg;
    let sum = |c: Counter| sum(e, c);
    let entries = live_count(e).min(seg.g.index_slots());
    // Ghosts are estimated from a sample of buckets (never a full scan:
    // `stats()` runs on every metrics scrape).
    let sample = seg.g.nbuckets.min(GHOST_SAMPLE);
    let step = seg.g.nbuckets / sample;
    let mut ghosts = 0;
    for b in 0..sample {
        for i in SLOTS.clone() {
            if Slot(seg.bucket_word_at(b * step, i).load(Ordering::Relaxed)).kind() == KIND_GHOST {
                ghosts += 1;
            }
        }
    }
    let ghosts = ghosts * (seg.g.nbuckets / sample);
    let used = [&seg.small, &seg.main]
        .iter()
        .map(|l| {
            let h = seg.head(l).load(Ordering::Relaxed);
            let t = seg.tail(l).load(Ordering::Relaxed);
            l.dist(h, t).min(l.len)
        })
        .sum();
    Stats {
        capacity_bytes: seg.g.capacity,
        used_bytes: used,
        data_bytes: seg.small.len + seg.main.len,
        entries,
        ghosts,
        index_slots: seg.g.index_slots(),
        hits: sum(Counter::Hits),
        misses: sum(Counter::Misses),
        inserts: sum(Counter::Inserts),
        updates: sum(Counter::Updates),
        deletes: sum(Counter::Deletes),
        evictions: sum(Counter::Evictions),
        expirations: sum(Counter::Expirations),
        get_or_set_waits: sum(Counter::GetOrSetWaits),
        promotions: sum(Counter::Promotions),
        moved_to_main: sum(Counter::MovedToMain),
        reinsertions: sum(Counter::Reinsertions),
        ghost_hits: sum(Counter::GhostHits),
        lock_takeovers: sum(Counter::LockTakeovers),
        lease_takeovers: sum(Counter::LeaseTakeovers),
        max_value_size: seg.g.max_value_size,
        layout_version: LAYOUT_VERSION,
        get_latency: e.histogram(crate::sampling::Op::Get),
        put_latency: e.histogram(crate::sampling::Op::Put),
        hot_key_share: e.hot_key_share(sum(Counter::SampledHits)),
    }
}
