//! Every bad input of SPEC sections 1-2 gets a clear error (the right
//! variant, a message naming the limit), stores nothing and affects
//! nothing else.

mod common;

use std::time::Duration;

use common::*;
use memshelf::{Cache, Error, OpenOptions, PutOptions, Ttl};

/// A segment holding two known entries, to check that nothing else changes.
fn fixture(tag: &str) -> (Seg, Cache) {
    let seg = Seg::new(tag);
    let c = OpenOptions::new()
        .capacity(1 << 20)
        .max_value_size(1000)
        .open(seg.name())
        .unwrap();
    c.put("keep", "kept").unwrap();
    c.put("n", "7").unwrap();
    (seg, c)
}

fn unchanged(c: &Cache, before: &memshelf::Stats) {
    assert_eq!(c.get("keep").unwrap().as_deref(), Some(&b"kept"[..]));
    assert_eq!(c.get("n").unwrap().as_deref(), Some(&b"7"[..]));
    let s = c.stats();
    assert_eq!(
        (s.inserts, s.updates, s.deletes, s.entries),
        (
            before.inserts,
            before.updates,
            before.deletes,
            before.entries
        ),
        "a failed operation changed the cache"
    );
}

#[test]
fn bad_keys_are_refused_naming_the_limit() {
    let (_seg, c) = fixture("bad-key");
    let before = c.stats();
    let long = vec![b'x'; 4097];
    let ok = vec![b'y'; 4096];
    type Op = fn(&Cache, &[u8]) -> memshelf::Result<()>;
    let ops: [(&str, Op); 7] = [
        ("put", |c, k| c.put(k, "v")),
        ("add", |c, k| c.add(k, "v").map(drop)),
        ("get", |c, k| c.get(k).map(drop)),
        ("delete", |c, k| c.delete(k).map(drop)),
        ("incr", |c, k| c.incr(k, 1).map(drop)),
        ("touch", |c, k| c.touch(k, Duration::from_secs(1)).map(drop)),
        ("ttl", |c, k| c.ttl(k).map(drop)),
    ];
    for (what, op) in ops {
        match op(&c, b"") {
            Err(e @ Error::KeyTooLong { len: 0, max: 4096 }) => {
                let m = e.to_string();
                assert!(m.contains("empty") && m.contains("4096"), "{what}: {m}");
                assert_eq!(e.kind_name(), "KeyTooLong");
            }
            other => panic!("{what} with an empty key: {other:?}"),
        }
        match op(&c, &long) {
            Err(
                e @ Error::KeyTooLong {
                    len: 4097,
                    max: 4096,
                },
            ) => {
                let m = e.to_string();
                assert!(m.contains("4097") && m.contains("4096"), "{what}: {m}");
            }
            other => panic!("{what} with a 4097-byte key: {other:?}"),
        }
    }
    unchanged(&c, &before);
    // 4096 bytes is fine.
    c.put(&ok, "v").unwrap();
    assert_eq!(c.get(&ok).unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn values_above_max_value_size_are_refused_and_the_old_value_stays() {
    let (_seg, c) = fixture("bad-val");
    assert_eq!(c.max_value_size(), 1000);
    let before = c.stats();
    for big in [vec![1u8; 1001], vec![1u8; 1 << 20]] {
        for r in [c.put("keep", &big), c.add("new", &big).map(drop)] {
            match r {
                Err(e @ Error::ValueTooLarge { max: 1000, .. }) => {
                    let m = e.to_string();
                    assert!(
                        m.contains("1000") && m.contains(&big.len().to_string()),
                        "{m}"
                    );
                }
                other => panic!("value of {} bytes: {other:?}", big.len()),
            }
        }
    }
    assert_eq!(c.get("new").unwrap(), None);
    unchanged(&c, &before);
    c.put("max", vec![2u8; 1000]).unwrap();
    assert_eq!(c.get("max").unwrap().map(|v| v.len()), Some(1000));
    // Default limit: 1 MiB, lowered to what a small segment can hold.
    let seg = Seg::new("bad-val-default");
    let small = Cache::open(seg.name(), 64 << 10).unwrap();
    let max = small.max_value_size();
    assert!(max > 0 && max < 64 << 10, "{max}");
    match small.put("k", vec![0u8; max + 1]) {
        Err(Error::ValueTooLarge { max: m, .. }) => assert_eq!(m, max),
        other => panic!("{other:?}"),
    }
    small.put("k", vec![0u8; max]).unwrap();
    assert_eq!(small.get("k").unwrap().map(|v| v.len()), Some(max));
}

#[test]
fn bad_ttls_are_refused() {
    let (_seg, c) = fixture("bad-ttl");
    let before = c.stats();
    for secs in [
        -1.0,
        -0.001,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e300,
    ] {
        match Ttl::from_secs_f64(secs) {
            Err(e @ Error::InvalidTtl(_)) => {
                assert!(e.to_string().contains("TTL"), "{e}");
            }
            other => panic!("ttl {secs}: {other:?}"),
        }
    }
    let too_long = Ttl::After(memshelf::MAX_TTL + Duration::from_secs(1));
    assert!(matches!(
        c.put_with("t", "v", &PutOptions::ttl(too_long)),
        Err(Error::InvalidTtl(_))
    ));
    assert!(matches!(
        c.touch("keep", too_long),
        Err(Error::InvalidTtl(_))
    ));
    assert!(matches!(
        c.incr_with("n", 1, too_long),
        Err(Error::InvalidTtl(_))
    ));
    assert_eq!(c.get("t").unwrap(), None);
    assert_eq!(c.ttl("keep").unwrap(), Some(memshelf::Expiry::Never));
    unchanged(&c, &before);
}

#[test]
fn too_many_or_bad_tags_are_refused() {
    let (_seg, c) = fixture("bad-tags");
    let before = c.stats();
    let names: Vec<String> = (0..9).map(|i| format!("t{i}")).collect();
    let nine: Vec<&[u8]> = names.iter().map(|t| t.as_bytes()).collect();
    match c.put_with("k", "v", &PutOptions::default().with_tags(&nine)) {
        Err(e @ Error::InvalidArgument(_)) => assert!(e.to_string().contains('8'), "{e}"),
        other => panic!("{other:?}"),
    }
    let long_tag = vec![b't'; 4097];
    for tags in [&[&b""[..]][..], &[&long_tag[..]][..]] {
        assert!(matches!(
            c.put_with("k", "v", &PutOptions::default().with_tags(tags)),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert!(matches!(
        c.invalidate_tag(""),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(c.get("k").unwrap(), None);
    unchanged(&c, &before);
    c.put_with("k", "v", &PutOptions::default().with_tags(&nine[..8]))
        .unwrap();
}

#[test]
fn non_integers_are_refused_by_incr() {
    let (_seg, c) = fixture("bad-incr");
    c.put("text", "12abc").unwrap();
    let before = c.stats();
    assert!(matches!(c.incr("text", 1), Err(Error::NotAnInteger { .. })));
    assert!(matches!(
        c.incr("n", i64::MAX),
        Err(Error::NotAnInteger { .. })
    ));
    assert_eq!(c.get("text").unwrap().as_deref(), Some(&b"12abc"[..]));
    unchanged(&c, &before);
}

#[test]
fn bad_names_are_refused() {
    let long = "a".repeat(201);
    for name in [
        "a/b",
        "..",
        ".hidden",
        "",
        long.as_str(),
        "a b",
        "a\0b",
        "é",
    ] {
        match Cache::open(name, 1 << 20) {
            Err(e @ Error::InvalidName { .. }) => assert!(!e.to_string().is_empty()),
            other => panic!("name {name:?}: {other:?}"),
        }
        assert!(matches!(
            memshelf::unlink(name),
            Err(Error::InvalidName { .. })
        ));
    }
    let m = Cache::open(&long, 1 << 20).unwrap_err().to_string();
    assert!(m.contains("200"), "{m}");
    // 200 characters of the allowed set are fine.
    let seg = Seg(format!("{:_<200}", Seg::new("n200").0.clone()));
    assert_eq!(seg.0.len(), 200);
    Cache::open(&seg.0, 64 << 10)
        .unwrap()
        .put("k", "v")
        .unwrap();
}

#[test]
fn bad_capacities_and_options_are_refused() {
    let seg = Seg::new("bad-cap");
    for cap in [0, memshelf::MIN_CAPACITY - 1, memshelf::MAX_CAPACITY + 1] {
        match Cache::open(seg.name(), cap) {
            Err(e @ Error::InvalidArgument(_)) => {
                let m = e.to_string();
                assert!(m.contains(&cap.to_string()) && m.contains("16384"), "{m}");
            }
            other => panic!("capacity {cap}: {other:?}"),
        }
    }
    for j in [-0.1, 0.51, f64::NAN] {
        assert!(matches!(
            OpenOptions::new().ttl_jitter(j).open(seg.name()),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert!(matches!(
        OpenOptions::new().mode(0o1777).open(seg.name()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        OpenOptions::new().max_value_size(0).open(seg.name()),
        Err(Error::InvalidArgument(_))
    ));
    // Nothing was created by the refused opens.
    assert!(!shm_path(seg.name()).exists());
    assert!(matches!(
        OpenOptions::new().create(false).open(seg.name()),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn attach_only_on_a_missing_segment_is_not_found() {
    let seg = Seg::new("missing");
    match OpenOptions::new().create(false).open(seg.name()) {
        Err(e @ Error::NotFound { .. }) => assert!(e.to_string().contains(seg.name())),
        other => panic!("{other:?}"),
    }
    assert!(
        !shm_path(seg.name()).exists(),
        "attach-only created a segment"
    );
    assert!(matches!(
        memshelf::unlink(seg.name()),
        Err(Error::NotFound { .. })
    ));
    // Once created, attach-only works and sees the data.
    let c = Cache::open(seg.name(), 1 << 20).unwrap();
    c.put("k", "v").unwrap();
    let a = OpenOptions::new().create(false).open(seg.name()).unwrap();
    assert_eq!(a.get("k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn a_file_that_is_not_a_segment_is_incompatible_and_left_alone() {
    let mut rng = Rng::new();
    for len in [1 << 20, 4096, 100, 1] {
        let tmp = TempPath::new("foreign");
        let bytes = random_bytes(&mut rng, len);
        write_private(&tmp.0, &bytes);
        match OpenOptions::new().path(&tmp.0).open("foreign") {
            Err(
                e @ Error::IncompatibleSegment {
                    found: None,
                    expected: memshelf::LAYOUT_VERSION,
                    ..
                },
            ) => {
                let m = e.to_string();
                assert!(
                    m.contains("not a memshelf segment")
                        && m.contains(&memshelf::LAYOUT_VERSION.to_string()),
                    "{m}"
                );
            }
            other => panic!("{len}-byte random file: {other:?}"),
        }
        assert_eq!(
            std::fs::read(&tmp.0).unwrap(),
            bytes,
            "the file was modified"
        );
    }
}

#[test]
fn a_segment_of_another_layout_version_is_incompatible_naming_both() {
    // In /dev/shm ...
    let seg = Seg::new("version");
    let c = Cache::open(seg.name(), 1 << 20).unwrap();
    c.put("k", "v").unwrap();
    drop(c);
    let path = shm_path(seg.name());
    let theirs = memshelf::LAYOUT_VERSION + 41;
    write_at(&path, 8, &theirs.to_le_bytes());
    let before = std::fs::read(&path).unwrap();
    let check = |r: memshelf::Result<Cache>| match r {
        Err(e @ Error::IncompatibleSegment { .. }) => {
            let Error::IncompatibleSegment {
                found, expected, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(
                (*found, *expected),
                (Some(theirs), memshelf::LAYOUT_VERSION)
            );
            let m = e.to_string();
            assert!(
                m.contains(&theirs.to_string())
                    && m.contains(&memshelf::LAYOUT_VERSION.to_string()),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    };
    check(Cache::open(seg.name(), 1 << 20));
    check(OpenOptions::new().create(false).open(seg.name()));
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        1 << 20,
        "left alone"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "not a byte changed");
    // ... and through the path option.
    let tmp = TempPath::new("version");
    let c = OpenOptions::new()
        .capacity(1 << 20)
        .path(&tmp.0)
        .open("v")
        .unwrap();
    drop(c);
    write_at(&tmp.0, 8, &theirs.to_le_bytes());
    check(OpenOptions::new().path(&tmp.0).open("v"));
}
