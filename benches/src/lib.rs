//! Shared pieces of memshelf's benchmarks: trace loading and the reference
//! cache simulators (LRU, S3-FIFO) that the hit-ratio tool runs beside the
//! real engine.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// Reads a trace file (decompressing `.gz`, `.xz`, `.zst` with the
/// `flate2`, `xz2` and `zstd` crates) and returns its requests as integer
/// keys.
///
/// Formats (see the traces' README): LIRS `.trace` text (one key a line,
/// `*` lines ignored); ARC `.lis` text (`start count ...`: keys
/// `start..start+count`); cache2k `.trace` binary (big-endian i32 a
/// request).
pub fn load_trace(path: &Path) -> io::Result<Vec<u64>> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let raw = decompress(path, &name)?;
    Ok(parse_trace(&name, &raw))
}

/// Parses a decompressed trace; `name` (the file name) selects the format.
pub fn parse_trace(name: &str, raw: &[u8]) -> Vec<u64> {
    if name.starts_with("cache2k") {
        return raw
            .chunks_exact(4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u32 as u64)
            .collect();
    }
    let text = String::from_utf8_lossy(raw);
    if name.contains(".lis") {
        let mut out = Vec::new();
        for line in text.lines() {
            let mut f = line.split_ascii_whitespace();
            let (Some(s), Some(c)) = (f.next(), f.next()) else {
                continue;
            };
            let (Ok(s), Ok(c)) = (s.parse::<u64>(), c.parse::<u64>()) else {
                continue;
            };
            out.extend(s..s + c);
        }
        return out;
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "*")
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// The bytes of `path`, decompressed by its extension (`.gz`, `.xz`,
/// `.zst`; anything else is read as it is).
fn decompress(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    let file = BufReader::new(File::open(path)?);
    let mut reader: Box<dyn Read> = if name.ends_with(".gz") {
        // Multi-member, as `gzip -dc` reads concatenated members.
        Box::new(flate2::bufread::MultiGzDecoder::new(file))
    } else if name.ends_with(".xz") {
        // Multi-stream, as `xz -dc` reads concatenated streams.
        Box::new(xz2::bufread::XzDecoder::new_multi_decoder(file))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::with_buffer(file)?)
    } else {
        Box::new(file)
    };
    let mut v = Vec::new();
    reader
        .read_to_end(&mut v)
        .map_err(|e| io::Error::new(e.kind(), format!("decompressing {}: {e}", path.display())))?;
    Ok(v)
}

/// Key `i` of the engine benchmarks (16 bytes: `user:` and 11 digits),
/// the same in every one so their figures compare.
pub fn bench_key(i: usize) -> Vec<u8> {
    format!("user:{i:011}").into_bytes()
}

/// A reproducible random order of `len` key indexes in `0..keys`: the key
/// order every benchmark replays (seeded `fastrand`, the same on every run).
pub fn key_order(keys: usize, len: usize) -> Vec<u32> {
    let keys = u32::try_from(keys).expect("fewer than 2^32 keys");
    let mut rng = fastrand::Rng::with_seed(0x2545_f491_4f6c_dd1d);
    (0..len).map(|_| rng.u32(..keys)).collect()
}

/// A cache policy counted in entries, replayed cache-aside: `access`
/// returns whether the key was a hit, and inserts it on a miss.
pub trait Policy {
    /// One request.
    fn access(&mut self, key: u64) -> bool;
}

/// Least recently used.
pub struct Lru {
    cap: usize,
    clock: u64,
    stamp: HashMap<u64, u64>,
    order: BTreeMap<u64, u64>,
}

impl Lru {
    /// An LRU of `cap` entries.
    pub fn new(cap: usize) -> Lru {
        Lru {
            cap,
            clock: 0,
            stamp: HashMap::new(),
            order: BTreeMap::new(),
        }
    }
}

impl Policy for Lru {
    fn access(&mut self, key: u64) -> bool {
        self.clock += 1;
        if let Some(old) = self.stamp.insert(key, self.clock) {
            self.order.remove(&old);
            self.order.insert(self.clock, key);
            return true;
        }
        self.order.insert(self.clock, key);
        if self.stamp.len() > self.cap {
            let (_, victim) = self.order.pop_first().expect("non-empty");
            self.stamp.remove(&victim);
        }
        false
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

/// S3-FIFO (Yang et al., SOSP'23) at item granularity: a small FIFO (10 %
/// of the entries) for new keys, a main FIFO with reinsertion, a ghost FIFO
/// of evicted keys as long as main. An item hit at least once while in the
/// small queue moves to main (frequency reset); a main item with a
/// frequency above 0 is reinserted with it decremented; frequencies are
/// capped at 3. A miss whose key is a ghost goes straight to main.
pub struct S3Fifo {
    small_cap: usize,
    main_cap: usize,
    small: VecDeque<u64>,
    main: VecDeque<u64>,
    /// Ghost FIFO of (key, stamp); `ghost_set` maps a key to its live stamp
    /// so a stale FIFO entry (the key came back) is skipped when it leaves.
    ghost: VecDeque<(u64, u64)>,
    ghost_set: HashMap<u64, u64>,
    ghost_stamp: u64,
    meta: HashMap<u64, (Queue, u8)>,
}

impl S3Fifo {
    /// An S3-FIFO of `cap` entries.
    pub fn new(cap: usize) -> S3Fifo {
        let small_cap = (cap / 10).max(1);
        S3Fifo {
            small_cap,
            main_cap: cap.saturating_sub(small_cap).max(1),
            small: VecDeque::new(),
            main: VecDeque::new(),
            ghost: VecDeque::new(),
            ghost_set: HashMap::new(),
            ghost_stamp: 0,
            meta: HashMap::new(),
        }
    }

    fn len(&self) -> usize {
        self.small.len() + self.main.len()
    }

    /// Frees one entry (small first when it is at or over its share).
    fn evict(&mut self) {
        if self.small.len() >= self.small_cap || self.main.is_empty() {
            self.evict_small();
        } else {
            self.evict_main();
        }
    }

    fn evict_small(&mut self) {
        let full = self.len();
        while let Some(k) = self.small.pop_front() {
            let (_, f) = self.meta[&k];
            if f >= 1 {
                self.meta.insert(k, (Queue::Main, 0));
                self.main.push_back(k);
                while self.main.len() > self.main_cap {
                    self.evict_main();
                }
                if self.len() < full {
                    return;
                }
            } else {
                self.meta.remove(&k);
                self.add_ghost(k);
                return;
            }
        }
        self.evict_main();
    }

    fn add_ghost(&mut self, k: u64) {
        self.ghost_stamp += 1;
        self.ghost.push_back((k, self.ghost_stamp));
        self.ghost_set.insert(k, self.ghost_stamp);
        while self.ghost_set.len() > self.main_cap {
            let (g, stamp) = self.ghost.pop_front().expect("non-empty");
            if self.ghost_set.get(&g) == Some(&stamp) {
                self.ghost_set.remove(&g);
            }
        }
    }

    fn evict_main(&mut self) {
        while let Some(k) = self.main.pop_front() {
            let (_, f) = self.meta[&k];
            if f >= 1 {
                self.meta.insert(k, (Queue::Main, f - 1));
                self.main.push_back(k);
            } else {
                self.meta.remove(&k);
                return;
            }
        }
    }
}

impl Policy for S3Fifo {
    fn access(&mut self, key: u64) -> bool {
        if let Some((_, f)) = self.meta.get_mut(&key) {
            *f = (*f + 1).min(3);
            return true;
        }
        while self.len() >= self.small_cap + self.main_cap {
            self.evict();
        }
        if self.ghost_set.remove(&key).is_some() {
            self.meta.insert(key, (Queue::Main, 0));
            self.main.push_back(key);
        } else {
            self.meta.insert(key, (Queue::Small, 0));
            self.small.push_back(key);
        }
        false
    }
}

/// Hits over requests, replaying `trace` through `p`.
pub fn hit_ratio(p: &mut dyn Policy, trace: &[u64]) -> f64 {
    let hits = trace.iter().filter(|&&k| p.access(k)).count();
    hits as f64 / trace.len().max(1) as f64
}

/// A model of memshelf's memory layout with none of its work: an index of
/// 128-byte buckets (15 slots of 8 bytes after a lock word) chosen by
/// multiply-shift, each slot a 6-bit tag and an item's position, and
/// items packed one after another in a log, a 48-byte header (key and value
/// lengths; layout 8's size, kept at 48 so the figures of benches/README.md
/// section 0b stay comparable; layout 9's is 40) then the key, then the value. A get hashes the key (one
/// multiply), scans the bucket for the tag, compares the key and copies
/// the value: no checksum, no validation, no statistics, no liveness, no
/// frequency bit. The `hashmap` bench times it beside memshelf and a
/// `HashMap` to show the floor this layout sets, and what memshelf's
/// engine adds to it (benches/README.md section 0b).
pub struct LayoutModel {
    index: Vec<u64>,
    nbuckets: u64,
    log: Vec<u8>,
}

const MODEL_HEADER: usize = 48;
const MODEL_SLOTS: usize = 16;

impl LayoutModel {
    /// An empty model with an index of `index_bytes` (rounded down to
    /// whole buckets) and room for `log_bytes` of items.
    pub fn new(index_bytes: usize, log_bytes: usize) -> LayoutModel {
        let nbuckets = (index_bytes / 128).max(1);
        LayoutModel {
            index: vec![0; nbuckets * MODEL_SLOTS],
            nbuckets: nbuckets as u64,
            log: Vec::with_capacity(log_bytes),
        }
    }

    fn hash(key: &[u8]) -> u64 {
        let mut h = 0x9e37_79b9_7f4a_7c15u64;
        for c in key.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        }
        h ^ (h >> 29)
    }

    fn bucket(&self, h: u64) -> usize {
        ((u128::from(h) * u128::from(self.nbuckets)) >> 64) as usize * MODEL_SLOTS
    }

    fn slot(pos: usize, h: u64) -> u64 {
        ((pos as u64) << 8) | ((h >> 58) << 1) | 1
    }

    /// Adds a key that is not there yet. `false`: its bucket is full.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> bool {
        let h = Self::hash(key);
        let b = self.bucket(h);
        let Some(free) = (1..MODEL_SLOTS).find(|&i| self.index[b + i] == 0) else {
            return false;
        };
        let pos = self.log.len();
        let mut header = [0u8; MODEL_HEADER];
        header[..4].copy_from_slice(&(key.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&(value.len() as u32).to_le_bytes());
        self.log.extend_from_slice(&header);
        self.log.extend_from_slice(key);
        self.log.extend_from_slice(value);
        self.log.resize(self.log.len().next_multiple_of(8), 0);
        self.index[b + free] = Self::slot(pos, h);
        true
    }

    /// Copies `key`'s value into `buf`; `false` if absent.
    #[inline]
    pub fn get_into(&self, key: &[u8], buf: &mut Vec<u8>) -> bool {
        let h = Self::hash(key);
        let b = self.bucket(h);
        let tag = ((h >> 58) << 1) | 1;
        for &s in &self.index[b + 1..b + MODEL_SLOTS] {
            if s & 0xff != tag {
                continue;
            }
            let pos = (s >> 8) as usize;
            let hdr = &self.log[pos..pos + MODEL_HEADER];
            let klen = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
            let vlen = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
            let k = pos + MODEL_HEADER;
            if &self.log[k..k + klen] == key {
                buf.clear();
                buf.extend_from_slice(&self.log[k + klen..k + klen + vlen]);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn lru_evicts_least_recent() {
        let mut l = Lru::new(2);
        assert!(!l.access(1));
        assert!(!l.access(2));
        assert!(l.access(1));
        assert!(!l.access(3)); // evicts 2
        assert!(l.access(1));
        assert!(!l.access(2));
    }

    #[test]
    fn s3fifo_keeps_reused_keys_over_a_scan() {
        let mut s = S3Fifo::new(10);
        for _ in 0..3 {
            for k in 0..5 {
                s.access(k);
            }
        }
        // A scan of one-hit wonders must not flush the hot keys.
        for k in 100..1000 {
            s.access(k);
        }
        assert!((0..5).all(|k| s.access(k)), "hot keys flushed by a scan");
        let mut l = Lru::new(10);
        let trace: Vec<u64> = (0..3)
            .flat_map(|_| 0..5)
            .chain(100..1000)
            .chain(0..5)
            .collect();
        assert!(hit_ratio(&mut S3Fifo::new(10), &trace) > hit_ratio(&mut l, &trace));
    }

    #[test]
    fn parses_the_three_formats() {
        assert_eq!(parse_trace("lirs-x.trace", b"5\n*\n\n 7 \n5\n"), [5, 7, 5]);
        assert_eq!(
            parse_trace("arc-x.lis", b"10 3 0 0\n2 1 0 0\n"),
            [10, 11, 12, 2]
        );
        let mut bin = Vec::new();
        for k in [1i32, -1, 300] {
            bin.extend_from_slice(&k.to_be_bytes());
        }
        assert_eq!(
            parse_trace("cache2k-x.trace", &bin),
            [1, u32::MAX as u64, 300]
        );
    }

    #[test]
    fn s3fifo_stale_ghost_entry_does_not_drop_a_newer_ghost() {
        let mut s = S3Fifo::new(10); // ghost FIFO of 9
        s.add_ghost(5);
        s.ghost_set.remove(&5); // 5 came back (its FIFO entry is now stale)
        for k in 100..108 {
            s.add_ghost(k);
        }
        s.add_ghost(5); // a ghost again
        s.add_ghost(200); // over: the stale (5) entry leaves, then 100
        assert!(s.ghost_set.contains_key(&5));
        assert!(!s.ghost_set.contains_key(&100));
        assert_eq!(s.ghost_set.len(), 9);
    }

    #[test]
    fn s3fifo_ghost_sends_returning_keys_to_main() {
        let mut s = S3Fifo::new(10); // small 1, main 9
        for k in 0..10 {
            assert!(!s.access(k)); // fills (no eviction before full)
        }
        assert!(!s.access(10)); // full: 0 (never hit) leaves small as a ghost
        assert!(!s.meta.contains_key(&0));
        assert!(!s.access(0)); // ghost: straight to main
        assert_eq!(s.meta[&0].0, Queue::Main);
    }

    /// Each compressed form loads as the plain trace does (two members or
    /// frames concatenated, as the command-line tools accept).
    #[test]
    fn compressed_traces_load_like_plain_ones() {
        let text = b"1\n2\n*\n3\n2\n";
        let half = |enc: &dyn Fn(&[u8]) -> Vec<u8>| [enc(&text[..4]), enc(&text[4..])].concat();
        let gz = half(&|b| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b).unwrap();
            e.finish().unwrap()
        });
        let xz = half(&|b| {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(b).unwrap();
            e.finish().unwrap()
        });
        let zst = half(&|b| zstd::encode_all(b, 1).unwrap());
        let dir = std::env::temp_dir().join(format!("memshelf-traces-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in [
            ("t.trace", &text[..]),
            ("t.trace.gz", &gz),
            ("t.trace.xz", &xz),
            ("t.trace.zst", &zst),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(load_trace(&path).unwrap(), [1, 2, 3, 2], "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_layout_model_finds_every_key_it_holds_and_no_other() {
        let mut m = LayoutModel::new(64 << 10, 1 << 20);
        let keys: Vec<Vec<u8>> = (0..2000).map(bench_key).collect();
        for (i, k) in keys.iter().enumerate() {
            assert!(m.insert(k, &[i as u8; 100]), "bucket full at key {i}");
        }
        let mut buf = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            assert!(m.get_into(k, &mut buf), "key {i}");
            assert_eq!(buf, [i as u8; 100]);
        }
        assert!(!m.get_into(b"user:99999999999", &mut buf));
        assert!(!m.get_into(b"", &mut buf));
    }
}
