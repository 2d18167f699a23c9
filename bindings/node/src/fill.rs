//! `getOrSet` for async callers: the wrapper drives the engine's
//! `begin_fill` loop and runs the JavaScript factory itself when it leads.
//! When another caller (in any process) is filling, the wait happens on one
//! dedicated waiter thread per process (`WAITER`), never on libuv's thread
//! pool, so pending waits cannot starve `fs`, `dns` or `crypto` work. The
//! thread sleeps on each pending ticket in turn with `Cache::wait_fill`
//! (a futex wait, no CPU burnt) and resolves a wait's promise when its fill
//! ended or its time ran out; the wrapper then asks `beginFill` again.

use std::ffi::c_void;
use std::ptr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use memshelf::{Cache, FILL_WAIT_SLICE, Fill, FillCall, FillLease, GetOrSetOptions, WaitTicket};
use napi::bindgen_prelude::{Buffer, BufferSlice, External, Object};
use napi::{Env, Result, sys};
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

/// A pending wait's promise, settled from the waiter thread through a
/// thread-safe function of our own. napi's `JsDeferred` was used before:
/// when a worker was stopped while one of its waits was pending, Node
/// deleted that function with the worker's environment and the waiter
/// thread's later call wrote into freed memory (the process aborted:
/// `stopping workers that wait in getOrSet does not crash the process`).
/// Here the function's finalizer, which Node runs on the environment's
/// thread before it deletes the function (at the end of a normal
/// settlement, or when the environment goes), marks the gate closed under
/// its lock, and the waiter calls the function only under that lock while
/// the gate is open.
struct Settle {
    tsfn: sys::napi_threadsafe_function,
    gate: Arc<Mutex<bool>>,
}

// SAFETY: the thread-safe function is made to be called from other
// threads; every use of it goes through `gate` (see `settle`).
unsafe impl Send for Settle {}

impl Settle {
    /// A pending promise of this environment and its settler.
    fn new<'e>(env: &'e Env) -> Result<(Settle, Object<'e>)> {
        let raw = env.raw();
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        // SAFETY: plain Node-API calls on this thread's environment with
        // valid out pointers.
        check(unsafe { sys::napi_create_promise(raw, &mut deferred, &mut promise) })?;
        let mut name = ptr::null_mut();
        let label = c"memshelf getOrSet wait";
        // SAFETY: as above; `label` is NUL-terminated and outlives the call.
        check(unsafe {
            sys::napi_create_string_utf8(
                raw,
                label.as_ptr(),
                label.count_bytes() as isize,
                &mut name,
            )
        })?;
        let gate = Arc::new(Mutex::new(true));
        let finalize_data = Arc::into_raw(Arc::clone(&gate)) as *mut c_void;
        let mut tsfn = ptr::null_mut();
        // SAFETY: as above. The finalizer gets back the `Arc` leaked into
        // `finalize_data` (exactly once: Node finalizes a function once);
        // the context is the promise's deferred, which `settled` resolves
        // exactly once. No queue limit, so a call never blocks.
        let status = unsafe {
            sys::napi_create_threadsafe_function(
                raw,
                ptr::null_mut(),
                ptr::null_mut(),
                name,
                0,
                1,
                finalize_data,
                Some(finalized),
                deferred.cast(),
                Some(settled),
                &mut tsfn,
            )
        };
        if status != sys::Status::napi_ok {
            // SAFETY: the function was not made, so its finalizer will not
            // run: take the leaked reference back.
            drop(unsafe { Arc::from_raw(finalize_data as *const Mutex<bool>) });
            check(status)?;
        }
        Ok((Settle { tsfn, gate }, Object::from_raw(raw, promise)))
    }

    /// Resolves the promise (on its environment's thread, later); nothing
    /// if that environment is gone. (Dropping a `Settle` does the same, so
    /// a wait dropped unsettled, by a panic of the waiter thread, still
    /// settles its promise: the wrapper then asks `beginFill` again.)
    fn settle(self) {
        drop(self);
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        let open = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        if *open {
            // SAFETY: the gate is open, so the finalizer has not run and
            // cannot run before the lock is released: the function exists.
            // Its data is the function itself, which `settled` releases;
            // a `Settle` is dropped once, so the function is called once.
            unsafe {
                sys::napi_call_threadsafe_function(
                    self.tsfn,
                    self.tsfn.cast(),
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                );
            }
        }
    }
}

fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::from_reason(format!(
            "memshelf: a Node-API call for getOrSet failed (status {status})"
        )))
    }
}

/// The thread-safe function's call, on the environment's thread: resolves
/// the promise and releases the function (which then finalizes). With a
/// null `env` the environment is going away: nothing to resolve.
unsafe extern "C" fn settled(
    env: sys::napi_env,
    _js_callback: sys::napi_value,
    context: *mut c_void,
    data: *mut c_void,
) {
    if env.is_null() {
        return;
    }
    // SAFETY: `env` is the live environment Node passes to this callback;
    // `context` is the deferred made with the function, resolved only here
    // (a function is called once: `settle` consumes its `Settle`); `data`
    // is the function itself.
    unsafe {
        let mut undefined = ptr::null_mut();
        sys::napi_get_undefined(env, &mut undefined);
        sys::napi_resolve_deferred(env, context.cast(), undefined);
        sys::napi_release_threadsafe_function(
            data.cast(),
            sys::ThreadsafeFunctionReleaseMode::release,
        );
    }
}

/// The thread-safe function's finalizer: closes the gate (waiting for a
/// call in progress), after which the waiter never touches the function.
unsafe extern "C" fn finalized(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Arc` leaked by `Settle::new` for this function.
    let gate = unsafe { Arc::from_raw(data as *const Mutex<bool>) };
    *gate.lock().unwrap_or_else(|p| p.into_inner()) = false;
}

/// One pending wait.
struct Job {
    cache: Cache,
    ticket: WaitTicket,
    until: Instant,
    done: Settle,
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
                // (a worker that was stopped meanwhile: nothing waits)
                pending.swap_remove(i).done.settle();
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
    let (done, promise) = Settle::new(env)?;
    let job = Job {
        cache,
        ticket: **ticket,
        until: Instant::now() + FILL_WAIT_SLICE,
        done,
    };
    if let Err(mpsc::SendError(job)) = waiter().send(job) {
        // The waiter thread is gone (it cannot be, short of a panic): ask
        // again at once rather than hang.
        job.done.settle();
    }
    Ok(promise)
}
