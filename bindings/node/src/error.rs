//! The one place where engine errors become JavaScript exceptions.
//!
//! Bad input (a name, key, value, TTL or argument out of range) becomes a
//! `RangeError`; everything else an `Error`. Both carry `code`, the engine's
//! [`kind_name`](memshelf::Error::kind_name) (`"KeyTooLong"`, `"Closed"`,
//! `"NotFound"`...). Wrong JavaScript types are `TypeError`s thrown by the
//! JavaScript wrapper before the addon is called.

use memshelf::Error;
use napi::{Env, JsError, JsRangeError};

/// Converts an engine error into a napi error that throws the right
/// JavaScript error object (class, message and `code`).
pub fn to_js(env: &Env, e: Error) -> napi::Error {
    let range = matches!(
        e,
        Error::InvalidName { .. }
            | Error::KeyTooLong { .. }
            | Error::ValueTooLarge { .. }
            | Error::InvalidTtl(_)
            | Error::InvalidArgument(_)
    );
    let inner = napi::Error::new(e.kind_name(), e.to_string());
    let value = if range {
        JsRangeError::from(inner).into_unknown(*env)
    } else {
        JsError::from(inner).into_unknown(*env)
    };
    napi::Error::from(value)
}

/// Extension to convert `memshelf::Result` at call sites with `?`.
pub trait OrThrow<T> {
    /// Maps the engine's error with [`to_js`].
    fn or_throw(self, env: &Env) -> napi::Result<T>;
}

impl<T> OrThrow<T> for memshelf::Result<T> {
    fn or_throw(self, env: &Env) -> napi::Result<T> {
        self.map_err(|e| to_js(env, e))
    }
}

/// An argument out of its range, detected while converting a JavaScript
/// value (for example a fractional capacity).
pub fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}
