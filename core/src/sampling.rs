//! Sampled latency histograms and hot-key sampling (SPEC 5).
//!
//! One `get` and one `put` in `SAMPLE_EVERY` on average (per thread, at a
//! random interval of 32-95 so no periodic workload hides) is timed and its
//! duration added to a log2 histogram (bucket `b` counts durations in
//! `[2^(b-1), 2^b)` ns) in one of 8 histogram stripes (the thread's), so no cache line
//! is shared by every process on every operation; the other operations pay
//! one thread-local decrement. A sampled hit also feeds the hot-key table:
//! 256 direct-mapped entries of (key hash, count), each a Misra-Gries
//! counter (the same key adds one, another key takes one away and replaces
//! it at zero), so a key that dominates the hits holds its entry. Keys are
//! not stored: `hot_keys` finds each hash's key through the index, so an
//! evicted key drops out. Everything here is a statistic: counts read from
//! a corrupt segment are only wrong numbers.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::index::{KIND_ITEM, Slot, tag_of};
use crate::item::{self, Check, Meta, Read};
use crate::layout::{HIST_BUCKETS, HIST_OPS, HIST_STRIPES, HOT_ENTRIES, SLOTS};
use crate::stats::Counter;
use crate::sys;

/// One operation in this many (per thread and kind, on average) is sampled.
pub(crate) const SAMPLE_EVERY: u32 = 64;
const _: () = assert!(SAMPLE_EVERY == 32 + 64 / 2);

/// The sampled operations.
#[derive(Clone, Copy)]
pub(crate) enum Op {
    Get = 0,
    Put = 1,
}

thread_local! {
    /// Operations left until the next sample, per operation kind (one
    /// countdown for both would alias: a loop alternating put and get
    /// would sample only one of them).
    static COUNTDOWN: [Cell<u32>; 2] = const { [Cell::new(1), Cell::new(1)] };
}

/// The next sampling interval: uniform in 32..96 (mean 64), so no
/// periodic workload hides from the sampler.
fn next_interval() -> u32 {
    32 + (sys::random_u64() % 64) as u32
}

/// A log2 histogram of sampled durations: `buckets[b]` counts samples in
/// `[2^(b-1), 2^b)` nanoseconds (`buckets[0]`: under 1 ns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Sample counts per log2 bucket of nanoseconds.
    pub buckets: [u64; HIST_BUCKETS as usize],
}

impl Histogram {
    /// Samples in all.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper bound of the bucket holding quantile `q` (0..=1) of the
    /// samples, or `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let want = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(Duration::from_nanos(1u64 << b));
            }
        }
        Some(Duration::from_nanos(1u64 << (HIST_BUCKETS - 1)))
    }

    /// The upper bound in nanoseconds of bucket `b` (for exporters).
    pub fn bucket_upper_ns(b: usize) -> u64 {
        1u64 << b.min(63)
    }
}

impl Engine {
    /// Whether this operation is sampled (one in `SAMPLE_EVERY` per thread).
    #[inline(always)]
    pub(crate) fn sample_start(&self, op: Op) -> Option<Instant> {
        if !self.sampling.load(Ordering::Relaxed) {
            return None;
        }
        COUNTDOWN.with(|c| {
            let c = &c[op as usize];
            let n = c.get();
            if n > 1 {
                c.set(n - 1);
                None
            } else {
                c.set(next_interval());
                Some(Instant::now())
            }
        })
    }

    /// Records a sampled operation that started at `t0`.
    #[cold]
    pub(crate) fn sample_end(&self, op: Op, t0: Instant, hit_hash: Option<u64>) {
        let ns = t0.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        let b = (64 - ns.leading_zeros()).min(HIST_BUCKETS as u32 - 1) as u64;
        let stripe = u64::from(self.stripe()) % HIST_STRIPES;
        let off = self.seg.g.hist_off() + ((stripe * HIST_OPS + op as u64) * HIST_BUCKETS + b) * 8;
        self.seg.word(off).fetch_add(1, Ordering::Relaxed);
        if let Some(h) = hit_hash {
            self.count(Counter::SampledHits, 1);
            self.hot_touch(h);
        }
    }

    fn hot_entry(&self, i: u64) -> u64 {
        self.seg.g.hot_off() + (i % HOT_ENTRIES) * 16
    }

    /// Counts a sampled hit of `hash` in the hot-key table: two candidate
    /// entries per hash (bits 20.. and 28.. of it), each a (hash, count)
    /// pair with the decrement-on-collision rule of a frequent-items
    /// counter. The hash's own entry counts it; else an empty one takes
    /// it; else the smaller count of the two is decremented. (With one
    /// candidate, two hot keys sharing an entry left only the hotter one:
    /// 1 chance in 256 for any pair.)
    fn hot_touch(&self, hash: u64) {
        let a = hash >> 20;
        let b = if (hash >> 28) % HOT_ENTRIES == a % HOT_ENTRIES {
            a ^ 1
        } else {
            hash >> 28
        };
        let words = |i: u64| {
            let off = self.hot_entry(i);
            (self.seg.word(off), self.seg.word(off + 8))
        };
        let (ha, ca) = words(a);
        let (hb, cb) = words(b);
        let (cur_a, cur_b) = (ha.load(Ordering::Relaxed), hb.load(Ordering::Relaxed));
        if cur_a == hash {
            ca.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if cur_b == hash {
            cb.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let (na, nb) = (ca.load(Ordering::Relaxed), cb.load(Ordering::Relaxed));
        let (hw, cw, cur, n) = if na <= nb {
            (ha, ca, cur_a, na)
        } else {
            (hb, cb, cur_b, nb)
        };
        if n == 0 {
            if hw
                .compare_exchange(cur, hash, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                cw.store(1, Ordering::Relaxed);
            }
        } else {
            let _ = cw.compare_exchange(n, n - 1, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// The sampled latency histogram of `op`, summed over stripes.
    pub(crate) fn histogram(&self, op: Op) -> Histogram {
        let mut h = Histogram::default();
        for s in 0..HIST_STRIPES {
            for b in 0..HIST_BUCKETS {
                let off =
                    self.seg.g.hist_off() + ((s * HIST_OPS + op as u64) * HIST_BUCKETS + b) * 8;
                h.buckets[b as usize] =
                    h.buckets[b as usize].wrapping_add(self.seg.word(off).load(Ordering::Relaxed));
            }
        }
        h
    }

    /// Entries of the hot-key table with a count, highest first.
    fn hot_entries(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = (0..HOT_ENTRIES)
            .map(|i| {
                let off = self.hot_entry(i);
                (
                    self.seg.word(off).load(Ordering::Relaxed),
                    self.seg.word(off + 8).load(Ordering::Relaxed),
                )
            })
            .filter(|&(_, c)| c > 0)
            .collect();
        // Two processes may place one hash in both its entries at once:
        // count it once, with both counts.
        v.sort_unstable();
        v.dedup_by(|later, first| {
            let same = later.0 == first.0;
            if same {
                first.1 = first.1.saturating_add(later.1); // (corrupt counts)
            }
            same
        });
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v
    }

    /// The top key's share of the sampled hits (0 without samples).
    pub(crate) fn hot_key_share(&self, sampled_hits: u64) -> f64 {
        match self.hot_entries().first() {
            Some(&(_, c)) if sampled_hits > 0 => (c as f64 / sampled_hits as f64).min(1.0),
            _ => 0.0,
        }
    }

    /// The live key whose hash is `hash`, found through the index.
    fn key_of(&self, hash: u64) -> Option<Vec<u8>> {
        let tag = tag_of(hash);
        let mut key = Vec::new();
        for i in SLOTS.clone() {
            let s = Slot(self.seg.bucket_word(hash, i).load(Ordering::Acquire));
            if s.kind() != KIND_ITEM || s.tag() != tag {
                continue;
            }
            let log = self.seg.log(s.log());
            if let Read::Valid = item::read_entry(
                &self.seg,
                log,
                s.pos(),
                &mut key,
                None,
                &mut Meta::empty(),
                Check::Reader,
            ) {
                if self.hash(&key) == hash {
                    return Some(key);
                }
            }
        }
        None
    }

    /// The `n` keys with the most sampled hits that are still present.
    pub(crate) fn hot_keys(&self, n: usize) -> Vec<(Vec<u8>, u64)> {
        self.hot_entries()
            .into_iter()
            .filter_map(|(h, c)| self.key_of(h).map(|k| (k, c)))
            .take(n)
            .collect()
    }
}
