//! Opening, closing and unlinking segments, and the single-key operations.

use std::ffi::c_char;
use std::time::Duration;

use engine::{Cache, Expiry, OpenOptions, PutOptions, ReadInto, Ttl};

use crate::MEMSHELF_ABSENT;
use crate::guard::{guard, guard_void};
use crate::ptr::{
    byte_strings, bytes, bytes_mut, memshelf_bytes, read_versioned_since, required, store, text,
};
use crate::status::memshelf_status::{self, *};
use crate::status::{Failure, Result};

/// An open segment. Opaque: create with `memshelf_open`, release with
/// `memshelf_close`. One handle may be used from any number of threads at
/// once.
pub struct memshelf_cache {
    pub(crate) cache: Cache,
}

/// Options for `memshelf_open`. Fill with `memshelf_options_init` (which
/// sets `struct_size` and the defaults), then change what you need. The
/// struct only grows at its end, and `struct_size` tells the library which
/// version the caller was compiled against.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct memshelf_options {
    /// `sizeof(memshelf_options)` as the caller compiled it.
    pub struct_size: usize,
    /// Total bytes of the segment, fixed at creation (ignored on attach).
    /// 0 = the default, 64 MiB.
    pub capacity: u64,
    /// Largest value accepted, fixed at creation. 0 = the default, 1 MiB
    /// (lowered to what the segment can hold).
    pub max_value_size: u64,
    /// Default TTL in ms for puts that give none, fixed at creation.
    /// 0 (or `MEMSHELF_TTL_NEVER`) = no default TTL.
    pub default_ttl_ms: u64,
    /// Spread every TTL uniformly by plus or minus this fraction (0 to 0.5).
    pub ttl_jitter: f64,
    /// Permission bits of a created segment. 0 = the default, 0600.
    pub mode: u32,
    /// Non-zero (default): create the segment if absent, else attach.
    /// 0: attach only; a missing segment is `MEMSHELF_ERR_NOT_FOUND`.
    pub create: u32,
    /// NULL (default): the POSIX shared-memory object `/memshelf.<name>`.
    /// Otherwise the path of a file to map instead (tmpfs or disk); only
    /// read during `memshelf_open`.
    pub path: *const c_char,
    /// Key + value bytes of a typical entry, for which the index is sized,
    /// fixed at creation: 4 index slots of 8 bytes per entry of this size.
    /// 0 = the default, 128. (A caller compiled against a header without
    /// this field, with a smaller `struct_size`, gets the default.)
    pub expected_entry_size: u64,
}

pub(crate) fn ttl(ms: u64) -> Result<Ttl> {
    Ok(Ttl::from_millis(ms)?)
}

/// # Safety
/// `p` must be NULL or a handle from `memshelf_open` not yet closed.
#[inline(always)]
pub(crate) unsafe fn handle<'a>(p: *const memshelf_cache) -> Result<&'a Cache> {
    if p.is_null() {
        return Err(Failure::null("the cache handle"));
    }
    // SAFETY: `p` is non-NULL (checked above) and, by the `# Safety` promise,
    // a live handle: a `Box<memshelf_cache>` from `memshelf_open` (so aligned
    // and initialised) that only `memshelf_close` frees, never during a call
    // that uses it. Only a shared reference is made: `Cache` is `Sync`.
    Ok(unsafe { &(*p).cache })
}

/// # Safety
/// `tags` must be NULL or point to `ntags` readable `memshelf_bytes`, each
/// valid as `bytes()` requires.
pub(crate) unsafe fn tag_list<'a>(
    tags: *const memshelf_bytes,
    ntags: usize,
) -> Result<Vec<&'a [u8]>> {
    if ntags > engine::MAX_TAGS {
        // Refused before reading the array, so an absurd count cannot make
        // the library read past the caller's memory.
        return Err(Failure::invalid(format!(
            "{ntags} tags given: an entry carries at most {}",
            engine::MAX_TAGS
        )));
    }
    // SAFETY: `tags` is NULL or points to `ntags` readable, aligned
    // `memshelf_bytes`, each readable for its length (the `# Safety` promise
    // above); `byte_strings` refuses NULL with a count and an array past
    // isize::MAX.
    unsafe { byte_strings(tags, ntags, "tags") }
}

/// Fills `opts` with the defaults: `struct_size = sizeof(memshelf_options)`,
/// capacity 64 MiB, create-or-attach, mode 0600, no default TTL, no jitter,
/// max_value_size 1 MiB, POSIX shared memory.
///
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT` when `opts` is NULL.
///
/// # Safety
/// `opts` must be NULL or point to writable memory for one `memshelf_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_options_init(opts: *mut memshelf_options) -> memshelf_status {
    guard(|| {
        let opts = required(opts, "opts")?;
        let value = memshelf_options {
            struct_size: size_of::<memshelf_options>(),
            capacity: engine::DEFAULT_CAPACITY,
            max_value_size: 0,
            default_ttl_ms: 0,
            ttl_jitter: 0.0,
            mode: 0o600,
            create: 1,
            path: std::ptr::null(),
            expected_entry_size: 0,
        };
        // SAFETY: `opts` was checked non-NULL by `required` above and is valid
        // for writing one aligned value of its type (the `# Safety` promise
        // above).
        unsafe { store(opts, value) };
        Ok(MEMSHELF_OK)
    })
}

/// Opens (creates or attaches) the segment `name` and stores a new handle in
/// `*out`.
///
/// `name`: NUL-terminated, 1-200 characters of `[A-Za-z0-9._-]`, not
/// starting with '.' (also when `path` is set: it names the segment in
/// messages). `opts`: NULL for the defaults, else initialised with
/// `memshelf_options_init`; only read during the call.
///
/// Ownership: the caller owns the handle and must release it with
/// `memshelf_close`. The handle is thread-safe: share it between threads.
///
/// Errors: `MEMSHELF_ERR_NULL_ARGUMENT` (name or out NULL),
/// `MEMSHELF_ERR_INVALID_NAME`, `MEMSHELF_ERR_INVALID_ARGUMENT` (capacity,
/// jitter, mode, struct_size, non-UTF-8 path), `MEMSHELF_ERR_INVALID_TTL`,
/// `MEMSHELF_ERR_NOT_FOUND` (create = 0 and no segment),
/// `MEMSHELF_ERR_INCOMPATIBLE_SEGMENT`, `MEMSHELF_ERR_NO_SPACE`,
/// `MEMSHELF_ERR_IO`, `MEMSHELF_ERR_TIMEOUT`. On error `*out` is set to NULL.
///
/// # Safety
/// `name` must be NULL or NUL-terminated; `opts` NULL or a valid
/// `memshelf_options` of its `struct_size`; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_open(
    name: *const c_char,
    opts: *const memshelf_options,
    out: *mut *mut memshelf_cache,
) -> memshelf_status {
    guard(|| {
        let out = required(out, "out")?;
        // SAFETY: `out` was checked non-NULL by `required` above and is valid
        // for writing one aligned value of its type (the `# Safety` promise
        // above).
        unsafe { store(out, std::ptr::null_mut()) };
        // SAFETY: `name` is NULL or a NUL-terminated string that stays valid
        // during the call (the `# Safety` promise above); `text` refuses NULL
        // and checks UTF-8.
        let name = unsafe { text(name, "name", MEMSHELF_ERR_INVALID_NAME) }?;
        let mut builder = OpenOptions::new();
        if !opts.is_null() {
            // SAFETY: `opts` is non-NULL (checked above) and a valid
            // `memshelf_options` of its `struct_size` bytes (the `# Safety`
            // promise); `read_versioned` reads it unaligned and checks
            // `struct_size` before reading past its first field.
            let o = unsafe {
                read_versioned_since(
                    opts,
                    "memshelf_options",
                    std::mem::offset_of!(memshelf_options, expected_entry_size),
                )
            }?;
            if o.capacity != 0 {
                builder.capacity(o.capacity);
            }
            if o.max_value_size != 0 {
                builder.max_value_size(usize::try_from(o.max_value_size).unwrap_or(usize::MAX));
            }
            if o.default_ttl_ms != 0 && o.default_ttl_ms != u64::MAX {
                builder.ttl(Duration::from_millis(o.default_ttl_ms));
            }
            builder.ttl_jitter(o.ttl_jitter);
            builder.mode(if o.mode == 0 { 0o600 } else { o.mode });
            builder.create(o.create != 0);
            if o.expected_entry_size != 0 {
                builder.expected_entry_size(o.expected_entry_size);
            }
            if !o.path.is_null() {
                // SAFETY: `o.path` is non-NULL (checked above) and, as a field
                // of the valid `memshelf_options` the `# Safety` promise
                // gives, NUL-terminated and valid during this call; `text`
                // checks UTF-8.
                let path = unsafe { text(o.path, "path", MEMSHELF_ERR_INVALID_ARGUMENT) }?;
                builder.path(path);
            }
        }
        let cache = builder.open(name)?;
        let handle = Box::into_raw(Box::new(memshelf_cache { cache }));
        // SAFETY: `out` was checked non-NULL by `required` above and is valid
        // for writing one aligned value of its type (the `# Safety` promise
        // above).
        unsafe { store(out, handle) };
        Ok(MEMSHELF_OK)
    })
}

/// Detaches from the segment and frees the handle. The segment itself stays
/// (see `memshelf_unlink`). NULL is a no-op.
///
/// Ownership: `cache` is invalid after the call (like `fclose`): the caller
/// must make sure no other thread is using it or uses it afterwards. Key
/// iterators opened on it stay valid (they hold their own reference).
///
/// # Safety
/// `cache` must be NULL or a handle from `memshelf_open` not yet closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_close(cache: *mut memshelf_cache) {
    guard_void(|| {
        if !cache.is_null() {
            // SAFETY: `cache` is non-NULL (checked above) and, by the
            // `# Safety` promise, a handle from `memshelf_open` (made by
            // `Box::into_raw`) not yet closed and used by no other thread, so
            // rebuilding the Box frees it exactly once.
            drop(unsafe { Box::from_raw(cache) });
        }
    })
}

/// Removes the segment `name` (`/dev/shm/memshelf.<name>`). Processes still
/// attached keep working on their mapping until they close it.
///
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT`,
/// `MEMSHELF_ERR_INVALID_NAME`, `MEMSHELF_ERR_NOT_FOUND` (no such segment),
/// `MEMSHELF_ERR_IO`.
///
/// # Safety
/// `name` must be NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_unlink(name: *const c_char) -> memshelf_status {
    guard(|| {
        // SAFETY: `name` is NULL or a NUL-terminated string that stays valid
        // during the call (the `# Safety` promise above); `text` refuses NULL
        // and checks UTF-8.
        let name = unsafe { text(name, "name", MEMSHELF_ERR_INVALID_NAME) }?;
        engine::unlink(name)?;
        Ok(MEMSHELF_OK)
    })
}

/// Removes a file-backed segment (opened with `memshelf_options.path`).
///
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT`,
/// `MEMSHELF_ERR_INVALID_ARGUMENT` (not UTF-8), `MEMSHELF_ERR_IO`.
///
/// # Safety
/// `path` must be NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_unlink_path(path: *const c_char) -> memshelf_status {
    guard(|| {
        // SAFETY: `path` is NULL or a NUL-terminated string that stays valid
        // during the call (the `# Safety` promise above); `text` refuses NULL
        // and checks UTF-8.
        let path = unsafe { text(path, "path", MEMSHELF_ERR_INVALID_ARGUMENT) }?;
        engine::unlink_path(path)?;
        Ok(MEMSHELF_OK)
    })
}

/// Reads the value of `key` into the caller's buffer `buf` of `buf_len`
/// bytes and stores its length in `*value_len`.
///
/// Returns `MEMSHELF_OK` (value in `buf[0..*value_len]`), `MEMSHELF_MISS`
/// (no live entry; `*value_len` = 0), or `MEMSHELF_ERR_BUFFER_TOO_SMALL`
/// (`*value_len` = the bytes needed, nothing copied: retry with a larger
/// buffer; `buf` may be NULL when `buf_len` is 0 to ask for the size, at
/// the cost of a lookup). The value is always a complete value of one put.
/// It is copied straight into `buf`, so on `MEMSHELF_MISS` the bytes of
/// `buf` are unspecified (a read may have begun copying an entry that
/// turned out expired or rewritten); bytes past the value are never
/// written. `key`
/// may lie inside `buf` (it is copied first then).
///
/// Ownership: the caller owns `buf`; the library does not keep it.
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT` (cache, value_len, or a
/// NULL key/buf with a non-zero length), `MEMSHELF_ERR_KEY_TOO_LONG` (0 or
/// more than `MEMSHELF_MAX_KEY_LEN` bytes).
///
/// # Safety
/// `cache` must be NULL or an open handle; `key` readable for `key_len`
/// bytes; `buf` writable for `buf_len` bytes; `value_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_get(
    cache: *const memshelf_cache,
    key: *const u8,
    key_len: usize,
    buf: *mut u8,
    buf_len: usize,
    value_len: *mut usize,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        let value_len = required(value_len, "value_len")?;
        // SAFETY: `key` is readable for `key_len` bytes (the `# Safety` promise
        // above); `bytes` refuses NULL with a non-zero length and a length over
        // isize::MAX, and bytes need no alignment.
        let key = unsafe { bytes(key, key_len, "key") }?;
        // A key inside `buf` (built in the buffer the value is read into) is
        // copied first: the value is copied straight into `buf`, and a read
        // that retries (the entry moved meanwhile) compares the key again.
        let (k0, b0) = (key.as_ptr() as usize, buf as usize);
        let shared = !key.is_empty() && buf_len > 0 && k0 < b0 + buf_len && b0 < k0 + key.len();
        let owned;
        let key = if shared {
            owned = key.to_vec();
            &owned[..]
        } else {
            key
        };
        // SAFETY: `buf` is writable for `buf_len` bytes, used by nothing else
        // during the call (the `# Safety` promise above; a key inside it was
        // copied above and is no longer read from it); `bytes_mut` refuses
        // NULL with a non-zero length and a length over isize::MAX, and bytes
        // need no alignment.
        let out = unsafe { bytes_mut(buf, buf_len, "buf") }?;
        let (status, len) = match c.read(key, out)? {
            ReadInto::Hit(n) => (MEMSHELF_OK, n),
            ReadInto::Miss => (MEMSHELF_MISS, 0),
            ReadInto::TooSmall(n) => {
                // SAFETY: `value_len` was checked non-NULL by `required` above
                // and is valid for writing one aligned value of its type (the
                // `# Safety` promise above).
                unsafe { store(value_len, n) };
                return Err(Failure::new(
                    MEMSHELF_ERR_BUFFER_TOO_SMALL,
                    format!("the value needs {n} bytes, the buffer has {buf_len}"),
                ));
            }
        };
        // SAFETY: `value_len` was checked non-NULL by `required` above and is
        // valid for writing one aligned value of its type (the `# Safety`
        // promise above).
        unsafe { store(value_len, len) };
        Ok(status)
    })
}

/// Looks up `nkeys` keys in one call (each counts as its single
/// `memshelf_get`; the batch overlaps the memory misses of successive
/// lookups). The values are packed one after another into `buf`: for key
/// `i`, `lens[i]` is its value's length (or `MEMSHELF_ABSENT` for a miss)
/// and `offsets[i]` where it starts in `buf`.
///
/// When `buf` is too small, returns `MEMSHELF_ERR_BUFFER_TOO_SMALL` with
/// `*needed` set to the bytes all the values took at that moment (retry
/// with at least that much; entries may change meanwhile), and `offsets` /
/// `lens` are unspecified. On success `*needed` (if not NULL) is the bytes
/// used.
///
/// Ownership: every buffer is the caller's. Thread-safe. Errors:
/// `MEMSHELF_ERR_NULL_ARGUMENT`, `MEMSHELF_ERR_KEY_TOO_LONG` (any key: then
/// nothing was looked up), `MEMSHELF_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `cache` NULL or an open handle; `keys` NULL or `nkeys` readable
/// `memshelf_bytes` (each readable for its length); `buf` writable for
/// `buf_len` bytes and overlapping none of the keys (values are copied
/// into it while later keys are still being looked up); `offsets` and
/// `lens` writable for `nkeys` entries; `needed` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_get_many(
    cache: *const memshelf_cache,
    keys: *const memshelf_bytes,
    nkeys: usize,
    buf: *mut u8,
    buf_len: usize,
    offsets: *mut usize,
    lens: *mut usize,
    needed: *mut usize,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        // SAFETY: `keys` is NULL or points to `nkeys` readable, aligned
        // `memshelf_bytes`, each readable for its length (the `# Safety`
        // promise above); `byte_strings` refuses NULL with a count and an array
        // past isize::MAX.
        let keys = unsafe { byte_strings(keys, nkeys, "keys") }?;
        // SAFETY: `buf` is writable for `buf_len` bytes, used by nothing else
        // during the call (the `# Safety` promise above); `bytes_mut` refuses
        // NULL with a non-zero length and a length over isize::MAX, and bytes
        // need no alignment.
        let out = unsafe { bytes_mut(buf, buf_len, "buf") }?;
        if nkeys > 0 {
            required(offsets, "offsets")?;
            required(lens, "lens")?;
        }
        // Each value is copied straight into its place in `buf` (one copy).
        let mut packed = Packed {
            out,
            used: 0,
            fits: true,
            len: 0,
        };
        c.get_many_into(&keys, &mut packed, |p, i, hit| {
            let (off, len) = if hit {
                let off = p.used;
                p.used += p.len;
                // `room` gave room exactly when this holds (it was asked
                // with this length last, with `used` and `fits` as now).
                p.fits = p.fits && p.used <= p.out.len();
                (off, p.len)
            } else {
                (0, MEMSHELF_ABSENT)
            };
            // SAFETY: `offsets` and `lens` are non-NULL (checked by `required`
            // above, as `nkeys > 0` when this runs) and writable for `nkeys`
            // aligned `size_t`s (the `# Safety` promise); `get_many_into`
            // calls this only for `i < nkeys`, so both writes stay inside.
            unsafe {
                offsets.add(i).write(off);
                lens.add(i).write(len);
            }
        })?;
        let (used, fits) = (packed.used, packed.fits);
        // SAFETY: `needed` is NULL or valid for writing one aligned value of
        // its type (the `# Safety` promise above); `store` does nothing for
        // NULL.
        unsafe { store(needed, used) };
        if fits {
            Ok(MEMSHELF_OK)
        } else {
            Err(Failure::new(
                MEMSHELF_ERR_BUFFER_TOO_SMALL,
                format!("the values need {used} bytes, the buffer has {buf_len}"),
            ))
        }
    })
}

/// `memshelf_get_many`'s sink: values back to back in the caller's
/// buffer, from offset 0; after the first value that does not fit, none is
/// copied (their lengths still count in `used`, the bytes needed).
struct Packed<'a> {
    out: &'a mut [u8],
    used: usize,
    fits: bool,
    /// The length of the value the last read validated.
    len: usize,
}

impl engine::ValueSink for Packed<'_> {
    fn room(&mut self, len: usize) -> Option<&mut [std::mem::MaybeUninit<u8>]> {
        let end = self.used.checked_add(len)?;
        if !self.fits || end > self.out.len() {
            return None;
        }
        let room = &mut self.out[self.used..end];
        // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and a
        // read writes only initialised bytes into a room (never
        // `MaybeUninit::uninit()`), so `out` stays initialised.
        Some(unsafe { &mut *(room as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) })
    }

    fn filled(&mut self, len: usize) {
        self.len = len;
    }
}

/// Inserts or replaces `key` with `value`.
///
/// `ttl_ms`: 0 = the segment's default TTL (none unless set at creation),
/// `MEMSHELF_TTL_NEVER` = never expires, else milliseconds. `tags`: NULL or
/// an array of `ntags` (at most `MEMSHELF_MAX_TAGS`) non-empty tags for
/// `memshelf_invalidate_tag`.
///
/// Ownership: all buffers stay the caller's; the library copies them.
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT`,
/// `MEMSHELF_ERR_KEY_TOO_LONG`, `MEMSHELF_ERR_VALUE_TOO_LARGE`,
/// `MEMSHELF_ERR_INVALID_TTL`, `MEMSHELF_ERR_INVALID_ARGUMENT` (tags). On
/// error nothing is stored.
///
/// # Safety
/// `cache` NULL or an open handle; `key`, `value` readable for their
/// lengths; `tags` NULL or `ntags` readable `memshelf_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_put(
    cache: *const memshelf_cache,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ms: u64,
    tags: *const memshelf_bytes,
    ntags: usize,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        // SAFETY: `key` is readable for `key_len` bytes (the `# Safety` promise
        // above); `bytes` refuses NULL with a non-zero length and a length over
        // isize::MAX, and bytes need no alignment.
        let key = unsafe { bytes(key, key_len, "key") }?;
        // SAFETY: `value` is readable for `value_len` bytes (the `# Safety`
        // promise above); `bytes` refuses NULL with a non-zero length and a
        // length over isize::MAX, and bytes need no alignment.
        let value = unsafe { bytes(value, value_len, "value") }?;
        if ntags == 0 && ttl_ms == 0 {
            c.put(key, value)?;
        } else {
            // SAFETY: `tags` is NULL or points to `ntags` readable, aligned
            // `memshelf_bytes`, each readable for its length (the `# Safety`
            // promise above); `tag_list` refuses more than `MEMSHELF_MAX_TAGS`
            // before reading any.
            let tags = unsafe { tag_list(tags, ntags) }?;
            let opts = PutOptions::ttl(ttl(ttl_ms)?).with_tags(&tags);
            c.put_with(key, value, &opts)?;
        }
        Ok(MEMSHELF_OK)
    })
}

/// Inserts `key` only if it has no live entry, atomically across processes.
/// `*inserted` (optional, may be NULL) receives whether it did. `ttl_ms` and
/// `tags` as for `memshelf_put`.
///
/// Ownership: buffers stay the caller's. Thread-safe. Errors: as
/// `memshelf_put`.
///
/// # Safety
/// As `memshelf_put`; `inserted` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_add(
    cache: *const memshelf_cache,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ms: u64,
    tags: *const memshelf_bytes,
    ntags: usize,
    inserted: *mut bool,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        // SAFETY: `key` is readable for `key_len` bytes (the `# Safety` promise
        // above); `bytes` refuses NULL with a non-zero length and a length over
        // isize::MAX, and bytes need no alignment.
        let key = unsafe { bytes(key, key_len, "key") }?;
        // SAFETY: `value` is readable for `value_len` bytes (the `# Safety`
        // promise above); `bytes` refuses NULL with a non-zero length and a
        // length over isize::MAX, and bytes need no alignment.
        let value = unsafe { bytes(value, value_len, "value") }?;
        // SAFETY: `tags` is NULL or points to `ntags` readable, aligned
        // `memshelf_bytes`, each readable for its length (the `# Safety`
        // promise above); `tag_list` refuses more than `MEMSHELF_MAX_TAGS`
        // before reading any.
        let tags = unsafe { tag_list(tags, ntags) }?;
        let opts = PutOptions::ttl(ttl(ttl_ms)?).with_tags(&tags);
        let done = c.add_with(key, value, &opts)?;
        // SAFETY: `inserted` is NULL or valid for writing one aligned value of
        // its type (the `# Safety` promise above); `store` does nothing for
        // NULL.
        unsafe { store(inserted, done) };
        Ok(MEMSHELF_OK)
    })
}

/// Removes `key`. `*existed` (optional, may be NULL) receives whether a live
/// entry was removed. Voids a get_or_set fill in flight for the key.
///
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT`,
/// `MEMSHELF_ERR_KEY_TOO_LONG`.
///
/// # Safety
/// `cache` NULL or an open handle; `key` readable for `key_len` bytes;
/// `existed` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_delete(
    cache: *const memshelf_cache,
    key: *const u8,
    key_len: usize,
    existed: *mut bool,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        // SAFETY: `key` is readable for `key_len` bytes (the `# Safety` promise
        // above); `bytes` refuses NULL with a non-zero length and a length over
        // isize::MAX, and bytes need no alignment.
        let key = unsafe { bytes(key, key_len, "key") }?;
        let was = c.delete(key)?;
        // SAFETY: `existed` is NULL or valid for writing one aligned value of
        // its type (the `# Safety` promise above); `store` does nothing for
        // NULL.
        unsafe { store(existed, was) };
        Ok(MEMSHELF_OK)
    })
}

/// Atomically adds `delta` to the ASCII decimal integer stored at `key` (a
/// missing key counts from 0) and stores the new value in `*new_value`
/// (optional, may be NULL). `ttl_ms`: 0 keeps an existing entry's expiry
/// (a new entry gets the default TTL); otherwise as `memshelf_put`, and it
/// resets the expiry.
///
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT`,
/// `MEMSHELF_ERR_KEY_TOO_LONG`, `MEMSHELF_ERR_INVALID_TTL`,
/// `MEMSHELF_ERR_NOT_AN_INTEGER` (the value is not an integer, or the sum
/// overflows; nothing is changed).
///
/// # Safety
/// `cache` NULL or an open handle; `key` readable for `key_len` bytes;
/// `new_value` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_incr(
    cache: *const memshelf_cache,
    key: *const u8,
    key_len: usize,
    delta: i64,
    ttl_ms: u64,
    new_value: *mut i64,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        // SAFETY: `key` is readable for `key_len` bytes (the `# Safety` promise
        // above); `bytes` refuses NULL with a non-zero length and a length over
        // isize::MAX, and bytes need no alignment.
        let key = unsafe { bytes(key, key_len, "key") }?;
        let n = c.incr_with(key, delta, ttl(ttl_ms)?)?;
        // SAFETY: `new_value` is NULL or valid for writing one aligned value of
        // its type (the `# Safety` promise above); `store` does nothing for
        // NULL.
        unsafe { store(new_value, n) };
        Ok(MEMSHELF_OK)
    })
}

/// Stores the remaining lifetime of `key` in `*ttl_ms`: milliseconds, or
/// `MEMSHELF_TTL_NEVER` for an entry without expiry. Returns `MEMSHELF_MISS`
/// (and `*ttl_ms` = 0) when the key has no live entry.
///
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT` (cache, ttl_ms, key),
/// `MEMSHELF_ERR_KEY_TOO_LONG`.
///
/// # Safety
/// `cache` NULL or an open handle; `key` readable for `key_len` bytes;
/// `ttl_ms` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_ttl(
    cache: *const memshelf_cache,
    key: *const u8,
    key_len: usize,
    ttl_ms: *mut u64,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        let out = required(ttl_ms, "ttl_ms")?;
        // SAFETY: `key` is readable for `key_len` bytes (the `# Safety` promise
        // above); `bytes` refuses NULL with a non-zero length and a length over
        // isize::MAX, and bytes need no alignment.
        let key = unsafe { bytes(key, key_len, "key") }?;
        let (status, ms) = match c.ttl(key)? {
            None => (MEMSHELF_MISS, 0),
            Some(Expiry::Never) => (MEMSHELF_OK, u64::MAX),
            Some(Expiry::In(d)) => (
                MEMSHELF_OK,
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1),
            ),
        };
        // SAFETY: `out` was checked non-NULL by `required` above and is valid
        // for writing one aligned value of its type (the `# Safety` promise
        // above).
        unsafe { store(out, ms) };
        Ok(status)
    })
}

/// Gives the live entry of `key` a new TTL (`ttl_ms` as for `memshelf_put`).
/// `*found` (optional, may be NULL) receives whether the key was present.
///
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT`,
/// `MEMSHELF_ERR_KEY_TOO_LONG`, `MEMSHELF_ERR_INVALID_TTL`.
///
/// # Safety
/// `cache` NULL or an open handle; `key` readable for `key_len` bytes;
/// `found` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_touch(
    cache: *const memshelf_cache,
    key: *const u8,
    key_len: usize,
    ttl_ms: u64,
    found: *mut bool,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        // SAFETY: `key` is readable for `key_len` bytes (the `# Safety` promise
        // above); `bytes` refuses NULL with a non-zero length and a length over
        // isize::MAX, and bytes need no alignment.
        let key = unsafe { bytes(key, key_len, "key") }?;
        let present = c.touch(key, ttl(ttl_ms)?)?;
        // SAFETY: `found` is NULL or valid for writing one aligned value of its
        // type (the `# Safety` promise above); `store` does nothing for NULL.
        unsafe { store(found, present) };
        Ok(MEMSHELF_OK)
    })
}

/// Makes every entry put with `tag` a miss, in O(1), in every process.
///
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT`,
/// `MEMSHELF_ERR_INVALID_ARGUMENT` (an empty or over-long tag).
///
/// # Safety
/// `cache` NULL or an open handle; `tag` readable for `tag_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_invalidate_tag(
    cache: *const memshelf_cache,
    tag: *const u8,
    tag_len: usize,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        // SAFETY: `tag` is readable for `tag_len` bytes (the `# Safety` promise
        // above); `bytes` refuses NULL with a non-zero length and a length over
        // isize::MAX, and bytes need no alignment.
        let tag = unsafe { bytes(tag, tag_len, "tag") }?;
        c.invalidate_tag(tag)?;
        Ok(MEMSHELF_OK)
    })
}

/// Removes every key starting with `prefix` (a scan of the index: an admin
/// operation; an empty prefix removes every key). `*count` (optional, may be
/// NULL) receives how many were removed.
///
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT`.
///
/// # Safety
/// `cache` NULL or an open handle; `prefix` readable for `prefix_len`
/// bytes; `count` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_delete_prefix(
    cache: *const memshelf_cache,
    prefix: *const u8,
    prefix_len: usize,
    count: *mut u64,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        // SAFETY: `prefix` is readable for `prefix_len` bytes (the `# Safety`
        // promise above); `bytes` refuses NULL with a non-zero length and a
        // length over isize::MAX, and bytes need no alignment.
        let prefix = unsafe { bytes(prefix, prefix_len, "prefix") }?;
        let n = c.delete_prefix(prefix)?;
        // SAFETY: `count` is NULL or valid for writing one aligned value of its
        // type (the `# Safety` promise above); `store` does nothing for NULL.
        unsafe { store(count, n) };
        Ok(MEMSHELF_OK)
    })
}

/// Makes every entry of the segment a miss, in O(1), in every process.
///
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT`.
///
/// # Safety
/// `cache` NULL or an open handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_clear(cache: *const memshelf_cache) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        c.clear()?;
        Ok(MEMSHELF_OK)
    })
}
