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
    /// registers afresh in its own epoch. The descriptor that thread was
    /// opening or closing is never left unrecorded in the child: the fork
    /// waits for that step (`sys::fd_section`).
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
            self.close_reg_fd(r.fd);
        }
        // A descriptor from before a fork was closed by the fork handler.
        r.fd = -1;
        // Open the descriptor and record it for the fork handler with no
        // fork in between: a child forked between the two would keep an
        // unrecorded copy, and with it this registration's lock.
        let fd = sys::fd_section(|| -> Result<libc::c_int> {
            let fd = self.reopen()?;
            #[cfg(test)]
            tests::pause(self.g.hash_seed, tests::Point::Opened);
            let raw = fd.into_raw();
            sys::track_reg_fd(raw);
            Ok(raw)
        })?;
        let nreg = self.g.nreg;
        let start = sys::random_u64() % nreg;
        for i in 0..nreg {
            let slot = (start + i) % nreg;
            match sys::ofd_try_lock(fd, LOCK_BASE + slot) {
                Ok(true) => {
                    let mut generation = self
                        .reg_word(slot)
                        .fetch_add(1, Ordering::AcqRel)
                        .wrapping_add(1);
                    if generation & GEN_MASK == 0 {
                        generation = self.reg_word(slot).fetch_add(1, Ordering::AcqRel) + 1;
                    }
                    let token = ((slot + 1) << GEN_BITS) | (generation & GEN_MASK);
                    r.fd = fd;
                    r.epoch = epoch;
                    self.reg
                        .state
                        .store((u64::from(epoch) << TOKEN_BITS) | token, Ordering::Release);
                    return Ok(token);
                }
                Ok(false) => {}
                Err(e) => {
                    self.close_reg_fd(fd);
                    return Err(Error::io("fcntl(F_OFD_SETLK)", e));
                }
            }
        }
        self.close_reg_fd(fd);
        Err(Error::Timeout(format!(
            "all {nreg} process slots of segment {:?} are held by live processes",
            self.name
        )))
    }

    /// Forgets and closes a registry descriptor of this process, with no
    /// fork in between: a child forked between the two would keep an
    /// unrecorded copy (and the lock), or close a number reused meanwhile.
    fn close_reg_fd(&self, fd: libc::c_int) {
        sys::fd_section(|| {
            sys::untrack_reg_fd(fd);
            #[cfg(test)]
            tests::pause(self.g.hash_seed, tests::Point::Untracked);
            // SAFETY: our own descriptor (opened and recorded in this very
            // process: its callers check the fork epoch), closed once.
            unsafe { libc::close(fd) };
        });
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
            self.close_reg_fd(r.fd);
        }
        r.fd = -1;
        self.reg.state.store(0, Ordering::Release);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    use crate::Cache;
    use crate::sys::testing::{exit_code, fork_child, wait_child};

    /// Where `pause` can hold a registering or closing thread.
    #[derive(Clone, Copy)]
    pub(crate) enum Point {
        /// `register`: the new descriptor is open, not yet recorded for
        /// the fork handler.
        Opened = 0,
        /// `unregister`: the descriptor is no longer recorded, not yet
        /// closed.
        Untracked = 1,
    }

    /// Per point: the hash seed of the segment whose thread should pause
    /// there (0: none), and whether one has arrived.
    static PAUSE: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
    static ARRIVED: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

    /// Holds the first thread that reaches `at` for the segment of hash
    /// seed `seed` (once armed by `arm`) for 300 ms: a fork from another
    /// thread meanwhile lands inside that window unless something keeps
    /// forks out of it.
    pub(crate) fn pause(seed: u64, at: Point) {
        let i = at as usize;
        if PAUSE[i]
            .compare_exchange(seed, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            ARRIVED[i].store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn arm(c: &Cache, at: Point) {
        ARRIVED[at as usize].store(false, Ordering::SeqCst);
        PAUSE[at as usize].store(c.e.seg.g.hash_seed, Ordering::SeqCst);
    }

    fn wait_arrival(at: Point) {
        while !ARRIVED[at as usize].load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
    }

    /// Forks a child that lives 5 s (it only sleeps) while `during` runs
    /// in the parent, then kills and reaps it; returns `during`'s result.
    fn with_live_child<R>(during: impl FnOnce() -> R) -> R {
        let pid = fork_child(|| {
            std::thread::sleep(Duration::from_secs(5));
            0
        });
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(during));
        // SAFETY: our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_child(pid);
        r.unwrap()
    }

    /// Whether `token` (of a handle just closed) is seen dead within 2 s.
    /// Not at once: a child that another test's thread forked while the
    /// descriptor was open holds a copy until its fork handler has run
    /// (microseconds, or a scheduling delay on a busy machine); a child
    /// that keeps an unrecorded copy holds it for its whole life.
    fn dead_soon(c: &Cache, token: u64) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while c.e.seg.alive(token) {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// A fork while another thread is registering a handle, between
    /// opening its lock's descriptor and recording it for the fork
    /// handler, must not leave the child a copy of that descriptor: the
    /// lock would then outlive the parent's handle for as long as the
    /// child lives, and the handle (closed, or its process dead) would
    /// still look alive to everyone.
    #[test]
    fn a_fork_while_another_thread_opens_its_registration_leaves_the_child_no_copy() {
        let name = format!("unit-regfork-open-{}", std::process::id());
        let c = Cache::open(&name, 4 << 20).unwrap();
        c.e.seg.unregister();
        arm(&c, Point::Opened);
        let dead = std::thread::scope(|s| {
            let t = s.spawn(|| c.e.seg.token().unwrap());
            wait_arrival(Point::Opened);
            with_live_child(|| {
                let token = t.join().unwrap();
                assert!(c.e.seg.alive(token), "registered");
                c.e.seg.unregister();
                dead_soon(&c, token)
            })
        });
        assert!(
            dead,
            "a closed handle still looks alive: the child forked mid-registration keeps its lock"
        );
        drop(c);
        crate::unlink(&name).unwrap();
    }

    /// The same for a fork while another thread closes a handle, between
    /// forgetting its descriptor and closing it.
    #[test]
    fn a_fork_while_another_thread_closes_its_registration_leaves_the_child_no_copy() {
        let name = format!("unit-regfork-close-{}", std::process::id());
        let c = Cache::open(&name, 4 << 20).unwrap();
        let token = c.e.seg.token().unwrap();
        arm(&c, Point::Untracked);
        let dead = std::thread::scope(|s| {
            let t = s.spawn(|| c.e.seg.unregister());
            wait_arrival(Point::Untracked);
            with_live_child(|| {
                t.join().unwrap();
                dead_soon(&c, token)
            })
        });
        assert!(
            dead,
            "a closed handle still looks alive: the child forked mid-close keeps its lock"
        );
        drop(c);
        crate::unlink(&name).unwrap();
    }

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
