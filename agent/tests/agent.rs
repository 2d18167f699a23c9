//! The agent against a real redis-server (started per test).

mod common;

use std::time::Duration;

use common::*;
use memshelf::message::Message;
use memshelf_agent::{FeedKind, GapPolicy, GapReason, Outcome};

const CH: &str = "memshelf";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_applies_every_op_and_spares_unrelated_entries() {
    let redis = Redis::start();
    let seg = Segment::new("ops");
    let agent = start(config(&[&seg.name], &redis)).await;
    let m = agent.metrics().clone();
    for k in [
        "user:1", "user:2", "user:3", "post:1", "keep", "tagged", "other:1",
    ] {
        seg.put(k);
    }
    seg.put_tagged("tagged", "product:7");
    seg.cache.put(b"\xffbin", b"v").unwrap();

    // del, several keys
    redis
        .publish(
            CH,
            Message::delete(&[b"user:1".as_slice(), b"user:2"])
                .to_json()
                .unwrap(),
        )
        .await;
    wait_for("del applied", || !seg.has("user:1") && !seg.has("user:2")).await;
    assert!(seg.has("user:3") && seg.has("keep"));

    // del of a binary key (keys_b64)
    redis
        .publish(
            CH,
            Message::delete(&[b"\xffbin".as_slice()]).to_json().unwrap(),
        )
        .await;
    wait_for("binary del applied", || !seg.has(b"\xffbin")).await;

    // del_prefix
    redis
        .publish(CH, Message::delete_prefix(b"user:").to_json().unwrap())
        .await;
    wait_for("del_prefix applied", || !seg.has("user:3")).await;
    assert!(seg.has("post:1") && seg.has("keep"));

    // tag
    redis
        .publish(CH, Message::tag(b"product:7").to_json().unwrap())
        .await;
    wait_for("tag applied", || !seg.has("tagged")).await;
    assert!(seg.has("post:1") && seg.has("keep"));

    // A message for another segment is skipped.
    redis
        .publish(
            CH,
            Message::delete(&[b"keep".as_slice()])
                .cache("not-served")
                .to_json()
                .unwrap(),
        )
        .await;
    wait_for("other cache counted", || {
        m.messages(Outcome::OtherCache) == 1
    })
    .await;
    assert!(seg.has("keep"));

    // A heartbeat changes nothing.
    redis
        .publish(CH, Message::heartbeat().to_json().unwrap())
        .await;
    wait_for("heartbeat counted", || m.messages(Outcome::Heartbeat) == 1).await;
    assert!(seg.has("keep"));

    // clear of this segment by name
    redis
        .publish(
            CH,
            Message::clear().cache(seg.name.clone()).to_json().unwrap(),
        )
        .await;
    wait_for("clear applied", || !seg.has("keep") && !seg.has("post:1")).await;
    // The counter moves just after the segment does: wait for it too (CI
    // once read 4 between the two), then it must be exactly 5.
    wait_for("five applied", || m.messages(Outcome::Applied) >= 5).await;
    assert_eq!(m.messages(Outcome::Applied), 5);
    assert_eq!(m.messages(Outcome::Malformed), 0);
    // At once, and again after the subscription (SPEC 6a).
    assert_eq!(m.flushes(GapReason::Startup), 2);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_on_two_segments_both_apply_one_publish() {
    let redis = Redis::start();
    let (a, b) = (Segment::new("a"), Segment::new("b"));
    let agent_a = start(config(&[&a.name], &redis)).await;
    let agent_b = start(config(&[&b.name], &redis)).await;
    for s in [&a, &b] {
        s.put("k");
        s.put("other");
    }
    redis
        .publish(CH, Message::delete(&[b"k".as_slice()]).to_json().unwrap())
        .await;
    wait_for("both applied", || !a.has("k") && !b.has("k")).await;
    assert!(a.has("other") && b.has("other"));
    agent_a.shutdown().await;
    agent_b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_origin_is_skipped_and_others_apply() {
    let redis = Redis::start();
    let seg = Segment::new("origin");
    let mut cfg = config(&[&seg.name], &redis);
    cfg.origin = Some("host-a".into());
    let agent = start(cfg).await;
    let m = agent.metrics().clone();
    seg.put("k");
    redis
        .publish(
            CH,
            Message::delete(&[b"k".as_slice()])
                .origin("host-a:boot1", 1)
                .to_json()
                .unwrap(),
        )
        .await;
    wait_for("own message skipped", || {
        m.messages(Outcome::SkippedOrigin) == 1
    })
    .await;
    assert!(seg.has("k"));
    redis
        .publish(
            CH,
            Message::delete(&[b"k".as_slice()])
                .origin("host-ab:boot1", 1)
                .to_json()
                .unwrap(),
        )
        .await;
    wait_for("foreign message applied", || !seg.has("k")).await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_outage_reconnects_and_clears_and_readyz_follows() {
    let mut redis = Redis::start();
    let seg = Segment::new("outage");
    let agent = start(config(&[&seg.name], &redis)).await;
    let m = agent.metrics().clone();
    assert_eq!(http_get(&agent, "/readyz").await.0, 200);
    seg.put("before");

    redis.kill();
    wait_for("disconnect noticed", || !m.is_connected()).await;
    let (code, body) = http_get(&agent, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(http_get(&agent, "/healthz").await.0, 200);
    // Revised policy (SPEC 6a): cleared at once, degraded until healthy.
    wait_for("cleared at once on the disconnect", || !seg.has("before")).await;
    assert!(m.is_degraded());
    assert_eq!(m.gaps(GapReason::Disconnect), 1);
    assert_eq!(m.flushes(GapReason::Disconnect), 1);
    seg.put("during");

    redis.restart();
    wait_for("reconnected", || m.is_connected() && m.reconnects() >= 1).await;
    wait_for("cleared again after the resubscribe", || !seg.has("during")).await;
    assert_eq!(m.gaps(GapReason::Disconnect), 1, "one outage, one gap");
    assert_eq!(m.flushes(GapReason::Disconnect), 2);
    wait_for("ready again", || m.ready().is_ok()).await;
    assert!(!m.is_degraded());
    assert_eq!(http_get(&agent, "/readyz").await.0, 200);

    // And it still applies.
    seg.put("after");
    redis
        .publish(
            CH,
            Message::delete(&[b"after".as_slice()]).to_json().unwrap(),
        )
        .await;
    wait_for("applies after reconnect", || !seg.has("after")).await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_outage_with_gap_policy_log_keeps_entries_and_reports_incoherent() {
    let mut redis = Redis::start();
    let seg = Segment::new("logpol");
    seg.put("before-start");
    let mut cfg = config(&[&seg.name], &redis);
    cfg.gap_policy = GapPolicy::Log;
    let agent = start(cfg).await;
    let m = agent.metrics().clone();
    // The startup gap is only logged: not ready until a clear arrives.
    assert!(seg.has("before-start"));
    assert_eq!(http_get(&agent, "/readyz").await.0, 503);
    redis.publish(CH, Message::clear().to_json().unwrap()).await;
    wait_for("coherent after a clear", || m.ready().is_ok()).await;
    seg.put("before");
    redis.restart();
    wait_for("reconnected", || m.reconnects() >= 1 && m.is_connected()).await;
    wait_for("gap logged", || m.gaps(GapReason::Disconnect) >= 1).await;
    assert!(seg.has("before"));
    assert_eq!(m.flushes(GapReason::Disconnect), 0);
    assert!(m.ready().is_err());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seq_jump_is_a_gap_that_clears() {
    let redis = Redis::start();
    let seg = Segment::new("seq");
    let agent = start(config(&[&seg.name], &redis)).await;
    let m = agent.metrics().clone();
    seg.put("a");
    seg.put("b");
    seg.put("unrelated");
    redis
        .publish(
            CH,
            Message::delete(&[b"a".as_slice()])
                .origin("w:1", 1)
                .to_json()
                .unwrap(),
        )
        .await;
    redis
        .publish(
            CH,
            Message::delete(&[b"b".as_slice()])
                .origin("w:1", 2)
                .to_json()
                .unwrap(),
        )
        .await;
    wait_for("contiguous applied", || !seg.has("a") && !seg.has("b")).await;
    assert!(seg.has("unrelated"));
    assert_eq!(m.gaps(GapReason::Seq), 0);
    // Another origin's numbering is independent.
    redis
        .publish(
            CH,
            Message::heartbeat().origin("w:2", 40).to_json().unwrap(),
        )
        .await;
    redis
        .publish(
            CH,
            Message::heartbeat().origin("w:2", 41).to_json().unwrap(),
        )
        .await;
    wait_for("heartbeats", || m.messages(Outcome::Heartbeat) == 2).await;
    assert!(seg.has("unrelated"));
    // 3 and 4 were lost.
    redis
        .publish(CH, Message::heartbeat().origin("w:1", 5).to_json().unwrap())
        .await;
    wait_for("seq gap counted", || m.gaps(GapReason::Seq) == 1).await;
    assert_eq!(m.flushes(GapReason::Seq), 1);
    assert!(!seg.has("unrelated"));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_past_the_limit_clears_and_heartbeats_restore_readiness() {
    let redis = Redis::start();
    let seg = Segment::new("silence");
    let mut cfg = config(&[&seg.name], &redis);
    cfg.silence_limit = Some(Duration::from_millis(400));
    let agent = start(cfg).await;
    let m = agent.metrics().clone();
    seg.put("k");
    wait_for("silence gap", || m.gaps(GapReason::Silence) == 1).await;
    assert_eq!(m.flushes(GapReason::Silence), 1);
    assert!(!seg.has("k"));
    assert_eq!(http_get(&agent, "/readyz").await.0, 503);
    redis
        .publish(CH, Message::heartbeat().to_json().unwrap())
        .await;
    wait_for("ready after a heartbeat", || m.ready().is_ok()).await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_are_counted_and_skipped() {
    let redis = Redis::start();
    let seg = Segment::new("bad");
    let agent = start(config(&[&seg.name], &redis)).await;
    let m = agent.metrics().clone();
    seg.put("k");
    seg.put("keep");
    let huge = format!(r#"{{"v":1,"op":"del","keys":["{}"]}}"#, "x".repeat(2 << 20));
    for bad in [
        "not json at all",
        r#"{"v":1,"op":"explode","keys":["keep"]}"#,
        r#"{"v":1,"op":"del"}"#,
        r#"{"v":1,"op":"del_prefix"}"#,
        "",
        huge.as_str(),
    ] {
        redis.publish(CH, bad).await;
    }
    redis
        .publish(CH, Message::delete(&[b"k".as_slice()]).to_json().unwrap())
        .await;
    wait_for("valid message after the bad ones", || !seg.has("k")).await;
    assert_eq!(m.messages(Outcome::Malformed), 6);
    assert!(seg.has("keep"));
    assert_eq!(m.flushes(GapReason::Startup), 2);
    assert_eq!(
        m.gaps(GapReason::Disconnect),
        0,
        "a bad payload never drops the connection"
    );

    // An unknown version is a gap: the agent cannot know what it meant.
    redis
        .publish(CH, r#"{"v":2,"op":"del","keys":["a"]}"#)
        .await;
    wait_for("unknown version gap", || {
        m.gaps(GapReason::UnknownVersion) == 1 && m.messages(Outcome::UnknownVersion) >= 1
    })
    .await;
    assert!(!seg.has("keep"));
    assert_eq!(m.messages(Outcome::UnknownVersion), 1);
    seg.put("again");
    redis
        .publish(
            CH,
            Message::delete(&[b"again".as_slice()]).to_json().unwrap(),
        )
        .await;
    wait_for("still applying", || !seg.has("again")).await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move() {
    let redis = Redis::start();
    let (a, b) = (Segment::new("ma"), Segment::new("mb"));
    let agent = start(config(&[&a.name, &b.name], &redis)).await;
    let m = agent.metrics().clone();
    let (code, text) = http_get(&agent, "/metrics").await;
    assert_eq!(code, 200);
    let before = parse_prometheus(&text);
    for name in [&a.name, &b.name] {
        for metric_name in [
            "memshelf_hits_total",
            "memshelf_misses_total",
            "memshelf_evictions_total",
            "memshelf_expirations_total",
            "memshelf_entries",
            "memshelf_used_bytes",
            "memshelf_capacity_bytes",
            "memshelf_data_bytes",
        ] {
            metric(&before, &format!("{metric_name}{{cache=\"{name}\"}}"));
        }
    }
    assert_eq!(metric(&before, "memshelf_agent_connected"), 1.0);
    a.put("k");
    a.has("k");
    a.has("missing");
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    redis
        .publish(
            CH,
            Message::delete(&[b"k".as_slice()])
                .ts(ts)
                .to_json()
                .unwrap(),
        )
        .await;
    redis.publish(CH, "garbage").await;
    wait_for("two messages", || {
        m.messages(Outcome::Malformed) == 1 && m.messages(Outcome::Applied) == 1
    })
    .await;
    let after = parse_prometheus(&http_get(&agent, "/metrics").await.1);
    let applied = "memshelf_agent_messages_total{result=\"applied\"}";
    assert_eq!(metric(&after, applied), metric(&before, applied) + 1.0);
    assert_eq!(
        metric(
            &after,
            "memshelf_agent_messages_total{result=\"malformed\"}"
        ),
        1.0
    );
    assert_eq!(metric(&after, "memshelf_agent_lag_seconds_count"), 1.0);
    assert_eq!(
        metric(&after, "memshelf_agent_lag_seconds_bucket{le=\"+Inf\"}"),
        1.0
    );
    assert_eq!(
        metric(&after, "memshelf_agent_gaps_total{reason=\"startup\"}"),
        1.0
    );
    assert_eq!(
        metric(&after, "memshelf_agent_flushes_total{reason=\"startup\"}"),
        2.0
    );
    assert_eq!(metric(&after, "memshelf_agent_degraded"), 0.0);
    metric(&after, "memshelf_agent_reconnects_total");
    metric(&after, "memshelf_agent_last_message_age_seconds");
    let hits = format!("memshelf_hits_total{{cache=\"{}\"}}", a.name);
    assert!(metric(&after, &hits) >= metric(&before, &hits) + 1.0);
    assert_eq!(http_get(&agent, "/nope").await.0, 404);
    agent.shutdown().await;
}

fn stream_config(
    seg: &Segment,
    redis: &Redis,
    stream: &str,
    state: &std::path::Path,
) -> memshelf_agent::Config {
    let mut cfg = config(&[&seg.name], redis);
    cfg.feed = FeedKind::Stream;
    cfg.stream = stream.into();
    cfg.state_file = Some(state.to_path_buf());
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_replays_after_a_disconnect_and_a_restart_without_clearing() {
    let redis = Redis::start();
    let seg = Segment::new("stream");
    let stream = unique("inval");
    let state = redis.dir.join("agent.state");
    let agent = start(stream_config(&seg, &redis, &stream, &state)).await;
    let m = agent.metrics().clone();
    assert_eq!(
        m.flushes(GapReason::Startup),
        2,
        "no saved position: cleared at once and after connecting"
    );
    for k in ["a", "b", "c", "unrelated"] {
        seg.put(k);
    }
    redis
        .xadd(
            &stream,
            &Message::delete(&[b"a".as_slice()]).to_json().unwrap(),
        )
        .await;
    wait_for("live entry applied", || !seg.has("a")).await;

    // Kill the agent's connection and publish while it is away, in one
    // pipeline so the entry lands before the agent can reconnect.
    let mut c = redis.conn().await;
    let payload = Message::delete(&[b"b".as_slice()]).to_json().unwrap();
    let _: Value = redis::pipe()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("m")
        .arg(&payload)
        .query_async(&mut c)
        .await
        .unwrap();
    wait_for("reconnected", || m.reconnects() >= 1 && m.is_connected()).await;
    wait_for("replayed", || !seg.has("b")).await;
    assert!(
        seg.has("c") && seg.has("unrelated"),
        "a replayed disconnect clears nothing"
    );
    assert!(m.gaps(GapReason::Disconnect) >= 1);
    assert_eq!(m.flushes(GapReason::Disconnect), 0);

    // Stop the agent; publish; a new agent resumes from the state file.
    agent.shutdown().await;
    assert!(state.exists());
    redis
        .xadd(
            &stream,
            &Message::delete(&[b"c".as_slice()]).to_json().unwrap(),
        )
        .await;
    let agent = start(stream_config(&seg, &redis, &stream, &state)).await;
    let m = agent.metrics().clone();
    wait_for("resumed from the state file", || !seg.has("c")).await;
    assert!(seg.has("unrelated"));
    assert_eq!(m.gaps(GapReason::Startup), 1);
    assert_eq!(m.flushes(GapReason::Startup), 0);
    assert_eq!(m.flushes(GapReason::Trimmed), 0);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_trimmed_past_the_saved_position_clears() {
    let redis = Redis::start();
    let seg = Segment::new("trim");
    let stream = unique("inval");
    let state = redis.dir.join("agent.state");
    let agent = start(stream_config(&seg, &redis, &stream, &state)).await;
    let m = agent.metrics().clone();
    for _ in 0..3 {
        redis
            .xadd(&stream, &Message::heartbeat().to_json().unwrap())
            .await;
    }
    wait_for("heartbeats", || m.messages(Outcome::Heartbeat) == 3).await;
    // Trimming entries already applied is no gap.
    seg.put("x");
    redis.cmd(&["XTRIM", &stream, "MAXLEN", "1"]).await;
    redis
        .xadd(&stream, &Message::heartbeat().to_json().unwrap())
        .await;
    wait_for("heartbeat after trim", || {
        m.messages(Outcome::Heartbeat) == 4
    })
    .await;
    assert_eq!(m.gaps(GapReason::Trimmed), 0);
    assert!(seg.has("x"));
    agent.shutdown().await;

    seg.put("stale");
    seg.put("x");
    for k in ["stale", "y", "z"] {
        redis
            .xadd(
                &stream,
                &Message::delete(&[k.as_bytes()]).to_json().unwrap(),
            )
            .await;
    }
    redis.cmd(&["XTRIM", &stream, "MAXLEN", "1"]).await;
    let agent = start(stream_config(&seg, &redis, &stream, &state)).await;
    let m = agent.metrics().clone();
    wait_for("trimmed gap", || m.flushes(GapReason::Trimmed) == 1).await;
    assert!(!seg.has("stale") && !seg.has("x"), "cleared");
    agent.shutdown().await;
}

#[test]
fn binary_runs_applies_and_stops_on_sigterm() {
    let redis = Redis::start();
    let seg = Segment::new("bin");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_memshelf-agent"))
        .args(["--segment", &seg.name, "--broker", &redis.url()])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env_remove("MEMSHELF_AGENT_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run memshelf-agent");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let get = |path: &str| -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let code = out.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, out.split_once("\r\n\r\n")?.1.to_string()))
    };
    let stderr = child.stderr.take().unwrap();
    let guard = Kill(child);
    rt.block_on(wait_for("binary ready", || {
        get("/readyz").is_some_and(|(c, _)| c == 200)
    }));
    seg.put("k");
    seg.put("keep");
    rt.block_on(redis.publish(CH, Message::delete(&[b"k".as_slice()]).to_json().unwrap()));
    rt.block_on(wait_for("binary applied", || !seg.has("k")));
    assert!(seg.has("keep"));
    let (_, text) = get("/metrics").unwrap();
    let samples = parse_prometheus(&text);
    assert_eq!(
        metric(
            &samples,
            "memshelf_agent_messages_total{result=\"applied\"}"
        ),
        1.0
    );
    let mut child = guard;
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let status = child.0.wait().unwrap();
    assert!(status.success(), "exit on SIGTERM: {status:?}");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut { stderr }, &mut log).unwrap();
    assert!(log.contains("INFO connected"), "{log}");
    assert!(log.contains("signal=SIGTERM"), "{log}");
}

#[test]
fn feed_none_exports_metrics_without_a_broker_and_logs_json() {
    let seg = Segment::new("nofeed");
    seg.put("k");
    seg.has("k");
    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_memshelf-agent"))
        .args([
            "--segment",
            &seg.name,
            "--feed",
            "none",
            "--log-format",
            "json",
        ])
        // A broker that is not there: never contacted.
        .args(["--broker", "redis://127.0.0.1:1"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env_remove("MEMSHELF_AGENT_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run memshelf-agent");
    let get = |path: &str| -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let code = out.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, out.split_once("\r\n\r\n")?.1.to_string()))
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_for("ready without a broker", || {
        get("/readyz").is_some_and(|(c, _)| c == 200)
    }));
    let (_, text) = get("/metrics").unwrap();
    let samples = parse_prometheus(&text);
    assert!(
        metric(
            &samples,
            &format!("memshelf_hits_total{{cache=\"{}\"}}", seg.name)
        ) >= 1.0
    );
    assert_eq!(metric(&samples, "memshelf_agent_degraded"), 0.0);
    assert_eq!(metric(&samples, "memshelf_agent_connected"), 0.0);
    // Nothing was cleared: the exporter keeps nothing coherent.
    assert!(seg.has("k"));
    assert_eq!(seg.cache.keeper_alive(), None, "no keeper without a feed");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    assert!(child.wait().unwrap().success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    let mut messages = Vec::new();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        messages.push(v["fields"]["message"].as_str().unwrap_or("").to_string());
    }
    assert!(messages.iter().any(|m| m == "starting"), "{log}");
    assert!(messages.iter().any(|m| m == "shutting down"), "{log}");
}

#[test]
fn help_shows_every_default() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_memshelf-agent"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--degraded-ttl",
        "--dead-after",
        "--ping-interval",
        "--feed",
        "--tls-ca-file",
    ] {
        let at = help
            .find(flag)
            .unwrap_or_else(|| panic!("{flag} missing:\n{help}"));
        let rest = &help[at..];
        let next = rest[2..].find("\n  -").map_or(rest.len(), |i| i + 2);
        assert!(
            rest[..next].contains("[default: "),
            "{flag}:\n{}",
            &rest[..next]
        );
    }
    assert!(help.contains("[default: 1s]"), "{help}");
}

/// A segment unlinked and made again under the same name (a layout
/// upgrade: dump, unlink, load) gets the invalidations: the agent used to
/// stay attached to the unlinked file, counting deletes as applied to a
/// segment nobody could open any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_unlinked_and_recreated_gets_the_invalidations() {
    let redis = Redis::start();
    let seg = Segment::new("recreated");
    let agent = start(config(&[&seg.name], &redis)).await;
    let m = agent.metrics().clone();
    wait_for("connected", || m.is_connected()).await;
    memshelf::unlink(&seg.name).unwrap();
    let fresh = memshelf::Cache::open(&seg.name, 4 << 20).unwrap();
    wait_for("the new segment attached (and cleared)", || {
        m.flushes(GapReason::Attach) >= 1
    })
    .await;
    fresh.put("k", b"v").unwrap();
    fresh.put("unrelated", b"v").unwrap();
    redis
        .publish(CH, Message::delete(&[b"k".as_slice()]).to_json().unwrap())
        .await;
    wait_for("the delete reached the new segment", || {
        fresh.get("k").unwrap().is_none()
    })
    .await;
    assert!(fresh.get("unrelated").unwrap().is_some());
    agent.shutdown().await;
}

/// A `seq` far ahead of an origin's counter (a corrupt or hostile
/// message) is a gap, and the counter follows the messages after it, so a
/// later jump is a gap too. The agent used to keep the highest `seq` seen,
/// which hid every later gap of that origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_far_ahead_does_not_hide_later_gaps() {
    let redis = Redis::start();
    let seg = Segment::new("seqpoison");
    let agent = start(config(&[&seg.name], &redis)).await;
    let m = agent.metrics().clone();
    wait_for("connected", || m.is_connected()).await;
    for seq in [1, u64::MAX, 2, 3] {
        redis
            .publish(
                CH,
                Message::heartbeat().origin("w:1", seq).to_json().unwrap(),
            )
            .await;
    }
    wait_for("four heartbeats", || m.messages(Outcome::Heartbeat) == 4).await;
    let before = m.gaps(GapReason::Seq);
    assert!(before >= 1, "the jump to u64::MAX is a gap");
    seg.put("k");
    redis
        .publish(
            CH,
            Message::heartbeat().origin("w:1", 100).to_json().unwrap(),
        )
        .await;
    wait_for("the jump from 3 to 100 is a gap", || {
        m.gaps(GapReason::Seq) > before
    })
    .await;
    wait_for("and clears", || !seg.has("k")).await;
    agent.shutdown().await;
}

/// A stream whose next batch cannot be read within `dead_after` (big
/// entries, a slow link) still makes progress: the agent reads fewer
/// entries at a time. It used to time out on the same 512-entry batch,
/// reconnect as "covered" and read it again, for ever, serving what the
/// entries behind it should have deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_batch_slower_than_dead_after_still_makes_progress() {
    let redis = Redis::start();
    let seg = Segment::new("bigbatch");
    let stream = unique("big");
    let state = redis.dir.join("agent.state");
    let mut cfg = stream_config(&seg, &redis, &stream, &state);
    cfg.dead_after = Duration::from_millis(20);
    // A first agent saves a position, then stops; the entries pile up
    // behind it, so the next agent's first read is a full batch.
    let first = start(cfg.clone()).await;
    let fm = first.metrics().clone();
    wait_for("the first agent connected", || fm.is_connected()).await;
    redis
        .xadd(&stream, &Message::heartbeat().to_json().unwrap())
        .await;
    wait_for("the first agent read the stream", || {
        fm.messages(Outcome::Heartbeat) >= 1
    })
    .await;
    first.shutdown().await;
    assert!(state.exists());
    seg.put("stale");
    // 512 deletes of 25 keys of 4,000 bytes each: ~51 MB in one XREAD.
    let keys: Vec<Vec<u8>> = (0..25)
        .map(|i| format!("{i:04}{}", "x".repeat(3996)).into_bytes())
        .collect();
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let big = Message::delete(&refs).to_json().unwrap();
    let mut c = redis.conn().await;
    let mut p = redis::pipe();
    for _ in 0..512 {
        p.cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("m")
            .arg(&big)
            .ignore();
    }
    let _: () = p.query_async(&mut c).await.unwrap();
    redis
        .xadd(
            &stream,
            &Message::delete(&[b"stale".as_slice()]).to_json().unwrap(),
        )
        .await;
    let agent = start(cfg).await;
    let m = agent.metrics().clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seg.has("stale") {
        assert!(
            std::time::Instant::now() < deadline,
            "the delete behind the big batch was not applied within 60 s ({} applied)",
            m.messages(Outcome::Applied)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.shutdown().await;
}

/// A broker that drops every connection right after it is made (a proxy,
/// `CLIENT KILL` in a loop) is retried with a growing backoff, as a
/// refused connection is. The agent used to reset its backoff on every
/// successful connect and reconnect every 0-50 ms for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_drops_every_connection_is_retried_with_backoff() {
    let redis = Redis::start();
    let seg = Segment::new("flap");
    let mut cfg = config(&[&seg.name], &redis);
    // (the tests' 300 ms cap would allow ~20 reconnects in 3 s even with
    // the backoff growing; the default is 5 s)
    cfg.backoff_max = Duration::from_secs(2);
    let agent = start(cfg).await;
    let m = agent.metrics().clone();
    wait_for("connected", || m.is_connected()).await;
    let before = m.reconnects();
    let end = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < end {
        redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let n = m.reconnects() - before;
    assert!(n >= 2, "{n} reconnects: the kills did not reach the agent");
    assert!(n <= 20, "{n} reconnects in 3 s: no backoff");
    agent.shutdown().await;
}
