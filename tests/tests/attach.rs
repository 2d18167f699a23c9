//! Attach never re-initialises, truncates or resizes a segment that anyone
//! has attached, whatever its header says; planted segments (another
//! owner, a wider mode) are refused.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use common::*;
use memshelf::{Cache, Error, OpenOptions};

const CAP: u64 = 1 << 20;
/// Bytes of the header that hold words (geometry and live words).
const HEADER_WORDS: u64 = 768 / 8;

/// Every word of the header corrupted in turn (a bit flip in each of its
/// bytes' low bit, and a random word) while this process and a worker have
/// the segment attached; each time, opens with smaller and larger
/// capacities. No open may re-initialise or resize the segment (the file
/// keeps its length, the attached processes keep their data and see each
/// other's writes), and none may crash anyone: a corrupt header is an
/// error, never a SIGBUS or a split brain.
#[test]
fn corrupt_header_words_under_attached_processes_never_reinitialise() {
    let seg = Seg::new("hdr-corrupt");
    let path = shm_path(seg.name());
    let c = Cache::open(seg.name(), CAP).unwrap();
    c.put("before", "v").unwrap();
    let mut other = Worker::spawn("token", &wargs!("seg" => seg.name(), "cap" => CAP));
    poll_until(Duration::from_secs(20), "the worker attached", || {
        std::fs::read_to_string(format!("/proc/{}/maps", other.pid()))
            .is_ok_and(|m| m.contains(seg.name()))
    });
    let mut rng = Rng::new();
    let mut refused = 0;
    let mut opened = 0;
    for w in 0..HEADER_WORDS {
        let off = w * 8;
        let original = read_header(&path)[off as usize..off as usize + 8].to_vec();
        let mut variants: Vec<[u8; 8]> = (0..8)
            .map(|bit| {
                let mut v: [u8; 8] = original.clone().try_into().unwrap();
                v[bit] ^= 1;
                v
            })
            .collect();
        variants.push(rng.u64(..).to_le_bytes());
        for v in variants {
            write_at(&path, off, &v);
            for cap in [CAP / 2, CAP, CAP * 4] {
                match Cache::open(seg.name(), cap) {
                    Ok(h) => {
                        assert_eq!(h.capacity(), CAP, "word {w}: a handle of another size");
                        opened += 1;
                    }
                    Err(Error::IncompatibleSegment { .. }) => refused += 1,
                    Err(e) => panic!("word {w} corrupted: unexpected error {e:?}"),
                }
                assert_eq!(
                    std::fs::metadata(&path).unwrap().len(),
                    CAP,
                    "word {w} corrupted: the segment was resized"
                );
            }
            write_at(&path, off, &original);
        }
        assert!(other.child.try_wait().unwrap().is_none(), "the worker died");
    }
    // Still one segment: old and new handles see each other's writes.
    assert_eq!(c.get("before").unwrap().as_deref(), Some(&b"v"[..]));
    let fresh = Cache::open(seg.name(), CAP).unwrap();
    fresh.put("after", "w").unwrap();
    assert_eq!(c.get("after").unwrap().as_deref(), Some(&b"w"[..]));
    assert!(
        refused > 0 && opened > 0,
        "refused {refused}, opened {opened}"
    );
    other.kill();
}

/// The case that killed every attached process: bit 0 of header byte 12
/// (the state half of the version word) flipped, then an open with a
/// smaller capacity took the segment for half-made, re-initialised and
/// truncated it (SIGBUS for everyone attached).
#[test]
fn a_flipped_ready_bit_is_an_error_while_attached_and_repaired_when_nobody_is() {
    let seg = Seg::new("hdr-ready");
    let path = shm_path(seg.name());
    let c = Cache::open(seg.name(), CAP).unwrap();
    c.put("k", "v").unwrap();
    let mut hdr = read_header(&path);
    hdr[12] ^= 1;
    write_at(&path, 12, &hdr[12..13]);
    for cap in [CAP / 4, CAP] {
        match Cache::open(seg.name(), cap) {
            Err(e @ Error::IncompatibleSegment { .. }) => {
                let m = e.to_string();
                assert!(m.contains("attached"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), CAP);
    assert_eq!(c.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    drop(c);
    // Nobody attached: the kernel says so, and the segment is repaired.
    // (Retried briefly: a sibling test that forks a worker holds a copy of
    // our attach descriptor until its exec closes it.)
    let mut c = Cache::open(seg.name(), CAP / 2);
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while matches!(c, Err(Error::IncompatibleSegment { .. })) && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
        c = Cache::open(seg.name(), CAP / 2);
    }
    let c = c.unwrap();
    assert_eq!(c.capacity(), CAP / 2);
    c.put("k", "v2").unwrap();
}

fn plant(path: &std::path::Path, uid: u32, mode: u32, bytes: &[u8]) {
    write_private(path, bytes);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(path, Some(uid), None).expect("chown (the tests run as root)");
}

/// /dev/shm is writable by every user: another uid may create
/// `memshelf.<name>` first, mode 0666, and read what root then writes.
#[test]
fn planted_segments_are_refused_naming_owner_and_mode() {
    // SAFETY: geteuid takes no pointer, has no precondition and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test plants files for another uid: run it as root (CI does)"
    );
    for (what, bytes) in [("empty", &b""[..]), ("sized", &[0u8; 8192][..])] {
        let seg = Seg::new(&format!("planted-{what}"));
        let path = shm_path(seg.name());
        plant(&path, 65534, 0o666, bytes);
        match Cache::open(seg.name(), CAP) {
            Err(e @ Error::PermissionDenied { owner: 65534, .. }) => {
                let m = e.to_string();
                assert!(m.contains("65534") && m.contains("0666"), "{m}");
            }
            other => panic!("{what}: {other:?}"),
        }
        // Nothing was written into it.
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{what}");
        // Another owner with a private mode is refused too.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            Cache::open(seg.name(), CAP),
            Err(Error::PermissionDenied { .. })
        ));
    }
    // Our own segment with a wider mode than asked: refused.
    let seg = Seg::new("planted-wide");
    let path = shm_path(seg.name());
    plant(&path, 0, 0o644, b"");
    assert!(matches!(
        Cache::open(seg.name(), CAP),
        Err(Error::PermissionDenied { mode: 0o644, .. })
    ));
    // Deliberate sharing: an opener whose mode has group/other bits accepts
    // another owner's segment of that mode.
    let seg = Seg::new("shared");
    let shared = OpenOptions::new()
        .capacity(CAP)
        .mode(0o666)
        .open(seg.name())
        .unwrap();
    shared.put("k", "v").unwrap();
    let path = shm_path(seg.name());
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o666
    );
    drop(shared);
    std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
    let c = OpenOptions::new()
        .capacity(CAP)
        .mode(0o666)
        .open(seg.name())
        .unwrap();
    assert_eq!(c.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    // The default: a segment this user created opens again.
    let seg = Seg::new("own");
    drop(Cache::open(seg.name(), CAP).unwrap());
    assert!(Cache::open(seg.name(), CAP).is_ok());
}

/// A segment file with holes (planted sparse, or punched out) on a file
/// system too full to fill them: attach fills the holes or refuses with
/// `NoSpace`, as creation does. Before, it mapped the holes, and the first
/// write into one killed the process with SIGBUS.
#[test]
fn a_sparse_segment_on_a_full_file_system_is_refused_not_a_sigbus() {
    let m = Mount::new("sparse", "tmpfs", "size=8m");
    let path = m.file("seg");
    let cap = 4u64 << 20;
    let c = OpenOptions::new()
        .capacity(cap)
        .path(&path)
        .open("sparse-test")
        .unwrap();
    c.put("k", "v").unwrap();
    drop(c);
    // Everything but the header's page becomes a hole (zeros, as a new
    // segment's memory reads), then the rest of the file system is filled.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // SAFETY: plain syscall on a descriptor we own.
    let rc = unsafe {
        libc::fallocate(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            4096,
            (cap - 4096) as libc::off_t,
        )
    };
    assert_eq!(rc, 0, "punch hole: {}", std::io::Error::last_os_error());
    drop(f);
    let filler = m.file("filler");
    let mut out = std::fs::File::create(&filler).unwrap();
    let chunk = vec![1u8; 64 << 10];
    while std::io::Write::write_all(&mut out, &chunk).is_ok() {}
    drop(out);
    let mut w = Worker::spawn("fill-path", &wargs!("path" => path.display(), "n" => 4000));
    let (status, stdout) = w.output(Duration::from_secs(60));
    assert!(
        std::os::unix::process::ExitStatusExt::signal(&status).is_none(),
        "the attached process was killed by signal {:?} (SIGBUS is 7): {stdout}",
        std::os::unix::process::ExitStatusExt::signal(&status)
    );
    assert!(
        stdout.contains("OPEN ERR NoSpace"),
        "attach on a full file system: {status:?}, {stdout}"
    );
    // With room again, the same file attaches and works.
    std::fs::remove_file(&filler).unwrap();
    let mut w = Worker::spawn("fill-path", &wargs!("path" => path.display(), "n" => 4000));
    let out = w.success(Duration::from_secs(60));
    assert!(out.contains("RESULT puts=4000"), "{out}");
}
