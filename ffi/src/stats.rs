//! Segment-wide statistics for C: the versioned `memshelf_stats` struct
//! (one field for every `engine::Stats::fields()` entry, plus what it
//! derives from the latency histograms and the hot-key share) and
//! `memshelf_get_stats`, which fills as much of it as the caller knows.

use crate::cache::{handle, memshelf_cache};
use crate::guard::guard;
use crate::ptr::required;
use crate::status::Failure;
use crate::status::memshelf_status::{self, *};

/// Segment-wide statistics, filled by `memshelf_get_stats`. Set
/// `struct_size` to `sizeof(memshelf_stats)` before the call; fields only
/// ever get added at the end (a program built against an older header gets
/// the fields it knows). Counters are monotonic for the segment's life and
/// cover every process.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct memshelf_stats {
    /// `sizeof(memshelf_stats)` as the caller compiled it (set by the caller).
    pub struct_size: usize,
    /// Bytes of the segment.
    pub capacity_bytes: u64,
    /// Bytes of the logs holding items (live or not yet reclaimed).
    pub used_bytes: u64,
    /// Bytes available to items.
    pub data_bytes: u64,
    /// Index slots holding an entry (including expired ones not yet reclaimed).
    pub entries: u64,
    /// Index slots holding a ghost (a recently evicted key).
    pub ghosts: u64,
    /// Index slots in all.
    pub index_slots: u64,
    /// Gets that found a live entry.
    pub hits: u64,
    /// Gets that found none.
    pub misses: u64,
    /// Puts of a key that had no live entry.
    pub inserts: u64,
    /// Puts that replaced a live entry.
    pub updates: u64,
    /// Deletes that removed a live entry.
    pub deletes: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Entries dropped because their TTL passed.
    pub expirations: u64,
    /// get_or_set calls that waited for another caller's factory.
    pub get_or_set_waits: u64,
    /// Items moved from the small to the main log.
    pub promotions: u64,
    /// Items kept in the main log at its tail.
    pub reinsertions: u64,
    /// Inserts that found their key's ghost.
    pub ghost_hits: u64,
    /// Bucket locks taken over from a dead (or stalled) holder.
    pub lock_takeovers: u64,
    /// get_or_set leases taken over from a dead or late leader.
    pub lease_takeovers: u64,
    /// Largest value accepted.
    pub max_value_size: u64,
    /// Layout version of the segment.
    pub layout_version: u32,
    /// Always 0 (explicit padding).
    pub _reserved0: u32,
    // The first version of the struct ends here (176 bytes); newer fields
    // follow, each only ever appended.
    /// Items moved from the small to the main log without a hit, because the
    /// main log had room. Appended: not written for a `struct_size` of 176.
    pub moved_to_main: u64,
    /// Sampled gets (one in 64 per thread) in the latency histogram.
    /// Appended: not written for a `struct_size` of 184 or less.
    pub get_samples: u64,
    /// Median sampled get latency in ns (the upper bound of its log2
    /// bucket); 0 without samples.
    pub get_p50_ns: u64,
    /// 99th percentile of the sampled get latency in ns; 0 without samples.
    pub get_p99_ns: u64,
    /// Sampled writes (put, add, incr, fills).
    pub put_samples: u64,
    /// Median sampled write latency in ns; 0 without samples.
    pub put_p50_ns: u64,
    /// 99th percentile of the sampled write latency in ns; 0 without samples.
    pub put_p99_ns: u64,
    /// The hottest key's share of the sampled hits (0 to 1): hot-key skew.
    pub hot_key_share: f64,
}

/// `sizeof(memshelf_stats)` of the first header: the smallest
/// `struct_size` that `memshelf_get_stats` accepts.
const STATS_V1_SIZE: usize = std::mem::offset_of!(memshelf_stats, moved_to_main);
// No implicit padding: every byte of the struct is a field, so it can be
// copied byte-wise, in part, to an older caller.
const _: () = assert!(STATS_V1_SIZE == 176);
const _: () = assert!(size_of::<memshelf_stats>() == 240);

/// Fills `*out` with the segment's statistics. The caller sets
/// `out->struct_size = sizeof(memshelf_stats)` first; the library writes
/// the fields it knows that fit in `struct_size` bytes (a program built
/// against an older header gets the fields it knows) and zeroes any newer
/// ones.
///
/// Thread-safe (a scan of the index: not for a hot path). Errors:
/// `MEMSHELF_ERR_NULL_ARGUMENT`, `MEMSHELF_ERR_INVALID_ARGUMENT`
/// (struct_size smaller than the first version of the struct).
///
/// # Safety
/// `cache` NULL or an open handle; `out` NULL or a writable
/// `memshelf_stats` of `out->struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_get_stats(
    cache: *const memshelf_cache,
    out: *mut memshelf_stats,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        let out = required(out, "out")?;
        let known = size_of::<memshelf_stats>();
        // SAFETY: `out` is non-NULL (checked by `required`) and points to a
        // `memshelf_stats` (the `# Safety` promise) whose first field is the
        // `size_t struct_size` the caller set; read unaligned, so the
        // caller's alignment does not matter.
        let given = unsafe { out.cast::<usize>().read_unaligned() };
        if given < STATS_V1_SIZE {
            return Err(Failure::invalid(format!(
                "memshelf_stats.struct_size is {given}, expected {known} (set it to sizeof(memshelf_stats))"
            )));
        }
        let s = c.stats();
        let ns = |h: &engine::Histogram, q: f64| h.quantile(q).map_or(0, |d| d.as_nanos() as u64);
        let value = memshelf_stats {
            struct_size: given,
            capacity_bytes: s.capacity_bytes,
            used_bytes: s.used_bytes,
            data_bytes: s.data_bytes,
            entries: s.entries,
            ghosts: s.ghosts,
            index_slots: s.index_slots,
            hits: s.hits,
            misses: s.misses,
            inserts: s.inserts,
            updates: s.updates,
            deletes: s.deletes,
            evictions: s.evictions,
            expirations: s.expirations,
            get_or_set_waits: s.get_or_set_waits,
            promotions: s.promotions,
            reinsertions: s.reinsertions,
            ghost_hits: s.ghost_hits,
            lock_takeovers: s.lock_takeovers,
            lease_takeovers: s.lease_takeovers,
            max_value_size: s.max_value_size,
            layout_version: s.layout_version,
            _reserved0: 0,
            moved_to_main: s.moved_to_main,
            get_samples: s.get_latency.count(),
            get_p50_ns: ns(&s.get_latency, 0.5),
            get_p99_ns: ns(&s.get_latency, 0.99),
            put_samples: s.put_latency.count(),
            put_p50_ns: ns(&s.put_latency, 0.5),
            put_p99_ns: ns(&s.put_latency, 0.99),
            hot_key_share: s.hot_key_share,
        };
        let fits = given.min(known);
        // SAFETY: `out` is non-NULL (checked by `required`) and writable for
        // `given` bytes (the `# Safety` promise: a `memshelf_stats` of
        // `out->struct_size` bytes); `value` is `known` initialised bytes (no
        // padding, checked at compile time) on this stack frame, so the two do
        // not overlap. `fits <= known` bytes are copied and `given - fits`
        // zeroed after them: `given` bytes in all, none past `out`'s end. An
        // older caller gets its first `given` bytes; the tail past `known` is
        // zeroed for fields of a newer header. Bytes need no alignment.
        unsafe {
            std::ptr::copy_nonoverlapping((&raw const value).cast::<u8>(), out.cast::<u8>(), fits);
            std::ptr::write_bytes(out.cast::<u8>().add(fits), 0, given - fits);
        }
        Ok(MEMSHELF_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C field of each `Stats::fields()` name. A statistic the engine
    /// adds without a C field comes back `None` and fails the test below:
    /// append the field at the END of `memshelf_stats`, fill it in
    /// `memshelf_get_stats`, list it here, and run scripts/gen-header.sh.
    fn c_field(s: &memshelf_stats, name: &str) -> Option<u64> {
        Some(match name {
            "capacity_bytes" => s.capacity_bytes,
            "used_bytes" => s.used_bytes,
            "data_bytes" => s.data_bytes,
            "entries" => s.entries,
            "ghosts" => s.ghosts,
            "index_slots" => s.index_slots,
            "hits" => s.hits,
            "misses" => s.misses,
            "inserts" => s.inserts,
            "updates" => s.updates,
            "deletes" => s.deletes,
            "evictions" => s.evictions,
            "expirations" => s.expirations,
            "get_or_set_waits" => s.get_or_set_waits,
            "promotions" => s.promotions,
            "moved_to_main" => s.moved_to_main,
            "reinsertions" => s.reinsertions,
            "ghost_hits" => s.ghost_hits,
            "lock_takeovers" => s.lock_takeovers,
            "lease_takeovers" => s.lease_takeovers,
            "max_value_size" => s.max_value_size,
            "layout_version" => u64::from(s.layout_version),
            _ => return None,
        })
    }

    /// Every statistic of `Stats::fields()` reaches C, with its value.
    #[test]
    fn every_engine_statistic_has_a_c_field_with_its_value() {
        let name = format!("ffi-stats-{}", std::process::id());
        let cache = engine::Cache::open(&name, 1 << 20).unwrap();
        for i in 0..300u32 {
            cache.put(i.to_le_bytes(), [7u8; 100]).unwrap();
            cache.get(i.to_le_bytes()).unwrap();
            cache.get((i + 1000).to_le_bytes()).unwrap();
        }
        cache.delete(0u32.to_le_bytes()).unwrap();
        let handle = memshelf_cache {
            cache: cache.clone(),
        };
        let mut out = memshelf_stats {
            struct_size: size_of::<memshelf_stats>(),
            ..Default::default()
        };
        // SAFETY: `handle` is a live `memshelf_cache` on this frame and
        // `out` a writable `memshelf_stats` whose `struct_size` is its size:
        // what `memshelf_get_stats`'s `# Safety` asks.
        let status = unsafe { memshelf_get_stats(&handle, &mut out) };
        assert_eq!(status, MEMSHELF_OK);
        let engine = cache.stats();
        for (field, value) in engine.fields() {
            assert_eq!(c_field(&out, field), Some(value), "memshelf_stats.{field}");
        }
        assert!(out.hits > 0 && out.misses > 0 && out.deletes > 0);
        drop(handle);
        drop(cache);
        engine::unlink(&name).unwrap();
    }
}
