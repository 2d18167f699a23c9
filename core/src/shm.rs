//! Named POSIX shared-memory objects (or plain files) mapped shared, with a
//! creation protocol that is safe against concurrent creators and against a
//! creator that dies half-way.
//!
//! Protocol: every opener takes an exclusive `flock` on the object before
//! looking at it. Under the lock a zero-sized (or zero-magic, or
//! magic-but-not-ready) object is initialised; a ready one is checked and
//! attached. `flock` locks are dropped by the kernel when their holder dies,
//! so a creator killed mid-initialisation leaves an object that the next
//! opener simply initialises again.

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

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it once.
        unsafe {
            libc::close(self.0);
        }
    }
}

/// Where a segment lives.
pub(crate) enum Location<'a> {
    Shm(CString),
    File(&'a Path),
}

impl Location<'_> {
    pub fn shm(name: &str) -> Location<'static> {
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

/// Takes an exclusive flock, polling so the wait is bounded.
pub(crate) fn lock_exclusive(fd: &Fd, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        // SAFETY: plain syscall on a descriptor we own.
        let rc = unsafe { libc::flock(fd.0, libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
            _ => return Err(Error::io("flock", err)),
        }
        if start.elapsed() > timeout {
            return Err(Error::Timeout(format!(
                "another process held the segment's initialisation lock for more than {timeout:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub(crate) fn unlock(fd: &Fd) {
    // SAFETY: plain syscall on a descriptor we own.
    unsafe {
        libc::flock(fd.0, libc::LOCK_UN);
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
