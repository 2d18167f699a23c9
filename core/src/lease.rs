//! `get_or_set` across processes: per-key leases, waiting, takeover, voiding.
//!
//! A fill in progress is a PENDING slot in the key's bucket (`index.rs`)
//! naming a lease record and its generation. A lease record (64 bytes):
//!
//! ```text
//! +0  claim     generation (24) << 40 | holder token (40); token 0 = free
//! +8  hash      the key's full hash
//! +16 deadline  ms since the epoch after which a waiter may take over
//! +24 futex     u32 bumped (and woken) on every release and takeover
//! +32 epoch     clear epoch when the lease was taken
//! ```
//!
//! Protocol. A caller that misses first takes a free record (CAS of the
//! claim from a free or dead holder's word to its own with the next
//! generation; outside any lock), then takes the key's bucket lock and
//! decides there, so every decision about one key's fill is serialised:
//!
//! * the key has a live entry now: release the record, return it;
//! * the bucket has a PENDING slot for the key (its record's claim has the
//!   slot's generation, a holder, and the key's hash): release ours; if the
//!   holder is alive (by the kernel's word) and not late, wait on that
//!   record's futex; else take it over (CAS of its claim to our token, new
//!   deadline, all under the lock);
//! * otherwise write hash, deadline and epoch into our record and publish a
//!   PENDING slot for it with one CAS: we lead.
//!
//! Every key that misses therefore gets its own lease (no shared table
//! where a collision means "no lease"), and no deadline is read that was
//! not written under the same lock as the claim it belongs to.
//!
//! The leader stores its value under the bucket lock only if its PENDING
//! slot is still in the bucket, the record's claim is still its own, and
//! the clear epoch is that of the lease's start and none of its tags was
//! invalidated since the lease's tag stamp (`tags.rs`). A
//! `put` or `delete` of the key consumes the PENDING slot (and wakes the
//! waiters), so a fill that raced them is returned to its caller but not
//! stored; `clear` and `invalidate_tag` void it through the epoch and the
//! tag records. Releasing a record (after the fill, or when the factory fails)
//! sets its token to 0: a PENDING slot naming a free or re-used record is
//! junk, reused like an empty slot, and its waiters, woken by the futex,
//! find no fill and one of them leads.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::bucket::{Mode, Outcome};
use crate::cache::Cache;
use crate::engine::{Engine, Liveness};
use crate::error::{Error, Result};
use crate::index::{self, KIND_PENDING, LEASE_GEN_MASK, LOCK_WAIT_LIMIT, Slot, tag_of};
use crate::item::FLAG_NEGATIVE;
use crate::layout::{LEASE_SIZE, SLOTS};
use crate::options::{GetOrSetOptions, MAX_TTL, Ttl};
use crate::registry::{TOKEN_BITS, TOKEN_MASK};
use crate::stats::Counter;
use crate::sys;
use crate::write::Write;

const CLAIM: u64 = 0;
const HASH: u64 = 8;
const DEADLINE: u64 = 16;
const FUTEX: u64 = 24;
const EPOCH: u64 = 32;

const GEN_SHIFT: u32 = TOKEN_BITS;

fn claim_gen(claim: u64) -> u64 {
    (claim >> GEN_SHIFT) & LEASE_GEN_MASK
}

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

/// How long one wait on another caller's fill lasts before the caller asks
/// again ([`Cache::fill_step`]): a dead or late leader's lease is taken over
/// then. Every binding waits in slices of this length.
pub const FILL_WAIT_SLICE: Duration = Duration::from_millis(50);

/// One `get_or_set` call driven step by step, for callers whose factory or
/// waiting is asynchronous (the Python asyncio and Node bindings): ask
/// [`Cache::fill_step`] until it answers something other than
/// [`Fill::Wait`], waiting on each ticket with [`Cache::wait_fill`] (on a
/// thread, or in short sleeps). The engine counts the call's wait (once,
/// in `stats().get_or_set_waits`); [`Cache::get_or_set`] is this loop,
/// blocking.
///
/// ```
/// # let name = format!("doc-fillcall-{}", std::process::id());
/// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
/// use memshelf::{Fill, FillCall, GetOrSetOptions, FILL_WAIT_SLICE};
/// let mut call = FillCall::default();
/// let value = loop {
///     match cache.fill_step(b"k", &GetOrSetOptions::default(), &mut call)? {
///         Fill::Hit(v) | Fill::Stale(v) => break Some(v),
///         Fill::Absent => break None,
///         Fill::Lead(lease) => {
///             let v = b"computed".to_vec(); // an async caller awaits here
///             lease.fill(Some(&v))?;
///             break Some(v);
///         }
///         Fill::Wait(t) => cache.wait_fill(&t, FILL_WAIT_SLICE),
///     }
/// };
/// assert_eq!(value.as_deref(), Some(&b"computed"[..]));
/// assert!(!call.waited());
/// # memshelf::unlink(&name)?;
/// # Ok::<(), memshelf::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct FillCall {
    waited: bool,
}

impl FillCall {
    /// Whether this call has had to wait for another caller's fill.
    pub fn waited(&self) -> bool {
        self.waited
    }
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
    hash: u64,
    /// Lease record offset and our claim word.
    rec: u64,
    claim: u64,
    /// Our PENDING slot in the key's bucket.
    pending: Slot,
    epoch: u64,
    tags: Vec<(u64, u64)>,
    names: Vec<u8>,
    ttl: Ttl,
    grace_ms: u64,
    negative_ms: u64,
    stale: Option<Vec<u8>>,
    /// The fork epoch of the process that took the lease (`sys::fork_epoch`):
    /// a forked child's copy of the lease is not its own, so that copy
    /// neither fills nor releases it (a child that unwinds out of the
    /// factory used to hand the parent's lease to a waiter).
    fork_epoch: u32,
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
    /// Takes a free lease record (or one whose holder is dead) for `me`.
    /// Returns its offset and our claim word. Waits (bounded by `max`) only
    /// when every record is held by a live process.
    fn alloc_lease(&self, hash: u64, me: u64, max: Duration) -> Result<(u64, u64)> {
        let n = self.seg.g.nleases;
        let start = Instant::now();
        loop {
            let first = (hash >> 20) % n;
            for i in 0..n {
                let rec = self.seg.lease_off(first + i);
                let w = self.seg.word(rec + CLAIM);
                let cur = w.load(Ordering::Acquire);
                let holder = cur & TOKEN_MASK;
                if holder != 0 && (holder == me || self.seg.alive(holder)) {
                    continue;
                }
                let mine = (((claim_gen(cur) + 1) & LEASE_GEN_MASK) << GEN_SHIFT) | me;
                if w.compare_exchange(cur, mine, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    if holder != 0 {
                        // A dead leader's record: its fill (if its PENDING
                        // slot is still there) is junk now. Wake whoever
                        // still waits on it: one of them leads.
                        self.count(Counter::LeaseTakeovers, 1);
                        self.wake(rec);
                    }
                    return Ok((rec, mine));
                }
            }
            if start.elapsed() > max {
                return Err(Error::Timeout(format!(
                    "all {n} get_or_set leases of segment {:?} are held by live processes",
                    self.seg.name
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Whether `s` is a live PENDING slot of the key with `hash`; returns
    /// its record offset and claim.
    pub(crate) fn pending_of(&self, s: Slot, hash: u64) -> Option<(u64, u64)> {
        if s.kind() != KIND_PENDING || s.tag() != tag_of(hash) {
            return None;
        }
        let rec = self.seg.lease_off(s.rec());
        let claim = self.seg.word(rec + CLAIM).load(Ordering::Acquire);
        (claim_gen(claim) == s.lease_gen()
            && claim & TOKEN_MASK != 0
            && self.seg.word(rec + HASH).load(Ordering::Acquire) == hash)
            .then_some((rec, claim))
    }

    /// Whether a PENDING slot names no fill in progress (reusable).
    pub(crate) fn pending_is_junk(&self, s: Slot) -> bool {
        let rec = self.seg.lease_off(s.rec());
        let claim = self.seg.word(rec + CLAIM).load(Ordering::Acquire);
        claim_gen(claim) != s.lease_gen() || claim & TOKEN_MASK == 0
    }

    /// Bumps a record's futex and wakes its waiters.
    pub(crate) fn wake(&self, rec: u64) {
        let f = self.seg.word32(rec + FUTEX);
        f.fetch_add(1, Ordering::Release);
        sys::futex_wake_all(f);
    }

    fn release(&self, rec: u64, claim: u64) {
        if self
            .seg
            .word(rec + CLAIM)
            .compare_exchange(
                claim,
                claim & !TOKEN_MASK,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            self.wake(rec);
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
        let mut call = FillCall::default();
        loop {
            match self.fill_step(key, opts, &mut call)? {
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
                Fill::Wait(t) => self.wait_fill(&t, FILL_WAIT_SLICE),
            }
        }
    }

    /// One step of a `get_or_set` call (see [`FillCall`]): what
    /// [`begin_fill`](Self::begin_fill) decides, with the call's first wait
    /// counted in `stats().get_or_set_waits`.
    pub fn fill_step(
        &self,
        key: impl AsRef<[u8]>,
        opts: &GetOrSetOptions<'_>,
        call: &mut FillCall,
    ) -> Result<Fill> {
        let f = self.begin_fill(key, opts)?;
        if matches!(f, Fill::Wait(_)) && !call.waited {
            call.waited = true;
            self.record_get_or_set_wait();
        }
        Ok(f)
    }

    /// The first half of `get_or_set`, for callers that compute the value
    /// asynchronously (the Node binding): a hit, or a lease to fill, or a
    /// ticket to wait on.
    ///
    /// ```
    /// # let name = format!("doc-begin-fill-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use memshelf::{Fill, GetOrSetOptions};
    /// let opts = GetOrSetOptions::default();
    /// match cache.begin_fill(b"answer", &opts)? {
    ///     Fill::Lead(lease) => {
    ///         let value = b"42"; // computed, possibly asynchronously
    ///         assert!(lease.fill(Some(&value[..]))?); // stored, waiters woken
    ///     }
    ///     other => panic!("a miss makes this caller lead, got {other:?}"),
    /// }
    /// assert!(matches!(cache.begin_fill(b"answer", &opts)?, Fill::Hit(v) if v == b"42"));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
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
        let names = crate::item::encode_names(opts.tags);
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
        let me = e.seg.token()?;
        let tag = tag_of(hash);
        let lease_max = Duration::from_millis(lease_ms);
        loop {
            let (rec, mine) = e.alloc_lease(hash, me, lease_max)?;
            let mut steals = 0;
            let lock = index::lock_bucket(&e.seg, hash, &mut steals, LOCK_WAIT_LIMIT);
            if steals > 0 {
                e.count(Counter::LockTakeovers, steals);
            }
            let _lock = match lock {
                Ok(l) => l,
                Err(err) => {
                    e.release(rec, mine);
                    return Err(err);
                }
            };
            // Filled meanwhile?
            let mut buf = Vec::new();
            if let Some(f) = e.find(key, hash, Some(&mut buf)) {
                if e.liveness(&f.meta, &mut None) == Liveness::Live {
                    e.release(rec, mine);
                    e.count(Counter::Hits, 1);
                    return Ok(if f.meta.flags() & FLAG_NEGATIVE != 0 {
                        Fill::Absent
                    } else {
                        Fill::Hit(buf)
                    });
                }
            }
            let now = sys::now_ms();
            let epoch = e.seg.clear_epoch().load(Ordering::Acquire);
            let lead = |rec: u64, claim: u64, pending: Slot| FillLease {
                cache: self.clone(),
                key: key.to_vec(),
                hash,
                rec,
                claim,
                pending,
                epoch,
                tags: tags.clone(),
                names: names.clone(),
                ttl: opts.ttl,
                grace_ms,
                negative_ms,
                stale: stale.clone(),
                fork_epoch: sys::fork_epoch(),
            };
            // A fill in progress?
            let existing = SLOTS.clone().find_map(|i| {
                let s = Slot(e.seg.bucket_word(hash, i).load(Ordering::Acquire));
                e.pending_of(s, hash).map(|(r, c)| (s, r, c))
            });
            if let Some((ps, prec, claim)) = existing {
                e.release(rec, mine);
                let futex = e.seg.word32(prec + FUTEX).load(Ordering::Acquire);
                let holder = claim & TOKEN_MASK;
                let deadline = e.seg.word(prec + DEADLINE).load(Ordering::Acquire);
                let late = now > deadline;
                if !late && (holder == me || e.seg.alive(holder)) {
                    if let Some(v) = stale {
                        return Ok(Fill::Stale(v));
                    }
                    return Ok(Fill::Wait(WaitTicket { rec: prec, futex }));
                }
                // Dead or late: take it over (under the lock, as every
                // decision about this key's fill).
                let taken = (claim & !TOKEN_MASK) | me;
                if e.seg
                    .word(prec + CLAIM)
                    .compare_exchange(claim, taken, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                e.seg
                    .word(prec + DEADLINE)
                    .store(now + lease_ms, Ordering::Release);
                e.seg.word(prec + EPOCH).store(epoch, Ordering::Release);
                e.count(Counter::LeaseTakeovers, 1);
                e.count(Counter::Misses, 1);
                // The old holder's waiters may now wait on us.
                e.wake(prec);
                return Ok(Fill::Lead(lead(prec, taken, ps)));
            }
            // No fill: lead, with a PENDING slot for our record.
            e.seg.word(rec + HASH).store(hash, Ordering::Relaxed);
            e.seg
                .word(rec + DEADLINE)
                .store(now + lease_ms, Ordering::Relaxed);
            e.seg.word(rec + EPOCH).store(epoch, Ordering::Relaxed);
            let index = (rec - e.seg.g.leases_off) / LEASE_SIZE;
            let ps = Slot::pending(tag, index, claim_gen(mine));
            loop {
                let (i, old) = e.free_slot(hash, tag);
                if e.seg
                    .bucket_word(hash, i)
                    .compare_exchange(old.0, ps.0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    e.forget_slot(hash, old);
                    break;
                }
            }
            e.count(Counter::Misses, 1);
            return Ok(Fill::Lead(lead(rec, mine, ps)));
        }
    }

    /// Counts one `get_or_set` call that had to wait (in `stats()`'s
    /// `get_or_set_waits`). [`get_or_set`](Self::get_or_set) does this
    /// itself; callers driving [`begin_fill`](Self::begin_fill) and
    /// [`wait_fill`](Self::wait_fill) call it once per call that waited.
    ///
    /// ```
    /// # let name = format!("doc-record-wait-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// assert_eq!(cache.stats().get_or_set_waits, 0);
    /// cache.record_get_or_set_wait(); // after a Fill::Wait, once per call
    /// assert_eq!(cache.stats().get_or_set_waits, 1);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn record_get_or_set_wait(&self) {
        self.e.count(Counter::GetOrSetWaits, 1);
    }

    /// Sleeps until the fill behind `ticket` ends or `max` passes (no CPU
    /// burnt). Then call [`begin_fill`](Self::begin_fill) again.
    ///
    /// ```
    /// # let name = format!("doc-wait-fill-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use memshelf::{Fill, GetOrSetOptions};
    /// use std::time::Duration;
    /// let opts = GetOrSetOptions::default();
    /// let Fill::Lead(lease) = cache.begin_fill(b"k", &opts)? else { panic!("a miss leads") };
    /// // A second caller finds the fill in progress and must wait:
    /// let Fill::Wait(ticket) = cache.begin_fill(b"k", &opts)? else { panic!("a fill is running") };
    /// let leader = std::thread::spawn(move || lease.fill(Some(&b"v"[..])));
    /// cache.record_get_or_set_wait();
    /// cache.wait_fill(&ticket, Duration::from_secs(5)); // returns once the fill ends
    /// assert!(leader.join().unwrap()?);
    /// assert!(matches!(cache.begin_fill(b"k", &opts)?, Fill::Hit(v) if v == b"v"));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
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
        let ttl = self.ttl;
        self.fill_with_ttl(value, ttl)
    }

    /// [`fill`](Self::fill) with a TTL chosen by the factory rather than the
    /// one given to `begin_fill` (a read-through helper learns the origin's
    /// remaining TTL only with the value). The TTL is checked as `put`'s; a
    /// bad one is an error and the lease is released (a waiter takes over).
    pub fn fill_with_ttl(self, value: Option<&[u8]>, ttl: Ttl) -> Result<bool> {
        if !self.ours() {
            return Ok(false); // a forked child's copy: the parent fills
        }
        let e = &self.cache.e;
        let (bytes, flags, ttl_ms, grace) = match value {
            Some(v) => (v, 0, e.ttl_ms(ttl)?, self.grace_ms),
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
            names: &self.names,
            epoch: Some(self.epoch),
        };
        // Under the bucket lock: our PENDING slot is still there (no put or
        // delete of the key consumed it), the lease is still ours (not taken
        // over), and no clear or invalidation of one of its tags happened. A
        // voided fill is not published at all, so it can neither report
        // success nor replace a newer value.
        let still_ours = || {
            e.seg.word(self.rec + CLAIM).load(Ordering::Acquire) == self.claim
                && SLOTS.clone().any(|i| {
                    e.seg.bucket_word(self.hash, i).load(Ordering::Acquire) == self.pending.0
                })
                && e.seg.clear_epoch().load(Ordering::Acquire) == self.epoch
                && self
                    .tags
                    .iter()
                    .all(|&(h, stamp)| !crate::tags::invalidated(&e.seg, h, stamp))
        };
        let stored = !matches!(
            e.write(&w, Mode::Upsert, Some(&still_ours))?,
            Outcome::NotStored
        );
        Ok(stored)
    }
}

impl FillLease {
    /// Whether this process took the lease (not a forked child's copy).
    fn ours(&self) -> bool {
        self.fork_epoch == sys::fork_epoch()
    }
}

impl Drop for FillLease {
    fn drop(&mut self) {
        if self.ours() {
            self.cache.e.release(self.rec, self.claim);
        }
    }
}
