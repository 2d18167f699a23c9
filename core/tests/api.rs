//! Single-process API tests: parsing helpers, messages, every operation's
//! basic contract. (Multi-process, crash and corruption tests live in the
//! workspace's `tests/` package.)

use std::time::Duration;

use memshelf::message::Message;
use memshelf::*;

struct Seg(String);
impl Seg {
    fn new(t: &str) -> Seg {
        Seg(format!("api-{t}-{}-{}", std::process::id(), rand()))
    }
}
impl Drop for Seg {
    fn drop(&mut self) {
        let _ = unlink(&self.0);
    }
}
fn rand() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

#[test]
fn parse_size_units() {
    assert_eq!(parse_size("1024").unwrap(), 1024);
    assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
    assert_eq!(parse_size("64mb").unwrap(), 64 << 20);
    assert_eq!(parse_size(" 2 GiB ").unwrap(), 2 << 30);
    assert_eq!(parse_size("0.5k").unwrap(), 512);
    for bad in [
        "",
        "MiB",
        "12 parsecs",
        "-1",
        "1e3",
        "99999999999999999999TiB",
    ] {
        assert!(parse_size(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn names() {
    for ok in ["a", "cache-1", "A.b_c-9", &"x".repeat(200)] {
        validate_name(ok).unwrap();
    }
    for bad in [
        "",
        ".hidden",
        "..",
        "a/b",
        "/abs",
        "sp ace",
        "ü",
        &"x".repeat(201),
        "a\0b",
    ] {
        match validate_name(bad) {
            Err(Error::InvalidName { .. }) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn ttl_conversions() {
    assert_eq!(Ttl::from_secs_f64(0.0).unwrap(), Ttl::Default);
    assert_eq!(
        Ttl::from_secs_f64(1.5).unwrap(),
        Ttl::After(Duration::from_millis(1500))
    );
    assert_eq!(
        Ttl::from_secs_f64(1e-6).unwrap(),
        Ttl::After(Duration::from_millis(1))
    );
    for bad in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e12] {
        assert!(
            matches!(Ttl::from_secs_f64(bad), Err(Error::InvalidTtl(_))),
            "{bad}"
        );
    }
    assert_eq!(Ttl::from_millis(0).unwrap(), Ttl::Default);
    assert_eq!(Ttl::from_millis(u64::MAX).unwrap(), Ttl::Never);
    assert!(Ttl::from_millis(u64::MAX - 1).is_err());
}

#[test]
fn messages() {
    assert_eq!(
        Message::clear().to_json().unwrap(),
        r#"{"v":1,"op":"clear"}"#
    );
    assert_eq!(
        Message::heartbeat()
            .origin("h1:abc", 7)
            .ts(5)
            .to_json()
            .unwrap(),
        r#"{"v":1,"op":"hb","origin":"h1:abc","seq":7,"ts":5}"#
    );
    assert_eq!(
        Message::tag(b"product:\"7\"").to_json().unwrap(),
        r#"{"v":1,"op":"tag","tag":"product:\"7\""}"#
    );
    assert_eq!(
        Message::delete_prefix(b"user:").to_json().unwrap(),
        r#"{"v":1,"op":"del_prefix","prefix":"user:"}"#
    );
    assert_eq!(
        Message::delete(&[b"a", b"\xff\x00"]).to_json().unwrap(),
        r#"{"v":1,"op":"del","keys":["a"],"keys_b64":["/wA="]}"#
    );
}

#[test]
fn operations() {
    let s = Seg::new("ops");
    let c = OpenOptions::new().capacity(4 << 20).open(&s.0).unwrap();
    // put / get / get_into / read
    c.put(b"k", b"hello").unwrap();
    let mut buf = Vec::with_capacity(64);
    assert!(c.get_into(b"k", &mut buf).unwrap());
    assert_eq!(buf, b"hello");
    let mut small = [0u8; 2];
    assert_eq!(c.read(b"k", &mut small).unwrap(), ReadInto::TooSmall(5));
    let mut big = [0u8; 16];
    assert_eq!(c.read(b"k", &mut big).unwrap(), ReadInto::Hit(5));
    assert_eq!(&big[..5], b"hello");
    assert_eq!(c.read(b"nope", &mut big).unwrap(), ReadInto::Miss);
    // empty values are values
    c.put(b"empty", b"").unwrap();
    assert_eq!(c.get(b"empty").unwrap(), Some(vec![]));
    // add
    assert!(!c.add(b"k", b"x").unwrap());
    assert!(c.add(b"new", b"x").unwrap());
    // incr
    assert_eq!(c.incr(b"n", 1).unwrap(), 1);
    assert_eq!(c.incr(b"n", i64::MAX - 1).unwrap(), i64::MAX);
    assert!(matches!(c.incr(b"n", 1), Err(Error::NotAnInteger { .. })));
    assert!(matches!(c.incr(b"k", 1), Err(Error::NotAnInteger { .. })));
    assert_eq!(
        c.get(b"k").unwrap().as_deref(),
        Some(&b"hello"[..]),
        "failed incr changed nothing"
    );
    // ttl / touch
    assert_eq!(c.ttl(b"k").unwrap(), Some(Expiry::Never));
    assert_eq!(c.ttl(b"absent").unwrap(), None);
    assert!(c.touch(b"k", Duration::from_secs(100)).unwrap());
    match c.ttl(b"k").unwrap() {
        Some(Expiry::In(d)) => assert!(
            d > Duration::from_secs(98) && d <= Duration::from_secs(100),
            "{d:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(!c.touch(b"absent", Duration::from_secs(1)).unwrap());
    assert_eq!(c.get(b"k").unwrap().as_deref(), Some(&b"hello"[..]));
    // tags
    let tagged = PutOptions::default().with_tags(&[b"t1", b"t2"]);
    c.put_with(b"a", b"1", &tagged).unwrap();
    c.put_with(b"b", b"2", &PutOptions::default().with_tags(&[b"t2"]))
        .unwrap();
    c.invalidate_tag(b"t1").unwrap();
    assert_eq!(c.get(b"a").unwrap(), None);
    assert!(c.get(b"b").unwrap().is_some());
    c.invalidate_tag(b"t2").unwrap();
    assert_eq!(c.get(b"b").unwrap(), None);
    c.put_with(b"a", b"again", &tagged).unwrap();
    assert_eq!(
        c.get(b"a").unwrap().as_deref(),
        Some(&b"again"[..]),
        "a new put after invalidation lives"
    );
    // keys / delete_prefix
    for i in 0..10 {
        c.put(format!("user:{i}"), b"u").unwrap();
    }
    let mut keys: Vec<_> = c.keys(Some(b"user:")).collect();
    keys.sort();
    assert_eq!(keys.len(), 10);
    assert_eq!(c.delete_prefix(b"user:").unwrap(), 10);
    assert_eq!(c.keys(Some(b"user:")).count(), 0);
    // clear
    c.clear().unwrap();
    assert_eq!(c.get(b"k").unwrap(), None);
    assert_eq!(c.keys(None).count(), 0);
    c.put(b"k", b"after clear").unwrap();
    assert_eq!(c.get(b"k").unwrap().as_deref(), Some(&b"after clear"[..]));
    let st = c.stats();
    assert_eq!(st.layout_version, LAYOUT_VERSION);
    assert!(
        st.hits > 0 && st.misses > 0 && st.inserts > 0 && st.deletes >= 10,
        "{st:?}"
    );
}

#[test]
fn bad_input_changes_nothing() {
    let s = Seg::new("bad");
    let c = Cache::open(&s.0, 1 << 20).unwrap();
    c.put(b"keep", b"v").unwrap();
    let before = c.stats();
    assert!(matches!(
        c.put(b"", b"v"),
        Err(Error::KeyTooLong { len: 0, .. })
    ));
    let long = vec![b'k'; MAX_KEY_LEN + 1];
    let e = c.put(&long, b"v").unwrap_err();
    assert!(e.to_string().contains("4096"), "{e}");
    let big = vec![0u8; c.max_value_size() + 1];
    let e = c.put(b"big", &big).unwrap_err();
    assert!(
        matches!(e, Error::ValueTooLarge { .. })
            && e.to_string().contains(&c.max_value_size().to_string()),
        "{e}"
    );
    let tags: Vec<&[u8]> = vec![b"t"; MAX_TAGS + 1];
    assert!(matches!(
        c.put_with(b"t", b"v", &PutOptions::default().with_tags(&tags)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        c.put_with(
            b"t",
            b"v",
            &PutOptions::ttl(MAX_TTL + Duration::from_secs(1))
        ),
        Err(Error::InvalidTtl(_))
    ));
    assert_eq!(c.get(b"big").unwrap(), None);
    assert_eq!(c.get(b"t").unwrap(), None);
    assert_eq!(c.get(b"keep").unwrap().as_deref(), Some(&b"v"[..]));
    let after = c.stats();
    assert_eq!(before.inserts, after.inserts);
}

#[test]
fn default_ttl_and_jitter() {
    let s = Seg::new("ttl");
    let c = OpenOptions::new()
        .capacity(1 << 20)
        .ttl(Duration::from_secs(10))
        .ttl_jitter(0.2)
        .open(&s.0)
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..200 {
        let k = format!("k{i}");
        c.put(&k, b"v").unwrap();
        match c.ttl(&k).unwrap() {
            Some(Expiry::In(d)) => {
                assert!(
                    d >= Duration::from_millis(7_900) && d <= Duration::from_secs(12),
                    "{d:?}"
                );
                seen.insert(d.as_millis() / 100);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(seen.len() > 10, "jitter spreads TTLs: {seen:?}");
    c.put_with(b"forever", b"v", &PutOptions::ttl(Ttl::Never))
        .unwrap();
    assert_eq!(c.ttl(b"forever").unwrap(), Some(Expiry::Never));
}

#[test]
fn get_or_set_single_process() {
    let s = Seg::new("gos");
    let c = Cache::open(&s.0, 1 << 20).unwrap();
    let opts = GetOrSetOptions::default();
    let mut runs = 0;
    for _ in 0..3 {
        let v = c
            .get_or_set(b"g", &opts, || {
                runs += 1;
                Ok::<_, String>(Some(b"computed".to_vec()))
            })
            .unwrap();
        assert_eq!(v.as_deref(), Some(&b"computed"[..]));
    }
    assert_eq!(runs, 1);
    // A failing factory stores nothing and reports its error.
    let e = c
        .get_or_set(b"f", &opts, || Err::<Option<Vec<u8>>, _>("origin down"))
        .unwrap_err();
    assert!(matches!(e, FillError::Factory("origin down")));
    assert_eq!(c.get(b"f").unwrap(), None);
    // Negative caching.
    let neg = GetOrSetOptions {
        negative_ttl: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let mut asked = 0;
    for _ in 0..3 {
        let v = c.get_or_set(b"none", &neg, || {
            asked += 1;
            Ok::<_, String>(None)
        });
        assert_eq!(v.unwrap(), None);
    }
    assert_eq!(asked, 1);
    assert_eq!(c.get(b"none").unwrap(), None);
    // Grace: an expired entry is served stale to others while one refreshes.
    let grace = GetOrSetOptions {
        ttl: Ttl::After(Duration::from_millis(20)),
        grace: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    c.get_or_set(b"sw", &grace, || Ok::<_, String>(Some(b"v1".to_vec())))
        .unwrap();
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        c.get(b"sw").unwrap(),
        None,
        "get does not serve stale values"
    );
    match c.begin_fill(b"sw", &grace).unwrap() {
        Fill::Lead(lease) => {
            assert_eq!(lease.stale_value(), Some(&b"v1"[..]));
            // While this caller refreshes, another gets the stale value at once.
            match c.begin_fill(b"sw", &grace).unwrap() {
                Fill::Stale(v) => assert_eq!(v, b"v1"),
                other => panic!("{other:?}"),
            }
            assert!(lease.fill(Some(b"v2")).unwrap());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.get(b"sw").unwrap().as_deref(), Some(&b"v2"[..]));
    // A delete while the factory runs voids the fill.
    match c.begin_fill(b"race", &opts).unwrap() {
        Fill::Lead(lease) => {
            c.put(b"race", b"old").unwrap();
            assert!(c.delete(b"race").unwrap());
            assert!(
                !lease.fill(Some(b"stale")).unwrap(),
                "voided fill must not be stored"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.get(b"race").unwrap(), None);
    // A clear while the factory runs voids it too.
    match c.begin_fill(b"race2", &opts).unwrap() {
        Fill::Lead(lease) => {
            c.clear().unwrap();
            lease.fill(Some(b"stale")).unwrap();
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.get(b"race2").unwrap(), None);
    // fill_with_ttl: the factory chooses the TTL (a read-through helper
    // learns the origin's remaining TTL with the value).
    match c.begin_fill(b"timed", &opts).unwrap() {
        Fill::Lead(lease) => {
            let ttl = Ttl::After(Duration::from_secs(7));
            assert!(lease.fill_with_ttl(Some(b"v"), ttl).unwrap());
        }
        other => panic!("{other:?}"),
    }
    match c.ttl(b"timed").unwrap() {
        Some(Expiry::In(d)) => assert!(d <= Duration::from_secs(7) && d > Duration::from_secs(6)),
        other => panic!("{other:?}"),
    }
    // A bad TTL is an error, stores nothing and releases the lease.
    match c.begin_fill(b"timed-bad", &opts).unwrap() {
        Fill::Lead(lease) => {
            let bad = Ttl::After(Duration::from_secs(u64::MAX / 2));
            assert!(lease.fill_with_ttl(Some(b"v"), bad).is_err());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.get(b"timed-bad").unwrap(), None);
    assert!(matches!(
        c.begin_fill(b"timed-bad", &opts).unwrap(),
        Fill::Lead(_)
    ));
    // A delete while the factory runs voids a timed fill too.
    match c.begin_fill(b"timed-race", &opts).unwrap() {
        Fill::Lead(lease) => {
            c.delete(b"timed-race").unwrap();
            let ttl = Ttl::After(Duration::from_secs(7));
            assert!(!lease.fill_with_ttl(Some(b"stale"), ttl).unwrap());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.get(b"timed-race").unwrap(), None);
}

#[test]
fn attach_sees_creator_capacity_and_data() {
    let s = Seg::new("attach");
    let a = Cache::open(&s.0, 2 << 20).unwrap();
    a.put(b"x", b"1").unwrap();
    let b = OpenOptions::new()
        .capacity(64 << 20)
        .create(false)
        .open(&s.0)
        .unwrap();
    assert_eq!(b.capacity(), 2 << 20);
    assert_eq!(b.stats().capacity_bytes, 2 << 20);
    assert_eq!(b.get(b"x").unwrap().as_deref(), Some(&b"1"[..]));
    assert!(matches!(
        OpenOptions::new()
            .create(false)
            .open(&format!("{}-missing", s.0)),
        Err(Error::NotFound { .. })
    ));
    unlink(&s.0).unwrap();
    // Attached handles keep working after unlink.
    a.put(b"y", b"2").unwrap();
    assert_eq!(b.get(b"y").unwrap().as_deref(), Some(&b"2"[..]));
    assert!(matches!(unlink(&s.0), Err(Error::NotFound { .. })));
}

#[test]
fn a_load_fills_the_whole_cache_before_anything_is_evicted() {
    let s = Seg::new("fill");
    let c = Cache::open(&s.0, 16 << 20).unwrap();
    let n = 40_000u32; // ~7 MB of items in ~13 MB of logs
    for i in 0..n {
        c.put(format!("user:{i:08}"), [i as u8; 100]).unwrap();
    }
    let st = c.stats();
    assert_eq!(st.evictions, 0, "{st:?}");
    for i in 0..n {
        assert!(
            c.get(format!("user:{i:08}")).unwrap().is_some(),
            "user:{i} evicted: {:?}",
            c.stats()
        );
    }
    // After a clear the whole capacity is usable again.
    c.clear().unwrap();
    for i in 0..n {
        c.put(format!("again:{i:08}"), [i as u8; 100]).unwrap();
    }
    let missing = (0..n)
        .filter(|i| c.get(format!("again:{i:08}")).unwrap().is_none())
        .count();
    assert_eq!(missing, 0, "{:?}", c.stats());
}

/// A sink over a caller's buffer that gives exactly the room asked for
/// (or none), with canary bytes after it, and records every call.
struct Exact {
    buf: Vec<std::mem::MaybeUninit<u8>>,
    give: bool,
    /// Time spent in `room`, between the read's header and its copy.
    dawdle: Duration,
    rooms: Vec<usize>,
    filled: Vec<usize>,
}
const CANARY: u8 = 0xa5;
impl Exact {
    fn new(give: bool) -> Exact {
        Exact {
            buf: Vec::new(),
            give,
            dawdle: Duration::ZERO,
            rooms: Vec::new(),
            filled: Vec::new(),
        }
    }
    /// The first `len` bytes of the room (written by a hit) and the
    /// canary bytes after them.
    fn bytes(&self, len: usize) -> (Vec<u8>, &[std::mem::MaybeUninit<u8>]) {
        // SAFETY: a hit wrote the first `len` bytes of the room (the
        // `ValueSink` contract); the caller asks only after a hit.
        let v = self.buf[..len]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        (v, &self.buf[len..])
    }
}
impl ValueSink for Exact {
    fn room(&mut self, len: usize) -> Option<&mut [std::mem::MaybeUninit<u8>]> {
        self.rooms.push(len);
        let t = std::time::Instant::now();
        while t.elapsed() < self.dawdle {
            std::hint::spin_loop();
        }
        self.buf = vec![std::mem::MaybeUninit::new(CANARY); len + 16];
        self.give.then(|| &mut self.buf[..len])
    }
    fn filled(&mut self, len: usize) {
        self.filled.push(len);
    }
}

/// Puts two entries that read as misses: `short` (expired) and `tagged`
/// (its tag invalidated).
fn plant_dead_entries(c: &Cache) {
    c.put_with(
        b"short",
        b"lived",
        &PutOptions::ttl(Duration::from_millis(1)),
    )
    .unwrap();
    c.put_with(b"tagged", b"v", &PutOptions::default().with_tags(&[b"t"]))
        .unwrap();
    c.invalidate_tag(b"t").unwrap();
    std::thread::sleep(Duration::from_millis(5));
}

#[test]
fn sinks_and_slices_receive_exactly_the_value() {
    let s = Seg::new("sink");
    let c = Cache::open(&s.0, 8 << 20).unwrap();
    let lens = (0..=80).chain([255, 256, 257, 4095, 4096, 4097, 100_003]);
    for len in lens {
        let key = format!("k{len}");
        let value: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8 | 1).collect();
        c.put(&key, &value).unwrap();
        // A sink with exactly the room: the value, not a byte past it.
        let mut e = Exact::new(true);
        assert!(c.get_into_sink(&key, &mut e).unwrap(), "len {len}");
        assert_eq!(e.filled, [len]);
        assert_eq!(e.rooms, [len]);
        let (got, after) = e.bytes(len);
        assert_eq!(got, value, "len {len}");
        assert!(
            after.iter().all(|b| {
                // SAFETY: the canary bytes were initialised by `room`.
                unsafe { b.assume_init() == CANARY }
            }),
            "len {len}: written past the room"
        );
        // A sink without room: still a hit, with the length.
        let mut none = Exact::new(false);
        assert!(c.get_into_sink(&key, &mut none).unwrap());
        assert_eq!(none.filled, [len]);
        // `read` into an exact, a larger and a smaller slice.
        let mut exact = vec![CANARY; len];
        assert_eq!(c.read(&key, &mut exact).unwrap(), ReadInto::Hit(len));
        assert_eq!(exact, value);
        let mut larger = vec![CANARY; len + 9];
        assert_eq!(c.read(&key, &mut larger).unwrap(), ReadInto::Hit(len));
        assert_eq!(larger[..len], value[..]);
        assert!(
            larger[len..].iter().all(|&b| b == CANARY),
            "len {len}: written past the value"
        );
        if len > 0 {
            let mut smaller = vec![CANARY; len - 1];
            assert_eq!(c.read(&key, &mut smaller).unwrap(), ReadInto::TooSmall(len));
            assert!(smaller.iter().all(|&b| b == CANARY), "TooSmall copied");
        }
    }
    // Misses: absent, expired (it validates, then is not live), invalidated.
    let mut e = Exact::new(true);
    assert!(!c.get_into_sink(b"absent", &mut e).unwrap());
    assert!(e.rooms.is_empty() && e.filled.is_empty());
    plant_dead_entries(&c);
    for k in ["short", "tagged"] {
        assert!(!c.get_into_sink(k, &mut Exact::new(true)).unwrap(), "{k}");
        assert_eq!(c.read(k, &mut [0u8; 8]).unwrap(), ReadInto::Miss, "{k}");
    }
    // A bad key is refused before any room is asked for.
    let mut e = Exact::new(true);
    assert!(matches!(
        c.get_into_sink(b"", &mut e),
        Err(Error::KeyTooLong { .. })
    ));
    assert!(e.rooms.is_empty());
}

/// The batch form, `get_many_into`: one sink for the whole batch, each
/// key's value copied straight into the room it gives, and `done` told
/// after each key whether it hit. Hits, misses (absent, expired,
/// invalidated) and repeats interleaved; `get_many` (a new `Vec` per hit)
/// answers the same.
#[test]
fn batch_sinks_receive_exactly_each_value() {
    let s = Seg::new("batchsink");
    let c = Cache::open(&s.0, 8 << 20).unwrap();
    let value = |len: usize| -> Vec<u8> { (0..len).map(|i| (i * 7 + len) as u8 | 1).collect() };
    let lens: Vec<usize> = (0..=80)
        .chain([255, 256, 257, 4095, 4096, 4097, 100_003])
        .collect();
    for &len in &lens {
        c.put(format!("k{len}"), value(len)).unwrap();
    }
    plant_dead_entries(&c);
    // Each hit's length, or None for a key that must miss.
    let mut batch: Vec<(String, Option<usize>)> = Vec::new();
    for (j, &len) in lens.iter().enumerate() {
        batch.push((format!("k{len}"), Some(len)));
        match j % 4 {
            0 => batch.push((format!("absent{j}"), None)),
            1 => batch.push(("short".into(), None)),
            2 => batch.push(("tagged".into(), None)),
            _ => batch.push((format!("k{}", lens[j / 2]), Some(lens[j / 2]))),
        }
    }
    let keys: Vec<&str> = batch.iter().map(|(k, _)| k.as_str()).collect();
    let mut sink = Exact::new(true);
    let mut seen = Vec::new();
    c.get_many_into(&keys, &mut sink, |e, i, hit| {
        let got = hit.then(|| {
            let len = *e.filled.last().expect("a hit was filled");
            let (v, after) = e.bytes(len);
            assert!(
                after.iter().all(|b| {
                    // SAFETY: the canary bytes were initialised by `room`.
                    unsafe { b.assume_init() == CANARY }
                }),
                "key {i}: written past the room"
            );
            v
        });
        e.rooms.clear();
        e.filled.clear();
        seen.push((i, got));
    })
    .unwrap();
    let want: Vec<(usize, Option<Vec<u8>>)> = batch
        .iter()
        .enumerate()
        .map(|(i, (_, len))| (i, len.map(value)))
        .collect();
    assert_eq!(seen.len(), want.len());
    for (got, want) in seen.iter().zip(&want) {
        assert!(
            got == want,
            "key {} ({}): wrong answer",
            want.0,
            batch[want.0].0
        );
    }
    let owned = c.get_many(&keys).unwrap();
    assert!(
        owned.iter().zip(&want).all(|(g, (_, w))| g == w),
        "get_many differs"
    );
    // A value read after an expired one (copied, then a miss) is not
    // handed out in the expired value's buffer.
    c.put_with(
        b"big",
        vec![1u8; 100_000],
        &PutOptions::ttl(Duration::from_millis(1)),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let after = c.get_many(&["big", "k1"]).unwrap();
    assert_eq!(after[0], None);
    let v = after[1].as_ref().unwrap();
    assert!(
        v == &value(1) && v.capacity() <= 8,
        "capacity {}",
        v.capacity()
    );
    // A sink without room: hits report their lengths, nothing is copied.
    let mut none = Exact::new(false);
    let mut lens_seen = Vec::new();
    c.get_many_into(&keys[..6], &mut none, |e, _, hit| {
        lens_seen.push(hit.then(|| *e.filled.last().unwrap()));
        e.filled.clear();
    })
    .unwrap();
    let want_lens: Vec<Option<usize>> = batch[..6].iter().map(|(_, l)| *l).collect();
    assert_eq!(lens_seen, want_lens);
    // A bad key anywhere fails the batch before any room is asked for.
    let mut e = Exact::new(true);
    let bad = ["k1", "k2", ""];
    assert!(matches!(
        c.get_many_into(&bad, &mut e, |_, _, _| panic!(
            "read before the keys were checked"
        )),
        Err(Error::KeyTooLong { .. })
    ));
    assert!(e.rooms.is_empty());
}

/// A sink's copy is validated like any read: while other threads rewrite
/// one key with values of other lengths, every hit is one whole value
/// (each value is its length's byte repeated, with its length in front).
#[test]
fn sink_reads_during_rewrites_are_whole_values() {
    let s = Seg::new("sinkrace");
    // A small segment, so the log laps the item being read (a rewrite
    // alone writes elsewhere), and a sink that dawdles between the read's
    // header and its copy: reads then fail validation and retry.
    let c = Cache::open(&s.0, 64 << 10).unwrap();
    let value = |len: usize| -> Vec<u8> {
        let mut v = vec![len as u8; len];
        v[..4].copy_from_slice(&(len as u32).to_le_bytes());
        v
    };
    c.put(b"k", value(100)).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    /// Stops the writers however the reader ends (a failed assertion too:
    /// the scope would otherwise wait for them forever).
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    // Hits and copies that failed validation, in `get_many_into`.
    let mut batch = (0u32, 0usize);
    let (hits, retries) = std::thread::scope(|sc| {
        let _stop = Stop(&stop);
        for w in 0..2 {
            let (c, stop) = (&c, &stop);
            sc.spawn(move || {
                let mut len = 4 + w;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    len = (len * 31 + 7) % 2500 + 4;
                    c.put(b"k", value(len)).unwrap();
                }
            });
        }
        let (mut hits, mut retries) = (0, 0);
        let mut reads = 0u32;
        let until = std::time::Instant::now() + Duration::from_millis(700);
        while std::time::Instant::now() < until {
            let mut e = Exact::new(true);
            // Every 8th read dawdles (each of its tries); the others mostly hit.
            reads += 1;
            e.dawdle = Duration::from_micros(if reads % 8 == 0 { 1000 } else { 0 });
            if c.get_into_sink(b"k", &mut e).unwrap() {
                let len = *e.filled.last().unwrap();
                assert_eq!(e.bytes(len).0, value(len), "a torn value of {len} bytes");
                hits += 1;
            }
            // Each room not followed by `filled` is a copy that failed
            // validation (the get then retried or missed).
            retries += e.rooms.len() - e.filled.len();
            let mut buf = [0u8; 8192];
            if let ReadInto::Hit(n) = c.read(b"k", &mut buf).unwrap() {
                assert_eq!(buf[..n], value(n), "a torn value of {n} bytes (read)");
            }
            // The batch form, through the same validation.
            let mut e = Exact::new(true);
            e.dawdle = Duration::from_micros(if reads % 8 == 4 { 1000 } else { 0 });
            c.get_many_into(&[b"k", b"k"], &mut e, |e, _, hit| {
                if hit {
                    let len = *e.filled.last().unwrap();
                    assert_eq!(
                        e.bytes(len).0,
                        value(len),
                        "a torn value of {len} bytes (batch)"
                    );
                    batch.0 += 1;
                }
                batch.1 += e.rooms.len() - e.filled.len();
                e.rooms.clear();
                e.filled.clear();
            })
            .unwrap();
        }
        (hits, retries)
    });
    eprintln!(
        "{hits} sink hits, {retries} copies failed validation; batches: {} hits, {} failed",
        batch.0, batch.1
    );
    assert!(
        hits > 100 && batch.0 > 100,
        "{hits} hits, {} in batches",
        batch.0
    );
    assert!(
        retries > 0 && batch.1 > 0,
        "no copy was lapped: the race was not exercised ({retries} single, {} batch)",
        batch.1
    );
}

/// `ts` feeds only the lag metric: a fractional one (`time.time() * 1000`)
/// is read as whole ms and a negative one as absent; either way the
/// delete is applied. Both used to make the whole message malformed, so
/// its delete was dropped.
#[test]
fn an_odd_ts_never_costs_a_message_its_delete() {
    let m = Message::parse(
        br#"{"v":1,"op":"del","keys":["x"],"ts":1700000000000.5}"#,
        1 << 20,
    )
    .unwrap();
    assert_eq!(m.ts, Some(1_700_000_000_000));
    let m = Message::parse(br#"{"v":1,"op":"del","keys":["x"],"ts":-5}"#, 1 << 20).unwrap();
    assert_eq!(m.ts, None);
    assert!(matches!(m.op, memshelf::message::Op::Del(_)));
}
