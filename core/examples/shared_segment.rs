//! Cross-language check used by the binding tests: reads `from-python` (or
//! any key given) from segment NAME, prints `key=value`, and writes
//! `from-rust`.
//!
//! `cargo run -p memshelf --example shared_segment -- NAME [KEY...]`

fn main() -> Result<(), memshelf::Error> {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("usage: shared_segment NAME [KEY...]");
    let cache = memshelf::OpenOptions::new().create(false).open(&name)?;
    let keys: Vec<String> = args.collect();
    let keys = if keys.is_empty() {
        vec!["from-python".to_owned()]
    } else {
        keys
    };
    for k in keys {
        let v = cache
            .get(&k)?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        println!("{k}={}", v.unwrap_or_else(|| "<missing>".into()));
    }
    cache.put("from-rust", "written by rust")?;
    Ok(())
}
