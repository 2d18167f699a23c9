//! Building invalidation messages (SPEC section 6) with the engine's
//! builder.

use std::ffi::c_char;

use engine::message::{Message, Parts};

use crate::guard::guard;
use crate::ptr::{
    byte_strings, bytes, bytes_mut, memshelf_bytes, read_versioned, required, store, text,
};
use crate::status::Failure;
use crate::status::memshelf_status::{self, *};

/// The operation of an invalidation message (`memshelf_message.op`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum memshelf_message_op {
    /// `{"op":"del"}`: delete `keys`.
    MEMSHELF_MSG_DEL = 1,
    /// `{"op":"del_prefix"}`: delete every key starting with `arg`.
    MEMSHELF_MSG_DEL_PREFIX = 2,
    /// `{"op":"tag"}`: invalidate the tag `arg`.
    MEMSHELF_MSG_TAG = 3,
    /// `{"op":"clear"}`.
    MEMSHELF_MSG_CLEAR = 4,
    /// `{"op":"hb"}`: heartbeat.
    MEMSHELF_MSG_HEARTBEAT = 5,
}

/// An invalidation message to build with `memshelf_message_build`. Fill
/// with `memshelf_message_init`, then set the fields of its op.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct memshelf_message {
    /// `sizeof(memshelf_message)` as the caller compiled it.
    pub struct_size: usize,
    /// One of `memshelf_message_op`.
    pub op: i32,
    /// `MEMSHELF_MSG_DEL`: the keys (binary keys go to `keys_b64`).
    pub keys: *const memshelf_bytes,
    /// Number of `keys`.
    pub nkeys: usize,
    /// `MEMSHELF_MSG_DEL_PREFIX`: the prefix; `MEMSHELF_MSG_TAG`: the tag.
    pub arg: memshelf_bytes,
    /// NUL-terminated segment name, or NULL for every segment.
    pub cache: *const c_char,
    /// NUL-terminated origin (writer id plus per-boot nonce), or NULL.
    pub origin: *const c_char,
    /// Per-origin sequence number (only written when `origin` is set).
    pub seq: u64,
    /// Sender's unix time in ms; 0 = not written.
    pub ts_ms: u64,
}

/// Fills `msg` for `op` with no keys, no cache, no origin and no timestamp.
///
/// Errors: `MEMSHELF_ERR_NULL_ARGUMENT`, `MEMSHELF_ERR_INVALID_ARGUMENT`
/// (unknown op).
///
/// # Safety
/// `msg` NULL or writable for one `memshelf_message`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_message_init(
    msg: *mut memshelf_message,
    op: i32,
) -> memshelf_status {
    guard(|| {
        let msg = required(msg, "msg")?;
        parse_op(op)?;
        let value = memshelf_message {
            struct_size: size_of::<memshelf_message>(),
            op,
            keys: std::ptr::null(),
            nkeys: 0,
            arg: memshelf_bytes {
                data: std::ptr::null(),
                len: 0,
            },
            cache: std::ptr::null(),
            origin: std::ptr::null(),
            seq: 0,
            ts_ms: 0,
        };
        // SAFETY: `msg` was checked non-NULL by `required` above and is valid
        // for writing one aligned value of its type (the `# Safety` promise
        // above).
        unsafe { store(msg, value) };
        Ok(MEMSHELF_OK)
    })
}

fn parse_op(op: i32) -> Result<memshelf_message_op, Failure> {
    use memshelf_message_op::*;
    [
        MEMSHELF_MSG_DEL,
        MEMSHELF_MSG_DEL_PREFIX,
        MEMSHELF_MSG_TAG,
        MEMSHELF_MSG_CLEAR,
        MEMSHELF_MSG_HEARTBEAT,
    ]
    .into_iter()
    .find(|o| *o as i32 == op)
    .ok_or_else(|| Failure::invalid(format!("unknown message op {op}")))
}

/// Writes the JSON payload of `msg` (one UTF-8 JSON object, as the agent
/// expects) into `buf`, NUL-terminated, and its length without the NUL into
/// `*json_len`.
///
/// `MEMSHELF_ERR_BUFFER_TOO_SMALL`: `*json_len` = the JSON length; the
/// buffer needs `*json_len + 1` bytes; nothing was written. `buf` may be
/// NULL when `buf_len` is 0 to ask for the size.
///
/// Ownership: all inputs and `buf` stay the caller's. Thread-safe. Errors:
/// `MEMSHELF_ERR_NULL_ARGUMENT` (msg, json_len, NULL data with a non-zero
/// length), `MEMSHELF_ERR_INVALID_ARGUMENT` (unknown op, struct_size, a
/// cache or origin that is not UTF-8).
///
/// # Safety
/// `msg` NULL or a valid struct whose pointers are valid; `buf` writable for
/// `buf_len` bytes; `json_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_message_build(
    msg: *const memshelf_message,
    buf: *mut c_char,
    buf_len: usize,
    json_len: *mut usize,
) -> memshelf_status {
    use memshelf_message_op::*;
    guard(|| {
        if msg.is_null() {
            return Err(Failure::null("msg"));
        }
        let json_len = required(json_len, "json_len")?;
        // SAFETY: `msg` is non-NULL (checked above) and a valid
        // `memshelf_message` of its `struct_size` bytes (the `# Safety`
        // promise); `read_versioned` reads it unaligned and checks
        // `struct_size` before reading past its first field.
        let m = unsafe { read_versioned(msg, "memshelf_message") }?;
        // SAFETY: `buf` is writable for `buf_len` bytes, used by nothing else
        // during the call (the `# Safety` promise above); `bytes_mut` refuses
        // NULL with a non-zero length and a length over isize::MAX, and bytes
        // need no alignment.
        let out = unsafe { bytes_mut(buf.cast::<u8>(), buf_len, "buf") }?;
        // SAFETY: `m.arg` is a byte string of the valid message the
        // `# Safety` promise gives ("whose pointers are valid"): `data` is
        // readable for `len` bytes during this call; `bytes` refuses NULL with
        // a non-zero length and a length over isize::MAX.
        let arg = || unsafe { bytes(m.arg.data, m.arg.len, "arg") };
        let keys = match parse_op(m.op)? {
            // SAFETY: `m.keys` and `m.nkeys` come from the valid message the
            // `# Safety` promise gives: NULL or `m.nkeys` readable, aligned
            // `memshelf_bytes`, each readable for its length; `byte_strings`
            // refuses NULL with a count and an array past isize::MAX.
            MEMSHELF_MSG_DEL => Some(unsafe { byte_strings(m.keys, m.nkeys, "keys") }?),
            _ => None,
        };
        let (prefix, tag) = match parse_op(m.op)? {
            MEMSHELF_MSG_DEL_PREFIX => (Some(arg()?), None),
            MEMSHELF_MSG_TAG => (None, Some(arg()?)),
            _ => (None, None),
        };
        let bad = MEMSHELF_ERR_INVALID_ARGUMENT;
        let cache = (!m.cache.is_null())
            // SAFETY: `m.cache` is non-NULL (checked here) and, as a pointer
            // of the valid message the `# Safety` promise gives,
            // NUL-terminated and valid during this call; `text` checks UTF-8.
            .then(|| unsafe { text(m.cache, "cache", bad) })
            .transpose()?;
        let origin = (!m.origin.is_null())
            // SAFETY: `m.origin` is non-NULL (checked here) and, as a pointer
            // of the valid message the `# Safety` promise gives,
            // NUL-terminated and valid during this call; `text` checks UTF-8.
            .then(|| unsafe { text(m.origin, "origin", bad) })
            .transpose()?;
        // The op's wire name, the rules and the encoding are the engine's.
        let parts = Parts {
            op: match parse_op(m.op)? {
                MEMSHELF_MSG_DEL => "del",
                MEMSHELF_MSG_DEL_PREFIX => "del_prefix",
                MEMSHELF_MSG_TAG => "tag",
                MEMSHELF_MSG_CLEAR => "clear",
                MEMSHELF_MSG_HEARTBEAT => "hb",
            },
            keys,
            prefix,
            tag,
            cache,
            origin,
            seq: origin.map(|_| m.seq),
            ts: (m.ts_ms != 0).then_some(m.ts_ms),
        };
        let json = Message::from_parts(&parts)?.to_json()?;
        // SAFETY: `json_len` was checked non-NULL by `required` above and is
        // valid for writing one aligned value of its type (the `# Safety`
        // promise above).
        unsafe { store(json_len, json.len()) };
        if json.len() >= out.len() {
            return Err(Failure::new(
                MEMSHELF_ERR_BUFFER_TOO_SMALL,
                format!(
                    "the message needs {} bytes with its NUL, the buffer has {buf_len}",
                    json.len() + 1
                ),
            ));
        }
        out[..json.len()].copy_from_slice(json.as_bytes());
        out[json.len()] = 0;
        Ok(MEMSHELF_OK)
    })
}
