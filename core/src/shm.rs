//! Named POSIX shared-memory objects (or plain files) mapped shared, and
//! the kernel locks that make opening them safe.
//!
//! Two locks, both dropped by the kernel when their holder dies:
//!
//! * the *opener's lock*: an open-file-description write lock on byte 0,
//!   held only while a process opens the segment, so concurrent openers
//!   (creators) serialise;
//! * the *attach lock*: a `flock`, shared by every process that has the
//!   segment mapped, for as long as it has. An opener that can take it
//!   exclusively knows that nobody is attached; only then may it initialise
//!   (or re-initialise a half-made) segment. A segment that anyone has
//!   attached is never re-initialised, truncated or resized, whatever its
//!   header says.
//!
//! Before either, the object's owner and mode are checked: /dev/shm is
//! writable by every user, so another user may have planted the name.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A shared mapping of a whole segment. Unmapped on drop.
pub(crate) struct Mapping {
    pub ptr: *mut u8,
    pub len: usize,
}

// SAFETY: the mapping is plain shared memory; all access to it goes through
// atomics (see `Segment`), so sharing the pointer between threads is sound.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` come from a successful mmap and are unmapped
        // exactly once; no reference into the mapping outlives the `Cache`
        // that owns this `Mapping`.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// An open file descriptor, closed on drop.
pub(crate) struct Fd(pub libc::c_int);

impl Fd {
    /// Gives up ownership of the descriptor.
    pub fn into_raw(self) -> libc::c_int {
        let fd = self.0;
        std::mem::forget(self);
        fd
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it once.
        unsafe {
            libc::close(self.0);
        }
    }
}

/// Where a segment lives.
pub(crate) enum Location {
    Shm(CString),
    File(std::path::PathBuf),
}

impl Location {
    pub fn file(p: &Path) -> Location {
        Location::File(p.to_path_buf())
    }

    /// The path users see (for messages).
    pub fn display(&self) -> String {
        match self {
            Location::Shm(c) => format!("/dev/shm{}", c.to_string_lossy()),
            Location::File(p) => p.display().to_string(),
        }
    }

    pub fn shm(name: &str) -> Location {
        // The name was validated: no NUL, no '/'.
        Location::Shm(CString::new(format!("/memshelf.{name}")).expect("validated name"))
    }

    pub fn open(&self, create: bool, mode: u32) -> io::Result<Fd> {
        let flags = libc::O_RDWR | libc::O_CLOEXEC | if create { libc::O_CREAT } else { 0 };
        let fd = match self {
            // SAFETY: `c` is a valid NUL-terminated string.
            Location::Shm(c) => unsafe { libc::shm_open(c.as_ptr(), flags, mode as libc::mode_t) },
            Location::File(p) => {
                let c = CString::new(p.as_os_str().as_bytes()).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL byte")
                })?;
                // SAFETY: `c` is a valid NUL-terminated string.
                unsafe { libc::open(c.as_ptr(), flags | libc::O_NOFOLLOW, mode as libc::c_uint) }
            }
        };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(Fd(fd))
        }
    }

    pub fn unlink(&self) -> io::Result<()> {
        let rc = match self {
            // SAFETY: valid C string.
            Location::Shm(c) => unsafe { libc::shm_unlink(c.as_ptr()) },
            Location::File(p) => return std::fs::remove_file(p),
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// Takes the opener's lock (byte 0, see the module comment), polling so the
/// wait is bounded.
pub(crate) fn lock_opener(fd: &Fd, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        match crate::sys::ofd_try_lock(fd.0, 0) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(Error::io("fcntl(F_OFD_SETLK)", e)),
        }
        if start.elapsed() > timeout {
            return Err(Error::Timeout(format!(
                "another process held the segment's opener lock for more than {timeout:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub(crate) fn unlock_opener(fd: &Fd) {
    crate::sys::ofd_unlock(fd.0, 0);
}

/// Tries to take the attach lock exclusively: `Ok(true)` means that no
/// process has the segment attached.
pub(crate) fn nobody_attached(fd: &Fd) -> Result<bool> {
    // SAFETY: plain syscall on a descriptor we own.
    if unsafe { libc::flock(fd.0, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => Ok(false),
        _ => Err(Error::io("flock", err)),
    }
}

/// Holds the attach lock shared (converting an exclusive one). Bounded:
/// only an opener of another layout version holds it exclusively for long.
pub(crate) fn attach_shared(fd: &Fd) -> Result<()> {
    let start = Instant::now();
    loop {
        // SAFETY: plain syscall on a descriptor we own.
        if unsafe { libc::flock(fd.0, libc::LOCK_SH | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
            _ => return Err(Error::io("flock", err)),
        }
        if start.elapsed() > Duration::from_secs(5) {
            return Err(Error::Timeout(
                "another process held the segment's attach lock exclusively for 5 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Owner, mode, device and inode of an open descriptor.
pub(crate) struct FileId {
    pub uid: u32,
    pub mode: u32,
    pub dev: u64,
    pub ino: u64,
}

pub(crate) fn file_id(fd: &Fd) -> Result<FileId> {
    // SAFETY: `st` is a plain-old-data out parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and out pointer.
    if unsafe { libc::fstat(fd.0, &mut st) } < 0 {
        return Err(Error::last_os("fstat"));
    }
    Ok(FileId {
        uid: st.st_uid,
        mode: st.st_mode & 0o7777,
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// Refuses a segment another user planted, or one that grants more than
/// `want` (the opener's `mode`) allows, as ssh refuses its files. An opener
/// whose `want` shares the segment with group or others accepts another
/// owner: that sharing is deliberate.
pub(crate) fn check_owner(fd: &Fd, name: &str, loc: &Location, want: u32) -> Result<()> {
    let id = file_id(fd)?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let shared = want & 0o077 != 0;
    let denied = |detail: String| Error::PermissionDenied {
        name: name.into(),
        path: loc.display(),
        owner: id.uid,
        mode: id.mode,
        detail,
    };
    if id.uid != me && !shared {
        return Err(denied(format!(
            "it belongs to uid {} and this process runs as uid {me}; pass a mode with group/other \
             bits to share a segment between users on purpose",
            id.uid
        )));
    }
    let extra = id.mode & 0o777 & !want;
    if extra != 0 {
        return Err(denied(format!(
            "its mode {:04o} grants more than the requested mode {want:04o} (extra bits {extra:04o})",
            id.mode & 0o777
        )));
    }
    Ok(())
}

/// A new open file description of the file behind `fd` (a process-registry
/// descriptor must not share the attach descriptor's description): through
/// `/proc/self/fd`, else by `loc`, checked to be the same file.
pub(crate) fn reopen(fd: &Fd, loc: &Location) -> Result<Fd> {
    let want = file_id(fd)?;
    let same = |f: &Fd| file_id(f).is_ok_and(|id| id.dev == want.dev && id.ino == want.ino);
    let proc_path = CString::new(format!("/proc/self/fd/{}", fd.0)).expect("no NUL");
    // SAFETY: a valid NUL-terminated path.
    let raw = unsafe { libc::open(proc_path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if raw >= 0 {
        let f = Fd(raw);
        if same(&f) {
            return Ok(f);
        }
    }
    match loc.open(false, 0) {
        Ok(f) if same(&f) => Ok(f),
        Ok(_) => Err(Error::Io {
            op: "reopen segment",
            source: io::Error::other(
                "the segment's name now names another file (unlinked and recreated)",
            ),
        }),
        Err(e) => Err(Error::io("reopen segment", e)),
    }
}

pub(crate) fn file_size(fd: &Fd) -> Result<u64> {
    // SAFETY: `st` is a plain-old-data out parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and out pointer.
    if unsafe { libc::fstat(fd.0, &mut st) } < 0 {
        return Err(Error::last_os("fstat"));
    }
    if (st.st_mode & libc::S_IFMT) != libc::S_IFREG {
        return Err(Error::InvalidArgument(
            "the segment path is not a regular file".into(),
        ));
    }
    Ok(st.st_size as u64)
}

/// Sizes the object and reserves its memory, so that a full /dev/shm fails
/// here rather than with SIGBUS later.
pub(crate) fn reserve(fd: &Fd, name: &str, bytes: u64, mode: u32) -> Result<()> {
    // SAFETY: plain syscalls on a descriptor we own.
    unsafe {
        libc::fchmod(fd.0, mode as libc::mode_t);
        if libc::ftruncate(fd.0, bytes as libc::off_t) < 0 {
            return Err(Error::last_os("ftruncate"));
        }
        let rc = libc::posix_fallocate(fd.0, 0, bytes as libc::off_t);
        if rc != 0 {
            let source = io::Error::from_raw_os_error(rc);
            libc::ftruncate(fd.0, 0);
            return Err(Error::NoSpace {
                name: name.to_owned(),
                bytes,
                source,
            });
        }
    }
    Ok(())
}

pub(crate) fn map(fd: &Fd, len: u64) -> Result<Mapping> {
    if len > isize::MAX as u64 {
        return Err(Error::InvalidArgument("segment too large to map".into()));
    }
    // SAFETY: a fresh shared mapping of `len` bytes of a descriptor we own;
    // the kernel picks the address.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.0,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(Error::last_os("mmap"));
    }
    Ok(Mapping {
        ptr: ptr.cast(),
        len: len as usize,
    })
}
