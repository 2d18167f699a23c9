//! Writing to stdout. A closed pipe (`memshelf keys NAME | head -1`) is
//! not an error: the command stops quietly with status 0, as `head`'s
//! reader expects (Rust ignores SIGPIPE, so writes fail with EPIPE).

use std::io;

/// Maps a write result: `BrokenPipe` exits the process with status 0, any
/// other error becomes the message to print.
pub fn check(r: io::Result<()>) -> Result<(), String> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r.map_err(|e| e.to_string()),
    }
}

/// Human-readable bytes: `512 B`, `1.0 MiB`, `2.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Human-readable age: `42s`, `3m12s`, `5h04m`, `12d03h`.
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1 << 20), "1.0 MiB");
        assert_eq!(bytes(5 << 29), "2.5 GiB");
        assert_eq!(age(59), "59s");
        assert_eq!(age(192), "3m12s");
        assert_eq!(age(5 * 3600 + 240), "5h04m");
        assert_eq!(age(12 * 86400 + 3 * 3600), "12d03h");
    }
}
