//! Single-key operations. The key is always the first `klen` bytes of the
//! registered key buffer (`scratch.rs`); reads return the value's length,
//! `-1` on a miss, or the needed length when the destination is too small
//! (nothing copied then).

use memshelf::{Cache, Expiry, PutOptions, ReadInto, Ttl};
use napi::bindgen_prelude::{BigInt, Buffer, BufferSlice, Either, Unknown};
use napi::{Env, Result};
use napi_derive::napi;

use crate::error::{OrThrow, invalid, to_js};
use crate::scratch::THREAD;
use crate::{scratch, tag_refs, ttl_arg, with_cache};

fn read_to(env: &Env, c: &Cache, key: &[u8], out: &mut [u8]) -> Result<f64> {
    Ok(match c.read(key, out).or_throw(env)? {
        ReadInto::Miss => -1.0,
        ReadInto::Hit(n) | ReadInto::TooSmall(n) => n as f64,
    })
}

/// `get`: copies the value into the slab at `off`.
#[napi]
pub fn read_slab(env: &Env, h: u32, klen: u32, off: u32) -> Result<f64> {
    with_cache(env, h, |c| {
        let key = scratch::key(env, klen)?;
        read_to(env, c, key, scratch::slab_from(env, off)?)
    })
}

/// `getString`, `has`: copies the value into the value buffer.
#[napi]
pub fn read_value(env: &Env, h: u32, klen: u32) -> Result<f64> {
    with_cache(env, h, |c| {
        let key = scratch::key(env, klen)?;
        read_to(env, c, key, scratch::value())
    })
}

/// `getInto` and large values: copies the value into `out`.
#[napi]
pub fn read_into(env: &Env, h: u32, klen: u32, mut out: BufferSlice<'_>) -> Result<f64> {
    with_cache(env, h, |c| {
        let key = scratch::key(env, klen)?;
        read_to(env, c, key, &mut out)
    })
}

/// The engine's error for a key that does not fit the key buffer (it is
/// longer than any key may be).
#[napi]
pub fn key_too_long(env: &Env, len: f64) -> napi::Error {
    to_js(
        env,
        memshelf::Error::KeyTooLong {
            len: len as usize,
            max: memshelf::MAX_KEY_LEN,
        },
    )
}

fn put_opts<'t>(ttl: Option<f64>, tags: &'t [&'t [u8]]) -> memshelf::Result<PutOptions<'t>> {
    Ok(PutOptions {
        ttl: ttl_arg(ttl)?,
        tags,
    })
}

/// The value: `value` when given, else the first `vlen` bytes of the value
/// buffer (a string the wrapper encoded there).
fn value_of<'v>(env: &Env, value: &'v Option<BufferSlice<'_>>, vlen: u32) -> Result<&'v [u8]> {
    let v: &[u8] = match value {
        Some(v) => v,
        None => scratch::value(),
    };
    v.get(..vlen as usize)
        .ok_or_else(|| to_js(env, invalid(format!("value length {vlen} past its buffer"))))
}

/// Inserts or replaces. `value` absent: the value is in the value buffer.
#[napi]
pub fn put(
    env: &Env,
    h: u32,
    klen: u32,
    vlen: u32,
    value: Option<BufferSlice<'_>>,
    ttl: Option<f64>,
    tags: Option<Vec<Buffer>>,
) -> Result<()> {
    with_cache(env, h, |c| {
        let key = scratch::key(env, klen)?;
        let value = value_of(env, &value, vlen)?;
        if ttl.is_none() && tags.is_none() {
            return c.put(key, value).or_throw(env);
        }
        let tags = tag_refs(&tags);
        let opts = put_opts(ttl, &tags).or_throw(env)?;
        c.put_with(key, value, &opts).or_throw(env)
    })
}

/// Inserts only if absent; returns whether it inserted.
#[napi]
pub fn add(
    env: &Env,
    h: u32,
    klen: u32,
    vlen: u32,
    value: Option<BufferSlice<'_>>,
    ttl: Option<f64>,
    tags: Option<Vec<Buffer>>,
) -> Result<bool> {
    with_cache(env, h, |c| {
        let key = scratch::key(env, klen)?;
        let value = value_of(env, &value, vlen)?;
        let tags = tag_refs(&tags);
        let opts = put_opts(ttl, &tags).or_throw(env)?;
        c.add_with(key, value, &opts).or_throw(env)
    })
}

/// Removes a key; returns whether it was present.
#[napi]
pub fn remove(env: &Env, h: u32, klen: u32) -> Result<bool> {
    with_cache(env, h, |c| c.delete(scratch::key(env, klen)?).or_throw(env))
}

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE: i64 = (1 << 53) - 1;

/// Atomic add; returns the new value (a `bigint` beyond 2^53).
#[napi]
pub fn incr(
    env: &Env,
    h: u32,
    klen: u32,
    delta: Either<f64, BigInt>,
    ttl: Option<f64>,
) -> Result<Either<i64, BigInt>> {
    let delta = match delta {
        Either::A(d) if d.fract() == 0.0 && d.abs() <= MAX_SAFE as f64 => d as i64,
        Either::A(d) => {
            return Err(to_js(
                env,
                invalid(format!(
                    "delta {d} is not a safe integer (use a bigint beyond 2^53)"
                )),
            ));
        }
        Either::B(b) => match b.get_i64() {
            (v, true) => v,
            _ => {
                return Err(to_js(
                    env,
                    invalid("delta does not fit a signed 64-bit integer"),
                ));
            }
        },
    };
    let ttl = ttl_arg(ttl).or_throw(env)?;
    let n = with_cache(env, h, |c| {
        c.incr_with(scratch::key(env, klen)?, delta, ttl)
            .or_throw(env)
    })?;
    Ok(if n.unsigned_abs() <= MAX_SAFE as u64 {
        Either::A(n)
    } else {
        Either::B(BigInt::from(n))
    })
}

/// Remaining seconds; `Infinity` for no expiry; null if absent.
#[napi]
pub fn ttl(env: &Env, h: u32, klen: u32) -> Result<Option<f64>> {
    let e = with_cache(env, h, |c| c.ttl(scratch::key(env, klen)?).or_throw(env))?;
    Ok(e.map(|e| match e {
        Expiry::Never => f64::INFINITY,
        Expiry::In(d) => d.as_secs_f64(),
    }))
}

/// Sets a new TTL on a present key; returns whether it was present.
#[napi]
pub fn touch(env: &Env, h: u32, klen: u32, ttl: f64) -> Result<bool> {
    let ttl = Ttl::from_secs_f64(ttl).or_throw(env)?;
    with_cache(env, h, |c| {
        c.touch(scratch::key(env, klen)?, ttl).or_throw(env)
    })
}

/// Every entry put with `tag` becomes a miss.
#[napi]
pub fn invalidate_tag(env: &Env, h: u32, tag: BufferSlice<'_>) -> Result<()> {
    with_cache(env, h, |c| c.invalidate_tag(&tag[..]).or_throw(env))
}

/// Removes every key with `prefix`; returns the count.
#[napi]
pub fn delete_prefix(env: &Env, h: u32, prefix: BufferSlice<'_>) -> Result<f64> {
    with_cache(env, h, |c| {
        Ok(c.delete_prefix(&prefix[..]).or_throw(env)? as f64)
    })
}

/// Every entry becomes a miss.
#[napi]
pub fn clear(env: &Env, h: u32) -> Result<()> {
    with_cache(env, h, |c| c.clear().or_throw(env))
}

/// Live keys (with `prefix`) as strings (invalid UTF-8 replaced by U+FFFD).
#[napi]
pub fn keys(env: &Env, h: u32, prefix: Option<BufferSlice<'_>>) -> Result<Vec<String>> {
    with_cache(env, h, |c| {
        Ok(c.keys(prefix.as_deref())
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect())
    })
}

/// Live keys (with `prefix`) as Buffers.
#[napi]
pub fn key_buffers(env: &Env, h: u32, prefix: Option<BufferSlice<'_>>) -> Result<Vec<Buffer>> {
    with_cache(env, h, |c| {
        Ok(c.keys(prefix.as_deref()).map(Buffer::from).collect())
    })
}

/// `get` with the key converted natively (`Thread::key_arg`): copies the
/// value into the slab at `off`. One thread-local lookup for the handle,
/// the key buffer and the slab.
#[napi]
pub fn get_slab(env: &Env, h: u32, key: Unknown<'_>, off: u32) -> Result<f64> {
    THREAD.with(|t| {
        let c = t.cache(env, h)?;
        let key = t.key_arg(env, &key)?;
        read_to(env, &c, key, t.slab_from(env, off)?)
    })
}

/// `getString`, `has`: the same into the value buffer.
#[napi]
pub fn get_value(env: &Env, h: u32, key: Unknown<'_>) -> Result<f64> {
    THREAD.with(|t| {
        let c = t.cache(env, h)?;
        let key = t.key_arg(env, &key)?;
        read_to(env, &c, key, t.value())
    })
}

/// `getInto`: the same into the caller's buffer (string keys only: the
/// wrapper copies byte keys, which may share memory with `out`).
#[napi]
pub fn get_into(env: &Env, h: u32, key: Unknown<'_>, mut out: BufferSlice<'_>) -> Result<f64> {
    THREAD.with(|t| {
        let c = t.cache(env, h)?;
        let key = t.key_arg(env, &key)?;
        read_to(env, &c, key, &mut out)
    })
}
