//! Near-cache mode (feed `tracking`): latency from a client's `SET` in
//! Redis to the key gone from two agents' segments (two hosts' agents in
//! one process), against a real redis-server on loopback.
//!
//!     cargo bench -p memshelf-agent --bench tracking_latency
//!     (env: N=10000 samples)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memshelf_agent::{Broker, Config, FeedKind, Metrics};

struct Redis(std::process::Child, std::path::PathBuf);
impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let tag = format!("{}-{:x}", std::process::id(), fastrand::u32(..));
    let dir = std::env::temp_dir().join(format!("tracking-bench-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let _redis = Redis(child, dir);
    let url = format!("redis://127.0.0.1:{port}");
    let broker = Broker::parse(&url).unwrap();
    let names = [format!("trk-bench-{tag}-a"), format!("trk-bench-{tag}-b")];
    let caches: Vec<memshelf::Cache> = names
        .iter()
        .map(|n| memshelf::Cache::open(n, 64 << 20).unwrap())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = loop {
            if let Ok(c) = client.get_multiplexed_async_connection().await {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let mut agents = Vec::new();
        for name in &names {
            let mut cfg = Config::new(&[name], broker.clone());
            cfg.feed = FeedKind::Tracking;
            cfg.tracking_prefixes = vec!["lat:".into()];
            cfg.metrics_addr = None;
            agents.push(memshelf_agent::start(cfg).await.unwrap());
        }
        let healthy = |m: &Metrics| m.is_connected() && !m.is_degraded();
        while !agents.iter().all(|a| healthy(a.metrics())) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut lat = Vec::with_capacity(n);
        for i in 0..n + 200 {
            let key = format!("lat:{i}");
            for c in &caches {
                c.put(&key, b"value").unwrap();
            }
            let t0 = Instant::now();
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg("v2")
                .query_async(&mut conn)
                .await
                .unwrap();
            let mut spins = 0u32;
            while caches.iter().any(|c| c.contains(&key).unwrap()) {
                spins += 1;
                if spins > 64 {
                    std::thread::yield_now();
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "write {i} never invalidated"
                );
            }
            if i >= 200 {
                // The first 200 are warm-up.
                lat.push(t0.elapsed());
            }
        }
        lat.sort();
        let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
        println!(
            "latency SET->gone on two tracking agents over {n} writes (loopback TCP): p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us, mean {:.1} us",
            pct(&lat, 0.5).as_secs_f64() * 1e6,
            pct(&lat, 0.9).as_secs_f64() * 1e6,
            pct(&lat, 0.99).as_secs_f64() * 1e6,
            pct(&lat, 0.999).as_secs_f64() * 1e6,
            lat.last().unwrap().as_secs_f64() * 1e6,
            mean.as_secs_f64() * 1e6,
        );
        for a in agents {
            a.shutdown().await;
        }
    });
    for n in &names {
        let _ = memshelf::unlink(n);
    }
}
