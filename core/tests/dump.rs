//! Dump and load (SPEC 8): round trips across segments of other capacities,
//! remaining TTLs, never overwriting a newer entry, truncation at every
//! byte, random corruption.

use std::io::Cursor;
use std::time::Duration;

use memshelf::{Cache, Expiry, OpenOptions, PutOptions, dump_to, load_from};

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(t) << 16 | N.fetch_add(1, Ordering::Relaxed)
}

struct Seg {
    name: String,
    cache: Cache,
}

impl Seg {
    fn new(tag: &str, capacity: u64) -> Seg {
        let name = format!("dump-{}-{:x}-{tag}", std::process::id(), unique());
        let cache = OpenOptions::new().capacity(capacity).open(&name).unwrap();
        Seg { name, cache }
    }
}

impl Drop for Seg {
    fn drop(&mut self) {
        let _ = memshelf::unlink(&self.name);
    }
}

fn dump_bytes(c: &Cache) -> Vec<u8> {
    let mut cur = Cursor::new(Vec::new());
    dump_to(c, &mut cur).unwrap();
    cur.into_inner()
}

fn remaining(c: &Cache, k: &[u8]) -> Option<Expiry> {
    c.ttl(k).unwrap()
}

fn secs(e: Option<Expiry>) -> f64 {
    match e {
        Some(Expiry::In(d)) => d.as_secs_f64(),
        other => panic!("expected a TTL, got {other:?}"),
    }
}

#[test]
fn round_trip_across_capacities_keeps_values_and_remaining_ttls() {
    let src = Seg::new("src", 8 << 20);
    let mut expect = Vec::new();
    for i in 0..500u32 {
        let key = format!("key:{i}").into_bytes();
        let value: Vec<u8> = (0..(i % 700)).map(|j| (i + j) as u8).collect();
        let ttl = match i % 3 {
            0 => None,
            1 => Some(Duration::from_secs(600)),
            _ => Some(Duration::from_secs(3600 + u64::from(i))),
        };
        src.cache
            .put_with(
                &key,
                &value,
                &PutOptions::ttl(ttl.map_or(memshelf::Ttl::Never, Into::into)),
            )
            .unwrap();
        expect.push((key, value, ttl));
    }
    // Binary keys, an empty value, the largest key.
    let big_key = vec![0xffu8; memshelf::MAX_KEY_LEN];
    src.cache.put(&big_key, b"").unwrap();
    src.cache.put(b"\x00\x01\xfe", b"bin").unwrap();
    expect.push((big_key, Vec::new(), None));
    expect.push((b"\x00\x01\xfe".to_vec(), b"bin".to_vec(), None));

    let path = std::env::temp_dir().join(format!("{}.dump", src.name));
    let d = src.cache.dump(&path).unwrap();
    assert_eq!(d.entries, expect.len() as u64);
    assert_eq!(d.bytes, std::fs::metadata(&path).unwrap().len());

    // Into a smaller and into a larger segment.
    for cap in [2 << 20, 32 << 20] {
        let dst = Seg::new("dst", cap);
        let r = dst.cache.load(&path).unwrap();
        assert!(r.complete(), "{r:?}");
        assert_eq!(r.expected, Some(expect.len() as u64));
        assert_eq!(
            (r.records, r.loaded, r.skipped),
            (expect.len() as u64, expect.len() as u64, 0)
        );
        for (k, v, ttl) in &expect {
            assert_eq!(
                dst.cache.get(k).unwrap().as_deref(),
                Some(&v[..]),
                "value of {k:?}"
            );
            match ttl {
                None => assert_eq!(remaining(&dst.cache, k), Some(Expiry::Never)),
                Some(t) => {
                    let left = secs(remaining(&dst.cache, k));
                    let want = t.as_secs_f64();
                    assert!(
                        left <= want && left > want - 30.0,
                        "TTL of {k:?}: {left} of {want}"
                    );
                }
            }
        }
        assert_eq!(dst.cache.keys(None).count(), expect.len());
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn load_skips_expired_and_never_overwrites_newer_entries() {
    let src = Seg::new("src", 4 << 20);
    src.cache
        .put_with(b"short", b"1", &PutOptions::ttl(Duration::from_millis(150)))
        .unwrap();
    src.cache.put(b"old", b"from the dump").unwrap();
    src.cache.put(b"other", b"x").unwrap();
    let bytes = dump_bytes(&src.cache);
    std::thread::sleep(Duration::from_millis(300));

    let dst = Seg::new("dst", 4 << 20);
    dst.cache.put(b"old", b"written since").unwrap();
    let r = load_from(&dst.cache, &mut Cursor::new(&bytes)).unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(
        (r.records, r.loaded, r.expired, r.kept_newer),
        (3, 1, 1, 1),
        "{r:?}"
    );
    assert_eq!(
        dst.cache.get(b"old").unwrap().as_deref(),
        Some(&b"written since"[..])
    );
    assert_eq!(dst.cache.get(b"short").unwrap(), None);
    assert_eq!(dst.cache.get(b"other").unwrap().as_deref(), Some(&b"x"[..]));
}

#[test]
fn values_too_large_for_the_target_are_rejected_not_fatal() {
    let src = Seg::new("src", 16 << 20);
    src.cache.put(b"a", vec![7u8; 200_000]).unwrap();
    src.cache.put(b"b", b"small").unwrap();
    let bytes = dump_bytes(&src.cache);
    let dst = Seg::new("dst", 1 << 20);
    assert!(dst.cache.max_value_size() < 200_000);
    let r = load_from(&dst.cache, &mut Cursor::new(&bytes)).unwrap();
    assert_eq!((r.loaded, r.rejected, r.records), (1, 1, 2), "{r:?}");
    assert!(r.complete());
    assert_eq!(dst.cache.get(b"b").unwrap().as_deref(), Some(&b"small"[..]));
}

#[test]
fn truncation_at_every_byte_loads_a_prefix_and_reports_the_rest() {
    let src = Seg::new("src", 4 << 20);
    let n = 6u64;
    for i in 0..n {
        src.cache
            .put(format!("k{i}"), format!("value-{i}"))
            .unwrap();
    }
    let bytes = dump_bytes(&src.cache);
    // Record boundaries: after the header, each record is 12 + body bytes.
    let mut ends = vec![];
    let mut off = 40usize;
    while off < bytes.len() {
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        off += 12 + len;
        ends.push(off);
    }
    assert_eq!(ends.len() as u64, n);
    assert_eq!(*ends.last().unwrap(), bytes.len());

    for cut in 0..bytes.len() {
        let dst = Seg::new("cut", 1 << 20);
        let res = load_from(&dst.cache, &mut Cursor::new(&bytes[..cut]));
        if cut == 0 {
            assert!(res.is_err(), "an empty file is not a dump");
            continue;
        }
        let r = res.unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let whole = ends.iter().filter(|&&e| e <= cut).count() as u64;
        assert!(!r.complete(), "cut at {cut} reported complete: {r:?}");
        let problem = r.problem.as_deref().unwrap();
        assert!(problem.contains("truncated"), "cut at {cut}: {problem}");
        if cut < 40 {
            assert_eq!(
                (r.records, r.loaded, r.expected),
                (0, 0, None),
                "cut at {cut}"
            );
            continue;
        }
        assert_eq!(r.records, whole, "cut at {cut}");
        assert_eq!(r.loaded, whole, "cut at {cut}");
        assert_eq!(r.expected, Some(n));
        assert_eq!(r.skipped, n - whole, "cut at {cut}");
        assert_eq!(dst.cache.keys(None).count() as u64, whole, "cut at {cut}");
    }
    let dst = Seg::new("whole", 1 << 20);
    let r = load_from(&dst.cache, &mut Cursor::new(&bytes)).unwrap();
    assert!(r.complete() && r.loaded == n, "{r:?}");
}

#[test]
fn an_unfinished_dump_loads_what_it_holds() {
    let src = Seg::new("src", 4 << 20);
    for i in 0..3 {
        src.cache.put(format!("k{i}"), b"v").unwrap();
    }
    let bytes = dump_bytes(&src.cache);
    // A writer that died before patching the header: count = u64::MAX and
    // the header checksum of that state.
    let mut h = bytes[..32].to_vec();
    h[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&h);
    let mut unfinished = h;
    unfinished.extend_from_slice(&sum.to_le_bytes());
    unfinished.extend_from_slice(&bytes[40..]);
    let dst = Seg::new("dst", 1 << 20);
    let r = load_from(&dst.cache, &mut Cursor::new(&unfinished)).unwrap();
    assert_eq!((r.records, r.loaded, r.expected), (3, 3, None), "{r:?}");
    assert!(r.problem.unwrap().contains("not finished"));
}

#[test]
fn corruption_never_panics_and_never_loads_a_bad_record() {
    let src = Seg::new("src", 4 << 20);
    for i in 0..20u32 {
        src.cache
            .put(format!("key-{i}"), vec![i as u8; (i * 13) as usize])
            .unwrap();
    }
    let bytes = dump_bytes(&src.cache);
    let dst = Seg::new("dst", 1 << 20);
    // Seeded: the same corruptions on every run.
    let mut rng = fastrand::Rng::with_seed(0x5eed_1234_abcd_0001);
    for round in 0..400 {
        let mut b = bytes.clone();
        let flips = 1 + rng.usize(..4);
        for _ in 0..flips {
            let i = rng.usize(..b.len());
            b[i] ^= 1 << rng.usize(..8);
        }
        if round % 5 == 0 {
            b.truncate(rng.usize(..b.len()));
        }
        dst.cache.clear().unwrap();
        // Ok with a prefix, or Err (header): never a panic.
        if let Ok(r) = load_from(&dst.cache, &mut Cursor::new(&b)) {
            assert_eq!(r.loaded + r.expired + r.kept_newer + r.rejected, r.records);
            // Every loaded entry is one the source had, byte for byte.
            for k in dst.cache.keys(None) {
                assert_eq!(
                    dst.cache.get(&k).unwrap(),
                    src.cache.get(&k).unwrap(),
                    "round {round}: key {k:?}"
                );
            }
        }
    }
    // Random bytes, and random bytes behind a valid header.
    for len in [0usize, 1, 7, 8, 39, 40, 41, 100, 5000] {
        let junk: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let _ = load_from(&dst.cache, &mut Cursor::new(&junk));
        let mut framed = bytes[..40].to_vec();
        framed.extend_from_slice(&junk);
        let r = load_from(&dst.cache, &mut Cursor::new(&framed)).unwrap();
        assert_eq!(r.loaded, 0, "{r:?}");
    }
}

#[test]
fn not_a_dump_is_an_error() {
    let dst = Seg::new("dst", 1 << 20);
    let e = load_from(
        &dst.cache,
        &mut Cursor::new(b"hello world, not a dump at all, no".to_vec()),
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a memshelf dump"), "{e}");
    let mut other = dump_bytes(&dst.cache);
    other[8] = 9; // version 9
    let e = load_from(&dst.cache, &mut Cursor::new(other)).unwrap_err();
    assert!(e.to_string().contains("version 9"), "{e}");
}

#[test]
fn tags_travel_by_name_and_invalidate_the_loaded_entries() {
    // Tag hashes are seeded per segment, so only names can carry a tag to
    // another segment. Entries rewritten by touch and incr, and entries the
    // evictor moved (small log -> main), keep their names too.
    let src = Seg::new("tsrc", 4 << 20);
    let long_tag = vec![b't'; memshelf::MAX_TAG_LEN];
    let tags: [&[u8]; 3] = [b"product:7", b"user:42", &long_tag];
    for i in 0..300u32 {
        let t: &[&[u8]] = match i % 3 {
            0 => &tags[..1],
            1 => &tags[1..],
            _ => &[],
        };
        src.cache
            .put_with(
                format!("k{i}"),
                format!("v{i}"),
                &PutOptions::ttl(Duration::from_secs(600)).with_tags(t),
            )
            .unwrap();
    }
    src.cache.touch("k0", Duration::from_secs(900)).unwrap();
    src.cache
        .put_with("n", "5", &PutOptions::default().with_tags(&tags[..1]))
        .unwrap();
    src.cache.incr("n", 2).unwrap();
    // Reading keys promotes them; churn through the small log moves them.
    for round in 0..3 {
        for i in 0..300u32 {
            let _ = src.cache.get(format!("k{i}")).unwrap();
        }
        for j in 0..3000u32 {
            src.cache
                .put(format!("churn:{round}:{j}"), vec![0u8; 300])
                .unwrap();
        }
    }
    let kept: Vec<u32> = (0..300)
        .filter(|i| src.cache.contains(format!("k{i}")).unwrap())
        .collect();
    assert!(
        kept.len() > 250,
        "only {} of 300 tagged keys kept",
        kept.len()
    );
    let s = src.cache.stats();
    assert!(s.moved_to_main > 0, "the evictor moved nothing: {s:?}");

    let path = std::env::temp_dir().join(format!("{}.dump", src.name));
    src.cache.dump(&path).unwrap();
    let dst = Seg::new("tdst", 16 << 20);
    assert!(dst.cache.load(&path).unwrap().complete());
    std::fs::remove_file(&path).unwrap();
    assert_eq!(dst.cache.get("n").unwrap().as_deref(), Some(&b"7"[..]));
    for i in &kept {
        assert!(dst.cache.contains(format!("k{i}")).unwrap(), "k{i} loaded");
    }
    dst.cache.invalidate_tag("product:7").unwrap();
    assert_eq!(dst.cache.get("n").unwrap(), None, "incr kept the tag");
    for i in &kept {
        let there = dst.cache.contains(format!("k{i}")).unwrap();
        assert_eq!(there, i % 3 != 0, "k{i} after invalidating product:7");
    }
    dst.cache.invalidate_tag(&long_tag).unwrap();
    for i in &kept {
        let there = dst.cache.contains(format!("k{i}")).unwrap();
        assert_eq!(there, i % 3 == 2, "k{i} after invalidating the long tag");
    }
}

#[test]
fn dumping_counts_no_hits_and_changes_no_eviction_order() {
    // Two segments with the same history, one of them dumped: the same
    // statistics and the same survivors after churn (a dump that read with
    // `get` counted hits and marked every entry used: more survived).
    let run = |dump: bool| {
        let seg = Seg::new("quiet", 4 << 20);
        let c = &seg.cache;
        for round in 0..4u32 {
            for i in 0..2000u32 {
                c.put(format!("r{round}:k{i}"), vec![1u8; 200]).unwrap();
            }
        }
        for i in (0..2000u32).step_by(7) {
            let _ = c.get(format!("r3:k{i}")).unwrap();
        }
        let before = c.stats();
        if dump {
            assert!(dump_bytes(c).len() > 1000);
        }
        let after = c.stats();
        assert_eq!((after.hits, after.misses), (before.hits, before.misses));
        // Churn the main log: each new key is read once, so it is
        // promoted when it leaves the small log, and main must evict.
        for j in 0..10_000u32 {
            c.put(format!("new:{j}"), vec![0u8; 200]).unwrap();
            let _ = c.get(format!("new:{j}")).unwrap();
        }
        let survivors: Vec<u32> = (0..2000u32)
            .filter(|i| c.contains(format!("r3:k{i}")).unwrap())
            .collect();
        (survivors, c.stats().evictions)
    };
    let (quiet, ev_quiet) = run(false);
    let (dumped, ev_dumped) = run(true);
    assert!(ev_quiet > 0, "the churn evicted nothing");
    assert_eq!(
        (dumped.len(), ev_dumped),
        (quiet.len(), ev_quiet),
        "a dump changed what survives"
    );
}
