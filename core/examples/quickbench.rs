use std::time::Instant;
fn main() {
    let name = format!("qb-{}", std::process::id());
    let c = memshelf::Cache::open(&name, 256 << 20).unwrap();
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(100_000, |s| s.parse().unwrap());
    let keys: Vec<String> = (0..n)
        .map(|i| format!("user:{:06}:{:x}", i, i * 7919))
        .collect();
    let val = vec![7u8; 100];
    let t = Instant::now();
    for k in &keys {
        c.put(k, &val).unwrap();
    }
    println!("put  {:.0} ns/op", t.elapsed().as_nanos() as f64 / n as f64);
    let mut buf = Vec::with_capacity(256);
    let mut x = 1u64;
    let iters = 2_000_000u64;
    let t = Instant::now();
    for _ in 0..iters {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        let k = &keys[(x >> 33) as usize % n as usize];
        assert!(c.get_into(k, &mut buf).unwrap());
    }
    println!(
        "get_into {:.0} ns/op",
        t.elapsed().as_nanos() as f64 / iters as f64
    );
    let t = Instant::now();
    for _ in 0..iters {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        let k = &keys[(x >> 33) as usize % n as usize];
        assert!(c.get(k).unwrap().is_some());
    }
    println!(
        "get {:.0} ns/op",
        t.elapsed().as_nanos() as f64 / iters as f64
    );
    let t = Instant::now();
    for i in 0..iters {
        let k = format!("miss{}", i % 1000);
        let _ = c.get_into(&k, &mut buf).unwrap();
    }
    println!(
        "miss(+format) {:.0} ns/op",
        t.elapsed().as_nanos() as f64 / iters as f64
    );
    let t = Instant::now();
    for _ in 0..iters / 4 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        let k = &keys[(x >> 33) as usize % n as usize];
        c.put(k, &val).unwrap();
    }
    println!(
        "put(update) {:.0} ns/op",
        t.elapsed().as_nanos() as f64 / (iters / 4) as f64
    );
    memshelf::unlink(&name).unwrap();
}
