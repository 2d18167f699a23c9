//! get_or_set's arguments, and the lease object the asyncio API holds
//! while an async factory runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use memshelf::{GetOrSetOptions, Ttl};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::codec::Codec;
use crate::convert::{IntoPy, duration_of, opt_duration, owned_bytes, tags_of, ttl_of, with_bytes};

pub(crate) const FILL_HIT: u8 = 0;
pub(crate) const FILL_ABSENT: u8 = 1;
pub(crate) const FILL_LEAD: u8 = 2;
pub(crate) const FILL_WAIT: u8 = 3;

/// The converted arguments of get_or_set.
pub(crate) struct FillArgs {
    pub(crate) key: Vec<u8>,
    pub(crate) ttl: Ttl,
    lease: Duration,
    grace: Option<Duration>,
    negative_ttl: Option<Duration>,
    tags: Vec<Vec<u8>>,
}

impl FillArgs {
    pub(crate) fn parse(
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
        lease: Option<&Bound<'_, PyAny>>,
        grace: Option<&Bound<'_, PyAny>>,
        negative_ttl: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<FillArgs> {
        let key = owned_bytes(key, "key")?;
        let ttl = ttl_of(py, ttl)?;
        let lease = match lease {
            Some(l) if !l.is_none() => duration_of(py, l, "lease")?,
            _ => GetOrSetOptions::default().lease,
        };
        let grace = opt_duration(py, grace, "grace")?;
        let negative_ttl = opt_duration(py, negative_ttl, "negative_ttl")?;
        let tags = tags_of(tags)?;
        Ok(FillArgs {
            key,
            ttl,
            lease,
            grace,
            negative_ttl,
            tags,
        })
    }

    /// The tags as slices, for [`opts`](Self::opts).
    pub(crate) fn tag_refs(&self) -> Vec<&[u8]> {
        self.tags.iter().map(Vec::as_slice).collect()
    }

    pub(crate) fn opts<'a>(&self, tags: &'a [&'a [u8]]) -> GetOrSetOptions<'a> {
        GetOrSetOptions {
            ttl: self.ttl,
            tags,
            lease: self.lease,
            grace: self.grace,
            negative_ttl: self.negative_ttl,
        }
    }
}

/// One get_or_set call of the asyncio API (`memshelf::FillCall`): passed
/// to every `_begin_fill` of the call, so the engine counts its wait once.
#[pyclass(frozen, module = "memshelf._memshelf", name = "_FillCall")]
#[derive(Default)]
pub(crate) struct FillCall(pub(crate) Mutex<memshelf::FillCall>);

#[pymethods]
impl FillCall {
    #[new]
    fn new() -> Self {
        FillCall::default()
    }
}

/// The right to compute one key's value (from `_begin_fill`): call
/// `fill(value)` once, or `release()` (also done when it is garbage
/// collected) to hand the lease to a waiter.
#[pyclass(frozen, module = "memshelf._memshelf")]
pub(crate) struct FillLease {
    lease: Mutex<Option<memshelf::FillLease>>,
    key: Vec<u8>,
    codec: Arc<Codec>,
}

impl FillLease {
    pub(crate) fn new(lease: memshelf::FillLease, key: Vec<u8>, codec: Arc<Codec>) -> Self {
        FillLease {
            lease: Mutex::new(Some(lease)),
            key,
            codec,
        }
    }

    fn take(&self) -> Option<memshelf::FillLease> {
        self.lease.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[pymethods]
impl FillLease {
    /// Stores `value` (encoded by the Cache's codec; None: a cached absence
    /// with negative_ttl, else nothing) and wakes the waiters. Returns
    /// whether it was stored (False when a delete, clear or tag
    /// invalidation voided the lease meanwhile). The lease is used up
    /// either way, also when encoding fails.
    ///
    /// ttl: the value's TTL (seconds or NEVER) instead of the one given to
    /// `_begin_fill` (None: that one). A bad ttl raises and leaves the
    /// lease active (a value the codec refuses uses it up).
    #[pyo3(signature = (value, ttl = None))]
    fn fill(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        // A bad ttl raises before the lease is used: it stays this caller's.
        let ttl = match ttl {
            Some(t) if !t.is_none() => Some(ttl_of(py, Some(t))?),
            _ => None,
        };
        let Some(lease) = self.take() else {
            return Err(PyRuntimeError::new_err(
                "this lease was already filled or released",
            ));
        };
        if value.is_none() {
            return lease.fill(None).py_err(py);
        }
        let enc = self.codec.encode(value, &self.key)?;
        with_bytes(&enc, "the factory's result", |b| match ttl {
            Some(t) => lease.fill_with_ttl(Some(b), t).py_err(py),
            None => lease.fill(Some(b)).py_err(py),
        })?
    }

    /// Gives the lease up without storing anything (a waiter takes over).
    fn release(&self) {
        drop(self.take());
    }

    /// Whether neither fill() nor release() was called yet.
    #[getter]
    fn active(&self) -> bool {
        self.lease
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}
