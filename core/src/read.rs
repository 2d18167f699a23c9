//! The read path: `lookup` (a get: find, liveness, hit accounting and
//! sampling), and the reads that need more than the value: `names_of` (a
//! found item's tag names) and `export` (a live entry for `dump`). Called
//! by `cache.rs` and `dump.rs`; calls `bucket.rs` (`find`, `bump`,
//! `reap`), `sampling.rs` and `item.rs`.

use std::time::Duration;

use crate::bucket::Found;
use crate::engine::{Engine, Liveness};
use crate::error::Result;
use crate::item::{self, Check, FLAG_NEGATIVE};
use crate::options::Expiry;
use crate::sampling::Op;
use crate::sink::Sink;
use crate::stats::Counter;
use crate::sys;

/// What [`Engine::export`] read besides the value.
pub(crate) struct Exported<'n> {
    pub expiry: Expiry,
    pub tags: Vec<&'n [u8]>,
}

impl Engine {
    /// A lookup for a reader: `true` only for a live, non-negative entry
    /// (value in `buf`, which was told `filled`). Counts the hit or miss.
    #[inline]
    pub fn lookup<S: Sink + ?Sized>(&self, key: &[u8], buf: &mut S) -> Result<bool> {
        self.lookup_hashed(key, self.hash(key), buf)
    }

    /// `lookup` with the key's `hash` already computed (`self.hash(key)`).
    /// Always inlined: out of line (as LLVM chose for `get_many_into`'s
    /// sinks) a batch paid a call and a thread-local lookup per key.
    #[inline(always)]
    pub fn lookup_hashed<S: Sink + ?Sized>(
        &self,
        key: &[u8],
        hash: u64,
        buf: &mut S,
    ) -> Result<bool> {
        debug_assert_eq!(hash, self.hash(key));
        self.check_key(key)?;
        let t0 = self.sample_start(Op::Get);
        let mut f = Found::empty();
        if self.find_into(key, hash, Some(buf), &mut f) {
            match self.liveness(&f.meta, &mut None) {
                Liveness::Live if f.meta.flags() & FLAG_NEGATIVE == 0 => {
                    self.bump(hash, &f);
                    self.count(Counter::Hits, 1);
                    if let Some(t0) = t0 {
                        self.sample_end(Op::Get, t0, Some(hash));
                    }
                    return Ok(true);
                }
                Liveness::Live | Liveness::Stale => {}
                l => self.reap(hash, &f, l),
            }
        }
        self.count(Counter::Misses, 1);
        if let Some(t0) = t0 {
            self.sample_end(Op::Get, t0, None);
        }
        Ok(false)
    }

    /// The tag-names block of a found item (empty without tags), for a
    /// rewrite that keeps its tags. `false`: the item was lapped meanwhile.
    pub fn names_of(&self, f: &Found, out: &mut Vec<u8>) -> bool {
        item::read_names(
            &self.seg,
            self.seg.log(f.slot.log()),
            f.slot.pos(),
            &f.meta,
            Check::Reader,
            out,
        )
    }

    /// A live entry for `dump`: its value (into `value`), remaining
    /// lifetime and tag names, read without counting a hit or marking it
    /// used. `None`: no live entry (deleted, expired, invalidated, negative).
    pub fn export<'n>(
        &self,
        key: &[u8],
        value: &mut Vec<u8>,
        names: &'n mut Vec<u8>,
    ) -> Option<Exported<'n>> {
        let hash = self.hash(key);
        // A lapped item while reading its names: look again (a few times;
        // the key moved or was rewritten meanwhile).
        let (meta, now) = (0..4).find_map(|_| {
            let f = self.find(key, hash, Some(value))?;
            let mut now = None;
            let live = self.liveness(&f.meta, &mut now) == Liveness::Live
                && f.meta.flags() & FLAG_NEGATIVE == 0;
            live.then(|| self.names_of(&f, names).then_some((f.meta, now)))
                .flatten()
        })?;
        let expiry = match meta.expire_ms() {
            0 => Expiry::Never,
            exp => Expiry::In(Duration::from_millis(
                exp.saturating_sub(now.unwrap_or_else(sys::now_ms)),
            )),
        };
        // Keep the names whose hash is the checksummed tag hash at the
        // same position (the names themselves are not checksummed).
        let tags = item::decode_names(names, meta.ntags())
            .into_iter()
            .zip(&meta.tags[..meta.ntags()])
            .filter(|(n, (h, _))| self.tag_hash(n) == *h)
            .map(|(n, _)| n)
            .collect();
        Some(Exported { expiry, tags })
    }
}
