//! Node.js addon for memshelf: free functions over an `External` handle
//! (cheaper to call than class methods), wrapped by the thin JavaScript
//! class in `index.js`. Only type conversion happens here; every cache
//! decision is the engine's. Errors are converted in `error.rs`.
//!
//! Keys and values cross as byte views plus a length (`key`, `klen`): the
//! wrapper encodes string keys into a reusable scratch buffer instead of
//! allocating, and hands `read` a scratch buffer to copy the value into.

mod error;
pub mod fill;

use std::time::Duration;

use memshelf::message::Message;
use memshelf::{Cache, Expiry, OpenOptions, PutOptions, ReadInto, Ttl};
use napi::bindgen_prelude::{BigInt, Buffer, BufferSlice, Either, External, Object};
use napi::{Env, Result};
use napi_derive::napi;

use crate::error::{OrThrow, invalid, to_js};

/// An open segment, or `None` once closed.
pub struct Handle {
    cache: Option<Cache>,
}

impl Handle {
    fn cache(&self, env: &Env) -> Result<&Cache> {
        self.cache
            .as_ref()
            .ok_or_else(|| to_js(env, memshelf::Error::Closed))
    }
}

/// The first `len` bytes of a view; a length past the view is a caller bug
/// in the wrapper, reported as an argument error.
fn prefix<'v>(env: &Env, view: &'v [u8], len: i64) -> Result<&'v [u8]> {
    usize::try_from(len)
        .ok()
        .and_then(|n| view.get(..n))
        .ok_or_else(|| {
            to_js(
                env,
                invalid(format!(
                    "length {len} is outside the {}-byte view",
                    view.len()
                )),
            )
        })
}

/// Seconds (Node's TTL unit) to an engine TTL: `undefined`/0 is the
/// default; the engine refuses negative, NaN and infinite values.
fn ttl_arg(secs: Option<f64>) -> memshelf::Result<Ttl> {
    secs.map_or(Ok(Ttl::Default), Ttl::from_secs_f64)
}

/// Seconds to a duration for lease/grace/negative TTL (0 stays 0: the
/// engine decides whether 0 is allowed).
fn duration_arg(secs: f64) -> memshelf::Result<Duration> {
    Ok(match Ttl::from_secs_f64(secs)? {
        Ttl::After(d) => d,
        Ttl::Default | Ttl::Never => Duration::ZERO,
    })
}

/// A non-negative integral number of bytes, or a size such as `"64MiB"`.
fn size_arg(what: &str, v: Either<f64, String>) -> memshelf::Result<u64> {
    match v {
        Either::A(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= 2f64.powi(53) => {
            Ok(n as u64)
        }
        Either::A(n) => Err(invalid(format!(
            "{what} {n} is not a whole number of bytes >= 0"
        ))),
        Either::B(s) => memshelf::parse_size(&s),
    }
}

/// Options of `new Cache(name, options)`, already type-checked by the
/// wrapper.
#[napi(object)]
pub struct OpenArgs {
    pub capacity: Option<Either<f64, String>>,
    pub create: Option<bool>,
    pub mode: Option<u32>,
    pub ttl: Option<f64>,
    pub ttl_jitter: Option<f64>,
    pub max_value_size: Option<Either<f64, String>>,
    pub path: Option<String>,
}

/// Opens (creates or attaches) segment `name`.
#[napi]
pub fn open(env: &Env, name: String, args: OpenArgs) -> Result<External<Handle>> {
    let build = || -> memshelf::Result<Cache> {
        let mut o = OpenOptions::new();
        if let Some(c) = args.capacity {
            o.capacity(size_arg("capacity", c)?);
        }
        if let Some(c) = args.create {
            o.create(c);
        }
        if let Some(m) = args.mode {
            o.mode(m);
        }
        if let Some(t) = args.ttl {
            o.ttl(duration_arg(t)?);
        }
        if let Some(j) = args.ttl_jitter {
            o.ttl_jitter(j);
        }
        if let Some(m) = args.max_value_size {
            let m = size_arg("maxValueSize", m)?;
            o.max_value_size(usize::try_from(m).unwrap_or(usize::MAX));
        }
        if let Some(p) = args.path {
            o.path(p);
        }
        o.open(&name)
    };
    Ok(External::new(Handle {
        cache: Some(build().or_throw(env)?),
    }))
}

/// Detaches; later calls on the handle throw `Closed`. Idempotent.
#[napi]
pub fn close(h: &mut External<Handle>) {
    h.cache = None;
}

/// Whether the handle is closed.
#[napi]
pub fn is_closed(h: &External<Handle>) -> bool {
    h.cache.is_none()
}

/// Segment name and real capacity: `[name, capacity]`.
#[napi]
pub fn describe(env: &Env, h: &External<Handle>) -> Result<(String, f64, f64)> {
    let c = h.cache(env)?;
    Ok((
        c.name().to_owned(),
        c.capacity() as f64,
        c.max_value_size() as f64,
    ))
}

/// Copies the value of `key[..klen]` into `out[off..]`. Returns the value's
/// length (`<= out.length - off`: copied), `-1` on a miss, or the needed
/// length (`> out.length - off`: nothing copied).
#[napi]
pub fn read(
    env: &Env,
    h: &External<Handle>,
    key: &[u8],
    klen: i64,
    mut out: BufferSlice<'_>,
    off: i64,
) -> Result<i64> {
    let c = h.cache(env)?;
    let key = prefix(env, key, klen)?;
    let out: &mut [u8] = &mut out;
    let out = usize::try_from(off)
        .ok()
        .and_then(|o| out.get_mut(o..))
        .ok_or_else(|| {
            to_js(
                env,
                invalid(format!("offset {off} is outside the output buffer")),
            )
        })?;
    // The wrapper never passes overlapping views; refuse them rather than
    // let the engine write over the key it is reading.
    let (kp, op) = (key.as_ptr() as usize, out.as_ptr() as usize);
    if kp < op + out.len() && op < kp + key.len() {
        return Err(to_js(env, invalid("key and output buffer overlap")));
    }
    Ok(match c.read(key, out).or_throw(env)? {
        ReadInto::Miss => -1,
        ReadInto::Hit(n) | ReadInto::TooSmall(n) => n as i64,
    })
}

/// Tags as byte strings.
fn tag_refs(tags: &Option<Vec<Buffer>>) -> Vec<&[u8]> {
    tags.as_ref()
        .map(|t| t.iter().map(|b| &b[..]).collect())
        .unwrap_or_default()
}

/// Inserts or replaces `key[..klen]` with `value[..vlen]`.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn put(
    env: &Env,
    h: &External<Handle>,
    key: &[u8],
    klen: i64,
    value: &[u8],
    vlen: i64,
    ttl: Option<f64>,
    tags: Option<Vec<Buffer>>,
) -> Result<()> {
    let c = h.cache(env)?;
    let key = prefix(env, key, klen)?;
    let value = prefix(env, value, vlen)?;
    if ttl.is_none() && tags.is_none() {
        return c.put(key, value).or_throw(env);
    }
    let tags = tag_refs(&tags);
    let opts = PutOptions {
        ttl: ttl_arg(ttl).or_throw(env)?,
        tags: &tags,
    };
    c.put_with(key, value, &opts).or_throw(env)
}

/// Inserts only if absent; returns whether it inserted.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn add(
    env: &Env,
    h: &External<Handle>,
    key: &[u8],
    klen: i64,
    value: &[u8],
    vlen: i64,
    ttl: Option<f64>,
    tags: Option<Vec<Buffer>>,
) -> Result<bool> {
    let c = h.cache(env)?;
    let key = prefix(env, key, klen)?;
    let value = prefix(env, value, vlen)?;
    let tags = tag_refs(&tags);
    let opts = PutOptions {
        ttl: ttl_arg(ttl).or_throw(env)?,
        tags: &tags,
    };
    c.add_with(key, value, &opts).or_throw(env)
}

/// Removes a key; returns whether it was present.
#[napi]
pub fn delete(env: &Env, h: &External<Handle>, key: &[u8], klen: i64) -> Result<bool> {
    let c = h.cache(env)?;
    let key = prefix(env, key, klen)?;
    c.delete(key).or_throw(env)
}

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE: i64 = (1 << 53) - 1;

/// Atomic add; returns the new value (a `bigint` beyond 2^53).
#[napi]
pub fn incr(
    env: &Env,
    h: &External<Handle>,
    key: &[u8],
    klen: i64,
    delta: Either<f64, BigInt>,
    ttl: Option<f64>,
) -> Result<Either<i64, BigInt>> {
    let c = h.cache(env)?;
    let key = prefix(env, key, klen)?;
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
    let n = c.incr_with(key, delta, ttl).or_throw(env)?;
    Ok(if n.abs() <= MAX_SAFE {
        Either::A(n)
    } else {
        Either::B(BigInt::from(n))
    })
}

/// Remaining seconds; `Infinity` for no expiry; null if absent.
#[napi]
pub fn ttl(env: &Env, h: &External<Handle>, key: &[u8], klen: i64) -> Result<Option<f64>> {
    let c = h.cache(env)?;
    let key = prefix(env, key, klen)?;
    Ok(c.ttl(key).or_throw(env)?.map(|e| match e {
        Expiry::Never => f64::INFINITY,
        Expiry::In(d) => d.as_secs_f64(),
    }))
}

/// Sets a new TTL on a present key; returns whether it was present.
#[napi]
pub fn touch(env: &Env, h: &External<Handle>, key: &[u8], klen: i64, ttl: f64) -> Result<bool> {
    let c = h.cache(env)?;
    let key = prefix(env, key, klen)?;
    let ttl = Ttl::from_secs_f64(ttl).or_throw(env)?;
    c.touch(key, ttl).or_throw(env)
}

/// Every entry put with `tag` becomes a miss.
#[napi]
pub fn invalidate_tag(env: &Env, h: &External<Handle>, tag: &[u8]) -> Result<()> {
    h.cache(env)?.invalidate_tag(tag).or_throw(env)
}

/// Removes every key with `prefix`; returns the count.
#[napi]
pub fn delete_prefix(env: &Env, h: &External<Handle>, prefix: &[u8]) -> Result<f64> {
    Ok(h.cache(env)?.delete_prefix(prefix).or_throw(env)? as f64)
}

/// Every entry becomes a miss.
#[napi]
pub fn clear(env: &Env, h: &External<Handle>) -> Result<()> {
    h.cache(env)?.clear().or_throw(env)
}

/// Live keys (with `prefix`) as strings (invalid UTF-8 replaced by U+FFFD).
#[napi]
pub fn keys(env: &Env, h: &External<Handle>, prefix: Option<&[u8]>) -> Result<Vec<String>> {
    let c = h.cache(env)?;
    Ok(c.keys(prefix)
        .map(|k| String::from_utf8_lossy(&k).into_owned())
        .collect())
}

/// Live keys (with `prefix`) as Buffers.
#[napi]
pub fn key_buffers(env: &Env, h: &External<Handle>, prefix: Option<&[u8]>) -> Result<Vec<Buffer>> {
    let c = h.cache(env)?;
    Ok(c.keys(prefix).map(Buffer::from).collect())
}

/// Segment-wide statistics, with the SPEC's field names.
#[napi]
pub fn stats<'e>(env: &'e Env, h: &External<Handle>) -> Result<Object<'e>> {
    let s = h.cache(env)?.stats();
    let mut o = Object::new(env)?;
    for (k, v) in s.fields() {
        o.set(k, v as f64)?;
    }
    Ok(o)
}

/// Removes segment `name` (or the file at `path`).
#[napi]
pub fn unlink(env: &Env, name: String, path: Option<String>) -> Result<()> {
    match path {
        Some(p) => memshelf::unlink_path(p),
        None => memshelf::unlink(&name),
    }
    .or_throw(env)
}

/// The layout version this addon speaks.
#[napi]
pub fn layout_version() -> u32 {
    Cache::layout_version()
}

/// Fields of `invalidationMessage(...)`, already type-checked.
#[napi(object)]
pub struct MessageArgs {
    pub op: String,
    pub keys: Option<Vec<Buffer>>,
    pub prefix: Option<Buffer>,
    pub tag: Option<Buffer>,
    pub cache: Option<String>,
    pub origin: Option<String>,
    pub seq: Option<f64>,
    pub ts: Option<f64>,
}

fn whole(what: &str, v: f64) -> memshelf::Result<u64> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 2f64.powi(53) {
        Ok(v as u64)
    } else {
        Err(invalid(format!("{what} {v} is not a whole number >= 0")))
    }
}

/// The JSON payload of one invalidation message (SPEC section 6).
#[napi]
pub fn invalidation_message(env: &Env, args: MessageArgs) -> Result<String> {
    let build = || -> memshelf::Result<String> {
        fn need<'b>(v: Option<&'b Buffer>, op: &str, what: &str) -> memshelf::Result<&'b [u8]> {
            v.map(|b| &b[..])
                .ok_or_else(|| invalid(format!("op {op:?} needs {what}")))
        }
        let mut m = match args.op.as_str() {
            "del" => {
                let keys = args
                    .keys
                    .as_ref()
                    .ok_or_else(|| invalid("op \"del\" needs keys"))?;
                let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
                Message::delete(&refs)
            }
            "del_prefix" => {
                Message::delete_prefix(need(args.prefix.as_ref(), "del_prefix", "prefix")?)
            }
            "tag" => Message::tag(need(args.tag.as_ref(), "tag", "tag")?),
            "clear" => Message::clear(),
            "hb" => Message::heartbeat(),
            op => {
                return Err(invalid(format!(
                    "unknown op {op:?} (expected del, del_prefix, tag, clear or hb)"
                )));
            }
        };
        if let Some(c) = &args.cache {
            m = m.cache(c.clone());
        }
        match (&args.origin, args.seq) {
            (Some(o), Some(seq)) => m = m.origin(o.clone(), whole("seq", seq)?),
            (None, None) => {}
            _ => return Err(invalid("origin and seq go together")),
        }
        if let Some(ts) = args.ts {
            m = m.ts(whole("ts", ts)?);
        }
        Ok(m.to_json())
    };
    build().or_throw(env)
}
