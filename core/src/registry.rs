//! The process registry: which handles are alive, judged by the kernel the
//! same way in every PID namespace.
//!
//! A segment has `nreg` registry slots (64-4096 by capacity), one generation word each at
//! `registry_off + 8 i`. A handle (one `Cache`, in one process) registers by
//! taking an open-file-description (OFD) write lock on byte
//! `LOCK_BASE + i` of the segment's file through a descriptor of its own,
//! then bumping slot `i`'s generation. Its identity, a *token* of 40 bits,
//! is `(i + 1) << 24 | generation mod 2^24`. Bucket locks, lease claims and
//! the segment's keeper hold tokens, never pids.
//!
//! A token is alive while the kernel reports byte `LOCK_BASE + i` locked and
//! slot `i`'s generation still ends in the token's. The kernel drops an OFD
//! lock when the last descriptor of its description closes, which includes
//! the death of its process by any signal; processes in other PID
//! namespaces (containers sharing /dev/shm) see the same lock. Slot reuse
//! is caught by the generation: a new registrant bumps it right after its
//! lock succeeds, so between the two a dead token looks alive for a moment,
//! which only makes a waiter wait a little longer (never a steal from the
//! living).
//!
//! A forked child shares its parent's descriptions, so the fork handler in
//! `sys.rs` closes the child's copies of registry descriptors and the child
//! registers anew (through `/proc/self/fd`, or by name) when it first needs
//! a token.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::segment::Segment;
use crate::sys;

/// Tokens are below `1 << TOKEN_BITS`; 0 is nobody.
pub(crate) const TOKEN_BITS: u32 = 40;
pub(crate) const TOKEN_MASK: u64 = (1 << TOKEN_BITS) - 1;
const GEN_BITS: u32 = 24;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
/// File offset of slot 0's lock byte. Advisory locks may lie past the end
/// of a file; this one is past any segment and never overlaps the opener's
/// lock at byte 0 (`shm.rs`).
pub(crate) const LOCK_BASE: u64 = 1 << 48;

/// This handle's registration.
pub(crate) struct Registry {
    /// `fork_epoch << 40 | token` of the current registration (0: none).
    state: AtomicU64,
    /// Guards `inner`: `fork_epoch << 1 | 1` while a thread holds it, 0
    /// when free. Not a `Mutex`: a forked child has no copy of the thread
    /// that held a lock at the fork, so a lock taken in an older fork epoch
    /// is free (see `lock`).
    lock: AtomicU64,
    inner: UnsafeCell<Reg>,
}

// SAFETY: `inner` is only reached through `RegGuard`, which `lock` hands to
// one thread at a time per fork epoch (the word's CAS); a holder from an
// older epoch is a thread of the parent, absent from this process.
unsafe impl Sync for Registry {}

pub(crate) struct Reg {
    /// The descriptor holding the slot's lock (-1: none).
    fd: libc::c_int,
    epoch: u32,
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            state: AtomicU64::new(0),
            lock: AtomicU64::new(0),
            inner: UnsafeCell::new(Reg { fd: -1, epoch: 0 }),
        }
    }

    /// Takes the registration lock. It is held for a few system calls
    /// (registering or closing), so a waiter yields rather than sleeps. A
    /// lock held in an older fork epoch is taken over: its holder was a
    /// thread of the parent, which the child does not have. The child
    /// registers afresh in its own epoch; a descriptor that thread had
    /// opened and not yet recorded for the fork handler (or had just
    /// unrecorded to close it) stays open in the child, and keeps that
    /// registration looking alive until the child exits too.
    pub(crate) fn lock(&self) -> RegGuard<'_> {
        let mine = (u64::from(sys::fork_epoch()) << 1) | 1;
        loop {
            let cur = self.lock.load(Ordering::Relaxed);
            if cur != mine
                && self
                    .lock
                    .compare_exchange(cur, mine, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return RegGuard { r: self };
            }
            std::thread::yield_now();
        }
    }
}

/// The registration lock, held (see `Registry::lock`).
pub(crate) struct RegGuard<'a> {
    r: &'a Registry,
}

impl std::ops::Deref for RegGuard<'_> {
    type Target = Reg;
    fn deref(&self) -> &Reg {
        // SAFETY: the guard is the only access to `inner` (see `Registry`).
        unsafe { &*self.r.inner.get() }
    }
}

impl std::ops::DerefMut for RegGuard<'_> {
    fn deref_mut(&mut self) -> &mut Reg {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.r.inner.get() }
    }
}

impl Drop for RegGuard<'_> {
    fn drop(&mut self) {
        self.r.lock.store(0, Ordering::Release);
    }
}

fn token_slot(token: u64, nreg: u64) -> Option<u64> {
    let s = token >> GEN_BITS;
    (token & !TOKEN_MASK == 0 && s >= 1 && s <= nreg).then(|| s - 1)
}

impl Segment {
    fn reg_word(&self, slot: u64) -> &AtomicU64 {
        self.word(self.g.registry_off + (slot % self.g.nreg) * 8)
    }

    /// This handle's token, registering (again, after a fork) if needed.
    #[inline]
    pub fn token(&self) -> Result<u64> {
        let epoch = sys::fork_epoch();
        let st = self.reg.state.load(Ordering::Acquire);
        if st != 0 && st >> TOKEN_BITS == u64::from(epoch) {
            return Ok(st & TOKEN_MASK);
        }
        self.register(epoch)
    }

    #[cold]
    fn register(&self, epoch: u32) -> Result<u64> {
        let mut r = self.reg.lock();
        let st = self.reg.state.load(Ordering::Acquire);
        if st != 0 && st >> TOKEN_BITS == u64::from(epoch) {
            return Ok(st & TOKEN_MASK);
        }
        if r.fd >= 0 && r.epoch == epoch {
            // Registered in this process but the state word was lost: cannot
            // happen; register afresh below after closing it.
            sys::untrack_reg_fd(r.fd);
            // SAFETY: our own descriptor, closed once.
            unsafe { libc::close(r.fd) };
        }
        // A descriptor from before a fork was closed by the fork handler.
        r.fd = -1;
        let fd = self.reopen()?;
        let nreg = self.g.nreg;
        let start = sys::random_u64() % nreg;
        for i in 0..nreg {
            let slot = (start + i) % nreg;
            match sys::ofd_try_lock(fd.0, LOCK_BASE + slot) {
                Ok(true) => {
                    let mut generation = self
                        .reg_word(slot)
                        .fetch_add(1, Ordering::AcqRel)
                        .wrapping_add(1);
                    if generation & GEN_MASK == 0 {
                        generation = self.reg_word(slot).fetch_add(1, Ordering::AcqRel) + 1;
                    }
                    let token = ((slot + 1) << GEN_BITS) | (generation & GEN_MASK);
                    let raw = fd.into_raw();
                    sys::track_reg_fd(raw);
                    r.fd = raw;
                    r.epoch = epoch;
                    self.reg
                        .state
                        .store((u64::from(epoch) << TOKEN_BITS) | token, Ordering::Release);
                    return Ok(token);
                }
                Ok(false) => {}
                Err(e) => return Err(Error::io("fcntl(F_OFD_SETLK)", e)),
            }
        }
        Err(Error::Timeout(format!(
            "all {nreg} process slots of segment {:?} are held by live processes",
            self.name
        )))
    }

    /// Whether the handle behind `token` is alive, by the kernel's word.
    /// Garbage (a corrupted word) names nobody and is dead.
    pub fn alive(&self, token: u64) -> bool {
        let Some(slot) = token_slot(token, self.g.nreg) else {
            return false;
        };
        if token & GEN_MASK == 0 {
            return false;
        }
        if !sys::ofd_held_by_other(self.attach_fd(), LOCK_BASE + slot) {
            return false;
        }
        self.reg_word(slot).load(Ordering::Acquire) & GEN_MASK == token & GEN_MASK
    }

    /// Drops this handle's registration (on close).
    pub fn unregister(&self) {
        let mut r = self.reg.lock();
        if r.fd >= 0 && r.epoch == sys::fork_epoch() {
            sys::untrack_reg_fd(r.fd);
            // SAFETY: our own descriptor (registered in this very process:
            // the fork epoch matches), closed once.
            unsafe { libc::close(r.fd) };
        }
        r.fd = -1;
        self.reg.state.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use crate::Cache;
    use crate::sys::testing::{exit_code, fork_child, wait_child};

    /// A fork while another thread holds the registration lock (it is
    /// registering a handle: a few system calls, once per handle and
    /// process) leaves the child able to register: the child has no copy
    /// of that thread, so a lock it held in the parent must not make the
    /// child's first write wait forever.
    #[test]
    fn a_fork_during_another_threads_registration_leaves_the_child_able_to_write() {
        let name = format!("unit-regfork-{}", std::process::id());
        let c = Cache::open(&name, 4 << 20).unwrap();
        c.put(b"before", b"1").unwrap();
        let (held_tx, held_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            let c = &c;
            s.spawn(move || {
                let _guard = c.e.seg.reg.lock();
                held_tx.send(()).unwrap();
                let _ = done_rx.recv();
            });
            held_rx.recv().unwrap();
            let pid = fork_child(|| i32::from(c.put(b"child", b"2").is_err()));
            let waited = std::panic::catch_unwind(|| wait_child(pid));
            // Release the holder first: a failed assert must not leave it
            // waiting (the scope would then never end).
            done_tx.send(()).unwrap();
            let status = waited.unwrap();
            assert!(
                exit_code(status) == Some(0),
                "the child could not register (status {status:#x}: 14 = killed by its alarm, stuck on the lock)"
            );
        });
        assert_eq!(c.get(b"child").unwrap().as_deref(), Some(&b"2"[..]));
        drop(c);
        crate::unlink(&name).unwrap();
    }
}
