//! The public `Cache` and the engine operations behind it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::error::{Error, Result};
use crate::index::{
    self, KIND_EMPTY, KIND_GHOST, KIND_ITEM, KIND_PENDING, LOCK_WAIT_LIMIT, Slot, tag_of,
};
use crate::item::{self, Check, Encoded, FLAG_NEGATIVE, Meta, Read};
use crate::layout::{LAYOUT_VERSION, NCOUNTERS, NSTRIPES, pad8};
use crate::layout::{SLOTS, SLOTS_PER_BUCKET};
use crate::options::{Expiry, MAX_KEY_LEN, MAX_TAG_LEN, MAX_TAGS, OpenOptions, PutOptions, Ttl};
use crate::sampling::Op;
use crate::segment::{LogGeom, LogId, Segment};
use crate::stats::Stats;
use crate::sys;

/// Segment-wide counters (striped, see `stats.rs`).
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

/// Whether a validated item may be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    Live,
    /// Past its TTL but inside its grace period (get_or_set serves it).
    Stale,
    Expired,
    /// Cleared, or one of its tags invalidated.
    Invalidated,
}

/// A key's current item, as found in its bucket.
pub(crate) struct Found {
    pub slot_index: usize,
    pub slot: Slot,
    pub meta: Meta,
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

/// A parsed write, before allocation.
pub(crate) struct Write<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u64,
    pub expire_ms: u64,
    pub stale_until_ms: u64,
    pub tags: &'a [(u64, u64)],
    /// The tags' names (`item::encode_names`), stored for `dump`.
    pub names: &'a [u8],
    pub epoch: Option<u64>,
}

/// What [`Engine::export`] read besides the value.
pub(crate) struct Exported<'n> {
    pub expiry: Expiry,
    pub tags: Vec<&'n [u8]>,
}

pub(crate) struct Engine {
    pub seg: Segment,
    /// Whether this handle samples latencies and hot keys (`sampling.rs`).
    pub sampling: std::sync::atomic::AtomicBool,
}

const TAG_SALT: u64 = 0x7461_6773_616c_7421;

impl Engine {
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        xxh3_64_with_seed(key, self.seg.g.hash_seed)
    }

    pub fn tag_hash(&self, tag: &[u8]) -> u64 {
        xxh3_64_with_seed(tag, self.seg.g.hash_seed ^ TAG_SALT)
    }

    #[inline]
    pub fn count(&self, c: Counter, n: u64) {
        self.seg
            .counter(sys::stripe(NSTRIPES as u32), c as usize)
            .fetch_add(n, Ordering::Relaxed);
    }

    pub fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(Error::KeyTooLong {
                len: key.len(),
                max: MAX_KEY_LEN,
            });
        }
        Ok(())
    }

    /// Tag (hash, current version) pairs for a write.
    pub fn tag_pairs(&self, tags: &[&[u8]]) -> Result<Vec<(u64, u64)>> {
        if tags.len() > MAX_TAGS {
            return Err(Error::InvalidArgument(format!(
                "{} tags given: an entry carries at most {MAX_TAGS}",
                tags.len()
            )));
        }
        tags.iter()
            .map(|t| {
                if t.is_empty() || t.len() > MAX_TAG_LEN {
                    return Err(Error::InvalidArgument(format!(
                        "a tag must be 1 to {MAX_TAG_LEN} bytes (got {})",
                        t.len()
                    )));
                }
                let h = self.tag_hash(t);
                Ok((h, self.seg.tag_version(h).load(Ordering::Acquire)))
            })
            .collect()
    }

    /// TTL in ms after defaults and jitter (0 = never).
    pub fn ttl_ms(&self, ttl: Ttl) -> Result<u64> {
        let ms = match ttl.validate()? {
            Ttl::Default => self.seg.g.default_ttl_ms,
            Ttl::Never => 0,
            Ttl::After(d) => (d.as_millis() as u64).max(1),
        };
        let ppm = self.seg.g.ttl_jitter_ppm;
        if ms == 0 || ppm == 0 {
            return Ok(ms);
        }
        // Uniform in [ms * (1 - j), ms * (1 + j)].
        let span = (ms as u128 * ppm as u128 / 1_000_000) as u64;
        let jittered = ms - span + sys::random_u64() % (2 * span + 1);
        Ok(jittered.max(1))
    }

    /// The tag-names block of a found item (empty without tags), for a
    /// rewrite that keeps its tags. `false`: the item was lapped meanwhile.
    pub fn names_of(&self, f: &Found, out: &mut Vec<u8>) -> bool {
        item::read_names(
            &self.seg,
            self.seg.log(f.slot.log()),
            f.slot.pos(),
            &f.meta,
            Check::Reader,
            out,
        )
    }

    /// A live entry for `dump`: its value (into `value`), remaining
    /// lifetime and tag names, read without counting a hit or marking it
    /// used. `None`: no live entry (deleted, expired, invalidated, negative).
    pub fn export<'n>(
        &self,
        key: &[u8],
        value: &mut Vec<u8>,
        names: &'n mut Vec<u8>,
    ) -> Option<Exported<'n>> {
        let hash = self.hash(key);
        // A lapped item while reading its names: look again (a few times;
        // the key moved or was rewritten meanwhile).
        let (meta, now) = (0..4).find_map(|_| {
            let f = self.find(key, hash, Some(value))?;
            let mut now = None;
            let live = self.liveness(&f.meta, &mut now) == Liveness::Live
                && f.meta.flags() & FLAG_NEGATIVE == 0;
            live.then(|| self.names_of(&f, names).then_some((f.meta, now)))
                .flatten()
        })?;
        let expiry = match meta.expire_ms() {
            0 => Expiry::Never,
            exp => Expiry::In(Duration::from_millis(
                exp.saturating_sub(now.unwrap_or_else(sys::now_ms)),
            )),
        };
        // Keep the names whose hash is the checksummed tag hash at the
        // same position (the names themselves are not checksummed).
        let tags = item::decode_names(names, meta.ntags())
            .into_iter()
            .zip(&meta.tags[..meta.ntags()])
            .filter(|(n, (h, _))| self.tag_hash(n) == *h)
            .map(|(n, _)| n)
            .collect();
        Some(Exported { expiry, tags })
    }

    pub fn liveness(&self, m: &Meta, now: &mut Option<u64>) -> Liveness {
        if m.epoch() != self.seg.clear_epoch().load(Ordering::Acquire) {
            return Liveness::Invalidated;
        }
        for (h, v) in &m.tags[..m.ntags()] {
            if self.seg.tag_version(*h).load(Ordering::Acquire) != *v {
                return Liveness::Invalidated;
            }
        }
        let exp = m.expire_ms();
        if exp == 0 {
            return Liveness::Live;
        }
        let t = *now.get_or_insert_with(sys::now_ms);
        if t < exp {
            Liveness::Live
        } else if m.stale_until_ms() > t {
            Liveness::Stale
        } else {
            Liveness::Expired
        }
    }

    /// Finds `key`'s item in its bucket, copying its value into `value`.
    #[inline(always)]
    pub fn find(&self, key: &[u8], hash: u64, mut value: Option<&mut Vec<u8>>) -> Option<Found> {
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
                let r = item::read(
                    &self.seg,
                    log,
                    s.pos(),
                    Some(key),
                    value.as_deref_mut(),
                    None,
                    Check::Reader,
                );
                match r {
                    Read::Valid(meta) => {
                        return Some(Found {
                            slot_index: i,
                            slot: s,
                            meta,
                        });
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
        None
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
            match item::read(
                &self.seg,
                log,
                s.pos(),
                Some(key),
                None,
                None,
                Check::Reader,
            ) {
                Read::Valid(meta) if ks.valid.is_none() => {
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
    fn clear_others(&self, hash: u64, ks: &KeySlots, except: usize) {
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

    /// Counts an entry (an item of clear epoch `epoch`) leaving the index;
    /// items of an older epoch were forgotten by `clear` already.
    pub fn entry_removed(&self, epoch: u64) {
        if epoch == self.seg.clear_epoch().load(Ordering::Relaxed) {
            self.count(Counter::EntriesRemoved, 1);
        }
    }

    /// Voids the key's fill in progress (under the bucket lock): clears its
    /// PENDING slot unless this write reused it (`kept`), and wakes its
    /// waiters. The leader's `fill` then finds no PENDING slot and does not
    /// store.
    fn void_pending(&self, hash: u64, ks: &KeySlots, kept: Option<usize>) {
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

    /// A lookup for a reader: `true` only for a live, non-negative entry
    /// (value in `buf`). Counts the hit or miss.
    #[inline]
    pub fn lookup(&self, key: &[u8], buf: &mut Vec<u8>) -> Result<bool> {
        self.check_key(key)?;
        let t0 = self.sample_start(Op::Get);
        let hash = self.hash(key);
        if let Some(f) = self.find(key, hash, Some(buf)) {
            match self.liveness(&f.meta, &mut None) {
                Liveness::Live if f.meta.flags() & FLAG_NEGATIVE == 0 => {
                    self.bump(hash, &f);
                    self.count(Counter::Hits, 1);
                    if let Some(t0) = t0 {
                        self.sample_end(Op::Get, t0, Some(hash));
                    }
                    return Ok(true);
                }
                Liveness::Live | Liveness::Stale => {}
                l => self.reap(hash, &f, l),
            }
        }
        self.count(Counter::Misses, 1);
        if let Some(t0) = t0 {
            self.sample_end(Op::Get, t0, None);
        }
        Ok(false)
    }

    /// Whether a ghost slot is still inside the ghost window: S3-FIFO's
    /// ghost queue holds as many ghosts as main holds items; ghost age is
    /// measured in small-log bytes, which also count the keys that were
    /// promoted instead, so the window is twice main's bytes.
    fn ghost_recent(&self, s: Slot) -> bool {
        let head = self.seg.head(&self.seg.small).load(Ordering::Relaxed);
        let age = (head / 8).wrapping_sub(s.pos() / 8) & ((1 << 48) - 1);
        age * 8 <= 2 * self.seg.main.len
    }

    fn ghost_hit(&self, hash: u64) -> bool {
        let tag = tag_of(hash);
        SLOTS.clone().any(|i| {
            let s = Slot(self.seg.bucket_word(hash, i).load(Ordering::Relaxed));
            s.kind() == KIND_GHOST && s.tag() == tag && self.ghost_recent(s)
        })
    }

    /// Writes an item and publishes it according to `mode`. `guard` runs
    /// under the bucket lock just before publishing; `false` aborts.
    pub fn write(
        &self,
        w: &Write<'_>,
        mode: Mode,
        guard: Option<&dyn Fn() -> bool>,
    ) -> Result<Outcome> {
        let t0 = self.sample_start(Op::Put);
        let r = self.write_unsampled(w, mode, guard);
        if let Some(t0) = t0 {
            self.sample_end(Op::Put, t0, None);
        }
        r
    }

    fn write_unsampled(
        &self,
        w: &Write<'_>,
        mode: Mode,
        guard: Option<&dyn Fn() -> bool>,
    ) -> Result<Outcome> {
        self.check_key(w.key)?;
        let max = self.seg.g.max_value_size as usize;
        if w.value.len() > max {
            return Err(Error::ValueTooLarge {
                len: w.value.len(),
                max,
            });
        }
        let names = if w.tags.is_empty() {
            0
        } else {
            pad8(w.names.len() as u64)
        };
        let size = item::item_size(w.key.len(), w.value.len(), w.tags.len()) + names;
        if size > self.seg.g.max_item() {
            let other = size - item::item_size(0, w.value.len(), 0) + item::item_size(0, 0, 0);
            return Err(Error::ValueTooLarge {
                len: w.value.len(),
                max: (self.seg.g.max_item() - other.min(self.seg.g.max_item())) as usize,
            });
        }
        let hash = self.hash(w.key);
        let tag = tag_of(hash);
        // Unlocked pre-scan, a hint only (the locked publish decides): where
        // does the key live, and does an add already lose?
        let existing = SLOTS.clone().find_map(|i| {
            let s = Slot(self.seg.bucket_word(hash, i).load(Ordering::Acquire));
            (s.kind() == KIND_ITEM && s.tag() == tag)
                .then(|| {
                    item::hint(&self.seg, self.seg.log(s.log()), s.pos(), w.key).map(|m| (s, m))
                })
                .flatten()
        });
        if let (Mode::AddIfAbsent, Some((_, m))) = (mode, &existing) {
            if self.liveness(m, &mut None) == Liveness::Live {
                return Ok(Outcome::NotStored);
            }
        }
        let log_id = match &existing {
            // Large items skip the small log (it must hold several).
            _ if size > self.seg.small.len / 4 => LogId::Main,
            Some((s, _)) => s.log(),
            None if self.ghost_hit(hash) => {
                self.count(Counter::GhostHits, 1);
                LogId::Main
            }
            None => LogId::Small,
        };
        let log: LogGeom = *self.seg.log(log_id);
        let epoch = w
            .epoch
            .unwrap_or_else(|| self.seg.clear_epoch().load(Ordering::Acquire));
        // A degraded segment (an agent's feed has a gap, or its keeper died)
        // caps every entry's life, grace included.
        let (mut expire, mut stale_until) = (w.expire_ms, w.stale_until_ms);
        let cap = self.seg.ttl_cap_ms();
        if cap != 0 {
            // (saturating: the cap is a live header word, so a corrupt
            // one must not overflow)
            let limit = sys::now_ms().saturating_add(cap);
            expire = if expire == 0 {
                limit
            } else {
                expire.min(limit)
            };
            stale_until = if stale_until == 0 {
                limit
            } else {
                stale_until.min(limit)
            };
        }
        let mut enc = Encoded::new(
            w.key,
            w.value.len(),
            w.flags,
            hash,
            epoch,
            expire,
            stale_until,
            w.tags,
            w.names.len(),
        );
        let pos = self.alloc(&log, size, 0);
        item::write(&self.seg, &log, pos, &mut enc, w.key, w.value, w.names);

        let mut steals = 0;
        let outcome = {
            let lock = index::lock_bucket(&self.seg, hash, &mut steals, LOCK_WAIT_LIMIT);
            if steals > 0 {
                self.count(Counter::LockTakeovers, steals);
                steals = 0;
            }
            let _lock = lock?;
            self.publish(w.key, hash, tag, log_id, pos, mode, guard)
        };
        if steals > 0 {
            self.count(Counter::LockTakeovers, steals);
        }
        match outcome {
            Outcome::Inserted => self.count(Counter::Inserts, 1),
            Outcome::Updated => self.count(Counter::Updates, 1),
            Outcome::NotStored => {}
        }
        Ok(outcome)
    }

    /// The locked part of a write: one CAS that makes the new item the key's.
    #[allow(clippy::too_many_arguments)]
    fn publish(
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
        let mut best = (0usize, Slot(0), u64::MAX);
        let mut now = None;
        for i in SLOTS.clone() {
            let s = Slot(self.seg.bucket_word(hash, i).load(Ordering::Acquire));
            let score = match s.kind() {
                KIND_GHOST if s.tag() == tag => return (i, s),
                KIND_EMPTY => 1,
                KIND_GHOST if !self.ghost_recent(s) => 1,
                KIND_GHOST => 5,
                KIND_PENDING if self.pending_is_junk(s) => 2,
                // Another key's fill in progress: the very last resort.
                KIND_PENDING => 50,
                KIND_ITEM => {
                    let log = self.seg.log(s.log());
                    match item::read(&self.seg, log, s.pos(), None, None, None, Check::Reader) {
                        Read::Valid(m) => match self.liveness(&m, &mut now) {
                            Liveness::Live | Liveness::Stale => {
                                10 + s.freq() * 2 + (s.log() == LogId::Main) as u64
                            }
                            _ => 3,
                        },
                        _ => 2,
                    }
                }
                _ => 2,
            };
            if score < best.2 {
                best = (i, s, score);
            }
        }
        (best.0, best.1)
    }

    /// Removes `key`; voids a get_or_set fill in flight for it. Returns
    /// whether a live entry was removed.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.check_key(key)?;
        let hash = self.hash(key);
        let mut steals = 0;
        let lock = index::lock_bucket(&self.seg, hash, &mut steals, LOCK_WAIT_LIMIT);
        if steals > 0 {
            self.count(Counter::LockTakeovers, steals);
        }
        let removed = {
            let _lock = lock?;
            loop {
                let ks = self.key_slots(key, hash);
                self.clear_others(hash, &ks, 0);
                // A fill in progress is void: its value may predate this
                // delete.
                self.void_pending(hash, &ks, None);
                let Some(f) = ks.valid else { break false };
                let w = self.seg.bucket_word(hash, f.slot_index);
                if w.compare_exchange(f.slot.0, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    self.entry_removed(f.meta.epoch());
                    break self.liveness(&f.meta, &mut None) == Liveness::Live
                        && f.meta.flags() & FLAG_NEGATIVE == 0;
                }
            }
        };
        if removed {
            self.count(Counter::Deletes, 1);
        }
        Ok(removed)
    }
}

/// What [`Cache::read`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadInto {
    /// No live entry.
    Miss,
    /// The value's length; the value is in the first bytes of the buffer.
    Hit(usize),
    /// The buffer is too small: the value needs this many bytes. Nothing was
    /// copied; retry with a larger buffer.
    TooSmall(usize),
}

/// A handle on a shared segment. Cheap to clone (an `Arc`), `Send + Sync`:
/// share one between threads, open one per process.
///
/// ```
/// # let name = format!("doc-cache-{}", std::process::id());
/// let cache = memshelf::Cache::open(&name, 16 << 20)?;
/// cache.put(b"user:42", b"{\"name\":\"Ada\"}")?;
/// assert_eq!(cache.get(b"user:42")?.as_deref(), Some(&b"{\"name\":\"Ada\"}"[..]));
/// assert!(cache.delete(b"user:42")?);
/// assert_eq!(cache.get(b"user:42")?, None);
/// # memshelf::unlink(&name)?;
/// # Ok::<(), memshelf::Error>(())
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) e: Arc<Engine>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.e.seg.name)
            .field("capacity", &self.e.seg.g.capacity)
            .finish()
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Cache {
    /// Creates or attaches segment `name` with `capacity` bytes (used only
    /// when creating) and default options.
    ///
    /// ```
    /// # let name = format!("doc-cache-open-{}", std::process::id());
    /// let cache = memshelf::Cache::open(&name, 16 << 20)?; // creates it
    /// cache.put(b"k", b"v")?;
    /// // Attaching (here, or from another process) ignores the capacity asked:
    /// let other = memshelf::Cache::open(&name, 64 << 20)?;
    /// assert_eq!(other.capacity(), 16 << 20);
    /// assert_eq!(other.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn open(name: &str, capacity: u64) -> Result<Cache> {
        OpenOptions::new().capacity(capacity).open(name)
    }

    pub(crate) fn open_with(name: &str, opts: &OpenOptions) -> Result<Cache> {
        Ok(Cache {
            e: Arc::new(Engine {
                seg: Segment::open(name, opts)?,
                sampling: std::sync::atomic::AtomicBool::new(true),
            }),
        })
    }

    /// The segment's name.
    ///
    /// ```
    /// # let name = format!("doc-name-{}", std::process::id());
    /// let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// assert_eq!(cache.name(), name);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.e.seg.name
    }

    /// Total bytes of the segment (as created, whatever this handle asked).
    ///
    /// ```
    /// # let name = format!("doc-capacity-{}", std::process::id());
    /// let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// assert_eq!(cache.capacity(), 16 << 20);
    /// assert_eq!(cache.stats().capacity_bytes, cache.capacity());
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn capacity(&self) -> u64 {
        self.e.seg.g.capacity
    }

    /// Largest value this segment accepts.
    ///
    /// ```
    /// # let name = format!("doc-max-value-size-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// let max = cache.max_value_size();
    /// assert_eq!(max, memshelf::DEFAULT_MAX_VALUE_SIZE); // 1 MiB fits in 16 MiB
    /// cache.put(b"big", vec![0u8; max])?;
    /// assert!(matches!(
    ///     cache.put(b"big", vec![0u8; max + 1]),
    ///     Err(memshelf::Error::ValueTooLarge { .. })
    /// ));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn max_value_size(&self) -> usize {
        self.e.seg.g.max_value_size as usize
    }

    /// The value of `key`, or `None`.
    ///
    /// ```
    /// # let name = format!("doc-get-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// cache.put(b"k", b"v")?;
    /// assert_eq!(cache.get(b"k")?, Some(b"v".to_vec()));
    /// assert_eq!(cache.get(b"missing")?, None);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        Ok(self.get_into(key, &mut buf)?.then_some(buf))
    }

    /// Reads `key`'s value into `buf` (replacing its contents, reusing its
    /// allocation). Returns whether it was found. No allocation once `buf`
    /// is large enough.
    ///
    /// ```
    /// # let name = format!("doc-get-into-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// cache.put(b"a", b"first")?;
    /// cache.put(b"b", b"second")?;
    /// let mut buf = Vec::with_capacity(64);
    /// assert!(cache.get_into(b"a", &mut buf)?);
    /// assert_eq!(buf, b"first");
    /// assert!(cache.get_into(b"b", &mut buf)?); // replaces, reusing the allocation
    /// assert_eq!(buf, b"second");
    /// assert!(!cache.get_into(b"missing", &mut buf)?);
    /// assert!(buf.is_empty());
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn get_into(&self, key: impl AsRef<[u8]>, buf: &mut Vec<u8>) -> Result<bool> {
        let hit = self.e.lookup(key.as_ref(), buf)?;
        if !hit {
            buf.clear();
        }
        Ok(hit)
    }

    /// Looks up every key of `keys` and calls `f(i, value)` for each in
    /// order (`None` for a miss; the slice is only valid during the call).
    /// Each key counts as its single `get`; the batch overlaps the memory
    /// misses of successive lookups (the next buckets are prefetched), and
    /// a binding pays its call overhead once. Every key is checked first:
    /// a bad one fails the whole call before anything is read.
    ///
    /// ```
    /// # let name = format!("doc-getmany-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// cache.put(b"a", b"1")?;
    /// cache.put(b"c", b"3")?;
    /// let mut seen = Vec::new();
    /// cache.get_many_with(&[&b"a"[..], b"b", b"c"], |i, v| seen.push((i, v.map(<[u8]>::to_vec))))?;
    /// assert_eq!(seen, [(0, Some(b"1".to_vec())), (1, None), (2, Some(b"3".to_vec()))]);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn get_many_with<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        mut f: impl FnMut(usize, Option<&[u8]>),
    ) -> Result<()> {
        for k in keys {
            self.e.check_key(k.as_ref())?;
        }
        const AHEAD: usize = 4;
        for k in keys.iter().take(AHEAD) {
            self.e.seg.prefetch_bucket(self.e.hash(k.as_ref()));
        }
        // A buffer of our own: `f` may call back into the cache.
        let mut buf = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            if let Some(next) = keys.get(i + AHEAD) {
                self.e.seg.prefetch_bucket(self.e.hash(next.as_ref()));
            }
            let hit = self.e.lookup(k.as_ref(), &mut buf)?;
            f(i, hit.then_some(&buf[..]));
        }
        Ok(())
    }

    /// The values of `keys`, in order (`None` for a miss): the owned form of
    /// [`get_many_with`](Self::get_many_with).
    ///
    /// ```
    /// # let name = format!("doc-getmany2-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// cache.put(b"a", b"1")?;
    /// assert_eq!(cache.get_many(&["a", "b"])?, [Some(b"1".to_vec()), None]);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        self.get_many_with(keys, |_, v| out.push(v.map(<[u8]>::to_vec)))?;
        Ok(out)
    }

    /// Reads `key`'s value into a caller's fixed buffer (the C ABI's shape).
    ///
    /// ```
    /// # let name = format!("doc-read-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use memshelf::ReadInto;
    /// cache.put(b"k", b"hello")?;
    /// let mut buf = [0u8; 16];
    /// assert_eq!(cache.read(b"k", &mut buf)?, ReadInto::Hit(5));
    /// assert_eq!(&buf[..5], b"hello");
    /// assert_eq!(cache.read(b"k", &mut [0u8; 2])?, ReadInto::TooSmall(5));
    /// assert_eq!(cache.read(b"missing", &mut buf)?, ReadInto::Miss);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn read(&self, key: impl AsRef<[u8]>, out: &mut [u8]) -> Result<ReadInto> {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            if !self.e.lookup(key.as_ref(), &mut s)? {
                return Ok(ReadInto::Miss);
            }
            if s.len() > out.len() {
                return Ok(ReadInto::TooSmall(s.len()));
            }
            out[..s.len()].copy_from_slice(&s);
            Ok(ReadInto::Hit(s.len()))
        })
    }

    /// Whether `key` has a live entry (counts as a get).
    ///
    /// ```
    /// # let name = format!("doc-contains-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// cache.put(b"k", b"v")?;
    /// assert!(cache.contains(b"k")?);
    /// assert!(!cache.contains(b"missing")?);
    /// assert_eq!(cache.stats().hits, 1); // it counts as a get
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn contains(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        SCRATCH.with(|s| self.e.lookup(key.as_ref(), &mut s.borrow_mut()))
    }

    /// Inserts or replaces `key` with the segment's default TTL.
    ///
    /// ```
    /// # let name = format!("doc-put1-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// cache.put(b"k", b"one")?;
    /// cache.put(b"k", b"two")?; // replaces
    /// assert_eq!(cache.get(b"k")?.as_deref(), Some(&b"two"[..]));
    /// let s = cache.stats();
    /// assert_eq!((s.inserts, s.updates), (1, 1));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.put_with(key, value, &PutOptions::default())
    }

    /// Inserts or replaces `key` with a TTL and tags.
    ///
    /// ```
    /// # let name = format!("doc-put-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use memshelf::PutOptions;
    /// use std::time::Duration;
    /// cache.put_with(b"p:7", b"{}", &PutOptions::ttl(Duration::from_secs(30)).with_tags(&[b"product:7"]))?;
    /// cache.invalidate_tag(b"product:7")?;
    /// assert_eq!(cache.get(b"p:7")?, None);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        opts: &PutOptions<'_>,
    ) -> Result<()> {
        self.write(key.as_ref(), value.as_ref(), opts, Mode::Upsert)
            .map(|_| ())
    }

    /// Inserts `key` only if it has no live entry; returns whether it did.
    ///
    /// ```
    /// # let name = format!("doc-add-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// assert!(cache.add(b"k", b"first")?);
    /// assert!(!cache.add(b"k", b"second")?); // present: left alone
    /// assert_eq!(cache.get(b"k")?.as_deref(), Some(&b"first"[..]));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn add(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<bool> {
        self.add_with(key, value, &PutOptions::default())
    }

    /// [`add`](Self::add) with a TTL and tags.
    ///
    /// ```
    /// # let name = format!("doc-add-with-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use memshelf::{Expiry, PutOptions};
    /// use std::time::Duration;
    /// let opts = PutOptions::ttl(Duration::from_secs(30)).with_tags(&[b"batch:1"]);
    /// assert!(cache.add_with(b"job:1", b"queued", &opts)?);
    /// assert!(!cache.add_with(b"job:1", b"again", &opts)?);
    /// assert!(matches!(cache.ttl(b"job:1")?, Some(Expiry::In(d)) if d <= Duration::from_secs(30)));
    /// cache.invalidate_tag(b"batch:1")?;
    /// assert!(cache.add_with(b"job:1", b"requeued", &opts)?); // gone: added again
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn add_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        opts: &PutOptions<'_>,
    ) -> Result<bool> {
        Ok(!matches!(
            self.write(key.as_ref(), value.as_ref(), opts, Mode::AddIfAbsent)?,
            Outcome::NotStored
        ))
    }

    fn write(
        &self,
        key: &[u8],
        value: &[u8],
        opts: &PutOptions<'_>,
        mode: Mode,
    ) -> Result<Outcome> {
        self.e.check_key(key)?;
        let tags = self.e.tag_pairs(opts.tags)?;
        let names = item::encode_names(opts.tags);
        let ttl = self.e.ttl_ms(opts.ttl)?;
        let expire = if ttl == 0 { 0 } else { sys::now_ms() + ttl };
        self.e.write(
            &Write {
                key,
                value,
                flags: 0,
                expire_ms: expire,
                stale_until_ms: expire,
                tags: &tags,
                names: &names,
                epoch: None,
            },
            mode,
            None,
        )
    }

    /// Removes `key`; returns whether a live entry was there.
    ///
    /// ```
    /// # let name = format!("doc-delete-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// cache.put(b"k", b"v")?;
    /// assert!(cache.delete(b"k")?);
    /// assert!(!cache.delete(b"k")?); // nothing left to remove
    /// assert_eq!(cache.get(b"k")?, None);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.e.delete(key.as_ref())
    }

    /// Atomically adds `delta` to the ASCII decimal integer at `key` (a
    /// missing key counts as 0) and returns the new value. The entry keeps
    /// its expiry; a new one gets the default TTL.
    ///
    /// ```
    /// # let name = format!("doc-incr-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// assert_eq!(cache.incr(b"hits", 1)?, 1);
    /// assert_eq!(cache.incr(b"hits", 41)?, 42);
    /// assert_eq!(cache.get(b"hits")?.as_deref(), Some(&b"42"[..]));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn incr(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64> {
        self.incr_with(key, delta, Ttl::Default)
    }

    /// [`incr`](Self::incr); a TTL other than [`Ttl::Default`] also resets
    /// the entry's expiry.
    ///
    /// ```
    /// # let name = format!("doc-incr-with-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use memshelf::{Expiry, Ttl};
    /// use std::time::Duration;
    /// let minute = Duration::from_secs(60);
    /// assert_eq!(cache.incr_with(b"rate:ip", 1, Ttl::After(minute))?, 1);
    /// assert_eq!(cache.incr_with(b"rate:ip", 1, Ttl::Default)?, 2); // keeps its expiry
    /// assert!(matches!(cache.ttl(b"rate:ip")?, Some(Expiry::In(d)) if d <= minute));
    /// assert_eq!(cache.incr_with(b"rate:ip", -2, Ttl::Never)?, 0);
    /// assert_eq!(cache.ttl(b"rate:ip")?, Some(Expiry::Never));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn incr_with(&self, key: impl AsRef<[u8]>, delta: i64, ttl: Ttl) -> Result<i64> {
        let key = key.as_ref();
        self.e.check_key(key)?;
        let ttl = ttl.validate()?;
        let hash = self.e.hash(key);
        let mut buf = Vec::new();
        let mut names = Vec::new();
        loop {
            let found = self.e.find(key, hash, Some(&mut buf));
            let expect = found.as_ref().map(|f| f.slot.ident());
            let live = found.as_ref().filter(|f| {
                self.e.liveness(&f.meta, &mut None) == Liveness::Live
                    && f.meta.flags() & FLAG_NEGATIVE == 0
            });
            let (current, keep) = match live {
                Some(f) => {
                    if !self.e.names_of(f, &mut names) {
                        continue; // lapped: look again
                    }
                    (
                        parse_i64(&buf)?,
                        Some((f.meta.expire_ms(), f.meta.tags, f.meta.ntags())),
                    )
                }
                None => (0, None),
            };
            let new = current
                .checked_add(delta)
                .ok_or_else(|| Error::NotAnInteger {
                    detail: format!("{current} + {delta} overflows a signed 64-bit integer"),
                })?;
            let text = new.to_string();
            let (expire, tags, ntags) = match (keep, ttl) {
                (Some(k), Ttl::Default) => k,
                _ => {
                    let t = self.e.ttl_ms(ttl)?;
                    (
                        if t == 0 { 0 } else { sys::now_ms() + t },
                        [(0, 0); MAX_TAGS],
                        0,
                    )
                }
            };
            let w = Write {
                key,
                value: text.as_bytes(),
                flags: 0,
                expire_ms: expire,
                stale_until_ms: expire,
                tags: &tags[..ntags],
                names: if ntags > 0 { &names } else { &[] },
                epoch: None,
            };
            match self.e.write(&w, Mode::Expect(expect), None)? {
                Outcome::NotStored => continue,
                _ => return Ok(new),
            }
        }
    }

    /// Remaining lifetime of `key`, or `None` if it has no live entry.
    ///
    /// ```
    /// # let name = format!("doc-ttl-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use memshelf::{Expiry, PutOptions};
    /// use std::time::Duration;
    /// cache.put_with(b"short", b"v", &PutOptions::ttl(Duration::from_secs(60)))?;
    /// let Some(Expiry::In(left)) = cache.ttl(b"short")? else { panic!("expected a TTL") };
    /// assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50));
    /// cache.put(b"forever", b"v")?; // this segment has no default TTL
    /// assert_eq!(cache.ttl(b"forever")?, Some(Expiry::Never));
    /// assert_eq!(cache.ttl(b"missing")?, None);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn ttl(&self, key: impl AsRef<[u8]>) -> Result<Option<Expiry>> {
        let key = key.as_ref();
        self.e.check_key(key)?;
        let hash = self.e.hash(key);
        let mut buf = Vec::new();
        let Some(f) = self.e.find(key, hash, Some(&mut buf)) else {
            return Ok(None);
        };
        let mut now = None;
        if self.e.liveness(&f.meta, &mut now) != Liveness::Live
            || f.meta.flags() & FLAG_NEGATIVE != 0
        {
            return Ok(None);
        }
        Ok(Some(match f.meta.expire_ms() {
            0 => Expiry::Never,
            exp => Expiry::In(Duration::from_millis(
                exp.saturating_sub(now.unwrap_or_else(sys::now_ms)),
            )),
        }))
    }

    /// Gives a live entry a new TTL; returns whether the key was present.
    ///
    /// ```
    /// # let name = format!("doc-touch-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use memshelf::Expiry;
    /// use std::time::Duration;
    /// cache.put(b"k", b"v")?;
    /// assert_eq!(cache.ttl(b"k")?, Some(Expiry::Never));
    /// assert!(cache.touch(b"k", Duration::from_secs(5))?);
    /// assert!(matches!(cache.ttl(b"k")?, Some(Expiry::In(d)) if d <= Duration::from_secs(5)));
    /// assert_eq!(cache.get(b"k")?.as_deref(), Some(&b"v"[..])); // value kept
    /// assert!(!cache.touch(b"missing", Duration::from_secs(5))?);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn touch(&self, key: impl AsRef<[u8]>, ttl: impl Into<Ttl>) -> Result<bool> {
        let key = key.as_ref();
        self.e.check_key(key)?;
        let t = self.e.ttl_ms(ttl.into())?;
        let hash = self.e.hash(key);
        let mut buf = Vec::new();
        let mut names = Vec::new();
        loop {
            let Some(f) = self.e.find(key, hash, Some(&mut buf)) else {
                return Ok(false);
            };
            if self.e.liveness(&f.meta, &mut None) != Liveness::Live
                || f.meta.flags() & FLAG_NEGATIVE != 0
            {
                return Ok(false);
            }
            if !self.e.names_of(&f, &mut names) {
                continue; // lapped: look again
            }
            let expire = if t == 0 { 0 } else { sys::now_ms() + t };
            let grace = f.meta.stale_until_ms().saturating_sub(f.meta.expire_ms());
            let w = Write {
                key,
                value: &buf,
                flags: f.meta.flags(),
                expire_ms: expire,
                stale_until_ms: if expire == 0 { 0 } else { expire + grace },
                tags: &f.meta.tags[..f.meta.ntags()],
                names: &names,
                epoch: Some(f.meta.epoch()),
            };
            match self.e.write(&w, Mode::Expect(Some(f.slot.ident())), None)? {
                Outcome::NotStored => continue,
                _ => return Ok(true),
            }
        }
    }

    /// Every entry put with `tag` becomes a miss, in O(1).
    ///
    /// ```
    /// # let name = format!("doc-invalidate-tag-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use memshelf::PutOptions;
    /// let user7 = PutOptions::default().with_tags(&[b"user:7"]);
    /// cache.put_with(b"profile:7", b"{..}", &user7)?;
    /// cache.put_with(b"feed:7", b"[..]", &user7)?;
    /// cache.put(b"profile:8", b"{..}")?;
    /// cache.invalidate_tag(b"user:7")?;
    /// assert_eq!(cache.get(b"profile:7")?, None);
    /// assert_eq!(cache.get(b"feed:7")?, None);
    /// assert!(cache.contains(b"profile:8")?); // untagged: untouched
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn invalidate_tag(&self, tag: impl AsRef<[u8]>) -> Result<()> {
        let tag = tag.as_ref();
        self.e.tag_pairs(&[tag])?;
        self.e
            .seg
            .tag_version(self.e.tag_hash(tag))
            .fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Every entry becomes a miss, in O(1).
    ///
    /// ```
    /// # let name = format!("doc-clear-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// cache.put(b"a", b"1")?;
    /// cache.put(b"b", b"2")?;
    /// assert_eq!(cache.stats().entries, 2);
    /// cache.clear()?;
    /// assert_eq!(cache.get(b"a")?, None);
    /// assert_eq!(cache.get(b"b")?, None);
    /// assert_eq!(cache.stats().entries, 0);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn clear(&self) -> Result<()> {
        self.e.seg.clear_epoch().fetch_add(1, Ordering::SeqCst);
        crate::stats::reset_entries(&self.e);
        Ok(())
    }

    /// Caps the lifetime of every entry written from now on, by any
    /// process, at `cap` (`None` lifts the cap). An agent sets it while its
    /// invalidation feed is degraded (SPEC 6a), so nothing written meanwhile
    /// outlives the gap by more than `cap`.
    ///
    /// ```
    /// # let name = format!("doc-cap-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use std::time::Duration;
    /// cache.set_ttl_cap(Some(Duration::from_secs(1)))?;
    /// cache.put(b"k", b"v")?; // no TTL asked, but it expires within 1 s
    /// assert!(matches!(cache.ttl(b"k")?, Some(memshelf::Expiry::In(d)) if d <= Duration::from_secs(1)));
    /// cache.set_ttl_cap(None)?;
    /// assert_eq!(cache.ttl_cap(), None);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn set_ttl_cap(&self, cap: Option<Duration>) -> Result<()> {
        let ms = match cap {
            None => 0,
            Some(d) if d.is_zero() || d > crate::options::MAX_TTL => {
                return Err(Error::InvalidTtl(format!(
                    "a TTL cap of {d:?} is out of range (must be > 0)"
                )));
            }
            Some(d) => (d.as_millis() as u64).max(1),
        };
        self.e
            .seg
            .header_word(memoffset::offset_of!(crate::layout::Header, ttl_cap))
            .store(ms, Ordering::SeqCst);
        Ok(())
    }

    /// The TTL cap writes obey now: the one [`set_ttl_cap`](Self::set_ttl_cap)
    /// set, or the keeper's while the recorded keeper is dead.
    ///
    /// ```
    /// # let name = format!("doc-ttl-cap-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use std::time::Duration;
    /// assert_eq!(cache.ttl_cap(), None);
    /// cache.set_ttl_cap(Some(Duration::from_secs(5)))?;
    /// assert_eq!(cache.ttl_cap(), Some(Duration::from_secs(5)));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn ttl_cap(&self) -> Option<Duration> {
        match self.e.seg.ttl_cap_ms() {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Records this handle's process as the segment's *keeper* (an agent
    /// that keeps it coherent). Whenever the recorded keeper is dead, by the
    /// kernel's word, every write is capped at `cap_if_dead`, so a crashed
    /// agent never leaves the segment silently incoherent; a restarted agent
    /// calls this again (and clears the segment).
    ///
    /// ```
    /// # let name = format!("doc-keeper-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use std::time::Duration;
    /// assert_eq!(cache.keeper_alive(), None);
    /// cache.become_keeper(Duration::from_secs(1))?;
    /// assert_eq!(cache.keeper_alive(), Some(true));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn become_keeper(&self, cap_if_dead: Duration) -> Result<()> {
        if cap_if_dead.is_zero() || cap_if_dead > crate::options::MAX_TTL {
            return Err(Error::InvalidTtl(format!(
                "a keeper's TTL cap of {cap_if_dead:?} is out of range (must be > 0)"
            )));
        }
        let seg = &self.e.seg;
        let off = memoffset::offset_of!(crate::layout::Header, keeper);
        let token = seg.token()?;
        seg.header_word(off + 8)
            .store((cap_if_dead.as_millis() as u64).max(1), Ordering::SeqCst);
        seg.header_word(off).store(token, Ordering::SeqCst);
        Ok(())
    }

    /// Whether the segment's recorded keeper is alive (`None`: none was
    /// ever recorded).
    ///
    /// ```
    /// # let name = format!("doc-keeper-alive-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use std::time::Duration;
    /// assert_eq!(cache.keeper_alive(), None); // no keeper ever recorded
    /// cache.become_keeper(Duration::from_secs(1))?;
    /// // Any handle on the segment sees the keeper (this process) alive:
    /// let other = memshelf::Cache::open(&name, 16 << 20)?;
    /// assert_eq!(other.keeper_alive(), Some(true));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn keeper_alive(&self) -> Option<bool> {
        let seg = &self.e.seg;
        let off = memoffset::offset_of!(crate::layout::Header, keeper);
        match seg.header_word(off).load(Ordering::Acquire) {
            0 => None,
            t => Some(seg.alive(t & crate::registry::TOKEN_MASK)),
        }
    }

    /// Removes every key starting with `prefix` (a scan of the index);
    /// returns how many.
    ///
    /// ```
    /// # let name = format!("doc-delete-prefix-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// cache.put(b"user:1", b"a")?;
    /// cache.put(b"user:2", b"b")?;
    /// cache.put(b"item:1", b"c")?;
    /// assert_eq!(cache.delete_prefix(b"user:")?, 2);
    /// assert_eq!(cache.get(b"user:1")?, None);
    /// assert!(cache.contains(b"item:1")?);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn delete_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<u64> {
        let mut n = 0;
        for key in self.keys(Some(prefix.as_ref())) {
            if self.delete(&key)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Iterates the live keys (with `prefix`, if given). Best effort under
    /// concurrent writes: a key written or removed meanwhile may or may not
    /// appear.
    ///
    /// ```
    /// # let name = format!("doc-keys-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// cache.put(b"a:1", b"x")?;
    /// cache.put(b"a:2", b"y")?;
    /// cache.put(b"b:1", b"z")?;
    /// let mut keys: Vec<Vec<u8>> = cache.keys(Some(b"a:")).collect();
    /// keys.sort(); // index order, not insertion order
    /// assert_eq!(keys, [b"a:1".to_vec(), b"a:2".to_vec()]);
    /// assert_eq!(cache.keys(None).count(), 3);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn keys(&self, prefix: Option<&[u8]>) -> Keys {
        Keys {
            cache: self.clone(),
            prefix: prefix.unwrap_or_default().to_vec(),
            next: 0,
        }
    }

    /// The `n` keys with the most sampled hits (one get in 64 per thread
    /// is sampled) that are still in the cache, with their sampled counts,
    /// highest first: the hot keys and their skew.
    ///
    /// ```
    /// # let name = format!("doc-hot-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// cache.put(b"hot", b"1")?;
    /// cache.put(b"cold", b"2")?;
    /// for _ in 0..10_000 { cache.get(b"hot")?; }
    /// cache.get(b"cold")?;
    /// assert_eq!(cache.hot_keys(1)[0].0, b"hot");
    /// assert!(cache.stats().hot_key_share > 0.9);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn hot_keys(&self, n: usize) -> Vec<(Vec<u8>, u64)> {
        self.e.hot_keys(n)
    }

    /// Turns latency and hot-key sampling on or off for this handle (on by
    /// default; its cost is one thread-local decrement per get or put).
    ///
    /// ```
    /// # let name = format!("doc-set-sampling-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// cache.set_sampling(false);
    /// cache.put(b"k", b"v")?;
    /// for _ in 0..1000 { cache.get(b"k")?; }
    /// assert_eq!(cache.stats().get_latency.count(), 0);
    /// assert!(cache.hot_keys(1).is_empty());
    /// cache.set_sampling(true);
    /// for _ in 0..1000 { cache.get(b"k")?; }
    /// assert!(cache.stats().get_latency.count() > 0);
    /// assert_eq!(cache.hot_keys(1)[0].0, b"k");
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn set_sampling(&self, on: bool) {
        self.e.sampling.store(on, Ordering::Relaxed);
    }

    /// Segment-wide statistics.
    ///
    /// ```
    /// # let name = format!("doc-stats-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// cache.put(b"k", b"v")?;
    /// cache.get(b"k")?;
    /// cache.get(b"missing")?;
    /// let s = cache.stats();
    /// assert_eq!((s.hits, s.misses, s.inserts, s.entries), (1, 1, 1, 1));
    /// assert_eq!(s.capacity_bytes, 16 << 20);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        crate::stats::collect(&self.e)
    }

    /// The layout version this library speaks.
    ///
    /// ```
    /// # let name = format!("doc-layout-version-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use memshelf::Cache;
    /// assert_eq!(Cache::layout_version(), memshelf::LAYOUT_VERSION);
    /// assert_eq!(cache.stats().layout_version, Cache::layout_version());
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn layout_version() -> u32 {
        LAYOUT_VERSION
    }

    /// Test support (multi-process tests): this handle's registry token.
    #[doc(hidden)]
    pub fn debug_token(&self) -> Result<u64> {
        self.e.seg.token()
    }

    /// Test support: holds `key`'s bucket lock for `hold`, calling `on_held`
    /// once it has it (shows that a live holder keeps its lock).
    #[doc(hidden)]
    pub fn debug_hold_bucket_lock(
        &self,
        key: impl AsRef<[u8]>,
        hold: Duration,
        on_held: impl FnOnce(),
    ) -> Result<()> {
        let hash = self.e.hash(key.as_ref());
        let mut steals = 0;
        let _lock = index::lock_bucket(&self.e.seg, hash, &mut steals, LOCK_WAIT_LIMIT)?;
        on_held();
        std::thread::sleep(hold);
        Ok(())
    }
}

fn parse_i64(b: &[u8]) -> Result<i64> {
    std::str::from_utf8(b)
        .ok()
        .filter(|s| !s.is_empty() && !s.starts_with('+') && s.len() <= 20)
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| Error::NotAnInteger {
            detail: format!(
                "the value ({} bytes, {:?}) is not an ASCII decimal signed 64-bit integer",
                b.len(),
                String::from_utf8_lossy(&b[..b.len().min(32)])
            ),
        })
}

/// Iterator over live keys, from [`Cache::keys`].
pub struct Keys {
    cache: Cache,
    prefix: Vec<u8>,
    next: u64,
}

impl Iterator for Keys {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        let e = &self.cache.e;
        let total = e.seg.g.index_slots();
        let mut value = Vec::new();
        while self.next < total {
            let per = SLOTS_PER_BUCKET as u64;
            let (b, i) = (self.next / per, (self.next % per) as usize + 1);
            self.next += 1;
            let s = Slot(e.seg.bucket_word_at(b, i).load(Ordering::Acquire));
            if s.kind() != KIND_ITEM {
                continue;
            }
            let mut key = Vec::new();
            let log = e.seg.log(s.log());
            if let Read::Valid(m) = item::read(
                &e.seg,
                log,
                s.pos(),
                None,
                Some(&mut value),
                Some(&mut key),
                Check::Reader,
            ) {
                if e.liveness(&m, &mut None) == Liveness::Live
                    && m.flags() & FLAG_NEGATIVE == 0
                    && key.starts_with(&self.prefix)
                {
                    return Some(key);
                }
            }
        }
        None
    }
}

/// Removes segment `name` from /dev/shm. Processes still attached keep
/// working on their mapping until they drop it.
pub fn unlink(name: &str) -> Result<()> {
    crate::options::validate_name(name)?;
    crate::shm::Location::shm(name).unlink().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound { name: name.into() }
        } else {
            Error::io("shm_unlink", e)
        }
    })
}

/// Removes a file-backed segment (opened with `path`).
pub fn unlink_path(path: impl AsRef<std::path::Path>) -> Result<()> {
    crate::shm::Location::file(path.as_ref())
        .unlink()
        .map_err(|e| Error::io("unlink", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot_of(c: &Cache, key: &[u8]) -> Slot {
        let h = c.e.hash(key);
        c.e.find(key, h, None).expect("present").slot
    }

    #[test]
    fn large_update_of_a_small_key_goes_to_main() {
        let name = format!("unit-large-{}", std::process::id());
        let c = Cache::open(&name, 1 << 20).unwrap();
        c.put(b"k", b"small").unwrap();
        let big = vec![7u8; c.max_value_size()];
        c.put(b"k", &big).unwrap();
        assert_eq!(c.get(b"k").unwrap().as_deref(), Some(&big[..]));
        crate::unlink(&name).unwrap();
    }

    #[test]
    fn hits_set_frequency_bits() {
        let name = format!("unit-freq-{}", std::process::id());
        let c = Cache::open(&name, 1 << 20).unwrap();
        c.put(b"k", b"v").unwrap();
        assert_eq!(slot_of(&c, b"k").freq(), 0);
        c.get(b"k").unwrap();
        assert_eq!(slot_of(&c, b"k").freq(), 1);
        for _ in 0..5 {
            c.get(b"k").unwrap();
        }
        assert_eq!(slot_of(&c, b"k").freq(), 3);
        crate::unlink(&name).unwrap();
    }
}

#[cfg(test)]
mod eviction_tests {
    use super::*;

    #[test]
    fn hot_key_survives_and_is_promoted() {
        let name = format!("unit-hot-{}", std::process::id());
        let c = Cache::open(&name, 1 << 20).unwrap();
        c.put(b"hot", b"v").unwrap();
        // Sets of 4000 cold keys, each cycled 10 times: more than the small
        // log holds, so a key's second insert finds its ghost and goes to
        // the main log; each new set then pushes the previous one out of it.
        for i in 0..100_000u32 {
            c.put(format!("cold{}:{}", i / 40_000, i % 4000), [0u8; 100])
                .unwrap();
            if i % 10 == 0 {
                assert!(
                    c.get(b"hot").unwrap().is_some(),
                    "hot key lost at {i}: {:?}",
                    c.stats()
                );
            }
        }
        let s = c.stats();
        assert!(s.promotions >= 1, "{s:?}");
        assert!(s.reinsertions >= 1, "{s:?}");
        crate::unlink(&name).unwrap();
    }
}
