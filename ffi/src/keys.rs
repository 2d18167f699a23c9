//! Key iteration: an iterator handle that copies one key per call into the
//! caller's buffer.

use std::sync::Mutex;

use engine::Keys;

use crate::cache::{handle, memshelf_cache};
use crate::status::memshelf_status::{self, *};
use crate::status::{Failure, bytes, bytes_mut, guard, guard_void, required, store};

/// An iterator over a segment's live keys. Opaque: create with
/// `memshelf_keys_open`, release with `memshelf_keys_free`. Best effort
/// under concurrent writes: a key written or removed meanwhile may or may
/// not appear. Safe to call from several threads (calls are serialised);
/// each key is returned once.
pub struct memshelf_keys {
    state: Mutex<KeysState>,
}

struct KeysState {
    keys: Keys,
    /// A key that did not fit the caller's buffer, returned by the next call.
    pending: Option<Vec<u8>>,
}

/// Starts iterating the live keys that begin with `prefix` (`prefix_len` 0:
/// every key) and stores a new iterator in `*out`.
///
/// Ownership: the caller owns the iterator and must release it with
/// `memshelf_keys_free`. It holds its own reference to the segment, so it
/// stays valid after `memshelf_close(cache)`. `prefix` is copied.
///
/// Errors: `MEMSHELF_ERR_NULL_ARGUMENT` (cache, out, or a NULL prefix with a
/// non-zero length). On error `*out` is set to NULL.
///
/// # Safety
/// `cache` NULL or an open handle; `prefix` readable for `prefix_len`
/// bytes; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_keys_open(
    cache: *const memshelf_cache,
    prefix: *const u8,
    prefix_len: usize,
    out: *mut *mut memshelf_keys,
) -> memshelf_status {
    guard(|| {
        let out = required(out, "out")?;
        // SAFETY (all): the caller's promises above.
        unsafe { store(out, std::ptr::null_mut()) };
        let c = unsafe { handle(cache) }?;
        let prefix = unsafe { bytes(prefix, prefix_len, "prefix") }?;
        let it = Box::new(memshelf_keys {
            state: Mutex::new(KeysState {
                keys: c.keys(Some(prefix)),
                pending: None,
            }),
        });
        unsafe { store(out, Box::into_raw(it)) };
        Ok(MEMSHELF_OK)
    })
}

/// Copies the next key into `buf` (`buf_len` bytes) and its length into
/// `*key_len`.
///
/// Returns `MEMSHELF_OK`, `MEMSHELF_MISS` when there are no more keys
/// (`*key_len` = 0), or `MEMSHELF_ERR_BUFFER_TOO_SMALL` (`*key_len` = the
/// bytes needed; the key is kept and returned by the next call, so retry
/// with a buffer of at least that size; `MEMSHELF_MAX_KEY_LEN` bytes always
/// suffice).
///
/// Errors: `MEMSHELF_ERR_NULL_ARGUMENT` (it, key_len, or a NULL buf with a
/// non-zero length).
///
/// # Safety
/// `it` NULL or a live iterator; `buf` writable for `buf_len` bytes;
/// `key_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_keys_next(
    it: *mut memshelf_keys,
    buf: *mut u8,
    buf_len: usize,
    key_len: *mut usize,
) -> memshelf_status {
    guard(|| {
        if it.is_null() {
            return Err(Failure::null("the iterator"));
        }
        let key_len = required(key_len, "key_len")?;
        // SAFETY (all): the caller's promises above; the iterator is only
        // accessed through its mutex.
        let out = unsafe { bytes_mut(buf, buf_len, "buf") }?;
        let it = unsafe { &*it };
        let mut st = it
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = match st.pending.take() {
            Some(k) => Some(k),
            None => st.keys.next(),
        };
        let Some(key) = next else {
            unsafe { store(key_len, 0) };
            return Ok(MEMSHELF_MISS);
        };
        unsafe { store(key_len, key.len()) };
        if key.len() > out.len() {
            let msg = format!(
                "the key needs {} bytes, the buffer has {buf_len}",
                key.len()
            );
            st.pending = Some(key);
            return Err(Failure::new(MEMSHELF_ERR_BUFFER_TOO_SMALL, msg));
        }
        out[..key.len()].copy_from_slice(&key);
        Ok(MEMSHELF_OK)
    })
}

/// Releases an iterator. NULL is a no-op.
///
/// Ownership: `it` is invalid after the call; no other thread may be using
/// it.
///
/// # Safety
/// `it` NULL or an iterator from `memshelf_keys_open` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_keys_free(it: *mut memshelf_keys) {
    guard_void(|| {
        if !it.is_null() {
            // SAFETY: made by Box::into_raw in memshelf_keys_open, freed
            // once by the caller's promise.
            drop(unsafe { Box::from_raw(it) });
        }
    })
}
