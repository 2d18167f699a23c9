//! Small operating-system helpers: the clock, open-file-description locks
//! (the kernel's word on whether a process lives, in every PID namespace),
//! fork tracking, futexes between processes, and a per-thread random
//! generator.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering, fence};
use std::time::Duration;

/// Wall-clock milliseconds since the Unix epoch. Deadlines in a segment use
/// wall time so that a file-backed segment stays meaningful across reboots.
pub(crate) fn now_ms() -> u64 {
    // SAFETY: `timespec` is plain old data; zero is a valid value for it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid out parameter; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// Bumped in every forked child (a `pthread_atfork` handler): a process
/// registration made before the fork belongs to the parent, and a child
/// registers anew when it first needs an identity.
static FORK_EPOCH: AtomicU32 = AtomicU32::new(1);
/// Whether this process registered the fork handler (see `fork_epoch`).
static ATFORK: AtomicBool = AtomicBool::new(false);

/// Registry descriptors (see `registry.rs`) of this process: a forked child
/// closes them at once, because an open-file-description lock is shared by
/// every descriptor of the description, and a child holding its parent's
/// would keep the parent "alive" after the parent died.
const MAX_REG_FDS: usize = 1024;
static REG_FDS: [AtomicI32; MAX_REG_FDS] = [const { AtomicI32::new(-1) }; MAX_REG_FDS];

/// Threads inside an `fd_section` now, and forks being prepared (see
/// `fd_section`).
static FD_SECTIONS: AtomicU32 = AtomicU32::new(0);
static FORKS: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// Whether this thread is inside an `fd_section` (a fork from a signal
    /// handler that interrupted it must not wait for itself).
    static IN_FD_SECTION: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with no `fork` of this process in the middle of it: a fork
/// from another thread waits (in the fork handler's prepare step) until
/// `f` has returned, and a section started while a fork is being prepared
/// waits for the fork. For the few system calls that open or close a
/// registry descriptor and record or forget it for the child's handler
/// (`registry.rs`): a child forked between the two would keep a copy the
/// handler does not know, or close a number reused meanwhile. Sections are
/// short (an `open`, or a `close`), so a fork waits microseconds.
///
/// The protocol is a store-buffer handshake (`FD_SECTIONS`, `FORKS`, each
/// side's increment and check separated by a `SeqCst` fence): either the
/// section sees the fork's increment and backs off, or the fork sees the
/// section's and waits. `model/src/forkgate.rs`
/// checks it.
pub(crate) fn fd_section<R>(f: impl FnOnce() -> R) -> R {
    fork_epoch(); // the handler is installed before any section runs
    loop {
        FD_SECTIONS.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if FORKS.load(Ordering::SeqCst) == 0 {
            break;
        }
        FD_SECTIONS.fetch_sub(1, Ordering::SeqCst);
        while FORKS.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            IN_FD_SECTION.set(false);
            FD_SECTIONS.fetch_sub(1, Ordering::SeqCst);
        }
    }
    IN_FD_SECTION.set(true);
    let _leave = Leave;
    f()
}

/// The fork handler's prepare step: in the forking thread, before the
/// fork. Keeps sections out and waits for those under way.
extern "C" fn before_fork() {
    FORKS.fetch_add(1, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    if IN_FD_SECTION.get() {
        return; // forking from a signal handler inside a section
    }
    while FD_SECTIONS.load(Ordering::SeqCst) != 0 {
        // SAFETY: no arguments; async-signal-safe.
        unsafe { libc::sched_yield() };
    }
}

/// In the parent after a fork: sections may run again.
extern "C" fn after_fork_in_parent() {
    FORKS.fetch_sub(1, Ordering::SeqCst);
}

extern "C" fn in_forked_child() {
    // The child has only the forking thread: no fork is being prepared,
    // and the only section under way is that thread's own, if any.
    FORKS.store(0, Ordering::SeqCst);
    FD_SECTIONS.store(u32::from(IN_FD_SECTION.get()), Ordering::SeqCst);
    FORK_EPOCH.fetch_add(1, Ordering::Relaxed);
    for slot in &REG_FDS {
        let fd = slot.swap(-1, Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: `fd` is a descriptor this process registered and no one
            // else closes (its owner checks the fork epoch first); close is
            // async-signal-safe, as a fork handler needs.
            unsafe {
                libc::close(fd);
            }
        }
    }
}

/// The current fork epoch (changes in a forked child). The first call
/// registers the fork handler. No caller ever waits for another to finish
/// that: a child forked while a thread of its parent was registering it
/// has no copy of that thread, and would wait forever (as a
/// `std::sync::Once` made it). Every thread that finds it unregistered
/// registers it; a handler registered twice runs twice in each child,
/// which bumps the epoch twice and finds the descriptors already closed:
/// harmless.
pub(crate) fn fork_epoch() -> u32 {
    if !ATFORK.load(Ordering::Acquire) {
        install_fork_handler();
    }
    FORK_EPOCH.load(Ordering::Relaxed)
}

#[cold]
#[inline(never)]
fn install_fork_handler() {
    #[cfg(test)]
    tests::install_hook();
    // SAFETY: registers handlers that only do atomic operations, a
    // thread-local `Cell` read, sched_yield(2) and close(2), all
    // async-signal-safe.
    unsafe {
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_in_parent),
            Some(in_forked_child),
        );
    }
    ATFORK.store(true, Ordering::Release);
}

/// The current fork epoch without installing the fork handler: only for a
/// caller that called `fork_epoch` before (once installed, the handler
/// stays), so an epoch it stored then is still compared correctly.
#[inline(always)]
pub(crate) fn fork_epoch_now() -> u32 {
    FORK_EPOCH.load(Ordering::Relaxed)
}

/// Remembers a registry descriptor so that a forked child closes it. Returns
/// false when the table is full (then a child keeps the descriptor open: the
/// parent's death is recognised only once the child also exits).
pub(crate) fn track_reg_fd(fd: libc::c_int) -> bool {
    fork_epoch();
    REG_FDS.iter().any(|s| {
        s.compare_exchange(-1, fd, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    })
}

/// Forgets a registry descriptor (before its owner closes it).
pub(crate) fn untrack_reg_fd(fd: libc::c_int) {
    for s in &REG_FDS {
        if s.compare_exchange(fd, -1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

fn ofd_lock_struct(kind: libc::c_int, off: u64) -> libc::flock {
    // SAFETY: `flock` is plain old data; zero is a valid value for it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = off as libc::off_t;
    fl.l_len = 1;
    fl
}

/// Tries to take an open-file-description write lock on byte `off` of
/// `fd`'s file without waiting. `Ok(false)`: another description holds it.
pub(crate) fn ofd_try_lock(fd: libc::c_int, off: u64) -> std::io::Result<bool> {
    let fl = ofd_lock_struct(libc::F_WRLCK, off);
    // SAFETY: `fl` is a valid flock structure that lives across the call.
    if unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) | Some(libc::EINTR) => Ok(false),
        _ => Err(e),
    }
}

/// Drops this description's lock on byte `off`.
pub(crate) fn ofd_unlock(fd: libc::c_int, off: u64) {
    let fl = ofd_lock_struct(libc::F_UNLCK, off);
    // SAFETY: as in `ofd_try_lock`.
    unsafe {
        libc::fcntl(fd, libc::F_OFD_SETLK, &fl);
    }
}

/// Whether an open file description other than `fd`'s holds a lock on byte
/// `off`: the kernel's answer to "is that process alive?" (it drops a dead
/// process's locks), the same in every PID namespace. An error counts as
/// "held" (the caller then waits rather than steals).
pub(crate) fn ofd_held_by_other(fd: libc::c_int, off: u64) -> bool {
    let mut fl = ofd_lock_struct(libc::F_WRLCK, off);
    // SAFETY: `fl` is a valid, writable flock structure.
    if unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut fl) } != 0 {
        return true;
    }
    fl.l_type != libc::F_UNLCK as libc::c_short
}

/// Waits while `*word == expected`, at most `timeout`. Works between
/// processes (no FUTEX_PRIVATE_FLAG) because the word lives in a shared
/// mapping.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid aligned u32 in mapped memory; the kernel only
    // reads it; `ts` lives across the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every waiter on `word`.
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
    static STRIPE: Cell<u32> = const { Cell::new(u32::MAX) };
}

static THREAD_COUNTER: AtomicU64 = AtomicU64::new(0);
static THREAD_ORDINAL: AtomicU64 = AtomicU64::new(0);

/// A fast per-thread xorshift generator (not cryptographic).
pub(crate) fn random_u64() -> u64 {
    RNG.with(|c| {
        let mut x = c.get();
        if x == 0 {
            x = seed_entropy() | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.set(x);
        x
    })
}

/// Entropy for seeds: the kernel's random bytes, else time and identity.
pub(crate) fn seed_entropy() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: writing at most 8 bytes into `buf`.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), 8, 0) };
    if n == 8 {
        return u64::from_ne_bytes(buf);
    }
    // SAFETY: getpid cannot fail.
    let t = now_ms() ^ (u64::from(unsafe { libc::getpid() } as u32).rotate_left(17));
    let c = THREAD_COUNTER.fetch_add(1, Ordering::Relaxed);
    xxhash_rust::xxh3::xxh3_64_with_seed(&t.to_ne_bytes(), c)
}

/// This thread's ordinal in its process: 0 for the first thread that asks,
/// 1 for the next, ... (the statistics stripe's per-thread part, see
/// `stats.rs`). (The first call's choice is out of line, so the
/// thread-local access stays small enough to inline into every counter
/// update.)
#[inline(always)]
pub(crate) fn thread_ordinal() -> u32 {
    STRIPE.with(|c| {
        let s = c.get();
        if s != u32::MAX {
            return s;
        }
        first_ordinal(c)
    })
}

#[cold]
#[inline(never)]
fn first_ordinal(c: &Cell<u32>) -> u32 {
    let s = THREAD_ORDINAL.fetch_add(1, Ordering::Relaxed) as u32 & 0x7fff_ffff;
    c.set(s);
    s
}

/// Test helpers: a forked child that runs a body and exits with its code.
#[cfg(test)]
pub(crate) mod testing {
    /// Forks; the child runs `body` and exits with what it returns (without
    /// the parent's destructors or the test harness), after an `alarm(10)`
    /// watchdog: a child that hangs ends by SIGALRM (status 14). Returns the
    /// child's pid to the parent.
    pub(crate) fn fork_child(body: impl FnOnce() -> i32) -> libc::pid_t {
        // SAFETY: the child runs only `body` (the caller's test code, which
        // may not rely on locks other threads held at the fork) and _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            // SAFETY: plain system calls in the child; _exit ends it
            // without running the parent's destructors.
            unsafe {
                libc::alarm(10);
                libc::_exit(body());
            }
        }
        pid
    }

    /// Waits for our child `pid`; its raw wait status.
    pub(crate) fn wait_child(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        status
    }

    /// Its exit code, or `None` if a signal ended it.
    pub(crate) fn exit_code(status: i32) -> Option<i32> {
        libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    static HOOKED: AtomicBool = AtomicBool::new(false);
    static ENTERED: AtomicBool = AtomicBool::new(false);
    static RELEASE: AtomicBool = AtomicBool::new(false);

    /// Called while the fork handler is being installed: the first caller
    /// after `HOOKED` was set waits there (a thread caught in the middle of
    /// the first call); a forked child's call passes.
    pub(super) fn install_hook() {
        if HOOKED.swap(false, Ordering::SeqCst) {
            ENTERED.store(true, Ordering::SeqCst);
            while !RELEASE.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    const FRESH: &str = "MEMSHELF_TEST_FRESH_PROCESS";

    /// A fork while another thread is in the process's first `fork_epoch`
    /// call (installing the fork handler) leaves the child able to call it:
    /// the child has no copy of that thread, so nothing there may wait for
    /// it. Runs in a fresh process of this test binary, where the handler
    /// is not installed yet.
    #[test]
    fn a_fork_during_the_first_fork_epoch_call_leaves_the_child_able_to_call_it() {
        let name =
            "sys::tests::a_fork_during_the_first_fork_epoch_call_leaves_the_child_able_to_call_it";
        if std::env::var_os(FRESH).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--test-threads=1", "--nocapture"])
                .env(FRESH, "1")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "in a fresh process: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("1 passed"),
                "the fresh process ran the test"
            );
            return;
        }
        HOOKED.store(true, Ordering::SeqCst);
        let t = std::thread::spawn(super::fork_epoch);
        while !ENTERED.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let pid = super::testing::fork_child(|| {
            let _ = super::fork_epoch();
            0
        });
        let status = super::testing::wait_child(pid);
        RELEASE.store(true, Ordering::SeqCst);
        t.join().unwrap();
        assert!(
            super::testing::exit_code(status) == Some(0),
            "the child's fork_epoch() did not return (status {status:#x}: 14 = killed by its alarm)"
        );
    }
}
