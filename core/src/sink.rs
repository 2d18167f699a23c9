//! Where a get copies a value: straight from the segment into the caller's
//! memory (a `Vec`, a caller's slice, a binding's own object such as a
//! Python `bytes`), one copy, then checked there. Used by `item.rs`
//! (`read_value`), `bucket.rs` (`find_into`), `read.rs` (`lookup`) and
//! `cache.rs` (`get_into`, `read`, `get_into_sink`).
//!
//! A read copies the value optimistically and validates the copy after
//! (checksum and the log's tail, `item.rs`), so the bytes a sink receives
//! are the value only once the read says so ([`ValueSink::filled`]); a read
//! that failed validation (the item was rewritten or moved while it was
//! copied) asks for room again, possibly of another length.

use std::mem::MaybeUninit;

use crate::item;
use crate::segment::Segment;

/// A destination a get copies a value straight into
/// ([`get_into_sink`](crate::Cache::get_into_sink)), so a binding can hand
/// the bytes to its language without a second copy: it makes its own
/// object of the value's length and returns the object's bytes as the
/// room.
///
/// ```
/// # let name = format!("doc-sink-{}", std::process::id());
/// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
/// use std::mem::MaybeUninit;
/// use memshelf::ValueSink;
///
/// /// A boxed slice of exactly the value's length.
/// struct Exact(Box<[MaybeUninit<u8>]>, usize);
/// impl ValueSink for Exact {
///     fn room(&mut self, len: usize) -> Option<&mut [MaybeUninit<u8>]> {
///         self.0 = Box::new_uninit_slice(len);
///         Some(&mut self.0)
///     }
///     fn filled(&mut self, len: usize) {
///         self.1 = len;
///     }
/// }
///
/// cache.put(b"k", b"hello")?;
/// let mut s = Exact(Box::new([]), 0);
/// assert!(cache.get_into_sink(b"k", &mut s)?);
/// // SAFETY: a hit wrote all of the last room (`filled` said `len` = 5).
/// let v = unsafe { s.0.assume_init() };
/// assert_eq!(&v[..], b"hello");
/// # memshelf::unlink(&name)?;
/// # Ok::<(), memshelf::Error>(())
/// ```
pub trait ValueSink {
    /// Room for a value of `len` bytes: a slice of at least `len` bytes,
    /// whose first `len` the read writes and then checks (nothing past
    /// them is written). `None`: no room; the read still checks the value,
    /// through a scratch buffer of its own, and reports its length to
    /// `filled`. A read may ask again (the item changed while it was
    /// copied), possibly with another `len`: only the bytes of the last
    /// call are the value.
    fn room(&mut self, len: usize) -> Option<&mut [MaybeUninit<u8>]>;

    /// The read that asked last for room has validated a value of `len`
    /// bytes: when `room` gave room, they are its first `len` bytes, fully
    /// written. The get's result still says whether it is a live entry
    /// (an expired one validates too, and is a miss).
    fn filled(&mut self, len: usize);
}

/// The engine's view of a destination: copies a value in (`item.rs`'s
/// word copies) and hears when a read validated it. Only this crate
/// implements it.
pub(crate) trait Sink {
    /// Copies the `len` value bytes at mapping offset `off` into this
    /// sink's memory and returns the copy; `None`: no room (the caller
    /// copies into a scratch buffer to check the value).
    fn copy(&mut self, seg: &Segment, off: u64, len: usize) -> Option<&[u8]>;

    /// As [`ValueSink::filled`].
    fn filled(&mut self, len: usize);
}

/// A `Vec` holds the copy (its contents replaced; after a read that failed
/// validation it holds bytes that are not the value: `get_into` empties it
/// on a miss).
impl Sink for Vec<u8> {
    #[inline(always)]
    fn copy(&mut self, seg: &Segment, off: u64, len: usize) -> Option<&[u8]> {
        item::copy_out(seg, off, len, self);
        Some(self)
    }

    #[inline(always)]
    fn filled(&mut self, _len: usize) {}
}

/// A caller's [`ValueSink`].
pub(crate) struct External<'a, S: ?Sized>(pub &'a mut S);

impl<S: ValueSink + ?Sized> Sink for External<'_, S> {
    #[inline(always)]
    fn copy(&mut self, seg: &Segment, off: u64, len: usize) -> Option<&[u8]> {
        let room = self.0.room(len)?;
        Some(item::copy_into(seg, off, len, room))
    }

    #[inline(always)]
    fn filled(&mut self, len: usize) {
        self.0.filled(len)
    }
}

/// A caller's slice ([`Cache::read`](crate::Cache::read)): the value when
/// it fits, else only its length.
pub(crate) struct Slice<'a> {
    out: &'a mut [u8],
    /// The length of the last validated value.
    pub len: usize,
    /// Whether the last copy fitted (and so is in `out`).
    pub fits: bool,
}

impl<'a> Slice<'a> {
    pub fn new(out: &'a mut [u8]) -> Self {
        Slice {
            out,
            len: 0,
            fits: false,
        }
    }
}

impl Sink for Slice<'_> {
    #[inline(always)]
    fn copy(&mut self, seg: &Segment, off: u64, len: usize) -> Option<&[u8]> {
        self.fits = len <= self.out.len();
        if !self.fits {
            return None;
        }
        let out = &mut *self.out;
        // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and
        // `copy_into` writes only initialised bytes (never
        // `MaybeUninit::uninit()`), so `out` stays initialised.
        let room = unsafe { &mut *(out as *mut [u8] as *mut [MaybeUninit<u8>]) };
        Some(item::copy_into(seg, off, len, room))
    }

    #[inline(always)]
    fn filled(&mut self, len: usize) {
        self.len = len;
    }
}

/// `None` as a sink, for a read that only validates.
#[inline(always)]
pub(crate) fn none<'a>() -> Option<&'a mut Vec<u8>> {
    None
}
