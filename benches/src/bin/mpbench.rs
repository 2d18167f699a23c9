//! Multi-process throughput: N processes (this binary re-executed) run a
//! 90 % get / 10 % put mix on one segment for a fixed time.
//!
//! ```text
//! cargo run --release -p memshelf-benches --bin mpbench -- [--procs 1,2] [--seconds 3] [--keys 100000]
//! ```

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .map_or(default.to_owned(), |i| args[i + 1].clone())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn worker(name: &str, id: u64, keys: u64, start_ms: u64, seconds: f64) {
    let c = memshelf::OpenOptions::new()
        .create(false)
        .open(name)
        .unwrap();
    let keys: Vec<String> = (0..keys).map(|i| format!("user:{i:011}")).collect();
    let value = [7u8; 100];
    let mut buf = Vec::with_capacity(128);
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (id + 1);
    while now_ms() < start_ms {
        std::hint::spin_loop();
    }
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut ops = 0u64;
    while Instant::now() < end {
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = &keys[(x % keys.len() as u64) as usize];
            if x % 10 == 0 {
                c.put(k, value).unwrap();
            } else {
                c.get_into(k, &mut buf).unwrap();
            }
        }
        ops += 1000;
    }
    println!("{ops}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--worker") {
        let p = |i: usize| args[i].parse().unwrap();
        return worker(&args[2], p(3), p(4), p(5), args[6].parse().unwrap());
    }
    let procs: Vec<u64> = arg(&args, "--procs", "1,2")
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    let seconds: f64 = arg(&args, "--seconds", "3").parse().unwrap();
    let keys: u64 = arg(&args, "--keys", "100000").parse().unwrap();
    let name = format!("mpbench-{}", std::process::id());
    let c = memshelf::Cache::open(&name, 256 << 20).unwrap();
    for i in 0..keys {
        c.put(format!("user:{i:011}"), [7u8; 100]).unwrap();
    }
    println!("| processes | total ops/s | ops/s per process |");
    println!("|--:|--:|--:|");
    for &n in &procs {
        let start = now_ms() + 300;
        let exe = std::env::current_exe().unwrap();
        let kids: Vec<_> = (0..n)
            .map(|id| {
                Command::new(&exe)
                    .args([
                        "--worker",
                        &name,
                        &id.to_string(),
                        &keys.to_string(),
                        &start.to_string(),
                        &seconds.to_string(),
                    ])
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let total: u64 = kids
            .into_iter()
            .map(|k| {
                String::from_utf8(k.wait_with_output().unwrap().stdout)
                    .unwrap()
                    .trim()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum();
        let rate = total as f64 / seconds;
        println!(
            "| {n} | {:.2} M | {:.2} M |",
            rate / 1e6,
            rate / 1e6 / n as f64
        );
    }
    memshelf::unlink(&name).unwrap();
}
