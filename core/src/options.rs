//! Options for opening a segment and for single operations, and the
//! parsing/validation helpers every binding shares (sizes, TTLs, names).

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 4096;
/// Most tags one entry can carry.
pub const MAX_TAGS: usize = 8;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 4096;
/// Default `max_value_size`: 1 MiB (lowered automatically in small segments).
pub const DEFAULT_MAX_VALUE_SIZE: usize = 1 << 20;
/// Default capacity when none is given: 64 MiB.
pub const DEFAULT_CAPACITY: u64 = 64 << 20;
/// Default `OpenOptions::expected_entry_size`: key + value bytes of a
/// typical entry, for which the index is sized.
pub const DEFAULT_EXPECTED_ENTRY_SIZE: u64 = 128;
/// Largest `OpenOptions::expected_entry_size` (the largest value, 1 MiB,
/// plus the longest key).
pub const MAX_EXPECTED_ENTRY_SIZE: u64 = DEFAULT_MAX_VALUE_SIZE as u64 + MAX_KEY_LEN as u64;
/// Smallest capacity accepted.
pub const MIN_CAPACITY: u64 = 16 << 10;
/// Largest capacity accepted (1 TiB).
pub const MAX_CAPACITY: u64 = 1 << 40;
/// Longest TTL accepted (100 years), so deadlines never overflow.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How long an entry lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Ttl {
    /// The segment's default TTL if one was set at creation, else never.
    #[default]
    Default,
    /// Never expires (overrides a segment default).
    Never,
    /// Expires this long after the write.
    After(Duration),
}

impl Ttl {
    /// From seconds as the Python and Node bindings take them: `0` means
    /// [`Ttl::Default`]; negative, NaN, infinite or absurdly large values are
    /// [`Error::InvalidTtl`].
    pub fn from_secs_f64(secs: f64) -> Result<Ttl> {
        if secs.is_nan() || secs.is_infinite() || secs < 0.0 {
            return Err(Error::InvalidTtl(format!(
                "{secs} seconds: a TTL must be a finite number >= 0 (0 or None means the default)"
            )));
        }
        if secs == 0.0 {
            return Ok(Ttl::Default);
        }
        if secs > MAX_TTL.as_secs_f64() {
            return Err(Error::InvalidTtl(format!(
                "{secs} seconds is longer than the limit of {} seconds",
                MAX_TTL.as_secs()
            )));
        }
        let d = Duration::from_secs_f64(secs);
        // Resolution is 1 ms: round tiny positive TTLs up so they are not 0.
        Ok(Ttl::After(d.max(Duration::from_millis(1))))
    }

    /// From milliseconds as the C ABI takes them: `0` means [`Ttl::Default`],
    /// `u64::MAX` means [`Ttl::Never`].
    pub fn from_millis(ms: u64) -> Result<Ttl> {
        match ms {
            0 => Ok(Ttl::Default),
            u64::MAX => Ok(Ttl::Never),
            ms if Duration::from_millis(ms) > MAX_TTL => Err(Error::InvalidTtl(format!(
                "{ms} ms is longer than the limit of {} ms",
                MAX_TTL.as_millis()
            ))),
            ms => Ok(Ttl::After(Duration::from_millis(ms))),
        }
    }

    pub(crate) fn validate(self) -> Result<Ttl> {
        if let Ttl::After(d) = self {
            if d.is_zero() {
                return Ok(Ttl::Default);
            }
            if d > MAX_TTL {
                return Err(Error::InvalidTtl(format!(
                    "{d:?} is longer than the limit of {} seconds",
                    MAX_TTL.as_secs()
                )));
            }
        }
        Ok(self)
    }
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Ttl {
        if d.is_zero() {
            Ttl::Default
        } else {
            Ttl::After(d)
        }
    }
}

impl From<Option<Duration>> for Ttl {
    fn from(d: Option<Duration>) -> Ttl {
        d.map_or(Ttl::Default, Ttl::from)
    }
}

/// Remaining lifetime of a present entry, as returned by
/// [`Cache::ttl`](crate::Cache::ttl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The entry never expires.
    Never,
    /// The entry expires after this long.
    In(Duration),
}

/// Options for [`Cache::put_with`](crate::Cache::put_with) and
/// [`Cache::add_with`](crate::Cache::add_with).
#[derive(Clone, Debug, Default)]
pub struct PutOptions<'a> {
    /// Lifetime of the entry.
    pub ttl: Ttl,
    /// Tags for [`Cache::invalidate_tag`](crate::Cache::invalidate_tag), at
    /// most [`MAX_TAGS`].
    pub tags: &'a [&'a [u8]],
}

impl<'a> PutOptions<'a> {
    /// Options with the given TTL and no tags.
    ///
    /// ```
    /// # let name = format!("doc-po-ttl-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use memshelf::{Expiry, PutOptions, Ttl};
    /// use std::time::Duration;
    /// let opts = PutOptions::ttl(Duration::from_secs(60));
    /// assert_eq!((opts.ttl, opts.tags.len()), (Ttl::After(Duration::from_secs(60)), 0));
    /// cache.put_with(b"k", b"v", &opts)?;
    /// assert!(matches!(cache.ttl(b"k")?, Some(Expiry::In(d)) if d <= Duration::from_secs(60)));
    /// cache.put_with(b"k", b"v", &PutOptions::ttl(Ttl::Never))?;
    /// assert_eq!(cache.ttl(b"k")?, Some(Expiry::Never));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn ttl(ttl: impl Into<Ttl>) -> Self {
        PutOptions {
            ttl: ttl.into(),
            tags: &[],
        }
    }
    /// Adds tags.
    ///
    /// ```
    /// # let name = format!("doc-po-with-tags-{}", std::process::id());
    /// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
    /// use memshelf::{PutOptions, Ttl};
    /// let opts = PutOptions::ttl(Ttl::Never).with_tags(&[b"product:7", b"shop:2"]);
    /// assert_eq!(opts.tags.len(), 2);
    /// cache.put_with(b"price:7", b"9.99", &opts)?;
    /// cache.invalidate_tag(b"shop:2")?; // either tag invalidates the entry
    /// assert_eq!(cache.get(b"price:7")?, None);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn with_tags(mut self, tags: &'a [&'a [u8]]) -> Self {
        self.tags = tags;
        self
    }
}

/// Options for [`Cache::get_or_set`](crate::Cache::get_or_set).
///
/// ```
/// # let name = format!("doc-gos-options-{}", std::process::id());
/// # let cache = memshelf::Cache::open(&name, 16 << 20)?;
/// use memshelf::GetOrSetOptions;
/// use std::time::Duration;
/// let opts = GetOrSetOptions {
///     ttl: Duration::from_secs(60).into(),
///     negative_ttl: Some(Duration::from_secs(5)), // remember "no such user"
///     ..GetOrSetOptions::default()
/// };
/// let mut calls = 0;
/// for _ in 0..2 {
///     let v = cache.get_or_set(b"user:404", &opts, || {
///         calls += 1;
///         Ok::<_, std::io::Error>(None)
///     });
///     assert_eq!(v.unwrap(), None);
/// }
/// assert_eq!(calls, 1); // the absence was cached
/// # memshelf::unlink(&name)?;
/// # Ok::<(), memshelf::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GetOrSetOptions<'a> {
    /// Lifetime of the stored value.
    pub ttl: Ttl,
    /// Tags of the stored value.
    pub tags: &'a [&'a [u8]],
    /// How long the leader may take before a waiter takes over (default 10 s).
    pub lease: Duration,
    /// Keep the entry this long past its TTL and serve it stale while one
    /// caller refreshes it (stale-while-revalidate). Stored to the ms
    /// below 32.768 s (and for a minute or an hour), otherwise rounded
    /// down by less than 1/16384 of itself (a day by 3 s): never longer
    /// than asked.
    pub grace: Option<Duration>,
    /// Cache a factory's `None` for this long (negative caching).
    pub negative_ttl: Option<Duration>,
}

/// A duration option given in seconds, as Python and Node pass `lease`,
/// `grace`, `negative_ttl` and a segment's default `ttl`: a finite number
/// from 0 to [`MAX_TTL`]; 0 stays 0 (whether an option may be 0 is that
/// option's rule, checked where it is used: a `lease` may not, a `grace`
/// may); a positive value below the 1 ms resolution becomes 1 ms. The one
/// conversion every binding uses, so they cannot disagree.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(memshelf::duration_from_secs("grace", 0.0)?, Duration::ZERO);
/// assert_eq!(memshelf::duration_from_secs("lease", 1e-6)?, Duration::from_millis(1));
/// assert!(memshelf::duration_from_secs("lease", -1.0).is_err());
/// assert!(memshelf::duration_from_secs("lease", f64::NAN).is_err());
/// let e = memshelf::duration_from_secs("lease", -1.0).unwrap_err().to_string();
/// assert!(e.contains("above 0"), "{e}");
/// # Ok::<(), memshelf::Error>(())
/// ```
pub fn duration_from_secs(what: &str, secs: f64) -> Result<Duration> {
    if !secs.is_finite() || secs < 0.0 || secs > MAX_TTL.as_secs_f64() {
        // (a lease must be above 0: `check_duration` refuses 0 where used)
        let low = if what == "lease" { "above 0" } else { "from 0" };
        return Err(Error::InvalidTtl(format!(
            "{what} of {secs} seconds is out of range (a finite number {low} to {} s)",
            MAX_TTL.as_secs()
        )));
    }
    if secs == 0.0 {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_secs_f64(secs).max(Duration::from_millis(1)))
}

impl Default for GetOrSetOptions<'_> {
    fn default() -> Self {
        GetOrSetOptions {
            ttl: Ttl::Default,
            tags: &[],
            lease: Duration::from_secs(10),
            grace: None,
            negative_ttl: None,
        }
    }
}

/// How to open (create or attach) a segment, in the style of
/// [`std::fs::OpenOptions`].
///
/// ```
/// # let name = format!("doc-open-{}", std::process::id());
/// use std::time::Duration;
/// let cache = memshelf::OpenOptions::new()
///     .capacity(8 << 20)
///     .ttl(Duration::from_secs(60))
///     .open(&name)?;
/// cache.put(b"k", b"v")?;
/// assert_eq!(cache.get(b"k")?.as_deref(), Some(&b"v"[..]));
/// # memshelf::unlink(&name)?;
/// # Ok::<(), memshelf::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub(crate) capacity: u64,
    pub(crate) create: bool,
    pub(crate) mode: u32,
    pub(crate) ttl: Option<Duration>,
    pub(crate) ttl_jitter: f64,
    pub(crate) max_value_size: Option<usize>,
    pub(crate) expected_entry_size: u64,
    pub(crate) path: Option<PathBuf>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// 64 MiB, create-or-attach, mode 0o600, no default TTL, no jitter.
    ///
    /// ```
    /// # let name = format!("doc-oo-new-{}", std::process::id());
    /// use memshelf::{Expiry, OpenOptions};
    /// use std::os::unix::fs::PermissionsExt;
    /// let cache = OpenOptions::new().capacity(16 << 20).open(&name)?; // smaller than the default
    /// cache.put(b"k", b"v")?;
    /// assert_eq!(cache.ttl(b"k")?, Some(Expiry::Never)); // no default TTL
    /// assert_eq!(cache.max_value_size(), memshelf::DEFAULT_MAX_VALUE_SIZE);
    /// let meta = std::fs::metadata(format!("/dev/shm/memshelf.{name}")).unwrap();
    /// assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn new() -> Self {
        OpenOptions {
            capacity: DEFAULT_CAPACITY,
            create: true,
            mode: 0o600,
            ttl: None,
            ttl_jitter: 0.0,
            max_value_size: None,
            expected_entry_size: DEFAULT_EXPECTED_ENTRY_SIZE,
            path: None,
        }
    }
    /// Total bytes of the segment (fixed at creation; ignored on attach).
    ///
    /// ```
    /// # let name = format!("doc-oo-capacity-{}", std::process::id());
    /// use memshelf::OpenOptions;
    /// let cache = OpenOptions::new().capacity(8 << 20).open(&name)?;
    /// assert_eq!(cache.capacity(), 8 << 20);
    /// let attached = OpenOptions::new().capacity(32 << 20).open(&name)?;
    /// assert_eq!(attached.capacity(), 8 << 20); // fixed when it was created
    /// assert!(OpenOptions::new().capacity(1).open("doc-oo-too-small").is_err());
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn capacity(&mut self, bytes: u64) -> &mut Self {
        self.capacity = bytes;
        self
    }
    /// `true` (default): create if absent, else attach. `false`: attach only.
    ///
    /// ```
    /// # let name = format!("doc-oo-create-{}", std::process::id());
    /// use memshelf::{Error, OpenOptions};
    /// let attach_only = OpenOptions::new().create(false).clone();
    /// assert!(matches!(attach_only.open(&name), Err(Error::NotFound { .. })));
    /// let cache = OpenOptions::new().capacity(16 << 20).open(&name)?; // creates it
    /// cache.put(b"k", b"v")?;
    /// let attached = attach_only.open(&name)?;
    /// assert_eq!(attached.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }
    /// Permission bits of a created segment (default `0o600`).
    ///
    /// ```
    /// # let name = format!("doc-oo-mode-{}", std::process::id());
    /// use memshelf::{Error, OpenOptions};
    /// use std::os::unix::fs::PermissionsExt;
    /// let cache = OpenOptions::new().capacity(16 << 20).mode(0o640).open(&name)?;
    /// let meta = std::fs::metadata(format!("/dev/shm/memshelf.{name}")).unwrap();
    /// assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    /// // An opener asking for the default 0o600 refuses a segment that grants more:
    /// assert!(matches!(
    ///     OpenOptions::new().open(&name),
    ///     Err(Error::PermissionDenied { .. })
    /// ));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }
    /// Default TTL for puts that give none (set at creation).
    ///
    /// ```
    /// # let name = format!("doc-oo-ttl-{}", std::process::id());
    /// use memshelf::{Expiry, OpenOptions, PutOptions, Ttl};
    /// use std::time::Duration;
    /// let cache = OpenOptions::new()
    ///     .capacity(16 << 20)
    ///     .ttl(Duration::from_secs(60))
    ///     .open(&name)?;
    /// cache.put(b"k", b"v")?; // gets the default TTL
    /// assert!(matches!(cache.ttl(b"k")?, Some(Expiry::In(d)) if d <= Duration::from_secs(60)));
    /// cache.put_with(b"pinned", b"v", &PutOptions::ttl(Ttl::Never))?;
    /// assert_eq!(cache.ttl(b"pinned")?, Some(Expiry::Never));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn ttl(&mut self, ttl: Duration) -> &mut Self {
        self.ttl = if ttl.is_zero() { None } else { Some(ttl) };
        self
    }
    /// Spread every TTL uniformly by ± this fraction (0 to 0.5).
    ///
    /// ```
    /// # let name = format!("doc-oo-ttl-jitter-{}", std::process::id());
    /// use memshelf::{Expiry, OpenOptions};
    /// use std::time::Duration;
    /// let cache = OpenOptions::new()
    ///     .capacity(16 << 20)
    ///     .ttl(Duration::from_secs(100))
    ///     .ttl_jitter(0.1)
    ///     .open(&name)?;
    /// for i in 0..20 {
    ///     cache.put(format!("k{i}"), b"v")?;
    ///     let Some(Expiry::In(d)) = cache.ttl(format!("k{i}"))? else { panic!("no TTL") };
    ///     assert!(d > Duration::from_secs(89) && d <= Duration::from_secs(110), "{d:?}");
    /// }
    /// assert!(OpenOptions::new().ttl_jitter(0.6).open(&name).is_err()); // 0 to 0.5 only
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn ttl_jitter(&mut self, fraction: f64) -> &mut Self {
        self.ttl_jitter = fraction;
        self
    }
    /// Largest value accepted (default 1 MiB, lowered to what the segment
    /// can hold).
    ///
    /// ```
    /// # let name = format!("doc-oo-max-value-size-{}", std::process::id());
    /// use memshelf::{Error, OpenOptions};
    /// let cache = OpenOptions::new()
    ///     .capacity(16 << 20)
    ///     .max_value_size(4096)
    ///     .open(&name)?;
    /// assert_eq!(cache.max_value_size(), 4096);
    /// cache.put(b"ok", [0u8; 4096])?;
    /// assert!(matches!(
    ///     cache.put(b"too-big", [0u8; 4097]),
    ///     Err(Error::ValueTooLarge { len: 4097, max: 4096 })
    /// ));
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn max_value_size(&mut self, bytes: usize) -> &mut Self {
        self.max_value_size = Some(bytes);
        self
    }
    /// Key + value bytes of a typical entry (default 128; set at creation).
    /// The index is sized for it: 4 slots of 8 bytes per entry of this size
    /// (the entry's, a ghost's and headroom), about 15 % of a segment at the
    /// default. Entries much smaller than this get fewer slots each: the
    /// cache then forgets evicted keys (ghosts) sooner and, below about a
    /// third of it, can no longer index everything its logs hold; entries
    /// much larger leave slots unused (32 bytes per expected entry). Set it
    /// to your entries' typical size when they are far from 128 bytes.
    ///
    /// ```
    /// # let name = format!("doc-oo-expected-entry-size-{}", std::process::id());
    /// use memshelf::OpenOptions;
    /// // 16-byte keys with 8-byte counters: a larger index, every key kept.
    /// let cache = OpenOptions::new()
    ///     .capacity(4 << 20)
    ///     .expected_entry_size(24)
    ///     .open(&name)?;
    /// for i in 0..30_000u64 {
    ///     cache.put(format!("counter:{i:08}"), i.to_le_bytes())?;
    /// }
    /// assert_eq!(cache.stats().entries, 30_000);
    /// assert!(OpenOptions::new().expected_entry_size(0).open("doc-oo-zero").is_err());
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn expected_entry_size(&mut self, bytes: u64) -> &mut Self {
        self.expected_entry_size = bytes;
        self
    }
    /// Map this file (on tmpfs or disk) instead of `/dev/shm/memshelf.<name>`.
    ///
    /// ```
    /// # let name = format!("doc-oo-path-{}", std::process::id());
    /// let path = std::env::temp_dir().join(format!("{name}.shm"));
    /// let cache = memshelf::OpenOptions::new()
    ///     .capacity(1 << 20)
    ///     .path(&path)
    ///     .open(&name)?;
    /// cache.put(b"k", b"v")?;
    /// assert_eq!(cache.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// assert!(path.exists());
    /// memshelf::unlink_path(&path)?;
    /// assert!(!path.exists());
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn path(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.path = Some(path.into());
        self
    }
    /// Opens (creates or attaches) the segment `name`.
    ///
    /// ```
    /// # let name = format!("doc-oo-open-{}", std::process::id());
    /// use memshelf::OpenOptions;
    /// let mut opts = OpenOptions::new();
    /// opts.capacity(16 << 20);
    /// let a = opts.open(&name)?; // creates
    /// let b = opts.open(&name)?; // attaches: the same entries
    /// a.put(b"k", b"v")?;
    /// assert_eq!(b.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// assert!(opts.open("not a valid name").is_err());
    /// # memshelf::unlink(&name)?;
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn open(&self, name: &str) -> Result<crate::Cache> {
        crate::Cache::open_with(name, self)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&self.capacity) {
            return Err(Error::InvalidArgument(format!(
                "capacity {} bytes is outside {MIN_CAPACITY}..={MAX_CAPACITY}",
                self.capacity
            )));
        }
        if !(0.0..=0.5).contains(&self.ttl_jitter) {
            return Err(Error::InvalidArgument(format!(
                "ttl_jitter {} is outside 0.0..=0.5",
                self.ttl_jitter
            )));
        }
        if self.mode & !0o777 != 0 {
            return Err(Error::InvalidArgument(format!(
                "mode {:#o} has bits outside 0o777",
                self.mode
            )));
        }
        if let Some(t) = self.ttl {
            Ttl::After(t).validate()?;
        }
        if !(1..=MAX_EXPECTED_ENTRY_SIZE).contains(&self.expected_entry_size) {
            return Err(Error::InvalidArgument(format!(
                "expected_entry_size {} is outside 1..={MAX_EXPECTED_ENTRY_SIZE} bytes",
                self.expected_entry_size
            )));
        }
        if self.max_value_size == Some(0) {
            return Err(Error::InvalidArgument(
                "max_value_size must be at least 1 byte".into(),
            ));
        }
        Ok(())
    }
}

/// Checks a key: 1 to [`MAX_KEY_LEN`] bytes, any bytes (`KeyTooLong`
/// otherwise). The one rule every operation, message and binding uses.
///
/// ```
/// assert!(memshelf::validate_key(b"user:42").is_ok());
/// assert!(memshelf::validate_key(b"").is_err());
/// assert!(memshelf::validate_key(&vec![b'k'; memshelf::MAX_KEY_LEN + 1]).is_err());
/// ```
pub fn validate_key(key: &[u8]) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::KeyTooLong {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// Checks a segment name: 1-200 characters of `[A-Za-z0-9._-]`, not
/// starting with `.`.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("a name must not be empty");
    }
    if name.len() > 200 {
        return bad("a name is at most 200 characters");
    }
    if name.starts_with('.') {
        return bad("a name must not start with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("a name may only contain A-Z a-z 0-9 . _ - (no '/', no spaces)");
    }
    Ok(())
}

/// Parses a size such as `"64MiB"`, `"1.5GiB"`, `"512k"`, `"1000000"` into
/// bytes. Units: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB (powers of 1024,
/// as memory sizes are), case-insensitive, optional space.
///
/// ```
/// assert_eq!(memshelf::parse_size("64MiB").unwrap(), 64 << 20);
/// assert_eq!(memshelf::parse_size("1.5 GiB").unwrap(), 3 << 29);
/// assert!(memshelf::parse_size("lots").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = || {
        Error::InvalidArgument(format!(
            "cannot parse size {text:?}: expected a number with an optional unit (B, KiB, MiB, GiB, TiB)"
        ))
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    if num.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(bad);
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let bytes = f * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}
