//! Multi-process stress: processes do mixed put/get/add/delete/incr on
//! overlapping keys of a small segment (eviction constantly active), with
//! self-checking values of varied sizes, some with TTLs. No read may return
//! a value of another key, a wrong length, a bad checksum, or (for a key
//! only one process writes) anything but that key's latest version; counter
//! sums must be exact. The workers also incr shared keys holding values
//! (`NotAnInteger`, or an integer from then on: never another error).

mod common;

use std::time::Duration;

use common::*;
use memshelf::Cache;

const DATA_CAP: u64 = 128 << 10;

#[test]
fn mixed_ops_from_six_processes_never_corrupt_and_counters_are_exact() {
    let data = Seg::new("stress");
    let ctr = Seg::new("stress-ctr");
    let c = Cache::open(data.name(), DATA_CAP).unwrap();
    let counters = Cache::open(ctr.name(), 1 << 20).unwrap();
    let ncounters = 4;
    let mut workers: Vec<Worker> = (0..4)
        .map(|id| {
            Worker::spawn(
                "stress",
                &wargs!("seg" => data.name(), "cap" => DATA_CAP, "ctr" => ctr.name(),
                        "id" => id, "ops" => 15_000, "keys" => 64, "counters" => ncounters,
                        "incr_values" => 1),
            )
        })
        .collect();
    // Two mostly-reading processes whose counters live in the data segment
    // (where eviction may drop them: only their form is checked).
    workers.extend((4..6).map(|id| {
        Worker::spawn(
            "stress",
            &wargs!("seg" => data.name(), "cap" => DATA_CAP, "id" => id, "ops" => 15_000,
                    "keys" => 64, "reader" => 1, "incr_values" => 1),
        )
    }));
    let mut expected = vec![0i64; ncounters];
    let mut reads = 0;
    let mut hits = 0;
    for (id, w) in workers.iter_mut().enumerate() {
        let r = parse_result(&w.success(Duration::from_secs(50)));
        assert_eq!(r["corrupt"], 0, "worker {id}: {r:?}");
        assert_eq!(r["errors"], 0, "worker {id}: {r:?}");
        reads += r["reads"];
        hits += r["hits"];
        if id < 4 {
            for (j, e) in expected.iter_mut().enumerate() {
                *e += r[&format!("sum{j}")];
            }
        }
    }
    for (j, e) in expected.iter().enumerate() {
        assert!(*e > 0);
        assert_eq!(counter(&counters, &format!("c:{j}")), *e, "counter c:{j}");
    }
    let s = c.stats();
    assert!(s.evictions > 0, "eviction never ran: {s:?}");
    assert!(hits > 0 && hits < reads, "reads {reads}, hits {hits}");
    assert!(s.used_bytes <= s.data_bytes, "{s:?}");
    assert_eq!(s.capacity_bytes, DATA_CAP);
    // Whatever survived is intact.
    for k in 0..64 {
        let key = format!("k:{k}");
        if let Some(v) = c.get(&key).unwrap()
            && !is_int(&v)
        {
            check_value(key.as_bytes(), &v).unwrap();
        }
    }
    for j in 0..ncounters {
        if let Some(v) = c.get(format!("dc:{j}")).unwrap() {
            let n: i64 = String::from_utf8(v).unwrap().parse().unwrap();
            assert!(n > 0);
        }
    }
    eprintln!("stress: {reads} reads, {hits} hits; {s:?}");
}

#[test]
fn threads_of_one_process_share_a_handle_without_corruption() {
    let data = Seg::new("threads");
    let ctr = Seg::new("threads-ctr");
    let c = Cache::open(data.name(), DATA_CAP).unwrap();
    // A segment the counter alone lives in (never evicted): exact.
    let counters = Cache::open(ctr.name(), 1 << 20).unwrap();
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let c = c.clone();
            let counters = counters.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::with_seed(t + 1);
                let mut adds = 0i64;
                for i in 0..5_000u64 {
                    let key = format!("k:{}", rng.u64(..32));
                    match rng.u64(..10) {
                        0..=3 => {
                            if let Some(v) = c.get(&key).unwrap() {
                                check_value(key.as_bytes(), &v).unwrap();
                            }
                        }
                        4..=6 => {
                            let len = rng.u64(..3000) as usize;
                            c.put(&key, make_value(key.as_bytes(), i, len, &mut rng))
                                .unwrap();
                        }
                        7 => {
                            c.delete(&key).unwrap();
                        }
                        _ => {
                            c.incr("shared-counter", 2).unwrap();
                            counters.incr("exact-counter", 2).unwrap();
                            adds += 2;
                        }
                    }
                }
                adds
            })
        })
        .collect();
    let total: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    // The counter is hot (hit by every thread), yet it may have been evicted
    // in a 128 KiB segment: it can never exceed the sum.
    let n = counter(&c, "shared-counter");
    assert!(n <= total, "counter {n} > {total}");
    assert_eq!(
        counter(&counters, "exact-counter"),
        total,
        "increments lost or doubled"
    );
}
