//! Small operating-system helpers: the clock, process identity and liveness
//! (judged by the kernel through /proc), futexes between processes, and a
//! per-thread random generator.

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Wall-clock milliseconds since the Unix epoch. Deadlines in a segment use
/// wall time so that a file-backed segment stays meaningful across reboots.
pub(crate) fn now_ms() -> u64 {
    // SAFETY: `ts` is a plain out parameter; CLOCK_REALTIME always exists.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

static TOKEN: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn reset_token_in_child() {
    TOKEN.store(0, Ordering::Relaxed);
}

/// This process's identity: `pid << 32 | (start time & 0xffff_ffff)`. The
/// start time (clock ticks since boot, from /proc) makes the token unique
/// even when a pid is reused. Recomputed in a forked child.
pub(crate) fn process_token() -> u64 {
    let t = TOKEN.load(Ordering::Relaxed);
    if t != 0 {
        return t;
    }
    ATFORK.call_once(|| {
        // SAFETY: registering a handler that only does an atomic store.
        unsafe {
            libc::pthread_atfork(None, None, Some(reset_token_in_child));
        }
    });
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() } as u32;
    let start = start_time(pid).unwrap_or(0) as u32;
    let t = (u64::from(pid) << 32) | u64::from(start);
    TOKEN.store(t, Ordering::Relaxed);
    t
}

pub(crate) fn token_pid(token: u64) -> u32 {
    (token >> 32) as u32
}

/// Start time (field 22 of /proc/PID/stat) and whether the process is a
/// zombie or dead.
fn stat_of(pid: u32) -> Option<(u64, bool)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    let dead = matches!(state, "Z" | "X" | "x");
    // After the state (field 3) come fields 4..; start time is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, dead))
}

fn start_time(pid: u32) -> Option<u64> {
    stat_of(pid).map(|(s, _)| s)
}

/// Whether the process that made `token` still runs, by the kernel's word.
/// A zombie counts as dead, and so does a token without a start time: every
/// real token has one, so such a word can only be corruption (it must not
/// make writers wait on whatever small pid it happens to name).
pub(crate) fn token_alive(token: u64) -> bool {
    let pid = token_pid(token);
    let want = token as u32;
    if pid == 0 || want == 0 {
        return false;
    }
    matches!(stat_of(pid), Some((start, false)) if start as u32 == want)
}

/// Whether process `pid` runs (not a zombie), whatever its start time.
pub(crate) fn pid_alive(pid: u32) -> bool {
    pid != 0 && matches!(stat_of(pid), Some((_, false)))
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
    let t = now_ms() ^ (process_token().rotate_left(17));
    let c = THREAD_COUNTER.fetch_add(1, Ordering::Relaxed);
    xxhash_rust::xxh3::xxh3_64_with_seed(&t.to_ne_bytes(), c)
}

/// This thread's statistics stripe.
pub(crate) fn stripe(nstripes: u32) -> u32 {
    STRIPE.with(|c| {
        let s = c.get();
        if s != u32::MAX {
            return s % nstripes;
        }
        let n = THREAD_COUNTER.fetch_add(1, Ordering::Relaxed);
        let s = xxhash_rust::xxh3::xxh3_64_with_seed(&n.to_ne_bytes(), process_token()) as u32;
        c.set(s);
        s % nstripes
    })
}
