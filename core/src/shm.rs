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

/// `fstat(2)` of `fd`.
pub(crate) fn fstat(fd: &Fd) -> Result<libc::stat> {
    // SAFETY: `st` is a plain-old-data out parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and out pointer.
    if unsafe { libc::fstat(fd.0, &mut st) } < 0 {
        return Err(Error::last_os("fstat"));
    }
    Ok(st)
}

pub(crate) fn file_id(fd: &Fd) -> Result<FileId> {
    let st = fstat(fd)?;
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
    let st = fstat(fd)?;
    if (st.st_mode & libc::S_IFMT) != libc::S_IFREG {
        return Err(Error::InvalidArgument(
            "the segment path is not a regular file".into(),
        ));
    }
    Ok(st.st_size as u64)
}

/// Sets the new object's mode and size (no memory yet: see `back`).
pub(crate) fn size(fd: &Fd, bytes: u64, mode: u32) -> Result<()> {
    // SAFETY: plain syscalls on a descriptor we own.
    unsafe {
        libc::fchmod(fd.0, mode as libc::mode_t);
        if libc::ftruncate(fd.0, bytes as libc::off_t) < 0 {
            let e = Error::last_os("ftruncate");
            return Err(huge_page_multiple(fd, bytes).unwrap_or(e));
        }
    }
    Ok(())
}

/// On hugetlbfs a file's size is a whole number of huge pages (ftruncate
/// says only EINVAL): the error that names the page size.
fn huge_page_multiple(fd: &Fd, bytes: u64) -> Option<Error> {
    const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;
    // SAFETY: `st` is a plain-old-data out parameter of fstatfs.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and out pointer.
    if unsafe { libc::fstatfs(fd.0, &mut st) } < 0 || st.f_type as i64 != HUGETLBFS_MAGIC {
        return None;
    }
    let page = st.f_bsize as u64;
    (page > 0 && bytes % page != 0).then(|| {
        Error::InvalidArgument(format!(
            "capacity {bytes} B is not a multiple of this hugetlbfs mount's page size \
             ({page} B); use {}",
            bytes.div_ceil(page) * page
        ))
    })
}

/// Allocates the memory of a new object sized by `size` and mapped as
/// `map`, so that a full /dev/shm fails here rather than with SIGBUS later.
/// On a tmpfs mounted `huge=advise` the pages are faulted in through the
/// mapping (`MADV_POPULATE_WRITE`, after `map`'s `MADV_HUGEPAGE`), the only
/// way such a mount hands out huge pages; elsewhere `posix_fallocate`
/// (which allocates huge pages itself where the mount says `always` or
/// `within_size`, and on hugetlbfs). On failure the object is emptied.
pub(crate) fn back(fd: &Fd, map: &Mapping, name: &str, bytes: u64) -> Result<()> {
    let no_space = |source: io::Error| {
        // SAFETY: a plain syscall on a descriptor we own; frees what was
        // allocated before the failure.
        unsafe { libc::ftruncate(fd.0, 0) };
        Err(Error::NoSpace {
            name: name.to_owned(),
            bytes,
            source,
        })
    };
    if huge_on_advice(fd) {
        // Fail at once where the request cannot fit, as posix_fallocate
        // does, instead of filling the file system first.
        // SAFETY: `st` is a plain-old-data out parameter of fstatvfs.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor and out pointer.
        if unsafe { libc::fstatvfs(fd.0, &mut st) } == 0
            && (st.f_bavail as u64).saturating_mul(st.f_frsize as u64) < bytes
        {
            return no_space(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        // SAFETY: the range is exactly the mapping `map` owns; populating
        // changes no contents (a new object reads as zeros either way).
        if unsafe { libc::madvise(map.ptr.cast(), map.len, libc::MADV_POPULATE_WRITE) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            // EFAULT: a page could not be allocated (the fault would have
            // been SIGBUS: the file system is full); ENOMEM: no memory.
            return no_space(e);
        }
        // EINVAL: a kernel before 5.14; fall back.
    }
    // SAFETY: a plain syscall on a descriptor we own.
    let rc = unsafe { libc::posix_fallocate(fd.0, 0, bytes as libc::off_t) };
    if rc != 0 {
        return no_space(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Allocates whatever part of an existing segment's file has no memory
/// yet (a file planted sparse, or with holes punched into it), so that a
/// full file system is `NoSpace` at attach, as it is at creation, and not a
/// SIGBUS at the first write into a hole. A file with all its blocks (every
/// segment memshelf made) costs one `fstat`. `fallocate(2)` itself, never
/// glibc's `posix_fallocate`, whose fallback on a file system without
/// `fallocate` writes a zero byte into each block it reads as zero: on a
/// segment in use that could overwrite another process's store. Where the
/// file system cannot say or cannot allocate, the file is left as it is.
pub(crate) fn fill_holes(fd: &Fd, name: &str, bytes: u64) -> Result<()> {
    let st = fstat(fd)?;
    if (st.st_blocks as u64).saturating_mul(512) >= bytes {
        return Ok(());
    }
    // SAFETY: a plain syscall on a descriptor we own; mode 0 only
    // allocates: it changes no byte of the file.
    if unsafe { libc::fallocate(fd.0, 0, 0, bytes as libc::off_t) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL | libc::ENODEV) => Ok(()),
        _ => Err(Error::NoSpace {
            name: name.to_owned(),
            bytes,
            source: e,
        }),
    }
}

/// Whether `fd`'s file system is a tmpfs mounted with `huge=advise` (read
/// from /proc/self/mountinfo, matched by device number): it gives huge
/// pages only to a mapping that asked with `MADV_HUGEPAGE`.
fn huge_on_advice(fd: &Fd) -> bool {
    let Ok(st) = fstat(fd) else {
        return false;
    };
    let dev = format!("{}:{}", libc::major(st.st_dev), libc::minor(st.st_dev));
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    mount_is_huge_advise(&info, &dev)
}

/// The mountinfo part of `huge_on_advice`: a line's third field is the
/// device, and after " - " come the type, the source and the super-block
/// options (where tmpfs lists `huge=`).
fn mount_is_huge_advise(mountinfo: &str, dev: &str) -> bool {
    mountinfo.lines().any(|line| {
        let Some((mount, fs)) = line.split_once(" - ") else {
            return false;
        };
        let mut fs = fs.split_whitespace();
        mount.split_whitespace().nth(2) == Some(dev)
            && fs.next() == Some("tmpfs")
            && fs
                .nth(1)
                .is_some_and(|opts| opts.split(',').any(|o| o == "huge=advise"))
    })
}

/// `map` for a new object of `len` bytes: hugetlbfs reserves a shared
/// mapping's pages at mmap, so too few free huge pages fail here (ENOMEM),
/// reported as `NoSpace` like a full tmpfs.
pub(crate) fn map_new(fd: &Fd, len: u64, name: &str) -> Result<Mapping> {
    map(fd, len).map_err(|e| match e {
        Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOMEM) => Error::NoSpace {
            name: name.to_owned(),
            bytes: len,
            source,
        },
        e => e,
    })
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
    // Transparent huge pages for the segment where the kernel allows them
    // (shmem_enabled = advise or within_size); fewer TLB misses on a large
    // index and logs. Refused (EINVAL) where THP is off: nothing changes.
    // SAFETY: advice on the mapping just made; it changes no contents.
    unsafe {
        libc::madvise(ptr, len as usize, libc::MADV_HUGEPAGE);
    }
    Ok(Mapping {
        ptr: ptr.cast(),
        len: len as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::mount_is_huge_advise;

    const INFO: &str = "\
24 30 0:22 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw,size=24684084k
42 27 0:39 / /tmp/a rw,relatime - tmpfs tmpfs rw,size=2097152k,huge=advise
43 27 0:40 / /tmp/b rw,relatime - tmpfs tmpfs rw,size=2097152k,huge=within_size
44 27 0:41 / /tmp/c rw,relatime - hugetlbfs none rw,pagesize=2M
45 27 0:42 / /tmp/d rw,relatime shared:9 master:2 - tmpfs x,huge=advise rw,huge=never";

    #[test]
    fn only_a_tmpfs_mounted_huge_advise_needs_the_mapping_populated() {
        assert!(mount_is_huge_advise(INFO, "0:39"));
        for dev in ["0:22", "0:40", "0:41", "0:42", "0:99"] {
            assert!(!mount_is_huge_advise(INFO, dev), "{dev}");
        }
    }
}
