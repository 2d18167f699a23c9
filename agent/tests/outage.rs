//! Outages measured with a versioned-value reader: an origin whose values
//! carry a version, a writer that bumps versions and publishes the
//! invalidations, and a read-through reader that measures, on every hit,
//! how long the value it got has been stale. After the broker dies
//! (SIGKILL) or stops (SIGSTOP), no entry older than the detection time
//! plus the degraded TTL is served; after the restart the feed resumes and
//! the cap is lifted.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use memshelf::message::Message;

const KEYS: usize = 20;

/// The origin: per key, the current version and when each version began.
#[derive(Default)]
struct Origin {
    changed: Vec<Vec<Instant>>,
}

impl Origin {
    fn new() -> Origin {
        let now = Instant::now();
        Origin {
            changed: (0..KEYS).map(|_| vec![now]).collect(),
        }
    }
    fn version(&self, k: usize) -> usize {
        self.changed[k].len() - 1
    }
}

/// The largest staleness a reader saw, and how many hits it measured.
#[derive(Default, Debug, Clone, Copy)]
struct Seen {
    max_stale: Duration,
    hits: u64,
}

struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// Starts the writer (publishing to `url`) and the reader on `seg`.
    fn start(seg: &Segment, url: &str) -> Load {
        let origin = Arc::new(Mutex::new(Origin::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut threads = Vec::new();
        {
            let (origin, stop, url) = (origin.clone(), stop.clone(), url.to_string());
            threads.push(std::thread::spawn(move || {
                let client = redis::Client::open(url.as_str()).unwrap();
                let mut conn: Option<redis::Connection> = None;
                let mut i = 0usize;
                while !stop.load(Relaxed) {
                    i += 1;
                    let k = i % KEYS;
                    // The origin write and its invalidation, under the
                    // origin lock so that a reader's fill is never
                    // published over (the read-through race is not what
                    // this test measures).
                    let mut o = origin.lock().unwrap();
                    o.changed[k].push(Instant::now());
                    if conn.is_none() {
                        conn = client
                            .get_connection_with_timeout(Duration::from_millis(50))
                            .ok();
                        if let Some(c) = &conn {
                            let _ = c.set_read_timeout(Some(Duration::from_millis(50)));
                            let _ = c.set_write_timeout(Some(Duration::from_millis(50)));
                        }
                    }
                    if let Some(c) = conn.as_mut() {
                        let key = format!("k{k}");
                        let r: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                            .arg("memshelf")
                            .arg(Message::delete(&[key.as_bytes()]).to_json().unwrap())
                            .query(c);
                        if r.is_err() {
                            conn = None;
                        }
                    }
                    drop(o);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }));
        }
        {
            let (origin, stop, seen) = (origin.clone(), stop.clone(), seen.clone());
            let cache = seg.cache.clone();
            threads.push(std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    for k in 0..KEYS {
                        let key = format!("k{k}");
                        match cache.get(&key).unwrap() {
                            Some(v) => {
                                let v: usize = std::str::from_utf8(&v).unwrap().parse().unwrap();
                                let o = origin.lock().unwrap();
                                let now = Instant::now();
                                let stale = if o.version(k) > v {
                                    now - o.changed[k][v + 1]
                                } else {
                                    Duration::ZERO
                                };
                                drop(o);
                                let mut s = seen.lock().unwrap();
                                s.hits += 1;
                                s.max_stale = s.max_stale.max(stale);
                            }
                            None => {
                                let o = origin.lock().unwrap();
                                cache.put(&key, o.version(k).to_string()).unwrap();
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }));
        }
        Load {
            stop,
            seen,
            threads,
        }
    }

    /// The staleness seen since the last call.
    fn take(&self) -> Seen {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    fn stop(self) {
        self.stop.store(true, Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_broker_dies_or_stops_nothing_older_than_detection_plus_degraded_ttl_is_served() {
    let mut redis = Redis::start();
    let seg = Segment::new("outage-v");
    let mut cfg = config(&[&seg.name], &redis);
    cfg.ping_interval = Duration::from_millis(200);
    cfg.dead_after = Duration::from_millis(800);
    cfg.degraded_ttl = Duration::from_millis(500);
    let (ping, dead, ttl) = (cfg.ping_interval, cfg.dead_after, cfg.degraded_ttl);
    let agent = start(cfg).await;
    let m = agent.metrics().clone();
    let load = Load::start(&seg, &redis.url());
    // Scheduling slack on a loaded 2-core machine (reader period, applier
    // tick, thread wake-ups).
    let slack = Duration::from_millis(400);

    // Healthy: staleness is the propagation delay.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let healthy = load.take();
    assert!(healthy.hits > 100, "{healthy:?}");
    assert!(healthy.max_stale < slack, "healthy: {healthy:?}");

    // 1. SIGKILL: the connection closes; detection is immediate.
    redis.kill();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let killed = load.take();
    assert!(m.is_degraded());
    assert_eq!(seg.cache.ttl_cap(), Some(ttl), "the degraded cap is set");
    redis.restart();
    wait_for("feed resumed after the restart", || {
        m.is_connected() && !m.is_degraded()
    })
    .await;
    assert_eq!(seg.cache.ttl_cap(), None, "the cap is lifted");
    let restart = load.take();
    println!("broker killed: {killed:?}; during the restart: {restart:?}");
    assert!(killed.hits > 100, "{killed:?}");
    assert!(
        killed.max_stale <= ttl + slack,
        "killed broker: served a value stale for {:?} (bound: degraded TTL {ttl:?} + slack)",
        killed.max_stale
    );
    assert!(restart.max_stale <= ttl + slack, "{restart:?}");

    // 2. SIGSTOP: nothing answers; detection by the PING timeout.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = load.take();
    redis.stop();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let stopped = load.take();
    assert!(m.is_degraded(), "a stopped broker is detected");
    redis.cont();
    wait_for("feed resumed after SIGCONT", || {
        m.is_connected() && !m.is_degraded()
    })
    .await;
    let cont = load.take();
    println!("broker stopped: {stopped:?}; after SIGCONT: {cont:?}");
    let bound = ping + dead + ttl + slack;
    assert!(
        stopped.max_stale <= bound,
        "stopped broker: served a value stale for {:?} (bound: ping {ping:?} + dead-after {dead:?} + degraded TTL {ttl:?} + slack)",
        stopped.max_stale
    );
    assert!(cont.max_stale <= bound, "{cont:?}");
    assert_eq!(seg.cache.ttl_cap(), None);

    // The feed applies again, uncapped.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = load.take();
    assert!(after.max_stale < slack, "after: {after:?}");
    assert!(m.gaps(memshelf_agent::GapReason::Disconnect) >= 2);
    load.stop();
    agent.shutdown().await;
}

#[test]
fn a_killed_agent_leaves_puts_capped_and_a_restarted_one_clears_and_takes_over() {
    let redis = Redis::start();
    let seg = Segment::new("keeper");
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_memshelf-agent"))
            .args(["--segment", &seg.name, "--broker", &redis.url()])
            .args(["--metrics-addr", "off", "--degraded-ttl", "700ms"])
            .env_remove("MEMSHELF_AGENT_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run memshelf-agent")
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut a = spawn();
    rt.block_on(wait_for("keeper recorded and cap lifted", || {
        seg.cache.keeper_alive() == Some(true) && seg.cache.ttl_cap().is_none()
    }));
    a.kill().unwrap();
    a.wait().unwrap();
    rt.block_on(wait_for("the keeper is dead", || {
        seg.cache.keeper_alive() == Some(false)
    }));
    // (The engine rechecks the keeper's liveness every few milliseconds.)
    rt.block_on(wait_for("puts capped while the keeper is dead", || {
        seg.cache.ttl_cap() == Some(Duration::from_millis(700))
    }));
    seg.put("while-dead");
    assert!(matches!(
        seg.cache.ttl("while-dead").unwrap(),
        Some(memshelf::Expiry::In(d)) if d <= Duration::from_millis(700)
    ));
    let mut b = spawn();
    rt.block_on(wait_for("a new keeper took over", || {
        seg.cache.keeper_alive() == Some(true) && seg.cache.ttl_cap().is_none()
    }));
    assert!(!seg.has("while-dead"), "the restarted agent cleared");
    b.kill().unwrap();
    b.wait().unwrap();
}
