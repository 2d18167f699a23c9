//! `memshelf hot NAME [-n N]`: the keys with the most sampled hits (SPEC 5).

use std::io::Write;

use memshelf::{Cache, Stats};

use crate::output::check;

/// Estimated share of the sampled hits for each of `hot` (highest first):
/// the engine reports the hottest key's share (`hot_key_share`); the others
/// are scaled by their counts. Accurate while the hottest entry's key is
/// still present (an evicted key drops out of `hot_keys`).
pub fn shares(hot: &[(Vec<u8>, u64)], stats: &Stats) -> Vec<f64> {
    let top = hot.first().map_or(0, |e| e.1);
    hot.iter()
        .map(|(_, c)| {
            if top == 0 {
                0.0
            } else {
                (stats.hot_key_share * *c as f64 / top as f64).clamp(0.0, 1.0)
            }
        })
        .collect()
}

/// Prints `COUNT SHARE KEY` lines, hottest first (keys as text, non-UTF-8
/// bytes escaped).
pub fn run(cache: &Cache, n: usize, out: &mut impl Write) -> Result<(), String> {
    let hot = cache.hot_keys(n);
    let stats = cache.stats();
    if hot.is_empty() {
        check(writeln!(
            out,
            "no sampled hits yet (one get in 64 per thread is sampled)"
        ))?;
        return Ok(());
    }
    check(writeln!(out, "{:>12}  {:>7}  KEY", "COUNT", "SHARE"))?;
    for ((key, count), share) in hot.iter().zip(shares(&hot, &stats)) {
        check(writeln!(
            out,
            "{count:>12}  {:>6.1}%  {}",
            share * 100.0,
            key.escape_ascii()
        ))?;
    }
    Ok(())
}
