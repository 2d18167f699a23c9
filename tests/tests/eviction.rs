//! Eviction under a skewed workload far past capacity: memory stays
//! bounded, hot keys survive, no operation fails.

mod common;

use common::*;
use memshelf::Cache;

const CAP: u64 = 512 << 10;
const KEYS: usize = 10_000;

/// Zipf(1.0) over `n` ranks by inverse CDF.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|r| {
                acc += 1.0 / (r as f64).powf(s);
                acc
            })
            .collect();
        for x in &mut cdf {
            *x /= acc;
        }
        Zipf(cdf)
    }
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = (rng.u64(..) >> 11) as f64 / (1u64 << 53) as f64;
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
    }
}

#[test]
fn twenty_times_the_capacity_of_skewed_traffic_keeps_memory_bounded_and_hot_keys() {
    let seg = Seg::new("evict");
    let c = Cache::open(seg.name(), CAP).unwrap();
    let zipf = Zipf::new(KEYS, 1.0);
    let mut rng = Rng::with_seed(42);
    let (mut hot, mut hot_hits, mut cold, mut cold_hits) = (0u64, 0u64, 0u64, 0u64);
    let mut written = 0u64;
    let mut ops = 0u64;
    while written < 20 * CAP {
        ops += 1;
        let r = zipf.sample(&mut rng);
        let key = format!("key:{r}");
        let hit = match c.get(&key).unwrap() {
            Some(v) => {
                check_value(key.as_bytes(), &v).unwrap();
                true
            }
            None => {
                let v = make_value(key.as_bytes(), ops, rng.u64(200..=600) as usize, &mut rng);
                written += v.len() as u64;
                c.put(&key, &v).unwrap();
                false
            }
        };
        if r < 20 {
            hot += 1;
            hot_hits += hit as u64;
        } else if r >= 2_000 {
            cold += 1;
            cold_hits += hit as u64;
        }
        if ops.is_multiple_of(5_000) {
            let s = c.stats();
            assert!(
                s.used_bytes <= s.data_bytes,
                "used {} > data {}",
                s.used_bytes,
                s.data_bytes
            );
            assert!(s.data_bytes < CAP && s.entries <= s.index_slots, "{s:?}");
        }
    }
    let s = c.stats();
    let file_len = std::fs::metadata(shm_path(seg.name())).unwrap().len();
    assert_eq!(file_len, CAP, "the segment file must keep its size");
    assert_eq!(s.capacity_bytes, CAP);
    assert!(s.evictions > 1_000, "{s:?}");
    let hot_ratio = hot_hits as f64 / hot as f64;
    let cold_ratio = cold_hits as f64 / cold.max(1) as f64;
    eprintln!(
        "eviction: {ops} ops, {written} bytes written; hot hit ratio {hot_ratio:.3} ({hot}), cold {cold_ratio:.3} ({cold}); {s:?}"
    );
    assert!(
        hot_ratio > 0.95,
        "hot keys were evicted: hit ratio {hot_ratio:.3}"
    );
    assert!(
        hot_ratio > 3.0 * cold_ratio,
        "hot {hot_ratio:.3} not far above cold {cold_ratio:.3}"
    );
    // Most of the hottest keys are present at the end (one may be between
    // an eviction and its refill).
    let present = (0..10)
        .filter(|r| c.contains(format!("key:{r}")).unwrap())
        .count();
    assert!(
        present >= 7,
        "only {present} of the 10 hottest keys present"
    );
}
