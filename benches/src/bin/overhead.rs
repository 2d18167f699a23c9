//! Memory overhead per entry: fills segments with distinct keys until they
//! are full and reports, per entry held, the index bytes, the item header
//! and what is left of the capacity for keys and values.
//!
//! ```text
//! cargo run --release -p memshelf-benches --bin overhead [-- --capacity-mib 64]
//! ```
//!
//! For each entry size (key + value bytes) it runs the default
//! `expected_entry_size` (128) and, when they differ, the entry's own size.
//! "index / entry" is the index's bytes divided by the entries the full
//! segment holds; "header" is the fixed item header
//! (`memshelf::ITEM_HEADER`, 40 bytes from layout 9) plus the padding of
//! key and value to 8 bytes; "payload" is key + value bytes held as a
//! share of the capacity.

use memshelf::{DEFAULT_EXPECTED_ENTRY_SIZE, OpenOptions};

const KEY_LEN: usize = 16;
const HEADER: u64 = memshelf::ITEM_HEADER;

fn pad8(n: u64) -> u64 {
    n.div_ceil(8) * 8
}

fn run(capacity: u64, entry: usize, expected: u64) {
    let name = format!("overhead-{}-{entry}-{expected}", std::process::id());
    let _ = memshelf::unlink(&name);
    let cache = OpenOptions::new()
        .capacity(capacity)
        .expected_entry_size(expected)
        .open(&name)
        .expect("open segment");
    let value = vec![0x5au8; entry - KEY_LEN];
    // Twice what the logs could hold: the segment is full and evicting.
    let n = 2 * cache.stats().data_bytes / (HEADER + pad8(entry as u64));
    for i in 0..n {
        cache.put(format!("key:{i:012}"), &value).expect("put");
    }
    let s = cache.stats();
    let index_bytes = s.index_slots * 8;
    let per_entry_index = index_bytes as f64 / s.entries as f64;
    let header = HEADER + pad8(KEY_LEN as u64) + pad8((entry - KEY_LEN) as u64) - entry as u64;
    let payload = (s.entries * entry as u64) as f64 / capacity as f64;
    println!(
        "| {entry} | {expected} | {} | {:.1} | {:.1} | {header} | {:.1} | {:.1} % |",
        s.entries,
        s.index_slots as f64 / s.entries as f64,
        per_entry_index,
        per_entry_index + header as f64,
        payload * 100.0
    );
    drop(cache);
    let _ = memshelf::unlink(&name);
}

fn main() {
    let mut capacity_mib = 64u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--capacity-mib" => {
                capacity_mib = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--capacity-mib N")
            }
            _ => {
                eprintln!("usage: overhead [--capacity-mib N]");
                std::process::exit(2);
            }
        }
    }
    let capacity = capacity_mib << 20;
    println!("capacity {capacity_mib} MiB, {KEY_LEN}-byte keys");
    println!();
    println!(
        "| entry bytes | expected_entry_size | entries held | slots / entry | index B / entry | header B / entry | overhead B / entry | payload share |"
    );
    println!("|--:|--:|--:|--:|--:|--:|--:|--:|");
    for entry in [24usize, 116, 272, 1040] {
        run(capacity, entry, DEFAULT_EXPECTED_ENTRY_SIZE);
        if entry as u64 != DEFAULT_EXPECTED_ENTRY_SIZE {
            run(capacity, entry, entry as u64);
        }
    }
}
