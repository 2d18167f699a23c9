//! The issue-11 goal, in one run: memshelf `get_into` against a std
//! `HashMap` get + copy of the same keys (100 k keys of 16 bytes, 100-byte
//! values, uniform random order, all hits), with memshelf in 64 MiB,
//! 256 MiB and 1 GiB segments. One thread: the HashMap has no lock, so this
//! is the cost of the lookup and copy alone.
//!
//! `cargo bench -p memshelf-benches --bench hashmap`

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

const KEYS: usize = 100_000;

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("user:{i:011}").into_bytes())
        .collect()
}

fn order() -> Vec<u32> {
    memshelf_benches::key_order(KEYS, 1 << 16)
}

fn bench(c: &mut Criterion) {
    let keys = keys();
    let order = order();
    let value = [7u8; 100];
    let mut g = c.benchmark_group("get 100k keys: memshelf get_into vs HashMap get + copy");
    let map: HashMap<Vec<u8>, Vec<u8>> = keys.iter().map(|k| (k.clone(), value.to_vec())).collect();
    g.bench_function("HashMap get + copy", |b| {
        let mut buf = Vec::with_capacity(128);
        let mut i = 0;
        b.iter(|| {
            let k = &keys[order[i & 0xffff] as usize];
            i += 1;
            buf.clear();
            buf.extend_from_slice(map.get(k.as_slice()).expect("hit"));
            black_box(&buf);
        })
    });
    for (label, cap) in [
        ("64MiB", 64u64 << 20),
        ("256MiB", 256 << 20),
        ("1GiB", 1 << 30),
    ] {
        let name = format!("bench-hashmap-{}-{label}", std::process::id());
        let _ = memshelf::unlink(&name);
        let cache = memshelf::Cache::open(&name, cap).expect("open");
        for k in &keys {
            cache.put(k, value).unwrap();
        }
        g.bench_function(format!("memshelf get_into ({label})"), |b| {
            let mut buf = Vec::with_capacity(128);
            let mut i = 0;
            b.iter(|| {
                let k = &keys[order[i & 0xffff] as usize];
                i += 1;
                assert!(cache.get_into(k, &mut buf).unwrap());
                black_box(&buf);
            })
        });
        drop(cache);
        memshelf::unlink(&name).unwrap();
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
