//! Helpers for the integration tests: unique segment names that are
//! unlinked on drop, worker processes that are killed on drop, and bounded
//! waits (a hang fails the test after a generous deadline).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use memshelf_tests::{Rng, check_value, is_int, make_value, now_ms, shm_path};

/// A segment name unique to this run (pid + random), unlinked on drop.
pub struct Seg(pub String);

impl Seg {
    pub fn new(tag: &str) -> Seg {
        let r = fastrand::u32(..);
        Seg(format!("mst-{tag}-{}-{r:08x}", std::process::id()))
    }
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for Seg {
    fn drop(&mut self) {
        let _ = memshelf::unlink(&self.0);
    }
}

/// A temporary file path, removed on drop.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> TempPath {
        let r = fastrand::u32(..);
        TempPath(std::env::temp_dir().join(format!(
            "memshelf-test-{tag}-{}-{r:08x}",
            std::process::id()
        )))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A worker process, SIGKILLed and reaped on drop (so a failing test leaves
/// no orphans).
pub struct Worker {
    pub child: Child,
    pub what: String,
}

impl Worker {
    /// Spawns `memshelf-worker <role> <args>`; stdout is piped (the workers
    /// print at most a line or two), stderr inherited for diagnostics.
    pub fn spawn(role: &str, args: &[String]) -> Worker {
        let child = Command::new(env!("CARGO_BIN_EXE_memshelf-worker"))
            .arg(role)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn memshelf-worker");
        Worker {
            child,
            what: format!("{role} {}", args.join(" ")),
        }
    }

    /// Spawns the worker as pid 1 of a new PID namespace (with its own
    /// /proc), as in a container sharing the host's /dev/shm. As root (CI)
    /// plainly; otherwise inside a user namespace mapping us to root.
    pub fn spawn_in_pidns(role: &str, args: &[String]) -> Worker {
        let mut cmd = Command::new("unshare");
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            cmd.args(["--user", "--map-root-user"]);
        }
        let child = cmd
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(env!("CARGO_BIN_EXE_memshelf-worker"))
            .arg(role)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn unshare (util-linux)");
        Worker {
            child,
            what: format!("[pid namespace] {role} {}", args.join(" ")),
        }
    }

    /// For a worker in its own PID namespace: the host pid of the worker
    /// itself (the child of `unshare`), once it exists.
    pub fn inner_pid(&self) -> i32 {
        let pid = self.child.id();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            if let Some(k) = kids.split_whitespace().next() {
                return k.parse().expect("pid");
            }
            assert!(Instant::now() < end, "unshare started no child");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILLs the worker inside its PID namespace (the namespace's pid 1,
    /// so the whole namespace dies), then reaps `unshare`.
    pub fn kill_inner(&mut self) {
        let inner = self.inner_pid();
        // SAFETY: plain syscall; the pid is our grandchild.
        unsafe {
            libc::kill(inner, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILLs the worker and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits at most `limit` for the worker to exit; panics on a hang.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let end = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            if Instant::now() > end {
                self.kill();
                panic!(
                    "worker `{}` did not exit within {limit:?} (hang)",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (bounded) and returns the exit status and stdout.
    pub fn output(&mut self, limit: Duration) -> (ExitStatus, String) {
        let st = self.wait(limit);
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            o.read_to_string(&mut out).expect("read worker stdout");
        }
        (st, out)
    }

    /// Waits (bounded), asserts exit status 0, and returns stdout.
    pub fn success(&mut self, limit: Duration) -> String {
        let (st, out) = self.output(limit);
        assert!(
            st.success(),
            "worker `{}` failed: {st} (3 = corrupt read, 1 = error, 101 = panic, signal = crash); stdout: {out}",
            self.what
        );
        out
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// `RESULT a=1 b=2` -> {a: 1, b: 2}.
pub fn parse_result(out: &str) -> HashMap<String, i64> {
    let line = out
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| panic!("no RESULT line in worker output {out:?}"));
    line.split_whitespace()
        .skip(1)
        .map(|w| {
            let (k, v) = w.split_once('=').expect("k=v");
            (k.to_owned(), v.parse().expect("number"))
        })
        .collect()
}

/// Runs `f` on a thread and waits at most `limit` for it: a hang fails the
/// test (the stuck thread is abandoned), a panic is propagated.
pub fn with_deadline<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = h.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("sender dropped without sending"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: no result within {limit:?} (hang)"),
    }
}

/// Polls `f` every few ms until it is true; panics after `limit`.
pub fn poll_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < end,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `key=value` worker arguments.
#[macro_export]
macro_rules! wargs {
    ($($k:literal => $v:expr),* $(,)?) => {
        [$(format!("{}={}", $k, $v)),*]
    };
}

/// The counter at `key` (0 if absent).
pub fn counter(c: &memshelf::Cache, key: &str) -> i64 {
    c.get(key)
        .expect("get counter")
        .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
}

/// Reads the first 4 KiB (the header) of a segment file.
pub fn read_header(path: &std::path::Path) -> Vec<u8> {
    let mut f = std::fs::File::open(path).expect("open segment file");
    let mut buf = vec![0u8; 4096];
    f.read_exact(&mut buf).expect("read header");
    buf
}

/// Writes `bytes` at `off` of a segment file (through the file, so every
/// process that maps it sees them).
/// Creates (or replaces) a file with mode 0600, as memshelf's creator does
/// (a wider mode is a planted segment and refused before anything else).
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::fs::File {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("create file");
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .expect("chmod 0600");
    f.write_all(bytes).expect("write file");
    f
}

pub fn write_at(path: &std::path::Path, off: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt as _;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open segment file");
    f.write_all_at(bytes, off).expect("write segment file");
}

/// `n` random bytes.
pub fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.u8(..)).collect()
}

/// A file system mounted for one test, unmounted on drop.
pub struct Mount {
    dir: TempPath,
}

impl Mount {
    pub fn new(tag: &str, fstype: &str, options: &str) -> Mount {
        let dir = TempPath::new(tag);
        std::fs::create_dir_all(&dir.0).unwrap();
        let out = Command::new("mount")
            .args(["-t", fstype, "-o", options, fstype])
            .arg(&dir.0)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t {fstype} -o {options} failed (this suite needs root, as CI has): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount { dir }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir.0).status();
    }
}
