//! The native `Cache` class (`memshelf._memshelf.Cache`; the public
//! `memshelf.Cache` subclasses it in Python to add asyncio and memoize).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use memshelf::{Error, Expiry, Fill, OpenOptions, PutOptions, Ttl};
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyIterator, PyList, PyString, PyTuple};

use crate::codec::Codec;
use crate::convert::{
    BytesSink, IntoPy, borrowed_bytes, error_to_py, owned_bytes, tags_of, ttl_of, type_name,
    with_bytes,
};
use crate::fill::{FILL_ABSENT, FILL_HIT, FILL_LEAD, FILL_WAIT, FillArgs, FillCall, FillLease};

/// A shared-memory cache segment, opened (created or attached) by name.
///
/// Every process that opens the same name shares the same entries. A Cache
/// may be used from many threads at once and survives `fork`.
#[pyclass(frozen, subclass, module = "memshelf._memshelf")]
pub(crate) struct Cache {
    inner: RwLock<Option<memshelf::Cache>>,
    name: String,
    codec: Arc<Codec>,
}

impl Cache {
    fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&memshelf::Cache) -> Result<R, Error>,
    ) -> PyResult<R> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(c) => f(c).py_err(py),
            None => Err(error_to_py(py, &Error::Closed)),
        }
    }

    fn handle(&self, py: Python<'_>) -> PyResult<memshelf::Cache> {
        self.with(py, |c| Ok(c.clone()))
    }

    /// The stored bytes of `key`, copied once: straight from the segment
    /// into the new `bytes` object.
    fn get_raw<'py>(
        &self,
        py: Python<'py>,
        c: Option<&memshelf::Cache>,
        k: &[u8],
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mut sink = BytesSink::new(py);
        let hit = match c {
            Some(c) => c.get_into_sink(k, &mut sink).py_err(py)?,
            None => self.with(py, |c| c.get_into_sink(k, &mut sink))?,
        };
        hit.then(|| sink.take_value()).transpose()
    }

    fn lookup<'py>(
        &self,
        py: Python<'py>,
        c: Option<&memshelf::Cache>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        with_bytes(key, "key", |k| match self.get_raw(py, c, k)? {
            Some(b) => self.codec.decode(b, k).map(Some),
            None => Ok(None),
        })?
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        py: Python<'_>,
        c: Option<&memshelf::Cache>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        opts: &PutOptions<'_>,
        add: bool,
    ) -> PyResult<bool> {
        with_bytes(key, "key", |k| {
            let value = self.codec.encode(value, k)?;
            with_bytes(&value, "value", |v| {
                let op = |c: &memshelf::Cache| {
                    if add {
                        c.add_with(k, v, opts)
                    } else {
                        c.put_with(k, v, opts).map(|_| true)
                    }
                };
                match c {
                    Some(c) => op(c).py_err(py),
                    None => self.with(py, op),
                }
            })?
        })?
    }

    /// The core's get_or_set loop, spelled with begin_fill/wait_fill so
    /// that the factory runs in this thread with the GIL held and a waiter
    /// sleeps without the GIL yet still answers Ctrl-C (signals are checked
    /// between waits of at most 50 ms). `timed`: the factory returns
    /// `(value, ttl)` (see `_get_or_set_timed`).
    fn fill_loop<'py>(
        &self,
        py: Python<'py>,
        args: &FillArgs,
        factory: &Bound<'py, PyAny>,
        timed: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let tag_refs = args.tag_refs();
        let opts = args.opts(&tag_refs);
        let cache = self.handle(py)?;
        let mut call = memshelf::FillCall::default();
        loop {
            match cache.fill_step(&args.key, &opts, &mut call).py_err(py)? {
                Fill::Hit(v) | Fill::Stale(v) => {
                    return self.codec.decode(PyBytes::new(py, &v), &args.key);
                }
                Fill::Absent => return Ok(py.None().into_bound(py)),
                Fill::Lead(lease) => {
                    // An exception (or a result the codec refuses, or a bad
                    // TTL) drops the lease, which hands it to a waiter.
                    let mut v = factory.call0()?;
                    let mut ttl = opts.ttl;
                    if timed {
                        let pair = v
                            .cast_into::<PyTuple>()
                            .ok()
                            .filter(|t| t.len() == 2)
                            .ok_or_else(|| {
                                PyTypeError::new_err("the factory must return a (value, ttl) pair")
                            })?;
                        let t = pair.get_item(1)?;
                        if !t.is_none() {
                            ttl = ttl_of(py, Some(&t))?;
                        }
                        v = pair.get_item(0)?;
                    }
                    if v.is_none() {
                        lease.fill(None).py_err(py)?;
                        return Ok(v);
                    }
                    let enc = self.codec.encode(&v, &args.key)?;
                    let raw = self.codec.is_raw();
                    return with_bytes(&enc, "the factory's result", |b| {
                        lease.fill_with_ttl(Some(b), ttl).py_err(py)?;
                        Ok(if raw {
                            PyBytes::new(py, b).into_any()
                        } else {
                            v.clone()
                        })
                    })?;
                }
                Fill::Wait(ticket) => {
                    py.detach(|| cache.wait_fill(&ticket, memshelf::FILL_WAIT_SLICE));
                    py.check_signals()?;
                }
            }
        }
    }

    fn put_opts(
        py: Python<'_>,
        ttl: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Ttl, Vec<Vec<u8>>)> {
        Ok((ttl_of(py, ttl)?, tags_of(tags)?))
    }
}

#[pymethods]
impl Cache {
    /// Opens the segment `name`, creating it if absent (unless create=False).
    ///
    /// capacity: bytes (int) or a size such as "256MiB" (used only when
    /// creating). ttl: default TTL in seconds for puts that give none.
    /// ttl_jitter: spread every TTL by +/- this fraction (0 to 0.5).
    /// max_value_size: largest value accepted. expected_entry_size: key +
    /// value bytes of a typical entry, for which the index is sized (default
    /// 128; used only when creating). path: map this file instead
    /// of /dev/shm/memshelf.<name>. codec: None/"raw" (bytes and str),
    /// "pickle", "json" or an object with dumps() and loads().
    #[new]
    #[pyo3(signature = (name, capacity = None, *, create = true, mode = 0o600, ttl = None, ttl_jitter = 0.0, max_value_size = None, expected_entry_size = None, path = None, codec = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: &str,
        capacity: Option<&Bound<'_, PyAny>>,
        create: bool,
        mode: u32,
        ttl: Option<&Bound<'_, PyAny>>,
        ttl_jitter: f64,
        max_value_size: Option<usize>,
        expected_entry_size: Option<u64>,
        path: Option<std::path::PathBuf>,
        codec: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Cache> {
        let codec = Arc::new(Codec::from_option(py, codec)?);
        let mut o = OpenOptions::new();
        if let Some(c) = capacity.filter(|c| !c.is_none()) {
            let bytes = if let Ok(s) = c.cast::<PyString>() {
                memshelf::parse_size(s.to_str()?).py_err(py)?
            } else if c.is_instance_of::<PyInt>() && !c.is_instance_of::<pyo3::types::PyBool>() {
                c.extract::<u64>().map_err(|_| {
                    error_to_py(
                        py,
                        &Error::InvalidArgument(format!(
                            "capacity {c} is not a number of bytes from 0 to 2^64 - 1"
                        )),
                    )
                })?
            } else {
                return Err(PyTypeError::new_err(format!(
                    "capacity must be an int (bytes) or a str like \"64MiB\", not {}",
                    type_name(c)
                )));
            };
            o.capacity(bytes);
        }
        o.create(create).mode(mode).ttl_jitter(ttl_jitter);
        if let Ttl::After(d) = ttl_of(py, ttl)? {
            o.ttl(d);
        }
        if let Some(m) = max_value_size {
            o.max_value_size(m);
        }
        if let Some(e) = expected_entry_size {
            o.expected_entry_size(e);
        }
        if let Some(p) = path {
            o.path(p);
        }
        let name = name.to_owned();
        let cache = py.detach(|| o.open(&name)).py_err(py)?;
        Ok(Cache {
            inner: RwLock::new(Some(cache)),
            name,
            codec,
        })
    }

    /// The segment's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The codec: "raw", "pickle", "json" or the object given.
    #[getter]
    fn codec<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.codec.shown(py)
    }

    /// The segment's capacity in bytes (as created).
    #[getter]
    fn capacity(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |c| Ok(c.capacity()))
    }

    /// The largest value this segment accepts, in bytes.
    #[getter]
    fn max_value_size(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |c| Ok(c.max_value_size()))
    }

    /// The value of `key` (bytes with the raw codec, else decoded), or
    /// `default` when it has no live entry.
    #[pyo3(signature = (key, default = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.lookup(py, None, key)? {
            Some(v) => v,
            None => default.unwrap_or_else(|| py.None().into_bound(py)),
        })
    }

    /// The values of `keys` as a list in the same order, `default` for
    /// each key without a live entry: `[get(k, default) for k in keys]` in
    /// one call.
    #[pyo3(signature = (keys, default = None))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        if keys.is_instance_of::<PyString>() || keys.is_instance_of::<PyBytes>() {
            return Err(PyTypeError::new_err(
                "keys must be an iterable of keys, not a single str/bytes",
            ));
        }
        let c = self.handle(py)?;
        let default = default.unwrap_or_else(|| py.None().into_bound(py));
        // The keys' bytes first (`bytes` and `str` keys borrowed, not
        // copied), then one engine call: `get_many_into` prefetches the
        // buckets and items of the keys ahead while it reads one.
        let objs = match keys.cast_exact::<PyList>() {
            // A list (the usual batch) item by item, not through the
            // iterator protocol (-110 instructions per key); a subclass
            // may define its own `__iter__`.
            Ok(list) => list.iter().collect(),
            Err(_) => keys.try_iter()?.collect::<PyResult<Vec<_>>>()?,
        };
        let owned = objs
            .iter()
            .map(|k| borrowed_bytes(k, "key"))
            .collect::<PyResult<Vec<_>>>()?;
        let mut out = Vec::with_capacity(owned.len());
        let mut failed = None;
        // Each hit's value copied once, straight into its new `bytes`.
        let mut sink = BytesSink::new(py);
        c.get_many_into(&owned, &mut sink, |sink, i, hit| {
            if failed.is_some() {
                return;
            }
            if !hit {
                out.push(default.clone());
                return;
            }
            match sink
                .take_value()
                .and_then(|b| self.codec.decode(b, &owned[i]))
            {
                Ok(v) => out.push(v),
                Err(e) => failed = Some(e),
            }
        })
        .py_err(py)?;
        if let Some(e) = failed {
            return Err(e);
        }
        PyList::new(py, out)
    }

    /// Inserts or replaces `key`. ttl: seconds (None: the default;
    /// memshelf.NEVER: never); tags: names for invalidate_tag().
    #[pyo3(signature = (key, value, ttl = None, tags = None))]
    fn put(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (ttl, tags) = Self::put_opts(py, ttl, tags)?;
        let tag_refs: Vec<&[u8]> = tags.iter().map(Vec::as_slice).collect();
        let opts = PutOptions {
            ttl,
            tags: &tag_refs,
        };
        self.write(py, None, key, value, &opts, false).map(|_| ())
    }

    /// Puts every (key, value) of `items` (a mapping or an iterable of
    /// pairs), each as put() would, in one call. Stops at the first error
    /// (the items before it are stored).
    #[pyo3(signature = (items, ttl = None, tags = None))]
    fn put_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (ttl, tags) = Self::put_opts(py, ttl, tags)?;
        let tag_refs: Vec<&[u8]> = tags.iter().map(Vec::as_slice).collect();
        let opts = PutOptions {
            ttl,
            tags: &tag_refs,
        };
        let c = self.handle(py)?;
        let iter = if let Ok(d) = items.cast::<PyDict>() {
            d.items().into_any().try_iter()?
        } else if items.hasattr("items")? {
            items.call_method0("items")?.try_iter()?
        } else {
            items.try_iter()?
        };
        for item in iter {
            let item = item?;
            let pair = item.cast::<PyTuple>().ok().filter(|t| t.len() == 2);
            let (k, v) = match pair {
                Some(t) => (t.get_item(0)?, t.get_item(1)?),
                None => {
                    let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                        item.extract().map_err(|_| {
                            PyTypeError::new_err(format!(
                                "put_many takes a mapping or (key, value) pairs, not an item of type {}",
                                type_name(&item)
                            ))
                        })?;
                    (k, v)
                }
            };
            self.write(py, Some(&c), &k, &v, &opts, false)?;
        }
        Ok(())
    }

    /// Inserts `key` only if it has no live entry; returns whether it did.
    #[pyo3(signature = (key, value, ttl = None, tags = None))]
    fn add(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let (ttl, tags) = Self::put_opts(py, ttl, tags)?;
        let tag_refs: Vec<&[u8]> = tags.iter().map(Vec::as_slice).collect();
        let opts = PutOptions {
            ttl,
            tags: &tag_refs,
        };
        self.write(py, None, key, value, &opts, true)
    }

    /// Removes `key`; returns whether a live entry was there.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        with_bytes(key, "key", |k| self.with(py, |c| c.delete(k)))?
    }

    /// Atomically adds `delta` to the integer at `key` (missing: 0) and
    /// returns the new value. Raises NotAnInteger for other values. The
    /// value is stored as ASCII decimal whatever the codec.
    #[pyo3(signature = (key, delta = 1, ttl = None))]
    fn incr(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        delta: i64,
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<i64> {
        let ttl = ttl_of(py, ttl)?;
        with_bytes(key, "key", |k| {
            self.with(py, |c| c.incr_with(k, delta, ttl))
        })?
    }

    /// Returns the value of `key`; on a miss exactly one caller across all
    /// processes runs `factory()` (its result encoded by the codec; None
    /// means absent) while the others wait for its value without holding
    /// the GIL. An exception in the factory propagates to its caller and
    /// another waiter takes over. lease: seconds the factory may take
    /// before a waiter takes over. grace: serve the expired value that long
    /// while one caller refreshes. negative_ttl: cache a None result that
    /// long.
    #[pyo3(signature = (key, factory, ttl = None, lease = None, grace = None, negative_ttl = None, tags = None))]
    #[allow(clippy::too_many_arguments)]
    fn get_or_set<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        factory: &Bound<'py, PyAny>,
        ttl: Option<&Bound<'py, PyAny>>,
        lease: Option<&Bound<'py, PyAny>>,
        grace: Option<&Bound<'py, PyAny>>,
        negative_ttl: Option<&Bound<'py, PyAny>>,
        tags: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !factory.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "factory must be callable, not {}",
                type_name(factory)
            )));
        }
        let args = FillArgs::parse(py, key, ttl, lease, grace, negative_ttl, tags)?;
        self.fill_loop(py, &args, factory, false)
    }

    /// get_or_set() whose factory also chooses the TTL: it returns
    /// `(value, ttl)`, ttl None meaning the `ttl` given here (memshelf.redis
    /// stores a value with the key's remaining Redis TTL, known only with
    /// the value). Otherwise exactly get_or_set().
    #[pyo3(signature = (key, factory, ttl = None, lease = None, grace = None, negative_ttl = None, tags = None))]
    #[allow(clippy::too_many_arguments)]
    fn _get_or_set_timed<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        factory: &Bound<'py, PyAny>,
        ttl: Option<&Bound<'py, PyAny>>,
        lease: Option<&Bound<'py, PyAny>>,
        grace: Option<&Bound<'py, PyAny>>,
        negative_ttl: Option<&Bound<'py, PyAny>>,
        tags: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !factory.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "factory must be callable, not {}",
                type_name(factory)
            )));
        }
        let args = FillArgs::parse(py, key, ttl, lease, grace, negative_ttl, tags)?;
        self.fill_loop(py, &args, factory, true)
    }

    /// One step of get_or_set for callers that compute the value
    /// asynchronously (memshelf's asyncio API): returns (kind, payload):
    /// (0, value) a live or stale value; (1, None) a cached absence;
    /// (2, FillLease) this caller must compute and fill(); (3, None)
    /// another caller is computing: ask again a little later. `call`: the
    /// `_FillCall` of a get_or_set call that may wait (the engine counts its
    /// wait once); None for a probe that will not wait.
    #[pyo3(signature = (key, ttl = None, lease = None, grace = None, negative_ttl = None, tags = None, call = None))]
    #[allow(clippy::too_many_arguments)]
    fn _begin_fill<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        ttl: Option<&Bound<'py, PyAny>>,
        lease: Option<&Bound<'py, PyAny>>,
        grace: Option<&Bound<'py, PyAny>>,
        negative_ttl: Option<&Bound<'py, PyAny>>,
        tags: Option<&Bound<'py, PyAny>>,
        call: Option<&Bound<'py, FillCall>>,
    ) -> PyResult<(u8, Bound<'py, PyAny>)> {
        let args = FillArgs::parse(py, key, ttl, lease, grace, negative_ttl, tags)?;
        let tag_refs = args.tag_refs();
        let opts = args.opts(&tag_refs);
        let fill = self.with(py, |c| match call {
            Some(call) => {
                let mut call = call.get().0.lock().unwrap_or_else(|p| p.into_inner());
                c.fill_step(&args.key, &opts, &mut call)
            }
            None => c.begin_fill(&args.key, &opts),
        })?;
        Ok(match fill {
            Fill::Hit(v) | Fill::Stale(v) => (
                FILL_HIT,
                self.codec.decode(PyBytes::new(py, &v), &args.key)?,
            ),
            Fill::Absent => (FILL_ABSENT, py.None().into_bound(py)),
            Fill::Lead(lease) => (
                FILL_LEAD,
                Bound::new(py, FillLease::new(lease, args.key, self.codec.clone()))?.into_any(),
            ),
            Fill::Wait(_) => (FILL_WAIT, py.None().into_bound(py)),
        })
    }

    /// Remaining lifetime of `key` in seconds: math.inf if it never
    /// expires, None if it has no live entry.
    fn ttl(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
        let e = with_bytes(key, "key", |k| self.with(py, |c| c.ttl(k)))??;
        Ok(e.map(|e| match e {
            Expiry::Never => f64::INFINITY,
            Expiry::In(d) => d.as_secs_f64(),
        }))
    }

    /// Gives a live `key` a new TTL (seconds; None: the default; math.inf:
    /// never); returns whether the key was present.
    #[pyo3(signature = (key, ttl = None))]
    fn touch(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let ttl = ttl_of(py, ttl)?;
        with_bytes(key, "key", |k| self.with(py, |c| c.touch(k, ttl)))?
    }

    /// Every entry put with `tag` becomes a miss, in O(1).
    fn invalidate_tag(&self, py: Python<'_>, tag: &Bound<'_, PyAny>) -> PyResult<()> {
        with_bytes(tag, "tag", |t| self.with(py, |c| c.invalidate_tag(t)))?
    }

    /// Removes every key starting with `prefix`; returns how many.
    fn delete_prefix(&self, py: Python<'_>, prefix: &Bound<'_, PyAny>) -> PyResult<u64> {
        let prefix = owned_bytes(prefix, "prefix")?;
        let cache = self.handle(py)?;
        py.detach(move || cache.delete_prefix(&prefix)).py_err(py)
    }

    /// Every entry becomes a miss, in O(1).
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |c| c.clear())
    }

    /// The live keys (with `prefix`, if given) as a list of bytes. Best
    /// effort under concurrent writes.
    #[pyo3(signature = (prefix = None))]
    fn keys<'py>(
        &self,
        py: Python<'py>,
        prefix: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let prefix = prefix
            .filter(|p| !p.is_none())
            .map(|p| owned_bytes(p, "prefix"))
            .transpose()?;
        let cache = self.handle(py)?;
        let keys: Vec<Vec<u8>> = py.detach(move || cache.keys(prefix.as_deref()).collect());
        PyList::new(py, keys.iter().map(|k| PyBytes::new(py, k)))
    }

    /// Segment-wide statistics (every process) as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let cache = self.handle(py)?;
        let s = py.detach(move || cache.stats());
        let d = PyDict::new(py);
        for (k, v) in s.fields() {
            d.set_item(k, v)?;
        }
        // Sampled latency: the bucket upper bounds the engine reports, in
        // ns (None before any sample).
        let ns = |h: &memshelf::Histogram, q: f64| h.quantile(q).map(|d| d.as_nanos() as u64);
        d.set_item("get_samples", s.get_latency.count())?;
        d.set_item("put_samples", s.put_latency.count())?;
        d.set_item("get_p50_ns", ns(&s.get_latency, 0.5))?;
        d.set_item("get_p99_ns", ns(&s.get_latency, 0.99))?;
        d.set_item("put_p50_ns", ns(&s.put_latency, 0.5))?;
        d.set_item("put_p99_ns", ns(&s.put_latency, 0.99))?;
        d.set_item("get_latency_buckets", s.get_latency.buckets.to_vec())?;
        d.set_item("put_latency_buckets", s.put_latency.buckets.to_vec())?;
        d.set_item("hot_key_share", s.hot_key_share)?;
        Ok(d)
    }

    /// The `n` keys with the most sampled hits that are still present, as
    /// (key, sampled hit count), hottest first.
    #[pyo3(signature = (n = 10))]
    fn hot_keys<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
        let cache = self.handle(py)?;
        let hot = py.detach(move || cache.hot_keys(n));
        PyList::new(
            py,
            hot.iter()
                .map(|(k, c)| (PyBytes::new(py, k), *c).into_pyobject(py))
                .collect::<PyResult<Vec<_>>>()?,
        )
    }

    /// Writes every live entry to the file `path` (replaced atomically);
    /// returns what the engine reports as a dict.
    fn dump<'py>(&self, py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
        let cache = self.handle(py)?;
        let r = py.detach(move || cache.dump(&path)).py_err(py)?;
        let d = PyDict::new(py);
        d.set_item("entries", r.entries)?;
        d.set_item("bytes", r.bytes)?;
        d.set_item("vanished", r.vanished)?;
        Ok(d)
    }

    /// Inserts the entries of the dump at `path` (never overwriting a live
    /// entry); returns what the engine reports as a dict. A truncated or
    /// corrupt dump loads its valid prefix and says so in "problem".
    fn load<'py>(&self, py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
        let cache = self.handle(py)?;
        let r = py.detach(move || cache.load(&path)).py_err(py)?;
        let d = PyDict::new(py);
        d.set_item("records", r.records)?;
        d.set_item("loaded", r.loaded)?;
        d.set_item("expired", r.expired)?;
        d.set_item("kept_newer", r.kept_newer)?;
        d.set_item("rejected", r.rejected)?;
        d.set_item("expected", r.expected)?;
        d.set_item("skipped", r.skipped)?;
        d.set_item("complete", r.complete())?;
        d.set_item("problem", r.problem)?;
        Ok(d)
    }

    /// Detaches from the segment; further calls raise Closed. The
    /// segment itself stays (see memshelf.unlink).
    fn close(&self) {
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        guard.take();
    }

    /// Whether close() was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Returns the Cache itself (`with memshelf.Cache(...) as c:`).
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Closes the Cache at the end of a `with` block (the segment stays);
    /// exceptions propagate.
    fn __exit__(
        &self,
        exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) {
        let _ = (exc_type, exc, tb);
        self.close();
    }

    /// `cache[key]`: the value; KeyError when absent.
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lookup(py, None, key)?
            .ok_or_else(|| PyKeyError::new_err(key.clone().unbind()))
    }

    /// `cache[key] = value`: put without TTL (the segment's default) or tags.
    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.put(py, key, value, None, None)
    }

    /// `del cache[key]`: delete; KeyError when absent.
    fn __delitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.delete(py, key)? {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    /// `key in cache`: whether `key` has a live entry.
    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        with_bytes(key, "key", |k| self.with(py, |c| c.contains(k)))?
    }

    /// `len(cache)`: the number of live entries (a scan of the index).
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let cache = self.handle(py)?;
        Ok(py.detach(move || cache.keys(None).count()))
    }

    /// `iter(cache)`: the live keys as bytes (a snapshot, as keys()).
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        self.keys(py, None)?.into_any().try_iter()
    }

    fn __repr__(&self) -> String {
        let codec = match &*self.codec {
            Codec::Raw => String::new(),
            Codec::Object { name, .. } => format!(", codec={name:?}"),
        };
        format!(
            "memshelf.Cache({:?}{codec}{})",
            self.name,
            if self.closed() { ", closed" } else { "" }
        )
    }
}
