//! Huge pages: a segment on a tmpfs that allows transparent huge pages
//! (`huge=advise`, `within_size`, `always`) is backed by 2 MiB pages,
//! which take a TLB miss off most lookups of a large segment
//! (`benches/README.md` has the figures); a hugetlbfs `path` works too.
//! Each test mounts its own file system (CI runs as root) and reads the
//! segment's mapping in this process's `/proc/self/smaps`.
//!
//! `huge=advise` failed before: the creator reserved the memory with
//! `posix_fallocate`, which allocates small pages before any mapping can
//! ask for huge ones, so `MADV_HUGEPAGE` changed nothing.

mod common;

use std::path::Path;

use common::*;
use memshelf::{Error, OpenOptions};

/// The kB of `field` (e.g. `ShmemPmdMapped`) in this process's mapping of
/// `file`.
fn smaps_kb(file: &Path, field: &str) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let want = file.display().to_string();
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            inside = line.ends_with(&want);
            continue;
        }
        if inside && let Some(rest) = line.strip_prefix(&format!("{field}:")) {
            return rest.trim().trim_end_matches("kB").trim().parse().unwrap();
        }
    }
    panic!("no mapping of {want} with {field} in /proc/self/smaps");
}

fn thp_available() {
    assert!(
        Path::new("/sys/kernel/mm/transparent_hugepage/shmem_enabled").exists(),
        "this kernel has no transparent huge pages for shmem (CONFIG_TRANSPARENT_HUGEPAGE)"
    );
}

/// Opens (or creates) the segment of `capacity` bytes at `path`.
fn open_at(path: &Path, capacity: u64) -> memshelf::Result<memshelf::Cache> {
    OpenOptions::new()
        .capacity(capacity)
        .path(path)
        .open("huge-pages-test")
}

/// Fills a segment and reads every entry back.
fn usable(c: &memshelf::Cache) {
    for i in 0..10_000u32 {
        c.put(format!("k{i}"), i.to_le_bytes()).unwrap();
    }
    for i in 0..10_000u32 {
        assert_eq!(
            c.get(format!("k{i}")).unwrap().as_deref(),
            Some(&i.to_le_bytes()[..])
        );
    }
}

#[test]
fn a_segment_on_a_huge_advise_tmpfs_is_backed_by_huge_pages() {
    thp_available();
    for huge in ["advise", "within_size", "always"] {
        let m = Mount::new("thp", "tmpfs", &format!("size=128m,huge={huge}"));
        let path = m.file("seg");
        let c = open_at(&path, 64 << 20).unwrap();
        usable(&c);
        let pmd = smaps_kb(&path, "ShmemPmdMapped");
        let rss = smaps_kb(&path, "Rss");
        // What this process touched (the index, the logs' first pages) is
        // mapped with 2 MiB pages, but for the header and the registry's
        // first pages, which may share a small one.
        assert!(
            pmd >= 4 << 10 && pmd + (4 << 10) >= rss,
            "huge={huge}: {pmd} kB of the {rss} kB resident in the segment are huge pages"
        );
        // Another handle (another process in production) maps the same
        // huge pages.
        let c2 = OpenOptions::new()
            .create(false)
            .path(&path)
            .open("huge-pages-test")
            .unwrap();
        assert_eq!(
            c2.get("k7").unwrap().as_deref(),
            Some(&7u32.to_le_bytes()[..])
        );
        drop((c, c2));
    }
}

#[test]
fn a_full_huge_advise_tmpfs_refuses_the_segment_and_keeps_nothing() {
    thp_available();
    let m = Mount::new("thp-full", "tmpfs", "size=16m,huge=advise");
    let path = m.file("seg");
    let e = open_at(&path, 64 << 20).unwrap_err();
    assert!(matches!(e, Error::NoSpace { .. }), "{e:?}");
    assert!(!path.exists(), "a refused segment left its file behind");
    // Space a refused segment took is free again: a segment that fits is
    // made at once.
    let c = open_at(&path, 8 << 20).unwrap();
    usable(&c);
}

#[test]
fn a_segment_on_hugetlbfs_works() {
    let want = 40; // 2 MiB pages: a 64 MiB segment and some room
    let nr = "/proc/sys/vm/nr_hugepages";
    let before: u64 = std::fs::read_to_string(nr).unwrap().trim().parse().unwrap();
    std::fs::write(nr, (before + want).to_string()).unwrap();
    struct Restore(&'static str, u64);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0, self.1.to_string());
        }
    }
    let _restore = Restore(nr, before);
    let free = std::fs::read_to_string("/proc/meminfo").unwrap();
    let free: u64 = free
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .expect("HugePages_Free in /proc/meminfo")
        .trim()
        .parse()
        .unwrap();
    assert!(
        free >= 33,
        "the kernel gave only {free} free 2 MiB pages (asked for {want} more)"
    );
    let m = Mount::new("hugetlb", "hugetlbfs", "pagesize=2M");
    let path = m.file("seg");
    let c = open_at(&path, 64 << 20).unwrap();
    usable(&c);
    let kb = smaps_kb(&path, "KernelPageSize");
    assert_eq!(kb, 2048, "hugetlbfs mapping with {kb} kB pages");
    drop(c);
    std::fs::remove_file(&path).unwrap();
    // More huge pages than are reserved: NoSpace at open, nothing left
    // behind (not SIGBUS at a later fault).
    let e = open_at(&path, (free + 8) * (2 << 20)).unwrap_err();
    assert!(matches!(e, Error::NoSpace { .. }), "{e:?}");
    assert!(!path.exists(), "a refused segment left its file behind");
    // A capacity that is not a whole number of huge pages: a clear error
    // (the kernel says only EINVAL), nothing left behind.
    let e = open_at(&path, (8 << 20) + 4096).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(
        msg.contains("multiple") && msg.contains("2097152") && msg.contains("10485760"),
        "{msg}"
    );
    assert!(!path.exists(), "a refused segment left its file behind");
}
