//! The `codec` option: how Python values become stored bytes and back.
//! `None`/"raw" stores bytes and str as they are; "pickle", "json" and user
//! objects go through their `dumps`/`loads` (the built-in ones are defined
//! in `memshelf/codecs.py`).

use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyString};

use crate::convert::{exception, type_name};

pub(crate) enum Codec {
    /// Values are bytes-like or str, stored as they are; reads give bytes.
    Raw,
    /// Values go through `dumps(value) -> bytes | str` and `loads(bytes)`.
    Object {
        /// "pickle", "json" or the object's `name` (else its type's name).
        name: String,
        /// What the `codec` property gives back ("pickle", or the object).
        shown: Py<PyAny>,
        dumps: Py<PyAny>,
        loads: Py<PyAny>,
    },
}

fn key_text(key: &[u8]) -> String {
    let k = String::from_utf8_lossy(&key[..key.len().min(80)]).into_owned();
    if key.len() > 80 { k + "..." } else { k }
}

/// Wraps an `Exception` raised by a codec in `memshelf.CodecError` (the
/// original as its `__cause__`); other errors (KeyboardInterrupt) pass.
fn codec_error(py: Python<'_>, err: PyErr, msg: String) -> PyErr {
    if !err.is_instance_of::<PyException>(py) {
        return err;
    }
    let e = exception(py, "CodecError", format!("{msg}: {}", err.value(py)));
    e.set_cause(py, Some(err));
    e
}

impl Codec {
    pub(crate) fn from_option(py: Python<'_>, codec: Option<&Bound<'_, PyAny>>) -> PyResult<Codec> {
        let Some(codec) = codec.filter(|c| !c.is_none()) else {
            return Ok(Codec::Raw);
        };
        let obj = if let Ok(s) = codec.cast::<PyString>() {
            match s.to_str()? {
                "raw" => return Ok(Codec::Raw),
                "pickle" => py.import("memshelf.codecs")?.getattr("PICKLE")?,
                "json" => py.import("memshelf.codecs")?.getattr("JSON")?,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "unknown codec {other:?}: expected None, \"raw\", \"pickle\", \"json\" \
                         or an object with dumps() and loads()"
                    )));
                }
            }
        } else {
            codec.clone()
        };
        let method = |m: &str| -> PyResult<Py<PyAny>> {
            match obj.getattr(m) {
                Ok(f) if f.is_callable() => Ok(f.unbind()),
                _ => Err(PyTypeError::new_err(format!(
                    "codec must be None, \"raw\", \"pickle\", \"json\" or an object with \
                     callable dumps() and loads(); {} has no callable {m}()",
                    type_name(&obj)
                ))),
            }
        };
        let (dumps, loads) = (method("dumps")?, method("loads")?);
        let name = match obj.getattr("name").and_then(|n| n.extract::<String>()) {
            Ok(n) => n,
            Err(_) => type_name(&obj),
        };
        let shown = if codec.is_instance_of::<PyString>() {
            codec.clone().unbind()
        } else {
            obj.unbind()
        };
        Ok(Codec::Object {
            name,
            shown,
            dumps,
            loads,
        })
    }

    /// `None` for raw, else "pickle"/"json"/the user's object.
    pub(crate) fn shown<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        match self {
            Codec::Raw => PyString::new(py, "raw").into_any(),
            Codec::Object { shown, .. } => shown.bind(py).clone(),
        }
    }

    pub(crate) fn is_raw(&self) -> bool {
        matches!(self, Codec::Raw)
    }

    /// The bytes-like (or str) object to store for `value`.
    pub(crate) fn encode<'py>(
        &self,
        value: &Bound<'py, PyAny>,
        key: &[u8],
    ) -> PyResult<Bound<'py, PyAny>> {
        let Codec::Object { name, dumps, .. } = self else {
            return Ok(value.clone());
        };
        let py = value.py();
        let out = dumps.bind(py).call1((value,)).map_err(|e| {
            codec_error(
                py,
                e,
                format!(
                    "cannot encode a value of type {} for key {:?} with the {name} codec",
                    type_name(value),
                    key_text(key)
                ),
            )
        })?;
        if out.is_instance_of::<PyBytes>()
            || out.is_instance_of::<PyString>()
            || out.is_instance_of::<PyByteArray>()
            || out.is_instance_of::<PyMemoryView>()
        {
            Ok(out)
        } else {
            Err(exception(
                py,
                "CodecError",
                format!(
                    "the {name} codec's dumps() returned {}, expected bytes or str",
                    type_name(&out)
                ),
            ))
        }
    }

    /// The Python value of stored bytes.
    pub(crate) fn decode<'py>(
        &self,
        data: Bound<'py, PyBytes>,
        key: &[u8],
    ) -> PyResult<Bound<'py, PyAny>> {
        let Codec::Object { name, loads, .. } = self else {
            return Ok(data.into_any());
        };
        let py = data.py();
        loads.bind(py).call1((data,)).map_err(|e| {
            codec_error(
                py,
                e,
                format!(
                    "cannot decode the value of key {:?} with the {name} codec",
                    key_text(key)
                ),
            )
        })
    }
}
