//! Key iteration: an iterator handle that copies one key per call into the
//! caller's buffer.

use std::sync::Mutex;

use engine::Keys;

use crate::cache::{handle, memshelf_cache};
use crate::guard::{guard, guard_void};
use crate::ptr::{bytes, bytes_mut, required, store};
use crate::status::Failure;
use crate::status::memshelf_status::{self, *};

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
        // SAFETY: `out` was checked non-NULL by `required` above and is valid
        // for writing one aligned value of its type (the `# Safety` promise
        // above).
        unsafe { store(out, std::ptr::null_mut()) };
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        // SAFETY: `prefix` is readable for `prefix_len` bytes (the `# Safety`
        // promise above); `bytes` refuses NULL with a non-zero length and a
        // length over isize::MAX, and bytes need no alignment.
        let prefix = unsafe { bytes(prefix, prefix_len, "prefix") }?;
        let it = Box::new(memshelf_keys {
            state: Mutex::new(KeysState {
                keys: c.keys(Some(prefix)),
                pending: None,
            }),
        });
        // SAFETY: `out` was checked non-NULL by `required` above and is valid
        // for writing one aligned value of its type (the `# Safety` promise
        // above).
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
        // SAFETY: `buf` is writable for `buf_len` bytes, used by nothing else
        // during the call (the `# Safety` promise above); `bytes_mut` refuses
        // NULL with a non-zero length and a length over isize::MAX, and bytes
        // need no alignment.
        let out = unsafe { bytes_mut(buf, buf_len, "buf") }?;
        // SAFETY: `it` is non-NULL (checked above) and, by the `# Safety`
        // promise, a live iterator: a `Box<memshelf_keys>` from
        // `memshelf_keys_open` (aligned, initialised) not freed during this
        // call. Only a shared reference is made; its Mutex serialises threads.
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
            // SAFETY: `key_len` was checked non-NULL by `required` above and is
            // valid for writing one aligned value of its type (the `# Safety`
            // promise above).
            unsafe { store(key_len, 0) };
            return Ok(MEMSHELF_MISS);
        };
        // SAFETY: `key_len` was checked non-NULL by `required` above and is
        // valid for writing one aligned value of its type (the `# Safety`
        // promise above).
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
            // SAFETY: `it` is non-NULL (checked above) and, by the
            // `# Safety` promise, an iterator from `memshelf_keys_open` (made
            // by `Box::into_raw`) not yet freed and used by no other thread,
            // so rebuilding the Box frees it exactly once.
            drop(unsafe { Box::from_raw(it) });
        }
    })
}
