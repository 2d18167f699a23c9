//! Model (d): tag invalidation records (`core/src/tags.rs`, layout 8).
//!
//! Replicates, for one line of the table:
//!
//! * `tags.rs` `invalidate`: `q = clock.fetch_add(1, SeqCst) + 1`; loop:
//!   `floor.load(Acquire)`, each record `load(Acquire)`; the tag's own
//!   record (same fingerprint) is raised to `q` unless it holds a newer
//!   sequence, else a free record (empty or `<= floor`) is taken, else the
//!   oldest gives way after `floor.fetch_max(its sequence, SeqCst)`; the
//!   record is written by `compare_exchange(SeqCst, Relaxed)`, retried
//!   from the top on failure;
//! * `tags.rs` `invalidated`: each record `load(Acquire)` (same fingerprint
//!   and newer than the stamp: invalidated), then `floor.load(Acquire)`
//!   (newer than the stamp: invalidated);
//! * `tags.rs` `stamp`: `clock.load(Acquire)`.
//!
//! The line is shrunk to 2 records (the engine's has 7); a record is
//! `fingerprint << 8 | sequence` (the engine's split is 20 / 44 bits).
//!
//! Oracle: an invalidation is never lost. Once `invalidate(t)` has
//! returned (a reader that saw its done flag, or after the join), every
//! entry of `t` stamped before it reads as invalidated, whichever records
//! other invalidations pushed out meanwhile; and entries stamped after
//! every invalidation read as valid (the floor never passes the clock).

use crate::{Arc, AtomicBool, AtomicU64, Ordering, thread};

const SEQ_BITS: u32 = 8;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
/// Records per line (the engine has 7).
const RECORDS: usize = 2;

/// What each scenario may break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The engine's protocol.
    Correct,
    /// The oldest record replaced before the floor is raised.
    RecordBeforeFloor,
    /// `invalidated` loads the floor before the records.
    FloorFirst,
    /// `invalidated` loads with `Relaxed`.
    RelaxedReader,
    /// The own record overwritten with `q` even when it holds a newer one.
    BlindOwnUpdate,
}

struct Line {
    clock: AtomicU64,
    floor: AtomicU64,
    records: [AtomicU64; RECORDS],
    v: Variant,
}

impl Line {
    fn new(v: Variant) -> Line {
        Line {
            clock: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            records: std::array::from_fn(|_| AtomicU64::new(0)),
            v,
        }
    }

    /// Set-up (single-threaded): `tag` invalidated now.
    fn preset(&self, tag: u64) {
        let q = self.clock.load(Ordering::Relaxed) + 1;
        self.clock.store(q, Ordering::Relaxed);
        let free = self
            .records
            .iter()
            .find(|r| r.load(Ordering::Relaxed) == 0)
            .expect("preset fits the line");
        free.store(tag << SEQ_BITS | q, Ordering::Relaxed);
    }

    /// `tags::stamp`.
    fn stamp(&self) -> u64 {
        self.clock.load(Ordering::Acquire)
    }

    /// `tags::invalidated`.
    fn invalidated(&self, tag: u64, stamp: u64) -> bool {
        let ord = if self.v == Variant::RelaxedReader {
            Ordering::Relaxed
        } else {
            Ordering::Acquire
        };
        let early_floor = if self.v == Variant::FloorFirst {
            Some(self.floor.load(ord))
        } else {
            None
        };
        for r in &self.records {
            let r = r.load(ord);
            if r >> SEQ_BITS == tag && r & SEQ_MASK > stamp {
                return true;
            }
        }
        early_floor.unwrap_or_else(|| self.floor.load(ord)) > stamp
    }

    /// `tags::invalidate`; returns its sequence.
    fn invalidate(&self, tag: u64) -> u64 {
        let q = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        let mine = tag << SEQ_BITS | q;
        loop {
            let floor = self.floor.load(Ordering::Acquire);
            let mut oldest: Option<(usize, u64)> = None;
            let mut free: Option<(usize, u64)> = None;
            let mut own: Option<(usize, u64)> = None;
            for (i, w) in self.records.iter().enumerate() {
                let r = w.load(Ordering::Acquire);
                if r >> SEQ_BITS == tag && r & SEQ_MASK != 0 {
                    own = Some((i, r));
                    break;
                }
                if r & SEQ_MASK <= floor {
                    free.get_or_insert((i, r));
                } else if oldest.is_none_or(|(_, o)| r & SEQ_MASK < o & SEQ_MASK) {
                    oldest = Some((i, r));
                }
            }
            let (i, r) = match (own, free, oldest) {
                (Some((i, r)), _, _) if r & SEQ_MASK >= q => {
                    if self.v != Variant::BlindOwnUpdate {
                        return q;
                    }
                    (i, r)
                }
                (Some(o), _, _) => o,
                (None, Some(f), _) => f,
                (None, None, Some((i, r))) => {
                    if self.v != Variant::RecordBeforeFloor {
                        self.floor.fetch_max(r & SEQ_MASK, Ordering::SeqCst);
                    } else if self.records[i]
                        .compare_exchange(r, mine, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.floor.fetch_max(r & SEQ_MASK, Ordering::SeqCst);
                        return q;
                    } else {
                        continue;
                    }
                    (i, r)
                }
                (None, None, None) => unreachable!(),
            };
            if self.records[i]
                .compare_exchange(r, mine, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                return q;
            }
        }
    }
}

/// Tags B and C fill the line; A's invalidation pushes out B's record
/// while D's pushes out another; a reader that has seen A's invalidation
/// return must see A's entry invalidated, and B's and C's entries are
/// invalidated throughout.
pub fn overflow_vs_reader(v: Variant) {
    const A: u64 = 1;
    const B: u64 = 2;
    const C: u64 = 3;
    const D: u64 = 4;
    let l = Arc::new(Line::new(v));
    l.preset(B);
    l.preset(C);
    let done_a = Arc::new(AtomicBool::new(false));
    let ta = {
        let (l, done) = (l.clone(), done_a.clone());
        thread::spawn(move || {
            let q = l.invalidate(A);
            done.store(true, Ordering::Release);
            q
        })
    };
    let td = {
        let l = l.clone();
        thread::spawn(move || l.invalidate(D))
    };
    // An entry of A stamped before any invalidation of it.
    let seen = done_a.load(Ordering::Acquire);
    if seen {
        assert!(
            l.invalidated(A, 0),
            "invalidation lost: A after it returned"
        );
    }
    assert!(l.invalidated(B, 0), "invalidation lost: B");
    assert!(l.invalidated(C, 1), "invalidation lost: C");
    let qa = ta.join().unwrap();
    let qd = td.join().unwrap();
    assert!(l.invalidated(A, qa - 1), "invalidation lost: A at the end");
    assert!(l.invalidated(D, qd - 1), "invalidation lost: D at the end");
    let later = l.stamp();
    for t in [A, B, C, D] {
        assert!(
            !l.invalidated(t, later),
            "an entry stamped after all was invalidated"
        );
    }
}

/// Two invalidations of the same tag A race (plus one of B in the same
/// line): the newer sequence is the one kept.
pub fn same_tag_twice(v: Variant) {
    const A: u64 = 1;
    const B: u64 = 2;
    let l = Arc::new(Line::new(v));
    l.preset(B);
    let t1 = {
        let l = l.clone();
        thread::spawn(move || l.invalidate(A))
    };
    let t2 = {
        let l = l.clone();
        thread::spawn(move || l.invalidate(A))
    };
    let q1 = t1.join().unwrap();
    let q2 = t2.join().unwrap();
    assert!(
        l.invalidated(A, q1.max(q2) - 1),
        "invalidation lost: the newer of two"
    );
    assert!(l.invalidated(B, 0), "invalidation lost: B");
}
