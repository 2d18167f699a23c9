//! Conversions between Python objects and the engine's types (bytes, TTLs,
//! durations, tags), and the one mapping of engine errors to exceptions.

use std::borrow::Cow;
use std::time::Duration;

use memshelf::{Error, Ttl};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyString};

/// The `memshelf._errors` module (where the exception classes live).
pub(crate) fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || py.import("memshelf._errors").map(Bound::unbind))
        .map(|m| m.bind(py))
}

/// An exception of class `class` (from `memshelf._errors`) with `msg`.
pub(crate) fn exception(py: Python<'_>, class: &str, msg: String) -> PyErr {
    match errors_module(py).and_then(|m| m.getattr(class)) {
        Ok(cls) => PyErr::from_type(cls.cast_into().expect("exception class"), msg),
        Err(err) => err,
    }
}

/// Converts an engine error to the matching `memshelf` exception.
pub(crate) fn error_to_py(py: Python<'_>, e: &Error) -> PyErr {
    // One table of error kinds (the engine's), the same names in every
    // language: memshelf._errors defines a class per kind name.
    let class = e.kind_name();
    exception(py, class, e.to_string())
}

pub(crate) trait IntoPy<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, Error> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| error_to_py(py, &e))
    }
}

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Bytes of a key, tag or value: `str` (UTF-8), `bytes`, `bytearray`,
/// `memoryview` (or any object with the buffer protocol). Borrowed from a
/// `bytes` or `str` object (a batch copies no key), copied from a mutable
/// buffer. The one rule for what a byte string is; `with_bytes` and
/// `owned_bytes` are its two other shapes.
pub(crate) fn borrowed_bytes<'a>(obj: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Cow<'a, [u8]>> {
    // `str` first: the usual key.
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Cow::Borrowed(s.to_str()?.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Cow::Owned(b.to_vec()));
    }
    match pyo3::buffer::PyBuffer::<u8>::get(obj) {
        Ok(buf) => return Ok(Cow::Owned(buf.to_vec(obj.py())?)),
        // A released memoryview says so itself (ValueError).
        Err(e) if e.is_instance_of::<PyValueError>(obj.py()) => return Err(e),
        Err(e) => {
            // SAFETY: a plain C-API query on a live object.
            if unsafe { pyo3::ffi::PyObject_CheckBuffer(obj.as_ptr()) } != 0 {
                // A buffer, but not of bytes (array('i'), memoryview.cast('I')).
                return Err(PyTypeError::new_err(format!(
                    "{what} must be str, bytes or a buffer of unsigned bytes (format 'B'), \
                     not a {} of other items ({e})",
                    type_name(obj)
                )));
            }
        }
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be str, bytes, bytearray or memoryview, not {}",
        type_name(obj)
    )))
}

/// `f` applied to the bytes of `obj` (see `borrowed_bytes`).
pub(crate) fn with_bytes<R>(
    obj: &Bound<'_, PyAny>,
    what: &str,
    f: impl FnOnce(&[u8]) -> R,
) -> PyResult<R> {
    borrowed_bytes(obj, what).map(|b| f(&b))
}

pub(crate) fn owned_bytes(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    borrowed_bytes(obj, what).map(Cow::into_owned)
}

/// `memshelf.NEVER`: a TTL that never expires, also over a segment's
/// default TTL (the only instance of this class).
#[pyclass(frozen, module = "memshelf._memshelf", name = "_Never")]
pub(crate) struct Never;

#[pymethods]
impl Never {
    fn __repr__(&self) -> &'static str {
        "memshelf.NEVER"
    }
}

/// A TTL in seconds: `None` or 0 the segment's default, `NEVER` never.
pub(crate) fn ttl_of(py: Python<'_>, ttl: Option<&Bound<'_, PyAny>>) -> PyResult<Ttl> {
    match ttl {
        None => Ok(Ttl::Default),
        Some(t) if t.is_none() => Ok(Ttl::Default),
        Some(t) if t.is_instance_of::<Never>() => Ok(Ttl::Never),
        Some(t) => Ttl::from_secs_f64(seconds(t, "ttl")?).py_err(py),
    }
}

pub(crate) fn seconds(t: &Bound<'_, PyAny>, what: &str) -> PyResult<f64> {
    if t.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a number of seconds, not bool"
        )));
    }
    t.extract::<f64>().map_err(|e| {
        let py = t.py();
        if e.is_instance_of::<PyOverflowError>(py) {
            // An int too large for a float (10**400): a number, too long.
            error_to_py(
                py,
                &Error::InvalidTtl(format!("{what} is out of range (too large): {e}")),
            )
        } else if e.is_instance_of::<PyTypeError>(py) {
            PyTypeError::new_err(format!(
                "{what} must be a number of seconds, not {}",
                type_name(t)
            ))
        } else {
            e // raised by the object's own __float__
        }
    })
}

pub(crate) fn duration_of(py: Python<'_>, t: &Bound<'_, PyAny>, what: &str) -> PyResult<Duration> {
    memshelf::duration_from_secs(what, seconds(t, what)?).py_err(py)
}

/// An optional duration: `None` (or absent) stays `None`.
pub(crate) fn opt_duration(
    py: Python<'_>,
    t: Option<&Bound<'_, PyAny>>,
    what: &str,
) -> PyResult<Option<Duration>> {
    t.filter(|t| !t.is_none())
        .map(|t| duration_of(py, t, what))
        .transpose()
}

pub(crate) fn tags_of(tags: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Vec<u8>>> {
    let Some(tags) = tags else {
        return Ok(Vec::new());
    };
    if tags.is_none() {
        return Ok(Vec::new());
    }
    if tags.is_instance_of::<PyString>() || tags.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "tags must be a sequence of tags, not a single str/bytes",
        ));
    }
    tags.try_iter()?
        .map(|t| owned_bytes(&t?, "a tag"))
        .collect()
}

/// A `bytes` object the engine copies a value straight into (one copy from
/// the segment: `Cache.get`). Made with uninitialised contents at the
/// value's length when the read asks for room; a read that retries with
/// the same length reuses it.
pub(crate) struct BytesSink<'py> {
    py: Python<'py>,
    /// The object and its length (never read through `as_bytes` before it
    /// is filled: its bytes are uninitialised until then).
    obj: Option<(Bound<'py, PyBytes>, usize)>,
    /// Set when making the object failed (MemoryError): the read then
    /// checks the value through its scratch buffer, and the get raises this.
    err: Option<PyErr>,
}

impl<'py> BytesSink<'py> {
    pub(crate) fn new(py: Python<'py>) -> Self {
        BytesSink {
            py,
            obj: None,
            err: None,
        }
    }

    /// The value after a hit (`Cache::get_into_sink` returned `true`, or
    /// `get_many_into` said `hit`), taken out: the sink is then empty,
    /// ready for the next key.
    pub(crate) fn take_value(&mut self) -> PyResult<Bound<'py, PyBytes>> {
        match (self.err.take(), self.obj.take()) {
            (Some(e), _) => Err(e),
            (None, Some((obj, _))) => Ok(obj),
            (None, None) => unreachable!("a hit without room asked"),
        }
    }
}

impl memshelf::ValueSink for BytesSink<'_> {
    fn room(&mut self, len: usize) -> Option<&mut [std::mem::MaybeUninit<u8>]> {
        if self.obj.as_ref().map(|o| o.1) != Some(len) {
            self.obj = None;
            // SAFETY: with a NULL source, PyBytes_FromStringAndSize makes a
            // new `bytes` of `len` uninitialised bytes (a new reference, or
            // NULL with an exception set); `from_owned_ptr_or_err` takes
            // that reference or the exception. The GIL is held (`py`).
            let made = unsafe {
                let p = pyo3::ffi::PyBytes_FromStringAndSize(
                    std::ptr::null(),
                    len as pyo3::ffi::Py_ssize_t,
                );
                Bound::from_owned_ptr_or_err(self.py, p)
            };
            match made {
                // SAFETY: the object was made by PyBytes_FromStringAndSize.
                Ok(o) => self.obj = Some((unsafe { o.cast_into_unchecked() }, len)),
                Err(e) => {
                    self.err = Some(e);
                    return None;
                }
            }
            self.err = None;
        }
        let (obj, _) = self.obj.as_ref()?;
        // SAFETY: `obj` is a `bytes` of `len` bytes that no Python code has
        // seen yet (made above, or by an earlier try of this read): its
        // buffer is `len` writable bytes, written only through this slice
        // until the object is handed out.
        Some(unsafe {
            let p = pyo3::ffi::PyBytes_AsString(obj.as_ptr());
            std::slice::from_raw_parts_mut(p.cast(), len)
        })
    }

    fn filled(&mut self, _len: usize) {}
}
