//! The committed `include/memshelf.h` must be what cbindgen generates from
//! this crate now. `MEMSHELF_BLESS=1 cargo test -p memshelf-ffi --test
//! header` (scripts/gen-header.sh) rewrites it.

use std::path::Path;

#[test]
fn committed_header_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = crate_dir.join("../include/memshelf.h");
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    if std::env::var_os("MEMSHELF_BLESS").is_some() {
        std::fs::write(&header, &fresh).expect("write include/memshelf.h");
        return;
    }
    let committed = std::fs::read(&header).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/memshelf.h is stale: run scripts/gen-header.sh and commit it"
    );
}

/// Every statistic of the engine (`Stats::fields()`, what Python, Node and
/// the CLI expose) is a field of the C `memshelf_stats`, and the C struct
/// has nothing else (beyond `struct_size`, explicit padding and the fields
/// derived from the sampled latency and hot-key share).
#[test]
fn c_stats_struct_has_every_engine_statistic() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(crate_dir.join("../include/memshelf.h")).unwrap();
    let start = header
        .find("typedef struct memshelf_stats {")
        .expect("memshelf_stats in the header");
    let body = &header[start..];
    let body = &body[..body
        .find("} memshelf_stats;")
        .expect("end of memshelf_stats")];
    let c_fields: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with(';') && !l.starts_with('*') && !l.starts_with("/*"))
        .map(|l| l.trim_end_matches(';').rsplit(' ').next().unwrap())
        .filter(|f| *f != "struct_size" && !f.starts_with("_reserved"))
        .collect();
    // Besides the counters of `fields()`: what the C struct derives from
    // `Stats::get_latency` / `put_latency` (histograms) and `hot_key_share`
    // (a float), each exactly once.
    const DERIVED: [&str; 7] = [
        "get_samples",
        "get_p50_ns",
        "get_p99_ns",
        "put_samples",
        "put_p50_ns",
        "put_p99_ns",
        "hot_key_share",
    ];
    let engine: Vec<&str> = engine::Stats::default()
        .fields()
        .iter()
        .map(|(name, _)| *name)
        .chain(DERIVED)
        .collect();
    let mut unique = c_fields.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        c_fields.len(),
        "a field twice in memshelf_stats"
    );
    let missing: Vec<&&str> = engine.iter().filter(|f| !c_fields.contains(f)).collect();
    let extra: Vec<&&str> = c_fields.iter().filter(|f| !engine.contains(f)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "memshelf_stats differs from Stats::fields() and the derived latency/hot-key fields: missing {missing:?}, not in the engine {extra:?} \
         (add new fields at the END of memshelf_stats, then scripts/gen-header.sh)"
    );
}
