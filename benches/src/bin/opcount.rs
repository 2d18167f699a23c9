//! Per-operation instruction counts for the hot paths, meant to run under
//! `valgrind --tool=callgrind` (instructions are repeatable even on a noisy
//! machine, unlike seconds): `benches/callgrind.sh` runs it.
//!
//! `opcount <get-hit|get-hit-unsampled|get-miss|put|get-many|get-many-with> [keys] [capacity]`
//! fills a fresh segment with `keys` keys of 16 bytes and 100-byte values,
//! then runs 100 k operations of the kind named inside `measured`, the one
//! function the script's `--toggle-collect` counts. `get-many` and
//! `get-many-with` read the same 100 k keys in batches of 100 (`get_many`,
//! a `Vec` per value; `get_many_with`, borrowed slices): the count is per
//! key.

use std::hint::black_box;

const OPS: usize = 100_000;

#[inline(never)]
fn measured(c: &memshelf::Cache, op: &str, keys: &[Vec<u8>], order: &[u32], value: &[u8]) -> usize {
    let mut buf = Vec::with_capacity(256);
    let mut hits = 0;
    for &i in order {
        let k = &keys[i as usize];
        match op {
            "get-hit" | "get-hit-unsampled" | "get-miss" => {
                hits += c.get_into(k, &mut buf).unwrap() as usize
            }
            "put" => c.put(k, value).unwrap(),
            other => panic!("unknown op {other}"),
        }
    }
    black_box(hits)
}

/// The batch forms (`get-many`, `get-many-with`): the same keys, 100 per call.
#[inline(never)]
fn measured_batches(c: &memshelf::Cache, owned: bool, keys: &[Vec<u8>], order: &[u32]) -> usize {
    let mut hits = 0;
    let mut batch: Vec<&[u8]> = Vec::with_capacity(100);
    for chunk in order.chunks(100) {
        batch.clear();
        batch.extend(chunk.iter().map(|&i| keys[i as usize].as_slice()));
        if owned {
            hits += c.get_many(&batch).unwrap().iter().flatten().count();
        } else {
            c.get_many_with(&batch, |_, v| hits += black_box(v).is_some() as usize)
                .unwrap();
        }
    }
    black_box(hits)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_else(|| "get-hit".into());
    let nkeys: usize = args.next().map_or(100_000, |a| a.parse().expect("keys"));
    let cap = args
        .next()
        .map_or(Ok(256 << 20), |a| memshelf::parse_size(&a))
        .expect("capacity");
    let name = format!("opcount-{}", std::process::id());
    let c = memshelf::Cache::open(&name, cap).expect("open");
    let keys: Vec<Vec<u8>> = (0..nkeys).map(memshelf_benches::bench_key).collect();
    let value = vec![7u8; 100];
    for k in &keys {
        c.put(k, &value).unwrap();
    }
    let probe: Vec<Vec<u8>> = if op == "get-miss" {
        (nkeys..2 * nkeys)
            .map(memshelf_benches::bench_key)
            .collect()
    } else {
        keys.clone()
    };
    let order = memshelf_benches::key_order(nkeys, OPS);
    // `get-hit-unsampled`: the same gets with latency and hot-key sampling
    // off, to show what sampling costs.
    c.set_sampling(op != "get-hit-unsampled");
    let hits = match op.as_str() {
        "get-many" | "get-many-with" => measured_batches(&c, op == "get-many", &probe, &order),
        _ => measured(&c, &op, &probe, &order, &value),
    };
    if op.starts_with("get-hit") || op.starts_with("get-many") {
        assert_eq!(hits, OPS, "every get should hit");
    }
    println!("{op}: {OPS} ops, {hits} hits");
    memshelf::unlink(&name).unwrap();
}
