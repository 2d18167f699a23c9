//! The panic boundary of every exported function: runs its body, turns an
//! error into a status code plus the thread's last-error message, and a
//! Rust panic into `MEMSHELF_ERR_INTERNAL` (no panic crosses into C).

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::status::memshelf_status::{self, *};
use crate::status::{Result, set_last_error};

/// The panic boundary: runs `body`, turns its error into a status code plus
/// last-error message, and a panic into `MEMSHELF_ERR_INTERNAL`.
#[inline(always)]
pub(crate) fn guard(body: impl FnOnce() -> Result<memshelf_status>) -> memshelf_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (Rust panic): {what}"));
            MEMSHELF_ERR_INTERNAL
        }
    }
}

/// Runs `body` for a function without a status (close, free): a panic is
/// recorded as the last error and swallowed.
pub(crate) fn guard_void(body: impl FnOnce()) {
    guard(|| {
        body();
        Ok(MEMSHELF_OK)
    });
}
