//! The two FIFO logs and S3-FIFO eviction.
//!
//! A log is a ring of `len` bytes addressed by ever-growing positions
//! (modulo `wrap`). A writer claims `[pos, pos+size)` by moving the head
//! with one CAS (skipping to the next lap when the item would straddle the
//! end, leaving a pad record). Before writing it makes sure the tail has
//! passed `pos + size - len`: it processes the records at the tail, one CAS
//! of the tail per record, which is where eviction happens:
//!
//! * small log: an item hit since insertion moves to the main log; one
//!   never hit leaves a ghost slot (quick demotion);
//! * main log: an item hit since it was (re)inserted is reinserted at the
//!   head with its count decremented (lazy promotion); one never hit is
//!   evicted;
//! * expired or invalidated items are dropped, never moved.
//!
//! Several writers process the tail at once, each claiming records with a
//! CAS. A writer killed at any point leaves at worst garbage bytes (skipped
//! 8 bytes at a time by the next tail pass) or an item no slot points to.

use std::sync::atomic::Ordering;

use crate::engine::{Engine, Liveness};
use crate::index::{KIND_ITEM, Slot, tag_of};
use crate::item::{self, Check, Encoded, Meta, Read};
use crate::layout::ITEM_HEADER;
use crate::layout::SLOTS;
use crate::segment::{LogGeom, LogId, REC_ITEM, REC_MAGIC, REC_PAD};
use crate::sink;
use crate::stats::Counter;

/// Deepest nesting of tail passes (a promotion's or reinsertion's own
/// allocation makes room too); deeper allocations skip it, which only costs
/// the records they overwrite their S3-FIFO treatment.
const MAX_DEPTH: u32 = 6;

/// Most reinsertions one tail pass does before it evicts regardless.
const REINSERT_BUDGET: u32 = 64;

impl Engine {
    /// Claims `size` bytes in `log` and clears room for them. Returns the
    /// position.
    pub(crate) fn alloc(&self, log: &LogGeom, size: u64, depth: u32) -> u64 {
        let (pos, skipped) = self.alloc_raw(log, size);
        if depth <= MAX_DEPTH {
            self.make_room(log, log.add(pos, size), depth);
        }
        self.write_pad(log, skipped);
        pos
    }

    /// Claims `size` bytes at the head. Returns the position and, when the
    /// claim skipped the end of a lap, where the skipped bytes start (the
    /// caller writes a pad record there once the tail has passed it).
    fn alloc_raw(&self, log: &LogGeom, size: u64) -> (u64, Option<u64>) {
        debug_assert!(size <= log.len && size % 8 == 0);
        let head = self.seg.head(log);
        loop {
            let h0 = head.load(Ordering::Relaxed);
            // `& !7`: a corrupted (unaligned) head is realigned by this CAS.
            let h = (h0 % log.wrap) & !7;
            let off = h % log.len;
            let start = if off + size > log.len {
                log.add(h, log.len - off)
            } else {
                h
            };
            let new = log.add(start, size);
            if head
                .compare_exchange_weak(h0, new, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return (start, (start != h).then_some(h));
            }
        }
    }

    /// Marks the skipped end of a lap so tail passes jump it.
    fn write_pad(&self, log: &LogGeom, from: Option<u64>) {
        if let Some(h) = from {
            let off = h % log.len;
            let units = (log.len - off) / 8;
            let w0 = (REC_MAGIC << 48) | (REC_PAD << 40) | units;
            self.seg.word(log.off + off).store(w0, Ordering::Relaxed);
        }
    }

    /// Processes the tail of `log` until it has passed `need - len`.
    fn make_room(&self, log: &LogGeom, need: u64, depth: u32) {
        let mut reinserts = 0u32;
        let tail = self.seg.tail(log);
        loop {
            let t0 = tail.load(Ordering::Acquire);
            let t = t0 % log.wrap;
            let target = log.add(need, log.wrap - log.len);
            let head = self.seg.head(log);
            let h0 = head.load(Ordering::Acquire);
            let h = h0 % log.wrap;
            if log.before(h, need) {
                // The head is behind our own claim: only corruption moves it
                // back. Move it forward again, or the tail target below
                // would lie ahead of the head for ever.
                let _ = head.compare_exchange(h0, need, Ordering::AcqRel, Ordering::Relaxed);
                continue;
            }
            if t % 8 != 0
                || log.before(h, t)
                || (log.before(t, target) && log.dist(target, t) > 2 * log.len)
            {
                // An unaligned tail, a tail ahead of the head, or one laps
                // behind: only corruption gets here. Resynchronise.
                let _ = tail.compare_exchange(t0, target, Ordering::AcqRel, Ordering::Relaxed);
                continue;
            }
            if !log.before(t, target) {
                return;
            }
            let (len, is_item) = self.record_at(log, t, target);
            if tail
                .compare_exchange(t0, log.add(t, len), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if is_item {
                let _ = self.evict_at(log, t, depth, &mut reinserts);
            }
        }
    }

    /// Length of the record at `pos`, and whether it is an item. Garbage
    /// (a writer killed before its header) is skipped up to the next
    /// plausible header, the lap's end or `limit`.
    fn record_at(&self, log: &LogGeom, pos: u64, limit: u64) -> (u64, bool) {
        let mut p = pos;
        loop {
            let off = p % log.len;
            let room = log.len - off;
            if p != pos && (!log.before(p, limit) || off == 0) {
                return (log.dist(p, pos), false);
            }
            if room < ITEM_HEADER {
                if p == pos {
                    return (room, false);
                }
                return (log.dist(p, pos), false);
            }
            let w0 = self.seg.word(log.off + off).load(Ordering::Acquire);
            let units = w0 & 0xffff_ffff;
            if w0 >> 48 == REC_MAGIC {
                let kind = (w0 >> 40) & 0xff;
                if kind == REC_PAD && units * 8 == room {
                    return if p == pos {
                        (room, false)
                    } else {
                        (log.dist(p, pos), false)
                    };
                }
                if kind == REC_ITEM && units * 8 >= ITEM_HEADER && units * 8 <= room {
                    return if p == pos {
                        (units * 8, true)
                    } else {
                        (log.dist(p, pos), false)
                    };
                }
            }
            p = log.add(p, 8);
        }
    }

    /// Applies S3-FIFO to the item at the tail position `pos` (which this
    /// caller has just claimed).
    fn evict_at(&self, log: &LogGeom, pos: u64, depth: u32, reinserts: &mut u32) -> Option<()> {
        let meta = item::peek(&self.seg, log, pos)?;
        let hash = meta.hash();
        let tag = tag_of(hash);
        let (index, word, slot) = SLOTS.clone().find_map(|i| {
            let w = self.seg.bucket_word(hash, i);
            let s = Slot(w.load(Ordering::Acquire));
            (s.kind() == KIND_ITEM && s.tag() == tag && s.log() == log.id && s.pos() == pos)
                .then_some((i, w, s))
        })?;
        // Replaces the slot while it still points at this item (a hit may
        // bump its frequency bits meanwhile: that is not a reason to fail).
        let remove = |with: Slot, counter: Option<Counter>| {
            let mut cur = slot;
            loop {
                match word.compare_exchange(cur.0, with.0, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => {
                        if let Some(c) = counter {
                            self.count(c, 1);
                        }
                        if with.kind() != KIND_ITEM {
                            self.entry_removed(meta.epoch());
                        }
                        return;
                    }
                    Err(now) if Slot(now).ident() == slot.ident() => cur = Slot(now),
                    Err(_) => return,
                }
            }
        };
        // Moves the key to its copy: under the bucket lock, only if the slot
        // still points at the source (no writer or delete replaced it), the
        // source is still intact, and no other valid slot holds the key.
        // Meanwhile the old bytes may have been overwritten (the tail is
        // past them), so a writer or a delete of the key may not have
        // recognised this slot as the key's: moving then would bring an old
        // value back beside a newer one or after the delete.
        let publish_move = |copy: Copied<'_>, with: Slot, counter: Counter| {
            let Copied {
                key,
                key_hash,
                held,
                ..
            } = copy;
            let copy_checked = held.is_some();
            let _lock = match held {
                Some(g) => g,
                None => match self.lock_for_move(hash) {
                    Some(g) => g,
                    None => {
                        remove(Slot(0), None);
                        return;
                    }
                },
            };
            let ks = self.key_slots(&key, hash);
            // The source must still be intact, unless our copy was written
            // over it: then `copy_item` checked it under this same lock
            // hold, before writing, and nobody could change the key's slots
            // since (writers and deletes, which identify a key's slots by
            // the bytes at the slot's position, wait for this lock).
            let intact = copy_checked || self.source_intact(log, pos, &key, key_hash);
            if !intact || ks.valid.as_ref().is_some_and(|f| f.slot_index != index) {
                remove(Slot(0), None);
            } else {
                remove(with, Some(counter));
            }
        };
        match self.liveness(&meta, &mut None) {
            Liveness::Live | Liveness::Stale => {}
            Liveness::Expired => {
                remove(Slot(0), Some(Counter::Expirations));
                return None;
            }
            Liveness::Invalidated => {
                remove(Slot(0), None);
                return None;
            }
        }
        match log.id {
            LogId::Small
                if depth < MAX_DEPTH && (slot.freq() >= 1 || self.main_has_room(meta.size())) =>
            {
                let counter = if slot.freq() >= 1 {
                    Counter::Promotions
                } else {
                    Counter::MovedToMain
                };
                match self.copy_item(log, pos, LogId::Main, depth + 1, hash) {
                    Some(c) => {
                        let with = Slot::item(tag, LogId::Main, c.npos, 0);
                        publish_move(c, with, counter)
                    }
                    None => remove(Slot(0), None),
                }
                None
            }
            LogId::Small => {
                let head = self.seg.head(&self.seg.small).load(Ordering::Relaxed);
                remove(Slot::ghost(tag, head), Some(Counter::Evictions));
                None
            }
            LogId::Main
                if slot.freq() >= 1 && *reinserts < REINSERT_BUDGET && depth < MAX_DEPTH =>
            {
                *reinserts += 1;
                // The copy's own allocation makes room first (a nested tail
                // pass): writing it before the tail has passed the bytes it
                // overwrites would destroy unprocessed records.
                match self.copy_item(log, pos, LogId::Main, depth + 1, hash) {
                    Some(c) => {
                        let with = Slot::item(tag, LogId::Main, c.npos, slot.freq() - 1);
                        publish_move(c, with, Counter::Reinsertions)
                    }
                    None => remove(Slot(0), None),
                }
                None
            }
            LogId::Main => {
                remove(Slot(0), Some(Counter::Evictions));
                None
            }
        }
    }

    /// Whether the main log can take `size` bytes without evicting a live
    /// item: it has never filled, or the record at its tail is dead
    /// (replaced, deleted, expired, cleared). S3-FIFO evicts only when the
    /// whole cache is full: until then (and after a `clear`), items leaving
    /// the small log without a hit move to main instead of becoming ghosts.
    fn main_has_room(&self, size: u64) -> bool {
        let log = &self.seg.main;
        let t = self.seg.tail(log).load(Ordering::Acquire);
        let h = self.seg.head(log).load(Ordering::Acquire);
        if log.dist(h, t) + size <= log.len {
            return true;
        }
        let t = t % log.wrap;
        let Some(meta) = item::peek(&self.seg, log, t) else {
            return true;
        };
        let hash = meta.hash();
        let tag = tag_of(hash);
        let pointed = SLOTS.clone().any(|i| {
            let s = Slot(self.seg.bucket_word(hash, i).load(Ordering::Acquire));
            s.kind() == KIND_ITEM && s.tag() == tag && s.log() == LogId::Main && s.pos() == t
        });
        !pointed
            || !matches!(
                self.liveness(&meta, &mut None),
                Liveness::Live | Liveness::Stale
            )
    }

    /// Takes the bucket lock of `hash` for a move; a lock held by a live
    /// but stopped process: `None` (an evictor evicts rather than wait).
    fn lock_for_move(&self, hash: u64) -> Option<crate::index::BucketGuard<'_>> {
        let mut steals = 0;
        let lock = crate::index::lock_bucket(
            &self.seg,
            hash,
            &mut steals,
            std::time::Duration::from_millis(1),
        );
        if steals > 0 {
            self.count(Counter::LockTakeovers, steals);
        }
        lock.ok()
    }

    /// Copies a valid item to the head of `to` (its allocation makes room
    /// first, at `depth`). `hash`: the key's.
    ///
    /// In a full main log a reinsertion's bytes can overlap its own source
    /// (the head is within one item of the tail, which has just passed the
    /// source): with items of different sizes the copy then starts inside
    /// or just before it. Writing it destroys the source before the move
    /// is published, so the bucket lock is taken first and the source
    /// checked intact under it; the lock is returned, held, for the
    /// publish (`Copied::held`). A concurrent delete or writer of the key
    /// therefore sees either the intact source or, after the publish, the
    /// copy. (This used to drop the key whenever the copy overlapped the
    /// source other than exactly: a hot key lost in any workload with
    /// mixed item sizes.)
    fn copy_item(
        &self,
        from: &LogGeom,
        pos: u64,
        to: LogId,
        depth: u32,
        hash: u64,
    ) -> Option<Copied<'_>> {
        let mut key = Vec::new();
        let mut value = Vec::new();
        let mut meta = Meta::empty();
        let Read::Valid = item::read_entry(
            &self.seg,
            from,
            pos,
            &mut key,
            Some(&mut value),
            &mut meta,
            Check::Evictor,
        ) else {
            return None;
        };
        let mut names = Vec::new();
        item::read_names(&self.seg, from, pos, &meta, Check::Evictor, &mut names);
        let mut enc = Encoded::new(
            &key,
            value.len(),
            meta.flags(),
            meta.hash(),
            meta.epoch(),
            meta.expire_ms(),
            meta.stale_until_ms(),
            &meta.tags[..meta.ntags()],
            names.len(),
        );
        let dst = *self.seg.log(to);
        if enc.size() > dst.len {
            return None;
        }
        let size = enc.size();
        let npos = self.alloc(&dst, size, depth);
        let held = if from.id == to && overlaps(&dst, pos, npos, size) {
            let checked = self
                .lock_for_move(hash)
                .filter(|_| self.source_intact(from, pos, &key, meta.hash()));
            match checked {
                Some(g) => Some(g),
                None => {
                    // The lock is held by a stopped process, or another
                    // writer overwrote the source meanwhile: the key is
                    // dropped here (the caller clears its slot). The claim
                    // is still written: an item no slot points to, which
                    // the next tail pass skips by its length. (Left
                    // unwritten, its old bytes could hold a stale header
                    // whose length swallows the records after it.)
                    item::write(&self.seg, &dst, npos, &mut enc, &key, &value, &names);
                    return None;
                }
            }
        } else {
            None
        };
        item::write(&self.seg, &dst, npos, &mut enc, &key, &value, &names);
        Some(Copied {
            npos,
            key,
            key_hash: meta.hash(),
            held,
        })
    }

    /// Whether the source of a move, `key`'s item at `pos` of `log`, still
    /// validates (for the tail pass: the checksum alone).
    fn source_intact(&self, log: &LogGeom, pos: u64, key: &[u8], key_hash: u64) -> bool {
        matches!(
            item::read_value(
                &self.seg,
                log,
                pos,
                key,
                key_hash,
                sink::none(),
                &mut Meta::empty(),
                Check::Evictor
            ),
            Read::Valid
        )
    }
}

/// An item copied by `copy_item`.
pub(crate) struct Copied<'a> {
    npos: u64,
    key: Vec<u8>,
    /// The key's hash (computed from the validated copy of the key).
    key_hash: u64,
    /// The key's bucket lock, when the copy was written over its source.
    held: Option<crate::index::BucketGuard<'a>>,
}

/// Whether `[a, a+size)` and `[b, b+size)` (positions in `log`; records
/// never straddle a lap's end) share a byte.
fn overlaps(log: &LogGeom, a: u64, b: u64, size: u64) -> bool {
    let (a, b) = (a % log.len, b % log.len);
    a.abs_diff(b) < size
}
