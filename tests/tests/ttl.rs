//! TTLs: expiry, jitter bounds, the segment's default TTL, `touch`, `ttl`.

mod common;

use std::time::Duration;

use common::*;
use memshelf::{Cache, Expiry, OpenOptions, PutOptions, Ttl};

fn ms(d: Duration) -> PutOptions<'static> {
    PutOptions::ttl(d)
}

fn remaining(c: &Cache, k: &str) -> Duration {
    match c.ttl(k).unwrap() {
        Some(Expiry::In(d)) => d,
        other => panic!("{k}: expected a finite TTL, got {other:?}"),
    }
}

#[test]
fn an_entry_expires_and_is_never_returned_after() {
    let seg = Seg::new("ttl-exp");
    let c = Cache::open(seg.name(), 1 << 20).unwrap();
    c.put_with("short", "v", &ms(Duration::from_millis(150)))
        .unwrap();
    c.put("forever", "v").unwrap();
    assert_eq!(c.get("short").unwrap().as_deref(), Some(&b"v"[..]));
    let d = remaining(&c, "short");
    assert!(
        d <= Duration::from_millis(150) && d > Duration::ZERO,
        "{d:?}"
    );
    assert_eq!(c.ttl("forever").unwrap(), Some(Expiry::Never));
    assert_eq!(c.ttl("absent").unwrap(), None);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.get("short").unwrap(), None);
    assert_eq!(c.ttl("short").unwrap(), None);
    assert!(!c.contains("short").unwrap());
    assert!(!c.keys(None).any(|k| k == b"short"));
    assert!(
        !c.delete("short").unwrap(),
        "an expired entry is not 'present'"
    );
    assert!(
        c.add("short", "again").unwrap(),
        "add succeeds over an expired entry"
    );
    assert_eq!(c.get("forever").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(c.stats().expirations >= 1);
}

#[test]
fn jitter_spreads_ttls_within_their_bounds() {
    let seg = Seg::new("ttl-jit");
    let c = OpenOptions::new()
        .capacity(1 << 20)
        .ttl_jitter(0.2)
        .open(seg.name())
        .unwrap();
    let mut seen = Vec::new();
    for i in 0..400 {
        let k = format!("k{i}");
        c.put_with(&k, "v", &ms(Duration::from_secs(10))).unwrap();
        let d = remaining(&c, &k);
        // [8 s, 12 s], less the few ms elapsed since the put.
        assert!(
            d >= Duration::from_millis(7_900) && d <= Duration::from_secs(12),
            "ttl {d:?} outside [8 s, 12 s]"
        );
        seen.push(d.as_millis());
    }
    seen.sort();
    let (lo, hi) = (seen[0], seen[seen.len() - 1]);
    assert!(hi - lo > 2_000, "not spread: {lo}..{hi} ms");
    // Both halves are used (uniform, not one-sided).
    let below = seen.iter().filter(|&&m| m < 9_990).count();
    let above = seen.iter().filter(|&&m| m > 10_010).count();
    assert!(below > 100 && above > 100, "below {below}, above {above}");
    seen.dedup();
    assert!(seen.len() > 100, "only {} distinct TTLs", seen.len());
    // An entry that never expires stays so.
    c.put_with("never", "v", &PutOptions::ttl(Ttl::Never))
        .unwrap();
    assert_eq!(c.ttl("never").unwrap(), Some(Expiry::Never));
}

#[test]
fn the_default_ttl_applies_to_puts_without_one() {
    let seg = Seg::new("ttl-def");
    let c = OpenOptions::new()
        .capacity(1 << 20)
        .ttl(Duration::from_millis(250))
        .open(seg.name())
        .unwrap();
    c.put("default", "v").unwrap();
    c.put_with("never", "v", &PutOptions::ttl(Ttl::Never))
        .unwrap();
    c.put_with("long", "v", &ms(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(c.incr("counter", 1).unwrap(), 1);
    assert!(remaining(&c, "default") <= Duration::from_millis(250));
    assert!(remaining(&c, "counter") <= Duration::from_millis(250));
    assert!(remaining(&c, "long") > Duration::from_secs(59));
    assert_eq!(c.ttl("never").unwrap(), Some(Expiry::Never));
    // Another handle asking for another default gets the segment's.
    let c2 = OpenOptions::new()
        .ttl(Duration::from_secs(3600))
        .open(seg.name())
        .unwrap();
    c2.put("other-handle", "v").unwrap();
    assert!(remaining(&c, "other-handle") <= Duration::from_millis(250));
    std::thread::sleep(Duration::from_millis(450));
    for k in ["default", "counter", "other-handle"] {
        assert_eq!(c.get(k).unwrap(), None, "{k} outlived the default TTL");
    }
    assert!(c.contains("never").unwrap());
    assert!(c.contains("long").unwrap());
    // incr on an expired counter counts from 0 again.
    assert_eq!(c.incr("counter", 5).unwrap(), 5);
}

#[test]
fn touch_sets_a_new_ttl_on_present_keys_only() {
    let seg = Seg::new("ttl-touch");
    let c = Cache::open(seg.name(), 1 << 20).unwrap();
    c.put_with("a", "va", &ms(Duration::from_millis(150)))
        .unwrap();
    c.put_with("b", "vb", &ms(Duration::from_secs(60))).unwrap();
    c.put_with("gone", "v", &ms(Duration::from_millis(50)))
        .unwrap();
    c.put("forever", "v").unwrap();
    assert!(c.touch("a", Duration::from_secs(30)).unwrap());
    assert!(c.touch("b", Duration::from_millis(150)).unwrap());
    assert!(c.touch("forever", Duration::from_millis(150)).unwrap());
    assert!(!c.touch("absent", Duration::from_secs(1)).unwrap());
    let d = remaining(&c, "a");
    assert!(
        d > Duration::from_secs(29) && d <= Duration::from_secs(30),
        "{d:?}"
    );
    assert!(remaining(&c, "b") <= Duration::from_millis(150));
    assert!(remaining(&c, "forever") <= Duration::from_millis(150));
    std::thread::sleep(Duration::from_millis(350));
    assert!(
        !c.touch("gone", Duration::from_secs(30)).unwrap(),
        "touch revived an expired key"
    );
    assert_eq!(c.get("gone").unwrap(), None);
    assert_eq!(
        c.get("a").unwrap().as_deref(),
        Some(&b"va"[..]),
        "value kept by touch"
    );
    assert_eq!(c.get("b").unwrap(), None);
    assert_eq!(c.get("forever").unwrap(), None);
    assert!(c.touch("a", Ttl::Never).unwrap());
    assert_eq!(c.ttl("a").unwrap(), Some(Expiry::Never));
    assert_eq!(c.get("a").unwrap().as_deref(), Some(&b"va"[..]));
}

#[test]
fn incr_keeps_the_expiry_of_an_existing_entry() {
    let seg = Seg::new("ttl-incr");
    let c = Cache::open(seg.name(), 1 << 20).unwrap();
    c.put_with("n", "41", &ms(Duration::from_millis(200)))
        .unwrap();
    assert_eq!(c.incr("n", 1).unwrap(), 42);
    assert!(remaining(&c, "n") <= Duration::from_millis(200));
    assert_eq!(
        c.incr_with("m", 1, Ttl::After(Duration::from_millis(200)))
            .unwrap(),
        1
    );
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(c.get("n").unwrap(), None);
    assert_eq!(c.get("m").unwrap(), None);
    assert_eq!(c.incr("n", 1).unwrap(), 1);
}

#[test]
fn ttl_conversions() {
    assert_eq!(Ttl::from_secs_f64(0.0).unwrap(), Ttl::Default);
    assert_eq!(
        Ttl::from_secs_f64(0.0001).unwrap(),
        Ttl::After(Duration::from_millis(1)),
        "sub-millisecond TTLs round up to the 1 ms resolution"
    );
    assert_eq!(
        Ttl::from_secs_f64(1.5).unwrap(),
        Ttl::After(Duration::from_millis(1500))
    );
    assert_eq!(Ttl::from_millis(0).unwrap(), Ttl::Default);
    assert_eq!(Ttl::from_millis(u64::MAX).unwrap(), Ttl::Never);
}

/// The segment-wide TTL cap (an agent's degraded mode) and the keeper: while
/// the recorded keeper is dead, every write is capped.
#[test]
fn ttl_cap_and_a_dead_keeper_cap_every_write() {
    let seg = Seg::new("cap");
    let c = Cache::open(seg.name(), 1 << 20).unwrap();
    c.set_ttl_cap(Some(Duration::from_millis(300))).unwrap();
    assert_eq!(c.ttl_cap(), Some(Duration::from_millis(300)));
    c.put("no-ttl", "v").unwrap();
    c.put_with(
        "long",
        "v",
        &memshelf::PutOptions::ttl(Duration::from_secs(3600)),
    )
    .unwrap();
    for k in ["no-ttl", "long"] {
        match c.ttl(k).unwrap() {
            Some(memshelf::Expiry::In(d)) => assert!(d <= Duration::from_millis(300), "{k}: {d:?}"),
            other => panic!("{k}: {other:?}"),
        }
    }
    c.set_ttl_cap(None).unwrap();
    assert_eq!(c.ttl_cap(), None);
    c.put("free", "v").unwrap();
    assert_eq!(c.ttl("free").unwrap(), Some(memshelf::Expiry::Never));
    assert!(c.set_ttl_cap(Some(Duration::ZERO)).is_err());

    // A keeper that is alive imposes nothing; once it is dead, writes are
    // capped at its cap.
    let mut keeper = Worker::spawn(
        "keeper",
        &wargs!("seg" => seg.name(), "cap" => 1 << 20, "cap_ms" => 500),
    );
    poll_until(Duration::from_secs(20), "the keeper", || {
        c.keeper_alive() == Some(true)
    });
    c.put("kept", "v").unwrap();
    assert_eq!(c.ttl("kept").unwrap(), Some(memshelf::Expiry::Never));
    keeper.kill();
    poll_until(Duration::from_secs(5), "the keeper seen dead", || {
        c.keeper_alive() == Some(false)
    });
    std::thread::sleep(Duration::from_millis(100)); // past the liveness cache
    assert_eq!(c.ttl_cap(), Some(Duration::from_millis(500)));
    c.put("orphaned", "v").unwrap();
    match c.ttl("orphaned").unwrap() {
        Some(memshelf::Expiry::In(d)) => assert!(d <= Duration::from_millis(500), "{d:?}"),
        other => panic!("{other:?}"),
    }
    // A new keeper (a restarted agent) lifts it.
    c.become_keeper(Duration::from_secs(1)).unwrap();
    assert_eq!(c.ttl_cap(), None);
}

/// `entries` counts live entries from counters: 0 after clear, and deletes,
/// replacements and expiries keep it exact.
#[test]
fn entries_counts_live_entries_and_reads_zero_after_clear() {
    let seg = Seg::new("entries");
    let c = Cache::open(seg.name(), 4 << 20).unwrap();
    for i in 0..100 {
        c.put(format!("k{i}"), "v").unwrap();
    }
    assert_eq!(c.stats().entries, 100);
    for i in 0..100 {
        c.put(format!("k{i}"), "v2").unwrap(); // updates
    }
    assert_eq!(c.stats().entries, 100);
    for i in 0..10 {
        assert!(c.delete(format!("k{i}")).unwrap());
    }
    assert_eq!(c.stats().entries, 90);
    c.clear().unwrap();
    assert_eq!(c.stats().entries, 0);
    assert_eq!(c.keys(None).count(), 0);
    c.put("after", "v").unwrap();
    assert_eq!(c.stats().entries, 1);
    c.put_with(
        "short",
        "v",
        &memshelf::PutOptions::ttl(Duration::from_millis(20)),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(c.get("short").unwrap(), None); // reaped on read
    assert_eq!(c.stats().entries, 1);
}
