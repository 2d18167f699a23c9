//! The issue-16 budget, in one run: a get hit with the engine's latency and
//! hot-key sampling on and off (`Cache::set_sampling`), same segment, same
//! keys, interleaved groups; cache-resident (1 k keys) where a per-op cost
//! shows most, and 100 k keys. Goal: at most 5 % apart.
//!
//! `cargo bench -p memshelf-benches --bench sampling`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    for n in [1_000usize, 100_000] {
        let keys: Vec<Vec<u8>> = (0..n).map(memshelf_benches::bench_key).collect();
        let order = memshelf_benches::key_order(n, 1 << 16);
        let name = format!("bench-sampling-{}-{n}", std::process::id());
        let _ = memshelf::unlink(&name);
        let cache = memshelf::Cache::open(&name, 256 << 20).expect("open");
        for k in &keys {
            cache.put(k, [7u8; 100]).unwrap();
        }
        let mut g = c.benchmark_group(format!("get hit, {n} keys: sampling on vs off"));
        for on in [true, false] {
            cache.set_sampling(on);
            g.bench_function(if on { "sampling on" } else { "sampling off" }, |b| {
                let mut buf = Vec::with_capacity(128);
                let mut i = 0;
                b.iter(|| {
                    let k = &keys[order[i & 0xffff] as usize];
                    i += 1;
                    assert!(cache.get_into(k, &mut buf).unwrap());
                    black_box(&buf);
                })
            });
        }
        g.finish();
        drop(cache);
        memshelf::unlink(&name).unwrap();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
