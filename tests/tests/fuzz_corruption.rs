//! Corruption fuzz (proptest, stable Rust): random 64-bit words written at
//! random word offsets of a *live* segment (the header's live words, the
//! process registry, tag records, lease records, index buckets, both
//! logs; never the geometry, whose checksum refuses it at attach) while
//! this process and a worker process operate on it.
//!
//! Each case must end with: no panic here or in the worker, no hang (every
//! wait is bounded), no value returned that was not written for its key
//! (values carry their key and a checksum: `check_value`), and the worker
//! exits by itself, never by a signal. Errors (`Timeout`, corruption) are
//! allowed. A failing case is shrunk by proptest to a minimal list of
//! writes and printed.

mod common;

use std::os::unix::process::ExitStatusExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use memshelf::{Cache, FillError, GetOrSetOptions};
use memshelf_tests::header;
use proptest::prelude::{
    Just, ProptestConfig, Strategy, TestCaseError, any, prop_assert, prop_assert_eq, prop_oneof,
    proptest,
};

const CAP: u64 = 1 << 20;

/// Parts of a segment a write may hit (byte ranges are read from the
/// segment's header at run time).
#[derive(Clone, Copy, Debug)]
enum Area {
    /// Clear epoch, log heads and tails, TTL cap, keeper, entries base
    /// (bytes 256..768 of the header).
    HeaderLive,
    Registry,
    Tags,
    Leases,
    Index,
    /// A bucket's lock word (word 0 of a bucket).
    LockWord,
    SmallLog,
    MainLog,
}

fn area() -> impl Strategy<Value = Area> {
    prop_oneof![
        Just(Area::HeaderLive),
        Just(Area::Registry),
        Just(Area::Tags),
        Just(Area::Leases),
        Just(Area::Index),
        Just(Area::LockWord),
        Just(Area::SmallLog),
        Just(Area::MainLog),
    ]
}

/// A word to write: random, small (cursors, counts, tokens), or extreme.
fn word() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => any::<u64>(),
        2 => 0..4096u64,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => (0..64u32).prop_map(|b| 1u64 << b),
    ]
}

/// One write: an area, where in it (a fraction, in 1/2^32), a word, and
/// how long to wait before it (ms).
type Hit = (Area, u32, u64, u8);

/// The byte range of `a` in a segment with header `hdr`.
fn range(hdr: &[u8], a: Area) -> (u64, u64) {
    let w = |off| header::word(hdr, off);
    // Header offsets (core/src/layout.rs `Header`): tags_off 72, ntags 80,
    // nleases 96, registry_off 152, nreg 160.
    let (tags_off, ntags) = (w(72), w(80));
    let (leases_off, nleases) = (w(header::LEASES_OFF), w(96));
    let (reg_off, nreg) = (w(152), w(160));
    let index_off = w(header::INDEX_OFF);
    let small_off = w(header::SMALL_OFF);
    let main_off = w(header::MAIN_OFF);
    let main_len = w(header::MAIN_LEN);
    match a {
        Area::HeaderLive => (256, 768),
        Area::Registry => (reg_off, reg_off + nreg * 8),
        Area::Tags => (tags_off, tags_off + ntags * 8),
        Area::Leases => (leases_off, leases_off + nleases * 64),
        Area::Index | Area::LockWord => (index_off, small_off),
        Area::SmallLog => (small_off, main_off),
        Area::MainLog => (main_off, main_off + main_len),
    }
}

fn offset(hdr: &[u8], a: Area, frac: u32) -> u64 {
    let (from, to) = range(hdr, a);
    assert!(from < to && to <= CAP, "{a:?}: {from}..{to}");
    let words = (to - from) / 8;
    let mut off = from + ((u64::from(frac) * words) >> 32) * 8;
    if let Area::LockWord = a {
        off -= (off - from) % header::BUCKET_SIZE;
    }
    off
}

/// This process's own operations on the segment until `stop`: returns the
/// number of operations; panics on a value not written for its key.
fn operate(c: Cache, stop: Arc<AtomicBool>, ops: Arc<AtomicU64>) {
    let mut rng = Rng::new();
    while !stop.load(Ordering::Relaxed) {
        let key = format!("k:{}", rng.u64(..300));
        match rng.u64(..8) {
            0..=3 => {
                if let Ok(Some(v)) = c.get(&key) {
                    check_value(key.as_bytes(), &v)
                        .unwrap_or_else(|e| panic!("corrupt read of {key}: {e}"));
                }
            }
            4 | 5 => {
                let v = make_value(
                    key.as_bytes(),
                    rng.u64(..),
                    rng.u64(..800) as usize,
                    &mut rng,
                );
                let _ = c.put(&key, v);
            }
            6 => {
                let _ = c.delete(&key);
            }
            _ => {
                let g = format!("g:{}", rng.u64(..20));
                let r = c.get_or_set(
                    &g,
                    &GetOrSetOptions {
                        lease: Duration::from_millis(100),
                        ..Default::default()
                    },
                    || {
                        Ok::<_, String>(Some(make_value(
                            g.as_bytes(),
                            7,
                            40,
                            &mut Rng::with_seed(7),
                        )))
                    },
                );
                // The worker's `chaos` role fills these keys with b"filled".
                if let Ok(Some(v)) = &r
                    && v != b"filled"
                {
                    check_value(g.as_bytes(), v)
                        .unwrap_or_else(|e| panic!("corrupt get_or_set of {g}: {e}"));
                }
                if let Err(FillError::Factory(e)) = r {
                    panic!("the factory cannot fail: {e}");
                }
            }
        }
        ops.fetch_add(1, Ordering::Relaxed);
    }
}

fn run_case(hits: &[Hit]) -> Result<(), TestCaseError> {
    let seg = Seg::new("fuzz");
    let c = Cache::open(seg.name(), CAP).expect("open");
    let mut rng = Rng::new();
    for i in 0..400 {
        let k = format!("k:{}", i % 300);
        c.put(
            &k,
            make_value(k.as_bytes(), i, rng.u64(..800) as usize, &mut rng),
        )
        .expect("fill");
    }
    let path = shm_path(seg.name());
    let hdr = read_header(&path);
    let marker = TempPath::new("fuzz-ready");
    let mut w = Worker::spawn(
        "chaos",
        &wargs!("seg" => seg.name(), "cap" => CAP, "ms" => 900, "threads" => 2,
                "marker" => marker.0.display()),
    );
    poll_until(Duration::from_secs(20), "worker attached", || {
        marker.0.exists()
    });

    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let me = {
        let (c, stop, ops) = (c.clone(), stop.clone(), ops.clone());
        std::thread::spawn(move || operate(c, stop, ops))
    };
    for &(a, frac, word, wait) in hits {
        std::thread::sleep(Duration::from_millis(u64::from(wait % 20)));
        write_at(&path, offset(&hdr, a, frac), &word.to_ne_bytes());
    }
    // Let both sides run on the damaged segment a little longer.
    std::thread::sleep(Duration::from_millis(150));
    stop.store(true, Ordering::Relaxed);
    let (st, out) = w.output(Duration::from_secs(20));
    // Our own thread: bounded (a hang fails here).
    let joined = with_deadline(
        Duration::from_secs(20),
        "this process's operations",
        move || {
            me.join().map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            })
        },
    );
    prop_assert!(
        joined.is_ok(),
        "this process panicked: {:?} (writes {hits:?})",
        joined.err()
    );
    prop_assert!(
        st.signal().is_none(),
        "worker killed by signal {:?} (writes {hits:?})",
        st.signal()
    );
    prop_assert!(
        st.success(),
        "worker failed: {st} (3 = corrupt read, 101 = panic); {out}; writes {hits:?}"
    );
    let r = parse_result(&out);
    prop_assert_eq!(r["corrupt"], 0);
    eprintln!(
        "fuzz case: {} writes; worker ops={} errors={}; this process ops={}",
        hits.len(),
        r["ops"],
        r["errors"],
        ops.load(Ordering::Relaxed)
    );
    prop_assert!(
        r["ops"] > 0 && ops.load(Ordering::Relaxed) > 0,
        "no progress: {:?}",
        r
    );
    // After the case: still usable, still bounded.
    let c2 = c.clone();
    with_deadline(Duration::from_secs(20), "ops after the writes", move || {
        let mut rng = Rng::with_seed(3);
        for i in 0..100 {
            let k = format!("after:{i}");
            let _ = c2.put(&k, make_value(k.as_bytes(), i, 50, &mut rng));
            if let Ok(Some(v)) = c2.get(&k) {
                check_value(k.as_bytes(), &v).expect("value written for its key");
            }
        }
        let _ = c2.stats();
        let _ = c2.keys(None).take(100).count();
    });
    Ok(())
}

proptest! {
    // Each case runs two processes for about a second: a bounded number of
    // cases keeps the whole test under 30 s on 2 cores.
    #![proptest_config(ProptestConfig {
        cases: 20,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_words_at_random_offsets_of_a_live_segment(
        hits in proptest::collection::vec((area(), any::<u32>(), word(), any::<u8>()), 1..48)
    ) {
        run_case(&hits)?;
    }
}
