//! `getOrSet` for async callers: the wrapper drives the engine's
//! `begin_fill` loop, runs the JavaScript factory itself when it leads, and
//! waits for another caller's fill on a libuv worker thread so the event
//! loop never blocks.

use std::time::Duration;

use memshelf::{Cache, Fill, FillLease, GetOrSetOptions, WaitTicket};
use napi::bindgen_prelude::{AsyncTask, Buffer, BufferSlice, External, Object};
use napi::{Env, Result, Task};
use napi_derive::napi;

use crate::error::OrThrow;
use crate::{Handle, duration_arg, prefix, tag_refs, ttl_arg};

/// Options of `getOrSet`, in seconds, already type-checked.
#[napi(object)]
pub struct FillArgs {
    pub ttl: Option<f64>,
    pub lease: Option<f64>,
    pub grace: Option<f64>,
    pub negative_ttl: Option<f64>,
    pub tags: Option<Vec<Buffer>>,
}

/// A lease this caller holds until it fills or abandons it (or the handle
/// is garbage-collected, which abandons it too).
pub type LeaseCell = Option<FillLease>;

/// One step of `getOrSet`: `{state: "hit"|"stale"|"absent", value?}`,
/// `{state: "lead", lease}` or `{state: "wait", ticket}`.
#[napi]
pub fn begin_fill<'e>(
    env: &'e Env,
    h: &External<Handle>,
    key: &[u8],
    klen: i64,
    args: FillArgs,
) -> Result<Object<'e>> {
    let c = h.cache(env)?;
    let key = prefix(env, key, klen)?;
    let tags = tag_refs(&args.tags);
    let opts = (|| -> memshelf::Result<GetOrSetOptions<'_>> {
        let mut o = GetOrSetOptions {
            ttl: ttl_arg(args.ttl)?,
            tags: &tags,
            ..GetOrSetOptions::default()
        };
        if let Some(l) = args.lease {
            o.lease = duration_arg(l)?;
        }
        o.grace = args.grace.map(duration_arg).transpose()?;
        o.negative_ttl = args.negative_ttl.map(duration_arg).transpose()?;
        Ok(o)
    })()
    .or_throw(env)?;
    let mut out = Object::new(env)?;
    match c.begin_fill(key, &opts).or_throw(env)? {
        Fill::Hit(v) => {
            out.set("state", "hit")?;
            out.set("value", BufferSlice::from_data(env, v)?)?;
        }
        Fill::Stale(v) => {
            out.set("state", "stale")?;
            out.set("value", BufferSlice::from_data(env, v)?)?;
        }
        Fill::Absent => out.set("state", "absent")?,
        Fill::Lead(lease) => {
            out.set("state", "lead")?;
            out.set("lease", External::<LeaseCell>::new(Some(lease)))?;
        }
        Fill::Wait(ticket) => {
            out.set("state", "wait")?;
            out.set("ticket", External::new(ticket))?;
        }
    }
    Ok(out)
}

/// Stores the factory's value (`null`: nothing, or a cached absence with
/// `negativeTtl`) and wakes the waiters. Returns whether it was stored
/// (`false` when an invalidation voided the lease).
#[napi]
pub fn fill_lease(
    env: &Env,
    lease: &mut External<LeaseCell>,
    value: Option<&[u8]>,
) -> Result<bool> {
    match lease.take() {
        Some(l) => l.fill(value).or_throw(env),
        None => Ok(false),
    }
}

/// Gives the lease up without a value (the factory failed): a waiter takes
/// over.
#[napi]
pub fn abandon_lease(lease: &mut External<LeaseCell>) {
    drop(lease.take());
}

/// Waits, on a libuv worker thread, until the fill behind a ticket ends.
pub struct WaitFill {
    cache: Cache,
    ticket: WaitTicket,
    max: Duration,
}

impl Task for WaitFill {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        self.cache.wait_fill(&self.ticket, self.max);
        Ok(())
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

/// Resolves when the fill behind `ticket` ends or `ms` pass; then call
/// `beginFill` again.
#[napi(ts_return_type = "Promise<void>")]
pub fn wait_fill(
    env: &Env,
    h: &External<Handle>,
    ticket: &External<WaitTicket>,
    ms: u32,
) -> Result<AsyncTask<WaitFill>> {
    Ok(AsyncTask::new(WaitFill {
        cache: h.cache(env)?.clone(),
        ticket: **ticket,
        max: Duration::from_millis(u64::from(ms)),
    }))
}
