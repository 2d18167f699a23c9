//! Crash safety: workers are SIGKILLed at random instants (every 1-20 ms)
//! and restarted while others keep reading and writing. Nobody may see a
//! corrupt value, the survivors must keep making progress, and afterwards
//! the whole capacity and every bucket of the index must be usable again.

mod common;

use std::time::{Duration, Instant};

use common::*;
use memshelf::Cache;
use memshelf_tests::header;

const DATA_CAP: u64 = 2 << 20;
const WORKERS: usize = 6;
/// Workers `0..PROTECTED` are never killed: their heartbeats must advance.
const PROTECTED: usize = 2;

fn spawn(data: &Seg, ctl: &Seg, id: usize) -> Worker {
    // Odd ids mostly read, even ids mostly write.
    let mut a = wargs!("seg" => data.name(), "cap" => DATA_CAP, "ctl" => ctl.name(),
                       "id" => id, "keys" => 256, "maxlen" => 3000)
    .to_vec();
    if id % 2 == 1 {
        a.push("reader=1".into());
    }
    Worker::spawn("stress", &a)
}

/// Puts one key into every bucket of the index (keys chosen with the
/// segment's hash seed) and reads each back.
fn put_into_every_bucket(c: &Cache, name: &str, tag: &str) -> usize {
    let hdr = read_header(&shm_path(name));
    let seed = header::word(&hdr, header::HASH_SEED);
    let nbuckets = header::word(&hdr, header::NBUCKETS);
    let mut done = vec![false; nbuckets as usize];
    let mut left = nbuckets;
    let mut i = 0u64;
    let mut rng = Rng::with_seed(7);
    while left > 0 {
        let key = format!("{tag}:{i}");
        i += 1;
        let b = header::bucket_of(
            xxhash_rust::xxh3::xxh3_64_with_seed(key.as_bytes(), seed),
            nbuckets,
        ) as usize;
        if done[b] {
            continue;
        }
        done[b] = true;
        left -= 1;
        let v = make_value(key.as_bytes(), i, 8, &mut rng);
        c.put(&key, &v)
            .unwrap_or_else(|e| panic!("put into bucket {b}: {e}"));
        assert_eq!(c.get(&key).unwrap().as_deref(), Some(&v[..]), "bucket {b}");
    }
    nbuckets as usize
}

#[test]
fn sigkill_storm_blocks_no_one_corrupts_nothing_and_loses_no_space() {
    let data = Seg::new("kill");
    let ctl = Seg::new("kill-ctl");
    let c = Cache::open(data.name(), DATA_CAP).unwrap();
    let control = Cache::open(ctl.name(), 1 << 20).unwrap();
    let mut workers: Vec<Worker> = (0..WORKERS).map(|id| spawn(&data, &ctl, id)).collect();
    let mut rng = Rng::new();
    let hb = |id: usize| counter(&control, &format!("hb:{id}"));

    let start = Instant::now();
    let mut last: Vec<(i64, Instant)> = (0..WORKERS).map(|_| (0, Instant::now())).collect();
    let mut advanced = vec![false; WORKERS];
    let mut kills = 0;
    while start.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(rng.u64(1..=20)));
        let victim = PROTECTED + rng.u64(..(WORKERS - PROTECTED) as u64) as usize;
        // A worker exits only when told to stop: one that exited by itself
        // (a corrupt read, an error, a panic, a crash) fails the test.
        for w in &mut workers {
            if let Some(st) = w.child.try_wait().unwrap() {
                panic!("worker `{}` exited by itself: {st}", w.what);
            }
        }
        workers[victim].kill();
        kills += 1;
        workers[victim] = spawn(&data, &ctl, victim);
        for (id, l) in last.iter_mut().enumerate() {
            let n = hb(id);
            if n > l.0 {
                *l = (n, Instant::now());
                advanced[id] = true;
            } else if id < PROTECTED {
                assert!(
                    l.1.elapsed() < Duration::from_secs(5),
                    "surviving worker {id} made no progress for 5 s (blocked by a killed one?)"
                );
            }
        }
        assert_eq!(
            counter(&control, "corrupt"),
            0,
            "a worker read a corrupt value"
        );
        assert_eq!(counter(&control, "errors"), 0, "an operation failed");
    }
    for id in 0..PROTECTED {
        let before = hb(id);
        poll_until(
            Duration::from_secs(10),
            &format!("worker {id} heartbeat"),
            || hb(id) > before,
        );
    }
    assert!(
        advanced.iter().all(|a| *a),
        "some worker slot never made progress: {advanced:?}"
    );
    assert!(kills > 50, "only {kills} kills in the storm");

    // Stop everyone; each must exit cleanly on its own.
    control.put("stop", "1").unwrap();
    for w in &mut workers {
        let r = parse_result(&w.success(Duration::from_secs(20)));
        assert_eq!(r["corrupt"], 0);
        assert_eq!(r["errors"], 0);
    }
    assert_eq!(counter(&control, "corrupt"), 0);
    assert_eq!(counter(&control, "errors"), 0);

    let s = c.stats();
    assert!(s.used_bytes <= s.data_bytes, "{s:?}");
    assert!(s.entries <= s.index_slots, "{s:?}");
    assert_eq!(s.capacity_bytes, DATA_CAP);
    let file_len = std::fs::metadata(shm_path(data.name())).unwrap().len();
    assert_eq!(file_len, DATA_CAP, "segment file grew or shrank");

    // Locks left held by killed workers are taken over: a put into every
    // bucket succeeds (bounded: a hang fails).
    let name = data.name().to_owned();
    let c2 = c.clone();
    let n = with_deadline(
        Duration::from_secs(20),
        "put into every bucket",
        move || put_into_every_bucket(&c2, &name, "after-kill"),
    );

    // The whole capacity is usable again: after a clear, fresh keys filling
    // 80 % of the data bytes are (almost) all still there.
    c.clear().unwrap();
    let c2 = c.clone();
    let (written, present) = with_deadline(Duration::from_secs(20), "refill", move || {
        let mut rng = Rng::with_seed(3);
        let budget = s.data_bytes * 8 / 10;
        let mut bytes = 0;
        let mut keys = Vec::new();
        while bytes < budget {
            let key = format!("fresh:{}", keys.len());
            let v = make_value(key.as_bytes(), 1, 400, &mut rng);
            bytes += (v.len() + key.len() + 64) as u64;
            c2.put(&key, &v).unwrap();
            keys.push(key);
        }
        let present = keys
            .iter()
            .filter(|k| {
                c2.get(k.as_str())
                    .unwrap()
                    .map(|v| check_value(k.as_bytes(), &v).unwrap())
                    .is_some()
            })
            .count();
        (keys.len(), present)
    });
    assert!(
        present * 100 >= written * 90,
        "only {present} of {written} fresh keys (80 % of the capacity) readable: space was lost"
    );
    let s2 = c.stats();
    assert!(s2.used_bytes <= s2.data_bytes, "{s2:?}");
    eprintln!(
        "kill storm: {kills} kills, {n} buckets, {present}/{written} fresh keys; takeovers {}; {s2:?}",
        s2.lock_takeovers
    );
}

/// Bucket locks held by a dead process are taken over (deterministic: the
/// lock word of every bucket is set to a dead process's token by hand).
#[test]
fn bucket_locks_of_a_dead_holder_are_taken_over_in_every_bucket() {
    let data = Seg::new("deadlock");
    let c = Cache::open(data.name(), 256 << 10).unwrap();
    // A real handle in another process, then dead: its registry token is
    // what a holder killed inside a critical section leaves in a lock word.
    let mut w = Worker::spawn("token", &wargs!("seg" => data.name(), "cap" => 256 << 10));
    let token: u64 = {
        use std::io::BufRead as _;
        let mut line = String::new();
        std::io::BufReader::new(w.child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim()
            .strip_prefix("TOKEN ")
            .unwrap_or_else(|| panic!("no token in {line:?}"))
            .parse()
            .unwrap()
    };
    w.kill();
    let path = shm_path(data.name());
    let hdr = read_header(&path);
    let index = header::word(&hdr, header::INDEX_OFF);
    let nbuckets = header::word(&hdr, header::NBUCKETS);
    for b in 0..nbuckets {
        write_at(&path, index + b * header::BUCKET_SIZE, &token.to_le_bytes());
    }
    let name = data.name().to_owned();
    let c2 = c.clone();
    with_deadline(
        Duration::from_secs(20),
        "put into every locked bucket",
        move || put_into_every_bucket(&c2, &name, "locked"),
    );
    let s = c.stats();
    assert!(s.lock_takeovers >= nbuckets, "{s:?}");
    // And delete/incr take the locks as well.
    assert!(c.delete("locked:0").is_ok());
    assert_eq!(c.incr("n", 5).unwrap(), 5);
}

/// Tag invalidations hold while the processes invalidating tags around
/// them are SIGKILLed at any instruction (one of them in its own PID
/// namespace): a killed invalidator leaves at worst a line's floor raised
/// or a clock value unused (`core/src/tags.rs`), never a lost record. This
/// process and every worker each put an entry under a fresh tag, invalidate
/// the tag and check the entry is gone, while the others overflow the 64
/// lines of a 1 MiB segment's tag table.
#[test]
fn tag_invalidations_hold_while_invalidators_are_killed() {
    let data = Seg::new("kill-tags");
    let c = Cache::open(data.name(), 1 << 20).unwrap();
    let spawn = |id: usize| {
        let a = wargs!("seg" => data.name(), "id" => id, "noise" => 4).to_vec();
        if id == 0 {
            Worker::spawn_in_pidns("tags", &a)
        } else {
            Worker::spawn("tags", &a)
        }
    };
    let mut workers: Vec<Worker> = (0..3).map(spawn).collect();
    let mut rng = Rng::new();
    let start = Instant::now();
    let (mut kills, mut checked) = (0, 0u64);
    while start.elapsed() < Duration::from_secs(3) {
        for _ in 0..rng.u64(10..=200) {
            let t = format!("parent:{checked}");
            let one = [t.as_bytes()];
            c.put_with(&t, b"v", &memshelf::PutOptions::default().with_tags(&one))
                .unwrap();
            c.invalidate_tag(&t).unwrap();
            assert!(
                !c.contains(&t).unwrap(),
                "{t} readable after invalidate_tag"
            );
            checked += 1;
        }
        for w in &mut workers {
            if let Some(st) = w.child.try_wait().unwrap() {
                panic!("worker `{}` exited by itself: {st}", w.what);
            }
        }
        let victim = rng.u64(..3) as usize;
        if victim == 0 {
            workers[0].kill_inner(); // pid 1 of its namespace, from outside
        } else {
            workers[victim].kill();
        }
        kills += 1;
        workers[victim] = spawn(victim);
    }
    for w in &mut workers {
        w.kill();
    }
    assert!(kills > 20, "only {kills} kills");
    // The table still works: entries put now survive, a fresh invalidation
    // drops its entry.
    let tags: Vec<String> = (0..500).map(|i| format!("after:{i}")).collect();
    for t in &tags {
        let one = [t.as_bytes()];
        c.put_with(t, b"v", &memshelf::PutOptions::default().with_tags(&one))
            .unwrap();
    }
    c.invalidate_tag("after:0").unwrap();
    assert!(!c.contains("after:0").unwrap());
    let kept = tags[1..]
        .iter()
        .filter(|t| c.contains(t.as_str()).unwrap())
        .count();
    assert_eq!(kept, 499, "entries of tags nobody invalidated were dropped");
    eprintln!("tag kill storm: {kills} kills, {checked} invalidations checked here");
}
