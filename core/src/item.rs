//! Items in a log: encoding, checksums, and validated reads.
//!
//! ```text
//! w0  magic 0xC0DE (16) | record kind (8) | ntags (8) | size in 8-byte units (32)
//! w1  value_len (32) | key_len (16) | flags (16)
//! w2  clear epoch at write time
//! w3  expiry, ms since the epoch (44 bits; 0 = never) | grace (20 bits)
//! w4  checksum (see `checksum`)
//! ... ntags x (tag hash, tag stamp: `tags.rs`), key padded to 8, value padded to 8,
//!     then (ntags > 0 only) the tag names padded to 8: per tag a u16 LE
//!     length and the bytes
//! ```
//!
//! The names serve only `dump` (a dump carries tags by name, since tag
//! hashes are seeded per segment); reads and tag checks use the hashes.
//! They are outside the checksum: whoever reads them keeps only names whose
//! tag hash matches the (checksummed) hash of the same position.
//!
//! The grace is the time past the expiry during which the entry is kept
//! and served stale (`get_or_set`'s stale-while-revalidate), as a float
//! of 20 bits: a 15-bit mantissa in ms shifted by a 5-bit exponent
//! (`grace_code`): exact below 32.768 s and for a minute or an hour,
//! otherwise rounded down by less than 1/16384 of itself (a day by 3 s),
//! so an entry is never served stale longer than asked. It had a word of
//! its own until layout 9, which folded it into the expiry's to bring the
//! header to 40 bytes.
//!
//! The key's hash is not stored (layout 6; it was w2 before): the checksum
//! is seeded with it instead, so a reader that looked the key up by its
//! hash checks the key without hashing its bytes again, and a reader that
//! does not know the key (the tail pass, scans) hashes the key it copied.
//!
//! An item is written once, completely, before any index slot points to it,
//! and never modified afterwards: it only dies (overwritten when its log
//! laps it, or abandoned). A reader copies it with atomic loads, then checks
//! that the log has not lapped it and that the checksum, which covers every
//! byte and the item's own log position, matches. A torn, overwritten, or
//! misplaced item (a stalled writer finishing late) therefore never passes.

use std::mem::MaybeUninit;
use std::sync::atomic::{Ordering, fence};

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::layout::{ITEM_HEADER, pad8};
use crate::options::{MAX_TAG_LEN, MAX_TAGS};
use crate::segment::{LogGeom, REC_ITEM, REC_MAGIC, Segment};
use crate::sink::{self, Sink};

pub(crate) const HDR_WORDS: usize = 5;
const _: () = assert!(HDR_WORDS as u64 * 8 == ITEM_HEADER);
pub(crate) const FLAG_NEGATIVE: u64 = 1;

/// Bits of w3 that hold the expiry (ms since the Unix epoch: until the
/// year 2527); the grace code takes the other 20.
const EXPIRY_BITS: u32 = 44;
const EXPIRY_MASK: u64 = (1 << EXPIRY_BITS) - 1;
const GRACE_MANTISSA_BITS: u32 = 15;
const GRACE_MANTISSA: u64 = (1 << GRACE_MANTISSA_BITS) - 1;

/// The 20-bit code of a grace of `ms` milliseconds: `mantissa |
/// exponent << 15` standing for `mantissa << exponent`, the largest such
/// value not above `ms` (up to 32,767 << 31 ms, about 2,200 years).
pub(crate) fn grace_code(ms: u64) -> u64 {
    let bits = 64 - ms.leading_zeros();
    let exp = bits.saturating_sub(GRACE_MANTISSA_BITS).min(31);
    let mantissa = (ms >> exp).min(GRACE_MANTISSA);
    (u64::from(exp) << GRACE_MANTISSA_BITS) | mantissa
}

/// The grace in ms that `code` (from `grace_code`) stands for.
pub(crate) fn grace_ms(code: u64) -> u64 {
    (code & GRACE_MANTISSA) << ((code >> GRACE_MANTISSA_BITS) & 31)
}

/// Word w3 of an item expiring at `expire_ms` (0 = never) whose grace ends
/// at `stale_until_ms` (no grace when not past the expiry; none at all for
/// an entry that never expires).
fn expiry_word(expire_ms: u64, stale_until_ms: u64) -> u64 {
    let exp = expire_ms.min(EXPIRY_MASK);
    if exp == 0 {
        return 0;
    }
    (grace_code(stale_until_ms.saturating_sub(exp)) << EXPIRY_BITS) | exp
}

/// What a reader learns from an item's header, and the hash of its key
/// (not stored: given by a reader that knows the key, else computed from
/// the key's bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    pub words: [u64; HDR_WORDS],
    pub tags: [(u64, u64); MAX_TAGS],
    pub key_hash: u64,
}

impl Meta {
    /// A header to read into (`read_value`, `read_entry`, `validate`).
    pub const fn empty() -> Meta {
        Meta {
            words: [0; HDR_WORDS],
            tags: [(0, 0); MAX_TAGS],
            key_hash: 0,
        }
    }

    pub fn ntags(&self) -> usize {
        ((self.words[0] >> 32) & 0xff) as usize
    }
    pub fn units(&self) -> u64 {
        self.words[0] & 0xffff_ffff
    }
    pub fn value_len(&self) -> usize {
        (self.words[1] & 0xffff_ffff) as usize
    }
    pub fn key_len(&self) -> usize {
        ((self.words[1] >> 32) & 0xffff) as usize
    }
    pub fn flags(&self) -> u64 {
        self.words[1] >> 48
    }
    pub fn hash(&self) -> u64 {
        self.key_hash
    }
    pub fn epoch(&self) -> u64 {
        self.words[2]
    }
    pub fn expire_ms(&self) -> u64 {
        self.words[3] & EXPIRY_MASK
    }
    /// End of the grace period: the expiry itself without a grace, 0 for
    /// an entry that never expires.
    pub fn stale_until_ms(&self) -> u64 {
        match self.expire_ms() {
            0 => 0,
            exp => exp + grace_ms(self.words[3] >> EXPIRY_BITS),
        }
    }
    pub fn size(&self) -> u64 {
        self.units() * 8
    }
}

/// Size in bytes of an item with these parts, without its tag names.
pub(crate) fn item_size(key_len: usize, value_len: usize, ntags: usize) -> u64 {
    ITEM_HEADER + ntags as u64 * 16 + pad8(key_len as u64) + pad8(value_len as u64)
}

/// Largest tag-names block: every tag at its longest.
pub(crate) const MAX_NAMES: u64 = (MAX_TAGS * (2 + MAX_TAG_LEN)) as u64 + 7;

/// The tag-names block of an item (see the module comment).
pub(crate) fn encode_names(tags: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tags.iter().map(|t| 2 + t.len()).sum());
    for t in tags {
        out.extend_from_slice(&(t.len() as u16).to_le_bytes());
        out.extend_from_slice(t);
    }
    out
}

/// The names of a tag-names block, at most `n` of them; a malformed rest is
/// dropped (callers check each name against its tag hash).
pub(crate) fn decode_names(block: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    let mut rest = block;
    while out.len() < n {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_le_bytes(*len));
        if len == 0 || len > tail.len() {
            break;
        }
        out.push(&tail[..len]);
        rest = &tail[len..];
    }
    out
}

/// The checksum of an item at log position `pos` whose key hashes to
/// `key_hash` (see `partial_checksum`).
pub(crate) fn checksum(
    seed: u64,
    pos: u64,
    hdr: &[u64],
    tags: &[(u64, u64)],
    key_hash: u64,
    value: &[u8],
) -> u64 {
    let mut m = Meta {
        words: [0; HDR_WORDS],
        tags: [(0, 0); MAX_TAGS],
        key_hash,
    };
    m.words[..HDR_WORDS - 1].copy_from_slice(&hdr[..HDR_WORDS - 1]);
    m.tags[..tags.len()].copy_from_slice(tags);
    debug_assert_eq!(m.ntags(), tags.len());
    xxh3_64_with_seed(value, partial_checksum(seed, pos, &m))
}

/// A fully encoded item, ready to be stored at a position.
pub(crate) struct Encoded {
    pub hdr: [u64; HDR_WORDS],
    pub tags: [(u64, u64); MAX_TAGS],
    pub ntags: usize,
    /// The key's hash: seeds the checksum, not stored.
    pub key_hash: u64,
}

impl Encoded {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: &[u8],
        value_len: usize,
        flags: u64,
        hash: u64,
        epoch: u64,
        expire_ms: u64,
        stale_until_ms: u64,
        tags: &[(u64, u64)],
        names_len: usize,
    ) -> Encoded {
        let names = if tags.is_empty() {
            0
        } else {
            pad8(names_len as u64)
        };
        let size = item_size(key.len(), value_len, tags.len()) + names;
        let mut t = [(0, 0); MAX_TAGS];
        t[..tags.len()].copy_from_slice(tags);
        Encoded {
            hdr: [
                (REC_MAGIC << 48) | (REC_ITEM << 40) | ((tags.len() as u64) << 32) | (size / 8),
                value_len as u64 | ((key.len() as u64) << 32) | (flags << 48),
                epoch,
                expiry_word(expire_ms, stale_until_ms),
                0,
            ],
            tags: t,
            ntags: tags.len(),
            key_hash: hash,
        }
    }

    pub fn size(&self) -> u64 {
        (self.hdr[0] & 0xffff_ffff) * 8
    }
}

/// Stores `bytes` at mapping offset `off` as whole words (the last one
/// zero-padded).
fn store_bytes(seg: &Segment, off: u64, bytes: &[u8]) {
    let dst = seg.words(off, bytes.len().div_ceil(8));
    let mut chunks = bytes.chunks_exact(8);
    for (d, c) in dst.iter().zip(&mut chunks) {
        d.store(
            u64::from_ne_bytes(c.try_into().expect("8 bytes")),
            Ordering::Relaxed,
        );
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        dst[dst.len() - 1].store(u64::from_ne_bytes(last), Ordering::Relaxed);
    }
}

/// Writes an item at `pos` of `log`. The space was allocated by this caller
/// and the tail has passed the bytes it overwrites, so no reader validates
/// them any more and no one else writes there (a writer that stalled for a
/// whole lap may: the checksum catches that).
pub(crate) fn write(
    seg: &Segment,
    log: &LogGeom,
    pos: u64,
    enc: &mut Encoded,
    key: &[u8],
    value: &[u8],
    names: &[u8],
) {
    let Some(off) = seg.log_off(log, pos, enc.size()) else {
        return; // cannot happen: allocation never straddles the log's end
    };
    debug_assert_eq!(enc.key_hash, xxh3_64_with_seed(key, seg.g.hash_seed));
    enc.hdr[HDR_WORDS - 1] = checksum(
        seg.g.hash_seed,
        pos,
        &enc.hdr,
        &enc.tags[..enc.ntags],
        enc.key_hash,
        value,
    );
    // Order our observation of the tail (which made the space ours) before
    // these stores, so a reader who sees any of them also sees a tail past
    // the old item (seqlock-style, see `readable`).
    fence(Ordering::Release);
    let hdr = seg.words(off, HDR_WORDS + 2 * enc.ntags);
    for (d, w) in hdr.iter().zip(&enc.hdr[..HDR_WORDS - 1]) {
        d.store(*w, Ordering::Relaxed);
    }
    // (the checksum, word HDR_WORDS - 1, is stored last)
    for (i, (h, v)) in enc.tags[..enc.ntags].iter().enumerate() {
        hdr[HDR_WORDS + 2 * i].store(*h, Ordering::Relaxed);
        hdr[HDR_WORDS + 2 * i + 1].store(*v, Ordering::Relaxed);
    }
    let o = off + ITEM_HEADER + 16 * enc.ntags as u64;
    store_bytes(seg, o, key);
    store_bytes(seg, o + pad8(key.len() as u64), value);
    if enc.ntags > 0 && !names.is_empty() {
        store_bytes(
            seg,
            o + pad8(key.len() as u64) + pad8(value.len() as u64),
            names,
        );
    }
    seg.word(off + 8 * (HDR_WORDS as u64 - 1))
        .store(enc.hdr[HDR_WORDS - 1], Ordering::Release);
}

/// Outcome of reading the item a slot points to.
pub(crate) enum Read {
    /// Not a valid item (lapped, torn, garbage, bad checksum): the slot is
    /// dead for good.
    Invalid,
    /// A valid item of another key (a tag collision).
    OtherKey,
    /// A valid item of the key asked for (`read_value`; of any key for
    /// `read_entry` and `validate`): its header is in the caller's `Meta`
    /// and the value (if asked) in the caller's buffer.
    Valid,
}

/// Loads the header and tags of the record at `pos` into `m`
/// (bounds-checked, no checksum; `m.key_hash` is left to the caller, which
/// sets it before `m` leaves this module). Returns the offset of the key.
///
/// The header is read into the caller's `Meta` rather than returned: a
/// `Meta` is 176 bytes (184 up to layout 8), and each move of one on the get path was a
/// `memcpy` call (three per hit, ~90 instructions).
#[inline(always)]
fn load_meta(seg: &Segment, log: &LogGeom, pos: u64, m: &mut Meta) -> Option<u64> {
    let off = seg.log_off(log, pos, ITEM_HEADER)?;
    let src = seg.words(off, HDR_WORDS);
    for (w, s) in m.words.iter_mut().zip(src) {
        *w = s.load(Ordering::Relaxed);
    }
    let w0 = m.words[0];
    if w0 >> 48 != REC_MAGIC || (w0 >> 40) & 0xff != REC_ITEM || m.ntags() > MAX_TAGS {
        return None;
    }
    let base = item_size(m.key_len(), m.value_len(), m.ntags());
    let size = m.size();
    let names_ok = if m.ntags() == 0 {
        size == base
    } else {
        size >= base && size - base <= MAX_NAMES
    };
    if !names_ok || seg.log_off(log, pos, size).is_none() {
        return None;
    }
    let n = m.ntags();
    if n > 0 {
        let t = seg.words(off + ITEM_HEADER, 2 * n);
        for (i, slot) in m.tags[..n].iter_mut().enumerate() {
            *slot = (
                t[2 * i].load(Ordering::Relaxed),
                t[2 * i + 1].load(Ordering::Relaxed),
            );
        }
    }
    Some(off + ITEM_HEADER + 16 * n as u64)
}

/// Copies `len` bytes at mapping offset `off` into `out` (replacing its
/// contents) with atomic word loads.
pub(crate) fn copy_out(seg: &Segment, off: u64, len: usize, out: &mut Vec<u8>) {
    let src = seg.words(off, len.div_ceil(8));
    if out.capacity() < src.len() * 8 {
        renew(out, src.len() * 8);
    } else {
        out.clear();
    }
    let dst = out.as_mut_ptr();
    for (i, w) in src.iter().enumerate() {
        // SAFETY: `out` has capacity for `src.len() * 8` bytes (made or
        // checked above); the write is unaligned-safe.
        unsafe {
            dst.add(i * 8)
                .cast::<u64>()
                .write_unaligned(w.load(Ordering::Relaxed))
        };
    }
    // SAFETY: the first `len <= src.len() * 8` bytes were initialised above.
    unsafe { out.set_len(len) };
}

/// Replaces `out` with an empty `Vec` of `cap` bytes' capacity: a new
/// allocation, not `reserve` (nothing of the old contents is kept, so
/// nothing is moved, and an empty `Vec`, as `get_many` hands each read,
/// skips the growth policy). Out of line: the read it serves stays small.
#[inline(never)]
fn renew(out: &mut Vec<u8>, cap: usize) {
    *out = Vec::with_capacity(cap);
}

/// Copies `len` bytes at mapping offset `off` into the first `len` bytes
/// of `room` (at least `len` long; nothing past them is written) with
/// atomic word loads, and returns them: whole words, then the last word's
/// remaining bytes one by one.
#[inline(always)]
pub(crate) fn copy_into<'r>(
    seg: &Segment,
    off: u64,
    len: usize,
    room: &'r mut [MaybeUninit<u8>],
) -> &'r [u8] {
    assert!(room.len() >= len, "a sink gave less room than asked");
    let src = seg.words(off, len.div_ceil(8));
    let dst = room.as_mut_ptr().cast::<u8>();
    let whole = len / 8;
    for (i, w) in src[..whole].iter().enumerate() {
        // SAFETY: word `i < whole = len / 8` ends at `8 * (i + 1) <= len <=
        // room.len()` bytes into `room`; the write is unaligned-safe.
        unsafe {
            dst.add(i * 8)
                .cast::<u64>()
                .write_unaligned(w.load(Ordering::Relaxed))
        };
    }
    if whole < src.len() {
        let last = src[whole].load(Ordering::Relaxed).to_ne_bytes();
        for (i, b) in last[..len - whole * 8].iter().enumerate() {
            room[whole * 8 + i].write(*b);
        }
    }
    // SAFETY: the first `len` bytes of `room` were all written above
    // (whole words, then the rest of the last word).
    unsafe { std::slice::from_raw_parts(dst, len) }
}

/// Compares `key` with the key bytes stored at `off` (zero-padded words).
fn key_equals(seg: &Segment, off: u64, key: &[u8]) -> bool {
    let src = seg.words(off, key.len().div_ceil(8));
    let mut chunks = key.chunks_exact(8);
    for (w, c) in src.iter().zip(&mut chunks) {
        if w.load(Ordering::Relaxed) != u64::from_ne_bytes(c.try_into().expect("8")) {
            return false;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        if src[src.len() - 1].load(Ordering::Relaxed) != u64::from_ne_bytes(last) {
            return false;
        }
    }
    true
}

/// Whether the item at `pos` may still be read: the log's tail has not
/// passed it, so no writer has been allowed to overwrite it. (A junk slot
/// pointing ahead of the head reads bytes of an older lap, whose checksum,
/// seeded with their own position, does not match.)
///
/// Writers write only after the tail has passed the bytes they overwrite
/// (`log.rs`), and publish their tail observation before their stores with a
/// release fence (`write`); a reader that saw any overwritten byte therefore
/// sees the advanced tail here after its acquire fence (seqlock argument).
#[inline]
pub(crate) fn readable(seg: &Segment, log: &LogGeom, pos: u64) -> bool {
    let tail = seg.tail(log).load(Ordering::Acquire);
    !log.before(pos, tail)
}

/// How `read_value` and `read_entry` validate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// A reader: the tail must not have passed the item, before and after
    /// the copy, and the checksum must match.
    Reader,
    /// The tail pass copying an item it has just claimed (the tail is past
    /// it by construction): the checksum alone must match; a writer that
    /// overwrote part of it meanwhile makes it fail.
    Evictor,
}

/// The checks before a read copies anything: for a reader, the tail must
/// not have passed the item; then its header (bounds-checked), into `m`.
/// Returns the offset of the key.
#[inline(always)]
fn open(seg: &Segment, log: &LogGeom, pos: u64, reader: bool, m: &mut Meta) -> Option<u64> {
    if reader && !readable(seg, log, pos) {
        return None;
    }
    load_meta(seg, log, pos, m)
}

/// Copies `len` value bytes at `off` into `value` (into a scratch buffer
/// when `None` or when it has no room) and hashes the copy, seeded with
/// `chain()` (the checksum chain so far, computed after the copy).
#[inline(always)]
fn copy_and_sum<S: Sink + ?Sized>(
    seg: &Segment,
    off: u64,
    len: usize,
    value: Option<&mut S>,
    chain: impl FnOnce() -> u64,
) -> u64 {
    match value.and_then(|v| v.copy(seg, off, len)) {
        Some(v) => xxh3_64_with_seed(v, chain()),
        None => with_scratch(|s| {
            copy_out(seg, off, len, s);
            xxh3_64_with_seed(s, chain())
        }),
    }
}

/// The checks after the copies: `Valid` only if the log has not lapped the
/// item meanwhile (a reader) and `sum`, the checksum of the copies,
/// matches the stored one.
#[inline(always)]
fn validated(seg: &Segment, log: &LogGeom, pos: u64, reader: bool, sum: u64, meta: &Meta) -> Read {
    // Seqlock-style validation: the copies before this fence happen before
    // it; if any of them saw a byte of a newer writer, the tail that writer
    // waited for is visible to the load below.
    fence(Ordering::Acquire);
    if reader && !readable(seg, log, pos) {
        return Read::Invalid;
    }
    if sum != meta.words[HDR_WORDS - 1] {
        return Read::Invalid;
    }
    Read::Valid
}

/// Reads and validates `key`'s item at `pos` of `log` (the get path, and
/// any caller that knows the key; `key_hash` is its hash, `Engine::hash`):
/// `OtherKey` when the item holds another key; the header is read into
/// `meta` (meaningful only when `Valid`) and the value copied into `value`
/// (`None`: only validated), which is told `filled` when `Valid`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_value<S: Sink + ?Sized>(
    seg: &Segment,
    log: &LogGeom,
    pos: u64,
    key: &[u8],
    key_hash: u64,
    mut value: Option<&mut S>,
    meta: &mut Meta,
    check: Check,
) -> Read {
    debug_assert_eq!(key_hash, xxh3_64_with_seed(key, seg.g.hash_seed));
    let reader = check == Check::Reader;
    let Some(key_off) = open(seg, log, pos, reader, meta) else {
        return Read::Invalid;
    };
    meta.key_hash = key_hash;
    let val_off = key_off + pad8(meta.key_len() as u64);
    if key.len() != meta.key_len() || !key_equals(seg, key_off, key) {
        // A different key, or bytes being overwritten: callers treat
        // both as "not this key".
        return if !reader || readable(seg, log, pos) {
            Read::OtherKey
        } else {
            Read::Invalid
        };
    }
    let seed = seg.g.hash_seed;
    // The checksum chain runs over the copies, never over shared memory.
    let sum = copy_and_sum(seg, val_off, meta.value_len(), value.as_deref_mut(), || {
        partial_checksum(seed, pos, meta)
    });
    let r = validated(seg, log, pos, reader, sum, meta);
    if let (Read::Valid, Some(v)) = (&r, value) {
        v.filled(meta.value_len());
    }
    r
}

/// Reads and validates the item at `pos` of `log`, whatever its key, into
/// `key` and `value` (`None`: only validated), its header into `meta`: for
/// scans and the tail pass, which do not know the key.
#[inline(always)]
pub(crate) fn read_entry(
    seg: &Segment,
    log: &LogGeom,
    pos: u64,
    key: &mut Vec<u8>,
    mut value: Option<&mut Vec<u8>>,
    meta: &mut Meta,
    check: Check,
) -> Read {
    let reader = check == Check::Reader;
    let Some(key_off) = open(seg, log, pos, reader, meta) else {
        return Read::Invalid;
    };
    let val_off = key_off + pad8(meta.key_len() as u64);
    let seed = seg.g.hash_seed;
    // The checksum chain runs over the copies, never over shared memory.
    copy_out(seg, key_off, meta.key_len(), key);
    meta.key_hash = xxh3_64_with_seed(key, seed);
    let kh = partial_checksum(seed, pos, meta);
    let sum = copy_and_sum(seg, val_off, meta.value_len(), value.as_deref_mut(), || kh);
    let r = validated(seg, log, pos, reader, sum, meta);
    if let (Read::Valid, Some(v)) = (&r, value) {
        v.filled(meta.value_len());
    }
    r
}

/// Validates the item at `pos` of `log` as a reader, whatever its key,
/// copying nothing out (key and value go through a scratch buffer), its
/// header into `meta`: for a decision that needs only the checked header.
#[inline(always)]
pub(crate) fn validate(seg: &Segment, log: &LogGeom, pos: u64, meta: &mut Meta) -> Read {
    let Some(key_off) = open(seg, log, pos, true, meta) else {
        return Read::Invalid;
    };
    let val_off = key_off + pad8(meta.key_len() as u64);
    let seed = seg.g.hash_seed;
    // The checksum chain runs over the copies, never over shared memory.
    meta.key_hash = with_scratch(|s| {
        copy_out(seg, key_off, meta.key_len(), s);
        xxh3_64_with_seed(s, seed)
    });
    let kh = partial_checksum(seed, pos, meta);
    let sum = copy_and_sum(seg, val_off, meta.value_len(), sink::none(), || kh);
    validated(seg, log, pos, true, sum, meta)
}

/// Copies the tag-names block of the item at `pos` into `out` (empty for
/// an item without tags). `meta` comes from a read of the same item just
/// before. For a reader, `false` when the log lapped the item meanwhile
/// (the bytes may be another item's). The names are not checksummed: see
/// the module comment.
pub(crate) fn read_names(
    seg: &Segment,
    log: &LogGeom,
    pos: u64,
    meta: &Meta,
    check: Check,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    let base = item_size(meta.key_len(), meta.value_len(), meta.ntags());
    let len = meta.size().saturating_sub(base);
    if meta.ntags() == 0 || len == 0 {
        return true;
    }
    let Some(off) = seg.log_off(log, pos, meta.size()) else {
        return false;
    };
    copy_out(seg, off + base, len as usize, out);
    fence(Ordering::Acquire);
    check != Check::Reader || readable(seg, log, pos)
}

thread_local! {
    /// Reused buffer for bytes a caller does not want back.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|c| match c.try_borrow_mut() {
        Ok(mut v) => f(&mut v),
        Err(_) => f(&mut Vec::new()),
    })
}

/// The 128-bit product of `a` and `b`, folded to 64 bits (wyhash's and
/// xxh3's mixing step).
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    p as u64 ^ (p >> 64) as u64
}

/// Odd 64-bit constants (wyhash's secrets) that keep a zero word from
/// zeroing a product.
const MIX: [u64; 4] = [
    0xa076_1d64_78bd_642f,
    0xe703_7ed1_a0b4_28db,
    0x8ebc_6af0_9c88_c6e3,
    0x5899_65cc_7537_4cc3,
];

/// The checksum chain over header words w0..w3 and tags, seeded with the
/// segment's seed, the item's position and its key's hash (which binds
/// the key: a reader compares the key's bytes, or hashes the copy it
/// made); the value is hashed last (xxh3), seeded with this.
///
/// The four header words are mixed with three folded multiplies (layout
/// 7, then five words; xxh3 over their 40 bytes was ~85 instructions of a
/// ~780-instruction get, this is ~20): each word enters a product with a
/// seeded partner, so a torn or stale word changes the chain unless a
/// 64-bit product collides.
fn partial_checksum(seed: u64, pos: u64, meta: &Meta) -> u64 {
    let s = seed ^ pos ^ meta.key_hash.rotate_left(23);
    let w = &meta.words;
    let a = fold_mul(w[0] ^ MIX[0], w[1] ^ s ^ MIX[1]);
    let b = fold_mul(w[2] ^ MIX[2] ^ s, w[3] ^ MIX[3]);
    let mut h = fold_mul(a ^ MIX[1], b ^ MIX[0]) ^ s;
    let tags = &meta.tags[..meta.ntags()];
    if !tags.is_empty() {
        // SAFETY: `(u64, u64)` pairs are plain integers; viewing the local
        // slice as bytes reads exactly its memory.
        let t = unsafe {
            std::slice::from_raw_parts(tags.as_ptr().cast::<u8>(), std::mem::size_of_val(tags))
        };
        h = xxh3_64_with_seed(t, h);
    }
    h
}

/// The header of the item at `pos` if it is readable and holds `key`
/// (whose hash is `key_hash`), without copying or checksumming the value: a
/// hint for a writer's unlocked pre-scan, which the locked publish
/// validates again.
pub(crate) fn hint(
    seg: &Segment,
    log: &LogGeom,
    pos: u64,
    key: &[u8],
    key_hash: u64,
) -> Option<Meta> {
    if !readable(seg, log, pos) {
        return None;
    }
    let mut meta = Meta::empty();
    let key_off = load_meta(seg, log, pos, &mut meta)?;
    meta.key_hash = key_hash;
    (meta.key_len() == key.len() && key_equals(seg, key_off, key)).then_some(meta)
}

/// Whether the record at `pos` holds `key` (header and key bytes only, no
/// tail check, no checksum). Under the bucket lock this identifies a key's
/// slot even while its item is being moved by a tail pass.
pub(crate) fn holds_key(seg: &Segment, log: &LogGeom, pos: u64, key: &[u8]) -> bool {
    let mut meta = Meta::empty();
    load_meta(seg, log, pos, &mut meta)
        .is_some_and(|key_off| meta.key_len() == key.len() && key_equals(seg, key_off, key))
}

/// Reads only the header of the item at `pos`, and hashes its key's bytes
/// (for eviction decisions); not checksummed, so callers use it as a hint
/// only.
pub(crate) fn peek(seg: &Segment, log: &LogGeom, pos: u64) -> Option<Meta> {
    let mut m = Meta::empty();
    let key_off = load_meta(seg, log, pos, &mut m)?;
    m.key_hash = with_scratch(|s| {
        copy_out(seg, key_off, m.key_len(), s);
        xxh3_64_with_seed(s, seg.g.hash_seed)
    });
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grace code never stands for more than the grace asked, loses
    /// less than 1/16384 of it, and is exact where people's graces are
    /// round: anything under 32.768 s, a minute, an hour.
    #[test]
    fn a_grace_code_rounds_down_by_less_than_one_part_in_16384() {
        let max_ttl = crate::options::MAX_TTL.as_millis() as u64;
        let mut values = vec![0, 1, 2, 999, 32_767, 32_768, 32_769, 65_535, 65_536, 65_537];
        values.extend([60_000, 3_600_000, 86_400_000, 7 * 86_400_000, max_ttl]);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push((x % (max_ttl + 1)) >> (x % 40));
        }
        for ms in values {
            let code = grace_code(ms);
            assert!(code < 1 << 20, "{ms} ms: code {code:#x} wider than 20 bits");
            let back = grace_ms(code);
            assert!(back <= ms, "{ms} ms stands for {back}");
            assert!((ms - back) * 16384 <= ms, "{ms} ms stands for {back}");
            if ms < 32_768 || ms == 60_000 || ms == 3_600_000 {
                assert_eq!(back, ms);
            }
            // Re-encoding what a code stands for gives the same code (the
            // tail pass rewrites items from their decoded header).
            assert_eq!(grace_code(back), code, "{ms} ms");
        }
    }

    /// Expiry and grace share word w3: each reads back as written (the
    /// grace as its code says), an entry without expiry has no grace, and
    /// the header is five words.
    #[test]
    fn expiry_and_grace_read_back_from_one_word() {
        assert_eq!(ITEM_HEADER, 40);
        let meta_of = |expire, stale_until| {
            let e = Encoded::new(b"k", 1, 0, 7, 3, expire, stale_until, &[], 0);
            let mut m = Meta::empty();
            m.words = e.hdr;
            m
        };
        let now = 1_780_000_000_000u64; // ms, in 2026
        for (expire, stale_until, want) in [
            (0, 0, 0),
            (0, now, 0),
            (now, 0, now),
            (now, now, now),
            (now, now + 60_000, now + 60_000),
            (now, now + 86_400_000, now + 86_400_000 - 3_072),
            (1, 2, 2),
        ] {
            let m = meta_of(expire, stale_until);
            assert_eq!(m.expire_ms(), expire);
            assert_eq!(
                m.stale_until_ms(),
                want,
                "expire {expire}, grace until {stale_until}"
            );
            assert_eq!(m.epoch(), 3);
        }
        // An expiry past the 44 bits (a corrupt cap) saturates, grace kept.
        let far = meta_of(u64::MAX - 10, u64::MAX);
        assert_eq!(far.expire_ms(), EXPIRY_MASK);
        assert!(far.stale_until_ms() >= far.expire_ms());
    }
}
