//! The index: 128-byte buckets (two adjacent cache lines) of one lock word
//! and 15 slots, chosen by multiply-shift of the key's hash.
//!
//! ```text
//! slot (u64):  kind (2) | freq (2) | tag (11) | log (1) | position / 8 (48)
//!   kind 0 EMPTY (the whole word is 0), 1 ITEM, 2 GHOST, 3 PENDING
//!   ITEM:  the key's item is at `position` of `log`; `freq` counts hits (max 3)
//!   GHOST: a key recently evicted from the small log without a hit;
//!          `position` holds the small log's head (/8) at that moment
//! PENDING: kind (2) | 0 (2) | tag (11) | 0 (1) | lease record (24) | lease generation (24)
//!          a get_or_set fill of the key is in progress (see `lease.rs`)
//! ```
//!
//! Readers never lock: they load slots, follow them, and validate what they
//! copy. A reader bumps `freq` with one CAS, only while it is below 3.
//! Writers that change which keys a bucket holds (put, add, incr, touch,
//! delete) serialise on the bucket's lock word for the few loads and one
//! CAS of the publish; the item itself is written before, outside the lock.
//! The lock word holds the holder's registry token (`registry.rs`), so a
//! holder killed inside those instructions is recognised as dead (by the
//! kernel, in any PID namespace) and the lock taken over; a live holder
//! never loses it. Eviction moves or removes slots with a CAS on their exact value and
//! takes no lock. Each CAS keeps the invariant: at most one ITEM slot per
//! key in a bucket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::segment::{LogId, Segment};

pub(crate) const KIND_EMPTY: u64 = 0;
pub(crate) const KIND_ITEM: u64 = 1;
pub(crate) const KIND_GHOST: u64 = 2;
pub(crate) const KIND_PENDING: u64 = 3;
const LEASE_GEN_BITS: u32 = 24;
pub(crate) const LEASE_GEN_MASK: u64 = (1 << LEASE_GEN_BITS) - 1;

const POS_MASK: u64 = (1 << 48) - 1;

const TAG_BITS: u32 = 11;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot(pub u64);

impl Slot {
    pub fn item(tag: u64, log: LogId, pos: u64, freq: u64) -> Slot {
        Slot(
            (KIND_ITEM << 62)
                | (freq.min(3) << 60)
                | ((tag & ((1 << TAG_BITS) - 1)) << 49)
                | ((log as u64) << 48)
                | ((pos / 8) & POS_MASK),
        )
    }
    pub fn ghost(tag: u64, small_head: u64) -> Slot {
        Slot(
            (KIND_GHOST << 62)
                | ((tag & ((1 << TAG_BITS) - 1)) << 49)
                | ((small_head / 8) & POS_MASK),
        )
    }
    /// A key's fill in progress: lease record `rec` in its generation
    /// `generation` (`lease.rs`).
    pub fn pending(tag: u64, rec: u64, generation: u64) -> Slot {
        Slot(
            (KIND_PENDING << 62)
                | ((tag & ((1 << TAG_BITS) - 1)) << 49)
                | ((rec & 0xff_ffff) << LEASE_GEN_BITS)
                | (generation & LEASE_GEN_MASK),
        )
    }
    /// A pending slot's lease record.
    pub fn rec(self) -> u64 {
        (self.0 >> LEASE_GEN_BITS) & 0xff_ffff
    }
    /// A pending slot's lease generation.
    pub fn lease_gen(self) -> u64 {
        self.0 & LEASE_GEN_MASK
    }
    pub fn kind(self) -> u64 {
        self.0 >> 62
    }
    pub fn freq(self) -> u64 {
        (self.0 >> 60) & 3
    }
    pub fn tag(self) -> u64 {
        (self.0 >> 49) & ((1 << TAG_BITS) - 1)
    }
    pub fn log(self) -> LogId {
        if (self.0 >> 48) & 1 == 0 {
            LogId::Small
        } else {
            LogId::Main
        }
    }
    pub fn pos(self) -> u64 {
        (self.0 & POS_MASK) * 8
    }
    pub fn with_freq(self, f: u64) -> Slot {
        Slot((self.0 & !(3 << 60)) | (f.min(3) << 60))
    }
    /// The slot without its frequency bits (identity of the item).
    pub fn ident(self) -> u64 {
        self.0 & !(3 << 60)
    }
}

/// The tag of a hash (its top bits; the bucket uses the low bits).
#[inline]
pub(crate) fn tag_of(hash: u64) -> u64 {
    hash >> (64 - TAG_BITS)
}

/// A held bucket lock; released on drop.
pub(crate) struct BucketGuard<'a> {
    word: &'a AtomicU64,
    token: u64,
}

impl Drop for BucketGuard<'_> {
    fn drop(&mut self) {
        // Release only if still ours (only corruption of the word makes it
        // someone else's: a live holder's lock is never taken over).
        let _ = self
            .word
            .compare_exchange(self.token, 0, Ordering::Release, Ordering::Relaxed);
    }
}

/// How long a writer waits on a bucket lock whose holder the kernel says is
/// alive before it gives up with `Timeout`. The critical section is a
/// handful of loads and one CAS, so only a stopped (SIGSTOP, debugger) or
/// frozen (cgroup freezer) holder gets here; its lock is never taken from
/// it, the writer reports the failure instead.
pub(crate) const LOCK_WAIT_LIMIT: Duration = Duration::from_secs(2);

/// Takes bucket `b`'s lock. Never waits on a dead holder: after a short
/// spin it asks the kernel whether the holder lives (`Segment::alive`) and
/// takes the lock over if it does not. A live holder keeps it: after
/// `limit` the caller gets `Timeout`.
pub(crate) fn lock_bucket<'a>(
    seg: &'a Segment,
    b: u64,
    steals: &mut u64,
    limit: Duration,
) -> Result<BucketGuard<'a>> {
    let word = seg.bucket_word(b, 0);
    let me = seg.token()?;
    let backoff = crossbeam_utils::Backoff::new();
    let start = Instant::now();
    loop {
        // Acquire/AcqRel (found by the loom model, `model/`): a waiter must
        // see the registration (generation bump) of the holder whose token
        // it reads, or it could judge a live holder dead.
        let cur = word.load(Ordering::Acquire);
        if cur == 0 {
            if word
                .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(BucketGuard { word, token: me });
            }
            continue;
        }
        if !backoff.is_completed() {
            backoff.snooze();
            continue;
        }
        // Held for a while: ask the kernel whether the holder still lives.
        if !seg.alive(cur) {
            if word
                .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                *steals += 1;
                return Ok(BucketGuard { word, token: me });
            }
            continue;
        }
        if start.elapsed() > limit {
            return Err(Error::Timeout(format!(
                "a bucket lock of segment {:?} has been held for {limit:?} by a live process \
                 that makes no progress (stopped or frozen?); nothing was changed",
                seg.name
            )));
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}
