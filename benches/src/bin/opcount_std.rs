//! The peer row of `benches/callgrind.sh`: a std `HashMap<Vec<u8>,
//! Vec<u8>>` get + copy of the same keys, values and order as `opcount`'s
//! `get-hit`, counted the same way (instructions inside `measured`). A
//! binary of its own, so adding it does not move LLVM's inlining of
//! `opcount`'s engine paths.
//!
//! `opcount_std [keys]`: fills the map with `keys` keys of 16 bytes and
//! 100-byte values, then runs 100 k gets inside `measured`.

use std::collections::HashMap;
use std::hint::black_box;

const OPS: usize = 100_000;

#[inline(never)]
fn measured(map: &HashMap<Vec<u8>, Vec<u8>>, keys: &[Vec<u8>], order: &[u32]) -> usize {
    let mut buf = Vec::with_capacity(256);
    let mut hits = 0;
    for &i in order {
        if let Some(v) = map.get(keys[i as usize].as_slice()) {
            buf.clear();
            buf.extend_from_slice(v);
            hits += black_box(&buf).len().min(1);
        }
    }
    black_box(hits)
}

fn main() {
    let nkeys: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().expect("keys"));
    let keys: Vec<Vec<u8>> = (0..nkeys).map(memshelf_benches::bench_key).collect();
    let map: HashMap<Vec<u8>, Vec<u8>> = keys.iter().map(|k| (k.clone(), vec![7u8; 100])).collect();
    let order = memshelf_benches::key_order(nkeys, OPS);
    let hits = measured(&map, &keys, &order);
    assert_eq!(hits, OPS, "every get should hit");
    println!("hashmap-get: {OPS} ops, {hits} hits");
}
