//! The write path: `write` (size checks, log choice, item encoding and
//! allocation, then `publish` under the bucket lock, and the counters) and
//! `delete`. Called by `cache.rs` (put, add, incr, touch...) and
//! `lease.rs` (a fill); calls `bucket.rs`, `log.rs` (`alloc`) and
//! `item.rs` (`write`, `hint`).

use std::sync::atomic::Ordering;

use crate::bucket::{Mode, Outcome};
use crate::engine::{Engine, Liveness};
use crate::error::{Error, Result};
use crate::index::{self, KIND_ITEM, LOCK_WAIT_LIMIT, Slot, tag_of};
use crate::item::{self, Encoded, FLAG_NEGATIVE};
use crate::layout::{SLOTS, pad8};
use crate::sampling::Op;
use crate::segment::{LogGeom, LogId};
use crate::stats::Counter;
use crate::sys;

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

impl Engine {
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
                    item::hint(&self.seg, self.seg.log(s.log()), s.pos(), w.key, hash)
                        .map(|m| (s, m))
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
