//! Hit-ratio replay: real traces through the real engine, beside LRU and
//! S3-FIFO simulators run on the same trace at the same capacity.
//!
//! ```text
//! cargo run --release -p memshelf-benches --bin hitratio -- TRACE CAPACITY...
//! cargo run --release -p memshelf-benches --bin hitratio -- --all [--traces DIR]
//! ```
//!
//! Each request is a `get`; a miss is followed by a `put` of a fixed 64-byte
//! value (cache-aside). Keys are `k:<id>`, the id zero-padded to the width
//! of the trace's largest id, so every item has the same size. The
//! segment's capacity in bytes is `memshelf::capacity_for_entries(entries,
//! key length, 64)` (with `expected_entry_size` set to the entry's key +
//! value bytes): its two logs hold `entries` such items, the count the
//! simulators get. `--seeds N` replays memshelf N times per row (each
//! segment draws its own hash seed) and reports the mean and the range: a
//! single replay's figure moves by up to ~1.5 points between seeds on the
//! small capacities. `--stats` adds the engine's counters (where its entries
//! went) to each row. Traces default to `../shared/traces` beside the
//! workspace, or `$MEMSHELF_TRACES`, or `--traces DIR`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use memshelf::{OpenOptions, Stats, capacity_for_entries};
use memshelf_benches::{Lru, S3Fifo, hit_ratio, load_trace};

const VALUE: [u8; 64] = [0x5a; 64];

fn memshelf_ratio(trace: &[u64], entries: u64) -> (f64, Stats) {
    let width = trace.iter().max().map_or(1, |m| m.to_string().len());
    let key_len = 2 + width as u64;
    let name = format!("hitratio-{}-{entries}", std::process::id());
    let _ = memshelf::unlink(&name);
    let cache = OpenOptions::new()
        .capacity(capacity_for_entries(entries, key_len, VALUE.len() as u64))
        .max_value_size(VALUE.len())
        .expected_entry_size(key_len + VALUE.len() as u64)
        .open(&name)
        .expect("open segment");
    let mut buf = Vec::with_capacity(VALUE.len());
    let mut key = String::new();
    let mut hits = 0u64;
    for &k in trace {
        key.clear();
        write!(key, "k:{k:0width$}").unwrap();
        if cache.get_into(&key, &mut buf).unwrap() {
            hits += 1;
        } else {
            cache.put(&key, VALUE).unwrap();
        }
    }
    let stats = cache.stats();
    drop(cache);
    memshelf::unlink(&name).unwrap();
    (hits as f64 / trace.len().max(1) as f64, stats)
}

fn run(path: &Path, capacities: &[u64], show_stats: bool, seeds: usize) {
    let trace = match load_trace(path) {
        Ok(t) if !t.is_empty() => t,
        Ok(_) => {
            eprintln!("skipping {}: empty trace", path.display());
            return;
        }
        Err(e) => {
            eprintln!("skipping {}: {e}", path.display());
            return;
        }
    };
    let name = path.file_name().unwrap().to_string_lossy();
    let name = name.split('.').next().unwrap_or(&name);
    for &c in capacities {
        let t0 = Instant::now();
        let lru = hit_ratio(&mut Lru::new(c as usize), &trace);
        let s3 = hit_ratio(&mut S3Fifo::new(c as usize), &trace);
        // Each replay's segment draws its own hash seed: a row's figure
        // moves by up to ~1.5 points between seeds on small capacities, so
        // comparisons between engines take the mean of several.
        let mut runs: Vec<(f64, Stats)> = (0..seeds).map(|_| memshelf_ratio(&trace, c)).collect();
        let ms = runs.iter().map(|r| r.0).sum::<f64>() / seeds as f64;
        let (lo, hi) = runs.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| {
            (lo.min(r.0), hi.max(r.0))
        });
        let st = runs.pop().expect("at least one seed").1;
        let verdict = if ms + 5e-5 >= s3 {
            "ok"
        } else if ms + 0.01 >= lru {
            "< S3-FIFO"
        } else {
            "**< LRU - 1**"
        };
        let mut row = format!(
            "| {name} | {} | {c} | {:.2} | {:.2} | {:.2} | {:+.2} | {verdict} |",
            trace.len(),
            100.0 * lru,
            100.0 * s3,
            100.0 * ms,
            100.0 * (ms - s3)
        );
        if seeds > 1 {
            let _ = write!(row, " {:.2}-{:.2} |", 100.0 * lo, 100.0 * hi);
        }
        if show_stats {
            let _ = write!(
                row,
                " {} | {} | {} | {} | {} | {} | {:.1} |",
                st.entries,
                st.ghosts,
                st.index_slots,
                st.promotions + st.moved_to_main,
                st.reinsertions,
                st.ghost_hits,
                t0.elapsed().as_secs_f64()
            );
        }
        println!("{row}");
    }
}

fn default_traces() -> PathBuf {
    std::env::var_os("MEMSHELF_TRACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces"))
}

/// The capacities (entries) the traces' README suggests for each trace.
const PLAN: &[(&str, &[u64])] = &[
    ("lirs-2_pools.trace.gz", &[100, 200, 500, 1000]),
    ("lirs-cpp.trace.gz", &[100, 200, 500, 1000]),
    ("lirs-cs.trace.gz", &[100, 200, 500, 1000]),
    ("lirs-gli.trace.gz", &[100, 200, 500, 1000]),
    ("lirs-loop.trace.gz", &[100, 200, 500, 1000]),
    ("lirs-multi1.trace.gz", &[100, 200, 500, 1000]),
    ("lirs-multi2.trace.gz", &[100, 200, 500, 1000]),
    ("lirs-multi3.trace.gz", &[100, 200, 500, 1000]),
    ("lirs-ps.trace.gz", &[100, 200, 500, 1000]),
    ("lirs-scan.trace.gz", &[100, 200, 500, 1000]),
    ("lirs-sprite.trace.gz", &[100, 200, 500, 1000]),
    ("lirs-zigzag.trace.gz", &[100, 200, 500, 1000]),
    ("arc-OLTP.lis.zst", &[256, 512, 1000, 2000]),
    ("arc-P3.lis.zst", &[100_000, 200_000, 400_000, 800_000]),
    ("cache2k-web07.trace.xz", &[256, 1024, 4096]),
    ("cache2k-web12.trace.xz", &[256, 1024, 4096]),
];

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let show_stats = args.iter().any(|a| a == "--stats");
    args.retain(|a| a != "--stats");
    let seeds = match args.iter().position(|a| a == "--seeds") {
        Some(i) if i + 1 < args.len() => {
            let n: usize = args.remove(i + 1).parse().expect("--seeds N");
            args.remove(i);
            n.max(1)
        }
        _ => 1,
    };
    let dir = match args.iter().position(|a| a == "--traces") {
        Some(i) if i + 1 < args.len() => {
            let d = PathBuf::from(args.remove(i + 1));
            args.remove(i);
            d
        }
        _ => default_traces(),
    };
    let mut header = String::from(
        "| trace | requests | entries | LRU % | S3-FIFO % | memshelf % | vs S3-FIFO (pts) | |",
    );
    let mut rule = String::from("|---|--:|--:|--:|--:|--:|--:|---|");
    if seeds > 1 {
        header = header.replace(
            "| memshelf % |",
            &format!("| memshelf % (mean of {seeds} seeds) |"),
        );
        header.push_str(" memshelf min-max |");
        rule.push_str("--:|");
    }
    if show_stats {
        header.push_str(" items | ghosts | slots | to main | reinserted | ghost hits | s |");
        rule.push_str("--:|--:|--:|--:|--:|--:|--:|");
    }
    if args.first().map(String::as_str) == Some("--all") {
        println!("{header}\n{rule}");
        for (file, caps) in PLAN {
            run(&dir.join(file), caps, show_stats, seeds);
        }
        return;
    }
    let (Some(path), true) = (args.first(), args.len() > 1) else {
        eprintln!(
            "usage: hitratio [--stats] [--seeds N] TRACE CAPACITY... | hitratio [--stats] [--seeds N] --all [--traces DIR]"
        );
        std::process::exit(2);
    };
    let caps: Vec<u64> = args[1..]
        .iter()
        .map(|c| c.parse().expect("capacity in entries"))
        .collect();
    let path = PathBuf::from(path);
    let path = if path.exists() { path } else { dir.join(path) };
    println!("{header}\n{rule}");
    run(&path, &caps, show_stats, seeds);
}
