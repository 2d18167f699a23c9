//! The memshelf demo: several processes share one segment.
//!
//! `cargo run --release -p memshelf --example demo -- [PROCS] [SECONDS]`
//!
//! The parent creates a small segment, starts PROCS copies of itself as
//! workers, and each worker reads keys with a skewed (Zipf-like)
//! popularity, filling misses from a slow "origin" (cache-aside). Every
//! value carries its key and a checksum, which every read verifies. The
//! parent prints the segment-wide statistics every second: all processes'
//! hits, misses and evictions in one place.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memshelf::{Cache, OpenOptions, PutOptions};

const KEYS: u64 = 200_000;

fn value_for(key: &str) -> Vec<u8> {
    let mut v = format!("{key}|").into_bytes();
    v.resize(200, b'.');
    let sum = xxh(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

fn xxh(b: &[u8]) -> u64 {
    // FNV-1a: enough for a self-check in a demo.
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x100_0000_01b3)
    })
}

fn worker(name: &str, id: u64, seconds: u64) -> Result<(), Box<dyn std::error::Error>> {
    let cache = OpenOptions::new().create(false).open(name)?;
    let mut rng = fastrand::Rng::with_seed(id + 1);
    let mut buf = Vec::new();
    let (mut hits, mut misses) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        for _ in 0..1000 {
            // Skewed popularity: squaring a uniform draw favours small ids.
            let u = rng.f64();
            let key = format!("item:{}", (u * u * u * KEYS as f64) as u64);
            if cache.get_into(&key, &mut buf)? {
                let (body, sum) = buf.split_at(buf.len() - 8);
                assert!(body.starts_with(key.as_bytes()), "foreign value for {key}");
                assert_eq!(xxh(body).to_le_bytes(), sum, "corrupt value for {key}");
                hits += 1;
            } else {
                misses += 1;
                let ttl = PutOptions::ttl(Duration::from_secs(30));
                cache.put_with(&key, value_for(&key), &ttl)?;
            }
        }
    }
    println!("worker {id}: {hits} hits, {misses} misses, every value verified");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--worker") {
        return worker(&args[2], args[3].parse()?, args[4].parse()?);
    }
    let procs: u64 = args.get(1).map_or(Ok(4), |s| s.parse())?;
    let seconds: u64 = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let name = format!("demo-{}", std::process::id());
    // 8 MiB: far smaller than the 200k x ~270 B working set, so the
    // eviction policy has to choose.
    let cache = Cache::open(&name, 8 << 20)?;
    println!(
        "segment /dev/shm/memshelf.{name}: {} bytes, {procs} processes, {seconds} s",
        cache.capacity()
    );
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for id in 0..procs {
        children.push(
            Command::new(&exe)
                .args(["--worker", &name, &id.to_string(), &seconds.to_string()])
                .stdout(Stdio::inherit())
                .spawn()?,
        );
    }
    for t in 1..=seconds {
        std::thread::sleep(Duration::from_secs(1));
        let s = cache.stats();
        let total = (s.hits + s.misses).max(1);
        println!(
            "t={t}s  hits {:>9}  misses {:>8}  hit ratio {:5.1}%  evictions {:>8}  entries {:>7}  used {:>5.1} MiB",
            s.hits,
            s.misses,
            100.0 * s.hits as f64 / total as f64,
            s.evictions,
            s.entries,
            s.used_bytes as f64 / (1 << 20) as f64
        );
    }
    let mut ok = true;
    for mut c in children {
        ok &= c.wait()?.success();
    }
    let s = cache.stats();
    println!("\nfinal statistics (all processes):");
    for (name, value) in s.fields() {
        println!("  {name:<18} {value}");
    }
    let q = |h: &memshelf::Histogram, p| h.quantile(p).map_or("n/a".into(), |d| format!("{d:?}"));
    println!(
        "  get latency        p50 <= {}, p99 <= {} ({} sampled)",
        q(&s.get_latency, 0.5),
        q(&s.get_latency, 0.99),
        s.get_latency.count()
    );
    println!(
        "  put latency        p50 <= {}, p99 <= {} ({} sampled)",
        q(&s.put_latency, 0.5),
        q(&s.put_latency, 0.99),
        s.put_latency.count()
    );
    println!("  hot-key share      {:.3}", s.hot_key_share);
    memshelf::unlink(&name)?;
    if !ok {
        return Err("a worker failed".into());
    }
    Ok(())
}
