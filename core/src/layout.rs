//! The byte layout of a segment. See `core/ARCHITECTURE.md` for the
//! invariants; every structure here is `#[repr(C)]` with its size checked at
//! compile time.
//!
//! ```text
//! 0        Header (4 KiB): magic, version, geometry (written once at
//!          creation), then the live words (clear epoch, log cursors),
//!          each on its own cache line.
//! stats    NSTRIPES x 128 B of counters
//! hist     8 x 2 x 32 x u64 sampled latency histograms (get, put)
//! hot      256 x (key hash, count) hot-key sampling table
//! registry nreg x u64 process-slot generations (see `registry.rs`)
//! tags     ntags / 8 lines of tag invalidation records (see `tags.rs`)
//! leases   nleases x 64 B lease records (get_or_set)
//! index    nbuckets x 128 B buckets: 1 lock word + 15 slots
//! small    the small FIFO log (10 % of the data bytes)
//! main     the main FIFO log (90 %)
//! ```

use std::sync::atomic::AtomicU64;

use memoffset::offset_of;

use crate::error::{Error, Result};

/// `"MEMSHELF"` little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"MEMSHELF");
/// Version of this layout. Any change to the bytes of a segment bumps it.
pub const LAYOUT_VERSION: u32 = 9;

pub(crate) const HEADER_SIZE: u64 = 4096;
pub(crate) const NSTRIPES: u64 = 64;
pub(crate) const STRIPE_SIZE: u64 = 128;
pub(crate) const NCOUNTERS: usize = 16;
/// Latency histograms: per histogram stripe, 2 operations (get, put) x 32
/// log2 buckets of nanoseconds (see `sampling.rs`). Only sampled operations
/// (1 in 64) write them, so 8 stripes keep contention negligible and small
/// segments small.
pub(crate) const HIST_STRIPES: u64 = 8;
pub(crate) const HIST_OPS: u64 = 2;
pub(crate) const HIST_BUCKETS: u64 = 32;
pub(crate) const HIST_SIZE: u64 = HIST_STRIPES * HIST_OPS * HIST_BUCKETS * 8;
/// Hot-key sampling table: entries of (key hash, count).
pub(crate) const HOT_ENTRIES: u64 = 256;
pub(crate) const HOT_SIZE: u64 = HOT_ENTRIES * 16;
/// Two adjacent cache lines, 128-byte aligned (the pair the spatial
/// prefetcher fetches together): 7-slot single-line buckets sized to the
/// items overflowed (forcing out live keys) at ordinary loads.
pub(crate) const BUCKET_SIZE: u64 = 128;
/// Slots per bucket (word 0 is the bucket lock).
pub(crate) const SLOTS_PER_BUCKET: usize = 15;
/// The slot indices of a bucket.
pub(crate) const SLOTS: std::ops::Range<usize> = 1..SLOTS_PER_BUCKET + 1;
pub(crate) const LEASE_SIZE: u64 = 64;

pub(crate) const STATE_READY: u32 = 0x5245_4459; // "READY"

/// One cache line holding one live word.
#[repr(C, align(64))]
pub(crate) struct Line {
    pub word: AtomicU64,
    _pad: [u64; 7],
}

/// The segment header, used for its layout (offsets) only: every access goes
/// through atomic word loads and stores at these offsets. The geometry
/// fields are written once, before the magic and `state`, and never change;
/// every process copies them into its own memory at attach (after checking
/// them) and never reads them again.
#[repr(C)]
pub(crate) struct Header {
    pub magic: u64,
    pub layout_version: u32,
    pub state: u32,
    pub capacity: u64,
    pub hash_seed: u64,
    pub created_ms: u64,
    pub default_ttl_ms: u64,
    pub ttl_jitter_ppm: u64,
    pub max_value_size: u64,
    pub stats_off: u64,
    pub tags_off: u64,
    pub ntags: u64,
    pub leases_off: u64,
    pub nleases: u64,
    pub index_off: u64,
    pub nbuckets: u64,
    pub small_off: u64,
    pub small_len: u64,
    pub main_off: u64,
    pub main_len: u64,
    pub registry_off: u64,
    pub nreg: u64,
    /// xxh3 of the bytes from `capacity` to `nreg`.
    pub geometry_check: u64,
    _pad0: [u64; 10],
    /// Bumped by `clear()`: entries written under an older epoch are dead.
    pub clear_epoch: Line,
    pub small_head: Line,
    pub small_tail: Line,
    pub main_head: Line,
    pub main_tail: Line,
    /// Segment-wide TTL cap in ms (0: none), set by an agent while its feed
    /// is degraded: every entry written meanwhile expires within it.
    pub ttl_cap: Line,
    /// The segment's keeper (an agent): its token, and the TTL cap in ms
    /// that applies while the recorded keeper is dead.
    pub keeper: KeeperLine,
    /// `inserts - entries_removed` at the last `clear()` (see `stats.rs`).
    pub entries_base: Line,
    /// Handed out one by one (fetch_add) to each handle, in each process
    /// after every fork: the handle's first statistics stripe (`stats.rs`).
    pub stripe_next: Line,
    /// Counts tag invalidations: a write stamps its tags with it (`tags.rs`).
    pub tag_clock: Line,
}

/// The keeper's cache line.
#[repr(C, align(64))]
pub(crate) struct KeeperLine {
    pub token: AtomicU64,
    pub cap_ms: AtomicU64,
    _pad: [u64; 6],
}

const _: () = assert!(offset_of!(Header, capacity) == 16);
const _: () = assert!(offset_of!(Header, geometry_check) == 168);
const _: () = assert!(offset_of!(Header, clear_epoch) == 256);
const _: () = assert!(offset_of!(Header, main_tail) == 512);
const _: () = assert!(offset_of!(Header, keeper) == 640);
const _: () = assert!(offset_of!(Header, stripe_next) == 768);
const _: () = assert!(offset_of!(Header, tag_clock) == 832);
const _: () = assert!(std::mem::size_of::<Header>() == 896);
const _: () = assert!(std::mem::size_of::<KeeperLine>() == 64);
const _: () = assert!(std::mem::size_of::<Header>() as u64 <= HEADER_SIZE);
const _: () = assert!(std::mem::size_of::<Line>() == 64);

/// The geometry of a segment, as copied into process memory at attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub capacity: u64,
    pub hash_seed: u64,
    pub default_ttl_ms: u64,
    pub ttl_jitter_ppm: u64,
    pub max_value_size: u64,
    pub stats_off: u64,
    pub tags_off: u64,
    pub ntags: u64,
    pub leases_off: u64,
    pub nleases: u64,
    pub index_off: u64,
    pub nbuckets: u64,
    pub small_off: u64,
    pub small_len: u64,
    pub main_off: u64,
    pub main_len: u64,
    pub registry_off: u64,
    pub nreg: u64,
}

/// Index slots per entry of the expected size (the entry's, its ghost's
/// when it leaves, and headroom so buckets rarely fill). Measured with
/// `hitratio` (benches/README.md): on P3 at 200 k entries 3.5 slots per
/// item hold the hit ratio, 2.5 lose 0.2 points, 1.2 lose 8 (ghosts crowd
/// out live keys); with 3, the small ghost-heavy rows (scan and loop at
/// 500-1000 entries) lost 2-2.6 points, with 4 none lost more than noise.
pub(crate) const SLOTS_PER_ENTRY: u64 = 4;

/// Bytes of an item's fixed header in this layout (see `item.rs`): with the
/// key and the value, each padded to 8 bytes, the size of an entry's item.
pub const ITEM_HEADER: u64 = 40;

pub(crate) fn pad8(n: u64) -> u64 {
    (n + 7) & !7
}

fn pow2_floor(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        1 << (63 - n.leading_zeros())
    }
}

/// Largest item (header + tags + key + value, padded) a log of `main_len`
/// bytes accepts.
pub(crate) fn max_item_for(main_len: u64) -> u64 {
    (main_len / 8) & !7
}

impl Geometry {
    /// Lays out a segment of `capacity` bytes.
    pub fn compute(
        capacity: u64,
        hash_seed: u64,
        default_ttl_ms: u64,
        ttl_jitter_ppm: u64,
        max_value_size: Option<u64>,
        expected_entry_size: u64,
    ) -> Result<Geometry> {
        let stats_off = HEADER_SIZE;
        let registry_off = stats_off + NSTRIPES * STRIPE_SIZE + HIST_SIZE + HOT_SIZE;
        let nreg = pow2_floor(capacity / 4096).clamp(64, 4096);
        let tags_off = registry_off + nreg * 8;
        let ntags = pow2_floor(capacity / 2048).clamp(256, 65536);
        let leases_off = tags_off + ntags * 8;
        // Every key missing at once gets its own lease (per-key leases, see
        // `lease.rs`): room for thousands of concurrent fills.
        let nleases = pow2_floor(capacity / 8192).clamp(64, 65536);
        let index_off = leases_off + nleases * LEASE_SIZE;
        // The index: SLOTS_PER_ENTRY slots per entry of the expected size
        // (an item, a ghost, and room so that buckets rarely fill), any
        // bucket count (multiply-shift, `Segment::bucket_of`). Entries
        // smaller than expected get fewer slots each: ghosts are then
        // forgotten earlier (oldest first) and, far below, live keys
        // forced out of full buckets (see `OpenOptions::expected_entry_size`).
        let expected_item = ITEM_HEADER + pad8(expected_entry_size.max(1));
        let rest = capacity.saturating_sub(index_off);
        let entries = rest / (expected_item + SLOTS_PER_ENTRY * 8);
        let nbuckets = (entries * SLOTS_PER_ENTRY)
            .div_ceil(SLOTS_PER_BUCKET as u64)
            .max(8);
        let small_off = index_off + nbuckets * BUCKET_SIZE;
        if small_off + 4096 > capacity {
            return Err(Error::InvalidArgument(format!(
                "capacity {capacity} bytes leaves no room for data"
            )));
        }
        let data = (capacity - small_off) & !63;
        let small_len = (data / 10) & !63;
        let main_len = data - small_len;
        let max_item = max_item_for(main_len);
        // The value limit assumes a short key and no tags; `put` checks the
        // whole item against `max_item` as well.
        let limit = max_item.saturating_sub(ITEM_HEADER + 64);
        if limit < 64 {
            return Err(Error::InvalidArgument(format!(
                "capacity {capacity} bytes is too small to hold any entry"
            )));
        }
        let requested = max_value_size.unwrap_or(crate::options::DEFAULT_MAX_VALUE_SIZE as u64);
        Ok(Geometry {
            capacity,
            hash_seed,
            default_ttl_ms,
            ttl_jitter_ppm,
            max_value_size: requested.min(limit),
            stats_off,
            tags_off,
            ntags,
            leases_off,
            nleases,
            index_off,
            nbuckets,
            small_off,
            small_len,
            main_off: small_off + small_len,
            main_len,
            registry_off,
            nreg,
        })
    }

    /// Reads the geometry from a header through `word(offset)` and checks
    /// that it is internally consistent and fits in `map_len` bytes, so that
    /// no later access derived from it can leave the mapping.
    pub fn read(
        word: impl Fn(usize) -> u64,
        map_len: u64,
    ) -> std::result::Result<Geometry, String> {
        let g = Geometry {
            capacity: word(offset_of!(Header, capacity)),
            hash_seed: word(offset_of!(Header, hash_seed)),
            default_ttl_ms: word(offset_of!(Header, default_ttl_ms)),
            ttl_jitter_ppm: word(offset_of!(Header, ttl_jitter_ppm)),
            max_value_size: word(offset_of!(Header, max_value_size)),
            stats_off: word(offset_of!(Header, stats_off)),
            tags_off: word(offset_of!(Header, tags_off)),
            ntags: word(offset_of!(Header, ntags)),
            leases_off: word(offset_of!(Header, leases_off)),
            nleases: word(offset_of!(Header, nleases)),
            index_off: word(offset_of!(Header, index_off)),
            nbuckets: word(offset_of!(Header, nbuckets)),
            small_off: word(offset_of!(Header, small_off)),
            small_len: word(offset_of!(Header, small_len)),
            main_off: word(offset_of!(Header, main_off)),
            main_len: word(offset_of!(Header, main_len)),
            registry_off: word(offset_of!(Header, registry_off)),
            nreg: word(offset_of!(Header, nreg)),
        };
        if g.checksum() != word(offset_of!(Header, geometry_check)) {
            return Err("header geometry checksum mismatch (corrupt header)".into());
        }
        let pow2 = |n: u64| n != 0 && n.is_power_of_two();
        let ok = g.capacity <= map_len
            && g.stats_off == HEADER_SIZE
            && g.registry_off == g.stats_off + NSTRIPES * STRIPE_SIZE + HIST_SIZE + HOT_SIZE
            && pow2(g.nreg)
            && g.nreg <= 1 << 16
            && g.tags_off == g.registry_off + g.nreg * 8
            && pow2(g.ntags)
            && (256..=1 << 16).contains(&g.ntags)
            && g.leases_off == g.tags_off + g.ntags * 8
            && pow2(g.nleases)
            && g.nleases <= 1 << 16
            && g.index_off == g.leases_off + g.nleases * LEASE_SIZE
            && g.nbuckets >= 1
            && g.nbuckets <= 1 << 40
            && g.small_off == g.index_off + g.nbuckets * BUCKET_SIZE
            && g.small_len >= 64
            && g.small_len % 64 == 0
            && g.small_off.checked_add(g.small_len) == Some(g.main_off)
            && g.main_len >= 4096
            && g.main_len % 64 == 0
            && g.main_off
                .checked_add(g.main_len)
                .is_some_and(|e| e <= map_len)
            && g.ttl_jitter_ppm <= 500_000
            && g.default_ttl_ms <= crate::options::MAX_TTL.as_millis() as u64
            && g.max_value_size
                .checked_add(ITEM_HEADER)
                .is_some_and(|n| n <= max_item_for(g.main_len));
        if ok {
            Ok(g)
        } else {
            Err("header geometry is inconsistent (corrupt header)".into())
        }
    }

    pub fn checksum(&self) -> u64 {
        let words = [
            self.capacity,
            self.hash_seed,
            0, // created_ms is not part of the geometry
            self.default_ttl_ms,
            self.ttl_jitter_ppm,
            self.max_value_size,
            self.stats_off,
            self.tags_off,
            self.ntags,
            self.leases_off,
            self.nleases,
            self.index_off,
            self.nbuckets,
            self.small_off,
            self.small_len,
            self.main_off,
            self.main_len,
            self.registry_off,
            self.nreg,
        ];
        let mut bytes = [0u8; 19 * 8];
        for (i, w) in words.iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, MAGIC)
    }

    /// Writes the geometry into a fresh header (before magic and state)
    /// through `store(offset, value)`.
    pub fn write(&self, store: impl Fn(usize, u64), created_ms: u64) {
        store(offset_of!(Header, capacity), self.capacity);
        store(offset_of!(Header, hash_seed), self.hash_seed);
        store(offset_of!(Header, created_ms), created_ms);
        store(offset_of!(Header, default_ttl_ms), self.default_ttl_ms);
        store(offset_of!(Header, ttl_jitter_ppm), self.ttl_jitter_ppm);
        store(offset_of!(Header, max_value_size), self.max_value_size);
        store(offset_of!(Header, stats_off), self.stats_off);
        store(offset_of!(Header, tags_off), self.tags_off);
        store(offset_of!(Header, ntags), self.ntags);
        store(offset_of!(Header, leases_off), self.leases_off);
        store(offset_of!(Header, nleases), self.nleases);
        store(offset_of!(Header, index_off), self.index_off);
        store(offset_of!(Header, nbuckets), self.nbuckets);
        store(offset_of!(Header, small_off), self.small_off);
        store(offset_of!(Header, small_len), self.small_len);
        store(offset_of!(Header, main_off), self.main_off);
        store(offset_of!(Header, main_len), self.main_len);
        store(offset_of!(Header, registry_off), self.registry_off);
        store(offset_of!(Header, nreg), self.nreg);
        store(offset_of!(Header, geometry_check), self.checksum());
    }

    /// Offset of the latency histograms.
    pub fn hist_off(&self) -> u64 {
        self.stats_off + NSTRIPES * STRIPE_SIZE
    }

    /// Offset of the hot-key table.
    pub fn hot_off(&self) -> u64 {
        self.hist_off() + HIST_SIZE
    }

    /// Index slots in the segment.
    pub fn index_slots(&self) -> u64 {
        self.nbuckets * SLOTS_PER_BUCKET as u64
    }

    /// Largest item the engine stores.
    pub fn max_item(&self) -> u64 {
        max_item_for(self.main_len)
    }
}

/// Smallest capacity whose logs hold `entries` items of `key_len`-byte keys
/// and `value_len`-byte values (no tags), for a segment opened with
/// `expected_entry_size(key_len + value_len)`. Used to translate a capacity
/// in entries (as cache simulators count) into bytes.
///
/// ```
/// # let name = format!("doc-capacity-for-entries-{}", std::process::id());
/// let cap = memshelf::capacity_for_entries(10_000, 16, 100);
/// let cache = memshelf::OpenOptions::new()
///     .capacity(cap)
///     .expected_entry_size(116)
///     .open(&name)?;
/// for i in 0..10_000 {
///     cache.put(format!("key:{i:012}"), [0u8; 100])?;
/// }
/// assert_eq!(cache.stats().entries, 10_000); // every entry still there
/// # memshelf::unlink(&name)?;
/// # Ok::<(), memshelf::Error>(())
/// ```
pub fn capacity_for_entries(entries: u64, key_len: u64, value_len: u64) -> u64 {
    let item = ITEM_HEADER + pad8(key_len) + pad8(value_len);
    let want = (entries.max(1) * item + 63) & !63;
    // Fixed point: capacity = overheads(capacity) + log bytes. Overheads
    // grow with capacity in power-of-two steps, so iterate a few times and
    // keep the largest answer seen (never too small).
    // (A capacity too small for the fixed areas grows in small steps:
    // doubling it overshot, giving small caches several times the entries
    // asked for.)
    let mut cap = want + (16 << 10);
    for _ in 0..256 {
        let next = match Geometry::compute(cap, 0, 0, 0, None, key_len + value_len) {
            // Items never straddle a log's end: each log holds a whole
            // number of them.
            Ok(g) if g.small_len / item + g.main_len / item >= entries.max(1) => return cap,
            Ok(g) => cap.max(g.small_off + want),
            Err(_) => cap + 1024,
        };
        cap = next.max(cap + 64);
    }
    cap
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A planted header whose geometry checksum is right (it is seeded with
    /// a public constant: anyone can recompute it) but whose values cannot
    /// be a real segment's is refused by `read`, never a panic or an
    /// accepted geometry that panics later (an audit found each of these:
    /// a small log whose length wraps the address space onto the main
    /// log's offset, once onto the header; a value limit near 2^64; a
    /// default TTL past the longest TTL, which overflowed `now + ttl`).
    #[test]
    fn a_planted_geometry_with_a_valid_checksum_is_refused_not_a_panic() {
        let cap = 1 << 20;
        let good = Geometry::compute(cap, 7, 0, 0, None, 128).unwrap();
        let read_back = |g: &Geometry| {
            let hdr = std::cell::RefCell::new(vec![0u64; HEADER_SIZE as usize / 8]);
            g.write(|off, v| hdr.borrow_mut()[off / 8] = v, 0);
            let h = hdr.into_inner();
            std::panic::catch_unwind(|| Geometry::read(|off| h[off / 8], cap))
        };
        assert!(matches!(read_back(&good), Ok(Ok(_))));
        let max_ttl = crate::options::MAX_TTL.as_millis() as u64;
        type Plant = fn(&mut Geometry, u64);
        let cases: [(&str, Plant); 5] = [
            ("small_len wraps onto main_off", |g, _| {
                g.small_len = 0u64.wrapping_sub(64);
                g.main_off = g.small_off - 64;
            }),
            ("small_len wraps the main log onto the header", |g, _| {
                g.small_len = 0u64.wrapping_sub(g.small_off);
                g.main_off = 0;
            }),
            ("max_value_size near 2^64", |g, _| {
                g.max_value_size = u64::MAX - 7
            }),
            ("default_ttl_ms of u64::MAX", |g, _| {
                g.default_ttl_ms = u64::MAX
            }),
            ("default_ttl_ms past MAX_TTL", |g, max_ttl| {
                g.default_ttl_ms = max_ttl + 1
            }),
        ];
        for (what, plant) in cases {
            let mut g = good;
            plant(&mut g, max_ttl);
            match read_back(&g) {
                Ok(Err(_)) => {}
                Ok(Ok(_)) => panic!("{what}: accepted"),
                Err(_) => panic!("{what}: read panicked"),
            }
        }
        // The longest TTL itself is a real segment's default.
        let mut g = good;
        g.default_ttl_ms = max_ttl;
        assert!(matches!(read_back(&g), Ok(Ok(_))));
    }

    /// The logs of `capacity_for_entries` hold the entries asked for, and
    /// not several times as many (small caches used to get 2-3x).
    #[test]
    fn capacity_for_entries_is_tight() {
        for entries in [100u64, 200, 500, 1000, 10_000, 200_000] {
            let (k, v) = (9, 64);
            let want = entries * (ITEM_HEADER + pad8(k) + pad8(v));
            let cap = capacity_for_entries(entries, k, v);
            let g = Geometry::compute(cap, 0, 0, 0, None, k + v).unwrap();
            let logs = g.small_len + g.main_len;
            assert!(logs >= want, "{entries}: logs {logs} < {want}");
            assert!(
                logs <= want + want / 10 + 2048,
                "{entries}: logs {logs} hold far more than {want}"
            );
        }
    }
}
