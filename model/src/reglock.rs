//! Model (e): the registration lock (`core/src/registry.rs`
//! `Registry::lock`, `RegGuard::drop`).
//!
//! Replicates:
//!
//! * `lock`: `mine = fork_epoch << 1 | 1`; loop: `cur = lock.load(Relaxed)`;
//!   if `cur != mine` (free, or held in an older fork epoch), take it with
//!   `compare_exchange(cur, mine, Acquire, Relaxed)`; else yield and retry;
//! * `RegGuard::drop`: `lock.store(0, Release)`.
//!
//! A forked child starts with its parent's word, which may say "held"
//! by a thread the child does not have: `after_fork` starts the word at
//! the older epoch's held value, then two threads of the child's epoch
//! register (each takes the lock and updates the registration, a cell
//! whose every access loom checks for a data race).
//!
//! Oracle: the two holders exclude each other (no data race on the
//! registration, both updates kept) and neither waits forever on the
//! parent's lock.

use crate::{Arc, AtomicU64, Ordering, UnsafeCell, spin, thread};

/// What each scenario may break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The engine's protocol.
    Correct,
    /// `lock` takes the word with `Relaxed` (no acquire).
    AcquireRelaxed,
    /// `RegGuard::drop` releases with `Relaxed`.
    UnlockRelaxed,
    /// `lock` takes the word whenever it sees it, held in this epoch or
    /// not (a takeover that does not compare epochs).
    TakeoverAlways,
}

struct Registry {
    lock: AtomicU64,
    /// The registration the lock guards (`Reg`): updates counted.
    reg: UnsafeCell<u64>,
    v: Variant,
}

impl Registry {
    /// `Registry::lock` in fork epoch `epoch`.
    fn lock(&self, epoch: u64) {
        let mine = (epoch << 1) | 1;
        let acquire = if self.v == Variant::AcquireRelaxed {
            Ordering::Relaxed
        } else {
            Ordering::Acquire
        };
        loop {
            let cur = self.lock.load(Ordering::Relaxed);
            let free = cur != mine || self.v == Variant::TakeoverAlways;
            if free
                && self
                    .lock
                    .compare_exchange(cur, mine, acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            spin();
        }
    }

    /// `RegGuard::drop`.
    fn unlock(&self) {
        let order = if self.v == Variant::UnlockRelaxed {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        self.lock.store(0, order);
    }

    /// A registration under the lock (`register`'s update of `Reg`).
    fn register(&self, epoch: u64) {
        self.lock(epoch);
        // SAFETY: under the lock (loom checks the claim on every access).
        let n = self.reg.with(|p| unsafe { *p });
        // SAFETY: as above.
        self.reg.with_mut(|p| unsafe { *p = n + 1 });
        self.unlock();
    }
}

/// Two threads of a forked child (epoch 2) register while the word still
/// says the parent's thread (epoch 1) holds the lock.
pub fn after_fork(v: Variant) {
    let r = Arc::new(Registry {
        lock: AtomicU64::new((1 << 1) | 1),
        reg: UnsafeCell::new(0),
        v,
    });
    let t = {
        let r = r.clone();
        thread::spawn(move || r.register(2))
    };
    r.register(2);
    t.join().unwrap();
    // SAFETY: both threads are done.
    let n = r.reg.with(|p| unsafe { *p });
    assert_eq!(n, 2, "registration lock: an update was lost (two holders)");
}
