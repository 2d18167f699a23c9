//! The Python module `memshelf._memshelf`: a thin translation of the
//! engine's API. Types are converted in `convert` (errors in one place,
//! `convert::error_to_py`); values pass through the Cache's `codec`; all
//! cache logic lives in the `memshelf` crate.

mod cache;
mod codec;
mod convert;
mod fill;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use convert::{IntoPy, owned_bytes, tags_of};

/// Removes segment `name` (processes attached keep their mapping until
/// they close it). Raises NotFound if it does not exist.
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
    use memshelf::message::{Message, Parts};
    let keys = keys
        .filter(|k| !k.is_none())
        .map(|k| tags_of(Some(k)))
        .transpose()?;
    let prefix = prefix.map(|p| owned_bytes(p, "prefix")).transpose()?;
    let tag = tag.map(|t| owned_bytes(t, "tag")).transpose()?;
    let parts = Parts {
        op,
        keys: keys.as_ref().map(|k| k.iter().map(Vec::as_slice).collect()),
        prefix: prefix.as_deref(),
        tag: tag.as_deref(),
        cache: cache.as_deref(),
        origin: origin.as_deref(),
        seq,
        ts,
    };
    let json = Message::from_parts(&parts)
        .and_then(|m| m.to_json())
        .py_err(py)?;
    Ok(PyBytes::new(py, json.as_bytes()))
}

#[pymodule]
fn _memshelf(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<cache::Cache>()?;
    m.add_class::<fill::FillLease>()?;
    m.add_class::<fill::FillCall>()?;
    m.add("NEVER", Bound::new(m.py(), convert::Never)?)?;
    m.add_function(wrap_pyfunction!(unlink, m)?)?;
    m.add_function(wrap_pyfunction!(parse_size, m)?)?;
    m.add_function(wrap_pyfunction!(invalidation_message, m)?)?;
    m.add("LAYOUT_VERSION", memshelf::LAYOUT_VERSION)?;
    m.add("MAX_KEY_LEN", memshelf::MAX_KEY_LEN)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
