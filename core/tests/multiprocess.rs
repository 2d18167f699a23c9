//! Multi-process tests: real processes (this test binary re-executed as a
//! worker) share segments, and some are SIGKILLed at random instants.
//!
//! Every value is self-checking (it embeds its key, its length and a
//! checksum), so a torn, foreign or stale-mixed read is detected by the
//! reader. Waits are bounded: a hang fails the test instead of hanging CI.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memshelf::{Cache, Error, GetOrSetOptions, OpenOptions, PutOptions, Ttl};

// ---------------------------------------------------------------- helpers

struct Seg(String);
impl Seg {
    fn new(t: &str) -> Seg {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Seg(format!("mp-{t}-{}-{nanos}", std::process::id()))
    }
}
impl Drop for Seg {
    fn drop(&mut self) {
        let _ = memshelf::unlink(&self.0);
    }
}

fn xxh(b: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(b)
}

/// `key | len (u32) | payload | xxh3 of all that`.
fn make_value(key: &[u8], len: usize, salt: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + len + 12);
    v.extend_from_slice(key);
    v.extend_from_slice(&(len as u32).to_le_bytes());
    let mut x = salt | 1;
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    let sum = xxh(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

/// Whether `v` is a complete value written for `key`.
fn value_ok(key: &[u8], v: &[u8]) -> bool {
    if v.len() < key.len() + 12 || !v.starts_with(key) {
        return false;
    }
    let len = u32::from_le_bytes(v[key.len()..key.len() + 4].try_into().unwrap()) as usize;
    if v.len() != key.len() + 4 + len + 8 {
        return false;
    }
    let (body, sum) = v.split_at(v.len() - 8);
    xxh(body).to_le_bytes() == sum
}

struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn spawn_worker(role: &str, args: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "worker_entry", "--nocapture", "--test-threads=1"])
        .env("MS_ROLE", role)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in args {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn worker")
}

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("worker needs {k}"))
}

/// Waits for a child with a deadline; kills it and fails on timeout.
fn wait_ok(child: &mut Child, deadline: Duration, what: &str) {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{what} failed: {st}");
            return;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {deadline:?} (hang)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn poll_until(deadline: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn counter(c: &Cache, key: &str) -> i64 {
    c.get(key)
        .unwrap()
        .map(|v| std::str::from_utf8(&v).unwrap().parse().unwrap())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- workers

/// The worker entry point: a no-op when run as a normal test.
#[test]
fn worker_entry() {
    let Ok(role) = std::env::var("MS_ROLE") else {
        return;
    };
    match role.as_str() {
        "mixed" => worker_mixed(),
        "gos" => worker_get_or_set(),
        "race" => worker_race(),
        "chaos" => worker_chaos(),
        "fill" => worker_fill(),
        other => panic!("unknown role {other}"),
    }
}

/// Mixed put/get/delete/incr/add on a small key space of a small segment
/// (constant eviction), plus exact counters in the control segment. Any
/// corrupt read is counted in the control segment at once and fails the
/// worker.
fn worker_mixed() {
    let data = OpenOptions::new()
        .create(false)
        .open(&env("MS_SEG"))
        .unwrap();
    let ctl = OpenOptions::new()
        .create(false)
        .open(&env("MS_CTL"))
        .unwrap();
    let id: u64 = env("MS_ID").parse().unwrap();
    let secs: f64 = env("MS_SECONDS").parse().unwrap();
    let incrs: u64 = env("MS_INCRS").parse().unwrap();
    let mut rng = Rng::new(id + 1);
    let mut buf = Vec::new();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut n = 0u64;
    let mut done_incrs = 0u64;
    let hb = format!("hb:{id}");
    while Instant::now() < end || done_incrs < incrs {
        n += 1;
        let k = format!("key:{}", rng.below(300));
        match rng.below(100) {
            0..=49 => {
                if data.get_into(&k, &mut buf).unwrap()
                    && !value_ok(k.as_bytes(), &buf)
                    && !is_int(&buf)
                {
                    ctl.incr("corrupt", 1).unwrap();
                    panic!("corrupt read of {k}: {} bytes", buf.len());
                }
            }
            50..=79 => {
                let len = [0, 10, 100, 1000, 3000][rng.below(5) as usize];
                let opts = if rng.below(4) == 0 {
                    PutOptions::ttl(Duration::from_millis(1 + rng.below(50)))
                } else {
                    PutOptions::default()
                };
                data.put_with(&k, make_value(k.as_bytes(), len, rng.next()), &opts)
                    .unwrap();
            }
            80..=87 => {
                data.delete(&k).unwrap();
            }
            88..=91 => {
                data.add(&k, make_value(k.as_bytes(), 50, rng.next()))
                    .unwrap();
            }
            92..=95 => match data.incr(&k, 1) {
                Ok(_) | Err(Error::NotAnInteger { .. }) => {}
                Err(e) => panic!("incr: {e}"),
            },
            _ => {
                if done_incrs < incrs {
                    ctl.incr(format!("ctr:{}", rng.below(4)), 1).unwrap();
                    done_incrs += 1;
                }
            }
        }
        if n % 256 == 0 {
            ctl.incr(&hb, 1).unwrap();
        }
    }
    ctl.incr("finished", 1).unwrap();
}

fn is_int(v: &[u8]) -> bool {
    std::str::from_utf8(v).is_ok_and(|s| s.parse::<i64>().is_ok())
}

/// Waits for the go flag, then get_or_set with a slow factory that counts
/// its runs; a factory that is not the first run finishes fast.
fn worker_get_or_set() {
    let c = OpenOptions::new()
        .create(false)
        .open(&env("MS_SEG"))
        .unwrap();
    let slow_ms: u64 = env("MS_SLOW_MS").parse().unwrap();
    poll_until(Duration::from_secs(20), "go", || {
        c.get("go").unwrap().is_some()
    });
    let opts = GetOrSetOptions {
        lease: Duration::from_secs(30),
        ..Default::default()
    };
    let v = c
        .get_or_set("answer", &opts, || {
            let run = c.incr("runs", 1).unwrap();
            c.put(format!("leader:{run}"), std::process::id().to_string())
                .unwrap();
            std::thread::sleep(Duration::from_millis(if run == 1 { slow_ms } else { 50 }));
            Ok::<_, String>(Some(format!("value-from-run-{run}").into_bytes()))
        })
        .unwrap()
        .unwrap();
    c.put(format!("result:{}", env("MS_ID")), &v).unwrap();
}

/// Opens (creating) the same name as everyone else at the same instant,
/// writes its key, then waits to see all the others'.
fn worker_race() {
    let name = env("MS_SEG");
    let n: u64 = env("MS_N").parse().unwrap();
    let at: u64 = env("MS_AT").parse().unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    while now() < at {
        std::hint::spin_loop();
    }
    let c = Cache::open(&name, 4 << 20).unwrap();
    c.put(format!("p:{}", env("MS_ID")), b"here").unwrap();
    poll_until(Duration::from_secs(20), "all racers", || {
        (0..n).all(|i| c.get(format!("p:{i}")).unwrap().is_some())
    });
}

/// Reads and writes a segment whose bytes were randomised: any `Err` is
/// fine, a panic or a signal is not.
fn worker_chaos() {
    let c = match OpenOptions::new().create(false).open(&env("MS_SEG")) {
        Ok(c) => c,
        Err(_) => return, // a corrupt header is refused: fine
    };
    let mut rng = Rng::new(7);
    let end = Instant::now() + Duration::from_millis(800);
    let mut buf = Vec::new();
    while Instant::now() < end {
        let k = format!("k{}", rng.below(2000));
        let _ = match rng.below(6) {
            0 | 1 => c.get_into(&k, &mut buf).map(|_| ()),
            2 | 3 => c.put(&k, make_value(k.as_bytes(), rng.below(500) as usize, 1)),
            4 => c.delete(&k).map(|_| ()),
            _ => c.incr(&k, 1).map(|_| ()),
        };
    }
    let _ = c.keys(None).count();
    let _ = c.stats();
    let _ = c.clear();
    for i in 0..2000 {
        c.put(format!("after{i}"), b"v").unwrap();
    }
    assert!(c.get("after1999").unwrap().is_some());
}

/// After the kill storm: clears the segment, then fills most of its data
/// bytes with fresh keys and reads all of them back. That only works if the
/// space killed writers held (garbage bytes, half-done tail passes, bucket
/// locks naming dead processes) is reclaimed. Runs in a child so a hang on a
/// lock is caught.
fn worker_fill() {
    let c = OpenOptions::new()
        .create(false)
        .open(&env("MS_SEG"))
        .unwrap();
    let n: usize = env("MS_N").parse().unwrap();
    c.clear().unwrap();
    for i in 0..n {
        let k = format!("fresh:{i}");
        c.put(&k, make_value(k.as_bytes(), 100, i as u64)).unwrap();
    }
    let mut found = 0;
    for i in 0..n {
        let k = format!("fresh:{i}");
        if let Some(v) = c.get(&k).unwrap() {
            assert!(value_ok(k.as_bytes(), &v), "corrupt {k}");
            found += 1;
        }
    }
    assert!(
        found * 10 >= n * 9,
        "only {found} of {n} fresh keys readable: {:?}",
        c.stats()
    );
}

// ---------------------------------------------------------------- tests

#[test]
fn four_processes_mixed_ops_no_corruption_exact_counters() {
    let data = Seg::new("mixed");
    let ctl = Seg::new("mixed-ctl");
    let d = Cache::open(&data.0, 1 << 20).unwrap(); // small: eviction all the time
    let c = Cache::open(&ctl.0, 4 << 20).unwrap();
    let incrs = 2000u64;
    let mut kids: Vec<Child> = (0..4)
        .map(|id| {
            spawn_worker(
                "mixed",
                &[
                    ("MS_SEG", data.0.clone()),
                    ("MS_CTL", ctl.0.clone()),
                    ("MS_ID", id.to_string()),
                    ("MS_SECONDS", "2".into()),
                    ("MS_INCRS", incrs.to_string()),
                ],
            )
        })
        .collect();
    for (i, k) in kids.iter_mut().enumerate() {
        wait_ok(k, Duration::from_secs(60), &format!("worker {i}"));
    }
    assert_eq!(counter(&c, "corrupt"), 0);
    assert_eq!(counter(&c, "finished"), 4);
    let total: i64 = (0..4).map(|j| counter(&c, &format!("ctr:{j}"))).sum();
    assert_eq!(total as u64, 4 * incrs, "increments lost or doubled");
    let s = d.stats();
    assert!(s.evictions > 0 && s.hits > 0, "{s:?}");
    assert!(s.used_bytes <= s.data_bytes);
}

#[test]
fn sigkill_storm_blocks_no_one_and_loses_no_space() {
    let data = Seg::new("kill");
    let ctl = Seg::new("kill-ctl");
    let d = Cache::open(&data.0, 2 << 20).unwrap();
    let c = Cache::open(&ctl.0, 4 << 20).unwrap();
    let spawn = |id: u64| {
        spawn_worker(
            "mixed",
            &[
                ("MS_SEG", data.0.clone()),
                ("MS_CTL", ctl.0.clone()),
                ("MS_ID", id.to_string()),
                ("MS_SECONDS", "3600".into()),
                ("MS_INCRS", "0".into()),
            ],
        )
    };
    let mut kids: Vec<Child> = (0..4).map(spawn).collect();
    let mut rng = Rng::new(99);
    let mut kills = 0;
    let storm = Instant::now();
    while storm.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(1 + rng.below(20)));
        let victim = rng.below(kids.len() as u64 - 1) as usize; // worker 3 survives throughout
        let _ = kids[victim].kill(); // SIGKILL
        let _ = kids[victim].wait();
        kills += 1;
        kids[victim] = spawn(victim as u64);
        assert_eq!(counter(&c, "corrupt"), 0, "a worker read a corrupt value");
    }
    // Survivors keep making progress: every worker's heartbeat moves.
    let before: Vec<i64> = (0..4).map(|i| counter(&c, &format!("hb:{i}"))).collect();
    poll_until(
        Duration::from_secs(10),
        "every worker to make progress",
        || (0..4).all(|i| counter(&c, &format!("hb:{i}")) > before[i]),
    );
    for k in kids.iter_mut() {
        let _ = k.kill();
        let _ = k.wait();
    }
    assert!(kills > 50, "only {kills} kills");
    assert_eq!(counter(&c, "corrupt"), 0);
    // The whole capacity is usable again: fill it and read back (in a child,
    // so a hang on a lock left by a killed worker fails instead of hanging).
    // A fresh item is 56 (header) + 16 (key) + 128 (value) bytes: fill 80 %.
    let n = (d.stats().data_bytes * 8 / 10 / 200) as usize;
    let mut fill = spawn_worker(
        "fill",
        &[("MS_SEG", data.0.clone()), ("MS_N", n.to_string())],
    );
    wait_ok(
        &mut fill,
        Duration::from_secs(60),
        "fill after the kill storm",
    );
    let s = d.stats();
    assert!(s.used_bytes <= s.data_bytes, "{s:?}");
    eprintln!(
        "kill storm: {kills} SIGKILLs, {} lock takeovers, stats {s:?}",
        s.lock_takeovers
    );
}

#[test]
fn get_or_set_runs_the_factory_once_across_processes() {
    let seg = Seg::new("gos");
    let c = Cache::open(&seg.0, 4 << 20).unwrap();
    let mut kids: Vec<Child> = (0..6)
        .map(|id| {
            spawn_worker(
                "gos",
                &[
                    ("MS_SEG", seg.0.clone()),
                    ("MS_ID", id.to_string()),
                    ("MS_SLOW_MS", "300".into()),
                ],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    c.put("go", "1").unwrap();
    for (i, k) in kids.iter_mut().enumerate() {
        wait_ok(
            k,
            Duration::from_secs(30),
            &format!("get_or_set worker {i}"),
        );
    }
    assert_eq!(counter(&c, "runs"), 1, "the factory ran more than once");
    for i in 0..6 {
        assert_eq!(
            c.get(format!("result:{i}")).unwrap().as_deref(),
            Some(&b"value-from-run-1"[..])
        );
    }
    assert!(c.stats().get_or_set_waits >= 1);
}

#[test]
fn get_or_set_leader_killed_mid_factory_is_replaced() {
    let seg = Seg::new("gos-kill");
    let c = Cache::open(&seg.0, 4 << 20).unwrap();
    let mut kids: Vec<(u32, Child)> = (0..4)
        .map(|id| {
            let k = spawn_worker(
                "gos",
                &[
                    ("MS_SEG", seg.0.clone()),
                    ("MS_ID", id.to_string()),
                    ("MS_SLOW_MS", "60000".into()),
                ],
            );
            (k.id(), k)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    c.put("go", "1").unwrap();
    poll_until(Duration::from_secs(10), "a leader", || {
        c.get("leader:1").unwrap().is_some()
    });
    let leader: u32 = String::from_utf8(c.get("leader:1").unwrap().unwrap())
        .unwrap()
        .parse()
        .unwrap();
    let pos = kids
        .iter()
        .position(|(pid, _)| *pid == leader)
        .expect("leader is a worker");
    let (_, mut dead) = kids.remove(pos);
    dead.kill().unwrap();
    dead.wait().unwrap();
    // A waiter takes over (the dead leader is seen dead through /proc, far
    // sooner than its 30 s lease) and everyone gets the new value.
    for (i, (_, k)) in kids.iter_mut().enumerate() {
        wait_ok(k, Duration::from_secs(20), &format!("waiter {i}"));
    }
    assert_eq!(counter(&c, "runs"), 2);
    let results: Vec<_> = (0..4)
        .filter_map(|i| c.get(format!("result:{i}")).unwrap())
        .collect();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|v| v == b"value-from-run-2"));
    assert!(c.stats().lease_takeovers >= 1);
}

#[test]
fn concurrent_creators_end_with_one_segment() {
    let seg = Seg::new("race");
    let n = 8;
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 400;
    let mut kids: Vec<Child> = (0..n)
        .map(|id| {
            spawn_worker(
                "race",
                &[
                    ("MS_SEG", seg.0.clone()),
                    ("MS_ID", id.to_string()),
                    ("MS_N", n.to_string()),
                    ("MS_AT", at.to_string()),
                ],
            )
        })
        .collect();
    for (i, k) in kids.iter_mut().enumerate() {
        wait_ok(k, Duration::from_secs(30), &format!("racer {i}"));
    }
    let c = OpenOptions::new().create(false).open(&seg.0).unwrap();
    assert_eq!(c.capacity(), 4 << 20);
    assert_eq!(c.keys(Some(b"p:")).count(), n);
}

fn shm_path(name: &str) -> std::path::PathBuf {
    format!("/dev/shm/memshelf.{name}").into()
}

/// Creates a file as memshelf's creator does (mode 0600: a wider mode is a
/// planted segment and refused).
fn create_like_memshelf(path: &std::path::Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap()
}

#[test]
fn a_creator_that_died_half_way_leaves_no_trap() {
    // Size 0: died right after shm_open.
    let seg = Seg::new("halfmade0");
    create_like_memshelf(&shm_path(&seg.0));
    let c = Cache::open(&seg.0, 1 << 20).unwrap();
    c.put(b"k", b"v").unwrap();
    assert_eq!(c.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    // Sized and zero-filled: died after ftruncate.
    let seg = Seg::new("halfmade1");
    create_like_memshelf(&shm_path(&seg.0))
        .set_len(1 << 20)
        .unwrap();
    let c = Cache::open(&seg.0, 2 << 20).unwrap();
    c.put(b"k", b"v").unwrap();
    assert_eq!(c.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    // Attach-only on a half-made segment does not hang: it reports absence.
    let seg = Seg::new("halfmade2");
    create_like_memshelf(&shm_path(&seg.0));
    let t = Instant::now();
    assert!(matches!(
        OpenOptions::new().create(false).open(&seg.0),
        Err(Error::NotFound { .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn another_layout_version_or_a_foreign_file_is_refused() {
    let seg = Seg::new("version");
    drop(Cache::open(&seg.0, 1 << 20).unwrap());
    let path = shm_path(&seg.0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let e = Cache::open(&seg.0, 1 << 20).unwrap_err();
    assert!(
        matches!(
            e,
            Error::IncompatibleSegment {
                found: Some(7),
                expected: memshelf::LAYOUT_VERSION,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains('7') && msg.contains(&memshelf::LAYOUT_VERSION.to_string()),
        "{msg}"
    );
    // The refusal changed nothing.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    let dir = std::env::temp_dir().join(format!("memshelf-foreign-{}", std::process::id()));
    let mut rng = Rng::new(3);
    let junk: Vec<u8> = (0..100_000).map(|_| rng.next() as u8).collect();
    create_like_memshelf(&dir).write_all(&junk).unwrap();
    let e = OpenOptions::new().path(&dir).open("foreign").unwrap_err();
    assert!(
        matches!(e, Error::IncompatibleSegment { found: None, .. }),
        "{e:?}"
    );
    std::fs::write(&dir, b"short").unwrap();
    assert!(matches!(
        OpenOptions::new().path(&dir).open("foreign"),
        Err(Error::IncompatibleSegment { .. })
    ));
    std::fs::remove_file(&dir).unwrap();
}

#[test]
fn random_bytes_over_a_live_segment_never_crash_or_hang() {
    // Three ways to corrupt: everything after the header geometry, the
    // index only, the logs only.
    for (t, what) in [(0, "all"), (1, "index"), (2, "logs")] {
        let seg = Seg::new(&format!("chaos{t}"));
        let c = Cache::open(&seg.0, 1 << 20).unwrap();
        for i in 0..3000 {
            c.put(
                format!("k{i}"),
                make_value(format!("k{i}").as_bytes(), (i % 300) as usize, i),
            )
            .unwrap();
        }
        let path = shm_path(&seg.0);
        let mut bytes = std::fs::read(&path).unwrap();
        let mut rng = Rng::new(t + 11);
        let len = bytes.len();
        let (from, to) = match t {
            0 => (256, len),          // live words, stats, tags, leases, index, logs
            1 => (len / 20, len / 8), // roughly the index
            _ => (len / 4, len),      // the logs
        };
        for b in &mut bytes[from..to] {
            if rng.below(4) == 0 {
                *b = rng.next() as u8;
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        let mut kids: Vec<Child> = (0..2)
            .map(|_| spawn_worker("chaos", &[("MS_SEG", seg.0.clone())]))
            .collect();
        // This process keeps using its existing mapping too.
        let mut buf = Vec::new();
        for i in 0..3000 {
            let k = format!("k{i}");
            if let Ok(true) = c.get_into(&k, &mut buf) {
                assert!(
                    value_ok(k.as_bytes(), &buf) || is_int(&buf), // the chaos workers also incr
                    "corrupt bytes served for {k} ({what})"
                );
            }
        }
        for (i, k) in kids.iter_mut().enumerate() {
            wait_ok(
                k,
                Duration::from_secs(30),
                &format!("chaos worker {i} ({what})"),
            );
        }
    }
}

#[test]
fn threads_share_one_handle() {
    let seg = Seg::new("threads");
    let c = Cache::open(&seg.0, 2 << 20).unwrap();
    let counts: HashMap<u64, u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8u64)
            .map(|t| {
                let c = c.clone();
                s.spawn(move || {
                    let mut rng = Rng::new(t + 100);
                    let mut buf = Vec::new();
                    for _ in 0..20_000 {
                        let k = format!("t:{}", rng.below(500));
                        if rng.below(3) == 0 {
                            c.put(
                                &k,
                                make_value(k.as_bytes(), rng.below(400) as usize, rng.next()),
                            )
                            .unwrap();
                        } else if c.get_into(&k, &mut buf).unwrap() {
                            assert!(value_ok(k.as_bytes(), &buf), "corrupt {k}");
                        }
                        c.incr("shared", 1).unwrap();
                    }
                    (t, 20_000)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(counter(&c, "shared") as u64, counts.values().sum::<u64>());
    let _ = Ttl::Never;
}
