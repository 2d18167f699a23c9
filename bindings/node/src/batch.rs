//! `getMany` / `putMany`: one napi call for many keys. The wrapper packs
//! the keys (and values) back to back into one buffer with a table of
//! lengths (native-endian `u32`s), so a batch costs a few argument
//! conversions instead of a few per key. Each key behaves as its single
//! form.

use memshelf::PutOptions;
use napi::bindgen_prelude::BufferSlice;
use napi::{Env, Result};
use napi_derive::napi;

use crate::error::{OrThrow, invalid, to_js};
use crate::{scratch, ttl_arg, with_cache};

/// The `u32` at index `i` of a length table.
fn len_at(table: &[u8], i: usize) -> Option<usize> {
    let b = table.get(i * 4..i * 4 + 4)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// Splits `count` packed items of `data` by the lengths in `table`.
fn unpack<'d>(
    env: &Env,
    what: &str,
    data: &'d [u8],
    table: &[u8],
    count: u32,
) -> Result<Vec<&'d [u8]>> {
    let mut out = Vec::with_capacity(count as usize);
    let mut pos = 0usize;
    for i in 0..count as usize {
        let item = len_at(table, i)
            .and_then(|n| data.get(pos..pos + n))
            .ok_or_else(|| to_js(env, invalid(format!("{what} {i} past the packed buffer"))))?;
        pos += item.len();
        out.push(item);
    }
    Ok(out)
}

const ALIGN: usize = 8;

/// Reads keys `start..count` (packed in `keys` by `klens`) into the slab
/// from offset `off` on, each value at an 8-byte-aligned offset. For key
/// `i` it writes `out[2i] = offset` and `out[2i+1] = length` (`offset = -1`:
/// a miss). It stops at the first value that does not fit the slab's
/// remaining room and writes `out[2i] = -2`, `out[2i+1] = needed length`.
/// `out` is a native-endian `i32` table. Returns the index it stopped at
/// (`count`: all done).
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn read_many(
    env: &Env,
    h: u32,
    keys: BufferSlice<'_>,
    klens: BufferSlice<'_>,
    count: u32,
    start: u32,
    mut out: BufferSlice<'_>,
    off: u32,
) -> Result<u32> {
    with_cache(env, h, |c| {
        let keys = unpack(env, "key", &keys, &klens, count)?;
        let slab = scratch::slab_from(env, 0)?;
        let out: &mut [u8] = &mut out;
        if out.len() < keys.len() * 8 {
            return Err(to_js(env, invalid("result table too small")));
        }
        let mut set = |i: usize, a: i32, b: i32| {
            out[i * 8..i * 8 + 4].copy_from_slice(&a.to_ne_bytes());
            out[i * 8 + 4..i * 8 + 8].copy_from_slice(&b.to_ne_bytes());
        };
        // One engine call for the batch: `get_many_into` prefetches the
        // buckets and items of the keys ahead while it reads one, and
        // copies each value straight into its place in the slab. After a
        // value that does not fit, the rest is left for the next call.
        let mut sink = Slab {
            slab,
            pos: off as usize,
            stopped: None,
            len: 0,
        };
        c.get_many_into(&keys[start as usize..], &mut sink, |s, j, hit| {
            let i = start as usize + j;
            if s.stopped.is_some() {
                return;
            }
            if !hit {
                set(i, -1, 0);
            } else if s.fits(s.len) {
                set(i, s.pos as i32, s.len as i32);
                s.pos = (s.pos + s.len).next_multiple_of(ALIGN);
            } else {
                set(i, -2, i32::try_from(s.len).unwrap_or(i32::MAX));
                s.stopped = Some(i as u32);
            }
        })
        .or_throw(env)?;
        if let Some(i) = sink.stopped {
            return Ok(i);
        }
        Ok(count)
    })
}

/// `read_many`'s sink: each value at the slab's next aligned offset, until
/// one does not fit (then no more is copied).
struct Slab<'a> {
    slab: &'a mut [u8],
    pos: usize,
    /// The key whose value did not fit (no more is copied after it).
    stopped: Option<u32>,
    /// The length of the value the last read validated.
    len: usize,
}

impl Slab<'_> {
    /// Whether a value of `len` bytes fits at `pos` (`room` gave room).
    fn fits(&self, len: usize) -> bool {
        self.stopped.is_none()
            && self
                .pos
                .checked_add(len)
                .is_some_and(|e| e <= self.slab.len())
    }
}

impl memshelf::ValueSink for Slab<'_> {
    fn room(&mut self, len: usize) -> Option<&mut [std::mem::MaybeUninit<u8>]> {
        if !self.fits(len) {
            return None;
        }
        let room = &mut self.slab[self.pos..self.pos + len];
        // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and a
        // read writes only initialised bytes into a room (never
        // `MaybeUninit::uninit()`), so the slab stays initialised.
        Some(unsafe { &mut *(room as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) })
    }

    fn filled(&mut self, len: usize) {
        self.len = len;
    }
}

/// Puts `count` items: keys packed in `keys` by `klens`, values in `vals`
/// by `vlens`, all with `ttl`, in order. The first item the engine refuses
/// throws; the items before it stay stored.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn put_many(
    env: &Env,
    h: u32,
    keys: BufferSlice<'_>,
    klens: BufferSlice<'_>,
    vals: BufferSlice<'_>,
    vlens: BufferSlice<'_>,
    count: u32,
    ttl: Option<f64>,
) -> Result<()> {
    with_cache(env, h, |c| {
        let keys = unpack(env, "key", &keys, &klens, count)?;
        let vals = unpack(env, "value", &vals, &vlens, count)?;
        let opts = PutOptions {
            ttl: ttl_arg(ttl).or_throw(env)?,
            tags: &[],
        };
        for (k, v) in keys.iter().zip(&vals) {
            c.put_with(k, v, &opts).or_throw(env)?;
        }
        Ok(())
    })
}
