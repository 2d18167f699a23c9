//! Model (f): the fork gate around registry descriptors (`core/src/sys.rs`
//! `fd_section`, `before_fork`, `after_fork_in_parent`).
//!
//! Replicates:
//!
//! * `fd_section`: loop { `FD_SECTIONS.fetch_add(1, SeqCst)`;
//!   `fence(SeqCst)`; if `FORKS.load(SeqCst) == 0` break; `FD_SECTIONS.fetch_sub(1, SeqCst)`;
//!   wait while `FORKS.load(SeqCst) != 0` }; the section's body; then
//!   `FD_SECTIONS.fetch_sub(1, SeqCst)`;
//! * `before_fork` (in the forking thread): `FORKS.fetch_add(1, SeqCst)`;
//!   `fence(SeqCst)`; wait while `FD_SECTIONS.load(SeqCst) != 0`;
//! * the fork itself: the child's copy of memory, modelled as a read of the
//!   section's state (a cell: loom checks that the read is ordered with
//!   every write, which is the claim that no fork lands inside a section);
//! * `after_fork_in_parent`: `FORKS.fetch_sub(1, SeqCst)`.
//!
//! The section's body stands for `register`'s open-then-record (or
//! `close_reg_fd`'s forget-then-close): state 1 is "descriptor open, not
//! recorded for the child's handler", state 2 "recorded".
//!
//! Oracle: the fork's snapshot is never state 1, and never races with the
//! section's writes.

use crate::{Arc, AtomicU32, Ordering, UnsafeCell, fence, spin, thread};

/// What each scenario may break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The engine's protocol.
    Correct,
    /// Acquire/release instead of `SeqCst` on the handshake, and no fences
    /// (it is a store-buffer pattern: both sides may then miss each other).
    AcquireRelease,
    /// The fork does not wait for sections (before this round's fix).
    NoGate,
    /// A section checks `FORKS` before announcing itself in `FD_SECTIONS`.
    CheckBeforeAnnounce,
}

struct Gate {
    sections: AtomicU32,
    forks: AtomicU32,
    state: UnsafeCell<u32>,
    v: Variant,
}

impl Gate {
    fn orders(&self) -> (Ordering, Ordering, Ordering) {
        if self.v == Variant::AcquireRelease {
            (Ordering::AcqRel, Ordering::Acquire, Ordering::Release)
        } else {
            (Ordering::SeqCst, Ordering::SeqCst, Ordering::SeqCst)
        }
    }

    /// The `SeqCst` fence between each side's announcement and its check
    /// (dropped by `AcquireRelease`).
    fn fence(&self) {
        if self.v != Variant::AcquireRelease {
            fence(Ordering::SeqCst);
        }
    }

    /// `sys::fd_section` around `register`'s open and record.
    fn section(&self) {
        let (rmw, load, _) = self.orders();
        loop {
            if self.v == Variant::CheckBeforeAnnounce {
                while self.forks.load(load) != 0 {
                    spin();
                }
                self.sections.fetch_add(1, rmw);
                break;
            }
            self.sections.fetch_add(1, rmw);
            self.fence();
            if self.forks.load(load) == 0 {
                break;
            }
            self.sections.fetch_sub(1, rmw);
            while self.forks.load(load) != 0 {
                spin();
            }
        }
        // SAFETY: inside the section (loom checks the claim on every access).
        self.state.with_mut(|p| unsafe { *p = 1 });
        // SAFETY: as above.
        self.state.with_mut(|p| unsafe { *p = 2 });
        self.sections.fetch_sub(1, rmw);
    }

    /// `before_fork`, the fork's copy of memory, `after_fork_in_parent`:
    /// returns the state the child starts with.
    fn fork(&self) -> u32 {
        let (rmw, load, _) = self.orders();
        self.forks.fetch_add(1, rmw);
        self.fence();
        if self.v != Variant::NoGate {
            while self.sections.load(load) != 0 {
                spin();
            }
        }
        // SAFETY: no section is under way (loom checks the claim).
        let snapshot = self.state.with(|p| unsafe { *p });
        self.forks.fetch_sub(1, rmw);
        snapshot
    }
}

/// One thread registers (a section) while another forks.
pub fn fork_during_section(v: Variant) {
    let g = Arc::new(Gate {
        sections: AtomicU32::new(0),
        forks: AtomicU32::new(0),
        state: UnsafeCell::new(0),
        v,
    });
    let t = {
        let g = g.clone();
        thread::spawn(move || g.section())
    };
    let child = g.fork();
    t.join().unwrap();
    assert_ne!(
        child, 1,
        "fork gate: a child forked inside a section (an unrecorded descriptor)"
    );
}
