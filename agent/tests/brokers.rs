//! Production brokers, started on loopback ports by the test: TLS with a
//! CA generated here (openssl), ACL users, a 3-master Redis Cluster and a
//! Sentinel with one master and one replica.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use memshelf::message::Message;
use memshelf_agent::broker::{Broker, BrokerOptions};
use memshelf_agent::{FeedKind, GapReason};

const CH: &str = "memshelf";

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn make_certs(dir: &Path) {
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    sh(
        dir,
        &format!(
            "openssl req -x509 {ec} -keyout ca.key -out ca.crt -days 2 -subj /CN=memshelf-test-ca \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null && \
             openssl req {ec} -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null && \
             printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > server.ext && \
             openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext 2>/dev/null && \
             openssl req {ec} -keyout client.key -out client.csr -subj /CN=agent 2>/dev/null && \
             printf 'extendedKeyUsage=clientAuth\\n' > client.ext && \
             openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 -extfile client.ext 2>/dev/null"
        ),
    );
}

/// PUBLISH through a broker as the agent reaches it.
async fn publish_via(b: &Broker, payload: &str) -> i64 {
    let (client, node) = b
        .data_client(None, 0, Duration::from_secs(5))
        .await
        .unwrap();
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("{node}: {e}"));
    redis::cmd("PUBLISH")
        .arg(CH)
        .arg(payload)
        .query_async(&mut c)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_and_a_client_certificate() {
    let mut redis = Redis::prepare(&[
        "--port",
        "0",
        "--tls-port",
        "{port}",
        "--tls-cert-file",
        "{dir}/server.crt",
        "--tls-key-file",
        "{dir}/server.key",
        "--tls-ca-cert-file",
        "{dir}/ca.crt",
        "--tls-auth-clients",
        "yes",
    ]);
    make_certs(&redis.dir);
    redis.spawn();
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let d = &redis.dir;
    let opts = BrokerOptions {
        tls_ca_file: Some(d.join("ca.crt")),
        tls_cert: Some(d.join("client.crt")),
        tls_key: Some(d.join("client.key")),
        ..Default::default()
    };
    let broker = Broker::with_options(&url, &opts).unwrap();
    let seg = Segment::new("tls");
    for feed in [FeedKind::Pubsub, FeedKind::Stream, FeedKind::Tracking] {
        let mut cfg = config(&[&seg.name], &redis);
        cfg.broker = broker.clone();
        cfg.feed = feed;
        let agent = start(cfg).await;
        seg.put("k");
        seg.put("keep");
        match feed {
            FeedKind::Stream => {
                let (client, _) = broker
                    .data_client(Some("memshelf"), 0, Duration::from_secs(5))
                    .await
                    .unwrap();
                let _: String = redis::cmd("XADD")
                    .arg("memshelf")
                    .arg("*")
                    .arg("m")
                    .arg(Message::delete(&[b"k".as_slice()]).to_json().unwrap())
                    .query_async(&mut client.get_multiplexed_async_connection().await.unwrap())
                    .await
                    .unwrap();
            }
            FeedKind::Tracking => {
                // Near-cache mode: a write in Redis (over TLS) is the
                // invalidation.
                let (client, _) = broker
                    .data_client(None, 0, Duration::from_secs(5))
                    .await
                    .unwrap();
                let mut c = client.get_multiplexed_async_connection().await.unwrap();
                let _: () = redis::cmd("SET")
                    .arg("k")
                    .arg("v2")
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
            _ => {
                publish_via(
                    &broker,
                    &Message::delete(&[b"k".as_slice()]).to_json().unwrap(),
                )
                .await;
            }
        }
        wait_for("applied over TLS", || !seg.has("k")).await;
        assert!(seg.has("keep"));
        agent.shutdown().await;
    }

    // Without the private CA the server is not trusted: a clear error,
    // retried, never a crash.
    let mut cfg = config(&[&seg.name], &redis);
    cfg.broker = Broker::with_options(
        &url,
        &BrokerOptions {
            tls_cert: Some(d.join("client.crt")),
            tls_key: Some(d.join("client.key")),
            ..Default::default()
        },
    )
    .unwrap();
    let agent = memshelf_agent::start(cfg).await.unwrap();
    let m = agent.metrics().clone();
    wait_for("a certificate error", || {
        m.last_error().is_some_and(|e| {
            e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer")
        })
    })
    .await;
    assert!(!m.is_connected());
    let (code, body) = http_get(&agent, "/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("not connected"), "{body}");
    agent.shutdown().await;

    // A missing CA file is an error at start-up.
    let bad = BrokerOptions {
        tls_ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
        ..Default::default()
    };
    assert!(Broker::with_options(&url, &bad).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_with_a_password_and_a_wrong_password_is_a_clear_error_then_a_retry() {
    // A least-privilege user: what the README lists for each feed.
    let redis = Redis::start_with(&[
        "--user",
        "agent",
        "on",
        ">right",
        "resetchannels",
        "&memshelf",
        "resetkeys",
        "~memshelf",
        "-@all",
        "+subscribe",
        "+psubscribe",
        "+ping",
        "+xinfo|stream",
        "+xrange",
        "+xread",
        "+multi",
        "+exec",
    ]);
    let seg = Segment::new("acl");
    // Pub/Sub and Stream as the least-privilege user.
    for feed in [FeedKind::Pubsub, FeedKind::Stream] {
        let mut cfg = config(&[&seg.name], &redis);
        cfg.broker =
            Broker::parse(&format!("redis://agent:right@127.0.0.1:{}", redis.port)).unwrap();
        cfg.feed = feed;
        let agent = start(cfg).await;
        seg.put("k");
        match feed {
            FeedKind::Stream => {
                redis
                    .xadd(
                        "memshelf",
                        &Message::delete(&[b"k".as_slice()]).to_json().unwrap(),
                    )
                    .await;
            }
            _ => {
                redis
                    .publish(CH, Message::delete(&[b"k".as_slice()]).to_json().unwrap())
                    .await
            }
        }
        wait_for("applied as an ACL user", || !seg.has("k")).await;
        agent.shutdown().await;
    }

    // A wrong password: a clear error ("Password authentication failed"),
    // retried, never a crash.
    let mut cfg = config(&[&seg.name], &redis);
    cfg.broker = Broker::parse(&format!("redis://agent:wrong@127.0.0.1:{}", redis.port)).unwrap();
    let agent = memshelf_agent::start(cfg).await.unwrap();
    let m = agent.metrics().clone();
    let t0 = Instant::now();
    let auth_failed = |e: &str| e.to_lowercase().contains("authentication failed");
    while !m.last_error().is_some_and(|e| auth_failed(&e)) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no authentication error: {:?}",
            m.last_error()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (code, body) = http_get(&agent, "/readyz").await;
    assert_eq!(code, 503);
    assert!(auth_failed(&body), "{body}");
    assert!(
        !body.contains("wrong@"),
        "the password is not shown: {body}"
    );
    // The operator fixes the password on the server: the agent's retry gets in.
    redis.cmd(&["ACL", "SETUSER", "agent", ">wrong"]).await;
    wait_for("connected after the fix", || {
        m.is_connected() && !m.is_degraded()
    })
    .await;
    seg.put("k2");
    redis
        .publish(CH, Message::delete(&[b"k2".as_slice()]).to_json().unwrap())
        .await;
    wait_for("applied after the retry", || !seg.has("k2")).await;
    agent.shutdown().await;
}

fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Cluster nodes get ports redis-server accepts (at most 55535: its cluster
/// bus listens on port + 10000) whose bus port lies outside the ephemeral
/// range, where another test's server or connection could take it.
#[test]
fn cluster_node_ports_leave_room_for_the_cluster_bus() {
    let (lo, hi) = ephemeral_range();
    for _ in 0..500 {
        let p = free_cluster_port();
        assert!(p <= 55535, "port {p} is too high for a cluster node");
        // (A range reaching 65535 leaves no bus port outside it.)
        assert!(
            hi >= 65535 || u32::from(p) + 10000 > hi,
            "bus port {} is inside the ephemeral range {lo}-{hi}",
            u32::from(p) + 10000
        );
    }
    let n = Redis::prepare(&["--cluster-enabled", "yes"]);
    assert!(n.port <= 55535, "a cluster node was given port {}", n.port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_of_three_masters_pubsub_and_streams() {
    let (nodes, addrs) = start_cluster(3);
    for n in &nodes {
        wait_until("cluster_state:ok", 20, || {
            cli(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
        });
    }
    let url = format!("redis+cluster://{}", addrs.join(","));
    let broker = Broker::parse(&url).unwrap();
    let seg = Segment::new("cluster");

    // Pub/Sub: the agent listens on one node; a message published on any
    // other node reaches it.
    let mut cfg = config(&[&seg.name], &nodes[0]);
    cfg.broker = broker.clone();
    let agent = start(cfg).await;
    let m = agent.metrics().clone();
    for (i, n) in nodes.iter().enumerate() {
        let k = format!("k{i}");
        seg.put(&k);
        n.publish(CH, Message::delete(&[k.as_bytes()]).to_json().unwrap())
            .await;
        wait_for("applied from any node", || !seg.has(&k)).await;
    }
    // Its node drops the connection: a gap, and it reconnects (the next seed).
    for n in &nodes {
        n.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    }
    wait_for("reconnected", || {
        m.reconnects() >= 1 && m.is_connected() && !m.is_degraded()
    })
    .await;
    assert!(m.gaps(GapReason::Disconnect) >= 1);
    seg.put("again");
    nodes[2]
        .publish(
            CH,
            Message::delete(&[b"again".as_slice()]).to_json().unwrap(),
        )
        .await;
    wait_for("applied after the reconnect", || !seg.has("again")).await;
    agent.shutdown().await;

    // Streams: read on the master owning the key's slot.
    let stream = unique("inval");
    let mut cfg = config(&[&seg.name], &nodes[0]);
    cfg.broker = broker.clone();
    cfg.feed = FeedKind::Stream;
    cfg.stream = stream.clone();
    let agent = start(cfg).await;
    seg.put("s");
    let (client, node) = broker
        .data_client(Some(&stream), 0, Duration::from_secs(5))
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("m")
        .arg(Message::delete(&[b"s".as_slice()]).to_json().unwrap())
        .query_async(&mut client.get_multiplexed_async_connection().await.unwrap())
        .await
        .unwrap_or_else(|e| panic!("XADD on {node}: {e}"));
    wait_for("stream entry applied", || !seg.has("s")).await;
    agent.shutdown().await;
}

struct Sentinel {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_master_and_a_failover_is_a_gap() {
    let master = Redis::start();
    let replica = Redis::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let port = free_port();
    let dir = std::env::temp_dir().join(unique("sentinel"));
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
    wait_until("replica in sync", 20, || {
        cli(replica.port, &["INFO", "replication"]).contains("master_link_status:up")
    });
    wait_until("sentinel sees the replica", 30, || {
        let r = cli(sentinel.port, &["SENTINEL", "replicas", "mymaster"]);
        r.contains(&replica.port.to_string())
            && !r.contains("s_down")
            && !r.contains("disconnected")
    });
    let url = format!("redis+sentinel://127.0.0.1:{}/mymaster", sentinel.port);
    let broker = Broker::parse(&url).unwrap();
    let seg = Segment::new("sentinel");
    let mut cfg = config(&[&seg.name], &master);
    cfg.broker = broker.clone();
    let agent = start(cfg).await;
    let m = agent.metrics().clone();
    seg.put("k");
    master
        .publish(CH, Message::delete(&[b"k".as_slice()]).to_json().unwrap())
        .await;
    wait_for("applied through the sentinel's master", || !seg.has("k")).await;

    // A failover: the replica becomes the master. The agent's old
    // connection may even stay open: it is a gap either way.
    seg.put("stale");
    let before = m.gaps(GapReason::Failover) + m.gaps(GapReason::Disconnect);
    let r = cli(sentinel.port, &["SENTINEL", "FAILOVER", "mymaster"]);
    assert!(r.contains("OK"), "SENTINEL FAILOVER: {r}");
    wait_until("the replica is the master", 30, || {
        cli(
            sentinel.port,
            &["SENTINEL", "get-master-addr-by-name", "mymaster"],
        )
        .contains(&replica.port.to_string())
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while m.gaps(GapReason::Failover) + m.gaps(GapReason::Disconnect) == before {
        assert!(Instant::now() < deadline, "the failover was not a gap");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for("cleared", || !seg.has("stale")).await;
    wait_for("connected to the new master", || {
        m.is_connected() && !m.is_degraded()
    })
    .await;
    seg.put("k2");
    replica
        .publish(CH, Message::delete(&[b"k2".as_slice()]).to_json().unwrap())
        .await;
    wait_for("applied through the new master", || !seg.has("k2")).await;
    agent.shutdown().await;
}
