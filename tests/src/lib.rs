//! Helpers shared by the `memshelf-worker` binary and the integration tests
//! of this package: self-checking values, the random generator they use
//! (`fastrand`), worker argument parsing and a peek at a segment's header.
//!
//! A value is `key_len (u16) | key | version (u64) | payload_len (u32) |
//! payload | xxh3 of everything before (u64)`, so a reader detects a value
//! of another key, a wrong length, a torn copy or a bad checksum.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The one random generator of the tests and workers: `Rng::with_seed(n)`
/// where a run must repeat, `Rng::new()` (random seed) elsewhere.
pub use fastrand::Rng;

/// Bytes a value adds around its payload for a key of `key_len` bytes.
pub fn value_overhead(key_len: usize) -> usize {
    2 + key_len + 8 + 4 + 8
}

/// A self-checking value for `key` carrying `version` and `payload_len`
/// pseudo-random payload bytes.
pub fn make_value(key: &[u8], version: u64, payload_len: usize, rng: &mut Rng) -> Vec<u8> {
    let mut v = Vec::with_capacity(value_overhead(key.len()) + payload_len);
    v.extend_from_slice(&(key.len() as u16).to_le_bytes());
    v.extend_from_slice(key);
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(&(payload_len as u32).to_le_bytes());
    let at = v.len();
    v.resize(at + payload_len, 0);
    rng.fill(&mut v[at..]);
    let sum = xxhash_rust::xxh3::xxh3_64(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

/// Checks that `v` is a complete value written for `key`; returns its
/// version, or what is wrong with it.
pub fn check_value(key: &[u8], v: &[u8]) -> Result<u64, String> {
    let short = |what: &str| Err(format!("{what}: value of {} bytes", v.len()));
    if v.len() < value_overhead(0) {
        return short("too short for a header");
    }
    let klen = u16::from_le_bytes([v[0], v[1]]) as usize;
    if v.len() < value_overhead(klen) {
        return short("too short for its key");
    }
    if &v[2..2 + klen] != key {
        return Err(format!(
            "value of another key: asked {:?}, value holds {:?}",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(&v[2..2 + klen])
        ));
    }
    let at = 2 + klen;
    let version = u64::from_le_bytes(v[at..at + 8].try_into().expect("8 bytes"));
    let plen = u32::from_le_bytes(v[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
    if v.len() != value_overhead(klen) + plen {
        return Err(format!(
            "wrong length: header says payload {plen}, value is {} bytes",
            v.len()
        ));
    }
    let (body, sum) = v.split_at(v.len() - 8);
    if xxhash_rust::xxh3::xxh3_64(body).to_le_bytes() != sum {
        return Err("bad checksum (torn or mixed value)".into());
    }
    Ok(version)
}

/// Whether `v` is an ASCII decimal integer (what `incr` leaves).
pub fn is_int(v: &[u8]) -> bool {
    std::str::from_utf8(v).is_ok_and(|s| s.parse::<i64>().is_ok())
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Worker arguments: `key=value` words.
#[derive(Debug, Default)]
pub struct Args(pub HashMap<String, String>);

impl Args {
    /// Parses `key=value` words (a word without `=` is a flag set to "1").
    pub fn parse(words: impl IntoIterator<Item = String>) -> Args {
        Args(
            words
                .into_iter()
                .map(|w| match w.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (w, "1".to_owned()),
                })
                .collect(),
        )
    }
    /// A required string argument.
    pub fn str(&self, k: &str) -> &str {
        self.0
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("worker argument {k}= missing"))
    }
    /// An optional string argument.
    pub fn opt(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    /// A numeric argument with a default.
    pub fn num(&self, k: &str, default: u64) -> u64 {
        self.0.get(k).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("worker argument {k}={v} is not a number"))
        })
    }
}

/// Byte offsets of header fields (see `core/src/layout.rs`), for tests that
/// patch or aim at parts of a segment.
pub mod header {
    /// `"MEMSHELF"`.
    pub const MAGIC: usize = 0;
    /// Layout version (u32) then state (u32).
    pub const VERSION: usize = 8;
    /// Hash seed of the index.
    pub const HASH_SEED: usize = 24;
    /// Start of the lease records.
    pub const LEASES_OFF: usize = 88;
    /// Start of the index.
    pub const INDEX_OFF: usize = 104;
    /// Number of buckets.
    pub const NBUCKETS: usize = 112;
    /// Start of the small log (end of the index).
    pub const SMALL_OFF: usize = 120;
    /// Start of the main log.
    pub const MAIN_OFF: usize = 136;
    /// Length of the main log.
    pub const MAIN_LEN: usize = 144;
    /// Bytes per bucket (1 lock word + 15 slots).
    pub const BUCKET_SIZE: u64 = 128;

    /// The bucket of a key's hash (`Segment::bucket_of`: multiply-shift
    /// over bits 0..53).
    pub fn bucket_of(hash: u64, nbuckets: u64) -> u64 {
        (((hash & ((1 << 53) - 1)) as u128 * nbuckets as u128) >> 53) as u64
    }

    /// The u64 at `off` of a header read from a file.
    pub fn word(bytes: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(bytes[off..off + 8].try_into().expect("8 bytes"))
    }
}

/// The path of segment `name` in /dev/shm.
pub fn shm_path(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/dev/shm/memshelf.{name}"))
}
