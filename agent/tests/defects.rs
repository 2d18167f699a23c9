//! Issue 10, defects 1-5, against the `memshelf-agent` binary (black box:
//! flags, a real redis-server, entries read from the segment).
//!
//! `MEMSHELF_AGENT_BIN=/path/to/memshelf-agent` runs them against another
//! build (for example the one before the fix, to see them fail).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use memshelf::message::Message;

fn agent_bin() -> String {
    std::env::var("MEMSHELF_AGENT_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_memshelf-agent").to_string())
}

/// The agent binary as a child process, killed on drop.
struct AgentProc {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl AgentProc {
    fn spawn(args: &[&str]) -> AgentProc {
        let port = free_port();
        let log = std::env::temp_dir().join(unique("agent-log"));
        let child = Command::new(agent_bin())
            .args(args)
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .env_remove("MEMSHELF_AGENT_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("run memshelf-agent");
        AgentProc { child, port, log }
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let code = out.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, out.split_once("\r\n\r\n")?.1.to_string()))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/readyz` says 200 (connected, start-up gap closed).
    async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.get("/readyz").is_none_or(|(c, _)| c != 200) {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "the agent exited ({st}) before it was ready:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "agent not ready within 10 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics").expect("/metrics");
        metric(&parse_prometheus(&text), series)
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn put_many(seg: &Segment, prefix: &str, n: usize) {
    for i in 0..n {
        seg.put(&format!("{prefix}:{i}"));
    }
}

fn served(seg: &Segment, prefix: &str, n: usize) -> usize {
    (0..n).filter(|i| seg.has(format!("{prefix}:{i}"))).count()
}

/// Polls until no `prefix:*` entry is served, failing after `within`.
async fn none_served_within(seg: &Segment, prefix: &str, n: usize, within: Duration, what: &str) {
    let t0 = Instant::now();
    loop {
        let left = served(seg, prefix, n);
        if left == 0 {
            return;
        }
        assert!(
            t0.elapsed() < within,
            "{what}: {left}/{n} entries still served after {:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Defect 1: a killed broker. The entries from before the outage were all
/// served during it (cleared only at reconnect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect1_pubsub_broker_killed_entries_are_not_served_during_the_outage() {
    let mut redis = Redis::start();
    let seg = Segment::new("d1kill");
    let mut agent = AgentProc::spawn(&["--segment", &seg.name, "--broker", &redis.url()]);
    agent.ready().await;
    put_many(&seg, "before", 1000);
    redis.kill();
    // Detection of a closed connection is immediate; the default degraded
    // TTL is 1 s. Well within 3 s, and the broker is still down.
    none_served_within(
        &seg,
        "before",
        1000,
        Duration::from_secs(3),
        "broker killed",
    )
    .await;
    // Entries written during the outage expire within the degraded TTL.
    put_many(&seg, "during", 100);
    none_served_within(
        &seg,
        "during",
        100,
        Duration::from_secs(3),
        "written during the outage",
    )
    .await;
    drop(redis);
}

/// Defect 1: a stopped broker (SIGSTOP): nothing was cleared until SIGCONT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect1_pubsub_broker_stopped_entries_are_not_served_during_the_outage() {
    let redis = Redis::start();
    let seg = Segment::new("d1stop");
    let mut agent = AgentProc::spawn(&[
        "--segment",
        &seg.name,
        "--broker",
        &redis.url(),
        "--ping-interval",
        "200ms",
        "--dead-after",
        "1s",
    ]);
    agent.ready().await;
    put_many(&seg, "before", 1000);
    redis.stop();
    // Detection within ping interval + dead-after (1.2 s), then the
    // degraded TTL (1 s).
    let r = none_served_within(
        &seg,
        "before",
        1000,
        Duration::from_secs(4),
        "broker stopped",
    )
    .await;
    redis.cont();
    r
}

/// Defect 1, at start-up: entries written before the agent can connect
/// stayed until it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect1_entries_written_before_the_agent_connects_expire() {
    let mut redis = Redis::prepare(&[]);
    let seg = Segment::new("d1start");
    put_many(&seg, "old", 100);
    let mut agent = AgentProc::spawn(&["--segment", &seg.name, "--broker", &redis.url()]);
    // The broker is not there yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    put_many(&seg, "early", 100);
    none_served_within(
        &seg,
        "old",
        100,
        Duration::from_secs(3),
        "written before the agent started",
    )
    .await;
    none_served_within(
        &seg,
        "early",
        100,
        Duration::from_secs(3),
        "written before the agent connected",
    )
    .await;
    // Once connected, the cap is lifted: entries stay.
    redis.spawn();
    agent.ready().await;
    put_many(&seg, "late", 100);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        served(&seg, "late", 100),
        100,
        "the degraded cap was not lifted"
    );
}

/// Defect 2: a stream deleted and recreated (DEL then XADD) before the
/// agent reconnects was taken for the same stream ("gap covered by
/// replay") and the stale entries were served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect2_stream_deleted_and_recreated_before_the_reconnect_is_a_gap() {
    let redis = Redis::start();
    let seg = Segment::new("d2");
    let stream = unique("inval");
    let state = redis.dir.join("agent.state");
    let mut agent = AgentProc::spawn(&[
        "--segment",
        &seg.name,
        "--broker",
        &redis.url(),
        "--feed",
        "stream",
        "--stream",
        &stream,
        "--state-file",
        state.to_str().unwrap(),
    ]);
    agent.ready().await;
    for _ in 0..5 {
        redis
            .xadd(&stream, &Message::heartbeat().to_json().unwrap())
            .await;
    }
    seg.put("live");
    redis
        .xadd(
            &stream,
            &Message::delete(&[b"live".as_slice()]).to_json().unwrap(),
        )
        .await;
    let t0 = Instant::now();
    while seg.has("live") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "live entry not applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    put_many(&seg, "user", 200);
    // While the agent is away: the invalidations of user:* go to the old
    // stream, which is then deleted and recreated.
    let keys: Vec<String> = (0..200).map(|i| format!("user:{i}")).collect();
    let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    let _: Value = redis::pipe()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("m")
        .arg(Message::delete(&keys).to_json().unwrap())
        .cmd("DEL")
        .arg(&stream)
        .cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("m")
        .arg(Message::heartbeat().to_json().unwrap())
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    none_served_within(
        &seg,
        "user",
        200,
        Duration::from_secs(5),
        "stream recreated",
    )
    .await;
    // Stopped and restarted from the state file across another DEL + XADD.
    drop(agent);
    put_many(&seg, "user", 200);
    let _: Value = redis::pipe()
        .cmd("DEL")
        .arg(&stream)
        .cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("m")
        .arg(Message::heartbeat().to_json().unwrap())
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let mut agent = AgentProc::spawn(&[
        "--segment",
        &seg.name,
        "--broker",
        &redis.url(),
        "--feed",
        "stream",
        "--stream",
        &stream,
        "--state-file",
        state.to_str().unwrap(),
    ]);
    agent.ready().await;
    none_served_within(
        &seg,
        "user",
        200,
        Duration::from_secs(3),
        "stream recreated while the agent was stopped",
    )
    .await;
}

/// Defect 3: one bad key stopped the rest of a `del`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect3_bad_keys_in_a_del_are_skipped_and_the_rest_applied() {
    let redis = Redis::start();
    let seg = Segment::new("d3");
    let mut agent = AgentProc::spawn(&["--segment", &seg.name, "--broker", &redis.url()]);
    agent.ready().await;
    for k in ["user:42", "user:43", "keep"] {
        seg.put(k);
    }
    redis
        .publish("memshelf", r#"{"v":1,"op":"del","keys":["","user:42"]}"#)
        .await;
    let long = "x".repeat(5000);
    redis
        .publish(
            "memshelf",
            format!(r#"{{"v":1,"op":"del","keys":["{long}","user:43"]}}"#),
        )
        .await;
    let t0 = Instant::now();
    while seg.has("user:42") || seg.has("user:43") {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "user:42 served: {}, user:43 served: {}",
            seg.has("user:42"),
            seg.has("user:43")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seg.has("keep"));
    assert_eq!(
        agent.metric("memshelf_agent_messages_total{result=\"applied\"}"),
        2.0
    );
    assert_eq!(
        agent.metric("memshelf_agent_messages_total{result=\"bad_key\"}"),
        2.0
    );
    assert_eq!(
        agent.metric("memshelf_agent_messages_total{result=\"failed\"}"),
        0.0
    );
}

/// Defect 4: `/2` in the broker URL was dropped: XADDs in db 2 were never
/// applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect4_the_database_index_is_honoured_for_streams() {
    let redis = Redis::start();
    let seg = Segment::new("d4");
    let stream = unique("inval");
    let url = format!("{}/2", redis.url());
    let mut agent = AgentProc::spawn(&[
        "--segment",
        &seg.name,
        "--broker",
        &url,
        "--feed",
        "stream",
        "--stream",
        &stream,
    ]);
    agent.ready().await;
    seg.put("k");
    seg.put("keep");
    let _: Value = redis::pipe()
        .cmd("SELECT")
        .arg(2)
        .cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("m")
        .arg(Message::delete(&[b"k".as_slice()]).to_json().unwrap())
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let t0 = Instant::now();
    while seg.has("k") {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "an XADD in db 2 was not applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seg.has("keep"));
}

/// Defect 5: `redis://:secret@host` failed with "credentials are not
/// supported".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect5_a_password_in_the_url_is_used() {
    let redis = Redis::start_with(&["--requirepass", "s3cret"]);
    let seg = Segment::new("d5");
    let url = format!("redis://:s3cret@127.0.0.1:{}", redis.port);
    let mut agent = AgentProc::spawn(&["--segment", &seg.name, "--broker", &url]);
    agent.ready().await;
    seg.put("k");
    let _: i64 = redis::cmd("PUBLISH")
        .arg("memshelf")
        .arg(Message::delete(&[b"k".as_slice()]).to_json().unwrap())
        .query_async(
            &mut redis::Client::open(url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let t0 = Instant::now();
    while seg.has("k") {
        assert!(t0.elapsed() < Duration::from_secs(3), "not applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !agent.log().contains(&"s3cret".to_string()),
        "the password is logged"
    );
}
