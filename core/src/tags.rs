//! Tag invalidation (`Cache::invalidate_tag`), lock-free and crash-safe.
//!
//! A segment-wide clock (header word `tag_clock`) counts invalidations. A
//! write stamps each of its tags with the clock as it reads it
//! ([`stamp`]); the item keeps (tag hash, stamp) pairs. Invalidating a tag
//! takes the next clock value `q` and records (fingerprint, `q`) in the
//! tag's line of the table; an entry is invalidated when its tag's line
//! holds a record of the same fingerprint newer than the entry's stamp
//! ([`invalidated`]).
//!
//! The table: `ntags / 8` lines of 64 bytes, a line chosen by the tag
//! hash's low bits. Word 0 is the line's *floor*, words 1..8 hold records,
//! each one word: fingerprint (the hash's top 20 bits) << 44 | sequence (44
//! bits; 0 = empty). A line holds the 7 newest invalidations of its tags;
//! the oldest record gives way to a new one only after the floor has been
//! raised to its sequence, and every entry of the line's tags stamped
//! before the floor counts as invalidated. So an invalidation is never
//! lost: it is in its record or under the floor (entries of other tags
//! that are older than the floor are dropped with it: a miss, never a
//! stale hit). Two tags share fate by accident only when they share a line
//! and a fingerprint ([`same_record`]): one pair in 2^20 x lines.
//!
//! Up to layout 7 the table held one version word per tag hash bucket, so
//! invalidating a tag dropped the entries of every tag in its bucket.
//!
//! Orderings: the floor is raised (`fetch_max`, SeqCst) before the record
//! that it covers is replaced (CAS, SeqCst); a reader loads the records
//! (Acquire) before the floor (Acquire), so a reader that no longer sees a
//! record sees the floor that covers it. Each step is one atomic word, so
//! a process killed anywhere leaves a floor raised (more misses) or a
//! record written, never a lost invalidation. The protocol is replicated
//! in `model/src/tags.rs`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::segment::Segment;

/// Bits of a record's sequence; the rest is the tag's fingerprint.
const SEQ_BITS: u32 = 44;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
/// Invalidations a segment can record in its life (1.7 x 10^13). Past
/// them each `invalidate_tag` clears the segment instead (correct, and
/// costly: recreate the segment long before).
pub(crate) const SEQ_LIMIT: u64 = 1 << SEQ_BITS;
/// Words per line: the floor and 7 records.
pub(crate) const LINE_WORDS: u64 = 8;

/// The stamp a write gives its tags: the clock now.
#[inline]
pub(crate) fn stamp(seg: &Segment) -> u64 {
    seg.tag_clock().load(Ordering::Acquire)
}

#[inline]
fn fingerprint(tag_hash: u64) -> u64 {
    tag_hash >> SEQ_BITS
}

#[inline]
fn line(seg: &Segment, tag_hash: u64) -> u64 {
    let lines = seg.g.ntags / LINE_WORDS;
    seg.g.tags_off + (tag_hash & (lines - 1)) * LINE_WORDS * 8
}

#[inline]
fn word(seg: &Segment, line: u64, i: u64) -> &AtomicU64 {
    seg.word(line + i * 8)
}

/// Whether an entry whose tag hashes to `tag_hash`, stamped `stamp`, has
/// been invalidated since.
#[inline]
pub(crate) fn invalidated(seg: &Segment, tag_hash: u64, stamp: u64) -> bool {
    let l = line(seg, tag_hash);
    let fp = fingerprint(tag_hash);
    for i in 1..LINE_WORDS {
        let r = word(seg, l, i).load(Ordering::Acquire);
        if r >> SEQ_BITS == fp && r & SEQ_MASK > stamp {
            return true;
        }
    }
    word(seg, l, 0).load(Ordering::Acquire) > stamp
}

/// Invalidates every entry of the tag stamped before now. `false` when the
/// clock has run past what a record holds: the caller clears the segment.
pub(crate) fn invalidate(seg: &Segment, tag_hash: u64) -> bool {
    // (saturating: a clock at its end, which only a corrupt word holds,
    // reads as past the limit, so the caller clears rather than lose this
    // invalidation)
    let q = seg
        .tag_clock()
        .fetch_add(1, Ordering::SeqCst)
        .saturating_add(1);
    if q >= SEQ_LIMIT {
        return false;
    }
    let l = line(seg, tag_hash);
    let fp = fingerprint(tag_hash);
    let mine = fp << SEQ_BITS | q;
    loop {
        let floor = word(seg, l, 0).load(Ordering::Acquire);
        let mut oldest: Option<(u64, u64)> = None; // (index, record)
        let mut free: Option<(u64, u64)> = None;
        let mut own: Option<(u64, u64)> = None;
        for i in 1..LINE_WORDS {
            let r = word(seg, l, i).load(Ordering::Acquire);
            if r >> SEQ_BITS == fp && r & SEQ_MASK != 0 {
                own = Some((i, r));
                break;
            }
            if r & SEQ_MASK <= floor {
                // Empty, or covered by the floor already.
                free.get_or_insert((i, r));
            } else if oldest.is_none_or(|(_, o)| r & SEQ_MASK < o & SEQ_MASK) {
                oldest = Some((i, r));
            }
        }
        let (i, r) = match (own, free, oldest) {
            (Some((_, r)), _, _) if r & SEQ_MASK >= q => return true, // a newer one covers us
            (Some(o), _, _) => o,
            (None, Some(f), _) => f,
            (None, None, Some((i, r))) => {
                // Nothing free: the oldest record gives way, its
                // invalidation kept by the floor first.
                word(seg, l, 0).fetch_max(r & SEQ_MASK, Ordering::SeqCst);
                (i, r)
            }
            (None, None, None) => unreachable!("a line has 7 records"),
        };
        if word(seg, l, i)
            .compare_exchange(r, mine, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
    }
}

/// Whether two tag hashes share a record (the same line and fingerprint):
/// invalidating one then invalidates the other's entries too.
#[cfg(test)]
pub(crate) fn same_record(seg: &Segment, a: u64, b: u64) -> bool {
    line(seg, a) == line(seg, b) && fingerprint(a) == fingerprint(b)
}
