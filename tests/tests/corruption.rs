//! A corrupt or hostile segment: random bytes written over a live segment
//! (the whole file, the index only, the logs only) while processes read
//! and write it. No crash, no hang, no panic: errors only as `Err`, and no
//! value that was not written for its key.

mod common;

use std::time::Duration;

use common::*;
use memshelf::{Cache, Error};
use memshelf_tests::header;

const CAP: u64 = 1 << 20;

#[derive(Clone, Copy, Debug)]
enum Target {
    WholeFile,
    Index,
    Logs,
    /// The log cursors (head and tail words of both logs), over and over.
    Cursors,
}

fn corrupt_while_in_use(target: Target) {
    let seg = Seg::new("corrupt");
    let c = Cache::open(seg.name(), CAP).unwrap();
    let mut rng = Rng::new();
    for i in 0..1500 {
        let k = format!("k:{}", i % 500);
        c.put(
            &k,
            make_value(k.as_bytes(), i, rng.u64(..1500) as usize, &mut rng),
        )
        .unwrap();
    }
    let path = shm_path(seg.name());
    let hdr = read_header(&path);
    let (from, to) = match target {
        Target::WholeFile => (0, CAP),
        Target::Index => (
            header::word(&hdr, header::INDEX_OFF),
            header::word(&hdr, header::SMALL_OFF),
        ),
        Target::Logs => (header::word(&hdr, header::SMALL_OFF), CAP),
        Target::Cursors => (320, 576),
    };
    assert!(from < to && to <= CAP);
    let markers: Vec<TempPath> = (0..2).map(|_| TempPath::new("chaos-ready")).collect();
    let mut ws: Vec<Worker> = markers
        .iter()
        .map(|m| {
            Worker::spawn(
                "chaos",
                &wargs!("seg" => seg.name(), "cap" => CAP, "ms" => 1500, "threads" => 2,
                        "marker" => m.0.display()),
            )
        })
        .collect();
    poll_until(Duration::from_secs(20), "workers attached", || {
        markers.iter().all(|m| m.0.exists())
    });
    if let Target::Cursors = target {
        // small_head 320, small_tail 384, main_head 448, main_tail 512.
        let end = std::time::Instant::now() + Duration::from_millis(1200);
        while std::time::Instant::now() < end {
            // Mostly the heads: a head moved back under a writer is the
            // hardest case.
            let off = [320, 448, 320, 448, 384, 512][rng.u64(..6) as usize];
            write_at(&path, off, &rng.u64(..).to_le_bytes());
            std::thread::sleep(Duration::from_millis(rng.u64(1..=30)));
        }
    }
    // Several rounds: whole-range overwrites and scattered small ones.
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(100));
        if round % 2 == 0 {
            write_at(&path, from, &random_bytes(&mut rng, (to - from) as usize));
        } else {
            for _ in 0..200 {
                let off = rng.u64(from..=to - 64);
                let n = rng.u64(1..=64) as usize;
                write_at(&path, off, &random_bytes(&mut rng, n));
            }
        }
    }
    for w in &mut ws {
        let r = parse_result(&w.success(Duration::from_secs(20)));
        assert_eq!(r["corrupt"], 0, "{target:?}: {r:?}");
        assert!(r["ops"] > 0);
    }
    // This process (attached before) survives too, and a fresh attach gets
    // a clear answer.
    let c2 = c.clone();
    with_deadline(Duration::from_secs(20), "ops after corruption", move || {
        let mut rng = Rng::with_seed(5);
        for i in 0..300 {
            let k = format!("after:{i}");
            let _ = c2.put(&k, make_value(k.as_bytes(), i, 100, &mut rng));
            if let Ok(Some(v)) = c2.get(&k) {
                check_value(k.as_bytes(), &v).unwrap();
            }
            let _ = c2.incr("n", 1);
            let _ = c2.delete(format!("k:{i}"));
        }
        let _ = c2.stats();
        let _ = c2.keys(None).count();
    });
    match (target, Cache::open(seg.name(), CAP)) {
        (Target::WholeFile, Err(Error::IncompatibleSegment { .. })) => {}
        (Target::WholeFile, other) => panic!("a random header was accepted: {other:?}"),
        (Target::Cursors, Ok(_)) => {}
        (_, Ok(fresh)) => {
            // The header is intact: the segment is usable again once the
            // junk is written over.
            let mut rng = Rng::with_seed(9);
            let mut ok = 0;
            for i in 0..200 {
                let k = format!("fresh:{i}");
                let v = make_value(k.as_bytes(), i, 100, &mut rng);
                if fresh.put(&k, &v).is_ok()
                    && fresh.get(&k).ok().flatten().as_deref() == Some(&v[..])
                {
                    ok += 1;
                }
            }
            assert!(ok >= 190, "{target:?}: only {ok} of 200 fresh keys usable");
            // And after a clear every write succeeds.
            with_deadline(Duration::from_secs(20), "puts after a clear", move || {
                fresh.clear().unwrap();
                for i in 0..2000 {
                    fresh.put(format!("after-clear:{i}"), b"v").unwrap();
                }
                assert!(fresh.get("after-clear:1999").unwrap().is_some());
            });
        }
        (_, Err(e)) => panic!("{target:?}: attach failed: {e}"),
    }
}

#[test]
fn random_bytes_over_the_whole_live_segment() {
    corrupt_while_in_use(Target::WholeFile);
}

#[test]
fn random_bytes_over_the_index_only() {
    corrupt_while_in_use(Target::Index);
}

#[test]
fn random_bytes_over_the_logs_only() {
    corrupt_while_in_use(Target::Logs);
}

#[test]
fn random_log_cursors_under_writers() {
    corrupt_while_in_use(Target::Cursors);
}
