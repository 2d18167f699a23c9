//! Creation: many processes opening the same new name at once end with one
//! segment; a creator that died half-way leaves nothing that hangs or
//! crashes the next opener.

mod common;

use std::time::Duration;

use common::*;
use memshelf::{Cache, Error, OpenOptions};

const N: u64 = 8;

#[test]
fn eight_processes_creating_one_name_at_once_share_one_segment() {
    for round in 0..2 {
        let seg = Seg::new("race");
        let start = now_ms() + 400;
        let mut ws: Vec<Worker> = (0..N)
            .map(|id| {
                Worker::spawn(
                    "race",
                    &wargs!("seg" => seg.name(), "cap" => 1 << 20, "id" => id, "n" => N,
                            "start_ms" => start),
                )
            })
            .collect();
        for w in &mut ws {
            w.success(Duration::from_secs(30));
        }
        let c = OpenOptions::new().create(false).open(seg.name()).unwrap();
        for id in 0..N {
            let k = format!("member:{id}");
            let v = c
                .get(&k)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: {k} missing"));
            assert_eq!(check_value(k.as_bytes(), &v), Ok(id));
        }
        assert_eq!(c.stats().inserts, N, "round {round}: {:?}", c.stats());
        assert_eq!(
            std::fs::metadata(shm_path(seg.name())).unwrap().len(),
            1 << 20
        );
    }
}

fn usable(c: &Cache) {
    let mut rng = Rng::with_seed(1);
    for i in 0..100 {
        let k = format!("k{i}");
        let v = make_value(k.as_bytes(), i, 64, &mut rng);
        c.put(&k, &v).unwrap();
        assert_eq!(c.get(&k).unwrap().as_deref(), Some(&v[..]));
    }
    assert_eq!(c.incr("n", 2).unwrap(), 2);
}

#[test]
fn an_empty_object_left_by_a_dead_creator_is_initialised() {
    let seg = Seg::new("empty");
    write_private(&shm_path(seg.name()), b"");
    let name = seg.name().to_owned();
    // Attach-only does not hang on it.
    let r = with_deadline(
        Duration::from_secs(10),
        "attach to an empty object",
        move || OpenOptions::new().create(false).open(&name).map(drop),
    );
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    let name = seg.name().to_owned();
    let c = with_deadline(Duration::from_secs(10), "open an empty object", move || {
        Cache::open(&name, 1 << 20)
    })
    .unwrap();
    usable(&c);
    assert_eq!(c.capacity(), 1 << 20);
}

#[test]
fn a_half_written_header_is_initialised_again() {
    // The capacity asked may be smaller or larger than the file left behind.
    for (kind, cap) in [
        ("zeros", 512 << 10),
        ("zeros", 2 << 20),
        ("magic-not-ready", 512 << 10),
    ] {
        let seg = Seg::new("half");
        let path = shm_path(seg.name());
        let f = write_private(&path, b"");
        f.set_len(1 << 20).unwrap();
        drop(f);
        if kind == "magic-not-ready" {
            let mut hdr = vec![0u8; 512];
            hdr[..8].copy_from_slice(b"MEMSHELF");
            hdr[8..12].copy_from_slice(&memshelf::LAYOUT_VERSION.to_le_bytes());
            let mut rng = Rng::new();
            for b in &mut hdr[16..300] {
                *b = rng.u8(..);
            }
            write_at(&path, 0, &hdr);
        }
        let name = seg.name().to_owned();
        let c = with_deadline(Duration::from_secs(10), kind, move || {
            Cache::open(&name, cap)
        })
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        usable(&c);
        // A second handle attaches to the now-ready segment.
        let c2 = OpenOptions::new().create(false).open(seg.name()).unwrap();
        assert_eq!(c2.incr("n", 1).unwrap(), 3, "{kind}");
    }
}

#[test]
fn a_creator_killed_while_holding_the_creation_lock_blocks_no_one() {
    let seg = Seg::new("killed-creator");
    let marker = TempPath::new("creator-ready");
    let mut creator = Worker::spawn(
        "half-creator",
        &wargs!("path" => shm_path(seg.name()).display(), "cap" => 1 << 20,
                "marker" => marker.0.display()),
    );
    poll_until(
        Duration::from_secs(20),
        "the creator to take its lock",
        || marker.0.exists(),
    );
    // An opener now waits on the creation lock...
    let name = seg.name().to_owned();
    let opener = std::thread::spawn(move || Cache::open(&name, 1 << 20));
    std::thread::sleep(Duration::from_millis(100));
    // ... until the creator dies.
    creator.kill();
    let name = seg.name().to_owned();
    let c = with_deadline(
        Duration::from_secs(20),
        "open after the creator died",
        move || opener.join().unwrap(),
    )
    .unwrap();
    usable(&c);
    let c2 = Cache::open(&name, 1 << 20).unwrap();
    assert_eq!(c2.incr("n", 1).unwrap(), 3);
}
