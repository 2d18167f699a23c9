//! A mapped segment: creation and attach, and bounds-checked atomic access
//! to its words. Every pointer into shared memory is made here.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use memoffset::offset_of;

use crate::error::{Error, Result};
use crate::layout::{
    BUCKET_SIZE, Geometry, HEADER_SIZE, Header, LAYOUT_VERSION, LEASE_SIZE, MAGIC, NCOUNTERS,
    NSTRIPES, STATE_READY, STRIPE_SIZE,
};
use crate::options::OpenOptions;
use crate::registry::Registry;
use crate::shm::{self, Fd, Location, Mapping};
use crate::sys;

/// Which log an item lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogId {
    Small = 0,
    Main = 1,
}

/// Process-local description of one log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LogGeom {
    pub id: LogId,
    /// Offset of the log's first byte in the mapping.
    pub off: u64,
    /// Bytes in the log (a multiple of 64).
    pub len: u64,
    /// Positions run modulo `wrap`, a multiple of `len` below 2^51, so that
    /// a position fits the 48 bits (in 8-byte units) of an index slot.
    pub wrap: u64,
    pub head_off: u64,
    pub tail_off: u64,
}

impl LogGeom {
    fn new(id: LogId, off: u64, len: u64, head_off: u64, tail_off: u64) -> LogGeom {
        let wrap = len * ((1u64 << 50) / len);
        LogGeom {
            id,
            off,
            len,
            wrap,
            head_off,
            tail_off,
        }
    }
    /// `a` reduced modulo `wrap`: positions in shared memory always are,
    /// unless corrupt, so the division is only paid for corrupt words.
    #[inline(always)]
    fn reduce(&self, a: u64) -> u64 {
        if a < self.wrap { a } else { a % self.wrap }
    }
    /// `a - b` modulo `wrap`.
    #[inline]
    pub fn dist(&self, a: u64, b: u64) -> u64 {
        let (a, b) = (self.reduce(a), self.reduce(b));
        if a >= b { a - b } else { a + self.wrap - b }
    }
    /// `a + n` modulo `wrap`.
    #[inline]
    pub fn add(&self, a: u64, n: u64) -> u64 {
        let s = self.reduce(a) + self.reduce(n); // both < 2^50: no overflow
        if s < self.wrap { s } else { s - self.wrap }
    }
    /// Whether `a` comes strictly before `b` (within half the position
    /// space, which every live position is).
    #[inline]
    pub fn before(&self, a: u64, b: u64) -> bool {
        let d = self.dist(b, a);
        d != 0 && d < self.wrap / 2
    }
}

/// Kinds of records in a log (byte 5 of an item's first word).
pub(crate) const REC_ITEM: u64 = 1;
pub(crate) const REC_PAD: u64 = 2;
pub(crate) const REC_MAGIC: u64 = 0xC0DE;

pub(crate) struct Segment {
    map: Mapping,
    pub g: Geometry,
    pub name: String,
    pub small: LogGeom,
    pub main: LogGeom,
    /// Holds the shared attach lock for as long as this handle lives (see
    /// `shm.rs`); also the descriptor liveness questions are asked through.
    attach: Fd,
    loc: Location,
    pub(crate) reg: Registry,
    /// Process-local cache of the keeper's liveness: `checked_ms << 1 |
    /// dead`, refreshed at most every `KEEPER_CHECK_MS`.
    keeper_seen: AtomicU64,
    /// The keeper token that look was about.
    keeper_seen_token: AtomicU64,
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// How long one process trusts its last look at the keeper's liveness.
const KEEPER_CHECK_MS: u64 = 50;

impl Segment {
    /// Creates or attaches the segment `name` (see `shm.rs` for the
    /// protocol).
    pub fn open(name: &str, opts: &OpenOptions) -> Result<Segment> {
        crate::options::validate_name(name)?;
        opts.validate()?;
        let loc = match &opts.path {
            Some(p) => Location::file(p.as_path()),
            None => Location::shm(name),
        };
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        loop {
            let fd = match loc.open(opts.create, opts.mode) {
                Ok(fd) => fd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !opts.create => {
                    return Err(Error::NotFound { name: name.into() });
                }
                Err(e) => return Err(Error::io("open segment", e)),
            };
            shm::check_owner(&fd, name, &loc, opts.mode)?;
            shm::lock_opener(&fd, Duration::from_secs(30))?;
            let r = Self::open_locked(name, &loc, &fd, opts);
            shm::unlock_opener(&fd);
            match r {
                Ok((map, g)) => {
                    let seg = Self::from_parts(map, g, name, fd, loc);
                    // Register now, so that a full registry fails at open.
                    seg.token()?;
                    return Ok(seg);
                }
                // Attach-only found a segment that its creator has not
                // initialised yet: wait a little for it.
                Err(Error::NotFound { .. })
                    if !opts.create && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Under the opener's lock: attach (shared attach lock held on success)
    /// or, when nobody is attached, initialise.
    fn open_locked(
        name: &str,
        loc: &Location,
        fd: &Fd,
        opts: &OpenOptions,
    ) -> Result<(Mapping, Geometry)> {
        let nobody = shm::nobody_attached(fd)?;
        let r = Self::attach_or_init(name, loc, fd, opts, nobody);
        match &r {
            // Converts our exclusive lock (or joins the others' shared one).
            Ok(_) => shm::attach_shared(fd)?,
            Err(_) if nobody => {
                // SAFETY: plain syscall on a descriptor we own.
                unsafe { libc::flock(fd.0, libc::LOCK_UN) };
            }
            Err(_) => {}
        }
        r
    }

    fn attach_or_init(
        name: &str,
        loc: &Location,
        fd: &Fd,
        opts: &OpenOptions,
        nobody: bool,
    ) -> Result<(Mapping, Geometry)> {
        let size = shm::file_size(fd)?;
        let incompatible = |found, detail: String| Error::IncompatibleSegment {
            name: name.into(),
            found,
            expected: LAYOUT_VERSION,
            detail,
        };
        let attached = "; processes have it attached, so it is left alone (never re-initialised)";
        if size > 0 && size < HEADER_SIZE {
            return Err(incompatible(None, format!("it is only {size} bytes long")));
        }
        if size >= HEADER_SIZE {
            let map = shm::map(fd, size)?;
            let word = |off: usize| -> u64 {
                // SAFETY: `off` is a header offset below HEADER_SIZE <= size,
                // 8-aligned; the mapping is page-aligned.
                unsafe { AtomicU64::from_ptr(map.ptr.add(off).cast()) }.load(Ordering::Acquire)
            };
            let magic = word(offset_of!(Header, magic));
            let vs = word(offset_of!(Header, layout_version));
            let (version, state) = (vs as u32, (vs >> 32) as u32);
            let all_zero = (0..HEADER_SIZE as usize / 8).all(|i| word(i * 8) == 0);
            let half_made = magic == MAGIC && version == LAYOUT_VERSION && state != STATE_READY;
            if !(all_zero || half_made) {
                if magic != MAGIC {
                    return Err(incompatible(None, "bad magic number".into()));
                }
                if version != LAYOUT_VERSION {
                    return Err(incompatible(Some(version), "layout versions differ".into()));
                }
                let g = Geometry::read(word, size).map_err(|d| incompatible(Some(version), d))?;
                shm::fill_holes(fd, name, size)?;
                return Ok((map, g));
            }
            if !nobody {
                // Only a creator that died mid-way leaves such a header, and
                // the kernel says processes are attached: it is corrupt.
                return Err(incompatible(
                    Some(version),
                    format!(
                        "the header is {} (corrupt){attached}",
                        if all_zero {
                            "zeroed"
                        } else {
                            "not marked ready"
                        }
                    ),
                ));
            }
            // A creator died while initialising and nobody is attached:
            // initialise it again below.
            if !opts.create {
                return Err(Error::NotFound { name: name.into() });
            }
            drop(map);
        } else if !opts.create {
            return Err(Error::NotFound { name: name.into() });
        } else if !nobody {
            return Err(incompatible(None, format!("it is empty{attached}")));
        }
        let g = Geometry::compute(
            opts.capacity,
            sys::seed_entropy(),
            opts.ttl.map_or(0, |d| d.as_millis().max(1) as u64),
            (opts.ttl_jitter * 1e6).round() as u64,
            opts.max_value_size.map(|v| v as u64),
            opts.expected_entry_size,
        )?;
        let sized = shm::size(fd, g.capacity, opts.mode)
            .and_then(|()| shm::map_new(fd, g.capacity, name))
            .and_then(|map| shm::back(fd, &map, name, g.capacity).map(|()| map));
        let map = match sized {
            Ok(map) => map,
            Err(e) => {
                let _ = loc.unlink();
                return Err(e);
            }
        };
        let store = |off: usize, v: u64| {
            // SAFETY: header offsets are in bounds and 8-aligned.
            unsafe { AtomicU64::from_ptr(map.ptr.add(off).cast()) }.store(v, Ordering::Relaxed)
        };
        // New memory reads as zeros, but a half-made segment may hold old
        // bytes: zero the header and the control areas (not the logs: their
        // contents are validated on every read).
        for off in (0..g.small_off as usize).step_by(8) {
            store(off, 0);
        }
        g.write(store, sys::now_ms());
        store(offset_of!(Header, magic), MAGIC);
        let vs = u64::from(LAYOUT_VERSION) | (u64::from(STATE_READY) << 32);
        // Release: everything above is visible before anyone sees READY.
        // SAFETY: as above.
        unsafe { AtomicU64::from_ptr(map.ptr.add(offset_of!(Header, layout_version)).cast()) }
            .store(vs, Ordering::Release);
        Ok((map, g))
    }

    fn from_parts(map: Mapping, g: Geometry, name: &str, attach: Fd, loc: Location) -> Segment {
        let small = LogGeom::new(
            LogId::Small,
            g.small_off,
            g.small_len,
            offset_of!(Header, small_head) as u64,
            offset_of!(Header, small_tail) as u64,
        );
        let main = LogGeom::new(
            LogId::Main,
            g.main_off,
            g.main_len,
            offset_of!(Header, main_head) as u64,
            offset_of!(Header, main_tail) as u64,
        );
        Segment {
            map,
            g,
            name: name.into(),
            small,
            main,
            attach,
            loc,
            reg: Registry::new(),
            keeper_seen: AtomicU64::new(0),
            keeper_seen_token: AtomicU64::new(0),
        }
    }

    pub fn attach_fd(&self) -> libc::c_int {
        self.attach.0
    }

    /// Whether the segment's file has no name left (unlinked; its name may
    /// now be another segment's).
    pub fn is_unlinked(&self) -> Result<bool> {
        Ok(shm::fstat(&self.attach)?.st_nlink == 0)
    }

    /// A new description of the segment's file (for the registry).
    pub fn reopen(&self) -> Result<Fd> {
        shm::reopen(&self.attach, &self.loc)
    }

    /// The TTL cap (ms, 0: none) every write obeys now: the one an agent
    /// set, and the keeper's while the recorded keeper is dead.
    pub fn ttl_cap_ms(&self) -> u64 {
        let h = |off: usize| self.word(off as u64);
        let cap = h(offset_of!(Header, ttl_cap)).load(Ordering::Acquire);
        let keeper = h(offset_of!(Header, keeper)).load(Ordering::Acquire);
        if keeper == 0 {
            return cap;
        }
        let now = sys::now_ms();
        let seen = self.keeper_seen.load(Ordering::Relaxed);
        let fresh = now.saturating_sub(seen >> 1) < KEEPER_CHECK_MS
            && self.keeper_seen_token.load(Ordering::Relaxed) == keeper;
        let dead = if fresh {
            seen & 1 == 1
        } else {
            let dead = !self.alive(keeper & crate::registry::TOKEN_MASK);
            self.keeper_seen_token.store(keeper, Ordering::Relaxed);
            self.keeper_seen
                .store((now << 1) | u64::from(dead), Ordering::Relaxed);
            dead
        };
        if !dead {
            return cap;
        }
        let kcap = h(offset_of!(Header, keeper) + 8)
            .load(Ordering::Acquire)
            .max(1);
        if cap == 0 { kcap } else { cap.min(kcap) }
    }

    /// The word at a header field's offset.
    pub fn header_word(&self, off: usize) -> &AtomicU64 {
        self.word(off as u64)
    }

    /// The atomic word at byte offset `off` of the mapping.
    ///
    /// Every caller derives `off` from the process-local geometry (checked
    /// at attach) plus values reduced modulo a log length, never from an
    /// unchecked value read from shared memory.
    #[inline(always)]
    pub fn word(&self, off: u64) -> &AtomicU64 {
        assert!(
            off % 8 == 0 && off + 8 <= self.map.len as u64,
            "segment offset out of bounds"
        );
        // SAFETY: in bounds and 8-aligned (checked above; the mapping is
        // page-aligned); the mapping lives as long as `self`; all accesses to
        // shared memory are atomic, so concurrent access is not a data race.
        unsafe { AtomicU64::from_ptr(self.map.ptr.add(off as usize).cast()) }
    }

    /// The `n` atomic words starting at byte offset `off` (one bounds check
    /// for a whole copy loop).
    #[inline(always)]
    pub fn words(&self, off: u64, n: usize) -> &[AtomicU64] {
        assert!(
            off % 8 == 0
                && off
                    .checked_add(8 * n as u64)
                    .is_some_and(|e| e <= self.map.len as u64),
            "segment range out of bounds"
        );
        // SAFETY: the range is in bounds and 8-aligned (checked above); it
        // lives as long as `self`; `AtomicU64` has the size and alignment of
        // `u64` and permits shared mutation, so a shared slice of them over
        // memory other processes write is sound.
        unsafe { std::slice::from_raw_parts(self.map.ptr.add(off as usize).cast::<AtomicU64>(), n) }
    }

    /// The atomic 32-bit word at byte offset `off`.
    #[inline(always)]
    pub fn word32(&self, off: u64) -> &AtomicU32 {
        assert!(
            off % 4 == 0 && off + 4 <= self.map.len as u64,
            "segment offset out of bounds"
        );
        // SAFETY: as in `word`.
        unsafe { AtomicU32::from_ptr(self.map.ptr.add(off as usize).cast()) }
    }

    #[inline]
    pub fn log(&self, id: LogId) -> &LogGeom {
        match id {
            LogId::Small => &self.small,
            LogId::Main => &self.main,
        }
    }

    #[inline]
    pub fn clear_epoch(&self) -> &AtomicU64 {
        self.word(offset_of!(Header, clear_epoch) as u64)
    }

    #[inline]
    pub fn tag_clock(&self) -> &AtomicU64 {
        self.word(offset_of!(Header, tag_clock) as u64)
    }

    #[inline]
    pub fn head(&self, log: &LogGeom) -> &AtomicU64 {
        self.word(log.head_off)
    }

    #[inline]
    pub fn tail(&self, log: &LogGeom) -> &AtomicU64 {
        self.word(log.tail_off)
    }

    /// The bucket of a key's `hash`: multiply-shift over hash bits 0..53
    /// (any bucket count; the tag uses bits 53..64, so tags stay
    /// independent of the bucket).
    #[inline(always)]
    pub fn bucket_of(&self, hash: u64) -> u64 {
        (((hash & ((1 << 53) - 1)) as u128 * self.g.nbuckets as u128) >> 53) as u64
    }

    /// Word `i` (0 = lock, 1..=15 = slots) of the bucket of `hash`.
    #[inline(always)]
    pub fn bucket_word(&self, hash: u64, i: usize) -> &AtomicU64 {
        self.bucket_word_at(self.bucket_of(hash), i)
    }

    /// Asks the CPU to start loading the bucket of `hash` (both lines), so a
    /// batch of lookups overlaps its memory misses.
    #[inline(always)]
    pub fn prefetch_bucket(&self, hash: u64) {
        self.prefetch_lines(self.g.index_off + self.bucket_of(hash) * BUCKET_SIZE, 2);
    }

    /// Asks the CPU to start loading `lines` cache lines from mapping offset
    /// `off` (nothing outside the mapping).
    #[inline(always)]
    pub fn prefetch_lines(&self, off: u64, lines: u64) {
        #[cfg(target_arch = "x86_64")]
        if off
            .checked_add(64 * lines)
            .is_some_and(|end| end <= self.map.len as u64)
        {
            for i in 0..lines as usize {
                // SAFETY: the lines lie inside the mapping (checked above);
                // a prefetch reads nothing architecturally and cannot fault.
                unsafe {
                    let p = self.map.ptr.add(off as usize + 64 * i).cast::<i8>();
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p);
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (off, lines);
    }

    /// Word `i` of bucket number `b` (for scans).
    #[inline(always)]
    pub fn bucket_word_at(&self, b: u64, i: usize) -> &AtomicU64 {
        debug_assert!(i <= crate::layout::SLOTS_PER_BUCKET);
        let n = self.g.nbuckets;
        // `bucket_of` is always below `n`: no division on the hot path.
        let b = if b < n { b } else { b % n };
        self.word(self.g.index_off + b * BUCKET_SIZE + i as u64 * 8)
    }

    /// All words of the bucket of `hash` (word 0 the lock, then the slots):
    /// one bounds check for a whole lookup.
    #[inline(always)]
    pub fn bucket(&self, hash: u64) -> &[AtomicU64] {
        self.words(
            self.g.index_off + self.bucket_of(hash) * BUCKET_SIZE,
            crate::layout::SLOTS_PER_BUCKET + 1,
        )
    }

    /// Byte offset of lease record `i`.
    #[inline]
    pub fn lease_off(&self, i: u64) -> u64 {
        self.g.leases_off + (i & (self.g.nleases - 1)) * LEASE_SIZE
    }

    #[inline]
    pub fn counter(&self, stripe: u32, c: usize) -> &AtomicU64 {
        debug_assert!(c < NCOUNTERS);
        self.word(self.g.stats_off + u64::from(stripe) % NSTRIPES * STRIPE_SIZE + c as u64 * 8)
    }

    /// Byte offset in the mapping of log position `pos` if a record of
    /// `len` bytes starting there lies within the log.
    #[inline]
    pub fn log_off(&self, log: &LogGeom, pos: u64, len: u64) -> Option<u64> {
        let phys = pos % log.len;
        (phys % 8 == 0 && len <= log.len - phys).then_some(log.off + phys)
    }
}
