//! Multi-process throughput: N processes (this binary re-executed) run a
//! get/put mix on one shared segment for a fixed time; prints the total
//! operations per second for each N as a Markdown table.
//!
//! ```text
//! cargo run --release -p memshelf-benches --bin mpbench -- --procs 1,2 [--secs 3]
//!     [--keys 100000] [--value 100] [--get-pct 90] [--capacity-mib 256]
//! ```
//!
//! Keys are 16 bytes (`user:00000000042`), values `--value` bytes, picked
//! uniformly at random (fastrand, a different seed per process); the
//! segment is filled with every key before the timed runs, so gets hit.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Args {
    procs: Vec<usize>,
    secs: f64,
    keys: u64,
    value: usize,
    get_pct: u64,
    capacity_mib: u64,
}

fn parse() -> (Args, Option<(String, u64, u64)>) {
    let mut a = Args {
        procs: vec![1, 2],
        secs: 3.0,
        keys: 100_000,
        value: 100,
        get_pct: 90,
        capacity_mib: 256,
    };
    let mut child = None;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage(flag));
        match flag.as_str() {
            "--procs" => {
                a.procs = val()
                    .split(',')
                    .map(|p| p.parse().unwrap_or_else(|_| usage("--procs")))
                    .collect()
            }
            "--secs" | "--seconds" => a.secs = val().parse().unwrap_or_else(|_| usage(flag)),
            "--keys" => a.keys = val().parse().unwrap_or_else(|_| usage(flag)),
            "--value" => a.value = val().parse().unwrap_or_else(|_| usage(flag)),
            "--get-pct" => a.get_pct = val().parse().unwrap_or_else(|_| usage(flag)),
            "--capacity-mib" => a.capacity_mib = val().parse().unwrap_or_else(|_| usage(flag)),
            // Internal: `--child NAME SEED START_AT_UNIX_MS`.
            "--child" => {
                let name = val();
                let seed = val().parse().unwrap_or_else(|_| usage(flag));
                let start = val().parse().unwrap_or_else(|_| usage(flag));
                child = Some((name, seed, start));
            }
            _ => usage(flag),
        }
    }
    (a, child)
}

fn usage(at: &str) -> ! {
    eprintln!(
        "mpbench: bad argument near {at}\nusage: mpbench [--procs 1,2] [--secs 3] [--keys 100000] \
         [--value 100] [--get-pct 90] [--capacity-mib 256]"
    );
    std::process::exit(2)
}

fn key(i: u64) -> [u8; 16] {
    let mut k = *b"user:00000000000";
    let mut n = i;
    for b in k[5..].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One worker process: waits for the common start, runs the mix for
/// `secs`, prints `ops gets hits`.
fn child(a: &Args, name: &str, seed: u64, start_ms: u64) {
    let cache = memshelf::Cache::open(name, a.capacity_mib << 20).expect("attach");
    let value = vec![0x42u8; a.value];
    let mut buf = Vec::with_capacity(a.value);
    let mut rng = fastrand::Rng::with_seed(seed);
    while unix_ms() < start_ms {
        std::thread::sleep(Duration::from_micros(200));
    }
    let t0 = Instant::now();
    let limit = Duration::from_secs_f64(a.secs);
    let (mut ops, mut gets, mut hits) = (0u64, 0u64, 0u64);
    loop {
        for _ in 0..1024 {
            let k = key(rng.u64(..a.keys));
            if rng.u64(..100) < a.get_pct {
                gets += 1;
                hits += cache.get_into(k, &mut buf).unwrap() as u64;
            } else {
                cache.put(k, &value).unwrap();
            }
        }
        ops += 1024;
        if t0.elapsed() >= limit {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("{ops} {gets} {hits} {secs}");
}

fn main() {
    let (a, child_args) = parse();
    if let Some((name, seed, start)) = child_args {
        child(&a, &name, seed, start);
        return;
    }
    let name = format!("mpbench-{}", std::process::id());
    let _ = memshelf::unlink(&name);
    let cache = memshelf::Cache::open(&name, a.capacity_mib << 20).expect("create segment");
    let value = vec![0x42u8; a.value];
    for i in 0..a.keys {
        cache.put(key(i), &value).unwrap();
    }
    let exe = std::env::current_exe().expect("own path");
    println!(
        "{} keys of 16 B, {} B values, {} % get / {} % put, {} s per run, {} CPU(s)\n",
        a.keys,
        a.value,
        a.get_pct,
        100 - a.get_pct,
        a.secs,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| processes | total Mops/s | per process Mops/s | get hit % |");
    println!("|--:|--:|--:|--:|");
    for &n in &a.procs {
        let start = unix_ms() + 300 + 20 * n as u64;
        let kids: Vec<_> = (0..n)
            .map(|i| {
                Command::new(&exe)
                    .args([
                        "--secs",
                        &a.secs.to_string(),
                        "--keys",
                        &a.keys.to_string(),
                        "--value",
                        &a.value.to_string(),
                        "--get-pct",
                        &a.get_pct.to_string(),
                        "--capacity-mib",
                        &a.capacity_mib.to_string(),
                        "--child",
                        &name,
                        &(i as u64 + 1).to_string(),
                        &start.to_string(),
                    ])
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("spawn worker")
            })
            .collect();
        let (mut rate, mut gets, mut hits) = (0.0, 0u64, 0u64);
        for k in kids {
            let out = k.wait_with_output().expect("worker");
            assert!(out.status.success(), "worker failed");
            let text = String::from_utf8_lossy(&out.stdout);
            let f: Vec<f64> = text
                .split_whitespace()
                .map(|w| w.parse().unwrap())
                .collect();
            rate += f[0] / f[3];
            gets += f[1] as u64;
            hits += f[2] as u64;
        }
        println!(
            "| {n} | {:.2} | {:.2} | {:.1} |",
            rate / 1e6,
            rate / 1e6 / n as f64,
            100.0 * hits as f64 / gets.max(1) as f64
        );
    }
    drop(cache);
    memshelf::unlink(&name).unwrap();
}
