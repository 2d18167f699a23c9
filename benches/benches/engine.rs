//! Criterion benchmarks of the engine against in-process maps, in one run:
//! `cargo bench -p memshelf-benches --bench engine`.
//!
//! 100 k keys of 16 bytes, 100-byte values, uniform random access; get hit,
//! get miss, put (overwrite), 90/10 get/put; 1 and 2 threads. Peers:
//! `moka::sync::Cache` (the goal: memshelf get faster than moka get),
//! `RwLock<HashMap>` and `Mutex<HashMap>`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

const KEYS: usize = 100_000;

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS).map(memshelf_benches::bench_key).collect() // 16 bytes
}

/// A reproducible random key order, shared by every target.
fn order() -> Vec<u32> {
    memshelf_benches::key_order(KEYS, 1 << 16)
}

trait Target: Send + Sync {
    fn get(&self, k: &[u8], buf: &mut Vec<u8>) -> bool;
    fn put(&self, k: &[u8], v: &[u8]);
}

struct Shelf(memshelf::Cache);
impl Target for Shelf {
    fn get(&self, k: &[u8], buf: &mut Vec<u8>) -> bool {
        self.0.get_into(k, buf).unwrap()
    }
    fn put(&self, k: &[u8], v: &[u8]) {
        self.0.put(k, v).unwrap()
    }
}
/// memshelf's allocating `get` (returns an owned `Vec`).
struct ShelfAlloc(memshelf::Cache);
impl Target for ShelfAlloc {
    fn get(&self, k: &[u8], _: &mut Vec<u8>) -> bool {
        black_box(self.0.get(k).unwrap()).is_some()
    }
    fn put(&self, k: &[u8], v: &[u8]) {
        self.0.put(k, v).unwrap()
    }
}
struct Moka(moka::sync::Cache<Vec<u8>, Arc<[u8]>>);
impl Target for Moka {
    fn get(&self, k: &[u8], _: &mut Vec<u8>) -> bool {
        black_box(self.0.get(k)).is_some()
    }
    fn put(&self, k: &[u8], v: &[u8]) {
        self.0.insert(k.to_vec(), Arc::from(v))
    }
}
struct RwMap(RwLock<HashMap<Vec<u8>, Arc<[u8]>>>);
impl Target for RwMap {
    fn get(&self, k: &[u8], _: &mut Vec<u8>) -> bool {
        black_box(self.0.read().unwrap().get(k).cloned()).is_some()
    }
    fn put(&self, k: &[u8], v: &[u8]) {
        self.0.write().unwrap().insert(k.to_vec(), Arc::from(v));
    }
}
struct MutexMap(Mutex<HashMap<Vec<u8>, Arc<[u8]>>>);
impl Target for MutexMap {
    fn get(&self, k: &[u8], _: &mut Vec<u8>) -> bool {
        black_box(self.0.lock().unwrap().get(k).cloned()).is_some()
    }
    fn put(&self, k: &[u8], v: &[u8]) {
        self.0.lock().unwrap().insert(k.to_vec(), Arc::from(v));
    }
}

fn targets(name: &str) -> Vec<(&'static str, Arc<dyn Target>)> {
    let cache = memshelf::Cache::open(name, 256 << 20).unwrap();
    vec![
        (
            "memshelf get_into",
            Arc::new(Shelf(cache.clone())) as Arc<dyn Target>,
        ),
        ("memshelf get", Arc::new(ShelfAlloc(cache))),
        (
            "moka",
            Arc::new(Moka(moka::sync::Cache::new(2 * KEYS as u64))),
        ),
        (
            "RwLock<HashMap>",
            Arc::new(RwMap(RwLock::new(HashMap::new()))),
        ),
        (
            "Mutex<HashMap>",
            Arc::new(MutexMap(Mutex::new(HashMap::new()))),
        ),
    ]
}

#[derive(Clone, Copy)]
enum Op {
    GetHit,
    GetMiss,
    Put,
    Mix,
}

/// Runs `iters` ops split over `threads` threads; returns the wall time.
fn run(
    t: &Arc<dyn Target>,
    op: Op,
    threads: usize,
    iters: u64,
    keys: &Arc<Vec<Vec<u8>>>,
    ord: &Arc<Vec<u32>>,
) -> Duration {
    let per = iters / threads as u64 + 1;
    let start = Instant::now();
    std::thread::scope(|s| {
        for th in 0..threads {
            let (t, keys, ord) = (t.clone(), keys.clone(), ord.clone());
            s.spawn(move || {
                let value = [0x42u8; 100];
                let mut buf = Vec::with_capacity(128);
                let miss = b"absent:000000000".to_vec();
                let mut j = th * 7919;
                for i in 0..per {
                    j = (j + 1) & (ord.len() - 1);
                    let k = &keys[ord[j] as usize];
                    match op {
                        Op::GetHit => assert!(t.get(k, &mut buf)),
                        Op::GetMiss => assert!(!t.get(&miss, &mut buf)),
                        Op::Put => t.put(k, &value),
                        Op::Mix if i % 10 == 0 => t.put(k, &value),
                        Op::Mix => {
                            black_box(t.get(k, &mut buf));
                        }
                    }
                }
            });
        }
    });
    start
        .elapsed()
        .mul_f64(iters as f64 / (per * threads as u64) as f64)
}

fn bench(c: &mut Criterion) {
    let name = format!("bench-engine-{}", std::process::id());
    let keys = Arc::new(keys());
    let ord = Arc::new(order());
    let value = [0x42u8; 100];
    let all = targets(&name);
    for (_, t) in &all {
        for k in keys.iter() {
            t.put(k, &value);
        }
    }
    for (op, opname) in [
        (Op::GetHit, "get hit"),
        (Op::GetMiss, "get miss"),
        (Op::Put, "put"),
        (Op::Mix, "90% get / 10% put"),
    ] {
        for threads in [1usize, 2] {
            let mut g = c.benchmark_group(format!(
                "{opname}, {threads} thread{}",
                if threads > 1 { "s" } else { "" }
            ));
            g.sample_size(20)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(2));
            for (tname, t) in &all {
                if matches!(op, Op::Put | Op::Mix) && *tname == "memshelf get" {
                    continue; // same writes as get_into
                }
                g.bench_function(*tname, |b| {
                    b.iter_custom(|iters| run(t, op, threads, iters, &keys, &ord))
                });
            }
            g.finish();
        }
    }
    memshelf::unlink(&name).unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
