//! Model checks of memshelf's lock-free protocols.
//!
//! Each module is a small, faithful replica of one protocol of the engine
//! (`core/src`): the same atomic words, the same operations in the same
//! order, with the same `Ordering`s (each function names the engine
//! function it replicates, and each atomic access names its ordering so a
//! change in the engine can be carried over line by line). The shared
//! memory is an ordinary heap structure of atomics; the geometry is shrunk
//! (2 index slots, 2 lease records, a ring of 2 items) so that loom can
//! explore every interleaving and every value a relaxed load may return
//! within a preemption bound.
//!
//! * [`ring`]: item write and validated read over a ring (invariants I2,
//!   I3; `item.rs` `write`/`read_value`/`readable`, `log.rs` `alloc_raw`,
//!   `make_room`).
//! * [`bucket`]: the bucket lock with kernel-judged liveness, publish,
//!   delete, and an evictor's move under the lock, against readers
//!   (invariant I1; `index.rs` `lock_bucket`, `registry.rs` `alive`/
//!   `register`, `bucket.rs` `key_slots`/`publish`/`find`, `write.rs`
//!   `delete`,
//!   `log.rs` `evict_at`).
//! * [`lease`]: get_or_set's per-key leases (`lease.rs` `alloc_lease`,
//!   `begin_fill`, `FillLease::fill`, `release`).
//! * [`tags`]: tag invalidation records under a line's floor (`tags.rs`
//!   `invalidate`, `invalidated`, `stamp`).
//! * [`reglock`]: the registration lock, taken over in a forked child
//!   (`registry.rs` `Registry::lock`, `RegGuard::drop`).
//! * [`forkgate`]: no fork inside the few system calls that open or close
//!   a registry descriptor and record or forget it (`sys.rs`
//!   `fd_section`, `before_fork`, `after_fork_in_parent`).
//!
//! Every scenario takes a variant: `Correct` is the engine's protocol; the
//! others each break one ordering or drop one re-check, and the tests show
//! that the checker catches each of them.
//!
//! Built with `RUSTFLAGS="--cfg loom"` the atomics are loom's and
//! [`check`] explores the model exhaustively (up to `LOOM_MAX_PREEMPTIONS`,
//! default 2 here). Without it (plain `cargo test --workspace`) the same
//! code runs on std atomics and threads a few hundred times: a smoke test
//! that keeps the models compiling and their oracles honest, not a proof.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p memshelf-model --release
//! ```

pub mod bucket;
pub mod forkgate;
pub mod lease;
pub mod reglock;
pub mod ring;
pub mod tags;

#[cfg(loom)]
pub(crate) use loom::{
    cell::UnsafeCell,
    sync::Arc,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence},
    thread,
};

#[cfg(not(loom))]
pub(crate) use std::{
    sync::Arc,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence},
    thread,
};

/// `loom::cell::UnsafeCell`'s interface over `std::cell::UnsafeCell`: under
/// loom, every access is checked for a data race (two accesses not ordered
/// by happens-before), which is how the models check mutual exclusion.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
// SAFETY: only used for state that the model protects by its bucket lock;
// under loom, loom's own cell checks that claim on every access.
unsafe impl<T: Send> Sync for UnsafeCell<T> {}

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) fn new(v: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(v))
    }
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// A thread waiting for another one to make progress (a spin loop's body).
/// Under loom this tells the scheduler to run someone else, which keeps
/// spin loops finite.
pub(crate) fn spin() {
    thread::yield_now();
}

/// An ideal position-seeded checksum: the engine's xxh3 chain seeded with
/// `hash_seed ^ pos` (`item.rs` `checksum`), modelled as a function that
/// differs for any difference in its inputs (on the few values the models
/// use). `seeded = false` drops the position, for the broken variant.
pub(crate) fn checksum(seeded: bool, pos: u64, words: &[u64]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64
        ^ if seeded {
            pos.wrapping_mul(0xff51_afd7_ed55_8ccd)
        } else {
            0
        };
    for &w in words {
        h ^= w.wrapping_add(0x632b_e59b_d9b4_e019);
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 29;
    }
    h | 1 // never 0: an unwritten (zero) word never validates
}

/// Runs `f` under the model checker: every interleaving (and every value a
/// load may return) up to the preemption bound under loom, a few hundred
/// random runs on std threads otherwise. Returns the number of executions.
pub fn check(f: impl Fn() + Sync + Send + 'static) -> usize {
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = counter.clone();
    let body = move || {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    };
    #[cfg(loom)]
    {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(2);
        }
        b.check(body);
    }
    #[cfg(not(loom))]
    for _ in 0..300 {
        body();
    }
    counter.load(std::sync::atomic::Ordering::Relaxed)
}
