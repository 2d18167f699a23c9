//! Node.js addon for memshelf: plain functions over a numeric handle,
//! wrapped by the JavaScript class in `index.js` (the only caller; this
//! module's exports are internal). Only type conversion happens here; every
//! cache decision is the engine's. Errors are converted in `error.rs`.
//!
//! The hot path is shaped by what napi calls cost (BUILD-NOTES): a napi
//! `External` argument or a Buffer argument costs more than the engine's
//! lookup of a cached key, so
//! - a cache is a `u32` index into a per-thread table (`scratch::THREAD`),
//!   not an `External`;
//! - the wrapper encodes every key into one registered key buffer and
//!   passes only its length; `get` copies the value into a registered slab
//!   at an offset the wrapper chooses (`scratch.rs`).
//!
//! Modules: `scratch` (the registered buffers), `ops` (single-key
//! operations), `batch` (`getMany`/`putMany`), `fill` (`getOrSet` steps),
//! `error` (engine errors to JavaScript exceptions).

pub mod batch;
mod error;
pub mod fill;
pub mod ops;
pub mod scratch;

use std::time::Duration;

use memshelf::message::Message;
use memshelf::{Cache, OpenOptions, Ttl};
use napi::bindgen_prelude::{Buffer, Either, Object};
use napi::{Env, Result};
use napi_derive::napi;

use crate::error::{OrThrow, invalid, to_js};
use crate::scratch::THREAD;

/// Runs `f` with the open cache behind handle `h`, or throws `Closed`.
fn with_cache<R>(env: &Env, h: u32, f: impl FnOnce(&Cache) -> Result<R>) -> Result<R> {
    THREAD.with(|t| f(&*t.cache(env, h)?))
}

/// A clone of the cache behind `h` (for calls that outlive the borrow).
fn cache_of(env: &Env, h: u32) -> Result<Cache> {
    with_cache(env, h, |c| Ok(c.clone()))
}

/// Seconds (Node's TTL unit) to an engine TTL: `undefined`/0 is the
/// default; the engine refuses negative, NaN and infinite values.
fn ttl_arg(secs: Option<f64>) -> memshelf::Result<Ttl> {
    secs.map_or(Ok(Ttl::Default), Ttl::from_secs_f64)
}

/// Seconds to a duration for lease/grace/negative TTL (0 stays 0: the
/// engine decides whether 0 is allowed).
fn duration_arg(what: &str, secs: f64) -> memshelf::Result<Duration> {
    memshelf::duration_from_secs(what, secs)
}

/// A non-negative integral number of bytes, or a size such as `"64MiB"`.
fn size_arg(what: &str, v: Either<f64, String>) -> memshelf::Result<u64> {
    match v {
        Either::A(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= 2f64.powi(53) => {
            Ok(n as u64)
        }
        Either::A(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 => Err(invalid(format!(
            "{what} {n} is above 2^53 bytes (past what a number holds exactly; \
             use a size string such as '1TiB')"
        ))),
        Either::A(n) => Err(invalid(format!(
            "{what} {n} is not a whole number of bytes >= 0"
        ))),
        Either::B(s) => memshelf::parse_size(&s),
    }
}

/// Tags as byte strings.
fn tag_refs(tags: &Option<Vec<Buffer>>) -> Vec<&[u8]> {
    tags.as_ref()
        .map(|t| t.iter().map(|b| &b[..]).collect())
        .unwrap_or_default()
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
    pub expected_entry_size: Option<Either<f64, String>>,
    pub path: Option<String>,
}

/// Opens (creates or attaches) segment `name`; returns its handle.
#[napi]
pub fn open(env: &Env, name: String, args: OpenArgs) -> Result<u32> {
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
            o.ttl(duration_arg("ttl", t)?);
        }
        if let Some(j) = args.ttl_jitter {
            o.ttl_jitter(j);
        }
        if let Some(m) = args.max_value_size {
            let m = size_arg("maxValueSize", m)?;
            o.max_value_size(usize::try_from(m).unwrap_or(usize::MAX));
        }
        if let Some(e) = args.expected_entry_size {
            o.expected_entry_size(size_arg("expectedEntrySize", e)?);
        }
        if let Some(p) = args.path {
            o.path(p);
        }
        o.open(&name)
    };
    let cache = build().or_throw(env)?;
    THREAD.with(|t| {
        let mut t = t.handles.borrow_mut();
        let h = u32::try_from(t.len())
            .map_err(|_| to_js(env, invalid("too many caches opened on this thread")))?;
        t.push(Some(cache));
        Ok(h)
    })
}

/// Detaches; later calls on the handle throw `Closed`. Idempotent.
#[napi]
pub fn close(h: u32) {
    // Take the cache out first so its drop (an unmap) runs outside the
    // table's borrow.
    let cache = THREAD.with(|t| {
        t.handles
            .borrow_mut()
            .get_mut(h as usize)
            .and_then(Option::take)
    });
    drop(cache);
}

/// Whether the handle is closed.
#[napi]
pub fn is_closed(h: u32) -> bool {
    THREAD.with(|t| !matches!(t.handles.borrow().get(h as usize), Some(Some(_))))
}

/// Segment name, real capacity and value limit: `[name, capacity, max]`.
#[napi]
pub fn describe(env: &Env, h: u32) -> Result<(String, f64, f64)> {
    with_cache(env, h, |c| {
        Ok((
            c.name().to_owned(),
            c.capacity() as f64,
            c.max_value_size() as f64,
        ))
    })
}

/// Whether this addon was compiled without optimisations (the wrapper warns:
/// a debug addon is about twice as slow).
#[napi]
pub fn is_debug_build() -> bool {
    cfg!(debug_assertions)
}

/// Segment-wide statistics, with the SPEC's field names.
#[napi]
pub fn stats<'e>(env: &'e Env, h: u32) -> Result<Object<'e>> {
    let s = with_cache(env, h, |c| Ok(c.stats()))?;
    let mut o = Object::new(env)?;
    for (k, v) in s.fields() {
        o.set(k, v as f64)?;
    }
    // Sampled latency: sample counts and the bucket upper bounds the engine
    // reports, in ns (0 before any sample).
    for (op, h) in [("get", &s.get_latency), ("put", &s.put_latency)] {
        let ns = |q: f64| h.quantile(q).map_or(0.0, |d| d.as_nanos() as f64);
        o.set(format!("{op}_samples"), h.count() as f64)?;
        o.set(format!("{op}_p50_ns"), ns(0.5))?;
        o.set(format!("{op}_p99_ns"), ns(0.99))?;
    }
    o.set("hot_key_share", s.hot_key_share)?;
    Ok(o)
}

/// The `n` keys with the most sampled hits still present, hottest first:
/// `{ key, keyBuffer, count }` (key: UTF-8, invalid bytes as U+FFFD).
#[napi]
pub fn hot_keys<'e>(env: &'e Env, h: u32, n: u32) -> Result<Vec<Object<'e>>> {
    let hot = with_cache(env, h, |c| Ok(c.hot_keys(n as usize)))?;
    hot.into_iter()
        .map(|(k, count)| {
            let mut o = Object::new(env)?;
            o.set("key", String::from_utf8_lossy(&k).into_owned())?;
            o.set("keyBuffer", Buffer::from(k))?;
            o.set("count", count as f64)?;
            Ok(o)
        })
        .collect()
}

/// Writes every live entry to the file `path` (replaced atomically); what
/// the engine reports.
#[napi]
pub fn dump<'e>(env: &'e Env, h: u32, path: String) -> Result<Object<'e>> {
    let r = cache_of(env, h)?.dump(&path).or_throw(env)?;
    let mut o = Object::new(env)?;
    o.set("entries", r.entries as f64)?;
    o.set("bytes", r.bytes as f64)?;
    o.set("vanished", r.vanished as f64)?;
    Ok(o)
}

/// Inserts the entries of the dump at `path` (never over a live entry; a
/// truncated dump loads its valid prefix); what the engine reports.
#[napi]
pub fn load<'e>(env: &'e Env, h: u32, path: String) -> Result<Object<'e>> {
    let r = cache_of(env, h)?.load(&path).or_throw(env)?;
    let mut o = Object::new(env)?;
    o.set("records", r.records as f64)?;
    o.set("loaded", r.loaded as f64)?;
    o.set("expired", r.expired as f64)?;
    o.set("kept_newer", r.kept_newer as f64)?;
    o.set("rejected", r.rejected as f64)?;
    o.set("expected", r.expected.map(|n| n as f64))?;
    o.set("skipped", r.skipped as f64)?;
    o.set("complete", r.complete())?;
    o.set("problem", r.problem.clone())?;
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
        let parts = memshelf::message::Parts {
            op: &args.op,
            keys: args
                .keys
                .as_ref()
                .map(|k| k.iter().map(|b| &b[..]).collect()),
            prefix: args.prefix.as_deref(),
            tag: args.tag.as_deref(),
            cache: args.cache.as_deref(),
            origin: args.origin.as_deref(),
            seq: args.seq.map(|v| whole("seq", v)).transpose()?,
            ts: args.ts.map(|v| whole("ts", v)).transpose()?,
        };
        Message::from_parts(&parts)?.to_json()
    };
    build().or_throw(env)
}
