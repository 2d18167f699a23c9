//! Model (c): get_or_set's per-key leases.
//!
//! Replicates `lease.rs` on top of the bucket of [`crate::bucket`]:
//!
//! * `Engine::alloc_lease`: scan the records; one whose holder is free or
//!   dead (`claim.load(Acquire)`, `Segment::alive`) is claimed by
//!   `compare_exchange(cur, next generation | me, AcqRel, Relaxed)`
//!   outside any lock; a dead holder's record is woken;
//! * `Cache::begin_fill`: a lock-free `find`; then, per attempt: a record,
//!   the bucket lock, `find` again, `sys::now_ms`, the key's live PENDING
//!   slot (`pending_of`); if there is one: release ours, read its futex,
//!   holder and deadline (`load(Acquire)`), wait if the holder lives and
//!   is not late, else take it over (`compare_exchange(claim, .. | me,
//!   AcqRel, Relaxed)`, then the new deadline `store(Release)`, wake);
//!   if none: hash and deadline `store(Relaxed)` into our record and a
//!   PENDING slot by CAS (`free_slot`, `compare_exchange(AcqRel, Relaxed)`,
//!   `forget_slot`), all under the lock;
//! * `FillLease::fill`: the item written, then under the lock `publish`
//!   with the guard `still_ours` (our claim `load(Acquire)` unchanged, our
//!   PENDING slot still in the bucket); `Drop` = `release`
//!   (`compare_exchange(claim, claim & !token, AcqRel, Relaxed)`, wake);
//! * `Cache::wait_fill`: wait while the futex (`load(Acquire)`) has the
//!   ticket's value. The engine's 50 ms timeout is modelled as firing only
//!   once it can matter (some process died, or the clock passed the
//!   record's deadline): a
//!   spurious timeout is one more `begin_fill` round, which the model
//!   already explores through the other paths;
//! * `write.rs` `Engine::delete` (voids the key's fill in progress).
//!
//! Oracles, checked under the bucket lock against ghost state (every
//! decision about a key's fill is made under it): a caller leads (new
//! lease or takeover) only if no other fill of the key is in progress, or
//! its leader really stopped, has finished, or is late by the clock the
//! taker read; a fill is stored exactly when its lease is still the key's
//! current one (a voided or taken-over fill is not stored, and an unvoided
//! one is); a delete voids the fill in progress; after the run the bucket
//! holds the last stored value (or nothing after a delete), and every
//! caller returned a value some fill stored or its own. Without deaths,
//! deletes or lateness the factory runs exactly once.

use crate::bucket::{K, NRECS, NSLOTS, Seg, Slot, Variant as BucketVariant, WAITS};
use crate::{Arc, AtomicBool, AtomicU64, Ordering, UnsafeCell, spin, thread};

const TOKEN_MASK: u64 = (1 << 40) - 1;
const GEN_MASK: u64 = (1 << 24) - 1;
/// Lease duration in clock ticks.
const LEASE: u64 = 50;
/// `begin_fill` rounds a caller makes before the model stops it.
const ROUNDS: u32 = 3;

/// What a scenario may break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The engine's protocol.
    Correct,
    /// The leader stores its record's deadline after unlocking (the old
    /// claim-before-deadline window: a taker reads the previous lease's
    /// expired deadline).
    DeadlineAfterUnlock,
    /// `still_ours` does not check the claim (a taken-over leader's fill is
    /// stored too).
    FillIgnoresClaim,
    /// `delete` leaves the key's PENDING slot alone (a voided fill is
    /// stored).
    DeleteIgnoresPending,
    /// A waiter takes over a live holder's lease without looking at its
    /// deadline or liveness (first come, first served).
    TakeoverAlways,
}

struct Ghost {
    /// The key's fill in progress: leader process and its real deadline.
    active: Option<(usize, u64)>,
    /// The key's value by the ghost's account (last stored, or `None`).
    current: Option<u64>,
    /// Every value ever stored.
    stored: Vec<u64>,
    leads: u32,
}

struct Model {
    v: Variant,
    seg: Seg,
    clock: AtomicU64,
    /// A leader that has finished with its lease (ghost).
    finished: [AtomicBool; 4],
    /// Fills that could not take the bucket lock (`Timeout`: not stored;
    /// the next caller leads again, as in the engine).
    fill_timeouts: AtomicU64,
    ghost: UnsafeCell<Ghost>,
}

enum Fill {
    Hit(u64),
    Lead {
        rec: usize,
        claim: u64,
        pending: Slot,
    },
    Wait {
        rec: usize,
        futex: u32,
    },
}

fn claim_gen(c: u64) -> u64 {
    (c >> 40) & GEN_MASK
}

impl Model {
    fn new(v: Variant) -> Model {
        let mut seg = Seg::new(BucketVariant::Correct);
        seg.delete_ignores_pending = v == Variant::DeleteIgnoresPending;
        Model {
            v,
            seg,
            clock: AtomicU64::new(0),
            finished: std::array::from_fn(|_| AtomicBool::new(false)),
            fill_timeouts: AtomicU64::new(0),
            ghost: UnsafeCell::new(Ghost {
                active: None,
                current: None,
                stored: Vec::new(),
                leads: 0,
            }),
        }
    }

    fn ghost<R>(&self, f: impl FnOnce(&mut Ghost) -> R) -> R {
        // SAFETY: called under the bucket lock (or after every thread was
        // joined); loom reports any access not ordered after the last one.
        self.ghost.with_mut(|g| f(unsafe { &mut *g }))
    }

    /// Under the lock: process `p` starts leading at clock `now`.
    fn ghost_lead(&self, p: usize, now: u64) {
        let seg = &self.seg;
        self.ghost(|g| {
            if let Some((q, deadline)) = g.active
                && q != p
            {
                let t = seg.owner_token[q].load(Ordering::SeqCst);
                assert!(
                    seg.truly_dead(t) || self.finished[q].load(Ordering::SeqCst) || now > deadline,
                    "process {p} leads while process {q}'s fill is in progress, alive and not late \
                     (now {now}, its deadline {deadline}) ({:?})",
                    self.v
                );
            }
            g.active = Some((p, now + LEASE));
            g.leads += 1;
        });
    }

    /// Under the lock: process `p`'s fill of `value` was (not) stored.
    fn ghost_fill(&self, p: usize, value: u64, stored: bool) {
        self.ghost(|g| {
            let current = g.active.is_some_and(|(q, _)| q == p);
            assert_eq!(
                stored, current,
                "process {p}'s fill stored = {stored} while its lease is current = {current} ({:?})",
                self.v
            );
            if stored {
                g.active = None;
                g.current = Some(value);
                g.stored.push(value);
            }
        });
    }

    /// `Engine::alloc_lease` (`None`: every record held by the living past
    /// the wait limit, the engine's `Timeout`).
    fn alloc_lease(&self, me: u64) -> Option<(usize, u64)> {
        for _ in 0..=WAITS {
            for r in 0..NRECS {
                let w = &self.seg.recs[r].claim;
                let cur = w.load(Ordering::Acquire);
                let holder = cur & TOKEN_MASK;
                if holder != 0 && (holder == me || self.seg.alive(holder)) {
                    continue;
                }
                let mine = (((claim_gen(cur) + 1) & GEN_MASK) << 40) | me;
                if w.compare_exchange(cur, mine, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    if holder != 0 {
                        self.seg.wake(r);
                    }
                    return Some((r, mine));
                }
            }
            spin();
        }
        None
    }

    /// `Engine::release`.
    fn release(&self, rec: usize, claim: u64) {
        if self.seg.recs[rec]
            .claim
            .compare_exchange(
                claim,
                claim & !TOKEN_MASK,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            self.seg.wake(rec);
        }
    }

    /// `Engine::forget_slot` for the slot a PENDING slot replaced.
    fn forget_slot(&self, old: Slot) {
        if old.kind() == crate::bucket::KIND_PENDING && self.seg.pending_of(old, K).is_some() {
            self.seg.wake(old.rec() as usize);
        }
    }

    /// `Cache::begin_fill` by process `p` with token `me`.
    /// `None`: `Timeout` (a lock or every record held by the living).
    fn begin_fill(&self, p: usize, me: u64) -> Option<Fill> {
        let seg = &self.seg;
        if let Some((_, _, v)) = seg.find(K) {
            return Some(Fill::Hit(v));
        }
        loop {
            let (rec, mine) = self.alloc_lease(me)?;
            let Some(g) = seg.lock_bucket(me, None) else {
                self.release(rec, mine);
                return None;
            };
            if let Some((_, _, v)) = seg.find(K) {
                self.release(rec, mine);
                return Some(Fill::Hit(v));
            }
            let now = self.clock.load(Ordering::Relaxed);
            let existing = (0..NSLOTS).find_map(|i| {
                let s = Slot(seg.slot(i).load(Ordering::Acquire));
                seg.pending_of(s, K).map(|(r, c)| (s, r, c))
            });
            if let Some((ps, prec, claim)) = existing {
                self.release(rec, mine);
                let r = &seg.recs[prec];
                let futex = r.futex.load(Ordering::Acquire);
                let holder = claim & TOKEN_MASK;
                let deadline = r.deadline.load(Ordering::Acquire);
                let late = now > deadline;
                if self.v != Variant::TakeoverAlways && !late && (holder == me || seg.alive(holder))
                {
                    return Some(Fill::Wait { rec: prec, futex });
                }
                let taken = (claim & !TOKEN_MASK) | me;
                if r.claim
                    .compare_exchange(claim, taken, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                self.ghost_lead(p, now);
                r.deadline.store(now + LEASE, Ordering::Release);
                seg.wake(prec);
                return Some(Fill::Lead {
                    rec: prec,
                    claim: taken,
                    pending: ps,
                });
            }
            let r = &seg.recs[rec];
            r.hash.store(K, Ordering::Relaxed);
            if self.v != Variant::DeadlineAfterUnlock {
                r.deadline.store(now + LEASE, Ordering::Relaxed);
            }
            let ps = Slot::pending(K, rec as u64, claim_gen(mine));
            loop {
                let (i, old) = seg.free_slot(K);
                if seg
                    .slot(i)
                    .compare_exchange(old.0, ps.0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    self.forget_slot(old);
                    break;
                }
            }
            self.ghost_lead(p, now);
            drop(g);
            if self.v == Variant::DeadlineAfterUnlock {
                r.deadline.store(now + LEASE, Ordering::Relaxed);
            }
            return Some(Fill::Lead {
                rec,
                claim: mine,
                pending: ps,
            });
        }
    }

    /// `FillLease::fill` then its drop (`release`).
    fn fill(&self, p: usize, me: u64, rec: usize, claim: u64, pending: Slot, value: u64) {
        let seg = &self.seg;
        let pos = p as u64 + 1; // a fresh position per process
        seg.write_item(pos, K, value);
        if let Some(_g) = seg.lock_bucket(me, None) {
            let still_ours = || {
                (self.v == Variant::FillIgnoresClaim
                    || seg.recs[rec].claim.load(Ordering::Acquire) == claim)
                    && (0..NSLOTS).any(|i| seg.slot(i).load(Ordering::Acquire) == pending.0)
            };
            let stored = seg.publish(K, pos, value, Some(&still_ours));
            self.ghost_fill(p, value, stored);
        } else {
            self.fill_timeouts.fetch_add(1, Ordering::SeqCst);
        }
        self.finished[p].store(true, Ordering::SeqCst);
        self.release(rec, claim);
    }

    /// `Cache::wait_fill` (see the module docs for its timeout).
    fn wait_fill(&self, rec: usize, futex: u32) {
        for _ in 0..WAITS {
            if self.seg.recs[rec].futex.load(Ordering::Acquire) != futex {
                return;
            }
            let timeout = self.clock.load(Ordering::Relaxed)
                > self.seg.recs[rec].deadline.load(Ordering::Relaxed)
                || self.seg.proc_dead.iter().any(|d| d.load(Ordering::SeqCst));
            if timeout {
                return;
            }
            spin();
        }
    }

    /// `Cache::get_or_set` by process `p`; `slow`: the factory yields
    /// first. Returns the value, or `None` when it gave up (a `Timeout`, or
    /// after `ROUNDS` waits: the engine waits on, the model stops there).
    fn get_or_set(&self, p: usize, me: u64, slow: bool) -> Option<u64> {
        for _ in 0..ROUNDS {
            match self.begin_fill(p, me)? {
                Fill::Hit(v) => return Some(v),
                Fill::Lead {
                    rec,
                    claim,
                    pending,
                } => {
                    if slow {
                        spin();
                    }
                    let value = 10 + p as u64;
                    self.fill(p, me, rec, claim, pending, value);
                    return Some(value);
                }
                Fill::Wait { rec, futex } => self.wait_fill(rec, futex),
            }
        }
        None
    }

    /// Process `p` calls get_or_set and is killed inside its factory if it
    /// leads.
    fn lead_and_die(&self, p: usize, me: u64) {
        if let Some(Fill::Lead { .. }) = self.begin_fill(p, me) {
            self.seg.die(p);
        }
    }

    /// `Cache::delete`, with the ghost's account.
    fn delete(&self, me: u64) {
        let Some(_g) = self.seg.lock_bucket(me, None) else {
            return;
        };
        let voided = self.seg.delete_locked(K);
        let seg = &self.seg;
        self.ghost(|g| {
            if let Some((q, _)) = g.active {
                let t = seg.owner_token[q].load(Ordering::SeqCst);
                if !seg.truly_dead(t) && !self.finished[q].load(Ordering::SeqCst) {
                    assert!(
                        voided,
                        "delete left process {q}'s fill in progress ({:?})",
                        self.v
                    );
                }
            }
            g.active = None;
            g.current = None;
        });
    }

    fn check_final(&self, results: &[(usize, Option<u64>)]) {
        let valid = self.seg.valid_versions(K);
        assert!(valid.len() <= 1, "I1 broken: {valid:?}");
        self.ghost(|g| {
            assert_eq!(
                valid.first().copied(),
                g.current,
                "bucket vs ghost ({:?})",
                self.v
            );
            for &(p, v) in results {
                let Some(v) = v else { continue };
                assert!(
                    v == 10 + p as u64 || g.stored.contains(&v),
                    "process {p} returned {v}, which no fill stored ({:?})",
                    self.v
                );
            }
        });
    }

    /// Asserts the factory ran once, plus once more per fill that timed
    /// out on the lock.
    fn assert_one_factory_run(&self) {
        let leads = self.ghost(|g| g.leads) as u64;
        let timeouts = self.fill_timeouts.load(Ordering::SeqCst);
        assert!(
            leads <= 1 + timeouts,
            "the factory ran {leads} times ({timeouts} fills timed out) ({:?})",
            self.v
        );
    }
}

fn spawn_caller(
    m: &Arc<Model>,
    p: usize,
    me: u64,
    slow: bool,
) -> thread::JoinHandle<(usize, Option<u64>)> {
    let m = m.clone();
    thread::spawn(move || (p, m.get_or_set(p, me, slow)))
}

/// Two callers miss one key at once (a third comes after): one factory
/// run, one value.
pub fn stampede(v: Variant) {
    let m = Arc::new(Model::new(v));
    let t: Vec<u64> = (0..3).map(|p| m.seg.preregister(p, p)).collect();
    let hs: Vec<_> = (0..2).map(|p| spawn_caller(&m, p, t[p], p == 0)).collect();
    let mut res: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    res.push((2, m.get_or_set(2, t[2], false)));
    m.check_final(&res);
    m.assert_one_factory_run();
    if m.fill_timeouts.load(Ordering::SeqCst) == 0 {
        let got: Vec<u64> = res.iter().filter_map(|r| r.1).collect();
        assert!(
            got.iter().all(|x| *x == got[0]),
            "callers got {res:?} ({v:?})"
        );
    }
}

/// A caller's fill races a delete of the key: a fill the delete voided is
/// not stored (and one it did not void is); a caller after both leads
/// again or hits the stored value.
pub fn delete_during_fill(v: Variant) {
    let m = Arc::new(Model::new(v));
    let t: Vec<u64> = (0..3).map(|p| m.seg.preregister(p, p)).collect();
    let a = spawn_caller(&m, 0, t[0], true);
    let d = {
        let (m, td) = (m.clone(), t[2]);
        thread::spawn(move || m.delete(td))
    };
    let mut res = vec![a.join().unwrap()];
    d.join().unwrap();
    res.push((1, m.get_or_set(1, t[1], false)));
    m.check_final(&res);
}

/// The leader is killed inside its factory while another caller waits:
/// that caller takes over (only once the leader is dead) and its fill is
/// stored; a caller after both gets that value.
pub fn dead_leader(v: Variant) {
    let m = Arc::new(Model::new(v));
    let t: Vec<u64> = (0..3).map(|p| m.seg.preregister(p, p)).collect();
    let a = {
        let (m, ta) = (m.clone(), t[0]);
        thread::spawn(move || m.lead_and_die(0, ta))
    };
    let b = spawn_caller(&m, 1, t[1], false);
    a.join().unwrap();
    let mut res = vec![b.join().unwrap()];
    res.push((2, m.get_or_set(2, t[2], false)));
    m.check_final(&res);
}

/// The leader is slow and the clock passes its deadline: a waiter may take
/// over; the late leader's fill is then not stored.
pub fn late_leader(v: Variant) {
    let m = Arc::new(Model::new(v));
    let t: Vec<u64> = (0..2).map(|p| m.seg.preregister(p, p)).collect();
    let a = spawn_caller(&m, 0, t[0], true);
    let b = spawn_caller(&m, 1, t[1], false);
    let tick = {
        let m = m.clone();
        thread::spawn(move || m.clock.store(LEASE + 1, Ordering::Relaxed))
    };
    let res = vec![a.join().unwrap(), b.join().unwrap()];
    tick.join().unwrap();
    m.check_final(&res);
}

/// Warm lease records (used before: released, deadline long past) and two
/// callers: the second never takes over the first's fresh lease.
pub fn warm_records(v: Variant) {
    let m = Arc::new(Model::new(v));
    m.clock.store(1000, Ordering::Relaxed);
    for r in &m.seg.recs {
        r.claim.store(5 << 40, Ordering::Relaxed);
        r.hash.store(K, Ordering::Relaxed);
        r.deadline.store(10, Ordering::Relaxed);
    }
    let t: Vec<u64> = (0..2).map(|p| m.seg.preregister(p, p)).collect();
    let a = spawn_caller(&m, 0, t[0], true);
    let b = spawn_caller(&m, 1, t[1], false);
    let res = vec![a.join().unwrap(), b.join().unwrap()];
    m.check_final(&res);
    m.assert_one_factory_run();
}
