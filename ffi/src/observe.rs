//! Hot keys (SPEC 5) and dump / load (SPEC 8).

use std::ffi::c_char;

use crate::cache::{handle, memshelf_cache};
use crate::guard::guard;
use crate::ptr::{bytes_mut, required, store, text};
use crate::status::Failure;
use crate::status::memshelf_status::{self, *};

/// The hottest keys, as `memshelf_hot_keys` reports them: the keys packed
/// into the caller's buffer, `offsets[i]` / `lens[i]` where key `i` is,
/// `counts[i]` its sampled hits, hottest first.
///
/// Looks up at most `max_keys` keys with the most sampled hits (one get in
/// 64 per thread is sampled) that are still present, hottest first, and
/// packs them one after another into `buf`; `*nkeys` is how many. A count is
/// a Misra-Gries estimate: compare keys with it, do not add them up.
///
/// When `buf` is too small, returns `MEMSHELF_ERR_BUFFER_TOO_SMALL` with
/// `*needed` set to the bytes the keys took at that moment (retry with at
/// least that much; `MEMSHELF_MAX_KEY_LEN * max_keys` always suffices), and
/// `offsets` / `lens` / `counts` / `*nkeys` are unspecified. On success
/// `*needed` (if not NULL) is the bytes used.
///
/// Ownership: every buffer is the caller's. Thread-safe. Errors:
/// `MEMSHELF_ERR_NULL_ARGUMENT`, `MEMSHELF_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `cache` NULL or an open handle; `buf` writable for `buf_len` bytes;
/// `offsets`, `lens` and `counts` writable for `max_keys` entries; `nkeys`
/// writable; `needed` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_hot_keys(
    cache: *const memshelf_cache,
    max_keys: usize,
    buf: *mut u8,
    buf_len: usize,
    offsets: *mut usize,
    lens: *mut usize,
    counts: *mut u64,
    nkeys: *mut usize,
    needed: *mut usize,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        // SAFETY: `buf` is writable for `buf_len` bytes, used by nothing else
        // during the call (the `# Safety` promise above); `bytes_mut` refuses
        // NULL with a non-zero length and a length over isize::MAX, and bytes
        // need no alignment.
        let out = unsafe { bytes_mut(buf, buf_len, "buf") }?;
        let nkeys = required(nkeys, "nkeys")?;
        if max_keys > 0 {
            required(offsets, "offsets")?;
            required(lens, "lens")?;
            required(counts, "counts")?;
        }
        let hot = c.hot_keys(max_keys);
        let used: usize = hot.iter().map(|(k, _)| k.len()).sum();
        // SAFETY: `needed` is NULL or valid for writing one aligned value of
        // its type (the `# Safety` promise above); `store` does nothing for
        // NULL.
        unsafe { store(needed, used) };
        if used > out.len() {
            return Err(Failure::new(
                MEMSHELF_ERR_BUFFER_TOO_SMALL,
                format!("the keys need {used} bytes, the buffer has {buf_len}"),
            ));
        }
        let mut off = 0;
        for (i, (k, n)) in hot.iter().enumerate() {
            out[off..off + k.len()].copy_from_slice(k);
            // SAFETY: `offsets`, `lens` and `counts` are non-NULL (checked
            // by `required` above, as `max_keys > i >= 0`) and writable for
            // `max_keys` aligned entries (the `# Safety` promise); `hot` holds
            // at most `max_keys` keys, so `add(i)` stays inside each array.
            unsafe {
                offsets.add(i).write(off);
                lens.add(i).write(k.len());
                counts.add(i).write(*n);
            }
            off += k.len();
        }
        // SAFETY: `nkeys` was checked non-NULL by `required` above and is
        // writable for one aligned `size_t` (the `# Safety` promise).
        unsafe { nkeys.write(hot.len()) };
        Ok(MEMSHELF_OK)
    })
}

/// What `memshelf_dump` wrote. Set `struct_size` to
/// `sizeof(memshelf_dump_report)` before the call (fields are only ever
/// appended).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct memshelf_dump_report {
    /// `sizeof(memshelf_dump_report)` as the caller compiled it.
    pub struct_size: usize,
    /// Entries written.
    pub entries: u64,
    /// Bytes of the file.
    pub bytes: u64,
    /// Listed keys gone (deleted, expired, evicted) by the time they were read.
    pub vanished: u64,
}

/// Bytes of `memshelf_load_report.problem`, its NUL included.
pub const MEMSHELF_PROBLEM_LEN: usize = 256;

/// What `memshelf_load` did. Set `struct_size` to
/// `sizeof(memshelf_load_report)` before the call (fields are only ever
/// appended).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct memshelf_load_report {
    /// `sizeof(memshelf_load_report)` as the caller compiled it.
    pub struct_size: usize,
    /// Valid records read (the valid prefix).
    pub records: u64,
    /// Entries inserted.
    pub loaded: u64,
    /// Records skipped because their TTL passed since the dump.
    pub expired: u64,
    /// Records skipped because the key has a live entry (never overwritten).
    pub kept_newer: u64,
    /// Records this segment refused (a value above its max_value_size...).
    pub rejected: u64,
    /// Records the dump announces; `UINT64_MAX` when its writer did not
    /// finish.
    pub expected: u64,
    /// Records after the first truncated or corrupt one (0 when `expected`
    /// is unknown).
    pub skipped: u64,
    /// 1 when the dump was read to its announced end with nothing amiss.
    pub complete: u32,
    /// Always 0 (explicit padding).
    pub _reserved0: u32,
    /// Why the valid prefix ends early ("truncated at byte N, in record
    /// 1"...), NUL-terminated (cut to fit); empty when `complete`.
    pub problem: [c_char; MEMSHELF_PROBLEM_LEN],
}

// No implicit padding: the report can be copied byte-wise, in part, to an
// older caller.
const _: () = assert!(size_of::<memshelf_dump_report>() == 32);
const _: () = assert!(size_of::<memshelf_load_report>() == 72 + MEMSHELF_PROBLEM_LEN);

/// Copies `value` into the caller's `out` (its first `struct_size` bytes,
/// zeroing a newer caller's tail). `min` is the smallest size accepted.
///
/// # Safety
/// `out` NULL or writable for its `struct_size` (first field) bytes.
unsafe fn write_report<T: Copy>(out: *mut T, value: &T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Ok(());
    }
    let known = size_of::<T>();
    // SAFETY: `out` is non-NULL (checked above) and points to a report whose
    // first field is the `size_t struct_size` the caller set (the `# Safety`
    // promise); read unaligned, so the caller's alignment does not matter.
    let given = unsafe { out.cast::<usize>().read_unaligned() };
    if given < size_of::<usize>() * 2 {
        return Err(Failure::invalid(format!(
            "{what}.struct_size is {given}, expected {known} (set it to sizeof({what}))"
        )));
    }
    let fits = given.min(known);
    // SAFETY: `out` is non-NULL and writable for `given` bytes (the `# Safety`
    // promise: its `struct_size` bytes); `value` is `known` initialised bytes
    // without padding (checked at compile time) and a separate object, so the
    // two do not overlap. `given` is at least two `size_t`s (checked above) and
    // so is `known`, so `fits - size_of::<usize>()` cannot underflow; the bytes
    // after `struct_size` up to `fits` are copied and `fits..given` zeroed:
    // nothing past `given`. The struct_size field is left as the caller set it.
    // Bytes need no alignment.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (value as *const T).cast::<u8>().add(size_of::<usize>()),
            out.cast::<u8>().add(size_of::<usize>()),
            fits - size_of::<usize>(),
        );
        std::ptr::write_bytes(out.cast::<u8>().add(fits), 0, given - fits);
    }
    Ok(())
}

/// Writes every live entry (key, value, remaining TTL, tags) of the segment to the
/// file `path` (written beside it, then renamed over it: a reader never sees
/// a partial dump). Tags travel by name. Dumping counts no hits and marks
/// no entry used.
///
/// `report`: NULL, or a `memshelf_dump_report` with `struct_size` set,
/// filled on success.
///
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT`,
/// `MEMSHELF_ERR_INVALID_ARGUMENT` (path, struct_size), `MEMSHELF_ERR_IO`.
///
/// # Safety
/// `cache` NULL or an open handle; `path` NULL or NUL-terminated; `report`
/// NULL or writable for its `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_dump(
    cache: *const memshelf_cache,
    path: *const c_char,
    report: *mut memshelf_dump_report,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        // SAFETY: `path` is NULL or a NUL-terminated string that stays valid
        // during the call (the `# Safety` promise above); `text` refuses NULL
        // and checks UTF-8.
        let path = unsafe { text(path, "path", MEMSHELF_ERR_INVALID_ARGUMENT) }?;
        let r = c.dump(path)?;
        let value = memshelf_dump_report {
            struct_size: size_of::<memshelf_dump_report>(),
            entries: r.entries,
            bytes: r.bytes,
            vanished: r.vanished,
        };
        // SAFETY: `report` is NULL or writable for its `struct_size` bytes
        // (the `# Safety` promise), what `write_report` requires.
        unsafe { write_report(report, &value, "memshelf_dump_report") }?;
        Ok(MEMSHELF_OK)
    })
}

/// Inserts the entries of the dump at `path`: an entry whose key has a live
/// entry is never overwritten, entries whose TTL passed are skipped, and a
/// truncated or corrupt dump loads its valid prefix and succeeds, saying in
/// `report` what it skipped (`complete` 0, `problem`).
///
/// `report`: NULL, or a `memshelf_load_report` with `struct_size` set,
/// filled on success.
///
/// Thread-safe. Errors: `MEMSHELF_ERR_NULL_ARGUMENT`,
/// `MEMSHELF_ERR_INVALID_ARGUMENT` (path, struct_size), `MEMSHELF_ERR_IO`
/// (no such file, not a dump of a version this library reads).
///
/// # Safety
/// `cache` NULL or an open handle; `path` NULL or NUL-terminated; `report`
/// NULL or writable for its `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memshelf_load(
    cache: *const memshelf_cache,
    path: *const c_char,
    report: *mut memshelf_load_report,
) -> memshelf_status {
    guard(|| {
        // SAFETY: `cache` is NULL or a handle from `memshelf_open` not yet
        // closed (the `# Safety` promise above); `handle` turns NULL into an
        // error.
        let c = unsafe { handle(cache) }?;
        // SAFETY: `path` is NULL or a NUL-terminated string that stays valid
        // during the call (the `# Safety` promise above); `text` refuses NULL
        // and checks UTF-8.
        let path = unsafe { text(path, "path", MEMSHELF_ERR_INVALID_ARGUMENT) }?;
        let r = c.load(path)?;
        let mut problem = [0 as c_char; MEMSHELF_PROBLEM_LEN];
        if let Some(p) = &r.problem {
            let mut n = p.len().min(MEMSHELF_PROBLEM_LEN - 1);
            while !p.is_char_boundary(n) {
                n -= 1;
            }
            for (d, s) in problem.iter_mut().zip(&p.as_bytes()[..n]) {
                *d = *s as c_char;
            }
        }
        let value = memshelf_load_report {
            struct_size: size_of::<memshelf_load_report>(),
            records: r.records,
            loaded: r.loaded,
            expired: r.expired,
            kept_newer: r.kept_newer,
            rejected: r.rejected,
            expected: r.expected.unwrap_or(u64::MAX),
            skipped: r.skipped,
            complete: u32::from(r.complete()),
            _reserved0: 0,
            problem,
        };
        // SAFETY: `report` is NULL or writable for its `struct_size` bytes
        // (the `# Safety` promise), what `write_report` requires.
        unsafe { write_report(report, &value, "memshelf_load_report") }?;
        Ok(MEMSHELF_OK)
    })
}
