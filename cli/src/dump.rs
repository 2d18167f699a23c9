//! `memshelf dump NAME FILE` and `memshelf load NAME FILE` (SPEC 8).

use std::io::Write;
use std::path::Path;

use memshelf::Cache;

use crate::output::{self, check};

/// Dumps `cache` to `file` and says what it wrote.
pub fn dump(cache: &Cache, file: &Path, out: &mut impl Write) -> Result<(), String> {
    let r = cache
        .dump(file)
        .map_err(|e| format!("dump to {}: {e}", file.display()))?;
    check(writeln!(
        out,
        "dumped {} entries ({}) to {}",
        r.entries,
        output::bytes(r.bytes),
        file.display()
    ))?;
    if r.vanished > 0 {
        check(writeln!(
            out,
            "{} listed keys were gone (deleted, expired or evicted) when read",
            r.vanished
        ))?;
    }
    Ok(())
}

/// Loads `file` into `cache` and says what it did. A truncated or corrupt
/// dump is loaded up to its first bad record: the command still succeeds,
/// and says (on stdout and stderr) what it skipped.
pub fn load(cache: &Cache, file: &Path, out: &mut impl Write) -> Result<(), String> {
    let r = cache
        .load(file)
        .map_err(|e| format!("load {}: {e}", file.display()))?;
    let of = r.expected.map_or_else(String::new, |n| format!(" of {n}"));
    check(writeln!(
        out,
        "loaded {} entries from {} records{of}: kept {} newer, {} expired, {} rejected by this segment",
        r.loaded, r.records, r.kept_newer, r.expired, r.rejected
    ))?;
    if let Some(problem) = &r.problem {
        let skipped = match r.expected {
            Some(_) => format!("skipped {} records", r.skipped),
            None => "skipped an unknown number of records".to_string(),
        };
        check(writeln!(out, "incomplete dump: {problem}; {skipped}"))?;
        eprintln!(
            "memshelf: warning: {} is incomplete ({problem}): loaded its valid prefix, {skipped}",
            file.display()
        );
    }
    Ok(())
}
