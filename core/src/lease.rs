//! `get_or_set` across processes: leases, waiting, takeover, voiding.
//!
//! A lease record (64 bytes, direct-mapped by key hash) holds:
//!
//! ```text
//! +0  claim     (hash >> 32) << 32 | holder pid; 0 = free. Taken by CAS.
//! +8  holder    the holder's process token (pid | start time)
//! +16 deadline  ms since the epoch after which a waiter may take over
//! +24 futex     u32 bumped (and woken) on every release
//! +28 voided    u32 set by delete() of the key while the lease is held
//! +32 epoch     clear epoch when the lease was taken
//! ```
//!
//! The leader's value is stored with the epoch and tag versions of the
//! lease's start and published under the bucket lock only if the lease is
//! still its own and not voided, so a fill that raced a delete, clear or
//! tag invalidation never leaves a stale entry. Waiters sleep on the futex
//! with a short timeout and re-check whether the holder is alive (by the
//! kernel's word) or late; one of them then takes the lease over by CAS.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::cache::{Cache, Counter, Engine, Liveness, Mode, Outcome, Write};
use crate::error::{Error, Result};
use crate::item::FLAG_NEGATIVE;
use crate::options::{GetOrSetOptions, MAX_TTL, Ttl};
use crate::sys;

const CLAIM: u64 = 0;
const HOLDER: u64 = 8;
const DEADLINE: u64 = 16;
const FUTEX: u64 = 24;
const VOIDED: u64 = 28;
const EPOCH: u64 = 32;

/// What [`Cache::begin_fill`] decided.
#[derive(Debug)]
pub enum Fill {
    /// A live value.
    Hit(Vec<u8>),
    /// A cached absence (`negative_ttl`).
    Absent,
    /// A stale value (in grace) while another caller refreshes it.
    Stale(Vec<u8>),
    /// This caller must compute the value and call [`FillLease::fill`].
    Lead(FillLease),
    /// Another caller is computing: wait with [`Cache::wait_fill`], then ask
    /// again.
    Wait(WaitTicket),
}

/// Where to wait for another caller's fill.
#[derive(Debug, Clone, Copy)]
pub struct WaitTicket {
    rec: u64,
    futex: u32,
}

/// The right (and duty) to compute and store one key's value. Dropping it
/// without [`fill`](Self::fill) hands the lease to a waiter.
#[derive(Debug)]
pub struct FillLease {
    cache: Cache,
    key: Vec<u8>,
    /// Lease record offset and our claim word; `None` when the record was
    /// busy with another key (then the value is returned but not stored).
    rec: Option<(u64, u64)>,
    epoch: u64,
    tags: Vec<(u64, u64)>,
    ttl: Ttl,
    grace_ms: u64,
    negative_ms: u64,
    stale: Option<Vec<u8>>,
}

/// The error of [`Cache::get_or_set`]: the cache's or the factory's.
#[derive(Debug)]
pub enum FillError<E> {
    /// The cache failed (bad input, I/O).
    Cache(Error),
    /// The factory failed; a waiter takes over.
    Factory(E),
}

impl<E: std::fmt::Display> std::fmt::Display for FillError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FillError::Cache(e) => e.fmt(f),
            FillError::Factory(e) => write!(f, "factory failed: {e}"),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for FillError<E> {}

impl<E> From<Error> for FillError<E> {
    fn from(e: Error) -> Self {
        FillError::Cache(e)
    }
}

fn check_duration(what: &str, d: Duration, allow_zero: bool) -> Result<u64> {
    if (!allow_zero && d.is_zero()) || d > MAX_TTL {
        return Err(Error::InvalidTtl(format!(
            "{what} of {d:?} is out of range (must be > 0 and <= {} s)",
            MAX_TTL.as_secs()
        )));
    }
    Ok(d.as_millis().max(1) as u64)
}

impl Engine {
    fn lease_rec(&self, hash: u64) -> u64 {
        self.seg.lease_off(hash >> 20)
    }

    fn claim_word(hash: u64) -> u64 {
        (hash >> 32) << 32 | u64::from(sys::token_pid(sys::process_token()))
    }

    /// Marks an in-flight fill of `hash` void (called under its bucket lock).
    pub(crate) fn void_lease(&self, hash: u64) {
        let rec = self.lease_rec(hash);
        let claim = self.seg.word(rec + CLAIM).load(Ordering::Acquire);
        if claim != 0 && claim >> 32 == hash >> 32 {
            self.seg.word32(rec + VOIDED).store(1, Ordering::Release);
        }
    }

    /// Whether the holder of `claim` at `rec` is dead or late.
    fn lease_abandoned(&self, rec: u64, claim: u64, now: u64) -> bool {
        let holder = self.seg.word(rec + HOLDER).load(Ordering::Acquire);
        let deadline = self.seg.word(rec + DEADLINE).load(Ordering::Acquire);
        if deadline != 0 && now > deadline {
            return true;
        }
        // The holder word is written just after the claim: until then judge
        // by the pid alone.
        if sys::token_pid(holder) == claim as u32 {
            !sys::token_alive(holder)
        } else {
            !sys::pid_alive(claim as u32)
        }
    }

    fn release(&self, rec: u64, claim: u64) {
        if self
            .seg
            .word(rec + CLAIM)
            .compare_exchange(claim, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            let f = self.seg.word32(rec + FUTEX);
            f.fetch_add(1, Ordering::Release);
            sys::futex_wake_all(f);
        }
    }
}

impl Cache {
    /// Returns `key`'s value; on a miss exactly one caller across all
    /// processes runs `factory` while the others wait for its value. See
    /// [`GetOrSetOptions`] for lease, grace and negative caching. A factory
    /// returning `Ok(None)` stores nothing (or a cached absence with
    /// `negative_ttl`); an `Err` goes to this caller and a waiter takes
    /// over.
    ///
    /// ```
    /// # let name = format!("doc-gos-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use memshelf::GetOrSetOptions;
    /// let v = cache.get_or_set(b"answer", &GetOrSetOptions::default(), || {
    ///     Ok::<_, std::io::Error>(Some(b"42".to_vec()))
    /// }).unwrap();
    /// assert_eq!(v.as_deref(), Some(&b"42"[..]));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn get_or_set<E>(
        &self,
        key: impl AsRef<[u8]>,
        opts: &GetOrSetOptions<'_>,
        factory: impl FnOnce() -> std::result::Result<Option<Vec<u8>>, E>,
    ) -> std::result::Result<Option<Vec<u8>>, FillError<E>> {
        let key = key.as_ref();
        let mut waited = false;
        loop {
            match self.begin_fill(key, opts)? {
                Fill::Hit(v) | Fill::Stale(v) => return Ok(Some(v)),
                Fill::Absent => return Ok(None),
                Fill::Lead(lease) => {
                    return match factory() {
                        Ok(v) => {
                            lease.fill(v.as_deref())?;
                            Ok(v)
                        }
                        Err(e) => Err(FillError::Factory(e)),
                    };
                }
                Fill::Wait(t) => {
                    if !waited {
                        waited = true;
                        self.record_get_or_set_wait();
                    }
                    self.wait_fill(&t, Duration::from_millis(50));
                }
            }
        }
    }

    /// The first half of `get_or_set`, for callers that compute the value
    /// asynchronously (the Node binding): a hit, or a lease to fill, or a
    /// ticket to wait on.
    pub fn begin_fill(&self, key: impl AsRef<[u8]>, opts: &GetOrSetOptions<'_>) -> Result<Fill> {
        let key = key.as_ref();
        let e = &self.e;
        e.check_key(key)?;
        let lease_ms = check_duration("lease", opts.lease, false)?;
        let grace_ms = opts
            .grace
            .map(|g| check_duration("grace", g, true))
            .transpose()?
            .unwrap_or(0);
        let negative_ms = opts
            .negative_ttl
            .map(|g| check_duration("negative_ttl", g, false))
            .transpose()?
            .unwrap_or(0);
        opts.ttl.validate()?;
        let tags = e.tag_pairs(opts.tags)?;
        let hash = e.hash(key);
        let mut buf = Vec::new();
        let mut stale = None;
        if let Some(f) = e.find(key, hash, Some(&mut buf)) {
            match e.liveness(&f.meta, &mut None) {
                Liveness::Live => {
                    e.bump(hash, &f);
                    e.count(Counter::Hits, 1);
                    if f.meta.flags() & FLAG_NEGATIVE != 0 {
                        return Ok(Fill::Absent);
                    }
                    return Ok(Fill::Hit(buf));
                }
                Liveness::Stale if f.meta.flags() & FLAG_NEGATIVE == 0 => stale = Some(buf),
                Liveness::Stale => {}
                l => e.reap(hash, &f, l),
            }
        }
        let rec = e.lease_rec(hash);
        let claim_w = e.seg.word(rec + CLAIM);
        let futex = e.seg.word32(rec + FUTEX).load(Ordering::Acquire);
        let mine = Engine::claim_word(hash);
        let now = sys::now_ms();
        let cur = claim_w.load(Ordering::Acquire);
        let taken = if cur == 0 {
            claim_w
                .compare_exchange(0, mine, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        } else if e.lease_abandoned(rec, cur, now) {
            let ok = claim_w
                .compare_exchange(cur, mine, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok();
            if ok {
                e.count(Counter::LeaseTakeovers, 1);
                // Wake the old holder's waiters: they may now lead.
                let f = e.seg.word32(rec + FUTEX);
                f.fetch_add(1, Ordering::Release);
                sys::futex_wake_all(f);
            }
            ok
        } else {
            false
        };
        let make = |rec| FillLease {
            cache: self.clone(),
            key: key.to_vec(),
            rec,
            epoch: e.seg.clear_epoch().load(Ordering::Acquire),
            tags: tags.clone(),
            ttl: opts.ttl,
            grace_ms,
            negative_ms,
            stale: stale.clone(),
        };
        if taken {
            e.seg
                .word(rec + HOLDER)
                .store(sys::process_token(), Ordering::Release);
            e.seg
                .word(rec + DEADLINE)
                .store(now + lease_ms, Ordering::Release);
            e.seg.word32(rec + VOIDED).store(0, Ordering::Release);
            let lease = make(Some((rec, mine)));
            e.seg
                .word(rec + EPOCH)
                .store(lease.epoch, Ordering::Release);
            // Someone may have filled between our miss and our claim.
            let mut buf = Vec::new();
            if let Some(f) = e.find(key, hash, Some(&mut buf)) {
                if e.liveness(&f.meta, &mut None) == Liveness::Live {
                    drop(lease);
                    return Ok(if f.meta.flags() & FLAG_NEGATIVE != 0 {
                        Fill::Absent
                    } else {
                        Fill::Hit(buf)
                    });
                }
            }
            e.count(Counter::Misses, 1);
            return Ok(Fill::Lead(lease));
        }
        let cur = claim_w.load(Ordering::Acquire);
        if cur != 0 && cur >> 32 != hash >> 32 {
            // The record is busy with another key: compute without a lease
            // (the value is returned but not stored, so no stale fill).
            e.count(Counter::Misses, 1);
            return Ok(Fill::Lead(make(None)));
        }
        if let Some(v) = stale {
            return Ok(Fill::Stale(v));
        }
        Ok(Fill::Wait(WaitTicket { rec, futex }))
    }

    /// Counts one `get_or_set` call that had to wait (in `stats()`'s
    /// `get_or_set_waits`). [`get_or_set`](Self::get_or_set) does this
    /// itself; callers driving [`begin_fill`](Self::begin_fill) and
    /// [`wait_fill`](Self::wait_fill) call it once per call that waited.
    pub fn record_get_or_set_wait(&self) {
        self.e.count(Counter::GetOrSetWaits, 1);
    }

    /// Sleeps until the fill behind `ticket` ends or `max` passes (no CPU
    /// burnt). Then call [`begin_fill`](Self::begin_fill) again.
    pub fn wait_fill(&self, ticket: &WaitTicket, max: Duration) {
        let f = self.e.seg.word32(ticket.rec + FUTEX);
        let start = Instant::now();
        while f.load(Ordering::Acquire) == ticket.futex && start.elapsed() < max {
            sys::futex_wait(f, ticket.futex, max.saturating_sub(start.elapsed()));
        }
    }
}

impl FillLease {
    /// The stale value being refreshed (only with `grace`).
    pub fn stale_value(&self) -> Option<&[u8]> {
        self.stale.as_deref()
    }

    /// Stores the factory's result (`None`: a cached absence if
    /// `negative_ttl` was set, else nothing) and wakes the waiters. Returns
    /// whether it was stored: `false` when a delete, clear or tag
    /// invalidation voided the lease, or it was taken over meanwhile.
    pub fn fill(self, value: Option<&[u8]>) -> Result<bool> {
        let e = &self.cache.e;
        let Some((rec, mine)) = self.rec else {
            // Still validate the value for the caller's sake.
            if let Some(v) = value {
                if v.len() > e.seg.g.max_value_size as usize {
                    return Err(Error::ValueTooLarge {
                        len: v.len(),
                        max: e.seg.g.max_value_size as usize,
                    });
                }
            }
            return Ok(false);
        };
        let (bytes, flags, ttl_ms, grace) = match value {
            Some(v) => (v, 0, e.ttl_ms(self.ttl)?, self.grace_ms),
            None if self.negative_ms > 0 => (&[][..], FLAG_NEGATIVE, self.negative_ms, 0),
            None => return Ok(false), // drop releases
        };
        let now = sys::now_ms();
        let expire = if ttl_ms == 0 { 0 } else { now + ttl_ms };
        let w = Write {
            key: &self.key,
            value: bytes,
            flags,
            expire_ms: expire,
            stale_until_ms: if expire == 0 { 0 } else { expire + grace },
            tags: &self.tags,
            epoch: Some(self.epoch),
        };
        // Under the bucket lock: the lease is still ours and nothing voided
        // it (a delete of the key, a clear, an invalidation of one of its
        // tags). A voided fill is not published at all, so it can neither
        // report success nor replace a newer value put after the voiding.
        let still_ours = || {
            e.seg.word(rec + CLAIM).load(Ordering::Acquire) == mine
                && e.seg.word32(rec + VOIDED).load(Ordering::Acquire) == 0
                && e.seg.clear_epoch().load(Ordering::Acquire) == self.epoch
                && self
                    .tags
                    .iter()
                    .all(|(h, v)| e.seg.tag_version(*h).load(Ordering::Acquire) == *v)
        };
        let stored = !matches!(
            e.write(&w, Mode::Upsert, Some(&still_ours))?,
            Outcome::NotStored
        );
        Ok(stored)
    }
}

impl Drop for FillLease {
    fn drop(&mut self) {
        if let Some((rec, mine)) = self.rec {
            self.cache.e.release(rec, mine);
        }
    }
}
