//! The index: 128-byte buckets (two cache lines) of one lock word and 15
//! slots.
//!
//! ```text
//! slot (u64):  kind (2) | freq (2) | tag (11) | log (1) | position / 8 (48)
//!   kind 0 EMPTY (the whole word is 0), 1 ITEM, 2 GHOST
//!   ITEM:  the key's item is at `position` of `log`; `freq` counts hits (max 3)
//!   GHOST: a key recently evicted from the small log without a hit;
//!          `position` holds the small log's head (/8) at that moment
//! ```
//!
//! Readers never lock: they load slots, follow them, and validate what they
//! copy. A reader bumps `freq` with one CAS, only while it is below 3.
//! Writers that change which keys a bucket holds (put, add, incr, touch,
//! delete) serialise on the bucket's lock word for the few loads and one
//! CAS of the publish; the item itself is written before, outside the lock.
//! The lock word holds the holder's process token, so a holder killed inside
//! those instructions is recognised as dead (via /proc) and the lock taken
//! over. Eviction moves or removes slots with a CAS on their exact value and
//! takes no lock. Each CAS keeps the invariant: at most one ITEM slot per
//! key in a bucket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::segment::{LogId, Segment};
use crate::sys;

pub(crate) const KIND_EMPTY: u64 = 0;
pub(crate) const KIND_ITEM: u64 = 1;
pub(crate) const KIND_GHOST: u64 = 2;

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
        // Release only if still ours (a lock taken over from us after a
        // two-second stall is someone else's now).
        let _ = self
            .word
            .compare_exchange(self.token, 0, Ordering::Release, Ordering::Relaxed);
    }
}

/// How long a lock may look held by a live process before it is taken over
/// anyway (a holder in another PID namespace, a stopped process). The
/// critical section is a handful of instructions.
const LOCK_STALL_LIMIT: Duration = Duration::from_secs(2);

/// Takes bucket `b`'s lock. Never waits on a dead holder: after a short
/// spin it asks the kernel whether the holder lives, and takes the lock
/// over if it does not.
pub(crate) fn lock_bucket<'a>(seg: &'a Segment, b: u64, steals: &mut u64) -> BucketGuard<'a> {
    let word = seg.bucket_word(b, 0);
    let me = sys::process_token();
    let backoff = crossbeam_utils::Backoff::new();
    let mut seen = 0u64;
    let mut seen_since = Instant::now();
    loop {
        let cur = word.load(Ordering::Relaxed);
        if cur == 0 {
            if word
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return BucketGuard { word, token: me };
            }
            continue;
        }
        if cur != seen {
            seen = cur;
            seen_since = Instant::now();
            backoff.reset();
        }
        if !backoff.is_completed() {
            backoff.snooze();
            continue;
        }
        // Held for a while: ask the kernel whether the holder still lives.
        let stalled = seen_since.elapsed() > LOCK_STALL_LIMIT;
        if (stalled || !sys::token_alive(cur))
            && word
                .compare_exchange(cur, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            *steals += 1;
            return BucketGuard { word, token: me };
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}
