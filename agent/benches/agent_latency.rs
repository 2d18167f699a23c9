//! Propagation latency (publish -> entry gone on two agents) and apply
//! throughput of the agent, against a real redis-server on loopback.
//!
//!     cargo bench -p memshelf-agent --bench agent_latency
//!     (env: N=10000 latency samples, M=200000 throughput messages)

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memshelf::message::Message;
use memshelf_agent::apply::Applier;
use memshelf_agent::{Broker, Config, Metrics, Outcome};

struct Redis(std::process::Child, std::path::PathBuf);
impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let n = env("N", 10_000);
    let m = env("M", 200_000);
    let tag = format!("{}-{:x}", std::process::id(), fastrand::u32(..));
    let dir = std::env::temp_dir().join(format!("agent-bench-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    // Loopback TCP, as between hosts' agents and a local broker.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let _redis = Redis(child, dir);
    let url = format!("redis://127.0.0.1:{port}");
    let broker = Broker::parse(&url).unwrap();

    let name = format!("agent-bench-{tag}");
    let cache = memshelf::Cache::open(&name, 256 << 20).unwrap();
    // A second agent on a second segment (two hosts' agents in one process).
    let name_b = format!("agent-bench-{tag}-b");
    let cache_b = memshelf::Cache::open(&name_b, 16 << 20).unwrap();
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
        let mut cfg = Config::new(&[&name], broker.clone());
        cfg.queue_size = 1 << 20;
        cfg.metrics_addr = None;
        let agent = memshelf_agent::start(cfg).await.unwrap();
        let metrics = agent.metrics().clone();
        let mut cfg_b = Config::new(&[&name_b], broker.clone());
        cfg_b.metrics_addr = None;
        let agent_b = memshelf_agent::start(cfg_b).await.unwrap();
        let metrics_b = agent_b.metrics().clone();
        let healthy = |m: &Metrics| m.is_connected() && !m.is_degraded();
        while !healthy(&metrics) || !healthy(&metrics_b) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // 1. Latency: one message at a time, publish -> entry gone on both
        //    agents' segments.
        let mut lat = Vec::with_capacity(n);
        for i in 0..n + 200 {
            let key = format!("lat:{i}");
            cache.put(&key, b"value").unwrap();
            cache_b.put(&key, b"value").unwrap();
            let payload = Message::delete(&[key.as_bytes()]).to_json().unwrap();
            let t0 = Instant::now();
            let _: i64 = redis::cmd("PUBLISH")
                .arg("memshelf")
                .arg(&payload)
                .query_async(&mut conn)
                .await
                .unwrap();
            let mut spins = 0u32;
            while cache.contains(&key).unwrap() || cache_b.contains(&key).unwrap() {
                spins += 1;
                if spins > 64 {
                    std::thread::yield_now();
                }
                assert!(t0.elapsed() < Duration::from_secs(10), "message {i} never applied");
            }
            if i >= 200 {
                // The first 200 are warm-up.
                lat.push(t0.elapsed());
            }
        }
        lat.sort();
        let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
        println!(
            "latency publish->gone on two agents over {n} messages (loopback TCP): p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us, mean {:.1} us",
            pct(&lat, 0.5).as_secs_f64() * 1e6,
            pct(&lat, 0.9).as_secs_f64() * 1e6,
            pct(&lat, 0.99).as_secs_f64() * 1e6,
            pct(&lat, 0.999).as_secs_f64() * 1e6,
            lat.last().unwrap().as_secs_f64() * 1e6,
            mean.as_secs_f64() * 1e6,
        );

        // 2. End-to-end throughput: a pipelined burst of deletes.
        for i in 0..m {
            cache.put(format!("tp:{i}"), b"v").unwrap();
        }
        let applied0 = metrics.messages(Outcome::Applied);
        let t0 = Instant::now();
        let chunk = 1000;
        for start in (0..m).step_by(chunk) {
            let mut p = redis::pipe();
            for i in start..(start + chunk).min(m) {
                let k = format!("tp:{i}");
                p.cmd("PUBLISH")
                    .arg("memshelf")
                    .arg(Message::delete(&[k.as_bytes()]).to_json().unwrap());
            }
            let _: Vec<i64> = p.query_async(&mut conn).await.unwrap();
        }
        let published = t0.elapsed();
        while metrics.messages(Outcome::Applied) - applied0 < m as u64 {
            assert!(t0.elapsed() < Duration::from_secs(120), "burst not applied");
            if metrics.messages(Outcome::Dropped) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let total = t0.elapsed();
        let dropped = metrics.messages(Outcome::Dropped);
        println!(
            "end-to-end burst: {m} messages published in {:.3} s, all applied after {:.3} s: {:.0} msg/s (dropped {dropped})",
            published.as_secs_f64(),
            total.as_secs_f64(),
            m as f64 / total.as_secs_f64()
        );
        assert!(!cache.contains(format!("tp:{}", m - 1)).unwrap() || dropped > 0);
        agent.shutdown().await;
        agent_b.shutdown().await;
    });

    // 3. The applier alone (parse + delete), no broker.
    for i in 0..m {
        cache.put(format!("ap:{i}"), b"v").unwrap();
    }
    let payloads: Vec<String> = (0..m)
        .map(|i| {
            Message::delete(&[format!("ap:{i}").as_bytes()])
                .to_json()
                .unwrap()
        })
        .collect();
    let metrics = Arc::new(Metrics::default());
    let cfg = Config::new(&[&name], Broker::parse("redis://127.0.0.1:1").unwrap());
    let mut applier = Applier::new(&cfg, metrics.clone(), None);
    let t0 = Instant::now();
    for p in &payloads {
        applier.payload(p.as_bytes(), None);
    }
    let el = t0.elapsed();
    assert_eq!(metrics.messages(Outcome::Applied), m as u64);
    println!(
        "applier alone (parse + delete, one thread): {m} messages in {:.3} s: {:.0} msg/s",
        el.as_secs_f64(),
        m as f64 / el.as_secs_f64()
    );
    let _ = memshelf::unlink(&name);
    let _ = memshelf::unlink(&name_b);
}
