use memshelf::*;
use std::time::Duration;

fn name(t: &str) -> String {
    format!("t-{t}-{}", std::process::id())
}

#[test]
fn basic_ops() {
    let n = name("basic");
    let c = Cache::open(&n, 4 << 20).unwrap();
    assert_eq!(c.get(b"a").unwrap(), None);
    c.put(b"a", b"1").unwrap();
    assert_eq!(c.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    c.put(b"a", b"22").unwrap();
    assert_eq!(c.get(b"a").unwrap().as_deref(), Some(&b"22"[..]));
    assert!(!c.add(b"a", b"x").unwrap());
    assert!(c.add(b"b", b"x").unwrap());
    assert!(c.delete(b"a").unwrap());
    assert!(!c.delete(b"a").unwrap());
    assert_eq!(c.incr(b"n", 5).unwrap(), 5);
    assert_eq!(c.incr(b"n", -7).unwrap(), -2);
    for i in 0..200_000u32 {
        c.put(format!("k{i}"), vec![i as u8; 100]).unwrap();
    }
    let s = c.stats();
    assert!(s.evictions > 0, "{s:?}");
    let last = c.get(b"k199999").unwrap().unwrap();
    assert_eq!(last, vec![(199999u32) as u8; 100]);
    c.put_with(b"t", b"v", &PutOptions::ttl(Duration::from_millis(30)))
        .unwrap();
    assert!(c.get(b"t").unwrap().is_some());
    std::thread::sleep(Duration::from_millis(40));
    assert!(c.get(b"t").unwrap().is_none());
    println!("{:?}", c.stats());
    unlink(&n).unwrap();
}
