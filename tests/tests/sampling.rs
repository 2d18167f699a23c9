//! Sampled latency histograms and hot keys (SPEC 5): segment-wide, cheap
//! (one op in 64 per thread), and right about which keys are hot.

mod common;

use common::*;
use memshelf::Cache;

#[test]
fn latency_histograms_count_sampled_gets_and_puts() {
    let seg = Seg::new("hist");
    let c = Cache::open(seg.name(), 4 << 20).unwrap();
    for i in 0..6400 {
        c.put(format!("k{i}"), "v").unwrap();
    }
    for i in 0..64_000 {
        c.get(format!("k{}", i % 6400)).unwrap();
    }
    let s = c.stats();
    let (g, p) = (s.get_latency.count(), s.put_latency.count());
    assert!((900..=1100).contains(&g), "sampled gets: {g}");
    assert!((90..=110).contains(&p), "sampled puts: {p}");
    let p50 = s.get_latency.quantile(0.5).unwrap();
    let p99 = s.get_latency.quantile(0.99).unwrap();
    assert!(
        p50 <= p99 && p99 < std::time::Duration::from_secs(1),
        "{p50:?} {p99:?}"
    );
    // Another handle (another process would see the same) reads the same
    // histogram: it lives in the segment.
    let other = Cache::open(seg.name(), 4 << 20).unwrap();
    assert_eq!(other.stats().get_latency, s.get_latency);
    // Sampling off: nothing more is recorded by this handle.
    c.set_sampling(false);
    for i in 0..6400 {
        c.get(format!("k{i}")).unwrap();
    }
    assert_eq!(c.stats().get_latency.count(), g);
}

/// A loop alternating put and get samples both (one shared countdown of 64
/// sampled only the puts).
#[test]
fn an_alternating_workload_samples_both_kinds() {
    let seg = Seg::new("hist-alt");
    let c = Cache::open(seg.name(), 4 << 20).unwrap();
    for i in 0..6400 {
        let k = format!("k{i}");
        c.put(&k, "v").unwrap();
        c.get(&k).unwrap();
    }
    let s = c.stats();
    let (g, p) = (s.get_latency.count(), s.put_latency.count());
    assert!((60..=150).contains(&g), "sampled gets: {g}");
    assert!((60..=150).contains(&p), "sampled puts: {p}");
}

#[test]
fn hot_keys_finds_the_skew() {
    let seg = Seg::new("hot");
    let c = Cache::open(seg.name(), 8 << 20).unwrap();
    for i in 0..1000 {
        c.put(format!("key:{i}"), "v").unwrap();
    }
    let mut rng = Rng::with_seed(5);
    // 50 % of the gets to key:7, 20 % to key:3, the rest spread.
    for _ in 0..200_000 {
        let r = rng.u64(..100);
        let k = if r < 50 {
            7
        } else if r < 70 {
            3
        } else {
            rng.u64(..1000)
        };
        c.get(format!("key:{k}")).unwrap();
    }
    let hot = c.hot_keys(2);
    assert_eq!(hot.len(), 2, "{hot:?}");
    assert_eq!(hot[0].0, b"key:7");
    assert_eq!(hot[1].0, b"key:3");
    assert!(hot[0].1 > hot[1].1);
    let share = c.stats().hot_key_share;
    assert!((0.35..=0.6).contains(&share), "hot-key share {share}");
    // A deleted key drops out of the answer.
    c.delete("key:7").unwrap();
    assert_ne!(c.hot_keys(1)[0].0, b"key:7");
}

/// Two hot keys whose hashes map to the same entry of the hot-key table
/// (256 entries, chosen with the segment's hash seed): both must be found.
/// With one candidate entry per hash the hotter key held the entry and the
/// other never appeared (the 1-in-256 flake of `hot_keys_finds_the_skew`,
/// seen in CI: its second key gave way to a random one).
#[test]
fn two_hot_keys_sharing_a_table_entry_are_both_found() {
    let seg = Seg::new("hot-collide");
    let c = Cache::open(seg.name(), 8 << 20).unwrap();
    let hdr = read_header(&shm_path(seg.name()));
    let seed = memshelf_tests::header::word(&hdr, memshelf_tests::header::HASH_SEED);
    let entry = |k: &str| (xxhash_rust::xxh3::xxh3_64_with_seed(k.as_bytes(), seed) >> 20) % 256;
    let a = "hot:a".to_string();
    let b = (0..)
        .map(|i| format!("hot:b{i}"))
        .find(|k| entry(k) == entry(&a))
        .unwrap();
    c.put(&a, "v").unwrap();
    c.put(&b, "v").unwrap();
    for i in 0..200 {
        c.put(format!("other:{i}"), "v").unwrap();
    }
    let mut rng = Rng::with_seed(9);
    for _ in 0..100_000 {
        let r = rng.u64(..100);
        let k = if r < 50 {
            a.clone()
        } else if r < 80 {
            b.clone()
        } else {
            format!("other:{}", rng.u64(..200))
        };
        c.get(&k).unwrap();
    }
    let hot: Vec<Vec<u8>> = c.hot_keys(2).into_iter().map(|(k, _)| k).collect();
    assert_eq!(hot, vec![a.into_bytes(), b.into_bytes()], "{hot:?}");
}
