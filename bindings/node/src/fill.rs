//! `getOrSet` for async callers: the wrapper drives the engine's
//! `begin_fill` loop and runs the JavaScript factory itself when it leads.
//! When another caller (in any process) is filling, the wait happens on one
//! dedicated waiter thread per process (`WAITER`), never on libuv's thread
//! pool, so pending waits cannot starve `fs`, `dns` or `crypto` work. The
//! thread sleeps on each pending ticket in turn with `Cache::wait_fill`
//! (a futex wait, no CPU burnt) and resolves a wait's promise when its fill
//! ended or its time ran out; the wrapper then asks `beginFill` again.

use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use memshelf::{Cache, FILL_WAIT_SLICE, Fill, FillCall, FillLease, GetOrSetOptions, WaitTicket};
use napi::bindgen_prelude::{Buffer, BufferSlice, External, Object};
use napi::{Env, JsDeferred, Result};
use napi_derive::napi;

use crate::error::OrThrow;
use crate::{cache_of, duration_arg, scratch, tag_refs, ttl_arg, with_cache};

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

/// One `getOrSet` call (`memshelf::FillCall`), passed to each of its
/// `beginFill` steps so the engine counts its wait once.
#[napi]
pub fn new_fill_call() -> External<FillCall> {
    External::new(FillCall::default())
}

/// One step of `getOrSet` for the key in the key buffer:
/// `{state: "hit"|"stale"|"absent", value?}`, `{state: "lead", lease}` or
/// `{state: "wait", ticket}` (`Cache::fill_step`).
#[napi]
pub fn begin_fill<'e>(
    env: &'e Env,
    h: u32,
    call: &mut External<FillCall>,
    klen: u32,
    args: FillArgs,
) -> Result<Object<'e>> {
    let tags = tag_refs(&args.tags);
    let opts = (|| -> memshelf::Result<GetOrSetOptions<'_>> {
        let mut o = GetOrSetOptions {
            ttl: ttl_arg(args.ttl)?,
            tags: &tags,
            ..GetOrSetOptions::default()
        };
        if let Some(l) = args.lease {
            o.lease = duration_arg("lease", l)?;
        }
        o.grace = args.grace.map(|g| duration_arg("grace", g)).transpose()?;
        o.negative_ttl = args
            .negative_ttl
            .map(|n| duration_arg("negativeTtl", n))
            .transpose()?;
        Ok(o)
    })()
    .or_throw(env)?;
    let step = with_cache(env, h, |c| {
        c.fill_step(scratch::key(env, klen)?, &opts, call)
            .or_throw(env)
    })?;
    let mut out = Object::new(env)?;
    match step {
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
/// (`false` when an invalidation voided the lease). `ttl` (seconds): the
/// value's TTL instead of the one `beginFill` got (memshelf/redis learns
/// the key's remaining Redis TTL with the value); a bad one throws and
/// leaves the lease held.
#[napi]
pub fn fill_lease(
    env: &Env,
    lease: &mut External<LeaseCell>,
    value: Option<BufferSlice<'_>>,
    ttl: Option<f64>,
) -> Result<bool> {
    let ttl = ttl.map(|t| ttl_arg(Some(t))).transpose().or_throw(env)?;
    match (lease.take(), ttl) {
        (Some(l), Some(t)) => l.fill_with_ttl(value.as_deref(), t).or_throw(env),
        (Some(l), None) => l.fill(value.as_deref()).or_throw(env),
        (None, _) => Ok(false),
    }
}

/// Gives the lease up without a value (the factory failed): a waiter takes
/// over.
#[napi]
pub fn abandon_lease(lease: &mut External<LeaseCell>) {
    drop(lease.take());
}

type Resolver = fn(Env) -> Result<()>;

fn resolved(_: Env) -> Result<()> {
    Ok(())
}

/// One pending wait.
struct Job {
    cache: Cache,
    ticket: WaitTicket,
    until: Instant,
    done: JsDeferred<(), Resolver>,
}

/// How long the waiter sleeps on one ticket before it looks at the next
/// one (and at newly queued waits) when several are pending.
const STEP_MANY: Duration = Duration::from_millis(1);
/// The same with a single pending wait.
const STEP_ONE: Duration = Duration::from_millis(10);

static WAITER: OnceLock<Sender<Job>> = OnceLock::new();

fn waiter_loop(rx: Receiver<Job>) {
    let mut pending: Vec<Job> = Vec::new();
    loop {
        if pending.is_empty() {
            match rx.recv() {
                Ok(j) => pending.push(j),
                Err(_) => return,
            }
        }
        pending.extend(rx.try_iter());
        let step = if pending.len() == 1 {
            STEP_ONE
        } else {
            STEP_MANY
        };
        let mut i = 0;
        while i < pending.len() {
            let j = &pending[i];
            let now = Instant::now();
            let left = j.until.saturating_duration_since(now);
            let max = left.min(step);
            j.cache.wait_fill(&j.ticket, max);
            // An early return means the ticket's fill ended (or a spurious
            // wake-up: the wrapper's next `beginFill` sorts that out).
            if now.elapsed() < max || Instant::now() >= j.until {
                let j = pending.swap_remove(i);
                // Resolving goes through a thread-safe function; if the
                // environment is gone (a worker that exited) nothing waits.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    j.done.resolve(resolved as Resolver)
                }));
            } else {
                i += 1;
            }
        }
    }
}

fn waiter() -> &'static Sender<Job> {
    WAITER.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("memshelf-fill-waiter".into())
            .spawn(move || waiter_loop(rx))
            .expect("memshelf: cannot start the getOrSet waiter thread");
        tx
    })
}

/// A promise that resolves when the fill behind `ticket` ends or the
/// engine's wait slice (`FILL_WAIT_SLICE`) passes; then call `beginFill`
/// again. Waits on the waiter thread.
#[napi(ts_return_type = "Promise<void>")]
pub fn wait_fill<'e>(env: &'e Env, h: u32, ticket: &External<WaitTicket>) -> Result<Object<'e>> {
    let cache = cache_of(env, h)?;
    let (done, promise) = env.create_deferred::<(), Resolver>()?;
    let job = Job {
        cache,
        ticket: **ticket,
        until: Instant::now() + FILL_WAIT_SLICE,
        done,
    };
    if let Err(mpsc::SendError(job)) = waiter().send(job) {
        // The waiter thread is gone (it cannot be, short of a panic): ask
        // again at once rather than hang.
        job.done.resolve(resolved as Resolver);
    }
    Ok(promise)
}
