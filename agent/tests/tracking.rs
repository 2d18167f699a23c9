//! The `tracking` feed (SPEC 6b, near-cache mode) against real
//! redis-servers on loopback: writes by any client (redis-cli, a redis
//! client, expiry, DEL/UNLINK, eviction) delete the key from every agent's
//! segment; keys outside the tracked prefixes stay; FLUSHALL/FLUSHDB
//! clear; a lost or stopped server is a gap (clear at once, degraded,
//! clear again after re-tracking); a 3-master Cluster is tracked on every
//! master, a killed master is a gap until it is back, and a new master is
//! found at the next topology check and tracked.
//!
//! Latency (write -> gone) is measured in `benches/tracking_latency.rs`,
//! not here: these tests only wait with generous bounds.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use memshelf_agent::{Config, FeedKind, GapReason, Outcome};

fn tracking_config(segments: &[&str], redis: &Redis, prefixes: &[&str]) -> Config {
    let mut c = config(segments, redis);
    c.feed = FeedKind::Tracking;
    c.tracking_prefixes = prefixes.iter().map(|p| p.to_string()).collect();
    c
}

/// SET `key` on `redis` (a plain client, not the agent's).
async fn set(conn: &mut redis::aio::MultiplexedConnection, key: impl AsRef<[u8]>) {
    let _: () = redis::cmd("SET")
        .arg(key.as_ref())
        .arg("v2")
        .query_async(conn)
        .await
        .expect("SET");
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A fence: invalidations of one node arrive in write order, so once
/// `fence` (written after the writes being checked) is gone, the earlier
/// writes' invalidations were applied too.
async fn fence(conn: &mut redis::aio::MultiplexedConnection, seg: &Segment, fence: &str) {
    seg.put(fence);
    set(conn, fence).await;
    wait_for("the fence key invalidated", || !seg.has(fence)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_by_any_client_removes_the_key_from_two_agents_segments() {
    let redis = Redis::start();
    let (a, b) = (Segment::new("trk-a"), Segment::new("trk-b"));
    // Two "hosts": two agents, each its own segment, one server.
    let agent_a = start(tracking_config(&[&a.name], &redis, &[])).await;
    let agent_b = start(tracking_config(&[&b.name], &redis, &[])).await;
    let (ma, mb) = (agent_a.metrics().clone(), agent_b.metrics().clone());
    let applied0 = ma.messages(Outcome::Applied);

    // redis-cli, as an operator would.
    a.put("k");
    b.put("k");
    assert!(cli(redis.port, &["SET", "k", "v2"]).contains("OK"));
    wait_for("k gone from both segments", || !a.has("k") && !b.has("k")).await;

    // Many writes by a redis client (pipelined), and a binary key.
    let keys: Vec<String> = (0..500).map(|i| format!("user:{i}")).collect();
    for k in &keys {
        a.put(k);
        b.put(k);
    }
    let bin: &[u8] = b"\xff\x00bin\r\n";
    a.cache.put(bin, b"v").unwrap();
    b.cache.put(bin, b"v").unwrap();
    let mut conn = redis.conn().await;
    let mut p = redis::pipe();
    for k in &keys {
        p.cmd("SET").arg(k).arg("v2").ignore();
    }
    p.cmd("SET").arg(bin).arg("v2").ignore();
    let _: () = p.query_async(&mut conn).await.unwrap();
    wait_for("every written key gone from both segments", || {
        keys.iter().all(|k| !a.has(k) && !b.has(k))
    })
    .await;
    wait_for("the binary key gone", || !a.has(bin) && !b.has(bin)).await;
    assert!(ma.messages(Outcome::Applied) > applied0);
    assert!(mb.messages(Outcome::Applied) > 0);
    assert!(
        ma.last_message_age() < 5.0,
        "an invalidation counts as a message"
    );

    // A key that cannot exist in a cache (longer than the core's limit) is
    // skipped and counted; the feed goes on.
    let long = "x".repeat(memshelf::MAX_KEY_LEN + 1);
    set(&mut conn, &long).await;
    wait_for("the too-long key counted", || {
        ma.messages(Outcome::BadKey) >= 1
    })
    .await;
    fence(&mut conn, &a, "after-long").await;
    assert_eq!(ma.gaps(GapReason::Disconnect), 0);
    agent_a.shutdown().await;
    agent_b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_other_write_paths_and_flushes() {
    let redis = Redis::start();
    let seg = Segment::new("trk-prefix");
    let agent = start(tracking_config(&[&seg.name], &redis, &["a:", "b:"])).await;
    let m = agent.metrics().clone();
    let mut conn = redis.conn().await;

    // Outside the prefixes: not deleted. The tracked write after it is a
    // fence (one connection: in order).
    seg.put("c:1");
    seg.put("a:1");
    seg.put("b:1");
    set(&mut conn, "c:1").await;
    set(&mut conn, "a:1").await;
    set(&mut conn, "b:1").await;
    wait_for("a:1 and b:1 invalidated", || {
        !seg.has("a:1") && !seg.has("b:1")
    })
    .await;
    assert!(seg.has("c:1"), "a key outside the prefixes was deleted");

    // Write paths other than SET. Each key exists in Redis first (its SET
    // invalidation is applied before the segment gets the key: a fence).
    for k in ["a:del", "a:unlink", "a:expire", "b:pexpire"] {
        set(&mut conn, k).await;
    }
    fence(&mut conn, &seg, "a:fence1").await;
    for k in ["a:del", "a:unlink", "a:expire", "b:pexpire"] {
        seg.put(k);
    }
    let _: i64 = redis::cmd("DEL")
        .arg("a:del")
        .query_async(&mut conn)
        .await
        .unwrap();
    wait_for("DEL invalidates", || !seg.has("a:del")).await;
    let _: i64 = redis::cmd("UNLINK")
        .arg("a:unlink")
        .query_async(&mut conn)
        .await
        .unwrap();
    wait_for("UNLINK invalidates", || !seg.has("a:unlink")).await;
    // EXPIRE 0 deletes at once; PEXPIRE expires a moment later (active
    // expiry or a lazy access).
    let _: i64 = redis::cmd("EXPIRE")
        .arg("a:expire")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    wait_for("EXPIRE 0 invalidates", || !seg.has("a:expire")).await;
    let _: i64 = redis::cmd("PEXPIRE")
        .arg("b:pexpire")
        .arg(50)
        .query_async(&mut conn)
        .await
        .unwrap();
    wait_for("a key expiring in Redis is invalidated", || {
        !seg.has("b:pexpire")
    })
    .await;

    // Eviction under maxmemory: every key Redis evicts leaves the segment.
    let n = 2000;
    let value = vec![b'x'; 1000];
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("SET").arg(format!("b:ev:{i}")).arg(&value).ignore();
    }
    let _: () = p.query_async(&mut conn).await.unwrap();
    fence(&mut conn, &seg, "a:fence2").await;
    for i in 0..n {
        seg.put(&format!("b:ev:{i}"));
    }
    let info = cli(redis.port, &["INFO", "memory"]);
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    cli(
        redis.port,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-random"],
    );
    cli(
        redis.port,
        &[
            "CONFIG",
            "SET",
            "maxmemory",
            &(used - 1_000_000).to_string(),
        ],
    );
    // A write makes Redis evict down to the limit.
    set(&mut conn, "c:trigger").await;
    cli(redis.port, &["CONFIG", "SET", "maxmemory", "0"]);
    let mut evicted = Vec::new();
    for i in 0..n {
        let k = format!("b:ev:{i}");
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .unwrap();
        if exists == 0 {
            evicted.push(k);
        }
    }
    assert!(
        evicted.len() >= 100,
        "Redis evicted only {} keys",
        evicted.len()
    );
    wait_for("every evicted key gone from the segment", || {
        evicted.iter().all(|k| !seg.has(k))
    })
    .await;

    // FLUSHALL and FLUSHDB (a null invalidation) clear the segment, even
    // keys outside the prefixes.
    let flushes0 = m.flushes(GapReason::RedisFlush);
    for flush in ["FLUSHALL", "FLUSHDB"] {
        seg.put("c:kept");
        seg.put("z");
        assert!(cli(redis.port, &[flush]).contains("OK"));
        wait_for("a flush clears the segment", || {
            !seg.has("c:kept") && !seg.has("z")
        })
        .await;
    }
    // The agent counts a flush just after the clear it applies: wait for
    // the count rather than read it the moment the segment is seen empty
    // (that read raced the increment on a loaded CI machine).
    wait_for("both flushes counted as redis_flush", || {
        m.flushes(GapReason::RedisFlush) >= flushes0 + 2
    })
    .await;
    assert_eq!(m.gaps(GapReason::Disconnect), 0, "no gap on the way");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_or_stopped_server_is_a_gap_and_tracking_resumes() {
    let mut redis = Redis::start();
    let seg = Segment::new("trk-gap");
    let mut cfg = tracking_config(&[&seg.name], &redis, &[]);
    cfg.degraded_ttl = Duration::from_millis(800);
    cfg.dead_after = Duration::from_millis(800);
    let ttl = cfg.degraded_ttl;
    let agent = start(cfg).await;
    let m = agent.metrics().clone();

    // Killed (SIGKILL): cleared at once, degraded. (The applier counts
    // the gap, clears, counts the flush, then degrades: wait for the last.)
    seg.put("old");
    redis.kill();
    wait_for("the lost connection is a gap, cleared and degraded", || {
        m.gaps(GapReason::Disconnect) >= 1
            && m.flushes(GapReason::Disconnect) >= 1
            && m.is_degraded()
    })
    .await;
    assert!(!seg.has("old"), "cleared at once");
    assert!(m.is_degraded());
    assert_eq!(seg.cache.ttl_cap(), Some(ttl), "writes capped while away");
    assert_eq!(m.flushes(GapReason::Disconnect), 1);
    seg.put("during");
    match seg.cache.ttl("during").unwrap() {
        Some(memshelf::Expiry::In(d)) => assert!(d <= ttl, "{d:?}"),
        other => panic!("an entry written while degraded has TTL {other:?}"),
    }
    // Restarted on the same port: tracked again, cleared again, healed.
    redis.spawn();
    wait_for("re-tracked and healed", || {
        m.is_connected() && !m.is_degraded()
    })
    .await;
    assert!(m.flushes(GapReason::Disconnect) >= 2, "a second clear");
    assert_eq!(seg.cache.ttl_cap(), None, "the cap is lifted");
    seg.put("new");
    let mut conn = redis.conn().await;
    set(&mut conn, "new").await;
    wait_for("a SET after the restart is invalidated", || !seg.has("new")).await;

    // Stopped (SIGSTOP): sockets stay open, PINGs go unanswered.
    let flushes = m.flushes(GapReason::Disconnect);
    seg.put("old2");
    redis.stop();
    wait_for("a stopped server is a gap (PING timeout)", || {
        m.flushes(GapReason::Disconnect) > flushes && m.is_degraded()
    })
    .await;
    assert!(!seg.has("old2"), "cleared at once");
    assert!(m.is_degraded());
    redis.cont();
    wait_for("re-tracked after SIGCONT", || {
        m.is_connected() && !m.is_degraded()
    })
    .await;
    seg.put("new2");
    set(&mut redis.conn().await, "new2").await;
    wait_for("tracking resumed", || !seg.has("new2")).await;

    // The tracking connection killed by an operator: a gap too.
    let gaps = m.gaps(GapReason::Disconnect);
    redis.cmd(&["CLIENT", "KILL", "TYPE", "normal"]).await;
    wait_for("a killed tracking connection is a gap", || {
        m.gaps(GapReason::Disconnect) > gaps && m.is_connected() && !m.is_degraded()
    })
    .await;
    seg.put("new3");
    set(&mut redis.conn().await, "new3").await;
    wait_for("tracking resumed", || !seg.has("new3")).await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_are_used() {
    // The default user may not run CLIENT: tracking works only if the
    // agent logs in as the URL's user, which has only what the tracking
    // feed needs (the README's least privilege).
    let mut redis = Redis::start_with(&[
        "--user",
        "default",
        "on",
        "nopass",
        "~*",
        "&*",
        "+@all",
        "-client",
        "--user",
        "app",
        "on",
        ">s3cret",
        "resetkeys",
        "~p:*",
        "+hello",
        "+ping",
        "+client|tracking",
    ]);
    redis.url = format!("redis://app:s3cret@127.0.0.1:{}", redis.port);
    let seg = Segment::new("trk-acl");
    let agent = start(tracking_config(&[&seg.name], &redis, &["p:"])).await;
    seg.put("p:1");
    set(&mut redis.conn().await, "p:1").await;
    wait_for("invalidated over an ACL user's connection", || {
        !seg.has("p:1")
    })
    .await;
    agent.shutdown().await;
}

/// A node to which `key` belongs (the node answers the SET, not MOVED).
async fn keys_on(node: &Redis, n: usize) -> Vec<String> {
    let mut conn = node.conn().await;
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n {
        let k = format!("ck:{}:{i}", node.port);
        i += 1;
        let r: redis::RedisResult<()> = redis::cmd("SET")
            .arg(&k)
            .arg("v")
            .query_async(&mut conn)
            .await;
        if r.is_ok() {
            out.push(k);
        }
    }
    out
}

fn cluster_ok(port: u16) -> bool {
    cli(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_is_tracked_on_every_master_and_a_lost_master_is_a_gap() {
    let (mut nodes, addrs) = start_cluster(3);
    for n in &nodes {
        wait_for("cluster_state:ok", || cluster_ok(n.port)).await;
    }
    let seg = Segment::new("trk-cluster");
    let mut cfg = tracking_config(&[&seg.name], &nodes[0], &["ck:"]);
    cfg.broker = memshelf_agent::Broker::parse(&format!("redis+cluster://{}", addrs[0])).unwrap();
    cfg.dead_after = Duration::from_millis(800);
    cfg.topology_interval = Duration::from_millis(300);
    let agent = start(cfg).await;
    let m = agent.metrics().clone();

    // Keys of every master's slots (found by asking each master; this
    // also writes them, before the segment has them).
    let mut per_node = Vec::new();
    for n in &nodes {
        per_node.push(keys_on(n, 3).await);
    }
    // Those writes' invalidations are applied before a later fence on the
    // same node.
    for (n, keys) in nodes.iter().zip(&per_node) {
        let mut c = n.conn().await;
        let f = keys_on(n, 4).await.pop().unwrap();
        seg.put(&f);
        set(&mut c, &f).await;
        wait_for("a fence on each master", || !seg.has(&f)).await;
        for k in keys {
            seg.put(k);
        }
    }
    for (n, keys) in nodes.iter().zip(&per_node) {
        let mut c = n.conn().await;
        for k in keys {
            set(&mut c, k).await;
        }
    }
    wait_for("keys of every master invalidated", || {
        per_node.iter().flatten().all(|k| !seg.has(k))
    })
    .await;

    // A master killed (no replicas): a gap, cleared at once, degraded
    // until every master is tracked again.
    seg.put("ck:before-kill");
    let flushes = m.flushes(GapReason::Disconnect);
    nodes[2].kill();
    wait_for("a lost master is a gap", || {
        m.flushes(GapReason::Disconnect) > flushes && m.is_degraded()
    })
    .await;
    assert!(!seg.has("ck:before-kill"), "cleared at once");
    assert_eq!(seg.cache.ttl_cap(), Some(Duration::from_secs(1)));
    // The other masters answer, but the feed is not healthy without this
    // one: still degraded after several reconnection attempts (backoff at
    // most 300 ms here).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(m.is_degraded(), "healed with a master untracked");
    assert!(!m.is_connected());
    let flushes = m.flushes(GapReason::Disconnect);
    // Back on the same port with the same nodes.conf: it rejoins with its
    // slots; tracking resumes on it (and a second clear).
    nodes[2].spawn();
    wait_for("re-tracked every master", || {
        m.is_connected() && !m.is_degraded()
    })
    .await;
    assert!(m.flushes(GapReason::Disconnect) > flushes, "a second clear");
    for n in &nodes {
        wait_for("cluster_state:ok after the restart", || cluster_ok(n.port)).await;
    }
    let keys = &per_node[2];
    for k in keys {
        seg.put(k);
    }
    let mut c = nodes[2].conn().await;
    for k in keys {
        set(&mut c, k).await;
    }
    wait_for("the restarted master's keys invalidated again", || {
        keys.iter().all(|k| !seg.has(k))
    })
    .await;

    // A new master (a fourth node given one empty slot) is found at the
    // next topology check: a gap, then it is tracked too.
    let mut new = Redis::prepare(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "{dir}/nodes.conf",
        "--cluster-node-timeout",
        "2000",
    ]);
    new.spawn();
    let out = Command::new("redis-cli")
        .args(["--cluster", "add-node"])
        .arg(format!("127.0.0.1:{}", new.port))
        .arg(&addrs[0])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("redis-cli --cluster add-node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let key = "ck:on-the-new-master";
    let slot = cli(nodes[0].port, &["CLUSTER", "KEYSLOT", key])
        .trim()
        .to_string();
    let mut src = None;
    for n in &nodes {
        let r: redis::RedisResult<i64> = redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut n.conn().await)
            .await;
        if r.is_ok() {
            src = Some(n);
        }
    }
    let src = src.expect("a master owns the slot");
    let src_id = cli(src.port, &["CLUSTER", "MYID"]).trim().to_string();
    let new_id = cli(new.port, &["CLUSTER", "MYID"]).trim().to_string();
    wait_for("the new node and the slot's owner know each other", || {
        cli(new.port, &["CLUSTER", "NODES"]).contains(&src_id)
            && cli(src.port, &["CLUSTER", "NODES"]).contains(&new_id)
    })
    .await;
    let gaps = m.gaps(GapReason::Failover);
    assert!(
        cli(
            new.port,
            &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &src_id]
        )
        .contains("OK")
    );
    assert!(
        cli(
            src.port,
            &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &new_id]
        )
        .contains("OK")
    );
    assert!(cli(new.port, &["CLUSTER", "SETSLOT", &slot, "NODE", &new_id]).contains("OK"));
    assert!(cli(src.port, &["CLUSTER", "SETSLOT", &slot, "NODE", &new_id]).contains("OK"));
    wait_for("the new master is a gap, then tracked", || {
        m.gaps(GapReason::Failover) > gaps && m.is_connected() && !m.is_degraded()
    })
    .await;
    wait_for("cluster_state:ok on the new node", || cluster_ok(new.port)).await;
    seg.put(key);
    set(&mut new.conn().await, key).await;
    wait_for("a key of the new master invalidated", || !seg.has(key)).await;
    agent.shutdown().await;
}

struct Sentinel {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `cond` every 20 ms for up to `secs` (Sentinel is slower than the
/// 10 s of [`wait_for`] in the worst case).
async fn wait_long(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_the_current_master_is_tracked_and_a_failover_is_a_gap() {
    let master = Redis::start();
    let replica = Redis::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let port = free_port();
    let dir = std::env::temp_dir().join(unique("trk-sentinel"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\n\
             sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n",
            dir.display(),
            master.port
        ),
    )
    .unwrap();
    let child = Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server --sentinel");
    let sentinel = Sentinel { child, port, dir };
    wait_long("replica in sync", 20, || {
        cli(replica.port, &["INFO", "replication"]).contains("master_link_status:up")
    })
    .await;
    wait_long("sentinel sees the replica", 30, || {
        let r = cli(sentinel.port, &["SENTINEL", "replicas", "mymaster"]);
        r.contains(&replica.port.to_string())
            && !r.contains("s_down")
            && !r.contains("disconnected")
    })
    .await;
    let seg = Segment::new("trk-sentinel");
    let mut cfg = tracking_config(&[&seg.name], &master, &[]);
    cfg.broker = memshelf_agent::Broker::parse(&format!(
        "redis+sentinel://127.0.0.1:{}/mymaster",
        sentinel.port
    ))
    .unwrap();
    let agent = start(cfg).await;
    let m = agent.metrics().clone();
    seg.put("k");
    set(&mut master.conn().await, "k").await;
    wait_for("a write on the sentinel's master invalidates", || {
        !seg.has("k")
    })
    .await;

    // A failover: the replica becomes the master. A gap (whether the old
    // connection is closed or seen at the wrong address), then the new
    // master is tracked.
    seg.put("stale");
    let before = m.flushes(GapReason::Failover) + m.flushes(GapReason::Disconnect);
    let r = cli(sentinel.port, &["SENTINEL", "FAILOVER", "mymaster"]);
    assert!(r.contains("OK"), "SENTINEL FAILOVER: {r}");
    wait_long("the failover is a gap (a clear)", 30, || {
        m.flushes(GapReason::Failover) + m.flushes(GapReason::Disconnect) > before
    })
    .await;
    assert!(!seg.has("stale"), "cleared at once");
    wait_long("the new master is tracked", 30, || {
        m.is_connected()
            && !m.is_degraded()
            && cli(
                sentinel.port,
                &["SENTINEL", "get-master-addr-by-name", "mymaster"],
            )
            .contains(&replica.port.to_string())
    })
    .await;
    wait_long("the new master accepts writes", 20, || {
        cli(replica.port, &["INFO", "replication"]).contains("role:master")
    })
    .await;
    seg.put("k2");
    set(&mut replica.conn().await, "k2").await;
    wait_for("a write on the new master invalidates", || !seg.has("k2")).await;
    agent.shutdown().await;
}
