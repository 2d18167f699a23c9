//! Containers: processes in other PID namespaces (`unshare --pid --fork
//! --mount-proc`, as Docker `--ipc=shareable` or a Kubernetes pod sharing a
//! memory-backed emptyDir) share one segment with processes outside. A
//! live holder keeps its bucket lock and its get_or_set lease whatever
//! namespace either side is in; a dead one's are reclaimed at once.
//!
//! Each of these failed before liveness was judged by the kernel (lock
//! words held namespace-local pids, read from the checker's own /proc).

mod common;

use std::time::{Duration, Instant};

use common::*;
use memshelf::Cache;

const HOLD_MS: u64 = 1500;

/// Starts `holder` holding `key`'s bucket lock (for `HOLD_MS`), then puts
/// the key from `writer`; returns the writer's report.
fn holder_vs_writer(
    seg: &Seg,
    spawn_holder: fn(&str, &[String]) -> Worker,
    spawn_writer: fn(&str, &[String]) -> Worker,
) -> std::collections::HashMap<String, i64> {
    let marker = TempPath::new("held");
    let mut holder = spawn_holder(
        "hold-lock",
        &wargs!("seg" => seg.name(), "cap" => 1 << 20, "key" => "contended",
                "ms" => HOLD_MS, "marker" => marker.0.display()),
    );
    poll_until(
        Duration::from_secs(20),
        "the holder to take the lock",
        || marker.0.exists(),
    );
    let t = Instant::now();
    let mut writer = spawn_writer(
        "put-timed",
        &wargs!("seg" => seg.name(), "cap" => 1 << 20, "key" => "contended"),
    );
    let r = parse_result(&writer.success(Duration::from_secs(20)));
    holder.success(Duration::from_secs(20));
    assert!(
        t.elapsed() >= Duration::from_millis(HOLD_MS / 2),
        "the writer finished before the holder released"
    );
    r
}

fn assert_waited(r: &std::collections::HashMap<String, i64>, what: &str) {
    assert_eq!(r["timeout"], 0, "{what}: the put timed out");
    assert_eq!(
        r["takeovers"], 0,
        "{what}: a lock was taken from a live holder"
    );
    // The holder had held it since before the writer started, for 1.5 s.
    assert!(
        r["ms"] >= 500,
        "{what}: the writer did not wait for the live holder ({} ms)",
        r["ms"]
    );
}

#[test]
fn a_live_holder_inside_a_pid_namespace_keeps_its_bucket_lock() {
    let seg = Seg::new("ns-hold-in");
    let c = Cache::open(seg.name(), 1 << 20).unwrap();
    let r = holder_vs_writer(&seg, Worker::spawn_in_pidns, Worker::spawn);
    assert_waited(&r, "holder inside, writer outside");
    assert_eq!(
        c.get("contended").unwrap().as_deref(),
        Some(&b"from-put-timed"[..])
    );
    assert_eq!(c.stats().lock_takeovers, 0);
}

#[test]
fn a_live_holder_outside_keeps_its_bucket_lock_from_a_writer_inside() {
    let seg = Seg::new("ns-hold-out");
    let c = Cache::open(seg.name(), 1 << 20).unwrap();
    let r = holder_vs_writer(&seg, Worker::spawn, Worker::spawn_in_pidns);
    assert_waited(&r, "holder outside, writer inside");
    assert_eq!(c.stats().lock_takeovers, 0);
}

#[test]
fn a_dead_holder_inside_a_namespace_loses_its_lock_at_once() {
    let seg = Seg::new("ns-dead");
    let c = Cache::open(seg.name(), 1 << 20).unwrap();
    let marker = TempPath::new("held");
    let mut holder = Worker::spawn_in_pidns(
        "hold-lock",
        &wargs!("seg" => seg.name(), "cap" => 1 << 20, "key" => "k",
                "ms" => 60_000, "marker" => marker.0.display()),
    );
    poll_until(
        Duration::from_secs(20),
        "the holder to take the lock",
        || marker.0.exists(),
    );
    holder.kill_inner();
    let t = Instant::now();
    c.put("k", "v").unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "a dead holder's lock took {:?} to reclaim",
        t.elapsed()
    );
    assert_eq!(c.stats().lock_takeovers, 1);
}

#[test]
fn get_or_set_leader_inside_a_namespace_runs_the_factory_once() {
    let seg = Seg::new("ns-gos");
    let c = Cache::open(seg.name(), 4 << 20).unwrap();
    let args = |id: usize| {
        wargs!("seg" => seg.name(), "cap" => 4 << 20, "key" => "report", "go" => "go",
               "sleep_ms" => 1500, "id" => id)
        .to_vec()
    };
    // The leader starts first, inside a namespace; the waiters outside (and
    // one more inside) arrive while its factory runs.
    let mut leader = Worker::spawn_in_pidns("gos", &args(0));
    c.put("go", "1").unwrap();
    poll_until(Duration::from_secs(20), "a leader", || {
        c.get("leader:1").unwrap().is_some()
    });
    let mut waiters: Vec<Worker> = (1..4).map(|id| Worker::spawn("gos", &args(id))).collect();
    waiters.push(Worker::spawn_in_pidns("gos", &args(4)));
    let mut values = vec![leader.success(Duration::from_secs(30))];
    for w in &mut waiters {
        values.push(w.success(Duration::from_secs(30)));
    }
    assert_eq!(counter(&c, "runs"), 1, "the factory ran more than once");
    assert!(
        values.iter().all(|v| v == &values[0]),
        "callers got different values: {values:?}"
    );
    assert_eq!(c.stats().lease_takeovers, 0);
}

/// SIGKILL storm: writers in three PID namespaces beside writers outside,
/// namespaced ones killed at random. No stall over 1 s for the survivors,
/// no corrupt read, no error; afterwards every bucket takes a put.
#[test]
fn sigkill_storm_across_pid_namespaces() {
    let data = Seg::new("ns-storm");
    let ctl = Seg::new("ns-storm-ctl");
    let cap: u64 = 2 << 20;
    let c = Cache::open(data.name(), cap).unwrap();
    let control = Cache::open(ctl.name(), 1 << 20).unwrap();
    let args = |id: usize| {
        let mut a = wargs!("seg" => data.name(), "cap" => cap, "ctl" => ctl.name(),
                           "id" => id, "keys" => 256, "maxlen" => 2000)
        .to_vec();
        if id % 2 == 1 {
            a.push("reader=1".into());
        }
        a
    };
    // Workers 0 and 1 run outside and are never killed; 2..5 run in
    // namespaces and are killed and restarted.
    const N: usize = 5;
    let spawn = |id: usize| {
        if id < 2 {
            Worker::spawn("stress", &args(id))
        } else {
            Worker::spawn_in_pidns("stress", &args(id))
        }
    };
    let mut workers: Vec<Worker> = (0..N).map(spawn).collect();
    let hb = |id: usize| counter(&control, &format!("hb:{id}"));
    let mut rng = Rng::new();
    let mut last: Vec<(i64, Instant)> = (0..N).map(|_| (0, Instant::now())).collect();
    let start = Instant::now();
    let mut kills = 0;
    // Let everyone attach and start before judging progress.
    poll_until(Duration::from_secs(20), "every worker started", || {
        (0..N).all(|id| hb(id) > 0)
    });
    for (id, l) in last.iter_mut().enumerate() {
        *l = (hb(id), Instant::now());
    }
    while start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(rng.u64(5..=40)));
        let victim = 2 + rng.u64(..(N - 2) as u64) as usize;
        for w in &mut workers {
            if let Some(st) = w.child.try_wait().unwrap() {
                panic!("worker `{}` exited by itself: {st}", w.what);
            }
        }
        workers[victim].kill_inner();
        kills += 1;
        workers[victim] = spawn(victim);
        for (id, l) in last.iter_mut().enumerate().take(2) {
            let n = hb(id);
            if n > l.0 {
                *l = (n, Instant::now());
            } else {
                assert!(
                    l.1.elapsed() < Duration::from_secs(1),
                    "surviving worker {id} made no progress for 1 s beside namespaced writers"
                );
            }
        }
        assert_eq!(counter(&control, "corrupt"), 0, "a corrupt read");
        assert_eq!(counter(&control, "errors"), 0, "an operation failed");
    }
    control.put("stop", "1").unwrap();
    for w in &mut workers {
        let r = parse_result(&w.success(Duration::from_secs(20)));
        assert_eq!(r["corrupt"], 0);
        assert_eq!(r["errors"], 0);
    }
    // Reports of killed workers too.
    assert_eq!(counter(&control, "corrupt"), 0, "a corrupt read");
    assert_eq!(counter(&control, "errors"), 0, "an operation failed");
    // Every bucket's lock is free or reclaimable: a put into every bucket.
    let c2 = c.clone();
    with_deadline(
        Duration::from_secs(20),
        "a put after the storm",
        move || {
            for i in 0..2000 {
                c2.put(format!("after:{i}"), "v").unwrap();
            }
        },
    );
    eprintln!(
        "namespace storm: {kills} kills; lock takeovers (from dead holders) {}",
        c.stats().lock_takeovers
    );
}
