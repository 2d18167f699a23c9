//! Dump and load (SPEC 8): every live entry of a segment to a file, and back,
//! so a segment can be warmed after a reboot, a layout upgrade or on a new
//! host. The file format and the loading rules are documented on
//! [`dump_to`] (public as `memshelf::dump_to`).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::error::{Error, Result};
use crate::{Cache, Expiry, MAX_KEY_LEN, MAX_TAG_LEN, MAX_TAGS, PutOptions, Ttl};

/// The first 8 bytes of every dump file.
pub const DUMP_MAGIC: [u8; 8] = *b"MSHLDMP\0";
/// The format version this library writes and reads.
pub const DUMP_VERSION: u32 = 1;

const HEADER_LEN: usize = 40;
const RECORD_HEAD: usize = 12;
const BODY_FIXED: usize = 16;
const KIND_ENTRY: u8 = 1;
const NEVER: u64 = u64::MAX;
const UNFINISHED: u64 = u64::MAX;
/// Largest body accepted: the largest key, tags and a 4 GiB value.
const MAX_BODY: u64 = BODY_FIXED as u64
    + MAX_KEY_LEN as u64
    + u32::MAX as u64
    + (MAX_TAGS * (2 + MAX_TAG_LEN)) as u64;

/// What [`Cache::dump`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpReport {
    /// Entries written.
    pub entries: u64,
    /// Bytes of the file.
    pub bytes: u64,
    /// Keys listed by [`Cache::keys`] that were gone (deleted, expired,
    /// evicted) by the time they were read.
    pub vanished: u64,
}

/// What [`Cache::load`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadReport {
    /// Valid records read (the valid prefix).
    pub records: u64,
    /// Entries inserted.
    pub loaded: u64,
    /// Records skipped because their TTL passed since the dump.
    pub expired: u64,
    /// Records skipped because the key already had a live entry, written
    /// since: never overwritten.
    pub kept_newer: u64,
    /// Records this segment refused (a value above its `max_value_size`...).
    pub rejected: u64,
    /// Records the dump's header announces; `None` when its writer did not
    /// finish (then the records up to the first bad one are loaded).
    pub expected: Option<u64>,
    /// Records not loaded because they follow the first truncated or corrupt
    /// one (`expected - records`, 0 when `expected` is unknown).
    pub skipped: u64,
    /// Why the valid prefix ends before the announced end, if it does:
    /// "truncated at byte N", "corrupt record 7 at byte N"...
    pub problem: Option<String>,
}

impl LoadReport {
    /// Whether the dump was read to its announced end with nothing amiss.
    pub fn complete(&self) -> bool {
        self.problem.is_none()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn bad_data(msg: String) -> Error {
    Error::io("load", io::Error::new(io::ErrorKind::InvalidData, msg))
}

fn record_seed(index: u64, len: u32) -> u64 {
    index.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(len)
}

fn header(dumped_at_ms: u64, records: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&DUMP_MAGIC);
    h[8..12].copy_from_slice(&DUMP_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&dumped_at_ms.to_le_bytes());
    h[24..32].copy_from_slice(&records.to_le_bytes());
    let sum = xxh3_64(&h[0..32]);
    h[32..40].copy_from_slice(&sum.to_le_bytes());
    h
}

/// Writes every live entry of `cache` to `w` in the dump format below. `w`
/// is rewound at the end to record the number of records in the header
/// (until then the header says the dump is unfinished), then left at the
/// end. [`Cache::dump`] does this into a file.
///
/// Built on the public [`Cache`] API only ([`Cache::keys`], [`Cache::get`],
/// [`Cache::ttl`], [`Cache::add_with`]), so it works across layout versions:
/// a dump written by one layout loads into another.
///
/// # File format (version 1, little-endian)
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic `b"MSHLDMP\0"` |
/// | 8 | 4 | format version (1) |
/// | 12 | 4 | flags (0; reserved) |
/// | 16 | 8 | `dumped_at_ms`: unix time in ms when the dump started |
/// | 24 | 8 | number of records, or `u64::MAX` while the dump is being written (a dump whose writer died says so) |
/// | 32 | 8 | xxh3-64 of bytes 0..32 |
///
/// Then the records, record `i` (from 0):
///
/// | size | field |
/// |---|---|
/// | 4 | `len`: bytes of the body |
/// | 8 | checksum: xxh3-64 of the body, seeded with `i` and `len` (a record moved, repeated or cut shows) |
/// | `len` | body |
///
/// Body: kind (1 byte, 1 = entry), number of tags (1), key length (2),
/// value length (4), remaining TTL in ms counted from `dumped_at_ms` (8;
/// `u64::MAX` = never expires), the key, the value, then each tag as length
/// (2) and bytes. Tags travel by name (their hashes are seeded per segment),
/// so a loaded entry is invalidated by the same `invalidate_tag` calls as
/// the original.
///
/// # Loading
///
/// [`Cache::load`] reads the records in order and inserts each with
/// [`Cache::add_with`]: an entry written since (a live key) is never
/// overwritten. Entries whose TTL passed meanwhile are skipped. The first
/// truncated or corrupt record ends the valid prefix: what precedes it is
/// loaded, the rest is reported ([`LoadReport`]), nothing panics.
///
/// A remaining TTL is measured when the entry is read, after `dumped_at_ms`,
/// so a loaded entry never outlives its original deadline (it may expire up
/// to the dump's duration early). Dumping reads each entry without
/// counting a hit or marking it used: statistics and eviction order are as
/// if no dump had run.
pub fn dump_to<W: Write + Seek>(cache: &Cache, w: &mut W) -> Result<DumpReport> {
    let io = |e| Error::io("dump", e);
    let start = w.stream_position().map_err(io)?;
    let dumped_at = now_ms();
    w.write_all(&header(dumped_at, UNFINISHED)).map_err(io)?;
    let mut report = DumpReport {
        bytes: HEADER_LEN as u64,
        ..DumpReport::default()
    };
    let mut body = Vec::new();
    let (mut value, mut names) = (Vec::new(), Vec::new());
    for key in cache.keys(None) {
        let Some(x) = cache.e.export(&key, &mut value, &mut names) else {
            report.vanished += 1;
            continue;
        };
        let remaining = match x.expiry {
            Expiry::Never => NEVER,
            Expiry::In(d) => (d.as_millis() as u64).clamp(1, NEVER - 1),
        };
        let (Ok(key_len), Ok(value_len)) = (u16::try_from(key.len()), u32::try_from(value.len()))
        else {
            // Cannot happen within the engine's limits; never write a
            // record that would not read back.
            report.vanished += 1;
            continue;
        };
        body.clear();
        body.push(KIND_ENTRY);
        body.push(x.tags.len() as u8); // <= MAX_TAGS
        body.extend_from_slice(&key_len.to_le_bytes());
        body.extend_from_slice(&value_len.to_le_bytes());
        body.extend_from_slice(&remaining.to_le_bytes());
        body.extend_from_slice(&key);
        body.extend_from_slice(&value);
        for t in &x.tags {
            body.extend_from_slice(&(t.len() as u16).to_le_bytes());
            body.extend_from_slice(t);
        }
        let len = body.len() as u32;
        let sum = xxh3_64_with_seed(&body, record_seed(report.entries, len));
        w.write_all(&len.to_le_bytes()).map_err(io)?;
        w.write_all(&sum.to_le_bytes()).map_err(io)?;
        w.write_all(&body).map_err(io)?;
        report.entries += 1;
        report.bytes += (RECORD_HEAD + body.len()) as u64;
    }
    w.seek(SeekFrom::Start(start)).map_err(io)?;
    w.write_all(&header(dumped_at, report.entries))
        .map_err(io)?;
    w.seek(SeekFrom::Start(start + report.bytes)).map_err(io)?;
    w.flush().map_err(io)?;
    Ok(report)
}

/// Reads up to `buf.len()` bytes; returns how many (fewer only at EOF).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// One decoded entry record.
struct Entry<'a> {
    key: &'a [u8],
    value: &'a [u8],
    remaining_ms: u64,
    tags: Vec<&'a [u8]>,
}

fn parse_body(b: &[u8]) -> Option<Entry<'_>> {
    if b.len() < BODY_FIXED || b[0] != KIND_ENTRY {
        return None;
    }
    let ntags = usize::from(b[1]);
    let key_len = usize::from(u16::from_le_bytes([b[2], b[3]]));
    let value_len = u32::from_le_bytes(b[4..8].try_into().ok()?) as usize;
    let remaining_ms = u64::from_le_bytes(b[8..16].try_into().ok()?);
    let rest = &b[BODY_FIXED..];
    let key = rest.get(..key_len)?;
    let value = rest.get(key_len..key_len.checked_add(value_len)?)?;
    let mut pos = key_len + value_len;
    let mut tags = Vec::with_capacity(ntags.min(MAX_TAGS));
    for _ in 0..ntags {
        let l = usize::from(u16::from_le_bytes(rest.get(pos..pos + 2)?.try_into().ok()?));
        tags.push(rest.get(pos + 2..pos + 2 + l)?);
        pos += 2 + l;
    }
    (pos == rest.len()).then_some(Entry {
        key,
        value,
        remaining_ms,
        tags,
    })
}

/// Inserts the entries of a dump read from `r` into `cache` (see the module
/// documentation). Errors only when `r` is not a dump of a version this
/// library reads, or cannot be read; a truncated or corrupt dump loads its
/// valid prefix and says what it skipped in the report.
pub fn load_from<R: Read>(cache: &Cache, r: &mut R) -> Result<LoadReport> {
    let io = |e| Error::io("load", e);
    let mut h = [0u8; HEADER_LEN];
    let n = read_full(r, &mut h).map_err(io)?;
    let magic_seen = n.min(DUMP_MAGIC.len());
    if h[..magic_seen] != DUMP_MAGIC[..magic_seen] || n == 0 {
        return Err(bad_data("not a memshelf dump (bad magic number)".into()));
    }
    let mut report = LoadReport::default();
    if n < HEADER_LEN {
        report.problem = Some(format!(
            "truncated at byte {n}, inside the {HEADER_LEN}-byte header: nothing to load"
        ));
        return Ok(report);
    }
    let version = u32::from_le_bytes(h[8..12].try_into().unwrap_or_default());
    if version != DUMP_VERSION {
        return Err(bad_data(format!(
            "dump format version {version}: this library reads version {DUMP_VERSION}"
        )));
    }
    if xxh3_64(&h[0..32]).to_le_bytes() != h[32..40] {
        return Err(bad_data("corrupt dump header (checksum mismatch)".into()));
    }
    let dumped_at = u64::from_le_bytes(h[16..24].try_into().unwrap_or_default());
    let announced = u64::from_le_bytes(h[24..32].try_into().unwrap_or_default());
    report.expected = (announced != UNFINISHED).then_some(announced);

    let mut offset = HEADER_LEN as u64;
    let mut body = Vec::new();
    loop {
        if report.expected == Some(report.records) {
            // Every announced record read: anything after them is not ours.
            let mut extra = [0u8; 1];
            if read_full(r, &mut extra).map_err(io)? > 0 {
                report.problem = Some(format!(
                    "unexpected bytes after the last record, at byte {offset} (ignored)"
                ));
            }
            break;
        }
        let mut head = [0u8; RECORD_HEAD];
        let got = read_full(r, &mut head).map_err(io)?;
        if got == 0 && report.expected.is_none() {
            report.problem = Some(format!(
                "the dump was not finished by its writer: loaded the {} records it holds",
                report.records
            ));
            break;
        }
        if got < RECORD_HEAD {
            report.problem = Some(format!(
                "truncated at byte {}, in record {}",
                offset + got as u64,
                report.records
            ));
            break;
        }
        let len = u32::from_le_bytes(head[0..4].try_into().unwrap_or_default());
        let sum = u64::from_le_bytes(head[4..12].try_into().unwrap_or_default());
        if u64::from(len) > MAX_BODY || (len as usize) < BODY_FIXED {
            report.problem = Some(format!(
                "corrupt record {} at byte {offset} (length {len})",
                report.records
            ));
            break;
        }
        body.clear();
        let got = r
            .by_ref()
            .take(u64::from(len))
            .read_to_end(&mut body)
            .map_err(io)?;
        if got < len as usize {
            report.problem = Some(format!(
                "truncated at byte {}, in record {}",
                offset + (RECORD_HEAD + got) as u64,
                report.records
            ));
            break;
        }
        let entry = (xxh3_64_with_seed(&body, record_seed(report.records, len)) == sum)
            .then(|| parse_body(&body))
            .flatten();
        let Some(e) = entry else {
            report.problem = Some(format!(
                "corrupt record {} at byte {offset} (checksum or fields)",
                report.records
            ));
            break;
        };
        report.records += 1;
        offset += (RECORD_HEAD + len as usize) as u64;
        insert(cache, &e, dumped_at, &mut report);
    }
    if let Some(expected) = report.expected {
        report.skipped = expected.saturating_sub(report.records);
    }
    Ok(report)
}

fn insert(cache: &Cache, e: &Entry<'_>, dumped_at: u64, report: &mut LoadReport) {
    let ttl = if e.remaining_ms == NEVER {
        Ttl::Never
    } else {
        let deadline = dumped_at.saturating_add(e.remaining_ms);
        let now = now_ms();
        if deadline <= now {
            report.expired += 1;
            return;
        }
        Ttl::After(Duration::from_millis(deadline - now))
    };
    let opts = PutOptions::ttl(ttl).with_tags(&e.tags);
    match cache.add_with(e.key, e.value, &opts) {
        Ok(true) => report.loaded += 1,
        Ok(false) => report.kept_newer += 1,
        Err(_) => report.rejected += 1,
    }
}

impl Cache {
    /// Writes every live entry (key, value, remaining TTL) to the file at
    /// `path`, replacing it atomically (written beside it, then renamed), in
    /// the versioned format of [`dump`](crate::dump_to) with a checksum per
    /// record.
    ///
    /// ```
    /// # let name = format!("doc-dump-{}", std::process::id());
    /// # let path = std::env::temp_dir().join(format!("{name}.dump"));
    /// let cache = memshelf::Cache::open(&name, 4 << 20)?;
    /// cache.put(b"k", b"v")?;
    /// assert_eq!(cache.dump(&path)?.entries, 1);
    /// cache.clear()?;
    /// let report = cache.load(&path)?;
    /// assert_eq!((report.loaded, report.complete()), (1, true));
    /// assert_eq!(cache.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// # std::fs::remove_file(&path).unwrap();
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn dump(&self, path: impl AsRef<Path>) -> Result<DumpReport> {
        let path = path.as_ref();
        let io = |e| Error::io("dump", e);
        let file_name = path.file_name().ok_or_else(|| {
            Error::InvalidArgument(format!("{} is not a file path", path.display()))
        })?;
        let mut tmp_name = file_name.to_os_string();
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let result = (|| {
            let mut w = BufWriter::new(File::create(&tmp).map_err(io)?);
            let report = dump_to(self, &mut w)?;
            let file = w.into_inner().map_err(|e| io(e.into_error()))?;
            file.sync_all().map_err(io)?;
            std::fs::rename(&tmp, path).map_err(io)?;
            Ok(report)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Inserts the entries of the dump at `path` (see [`load_from`](crate::load_from)):
    /// expired ones are skipped, a key written since is never overwritten,
    /// and a truncated or corrupt dump loads its valid prefix and reports
    /// the rest.
    ///
    /// ```
    /// # let name = format!("doc-load-{}", std::process::id());
    /// # let path = std::env::temp_dir().join(format!("{name}.dump"));
    /// let cache = memshelf::Cache::open(&name, 4 << 20)?;
    /// cache.put(b"a", b"old")?;
    /// cache.put(b"b", b"old")?;
    /// cache.dump(&path)?;
    /// cache.clear()?;
    /// cache.put(b"a", b"new")?; // written since the dump: kept
    /// let report = cache.load(&path)?;
    /// assert_eq!((report.records, report.loaded, report.kept_newer), (2, 1, 1));
    /// assert!(report.complete());
    /// assert_eq!(cache.get(b"a")?.as_deref(), Some(&b"new"[..]));
    /// assert_eq!(cache.get(b"b")?.as_deref(), Some(&b"old"[..]));
    /// # std::fs::remove_file(&path).unwrap();
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn load(&self, path: impl AsRef<Path>) -> Result<LoadReport> {
        let f = File::open(path.as_ref()).map_err(|e| Error::io("load", e))?;
        load_from(self, &mut BufReader::new(f))
    }
}
