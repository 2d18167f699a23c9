//! Model (b): item write and validated read over a ring (invariants I2 and
//! I3).
//!
//! Replicates, for one log:
//!
//! * `log.rs` `Engine::alloc_raw`: claim `[pos, pos+size)` by a CAS of the
//!   head (`load(Relaxed)`, `compare_exchange_weak(AcqRel, Relaxed)`);
//! * `log.rs` `Engine::make_room`: until the tail has passed
//!   `pos + size - len`: `tail.load(Acquire)`, `record_at` (the record's
//!   first word, `load(Acquire)`), claim it by `tail.compare_exchange(AcqRel,
//!   Relaxed)`, then `evict_at` (`item::peek`: `load(Relaxed)`; the slot's
//!   `compare_exchange(AcqRel, Relaxed)` to EMPTY);
//! * `item.rs` `write`: checksum computed first, `fence(Release)`, the
//!   words with `store(Relaxed)`, the checksum word last with
//!   `store(Release)`;
//! * the publish of the new item's slot (`bucket.rs` `publish`:
//!   `compare_exchange(AcqRel, Relaxed)`);
//! * `item.rs` `read_value` with `Check::Reader`: `readable`
//!   (`tail.load(Acquire)`, not passed), `load_meta` (header words including the checksum,
//!   `load(Relaxed)`), `key_equals` (`load(Relaxed)`; a different key is
//!   `OtherKey` only if still readable), `copy_out` (`load(Relaxed)`),
//!   `fence(Acquire)`, `readable` again, then the checksum.
//!
//! An item is three words: header (key and version), value, checksum
//! (seeded with the item's position). The ring holds two items (6 words);
//! positions grow (the model never reaches `wrap`). The index is one slot
//! word per key: `pos + 1`, 0 = EMPTY.
//!
//! Oracles: (1) the seqlock argument: a read whose tail re-check passes has
//! copied exactly the words the item's owner wrote (no byte of a later
//! writer), checked *before* the checksum, so a broken ordering is caught
//! even where the checksum would hide it; (2) end to end: a read that
//! validates (tail and checksum) returns exactly the item's words; in the
//! late-writer scenario only (2) holds by design (a writer that stalled a
//! whole lap writes without any ordering; only the position-seeded checksum
//! stops it).

use crate::{Arc, AtomicU64, Ordering, checksum, fence, thread};

/// Words per item: header, value, checksum.
const ITEM: u64 = 3;
/// Ring length in words: two items.
const LEN: u64 = 2 * ITEM;
/// Keys (one index slot each).
const NKEYS: usize = 4;

/// What each scenario may break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The engine's protocol.
    Correct,
    /// `item::write` without its `fence(Release)` before the word stores.
    NoReleaseFence,
    /// `item::read_value` without its `fence(Acquire)` after the copies
    /// (`validated`).
    NoAcquireFence,
    /// `item::read_value` without the second `readable` (tail re-check).
    NoTailRecheck,
    /// The checksum not seeded with the item's position.
    UnseededChecksum,
    /// The slot published with `Relaxed` (no release of the item's words).
    RelaxedPublish,
}

struct Ring {
    words: [AtomicU64; LEN as usize],
    head: AtomicU64,
    tail: AtomicU64,
    slots: [AtomicU64; NKEYS],
    v: Variant,
}

fn header(key: u64, version: u64) -> u64 {
    (0xC0DE << 48) | (key << 32) | version
}
fn value_of(key: u64, version: u64) -> u64 {
    key * 1000 + version
}

/// The words an item's owner writes at `pos`.
fn item_words(seeded: bool, pos: u64, key: u64, version: u64) -> [u64; 3] {
    let h = header(key, version);
    let val = value_of(key, version);
    [h, val, checksum(seeded, pos, &[h, val])]
}

impl Ring {
    fn new(v: Variant) -> Ring {
        Ring {
            words: std::array::from_fn(|_| AtomicU64::new(0)),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
            v,
        }
    }
    fn seeded(&self) -> bool {
        self.v != Variant::UnseededChecksum
    }
    fn w(&self, pos: u64, i: u64) -> &AtomicU64 {
        &self.words[((pos + i) % LEN) as usize]
    }

    /// Set-up (single-threaded, before the model's threads start).
    fn preset(&self, pos: u64, key: u64, version: u64) {
        let ws = item_words(self.seeded(), pos, key, version);
        for (i, x) in ws.iter().enumerate() {
            self.w(pos, i as u64).store(*x, Ordering::Relaxed);
        }
        self.slots[key as usize].store(pos + 1, Ordering::Relaxed);
    }

    /// `Engine::alloc_raw` (no lap skipping: items divide the ring).
    fn alloc_raw(&self) -> u64 {
        loop {
            let h0 = self.head.load(Ordering::Relaxed);
            if self
                .head
                .compare_exchange_weak(h0, h0 + ITEM, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return h0;
            }
        }
    }

    /// `Engine::make_room(log, need)`: the tail passes `need - len`.
    fn make_room(&self, need: u64) {
        let target = need.saturating_sub(LEN);
        loop {
            let t = self.tail.load(Ordering::Acquire);
            if t >= target {
                return;
            }
            // `record_at`: the record's first word says its length (every
            // record is an item here).
            let _w0 = self.w(t, 0).load(Ordering::Acquire);
            if self
                .tail
                .compare_exchange(t, t + ITEM, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            self.evict_at(t);
        }
    }

    /// `Engine::evict_at` for a never-hit main-log item: `item::peek` for
    /// its key, then its slot (if it still points here) to EMPTY.
    fn evict_at(&self, pos: u64) {
        let h = self.w(pos, 0).load(Ordering::Relaxed);
        if h >> 48 != 0xC0DE {
            return;
        }
        let key = ((h >> 32) & 0xffff) as usize;
        if key >= NKEYS {
            return;
        }
        let _ = self.slots[key].compare_exchange(pos + 1, 0, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// `item::write`: checksum first, release fence, words, checksum last.
    fn write(&self, pos: u64, key: u64, version: u64) {
        let ws = item_words(self.seeded(), pos, key, version);
        if self.v != Variant::NoReleaseFence {
            fence(Ordering::Release);
        }
        self.w(pos, 0).store(ws[0], Ordering::Relaxed);
        self.w(pos, 1).store(ws[1], Ordering::Relaxed);
        self.w(pos, 2).store(ws[2], Ordering::Release);
    }

    /// A put of `key`: `Engine::write` (alloc, make room, write), then the
    /// publish CAS of its slot.
    fn put(&self, key: u64, version: u64) -> u64 {
        let pos = self.alloc_raw();
        self.make_room(pos + ITEM);
        self.write(pos, key, version);
        let order = if self.v == Variant::RelaxedPublish {
            Ordering::Relaxed
        } else {
            Ordering::AcqRel
        };
        let s = &self.slots[key as usize];
        let mut cur = s.load(Ordering::Acquire);
        while let Err(now) = s.compare_exchange(cur, pos + 1, order, Ordering::Relaxed) {
            cur = now;
        }
        pos
    }

    /// `item::readable`.
    fn readable(&self, pos: u64) -> bool {
        self.tail.load(Ordering::Acquire) <= pos
    }

    /// `item::read_value(.., Check::Reader)` of the item at `pos` for `key`.
    /// `expect`: the words its owner wrote there (`None`: the oracle is
    /// skipped, e.g. for a late writer). Returns the version read.
    fn read(
        &self,
        pos: u64,
        key: u64,
        expect: Option<[u64; 3]>,
        seqlock_oracle: bool,
    ) -> Option<u64> {
        if !self.readable(pos) {
            return None;
        }
        // load_meta: the header words (the checksum is one of them).
        let h = self.w(pos, 0).load(Ordering::Relaxed);
        let sum = self.w(pos, 2).load(Ordering::Relaxed);
        if h >> 48 != 0xC0DE || (h >> 32) & 0xffff != key {
            // OtherKey if still readable, else Invalid: a miss either way.
            let _ = self.readable(pos);
            return None;
        }
        // copy_out of the value.
        let val = self.w(pos, 1).load(Ordering::Relaxed);
        if self.v != Variant::NoAcquireFence {
            fence(Ordering::Acquire);
        }
        if self.v != Variant::NoTailRecheck && !self.readable(pos) {
            return None;
        }
        if seqlock_oracle {
            let e = expect.expect("oracle needs the written words");
            assert_eq!(
                [h, val, sum],
                e,
                "seqlock argument broken: the tail re-check passed but the copy holds bytes \
                 of another writer ({:?})",
                self.v
            );
        }
        if sum != checksum(self.seeded(), pos, &[h, val]) {
            return None;
        }
        if let Some(e) = expect {
            assert_eq!(
                [h, val, sum],
                e,
                "a validated read returned torn or foreign bytes at position {pos} ({:?})",
                self.v
            );
        }
        Some(h & 0xffff_ffff)
    }
}

/// Who wrote which item at which position, for the readers' oracle.
#[derive(Clone, Copy)]
struct Owner {
    pos: u64,
    key: u64,
    version: u64,
}

fn expect_at(seeded: bool, owners: &[Owner], key: u64, pos: u64) -> Option<[u64; 3]> {
    owners
        .iter()
        .find(|o| o.pos == pos && o.key == key)
        .map(|o| item_words(seeded, o.pos, o.key, o.version))
}

/// A reader of `key` (one slot load, then a validated read).
fn read_key(r: &Ring, owners: &[Owner], key: u64) -> Option<u64> {
    let s = r.slots[key as usize].load(Ordering::Acquire);
    if s == 0 {
        return None;
    }
    let pos = s - 1;
    let e = expect_at(r.seeded(), owners, key, pos);
    assert!(
        e.is_some(),
        "slot of key {key} points at {pos}, where no item of it was written"
    );
    r.read(pos, key, e, true)
}

/// Lap overwrite: items A (key 1) at 0 and B (key 2) at 3 fill the ring; a
/// writer puts C (key 3) at 6, which makes room by passing A and then
/// overwrites A's words. A reader reads A (whose bytes are being
/// overwritten) and then C (just published).
pub fn lap_overwrite(v: Variant) {
    let r = Arc::new(Ring::new(v));
    r.preset(0, 1, 1);
    r.preset(3, 2, 1);
    r.head.store(6, Ordering::Relaxed);
    let owners = [
        Owner {
            pos: 0,
            key: 1,
            version: 1,
        },
        Owner {
            pos: 3,
            key: 2,
            version: 1,
        },
        Owner {
            pos: 6,
            key: 3,
            version: 1,
        },
    ];
    let w = {
        let r = r.clone();
        thread::spawn(move || assert_eq!(r.put(3, 1), 6))
    };
    let a = read_key(&r, &owners, 1);
    assert!(matches!(a, None | Some(1)));
    let c = read_key(&r, &owners, 3);
    assert!(matches!(c, None | Some(1)));
    w.join().unwrap();
    // After the put: C is readable, A is not.
    assert_eq!(read_key(&r, &owners, 3), Some(1));
    assert_eq!(r.read(0, 1, None, false), None);
}

/// Two writers make room at once (each claims tail records by CAS) and
/// overwrite A and B; a reader reads B.
pub fn concurrent_tail_passes(v: Variant) {
    let r = Arc::new(Ring::new(v));
    r.preset(0, 1, 1);
    r.preset(3, 2, 1);
    r.head.store(6, Ordering::Relaxed);
    let owners = [
        Owner {
            pos: 0,
            key: 1,
            version: 1,
        },
        Owner {
            pos: 3,
            key: 2,
            version: 1,
        },
        Owner {
            pos: 6,
            key: 3,
            version: 1,
        },
        Owner {
            pos: 9,
            key: 3,
            version: 1,
        },
        Owner {
            pos: 6,
            key: 2,
            version: 2,
        },
        Owner {
            pos: 9,
            key: 2,
            version: 2,
        },
    ];
    let w1 = {
        let r = r.clone();
        thread::spawn(move || {
            r.put(3, 1);
        })
    };
    let w2 = {
        let r = r.clone();
        thread::spawn(move || {
            r.put(2, 2);
        })
    };
    let b = read_key(&r, &owners, 2);
    assert!(matches!(b, None | Some(1) | Some(2)));
    w1.join().unwrap();
    w2.join().unwrap();
    assert_eq!(read_key(&r, &owners, 2), Some(2));
}

/// A writer that claimed position 0 long ago stalled for a whole lap: the
/// tail passed its (unwritten) space, and position 6 (the same words) now
/// belongs to N, which writes key 1's new version there. The late writer
/// then stores its own item of key 1 for position 0 over N's words, with no
/// ordering at all. A reader of key 1 must get N's item or nothing.
pub fn late_writer(v: Variant) {
    let r = Arc::new(Ring::new(v));
    r.head.store(9, Ordering::Relaxed);
    r.tail.store(3, Ordering::Relaxed);
    let owners = [Owner {
        pos: 6,
        key: 1,
        version: 2,
    }];
    let n = {
        let r = r.clone();
        thread::spawn(move || {
            // Its space is already clear (the tail is past 6 + 3 - 6).
            r.make_room(9);
            r.write(6, 1, 2);
            r.slots[1].store(7, Ordering::Release);
        })
    };
    let late = {
        let r = r.clone();
        thread::spawn(move || {
            let ws = item_words(r.seeded(), 0, 1, 1);
            r.w(0, 0).store(ws[0], Ordering::Relaxed);
            r.w(0, 1).store(ws[1], Ordering::Relaxed);
            r.w(0, 2).store(ws[2], Ordering::Relaxed);
        })
    };
    let s = r.slots[1].load(Ordering::Acquire);
    if s != 0 {
        let got = r.read(s - 1, 1, expect_at(r.seeded(), &owners, 1, s - 1), false);
        assert!(matches!(got, None | Some(2)));
    }
    n.join().unwrap();
    late.join().unwrap();
    // The reader after both: N's item or (its words overwritten) nothing.
    let got = r.read(6, 1, expect_at(r.seeded(), &owners, 1, 6), false);
    assert!(matches!(got, None | Some(2)));
}
