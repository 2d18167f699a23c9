//! The Python module `memshelf._memshelf`: a thin translation of the
//! engine's API. Types are converted here; errors in `error_to_py` (one
//! place); all cache logic lives in the `memshelf` crate.

use std::cell::RefCell;
use std::sync::RwLock;
use std::time::Duration;

use memshelf::{Error, Expiry, Fill, GetOrSetOptions, OpenOptions, PutOptions, Ttl};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString};

/// Converts an engine error to the matching `memshelf` exception.
fn error_to_py(py: Python<'_>, e: &Error) -> PyErr {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let class = match e {
        Error::InvalidName { .. } => "InvalidName",
        Error::KeyTooLong { .. } => "KeyTooLong",
        Error::ValueTooLarge { .. } => "ValueTooLarge",
        Error::InvalidTtl(_) => "InvalidTTL",
        Error::InvalidArgument(_) => "InvalidArgument",
        Error::IncompatibleSegment { .. } => "IncompatibleSegment",
        Error::NotFound { .. } => "SegmentNotFound",
        Error::NotAnInteger { .. } => "NotAnInteger",
        Error::NoSpace { .. } => "NoSpace",
        Error::Timeout(_) => "Timeout",
        Error::Closed => "ClosedError",
        _ => "IOFailure",
    };
    let module = MODULE.get_or_try_init(py, || py.import("memshelf._errors").map(Bound::unbind));
    match module.and_then(|m| m.bind(py).getattr(class)) {
        Ok(cls) => PyErr::from_type(cls.cast_into().expect("exception class"), e.to_string()),
        Err(err) => err,
    }
}

trait IntoPy<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, Error> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| error_to_py(py, &e))
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Bytes of a key, tag or value: `str` (UTF-8), `bytes`, `bytearray`,
/// `memoryview` (or any object with the buffer protocol).
fn with_bytes<R>(obj: &Bound<'_, PyAny>, what: &str, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(f(s.to_str()?.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(f(&b.to_vec()));
    }
    if let Ok(buf) = pyo3::buffer::PyBuffer::<u8>::get(obj) {
        return Ok(f(&buf.to_vec(obj.py())?));
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be str, bytes, bytearray or memoryview, not {}",
        type_name(obj)
    )))
}

fn owned_bytes(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    with_bytes(obj, what, <[u8]>::to_vec)
}

/// A TTL in seconds (`None` or 0: the segment's default).
fn ttl_of(py: Python<'_>, ttl: Option<&Bound<'_, PyAny>>) -> PyResult<Ttl> {
    match ttl {
        None => Ok(Ttl::Default),
        Some(t) if t.is_none() => Ok(Ttl::Default),
        Some(t) => Ttl::from_secs_f64(seconds(t, "ttl")?).py_err(py),
    }
}

fn seconds(t: &Bound<'_, PyAny>, what: &str) -> PyResult<f64> {
    if t.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a number of seconds, not bool"
        )));
    }
    t.extract::<f64>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be a number of seconds, not {}",
            type_name(t)
        ))
    })
}

fn duration_of(py: Python<'_>, t: &Bound<'_, PyAny>, what: &str) -> PyResult<Duration> {
    let s = seconds(t, what)?;
    match Ttl::from_secs_f64(s).py_err(py)? {
        Ttl::After(d) => Ok(d),
        _ => Err(error_to_py(
            py,
            &Error::InvalidTtl(format!("{what} must be > 0 seconds (got {s})")),
        )),
    }
}

fn tags_of(tags: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Vec<u8>>> {
    let Some(tags) = tags else {
        return Ok(Vec::new());
    };
    if tags.is_instance_of::<PyString>() || tags.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "tags must be a sequence of tags, not a single str/bytes",
        ));
    }
    tags.try_iter()?
        .map(|t| owned_bytes(&t?, "a tag"))
        .collect()
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A shared-memory cache segment, opened (created or attached) by name.
///
/// Every process that opens the same name shares the same entries. A Cache
/// may be used from many threads at once and survives `fork`.
#[pyclass(frozen, module = "memshelf")]
struct Cache {
    inner: RwLock<Option<memshelf::Cache>>,
    name: String,
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
}

#[pymethods]
impl Cache {
    /// Opens the segment `name`, creating it if absent (unless create=False).
    ///
    /// capacity: bytes (int) or a size such as "256MiB" (used only when
    /// creating). ttl: default TTL in seconds for puts that give none.
    /// ttl_jitter: spread every TTL by +/- this fraction (0 to 0.5).
    /// max_value_size: largest value accepted. path: map this file instead
    /// of /dev/shm/memshelf.<name>.
    #[new]
    #[pyo3(signature = (name, capacity = None, *, create = true, mode = 0o600, ttl = None, ttl_jitter = 0.0, max_value_size = None, path = None))]
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
        path: Option<std::path::PathBuf>,
    ) -> PyResult<Cache> {
        let mut o = OpenOptions::new();
        if let Some(c) = capacity {
            let bytes = if let Ok(s) = c.cast::<PyString>() {
                memshelf::parse_size(s.to_str()?).py_err(py)?
            } else if c.is_instance_of::<pyo3::types::PyInt>()
                && !c.is_instance_of::<pyo3::types::PyBool>()
            {
                c.extract::<u64>().map_err(|_| {
                    PyValueError::new_err("capacity must be a positive number of bytes")
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
        if let Some(p) = path {
            o.path(p);
        }
        let name = name.to_owned();
        let cache = py.detach(|| o.open(&name)).py_err(py)?;
        Ok(Cache {
            inner: RwLock::new(Some(cache)),
            name,
        })
    }

    /// The segment's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
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

    /// The value of `key` as bytes, or None.
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        with_bytes(key, "key", |k| {
            BUF.with(|b| {
                let mut b = b.borrow_mut();
                let hit = self.with(py, |c| c.get_into(k, &mut b))?;
                Ok(hit.then(|| PyBytes::new(py, &b)))
            })
        })?
    }

    /// Inserts or replaces `key`. ttl: seconds (None: the default);
    /// tags: names for invalidate_tag().
    #[pyo3(signature = (key, value, ttl = None, tags = None))]
    fn put(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.write(py, key, value, ttl, tags, false).map(|_| ())
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
        self.write(py, key, value, ttl, tags, true)
    }

    /// Removes `key`; returns whether a live entry was there.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        with_bytes(key, "key", |k| self.with(py, |c| c.delete(k)))?
    }

    /// Atomically adds `delta` to the integer at `key` (missing: 0) and
    /// returns the new value. Raises NotAnInteger for other values.
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
    /// processes runs `factory()` (returning bytes, str or None) while the
    /// others wait for its value without holding the GIL. An exception in
    /// the factory propagates to its caller and another waiter takes over.
    /// lease: seconds the factory may take before a waiter takes over.
    /// grace: serve the expired value that long while one caller refreshes.
    /// negative_ttl: cache a None result that long.
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
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if !factory.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "factory must be callable, not {}",
                type_name(factory)
            )));
        }
        let key = owned_bytes(key, "key")?;
        let ttl = ttl_of(py, ttl)?;
        let lease = match lease {
            Some(l) if !l.is_none() => duration_of(py, l, "lease")?,
            _ => Duration::from_secs(10),
        };
        let grace = grace
            .filter(|g| !g.is_none())
            .map(|g| duration_of(py, g, "grace"))
            .transpose()?;
        let negative_ttl = negative_ttl
            .filter(|g| !g.is_none())
            .map(|g| duration_of(py, g, "negative_ttl"))
            .transpose()?;
        let tags = tags_of(tags)?;
        let tag_refs: Vec<&[u8]> = tags.iter().map(Vec::as_slice).collect();
        let opts = GetOrSetOptions {
            ttl,
            tags: &tag_refs,
            lease,
            grace,
            negative_ttl,
        };
        // The core's get_or_set loop, spelled with begin_fill/wait_fill so
        // that the factory runs in this thread with the GIL held and a
        // waiter sleeps without the GIL yet still answers Ctrl-C (signals
        // are checked between waits of at most 50 ms).
        let cache = self.handle(py)?;
        let mut waited = false;
        loop {
            match cache.begin_fill(&key, &opts).py_err(py)? {
                Fill::Hit(v) | Fill::Stale(v) => return Ok(Some(PyBytes::new(py, &v))),
                Fill::Absent => return Ok(None),
                Fill::Lead(lease) => {
                    // An exception (or a result of the wrong type) drops
                    // the lease, which hands it to a waiter.
                    let v = factory.call0()?;
                    let v = if v.is_none() {
                        None
                    } else {
                        Some(owned_bytes(&v, "the factory's result")?)
                    };
                    lease.fill(v.as_deref()).py_err(py)?;
                    return Ok(v.map(|v| PyBytes::new(py, &v)));
                }
                Fill::Wait(ticket) => {
                    if !waited {
                        waited = true;
                        cache.record_get_or_set_wait();
                    }
                    py.detach(|| cache.wait_fill(&ticket, Duration::from_millis(50)));
                    py.check_signals()?;
                }
            }
        }
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

    /// Gives a live `key` a new TTL (seconds; None: the default); returns
    /// whether the key was present.
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
        Ok(d)
    }

    /// Detaches from the segment; further calls raise ClosedError. The
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

    /// Closes the Cache at the end of a `with` block (the segment stays).
    fn __exit__(
        &self,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.close();
        false
    }

    /// `cache[key]`: the value as bytes; KeyError when absent.
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.get(py, key)?
            .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(key.clone().unbind()))
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
            Err(pyo3::exceptions::PyKeyError::new_err(key.clone().unbind()))
        }
    }

    /// `key in cache`: whether `key` has a live entry.
    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        with_bytes(key, "key", |k| self.with(py, |c| c.contains(k)))?
    }

    fn __repr__(&self) -> String {
        format!(
            "memshelf.Cache({:?}{})",
            self.name,
            if self.closed() { ", closed" } else { "" }
        )
    }
}

impl Cache {
    fn write(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        add: bool,
    ) -> PyResult<bool> {
        let ttl = ttl_of(py, ttl)?;
        let tags = tags_of(tags)?;
        let tag_refs: Vec<&[u8]> = tags.iter().map(Vec::as_slice).collect();
        let opts = PutOptions {
            ttl,
            tags: &tag_refs,
        };
        with_bytes(key, "key", |k| {
            with_bytes(value, "value", |v| {
                self.with(py, |c| {
                    if add {
                        c.add_with(k, v, &opts)
                    } else {
                        c.put_with(k, v, &opts).map(|_| true)
                    }
                })
            })
        })??
    }
}

/// Removes segment `name` (processes attached keep their mapping until
/// they close it). Raises SegmentNotFound if it does not exist.
#[pyfunction]
fn unlink(py: Python<'_>, name: &str) -> PyResult<()> {
    memshelf::unlink(name).py_err(py)
}

/// Parses a size such as "64MiB" into bytes.
#[pyfunction]
fn parse_size(py: Python<'_>, text: &str) -> PyResult<u64> {
    memshelf::parse_size(text).py_err(py)
}

/// Builds an invalidation message (JSON bytes) for memshelf-agent, to
/// publish with your own Redis client. op: "del" (keys=...), "del_prefix"
/// (prefix=...), "tag" (tag=...), "clear" or "hb".
#[pyfunction]
#[pyo3(signature = (op, *, keys = None, prefix = None, tag = None, cache = None, origin = None, seq = None, ts = None))]
#[allow(clippy::too_many_arguments)]
fn invalidation_message<'py>(
    py: Python<'py>,
    op: &str,
    keys: Option<&Bound<'py, PyAny>>,
    prefix: Option<&Bound<'py, PyAny>>,
    tag: Option<&Bound<'py, PyAny>>,
    cache: Option<String>,
    origin: Option<String>,
    seq: Option<u64>,
    ts: Option<u64>,
) -> PyResult<Bound<'py, PyBytes>> {
    use memshelf::message::Message;
    let need = |v: Option<&Bound<'py, PyAny>>, what: &str| {
        v.map(|v| owned_bytes(v, what))
            .transpose()?
            .ok_or_else(|| PyValueError::new_err(format!("op {op:?} needs {what}=")))
    };
    let mut m = match op {
        "del" => Message::delete(&tags_of(keys)?.iter().map(Vec::as_slice).collect::<Vec<_>>()),
        "del_prefix" => Message::delete_prefix(&need(prefix, "prefix")?),
        "tag" => Message::tag(&need(tag, "tag")?),
        "clear" => Message::clear(),
        "hb" => Message::heartbeat(),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown op {other:?}: expected del, del_prefix, tag, clear or hb"
            )));
        }
    };
    if matches!(&m.op, Op::Del(k) if k.is_empty()) {
        return Err(PyValueError::new_err("op \"del\" needs keys=[...]"));
    }
    if let Some(c) = cache {
        m = m.cache(c);
    }
    match (origin, seq) {
        (Some(o), seq) => m = m.origin(o, seq.unwrap_or(0)),
        (None, Some(_)) => {
            return Err(PyValueError::new_err(
                "seq= needs origin= (seq counts per origin)",
            ));
        }
        (None, None) => {}
    }
    if let Some(t) = ts {
        m = m.ts(t);
    }
    Ok(PyBytes::new(py, m.to_json().as_bytes()))
}

use memshelf::message::Op;

#[pymodule]
fn _memshelf(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Cache>()?;
    m.add_function(wrap_pyfunction!(unlink, m)?)?;
    m.add_function(wrap_pyfunction!(parse_size, m)?)?;
    m.add_function(wrap_pyfunction!(invalidation_message, m)?)?;
    m.add("LAYOUT_VERSION", memshelf::LAYOUT_VERSION)?;
    m.add("MAX_KEY_LEN", memshelf::MAX_KEY_LEN)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
