//! `memshelf stats NAME [--json] [--watch]`.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::output::check;

/// Prints the segment's statistics once, or every `interval` with `watch`
/// (`count` times, or until interrupted / the reader closes the pipe).
pub fn run(
    name: &str,
    json: bool,
    watch: bool,
    interval: Duration,
    count: Option<u64>,
) -> Result<(), String> {
    let cache = crate::attach(name)?;
    let mut out = std::io::stdout().lock();
    let mut printed = 0u64;
    let mut next = Instant::now();
    loop {
        let s = cache.stats();
        let fields = s.fields();
        if json {
            let map: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), (*v).into()))
                .collect();
            check(writeln!(out, "{}", serde_json::Value::Object(map)))?;
        } else {
            if watch && printed > 0 {
                check(writeln!(out))?;
            }
            for (k, v) in fields {
                check(writeln!(out, "{k}={v}"))?;
            }
        }
        check(out.flush())?;
        printed += 1;
        if !watch || count.is_some_and(|c| printed >= c) {
            return Ok(());
        }
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        } else {
            next = Instant::now();
        }
    }
}
