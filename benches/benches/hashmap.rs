//! The issue-11 goal, in one run: memshelf `get_into` against a std
//! `HashMap` get + copy of the same keys (100 k keys of 16 bytes, 100-byte
//! values, uniform random order, all hits), with memshelf in 64 MiB,
//! 256 MiB and 1 GiB segments. One thread: the HashMap has no lock, so this
//! is the cost of the lookup and copy alone. At 256 MiB the run also times
//! `get_many_with` over batches of 100 of the same random keys.
//!
//! The "dependent" rows time the same gets as a chain: each key's index
//! takes the previous value's first byte (always 7, minus 7), so one get
//! cannot start before the one before it has finished. That is each get's
//! latency, what a binding sees when the interpreter runs between calls;
//! the plain rows let the CPU overlap the misses of successive gets.
//!
//! The "layout model" rows run `memshelf_benches::LayoutModel`: memshelf's
//! index and log layout (an index as large as the 256 MiB segment's) with
//! none of the engine's work, the floor that layout sets on this machine.
//!
//! `cargo bench -p memshelf-benches --bench hashmap`
//!
//! With `MEMSHELF_BENCH_HUGE_DIR` set to a directory on a tmpfs mounted
//! with huge pages (`mount -t tmpfs -o size=2g,huge=advise tmpfs DIR`) or on
//! hugetlbfs, the same run adds a 256 MiB segment made there (`path`).

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Bencher, Criterion, criterion_group, criterion_main};

const KEYS: usize = 100_000;

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS).map(memshelf_benches::bench_key).collect()
}

fn order() -> Vec<u32> {
    memshelf_benches::key_order(KEYS, 1 << 16)
}

/// `rounds` passes of a dependent multiply over `v`'s 8-byte words.
fn mix(v: &[u8], rounds: usize) -> u64 {
    let mut acc = 0u64;
    for _ in 0..rounds {
        for w in v.chunks_exact(8) {
            acc = (acc ^ u64::from_le_bytes(w.try_into().expect("8 bytes")))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    acc
}

/// Times `get(key, buf)` over the random order, each get independent of
/// the one before (the CPU may overlap their misses).
fn plain(
    b: &mut Bencher,
    keys: &[Vec<u8>],
    order: &[u32],
    mut get: impl FnMut(&[u8], &mut Vec<u8>),
) {
    let mut buf = Vec::with_capacity(128);
    let mut i = 0;
    b.iter(|| {
        let k = &keys[order[i & 0xffff] as usize];
        i += 1;
        get(k, &mut buf);
        black_box(&buf);
    })
}

/// Times the same gets as a chain: each key's index takes the previous
/// value's first byte (always 7, minus 7), so a get cannot start before
/// the one before it has finished.
fn dependent(
    b: &mut Bencher,
    keys: &[Vec<u8>],
    order: &[u32],
    mut get: impl FnMut(&[u8], &mut Vec<u8>),
) {
    let mut buf = vec![7u8];
    let mut i = 0;
    b.iter(|| {
        let k = &keys[order[(i + usize::from(buf[0]) - 7) & 0xffff] as usize];
        i += 1;
        get(k, &mut buf);
    });
    black_box(&buf);
}

fn bench(c: &mut Criterion) {
    let keys = keys();
    let order = order();
    let value = [7u8; 100];
    let mut g = c.benchmark_group("get 100k keys: memshelf get_into vs HashMap get + copy");
    let map: HashMap<Vec<u8>, Vec<u8>> = keys.iter().map(|k| (k.clone(), value.to_vec())).collect();
    let copy = |k: &[u8], buf: &mut Vec<u8>| {
        buf.clear();
        buf.extend_from_slice(map.get(k).expect("hit"));
    };
    g.bench_function("HashMap get + copy", |b| plain(b, &keys, &order, copy));
    g.bench_function("HashMap get + copy, dependent", |b| {
        dependent(b, &keys, &order, copy)
    });
    let huge = std::env::var_os("MEMSHELF_BENCH_HUGE_DIR").map(std::path::PathBuf::from);
    let mut cases = vec![
        ("64MiB", 64u64 << 20, None),
        ("256MiB", 256 << 20, None),
        ("1GiB", 1 << 30, None),
    ];
    if let Some(dir) = &huge {
        cases.push(("256MiB, huge pages", 256 << 20, Some(dir.clone())));
    }
    for (label, cap, dir) in cases {
        let name = format!("bench-hashmap-{}-{}", std::process::id(), cap >> 20);
        let mut o = memshelf::OpenOptions::new();
        o.capacity(cap);
        if let Some(dir) = &dir {
            o.path(dir.join(&name));
        }
        let _ = memshelf::unlink(&name);
        let cache = o.open(&name).expect("open");
        for k in &keys {
            cache.put(k, value).unwrap();
        }
        let get = |k: &[u8], buf: &mut Vec<u8>| assert!(cache.get_into(k, buf).unwrap());
        g.bench_function(format!("memshelf get_into ({label})"), |b| {
            plain(b, &keys, &order, get)
        });
        if cap == 256 << 20 && dir.is_none() {
            // The same layout with none of the engine's work, its index as
            // large as this segment's (`LayoutModel`).
            let index_bytes = (cache.stats().index_slots / 15 * 128) as usize;
            let mut model = memshelf_benches::LayoutModel::new(index_bytes, KEYS * 168);
            for k in &keys {
                assert!(model.insert(k, &value));
            }
            g.bench_function(
                format!("layout model ({label} index), no engine work"),
                |b| plain(b, &keys, &order, |k, buf| assert!(model.get_into(k, buf))),
            );
            g.bench_function(
                format!("layout model ({label} index), no engine work, dependent"),
                |b| dependent(b, &keys, &order, |k, buf| assert!(model.get_into(k, buf))),
            );
            // The same gets, each followed by a short chain of work on its
            // value (two passes of a multiply per 8 bytes, ~100
            // instructions): what a validated read adds after its last miss.
            g.bench_function(
                format!("layout model ({label} index), then 100 instructions on the value"),
                |b| {
                    plain(b, &keys, &order, |k, buf| {
                        assert!(model.get_into(k, buf));
                        black_box(mix(buf, 2));
                    })
                },
            );
            drop(model);
            g.bench_function(format!("memshelf get_into ({label}), dependent"), |b| {
                dependent(b, &keys, &order, get)
            });
            // A batch of 100 of the same random keys in one call (the
            // prefetch pipeline); criterion's time is per batch: divide by
            // 100 for the time per key.
            let batches: Vec<Vec<&[u8]>> = order
                .chunks(100)
                .map(|ch| ch.iter().map(|&i| keys[i as usize].as_slice()).collect())
                .collect();
            g.bench_function("memshelf get_many_with, 100-key batch (256MiB)", |b| {
                let mut i = 0;
                b.iter(|| {
                    let batch = &batches[i % batches.len()];
                    i += 1;
                    cache
                        .get_many_with(batch, |_, v| {
                            black_box(v.expect("hit"));
                        })
                        .unwrap();
                })
            });
        }
        drop(cache);
        match &dir {
            Some(dir) => std::fs::remove_file(dir.join(&name)).unwrap(),
            None => memshelf::unlink(&name).unwrap(),
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
