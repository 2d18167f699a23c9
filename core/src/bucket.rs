//! A key's bucket: the index-side decisions, each made on one bucket's
//! slots. `find` (the lock-free lookup of a key's valid item), and under
//! the bucket lock `key_slots` (every slot of a key), `publish` (the one
//! CAS that makes a written item the key's), `free_slot` (the slot a new
//! key takes), `clear_others`, `void_pending`, `forget_slot`; plus `reap`
//! (drop a dead item), `bump` (hit frequency) and the ghost checks.
//! Called by `read.rs`, `write.rs`, `lease.rs`, `cache.rs` (`find` for
//! incr, touch, ttl) and `log.rs` (the tail pass moves keys under the lock
//! with `key_slots`); calls `item.rs` to read records and `lease.rs` for
//! the state of PENDING slots.

use std::sync::atomic::Ordering;

use crate::engine::{Engine, Liveness};
use crate::index::{KIND_EMPTY, KIND_GHOST, KIND_ITEM, KIND_PENDING, Slot, tag_of};
use crate::item::{self, Check, Meta, Read};
use crate::layout::{ITEM_HEADER, SLOTS, SLOTS_PER_BUCKET};
use crate::segment::LogId;
use crate::sink::{self, Sink};
use crate::stats::Counter;

/// A key's current item, as found in its bucket.
pub(crate) struct Found {
    pub slot_index: usize,
    pub slot: Slot,
    pub meta: Meta,
}

impl Found {
    pub const fn empty() -> Found {
        Found {
            slot_index: 0,
            slot: Slot(0),
            meta: Meta::empty(),
        }
    }
}

/// Every slot of a bucket that belongs to a key (under the bucket lock).
pub(crate) struct KeySlots {
    /// The key's fill in progress (a live PENDING slot), if any.
    pub pending: Option<(usize, Slot)>,
    /// The key's validated item.
    pub valid: Option<Found>,
    /// Other slots whose record holds the key's bytes but did not validate:
    /// items a tail pass is moving or has just evicted. A writer replaces or
    /// clears them too, so the tail pass cannot move an old value back next
    /// to the new one.
    pub others: [(usize, Slot); SLOTS_PER_BUCKET],
    pub n_others: usize,
}

/// How a write publishes.
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    /// Insert or replace.
    Upsert,
    /// Insert only if no live entry exists.
    AddIfAbsent,
    /// Publish only if the key's item is still this one (`None`: absent).
    Expect(Option<u64>),
}

pub(crate) enum Outcome {
    Inserted,
    Updated,
    NotStored,
}

impl Engine {
    /// Finds `key`'s item in its bucket, copying its value into `value`.
    #[inline(always)]
    pub fn find(&self, key: &[u8], hash: u64, value: Option<&mut Vec<u8>>) -> Option<Found> {
        let mut found = Found::empty();
        self.find_into(key, hash, value, &mut found)
            .then_some(found)
    }

    /// `find` into the caller's `found` (`true`: found), for the get path:
    /// a `Found` is ~200 bytes and returning one is a `memcpy` call.
    #[inline(always)]
    pub fn find_into<S: Sink + ?Sized>(
        &self,
        key: &[u8],
        hash: u64,
        mut value: Option<&mut S>,
        found: &mut Found,
    ) -> bool {
        let tag = tag_of(hash);
        let bucket = self.seg.bucket(hash);
        for i in SLOTS.clone() {
            let w = &bucket[i];
            let s = Slot(w.load(Ordering::Acquire));
            if s.kind() != KIND_ITEM || s.tag() != tag {
                continue;
            }
            // An invalid item's slot is left alone: the tail pass that is
            // evicting it owns the slot (it may be moving the item), and an
            // insert into this bucket reuses junk slots first. If the slot
            // changed while we read (the item was moved or replaced), follow
            // it: a key being moved is not a miss.
            let mut s = s;
            for _ in 0..4 {
                let log = self.seg.log(s.log());
                let r = item::read_value(
                    &self.seg,
                    log,
                    s.pos(),
                    key,
                    hash,
                    value.as_deref_mut(),
                    &mut found.meta,
                    Check::Reader,
                );
                match r {
                    Read::Valid => {
                        found.slot_index = i;
                        found.slot = s;
                        return true;
                    }
                    Read::OtherKey => break,
                    Read::Invalid => {
                        let now = Slot(w.load(Ordering::Acquire));
                        if now.ident() == s.ident() || now.kind() != KIND_ITEM || now.tag() != tag {
                            break;
                        }
                        s = now;
                    }
                }
            }
        }
        false
    }

    /// Asks the CPU to start loading the item of the first slot in
    /// `hash`'s bucket whose tag matches (its first three lines: header,
    /// key and the start of the value), for a batch that has prefetched the
    /// bucket some keys earlier. Reads only index slots; a stale or foreign
    /// slot costs a wasted prefetch, nothing else.
    #[inline(always)]
    pub fn prefetch_item(&self, hash: u64) {
        let tag = tag_of(hash);
        let bucket = self.seg.bucket(hash);
        for w in &bucket[SLOTS] {
            let s = Slot(w.load(Ordering::Relaxed));
            if s.kind() == KIND_ITEM && s.tag() == tag {
                let log = self.seg.log(s.log());
                if let Some(off) = self.seg.log_off(log, s.pos(), ITEM_HEADER) {
                    self.seg.prefetch_lines(off & !63, 3);
                }
                return;
            }
        }
    }

    /// The slots of `key` in its bucket, valid or not (see `KeySlots`).
    /// Call under the bucket lock.
    pub fn key_slots(&self, key: &[u8], hash: u64) -> KeySlots {
        let tag = tag_of(hash);
        let mut ks = KeySlots {
            pending: None,
            valid: None,
            others: [(0, Slot(0)); SLOTS_PER_BUCKET],
            n_others: 0,
        };
        for i in SLOTS.clone() {
            let s = Slot(self.seg.bucket_word(hash, i).load(Ordering::Acquire));
            if s.kind() == KIND_PENDING
                && ks.pending.is_none()
                && self.pending_of(s, hash).is_some()
            {
                ks.pending = Some((i, s));
                continue;
            }
            if s.kind() != KIND_ITEM || s.tag() != tag {
                continue;
            }
            let log = self.seg.log(s.log());
            let mut meta = Meta::empty();
            match item::read_value(
                &self.seg,
                log,
                s.pos(),
                key,
                hash,
                sink::none(),
                &mut meta,
                Check::Reader,
            ) {
                Read::Valid if ks.valid.is_none() => {
                    ks.valid = Some(Found {
                        slot_index: i,
                        slot: s,
                        meta,
                    });
                }
                Read::OtherKey => {}
                _ if item::holds_key(&self.seg, log, s.pos(), key) => {
                    ks.others[ks.n_others] = (i, s);
                    ks.n_others += 1;
                }
                _ => {}
            }
        }
        ks
    }

    /// Clears `ks.others` (best effort: a slot that changed meanwhile is no
    /// longer this key's stale copy).
    pub(crate) fn clear_others(&self, hash: u64, ks: &KeySlots, except: usize) {
        for &(i, s) in &ks.others[..ks.n_others] {
            if i != except {
                let _ = self.seg.bucket_word(hash, i).compare_exchange(
                    s.0,
                    0,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Drops a found item whose liveness says it is gone.
    pub fn reap(&self, hash: u64, f: &Found, l: Liveness) {
        let w = self.seg.bucket_word(hash, f.slot_index);
        if w.compare_exchange(f.slot.0, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.entry_removed(f.meta.epoch());
            if l == Liveness::Expired {
                self.count(Counter::Expirations, 1);
            }
        }
    }

    /// Voids the key's fill in progress (under the bucket lock): clears its
    /// PENDING slot unless this write reused it (`kept`), and wakes its
    /// waiters. The leader's `fill` then finds no PENDING slot and does not
    /// store.
    pub(crate) fn void_pending(&self, hash: u64, ks: &KeySlots, kept: Option<usize>) {
        if let Some((pi, ps)) = ks.pending {
            if kept != Some(pi) {
                let _ = self.seg.bucket_word(hash, pi).compare_exchange(
                    ps.0,
                    0,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
            self.wake(self.seg.lease_off(ps.rec()));
        }
    }

    /// Accounts for slot `old` just replaced by a new key's slot: a live
    /// item of another key was evicted, a fill in progress was voided.
    pub fn forget_slot(&self, hash: u64, old: Slot) {
        match old.kind() {
            KIND_ITEM => {
                if let Some(m) = item::peek(&self.seg, self.seg.log(old.log()), old.pos()) {
                    self.entry_removed(m.epoch());
                }
                self.count(Counter::Evictions, 1);
            }
            KIND_PENDING if self.pending_of(old, hash).is_some() => {
                self.wake(self.seg.lease_off(old.rec()));
            }
            _ => {}
        }
    }

    pub fn bump(&self, hash: u64, f: &Found) {
        let fq = f.slot.freq();
        if fq < 3 {
            let w = self.seg.bucket_word(hash, f.slot_index);
            let _ = w.compare_exchange(
                f.slot.0,
                f.slot.with_freq(fq + 1).0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Whether a ghost slot is still inside the ghost window: S3-FIFO's
    /// ghost queue holds as many ghosts as main holds items; ghost age is
    /// measured in small-log bytes, which also count the keys that were
    /// promoted instead, so the window is twice main's bytes.
    fn ghost_recent(&self, s: Slot) -> bool {
        self.ghost_age_recent(self.ghost_age(s))
    }

    /// Whether a ghost of this age (`ghost_age`) is inside the window.
    fn ghost_age_recent(&self, age: u64) -> bool {
        age * 8 <= 2 * self.seg.main.len
    }

    /// A ghost's age in 8-byte units of small-log insertions.
    fn ghost_age(&self, s: Slot) -> u64 {
        let head = self.seg.head(&self.seg.small).load(Ordering::Relaxed);
        (head / 8).wrapping_sub(s.pos() / 8) & ((1 << 48) - 1)
    }

    pub(crate) fn ghost_hit(&self, hash: u64) -> bool {
        let tag = tag_of(hash);
        SLOTS.clone().any(|i| {
            let s = Slot(self.seg.bucket_word(hash, i).load(Ordering::Relaxed));
            s.kind() == KIND_GHOST && s.tag() == tag && self.ghost_recent(s)
        })
    }

    /// The locked part of a write: one CAS that makes the new item the key's.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn publish(
        &self,
        key: &[u8],
        hash: u64,
        tag: u64,
        log: LogId,
        pos: u64,
        mode: Mode,
        guard: Option<&dyn Fn() -> bool>,
    ) -> Outcome {
        loop {
            let ks = self.key_slots(key, hash);
            let existing = &ks.valid;
            match (mode, existing) {
                (Mode::AddIfAbsent, Some(f))
                    if self.liveness(&f.meta, &mut None) == Liveness::Live =>
                {
                    return Outcome::NotStored;
                }
                (Mode::Expect(want), f) if f.as_ref().map(|f| f.slot.ident()) != want => {
                    return Outcome::NotStored;
                }
                _ => {}
            }
            if let Some(g) = guard {
                if !g() {
                    return Outcome::NotStored;
                }
            }
            // The key's slot: its valid item, else a copy of it being moved
            // or just evicted, else its fill in progress, else a free slot.
            let (i, old, freq, outcome) = match existing {
                Some(f) => {
                    let live = self.liveness(&f.meta, &mut None) == Liveness::Live;
                    let o = if live {
                        Outcome::Updated
                    } else {
                        Outcome::Inserted
                    };
                    (f.slot_index, f.slot, f.slot.freq(), o)
                }
                None if ks.n_others > 0 => (ks.others[0].0, ks.others[0].1, 0, Outcome::Inserted),
                None if ks.pending.is_some() => {
                    let (i, s) = ks.pending.expect("checked");
                    (i, s, 0, Outcome::Inserted)
                }
                None => {
                    let (i, old) = self.free_slot(hash, tag);
                    (i, old, 0, Outcome::Inserted)
                }
            };
            let w = self.seg.bucket_word(hash, i);
            let new = Slot::item(tag, log, pos, freq);
            if w.compare_exchange(old.0, new.0, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue; // a hit bumped freq, or eviction moved it: look again
            }
            self.clear_others(hash, &ks, i);
            match existing {
                Some(f) if matches!(outcome, Outcome::Inserted) => {
                    self.entry_removed(f.meta.epoch())
                }
                Some(_) => {}
                None if ks.n_others == 0 && ks.pending.is_none() => self.forget_slot(hash, old),
                None => {}
            }
            // The key's fill in progress is void now: this write is newer.
            self.void_pending(hash, &ks, Some(i));
            return outcome;
        }
    }

    /// Picks the slot for a new key: this key's own ghost (consumed), then
    /// an empty slot or an expired ghost, then junk (an item that no longer
    /// validates), then a dead item, then a recent ghost, and only then the
    /// live item least worth keeping (fewest hits, small log first).
    pub(crate) fn free_slot(&self, hash: u64, tag: u64) -> (usize, Slot) {
        // (score, then age rank): lowest wins.
        let mut best = (0usize, Slot(0), (u64::MAX, 0u64));
        let mut now = None;
        for i in SLOTS.clone() {
            let s = Slot(self.seg.bucket_word(hash, i).load(Ordering::Acquire));
            let rank = match s.kind() {
                KIND_GHOST if s.tag() == tag => return (i, s),
                KIND_EMPTY => (1, 0),
                KIND_GHOST => {
                    // Expired ghosts are free; of the recent ones the
                    // oldest goes first (S3-FIFO's ghost queue forgets in
                    // FIFO order).
                    let age = self.ghost_age(s);
                    if self.ghost_age_recent(age) {
                        (5, u64::MAX - age)
                    } else {
                        (1, 0)
                    }
                }
                KIND_PENDING if self.pending_is_junk(s) => (2, 0),
                // Another key's fill in progress: the very last resort.
                KIND_PENDING => (50, 0),
                KIND_ITEM => {
                    let log = self.seg.log(s.log());
                    let mut m = Meta::empty();
                    let score = match item::validate(&self.seg, log, s.pos(), &mut m) {
                        Read::Valid => match self.liveness(&m, &mut now) {
                            Liveness::Live | Liveness::Stale => {
                                10 + s.freq() * 2 + (s.log() == LogId::Main) as u64
                            }
                            _ => 3,
                        },
                        _ => 2,
                    };
                    (score, 0)
                }
                _ => (2, 0),
            };
            if rank < best.2 {
                best = (i, s, rank);
            }
        }
        (best.0, best.1)
    }
}
