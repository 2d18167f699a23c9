//! The engine handle and its small shared helpers: `Engine` (a mapped
//! segment plus this handle's sampling switch), key/tag hashing, argument
//! checks (`check_key`, `tag_pairs`, `ttl_ms`) and `liveness`, which says
//! whether a validated item may be served. Every other engine module
//! (`bucket.rs`, `read.rs`, `write.rs`, `log.rs`, `lease.rs`, `stats.rs`,
//! `sampling.rs`) adds methods to `Engine` and calls these; this module
//! calls none of them.

use std::sync::atomic::Ordering;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::error::{Error, Result};
use crate::item::Meta;
use crate::options::{MAX_TAG_LEN, MAX_TAGS, Ttl};
use crate::segment::Segment;
use crate::sys;

/// One process's handle on a segment: what every `Cache` clone shares.
pub(crate) struct Engine {
    pub seg: Segment,
    /// Whether this handle samples latencies and hot keys (`sampling.rs`).
    pub sampling: std::sync::atomic::AtomicBool,
    /// This handle's first statistics stripe and the fork epoch it was
    /// taken in (`stats.rs` `stripe`): `(epoch << 32) | base`, 0 = none yet.
    pub stripe_base: std::sync::atomic::AtomicU64,
}

const TAG_SALT: u64 = 0x7461_6773_616c_7421;

/// Whether a validated item may be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    Live,
    /// Past its TTL but inside its grace period (get_or_set serves it).
    Stale,
    Expired,
    /// Cleared, or one of its tags invalidated.
    Invalidated,
}

impl Engine {
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        xxh3_64_with_seed(key, self.seg.g.hash_seed)
    }

    pub fn tag_hash(&self, tag: &[u8]) -> u64 {
        xxh3_64_with_seed(tag, self.seg.g.hash_seed ^ TAG_SALT)
    }

    pub fn check_key(&self, key: &[u8]) -> Result<()> {
        crate::validate_key(key)
    }

    /// Tag (hash, stamp) pairs for a write (see `tags.rs`).
    #[inline]
    pub fn tag_pairs(&self, tags: &[&[u8]]) -> Result<Vec<(u64, u64)>> {
        if tags.len() > MAX_TAGS {
            return Err(Error::InvalidArgument(format!(
                "{} tags given: an entry carries at most {MAX_TAGS}",
                tags.len()
            )));
        }
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let stamp = crate::tags::stamp(&self.seg);
        tags.iter()
            .map(|t| {
                if t.is_empty() || t.len() > MAX_TAG_LEN {
                    return Err(Error::InvalidArgument(format!(
                        "a tag must be 1 to {MAX_TAG_LEN} bytes (got {})",
                        t.len()
                    )));
                }
                let h = self.tag_hash(t);
                Ok((h, stamp))
            })
            .collect()
    }

    /// TTL in ms after defaults and jitter (0 = never).
    #[inline]
    pub fn ttl_ms(&self, ttl: Ttl) -> Result<u64> {
        let ms = match ttl.validate()? {
            Ttl::Default => self.seg.g.default_ttl_ms,
            Ttl::Never => 0,
            Ttl::After(d) => (d.as_millis() as u64).max(1),
        };
        let ppm = self.seg.g.ttl_jitter_ppm;
        if ms == 0 || ppm == 0 {
            return Ok(ms);
        }
        // Uniform in [ms * (1 - j), ms * (1 + j)].
        let span = (ms as u128 * ppm as u128 / 1_000_000) as u64;
        let jittered = ms - span + sys::random_u64() % (2 * span + 1);
        Ok(jittered.max(1))
    }

    pub fn liveness(&self, m: &Meta, now: &mut Option<u64>) -> Liveness {
        if m.epoch() != self.seg.clear_epoch().load(Ordering::Acquire) {
            return Liveness::Invalidated;
        }
        for &(h, stamp) in &m.tags[..m.ntags()] {
            if crate::tags::invalidated(&self.seg, h, stamp) {
                return Liveness::Invalidated;
            }
        }
        let exp = m.expire_ms();
        if exp == 0 {
            return Liveness::Live;
        }
        let t = *now.get_or_insert_with(sys::now_ms);
        if t < exp {
            Liveness::Live
        } else if m.stale_until_ms() > t {
            Liveness::Stale
        } else {
            Liveness::Expired
        }
    }
}
