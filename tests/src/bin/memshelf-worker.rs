//! A worker process for the multi-process tests of this package. The tests
//! spawn it as `memshelf-worker <role> key=value...`; it reports through
//! its exit status (0 = all good, 3 = a corrupt read, 1 = an error, 101 =
//! a panic) and, where the test needs numbers, one `RESULT ...` line on
//! stdout.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memshelf::{Cache, FillError, GetOrSetOptions, OpenOptions, PutOptions};
use memshelf_tests::{Args, Rng, check_value, is_int, make_value, now_ms};

fn main() {
    let mut words = std::env::args().skip(1);
    let role = words
        .next()
        .expect("usage: memshelf-worker <role> key=value...");
    let args = Args::parse(words);
    let code = match role.as_str() {
        "stress" => stress(&args),
        "gos" => gos(&args),
        "race" => race(&args),
        "half-creator" => half_creator(&args),
        "chaos" => chaos(&args),
        "token" => token(&args),
        "keeper" => {
            let c = open(&args, "seg");
            c.become_keeper(Duration::from_millis(args.num("cap_ms", 1000)))
                .expect("become keeper");
            std::thread::sleep(Duration::from_secs(60));
            0
        }
        "hold-lock" => hold_lock(&args),
        "put-timed" => put_timed(&args),
        "gos-many" => gos_many(&args),
        "tags" => tags(&args),
        "fill-path" => fill_path(&args),
        "sleep" => {
            std::thread::sleep(Duration::from_secs(args.num("secs", 60)));
            0
        }
        r => {
            eprintln!("memshelf-worker: unknown role {r}");
            2
        }
    };
    std::process::exit(code);
}

fn open(args: &Args, key: &str) -> Cache {
    let name = args.str(key);
    OpenOptions::new()
        .capacity(args.num("cap", 1 << 20))
        .open(name)
        .unwrap_or_else(|e| panic!("open {name}: {e}"))
}

/// Mixed put/get/delete/add/incr on a small shared key space (so processes
/// collide) and on keys of its own (whose latest version it knows).
///
/// * `seg`: the data segment (small: eviction is constantly active);
/// * `ctr`: a counter segment; the worker adds known deltas to `c:<j>` and
///   reports each sum (`RESULT ... sum<j>=...`);
/// * `ctl` (kill test): heartbeats `hb:<id>`, stops when `stop` exists,
///   counts `corrupt` and `errors` there (it may be killed at any time);
/// * `ops`: operations to do (0 = until stopped), `keys`: shared keys,
///   `reader`: mostly gets;
/// * `incr_values`: also incr shared keys, which mostly hold values that
///   are not integers: `Ok` or `NotAnInteger`, never another error (and a
///   shared key may then hold an integer).
fn stress(args: &Args) -> i32 {
    let data = open(args, "seg");
    let ctr = args.opt("ctr").map(|_| open(args, "ctr"));
    let ctl = args.opt("ctl").map(|_| open(args, "ctl"));
    let id = args.num("id", 0);
    let ops = args.num("ops", 0);
    let nkeys = args.num("keys", 64);
    let ncounters = args.num("counters", 4);
    let reader = args.opt("reader").is_some();
    let max_len = args.num("maxlen", 4000);
    let incr_values = args.opt("incr_values").is_some();
    let mut rng = Rng::with_seed(args.num("seed", id) ^ now_ms() ^ u64::from(std::process::id()));
    // This incarnation's own keys and versions: not the pid, which repeats
    // across PID namespaces (every namespaced worker is pid 1).
    let me = fastrand::u32(..);
    let hb_key = format!("hb:{id}");

    let mut own: HashMap<u64, Option<u64>> = HashMap::new(); // own key -> latest version (None = deleted)
    let mut sums = vec![0i64; ncounters as usize];
    let (mut reads, mut hits, mut corrupt, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let report_corrupt = |what: String, corrupt: &mut u64| {
        eprintln!("worker {id} ({}): CORRUPT READ: {what}", std::process::id());
        *corrupt += 1;
        if let Some(c) = &ctl {
            let _ = c.incr(b"corrupt", 1);
        }
    };
    let mut version = (u64::from(me) << 32) | 1;
    let mut i = 0u64;
    loop {
        if ops != 0 && i >= ops {
            break;
        }
        i += 1;
        if let Some(c) = &ctl
            && i.is_multiple_of(16)
        {
            if c.incr(&hb_key, 1).is_err() {
                errors += 1;
            }
            if matches!(c.contains(b"stop"), Ok(true)) {
                break;
            }
        }
        let r = rng.u64(..100);
        let shared = rng.u64(..100) < 70;
        let k = rng.u64(..nkeys);
        let key = if shared {
            format!("k:{k}")
        } else {
            format!("own:{id}:{me:08x}:{k}")
        };
        let len = if rng.u64(..100) < 10 {
            rng.u64(..max_len + 1)
        } else {
            rng.u64(..max_len.min(300) + 1)
        } as usize;
        let res: memshelf::Result<()> = (|| {
            if r < if reader { 85 } else { 40 } {
                reads += 1;
                if let Some(v) = data.get(&key)? {
                    hits += 1;
                    match check_value(key.as_bytes(), &v) {
                        Err(_) if shared && incr_values && is_int(&v) => {}
                        Err(e) => report_corrupt(format!("get {key}: {e}"), &mut corrupt),
                        Ok(ver) if !shared => match own.get(&k) {
                            Some(Some(want)) if *want == ver => {}
                            want => report_corrupt(
                                format!("get {key}: version {ver:#x}, latest written {want:x?}"),
                                &mut corrupt,
                            ),
                        },
                        Ok(_) => {}
                    }
                }
            } else if r < 75 {
                version += 1;
                let v = make_value(key.as_bytes(), version, len, &mut rng);
                let opts = if rng.u64(..100) < 20 {
                    PutOptions::ttl(Duration::from_millis(rng.u64(5..=500)))
                } else {
                    PutOptions::default()
                };
                data.put_with(&key, &v, &opts)?;
                if !shared {
                    own.insert(k, Some(version));
                }
            } else if r < 80 {
                version += 1;
                let v = make_value(key.as_bytes(), version, len, &mut rng);
                if data.add(&key, &v)? && !shared {
                    own.insert(k, Some(version));
                }
            } else if r < 88 {
                data.delete(&key)?;
                if !shared {
                    own.insert(k, None);
                }
            } else if incr_values && shared && r >= 96 {
                match data.incr(&key, 1) {
                    Ok(_) | Err(memshelf::Error::NotAnInteger { .. }) => {}
                    Err(e) => return Err(e),
                }
            } else {
                let j = rng.u64(..ncounters);
                let delta = rng.u64(1..=5) as i64;
                if let Some(c) = &ctr {
                    c.incr(format!("c:{j}"), delta)?;
                    sums[j as usize] += delta;
                } else {
                    // No counter segment: counters in the data segment, where
                    // eviction may drop them (only their form is checked).
                    let n = data.incr(format!("dc:{j}"), delta)?;
                    if n < delta {
                        report_corrupt(format!("incr dc:{j} returned {n} < {delta}"), &mut corrupt);
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            eprintln!("worker {id}: op on {key} failed: {e}");
            errors += 1;
            if let Some(c) = &ctl {
                let _ = c.incr(b"errors", 1);
            }
        }
    }
    let sums: Vec<String> = sums
        .iter()
        .enumerate()
        .map(|(j, s)| format!("sum{j}={s}"))
        .collect();
    println!(
        "RESULT reads={reads} hits={hits} corrupt={corrupt} errors={errors} {}",
        sums.join(" ")
    );
    let _ = std::io::stdout().flush();
    if corrupt > 0 {
        3
    } else if errors > 0 {
        1
    } else {
        0
    }
}

/// One `get_or_set` caller. Spins (bounded) until key `go` exists, then
/// calls `get_or_set(key)` with a factory that counts its runs in `runs`,
/// records `leader:<n>` = its pid, and then by `mode`:
/// `plain` sleeps `sleep_ms` and returns a value; `die-first` never returns
/// on the first run (the test kills it); `err-first` fails on the first run.
/// Prints `VALUE <v>`, `ABSENT` or `FACTORY_ERROR`.
fn gos(args: &Args) -> i32 {
    let c = open(args, "seg");
    let key = args.str("key").to_owned();
    let mode = args.opt("mode").unwrap_or("plain").to_owned();
    let sleep = Duration::from_millis(args.num("sleep_ms", 200));
    c.incr(b"ready", 1).expect("incr ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.contains(args.str("go")).expect("get go") {
        if Instant::now() > deadline {
            eprintln!("gos: no go signal");
            return 1;
        }
        std::hint::spin_loop();
        std::thread::yield_now();
    }
    let opts = GetOrSetOptions {
        lease: Duration::from_millis(args.num("lease_ms", 10_000)),
        ..Default::default()
    };
    let pid = std::process::id();
    let r = c.get_or_set(&key, &opts, || {
        let n = c.incr(b"runs", 1).expect("incr runs");
        c.put(format!("leader:{n}"), pid.to_string())
            .expect("put leader");
        if n == 1 && mode == "die-first" {
            std::thread::sleep(Duration::from_secs(60));
        }
        std::thread::sleep(sleep);
        if n == 1 && mode == "err-first" {
            return Err(format!("factory of run {n} failed"));
        }
        Ok(Some(format!("value-of-run-{n}-by-{pid}").into_bytes()))
    });
    match r {
        Ok(Some(v)) => println!("VALUE {}", String::from_utf8_lossy(&v)),
        Ok(None) => println!("ABSENT"),
        Err(FillError::Factory(e)) => {
            println!("FACTORY_ERROR {e}");
            return 2;
        }
        Err(FillError::Cache(e)) => {
            eprintln!("gos: cache error {e}");
            return 1;
        }
    }
    0
}

/// One of `n` processes that open the same new segment at `start_ms`, put
/// `member:<id>` and wait (bounded) until every member's value is visible.
fn race(args: &Args) -> i32 {
    let (id, n) = (args.num("id", 0), args.num("n", 8));
    let start = args.num("start_ms", 0);
    while now_ms() < start {
        std::hint::spin_loop();
    }
    let c = open(args, "seg");
    let mut rng = Rng::new();
    let key = format!("member:{id}");
    c.put(&key, make_value(key.as_bytes(), id, 100, &mut rng))
        .expect("put member");
    let deadline = Instant::now() + Duration::from_secs(20);
    for j in 0..n {
        let k = format!("member:{j}");
        loop {
            if let Some(v) = c.get(&k).expect("get member") {
                if check_value(k.as_bytes(), &v) != Ok(j) {
                    eprintln!("race {id}: bad value for {k}");
                    return 3;
                }
                break;
            }
            if Instant::now() > deadline {
                eprintln!("race {id}: {k} never appeared (two segments?)");
                return 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    0
}

/// Plays a creator that dies half-way: creates the file at `path` (mode
/// 0600, as memshelf does), takes the opener's lock (an OFD lock on byte 0)
/// and the attach lock exclusively (flock), as a real creator does, sizes it, writes a magic and version but not
/// the ready state and some garbage, creates `marker`, then sleeps until
/// killed.
fn half_creator(args: &Args) -> i32 {
    let path = args.str("path");
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .expect("create segment file");
    // SAFETY: `flock` is plain old data; zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_len = 1;
    // SAFETY: plain syscall on a descriptor we own with a valid flock.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    assert_eq!(rc, 0, "F_OFD_SETLK");
    // SAFETY: plain syscall on a descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock");
    f.set_len(args.num("cap", 1 << 20)).expect("size");
    let mut hdr = vec![0u8; 4096];
    hdr[..8].copy_from_slice(b"MEMSHELF");
    hdr[8..12].copy_from_slice(&memshelf::LAYOUT_VERSION.to_le_bytes());
    let mut rng = Rng::new();
    for b in &mut hdr[16..120] {
        *b = rng.u8(..);
    }
    std::os::unix::fs::FileExt::write_all_at(&f, &hdr, 0).expect("write header");
    std::fs::write(args.str("marker"), b"").expect("marker");
    std::thread::sleep(Duration::from_secs(60));
    0
}

/// Runs `threads` threads of random operations for `ms` milliseconds on a
/// segment the test corrupts meanwhile. Errors are allowed (counted); a
/// value that is not one written for its key, a panic or a signal are not.
/// Creates `marker` once attached.
fn chaos(args: &Args) -> i32 {
    let c = open(args, "seg");
    std::fs::write(args.str("marker"), b"").expect("marker");
    let ms = args.num("ms", 1000);
    let corrupt = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let ops = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..args.num("threads", 3))
        .map(|t| {
            let (c, corrupt, errors, ops) =
                (c.clone(), corrupt.clone(), errors.clone(), ops.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::with_seed(now_ms() ^ t ^ u64::from(std::process::id()));
                let end = Instant::now() + Duration::from_millis(ms);
                while Instant::now() < end {
                    let key = format!("k:{}", rng.u64(..500));
                    let r: memshelf::Result<()> = match rng.u64(..10) {
                        0..=3 => c.get(&key).map(|v| {
                            if let Some(v) = v
                                && let Err(e) = check_value(key.as_bytes(), &v)
                            {
                                eprintln!("chaos: CORRUPT READ {key}: {e}");
                                corrupt.fetch_add(1, Ordering::Relaxed);
                            }
                        }),
                        4..=6 => {
                            let v =
                                make_value(key.as_bytes(), 0, rng.u64(..2000) as usize, &mut rng);
                            c.put(&key, v)
                        }
                        7 => c.delete(&key).map(drop),
                        8 => c.incr(format!("n:{}", rng.u64(..20)), 1).map(drop),
                        _ => c
                            .get_or_set(
                                format!("g:{}", rng.u64(..20)),
                                &GetOrSetOptions {
                                    lease: Duration::from_millis(200),
                                    ..Default::default()
                                },
                                || Ok::<_, String>(Some(b"filled".to_vec())),
                            )
                            .map(drop)
                            .or_else(|e| match e {
                                FillError::Cache(e) => Err(e),
                                FillError::Factory(_) => Ok(()),
                            }),
                    };
                    ops.fetch_add(1, Ordering::Relaxed);
                    if r.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if rng.u64(..100) < 1 {
                        let _ = c.stats();
                        let _ = c.keys(None).take(50).count();
                    }
                }
            })
        })
        .collect();
    let mut panicked = false;
    for h in handles {
        panicked |= h.join().is_err();
    }
    println!(
        "RESULT ops={} errors={} corrupt={}",
        ops.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        corrupt.load(Ordering::Relaxed)
    );
    if panicked {
        101
    } else if corrupt.load(Ordering::Relaxed) > 0 {
        3
    } else {
        0
    }
}

/// Opens `seg`, prints `TOKEN <n>` (its registry token) and sleeps until
/// killed.
fn token(args: &Args) -> i32 {
    let c = open(args, "seg");
    println!("TOKEN {}", c.debug_token().expect("token"));
    std::io::stdout().flush().expect("flush");
    std::thread::sleep(Duration::from_secs(args.num("secs", 60)));
    0
}

/// Attaches to the segment file at `path` (never creates) and writes
/// `n` entries of 1 KiB: prints `OPEN ERR <error>` and exits 3 if the
/// attach fails, `RESULT puts=<n>` once every put returned (a put may fail
/// with an error; a SIGBUS kills the process instead).
fn fill_path(args: &Args) -> i32 {
    let c = match OpenOptions::new()
        .create(false)
        .path(args.str("path"))
        .open("fill-path")
    {
        Ok(c) => c,
        Err(e) => {
            println!("OPEN ERR {e:?}");
            return 3;
        }
    };
    let n = args.num("n", 10_000);
    for i in 0..n {
        let _ = c.put(format!("k{i}"), [7u8; 1024]);
    }
    println!("RESULT puts={n}");
    0
}

/// Holds the bucket lock of `key` for `ms`, creating `marker` once it holds
/// it.
fn hold_lock(args: &Args) -> i32 {
    let c = open(args, "seg");
    let marker = args.str("marker").to_owned();
    let r = c.debug_hold_bucket_lock(
        args.str("key"),
        Duration::from_millis(args.num("ms", 1000)),
        || std::fs::write(&marker, b"").expect("marker"),
    );
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hold-lock: {e}");
            1
        }
    }
}

/// Puts `key` once and reports how long it took: `RESULT ms=<n>
/// timeout=<0|1> takeovers=<n>`.
fn put_timed(args: &Args) -> i32 {
    let c = open(args, "seg");
    let t = Instant::now();
    let timeout = match c.put(args.str("key"), b"from-put-timed") {
        Ok(()) => 0,
        Err(memshelf::Error::Timeout(_)) => 1,
        Err(e) => {
            eprintln!("put-timed: {e}");
            return 1;
        }
    };
    println!(
        "RESULT ms={} timeout={timeout} takeovers={}",
        t.elapsed().as_millis(),
        c.stats().lock_takeovers
    );
    0
}

/// Waits (bounded) for `go`, then calls `get_or_set` on keys
/// `<prefix>0..<n>` (in an order of its own); the factory counts its runs
/// in `runs:<key>` and sleeps `sleep_ms`. Every result must be the key's
/// value. Prints `RESULT ok=1`.
fn gos_many(args: &Args) -> i32 {
    let c = open(args, "seg");
    let prefix = args.str("prefix").to_owned();
    let n = args.num("n", 200);
    let sleep = Duration::from_millis(args.num("sleep_ms", 20));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.contains(args.str("go")).expect("get go") {
        if Instant::now() > deadline {
            eprintln!("gos-many: no go signal");
            return 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut order: Vec<u64> = (0..n).collect();
    let mut rng = Rng::new();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.u64(..i as u64 + 1) as usize);
    }
    for i in order {
        let key = format!("{prefix}{i}");
        let want = format!("value-of-{key}");
        let r = c.get_or_set(&key, &GetOrSetOptions::default(), || {
            c.incr(format!("runs:{key}"), 1).expect("incr runs");
            std::thread::sleep(sleep);
            Ok::<_, String>(Some(want.clone().into_bytes()))
        });
        match r {
            Ok(Some(v)) if v == want.as_bytes() => {}
            other => {
                eprintln!("gos-many: {key}: {other:?}");
                return 3;
            }
        }
    }
    println!("RESULT ok=1");
    0
}

/// Until killed: puts an entry under a tag of its own, invalidates the tag
/// and checks the entry is gone (exit 3 if not), with `noise` more
/// invalidations of fresh tags in between, which push records out of the
/// segment's tag lines all the time.
fn tags(args: &Args) -> i32 {
    let c = open(args, "seg");
    let noise = args.num("noise", 4);
    let me = format!("{}.{}", args.str("id"), std::process::id());
    for n in 0u64.. {
        let t = format!("own:{me}:{n}");
        let one = [t.as_bytes()];
        c.put_with(&t, b"v", &PutOptions::default().with_tags(&one))
            .expect("put");
        for j in 0..noise {
            c.invalidate_tag(format!("noise:{me}:{n}:{j}"))
                .expect("noise");
        }
        c.invalidate_tag(&t).expect("invalidate");
        if c.contains(&t).expect("get") {
            eprintln!("tags: {t} still readable after its tag was invalidated");
            return 3;
        }
    }
    0
}
