//! Model (a): one index bucket, its lock, and the writers, evictors and
//! readers around it (invariant I1).
//!
//! Replicates:
//!
//! * `index.rs` `lock_bucket`: `load(Acquire)`; free: `compare_exchange(0,
//!   me, AcqRel, Relaxed)`; held by a token the kernel says is dead:
//!   `compare_exchange(cur, me, AcqRel, Relaxed)` (a takeover). The engine
//!   (dffec20) uses `Relaxed`/`Acquire` there, which this model shows to
//!   be too weak (`Variant::LockAcquireOnly`); a live
//!   holder is waited for (never robbed); `BucketGuard::drop`:
//!   `compare_exchange(me, 0, Release, Relaxed)`. The engine's backoff
//!   before asking the kernel only delays the question, so the model asks
//!   at once. The evictor's 1 ms limit is a bounded number of waits, after
//!   which it drops the slot instead of moving it (`evict_at`
//!   `publish_move`).
//! * `registry.rs` `alive`: the kernel's OFD lock on the slot's byte
//!   (modelled as a `SeqCst` flag: the syscall orders everything) and the
//!   slot's generation `load(Acquire)`; `register`: take the OFD lock, then
//!   `fetch_add(1, AcqRel)` of the generation. A process that dies sets its
//!   ground-truth flag and then (the kernel, at exit) drops its OFD lock:
//!   the liveness oracle says dead only after it stopped.
//! * `item.rs` `read_value` and `read_entry` (`Check::Reader` and
//!   `Check::Evictor`) and
//!   `holds_key`; items are three words (key, version, checksum seeded
//!   with the position); `write` as in [`crate::ring`].
//! * `bucket.rs` `Engine::find` (lock-free, follows a slot that changed),
//!   `key_slots` (valid copy, other copies identified by key bytes,
//!   validated or not, the key's PENDING slot), `publish` (the CAS loop,
//!   `clear_others`, voiding a PENDING slot), `free_slot`; `write.rs`
//!   `delete`.
//! * `log.rs` `evict_at` for an item promoted or reinserted: the tail
//!   claims it, `copy_item` (read with `Check::Evictor`, write the copy),
//!   then `publish_move` under the lock: `key_slots`, the source re-read
//!   (`Check::Evictor`: still intact?), and `remove` (CAS from the observed
//!   slot, retried while only its frequency bits changed).
//!
//! A recycler thread stands for the writer that owns the old copy's bytes
//! on the next lap: once the tail has passed them it overwrites them (with
//! `fence(Release)` first, as `item::write`) with another key's item.
//!
//! Oracles: I1 after every scenario (at most one slot of the key validates,
//! and it holds the version the last locked write published); a reader
//! that starts after a put (or delete) returned sees that version (or a
//! miss), never an older one; every takeover of a bucket lock is from a
//! process that really stopped; the locked critical sections never overlap
//! (a loom-checked cell written in each: a second live holder is a data
//! race).

use crate::{
    Arc, AtomicBool, AtomicU32, AtomicU64, Ordering, UnsafeCell, checksum, fence, spin, thread,
};

pub(crate) const NSLOTS: usize = 2;
pub(crate) const NPOS: usize = 8;
pub(crate) const NREG: usize = 3;
pub(crate) const NPROC: usize = 4;
pub(crate) const NRECS: usize = 2;
/// How often a waiter waits (yields) for a live holder before it gives up
/// (the engine's time limits, see `lock_bucket`).
pub(crate) const WAITS: u32 = 2;

pub(crate) const KIND_EMPTY: u64 = 0;
pub(crate) const KIND_ITEM: u64 = 1;
pub(crate) const KIND_PENDING: u64 = 3;

/// The key every scenario is about, and another key (its tag differs).
pub(crate) const K: u64 = 1;
pub(crate) const OTHER: u64 = 2;

/// Seeds differ by a lap: the recycler's item at the same words has
/// another position.
const LAP: u64 = 100;

/// What a scenario may break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The engine's protocol, with the one change this model asks of
    /// `index.rs` `lock_bucket`: the lock word is read with `Acquire` and
    /// taken with `AcqRel` (see `LockAcquireOnly`).
    Correct,
    /// `lock_bucket` exactly as in the engine today (`load(Relaxed)`,
    /// `compare_exchange(.., Acquire, Relaxed)`): nothing orders the
    /// holder's registration (its generation bump) before a waiter's
    /// reading of its token, so the waiter may read the slot's previous
    /// generation, judge a live holder dead and take its lock (found by
    /// `registry_reuse`; harmless on x86-TSO, where stores are seen in
    /// order, but not promised by the language's memory model).
    LockAcquireOnly,
    /// The evictor publishes its move with a bare CAS: no lock, no
    /// `key_slots`, no re-check of the source (the early engine).
    MoveWithoutLock,
    /// `publish_move` does not re-read the source under the lock.
    NoIntactCheck,
    /// `key_slots` finds only the key's *valid* slot (no `holds_key`).
    KeySlotsValidOnly,
    /// `BucketGuard::drop` releases with `Relaxed`.
    UnlockRelaxed,
    /// A waiter takes the lock from a holder that has not released it
    /// after a while, alive or not (the old "2 s" rule).
    StealOnTimeout,
    /// `register` bumps the slot's generation before its OFD lock
    /// succeeded.
    GenerationBeforeLock,
    /// A reinsertion whose copy overlaps its source writes the copy first
    /// and then publishes under the lock as if the source were intact (the
    /// copy is "its own"): a delete in between no longer recognises the
    /// slot by its bytes, deletes nothing, and the move brings the key
    /// back.
    OverlapCopyUnlocked,
}

/// A slot word (`index.rs` `Slot`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot(pub u64);

impl Slot {
    pub fn item(key: u64, pos: u64, freq: u64) -> Slot {
        Slot((KIND_ITEM << 62) | (freq.min(3) << 60) | (key << 48) | pos)
    }
    pub fn pending(key: u64, rec: u64, generation: u64) -> Slot {
        Slot((KIND_PENDING << 62) | (key << 48) | (rec << 24) | generation)
    }
    pub fn kind(self) -> u64 {
        self.0 >> 62
    }
    pub fn freq(self) -> u64 {
        (self.0 >> 60) & 3
    }
    pub fn tag(self) -> u64 {
        (self.0 >> 48) & 0xfff
    }
    pub fn pos(self) -> u64 {
        self.0 & 0xffff_ffff_ffff
    }
    pub fn rec(self) -> u64 {
        (self.0 >> 24) & 0xff_ffff
    }
    pub fn lease_gen(self) -> u64 {
        self.0 & 0xff_ffff
    }
    pub fn with_freq(self, f: u64) -> Slot {
        Slot((self.0 & !(3 << 60)) | (f.min(3) << 60))
    }
    pub fn ident(self) -> u64 {
        self.0 & !(3 << 60)
    }
}

pub(crate) struct Item {
    pub key: AtomicU64,
    pub ver: AtomicU64,
    pub sum: AtomicU64,
}

/// A lease record (`lease.rs`): claim, hash, deadline, futex.
pub(crate) struct Rec {
    pub claim: AtomicU64,
    pub hash: AtomicU64,
    pub deadline: AtomicU64,
    pub futex: AtomicU32,
}

/// A locked event, in lock order (the linearisation of the key's writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A publish of this version.
    Put(u64),
    /// A delete.
    Delete,
    /// Anything else done under the lock (an evictor's move or drop).
    Other,
}

pub(crate) struct Seg {
    pub v: Variant,
    /// The lease model's broken variant: `delete` leaves the key's fill in
    /// progress alone.
    pub delete_ignores_pending: bool,
    pub lock: AtomicU64,
    pub slots: [AtomicU64; NSLOTS],
    pub items: [Item; NPOS],
    /// Positions below the tail have been passed (no longer readable).
    pub tail: AtomicU64,
    /// The kernel's OFD locks on the registry bytes.
    pub reg_locked: [AtomicBool; NREG],
    pub reg_gen: [AtomicU64; NREG],
    /// Ground truth: each process's token and whether it stopped.
    pub owner_token: [AtomicU64; NPROC],
    pub proc_dead: [AtomicBool; NPROC],
    pub recs: [Rec; NRECS],
    /// Written in every locked section: two live holders at once are a
    /// data race loom reports.
    pub log: UnsafeCell<Vec<Event>>,
}

pub(crate) fn token(slot: usize, generation: u64) -> u64 {
    ((slot as u64 + 1) << 24) | generation
}

pub(crate) struct Guard<'a> {
    seg: &'a Seg,
    me: u64,
}

impl Drop for Guard<'_> {
    /// `BucketGuard::drop`.
    fn drop(&mut self) {
        let order = if self.seg.v == Variant::UnlockRelaxed {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        let _ = self
            .seg
            .lock
            .compare_exchange(self.me, 0, order, Ordering::Relaxed);
    }
}

/// What `key_slots` found (`bucket.rs` `KeySlots`).
pub(crate) struct KeySlots {
    pub pending: Option<(usize, Slot)>,
    pub valid: Option<(usize, Slot, u64)>,
    pub others: Vec<(usize, Slot)>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    Invalid,
    OtherKey,
    Valid(u64),
}

impl Seg {
    pub fn new(v: Variant) -> Seg {
        Seg {
            v,
            delete_ignores_pending: false,
            lock: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
            items: std::array::from_fn(|_| Item {
                key: AtomicU64::new(0),
                ver: AtomicU64::new(0),
                sum: AtomicU64::new(0),
            }),
            tail: AtomicU64::new(0),
            reg_locked: std::array::from_fn(|_| AtomicBool::new(false)),
            reg_gen: std::array::from_fn(|_| AtomicU64::new(0)),
            owner_token: std::array::from_fn(|_| AtomicU64::new(0)),
            proc_dead: std::array::from_fn(|_| AtomicBool::new(false)),
            recs: std::array::from_fn(|_| Rec {
                claim: AtomicU64::new(0),
                hash: AtomicU64::new(0),
                deadline: AtomicU64::new(0),
                futex: AtomicU32::new(0),
            }),
            log: UnsafeCell::new(Vec::new()),
        }
    }

    pub fn slot(&self, i: usize) -> &AtomicU64 {
        &self.slots[i]
    }

    // ---- registry (registry.rs) -------------------------------------

    /// Set-up: process `p` registered in registry slot `slot` (generation
    /// 1). Returns its token.
    pub fn preregister(&self, p: usize, slot: usize) -> u64 {
        self.reg_locked[slot].store(true, Ordering::Relaxed);
        self.reg_gen[slot].store(1, Ordering::Relaxed);
        let t = token(slot, 1);
        self.owner_token[p].store(t, Ordering::Relaxed);
        t
    }

    /// `Segment::register` for process `p`: the first slot whose OFD lock
    /// it gets, then the generation bump.
    pub fn register(&self, p: usize) -> u64 {
        for slot in 0..NREG {
            if self.v == Variant::GenerationBeforeLock {
                let g = self.reg_gen[slot].fetch_add(1, Ordering::AcqRel) + 1;
                if self.reg_locked[slot]
                    .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    let t = token(slot, g);
                    self.owner_token[p].store(t, Ordering::SeqCst);
                    return t;
                }
                continue;
            }
            // F_OFD_SETLK on the slot's byte (the kernel: SeqCst).
            if self.reg_locked[slot]
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                let g = self.reg_gen[slot].fetch_add(1, Ordering::AcqRel) + 1;
                let t = token(slot, g);
                self.owner_token[p].store(t, Ordering::SeqCst);
                return t;
            }
        }
        panic!("registry full");
    }

    /// `Segment::alive`.
    pub fn alive(&self, token: u64) -> bool {
        let s = token >> 24;
        if s == 0 || s as usize > NREG || token & 0xff_ffff == 0 {
            return false;
        }
        let slot = s as usize - 1;
        // ofd_held_by_other (F_OFD_GETLK): the kernel's word.
        if !self.reg_locked[slot].load(Ordering::SeqCst) {
            return false;
        }
        self.reg_gen[slot].load(Ordering::Acquire) & 0xff_ffff == token & 0xff_ffff
    }

    /// Process `p` stops for good (SIGKILL): it runs no further
    /// instruction; then the kernel drops its OFD lock.
    pub fn die(&self, p: usize) {
        self.proc_dead[p].store(true, Ordering::SeqCst);
        let t = self.owner_token[p].load(Ordering::SeqCst);
        let slot = (t >> 24) as usize - 1;
        self.reg_locked[slot].store(false, Ordering::SeqCst);
    }

    /// Ground truth: has the process holding `token` stopped?
    pub fn truly_dead(&self, token: u64) -> bool {
        (0..NPROC).any(|p| {
            self.owner_token[p].load(Ordering::SeqCst) == token
                && self.proc_dead[p].load(Ordering::SeqCst)
        })
    }

    // ---- the bucket lock (index.rs) ---------------------------------

    /// `index::lock_bucket`. `limit`: how many times to wait for a live
    /// holder before giving up (the engine's `LOCK_WAIT_LIMIT`, 2 s, after
    /// which a writer gets `Timeout` and changes nothing; the evictor's
    /// 1 ms). Bounded waits also keep loom's exploration finite: an
    /// unbounded spin lets it schedule the spinner again and again.
    pub fn lock_bucket(&self, me: u64, limit: Option<u32>) -> Option<Guard<'_>> {
        let limit = Some(limit.unwrap_or(WAITS));
        let mut waits = 0u32;
        let (load, take) = if self.v == Variant::LockAcquireOnly {
            (Ordering::Relaxed, Ordering::Acquire)
        } else {
            (Ordering::Acquire, Ordering::AcqRel)
        };
        loop {
            let cur = self.lock.load(load);
            if cur == 0 {
                if self
                    .lock
                    .compare_exchange(0, me, take, Ordering::Relaxed)
                    .is_ok()
                {
                    return Some(Guard { seg: self, me });
                }
                continue;
            }
            let rob = self.v == Variant::StealOnTimeout && waits >= 1;
            if rob || !self.alive(cur) {
                if self
                    .lock
                    .compare_exchange(cur, me, take, Ordering::Relaxed)
                    .is_ok()
                {
                    assert!(
                        self.truly_dead(cur),
                        "bucket lock of token {cur:#x} taken over while its process lives ({:?})",
                        self.v
                    );
                    return Some(Guard { seg: self, me });
                }
                continue;
            }
            waits += 1;
            if limit.is_some_and(|l| waits > l) {
                return None;
            }
            spin();
        }
    }

    /// Appends to the locked event log (call only under the lock).
    pub fn log(&self, e: Event) {
        self.log.with_mut(|l| {
            // SAFETY: only under the bucket lock; under loom, an access not
            // ordered after the previous holder's is reported as a race.
            unsafe { (*l).push(e) }
        });
    }

    pub fn events(&self) -> Vec<Event> {
        // SAFETY: called after every thread was joined.
        self.log.with(|l| unsafe { (*l).clone() })
    }

    // ---- items (item.rs) --------------------------------------------

    /// Set-up: an item of `key` at `pos`.
    pub fn preset_item(&self, pos: u64, key: u64, ver: u64) {
        let it = &self.items[pos as usize];
        it.key.store(key, Ordering::Relaxed);
        it.ver.store(ver, Ordering::Relaxed);
        it.sum
            .store(checksum(true, pos, &[key, ver]), Ordering::Relaxed);
    }

    /// `item::write` at a fresh position (the tail passed it long ago).
    pub fn write_item(&self, pos: u64, key: u64, ver: u64) {
        self.write_item_seeded(pos, pos, key, ver);
    }

    fn write_item_seeded(&self, pos: u64, seed_pos: u64, key: u64, ver: u64) {
        let it = &self.items[pos as usize];
        let sum = checksum(true, seed_pos, &[key, ver]);
        fence(Ordering::Release);
        it.key.store(key, Ordering::Relaxed);
        it.ver.store(ver, Ordering::Relaxed);
        it.sum.store(sum, Ordering::Release);
    }

    /// The next lap's writer overwrites `pos` once the tail passed it.
    pub fn recycle(&self, pos: u64) {
        if self.tail.load(Ordering::Acquire) > pos {
            self.write_item_seeded(pos, pos + LAP, OTHER, 9);
        }
    }

    fn readable(&self, pos: u64) -> bool {
        self.tail.load(Ordering::Acquire) <= pos
    }

    /// `item::read_value` (`key` given) or `item::read_entry` (`None`)
    /// (`reader`: `Check::Reader`, else `Check::Evictor`).
    pub fn read(&self, pos: u64, key: Option<u64>, reader: bool) -> Read {
        if reader && !self.readable(pos) {
            return Read::Invalid;
        }
        let it = &self.items[pos as usize];
        let k = it.key.load(Ordering::Relaxed);
        let sum = it.sum.load(Ordering::Relaxed);
        if let Some(want) = key
            && k != want
        {
            return if !reader || self.readable(pos) {
                Read::OtherKey
            } else {
                Read::Invalid
            };
        }
        let ver = it.ver.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if reader && !self.readable(pos) {
            return Read::Invalid;
        }
        if sum != checksum(true, pos, &[k, ver]) {
            return Read::Invalid;
        }
        Read::Valid(ver)
    }

    /// `item::holds_key`: header and key bytes only, no tail, no checksum.
    pub fn holds_key(&self, pos: u64, key: u64) -> bool {
        self.items[pos as usize].key.load(Ordering::Relaxed) == key
    }

    // ---- the index (bucket.rs, write.rs) ----------------------------

    /// `Engine::find`: lock-free; follows a slot that changed under it.
    pub fn find(&self, key: u64) -> Option<(usize, Slot, u64)> {
        for i in 0..NSLOTS {
            let w = self.slot(i);
            let mut s = Slot(w.load(Ordering::Acquire));
            if s.kind() != KIND_ITEM || s.tag() != key {
                continue;
            }
            for _ in 0..2 {
                match self.read(s.pos(), Some(key), true) {
                    Read::Valid(ver) => return Some((i, s, ver)),
                    Read::OtherKey => break,
                    Read::Invalid => {
                        let now = Slot(w.load(Ordering::Acquire));
                        if now.ident() == s.ident() || now.kind() != KIND_ITEM || now.tag() != key {
                            break;
                        }
                        s = now;
                    }
                }
            }
        }
        None
    }

    /// `Engine::bump`: a hit's frequency CAS (Relaxed).
    pub fn bump(&self, i: usize, s: Slot) {
        if s.freq() < 3 {
            let _ = self.slot(i).compare_exchange(
                s.0,
                s.with_freq(s.freq() + 1).0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// `lease.rs` `pending_of`: a live PENDING slot of `key`.
    pub fn pending_of(&self, s: Slot, key: u64) -> Option<(usize, u64)> {
        if s.kind() != KIND_PENDING || s.tag() != key {
            return None;
        }
        let r = s.rec() as usize;
        let claim = self.recs[r].claim.load(Ordering::Acquire);
        ((claim >> 40) & 0xff_ffff == s.lease_gen()
            && claim & ((1 << 40) - 1) != 0
            && self.recs[r].hash.load(Ordering::Acquire) == key)
            .then_some((r, claim))
    }

    /// `lease.rs` `pending_is_junk`.
    pub fn pending_is_junk(&self, s: Slot) -> bool {
        let claim = self.recs[s.rec() as usize].claim.load(Ordering::Acquire);
        (claim >> 40) & 0xff_ffff != s.lease_gen() || claim & ((1 << 40) - 1) == 0
    }

    /// `Engine::wake`: bump the record's futex (`fetch_add(Release)`).
    pub fn wake(&self, r: usize) {
        self.recs[r].futex.fetch_add(1, Ordering::Release);
    }

    /// `Engine::key_slots` (under the lock).
    pub fn key_slots(&self, key: u64) -> KeySlots {
        let mut ks = KeySlots {
            pending: None,
            valid: None,
            others: Vec::new(),
        };
        for i in 0..NSLOTS {
            let s = Slot(self.slot(i).load(Ordering::Acquire));
            if s.kind() == KIND_PENDING && ks.pending.is_none() && self.pending_of(s, key).is_some()
            {
                ks.pending = Some((i, s));
                continue;
            }
            if s.kind() != KIND_ITEM || s.tag() != key {
                continue;
            }
            match self.read(s.pos(), Some(key), true) {
                Read::Valid(ver) if ks.valid.is_none() => ks.valid = Some((i, s, ver)),
                Read::OtherKey => {}
                _ if self.v != Variant::KeySlotsValidOnly && self.holds_key(s.pos(), key) => {
                    ks.others.push((i, s))
                }
                _ => {}
            }
        }
        ks
    }

    /// `Engine::clear_others`.
    fn clear_others(&self, ks: &KeySlots, except: Option<usize>) {
        for &(i, s) in &ks.others {
            if Some(i) != except {
                let _ = self
                    .slot(i)
                    .compare_exchange(s.0, 0, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// `Engine::free_slot`: empty, then junk, then live items.
    pub fn free_slot(&self, key: u64) -> (usize, Slot) {
        let mut best = (0, Slot(0), u64::MAX);
        for i in 0..NSLOTS {
            let s = Slot(self.slot(i).load(Ordering::Acquire));
            let score = match s.kind() {
                KIND_EMPTY => 1,
                KIND_PENDING if self.pending_is_junk(s) => 2,
                KIND_PENDING => 50,
                KIND_ITEM => match self.read(s.pos(), None, true) {
                    Read::Valid(_) => 10 + s.freq() * 2,
                    _ => 2,
                },
                _ => 2,
            };
            let _ = key;
            if score < best.2 {
                best = (i, s, score);
            }
        }
        (best.0, best.1)
    }

    /// `Engine::publish` (Upsert) of `key`'s item at `pos`, under the
    /// lock. `guard` runs just before the CAS (`FillLease::fill`'s
    /// `still_ours`). Returns whether it published.
    pub fn publish(&self, key: u64, pos: u64, ver: u64, guard: Option<&dyn Fn() -> bool>) -> bool {
        loop {
            let ks = self.key_slots(key);
            if let Some(g) = guard
                && !g()
            {
                return false;
            }
            let (i, old, freq) = match (&ks.valid, ks.others.first(), ks.pending) {
                (Some((i, s, _)), _, _) => (*i, *s, s.freq()),
                (None, Some(&(i, s)), _) => (i, s, 0),
                (None, None, Some((i, s))) => (i, s, 0),
                (None, None, None) => {
                    let (i, s) = self.free_slot(key);
                    (i, s, 0)
                }
            };
            let new = Slot::item(key, pos, freq);
            if self
                .slot(i)
                .compare_exchange(old.0, new.0, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            self.clear_others(&ks, Some(i));
            if let Some((pi, ps)) = ks.pending {
                if pi != i {
                    let _ = self.slot(pi).compare_exchange(
                        ps.0,
                        0,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                }
                self.wake(ps.rec() as usize);
            }
            self.log(Event::Put(ver));
            return true;
        }
    }

    /// `Cache::put`: write the item, lock, publish, unlock. `false`: the
    /// lock's holder lived on past the wait limit (`Timeout`, nothing
    /// changed).
    pub fn put(&self, me: u64, key: u64, pos: u64, ver: u64) -> bool {
        self.write_item(pos, key, ver);
        let Some(_g) = self.lock_bucket(me, None) else {
            return false;
        };
        self.publish(key, pos, ver, None)
    }

    /// `Engine::delete`; `false`: `Timeout` (nothing changed, and the
    /// caller is told: a delete never silently fails).
    pub fn delete(&self, me: u64, key: u64) -> bool {
        let Some(_g) = self.lock_bucket(me, None) else {
            return false;
        };
        self.delete_locked(key);
        true
    }

    /// The locked part of `Engine::delete`; returns whether it voided a
    /// fill in progress (a PENDING slot of the key).
    pub fn delete_locked(&self, key: u64) -> bool {
        let mut voided = false;
        loop {
            let ks = self.key_slots(key);
            self.clear_others(&ks, None);
            if let Some((pi, ps)) = ks.pending
                && !self.delete_ignores_pending
            {
                let _ =
                    self.slot(pi)
                        .compare_exchange(ps.0, 0, Ordering::AcqRel, Ordering::Relaxed);
                self.wake(ps.rec() as usize);
                voided = true;
            }
            let Some((i, s, _)) = ks.valid else { break };
            if self
                .slot(i)
                .compare_exchange(s.0, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
        self.log(Event::Delete);
        voided
    }

    /// `log.rs` tail pass over the record at `pos` (the key's item), then
    /// `evict_at`'s promotion: copy to `to`, `publish_move`.
    /// `make_room` claiming the record at the tail (`pos`), then
    /// `item::peek` (the model's hash is the key) and the slot pointing at
    /// it: `(key, slot index, slot)`.
    fn claim_tail_item(&self, pos: u64) -> Option<(u64, usize, Slot)> {
        let t = self.tail.load(Ordering::Acquire);
        assert_eq!(t, pos);
        self.tail
            .compare_exchange(t, pos + 1, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        let key = self.items[pos as usize].key.load(Ordering::Relaxed);
        (0..NSLOTS).find_map(|i| {
            let s = Slot(self.slot(i).load(Ordering::Acquire));
            (s.kind() == KIND_ITEM && s.tag() == key && s.pos() == pos).then_some((key, i, s))
        })
    }

    /// `evict_at`'s `remove`: replaces slot `index` with `with` while it
    /// still points at the item `slot` did (retried while only its
    /// frequency bits changed).
    fn replace_slot(&self, index: usize, slot: Slot, with: Slot) {
        let mut cur = slot;
        loop {
            match self.slot(index).compare_exchange(
                cur.0,
                with.0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) if Slot(now).ident() == slot.ident() => cur = Slot(now),
                Err(_) => return,
            }
        }
    }

    pub fn evict_move(&self, me: u64, pos: u64, to: u64) {
        let Some((key, index, slot)) = self.claim_tail_item(pos) else {
            return;
        };
        let remove = |with: Slot| self.replace_slot(index, slot, with);
        // copy_item: validated by its checksum alone.
        let Read::Valid(ver) = self.read(pos, None, false) else {
            remove(Slot(0));
            return;
        };
        self.write_item(to, key, ver);
        let with = Slot::item(key, to, 0);
        if self.v == Variant::MoveWithoutLock {
            remove(with);
            return;
        }
        // publish_move.
        let Some(_g) = self.lock_bucket(me, Some(1)) else {
            remove(Slot(0));
            return;
        };
        let ks = self.key_slots(key);
        let intact = self.v == Variant::NoIntactCheck
            || matches!(self.read(pos, Some(key), false), Read::Valid(_));
        if !intact || ks.valid.is_some_and(|(i, _, _)| i != index) {
            remove(Slot(0));
        } else {
            remove(with);
        }
        self.log(Event::Other);
    }

    /// `evict_at`'s reinsertion when `copy_item`'s claim overlaps the
    /// source (a full main log, items of different sizes): writing the
    /// copy destroys the source (modelled: another key's bytes at `pos`,
    /// the copy at `to`). The engine takes the bucket lock first, checks
    /// the source under it, writes, and publishes in the same lock hold.
    pub fn evict_move_over_source(&self, me: u64, pos: u64, to: u64) {
        let Some((key, index, slot)) = self.claim_tail_item(pos) else {
            return;
        };
        let remove = |with: Slot| self.replace_slot(index, slot, with);
        let Read::Valid(ver) = self.read(pos, None, false) else {
            remove(Slot(0));
            return;
        };
        let write_over = || {
            self.write_item_seeded(pos, pos + LAP, OTHER, 9);
            self.write_item(to, key, ver);
        };
        let with = Slot::item(key, to, 0);
        if self.v == Variant::OverlapCopyUnlocked {
            write_over();
            let Some(_g) = self.lock_bucket(me, Some(1)) else {
                remove(Slot(0));
                return;
            };
            let ks = self.key_slots(key);
            if ks.valid.is_some_and(|(i, _, _)| i != index) {
                remove(Slot(0));
            } else {
                remove(with);
            }
            self.log(Event::Other);
            return;
        }
        let Some(_g) = self.lock_bucket(me, Some(1)) else {
            write_over(); // the claim is written: an item no slot points to
            remove(Slot(0));
            return;
        };
        if !matches!(self.read(pos, Some(key), false), Read::Valid(_)) {
            write_over();
            remove(Slot(0));
            return;
        }
        write_over();
        let ks = self.key_slots(key);
        if ks.valid.is_some_and(|(i, _, _)| i != index) {
            remove(Slot(0));
        } else {
            remove(with);
        }
        self.log(Event::Other);
    }

    /// The slots of `key` that validate for a reader, with their versions.
    pub fn valid_versions(&self, key: u64) -> Vec<u64> {
        (0..NSLOTS)
            .filter_map(|i| {
                let s = Slot(self.slot(i).load(Ordering::Acquire));
                (s.kind() == KIND_ITEM && s.tag() == key)
                    .then(|| match self.read(s.pos(), Some(key), true) {
                        Read::Valid(v) => Some(v),
                        _ => None,
                    })
                    .flatten()
            })
            .collect()
    }

    /// I1 and "the last locked write wins", after all threads joined.
    pub fn check_final(&self, key: u64) {
        let valid = self.valid_versions(key);
        assert!(
            valid.len() <= 1,
            "I1 broken: key {key} validates in {valid:?} ({:?})",
            self.v
        );
        let last = self.events().iter().rev().find_map(|e| match e {
            Event::Put(v) => Some(Some(*v)),
            Event::Delete => Some(None),
            Event::Other => None,
        });
        if let Some(want) = last {
            assert_eq!(
                valid.first().copied(),
                want,
                "the bucket holds {valid:?} after the last locked write {want:?} ({:?})",
                self.v
            );
        }
    }
}

/// An evictor moves the key's item (v1 at 0, the tail's record) to 2 while
/// a writer puts v2 (at 3) and the next lap's writer overwrites 0; a reader
/// that starts after the put returned must get v2.
pub fn move_vs_put(v: Variant) {
    let seg = Arc::new(Seg::new(v));
    seg.preset_item(0, K, 1);
    seg.slot(0).store(Slot::item(K, 0, 0).0, Ordering::Relaxed);
    let te = seg.preregister(0, 0);
    let tw = seg.preregister(1, 1);
    let put_done = Arc::new(AtomicBool::new(false));
    let e = {
        let seg = seg.clone();
        thread::spawn(move || seg.evict_move(te, 0, 2))
    };
    let w = {
        let (seg, done) = (seg.clone(), put_done.clone());
        thread::spawn(move || {
            if seg.put(tw, K, 3, 2) {
                done.store(true, Ordering::Release);
            }
        })
    };
    let r = {
        let seg = seg.clone();
        thread::spawn(move || seg.recycle(0))
    };
    let after = put_done.load(Ordering::Acquire);
    let got = seg.find(K).map(|f| f.2);
    if after {
        assert_eq!(
            got,
            Some(2),
            "a read after the put returned {got:?} ({v:?})"
        );
    } else {
        assert!(matches!(got, None | Some(1) | Some(2)));
    }
    e.join().unwrap();
    w.join().unwrap();
    r.join().unwrap();
    seg.check_final(K);
}

/// An evictor moves the key's item while it is deleted and its old bytes
/// are overwritten; a reader that starts after the delete returned misses.
pub fn move_vs_delete(v: Variant) {
    mover_vs_delete(v, |seg, t| seg.evict_move(t, 0, 2), true);
}

/// A reinsertion whose copy (at 2) overlaps its source (v1 at 0) races a
/// delete of the key: a read after the delete returned must miss, and the
/// bucket must not hold the key at the end.
pub fn move_over_source_vs_delete(v: Variant) {
    mover_vs_delete(v, |seg, t| seg.evict_move_over_source(t, 0, 2), false);
}

/// The key's item v1 at 0, an evictor `mover` against a delete (and, with
/// `recycle`, the next lap's writer overwriting 0).
fn mover_vs_delete(v: Variant, mover: fn(&Seg, u64), recycle: bool) {
    let seg = Arc::new(Seg::new(v));
    seg.preset_item(0, K, 1);
    seg.slot(0).store(Slot::item(K, 0, 0).0, Ordering::Relaxed);
    let te = seg.preregister(0, 0);
    let td = seg.preregister(1, 1);
    let deleted = Arc::new(AtomicBool::new(false));
    let e = {
        let seg = seg.clone();
        thread::spawn(move || mover(&seg, te))
    };
    let d = {
        let (seg, done) = (seg.clone(), deleted.clone());
        thread::spawn(move || {
            if seg.delete(td, K) {
                done.store(true, Ordering::Release);
            }
        })
    };
    let r = recycle.then(|| {
        let seg = seg.clone();
        thread::spawn(move || seg.recycle(0))
    });
    let after = deleted.load(Ordering::Acquire);
    let got = seg.find(K).map(|f| f.2);
    if after {
        assert_eq!(
            got, None,
            "a read after the delete returned {got:?} ({v:?})"
        );
    } else {
        assert!(matches!(got, None | Some(1)));
    }
    e.join().unwrap();
    d.join().unwrap();
    if let Some(r) = r {
        r.join().unwrap();
    }
    seg.check_final(K);
}

/// A holder publishes v1 and is killed holding the lock; two writers (v2,
/// v3) must take the lock over (only once it is dead), never at once.
pub fn dead_holder(v: Variant) {
    let seg = Arc::new(Seg::new(v));
    let td = seg.preregister(0, 0);
    let t1 = seg.preregister(1, 1);
    let t2 = seg.preregister(2, 2);
    let d = {
        let seg = seg.clone();
        thread::spawn(move || {
            seg.write_item(0, K, 1);
            let Some(g) = seg.lock_bucket(td, None) else {
                return seg.die(0);
            };
            seg.publish(K, 0, 1, None);
            std::mem::forget(g); // killed holding it
            seg.die(0);
        })
    };
    let w1 = {
        let seg = seg.clone();
        thread::spawn(move || {
            seg.put(t1, K, 1, 2);
        })
    };
    let w2 = {
        let seg = seg.clone();
        thread::spawn(move || {
            seg.put(t2, K, 2, 3);
        })
    };
    // A reader meanwhile: any version, intact.
    let got = seg.find(K);
    if let Some((i, s, ver)) = got {
        assert!((1..=3).contains(&ver));
        seg.bump(i, s);
    }
    d.join().unwrap();
    w1.join().unwrap();
    w2.join().unwrap();
    seg.check_final(K);
}

/// A live holder is slow inside its critical section, then killed there;
/// a new process registers meanwhile (maybe reusing the holder's registry
/// slot once it is dead) and writes, beside another writer. The lock is
/// taken over only once the holder is dead, whatever the registry does.
pub fn registry_reuse(v: Variant) {
    let seg = Arc::new(Seg::new(v));
    let td = seg.preregister(0, 0);
    let tw = seg.preregister(1, 1);
    let d = {
        let seg = seg.clone();
        thread::spawn(move || {
            let Some(g) = seg.lock_bucket(td, None) else {
                return seg.die(0);
            };
            seg.log(Event::Other);
            spin(); // stopped or descheduled: still alive
            seg.log(Event::Other);
            std::mem::forget(g);
            seg.die(0);
        })
    };
    let n = {
        let seg = seg.clone();
        thread::spawn(move || {
            let me = seg.register(2);
            seg.put(me, K, 0, 1);
        })
    };
    let w = {
        let seg = seg.clone();
        thread::spawn(move || {
            seg.put(tw, K, 1, 2);
        })
    };
    d.join().unwrap();
    n.join().unwrap();
    w.join().unwrap();
    seg.check_final(K);
}
