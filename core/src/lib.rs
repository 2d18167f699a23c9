//! memshelf: a shared-memory key-value cache that every process on a host
//! uses at memory speed.
//!
//! One lock-free-read hash table lives in a named POSIX shared-memory
//! segment (`/dev/shm/memshelf.<name>`). Any number of processes open it by
//! name and `get`/`put`/`delete` with per-entry TTLs; memory is bounded and
//! an S3-FIFO policy evicts. A process killed at any instruction blocks no
//! one and never makes another see a torn value. See `ARCHITECTURE.md` for
//! the layout and the protocols.
//!
//! ```
//! # let name = format!("doc-lib-{}", std::process::id());
//! use std::time::Duration;
//! use memshelf::{Cache, PutOptions};
//!
//! let cache = Cache::open(&name, 64 << 20)?;          // create or attach
//! cache.put_with(b"session:1", b"alice", &PutOptions::ttl(Duration::from_secs(60)))?;
//! assert_eq!(cache.get(b"session:1")?.as_deref(), Some(&b"alice"[..]));
//! # memshelf::unlink(&name)?;
//! # Ok::<(), memshelf::Error>(())
//! ```
#![warn(missing_docs)]
#![allow(clippy::new_without_default)]

// The engine needs Linux: futexes (SYS_futex), /proc, POSIX shm in /dev/shm.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "memshelf supports Linux only (it needs futexes, /proc and /dev/shm); this target is not Linux"
);

/// The crate's README (`core/README.md`, shown on crates.io) compiled as
/// doctests, warnings denied, so its quick start stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
#[doc(test(attr(deny(warnings))))]
pub struct ReadmeDoctests;

mod bucket;
mod cache;
mod dump;
mod engine;
mod error;
mod index;
mod item;
mod layout;
mod lease;
mod log;
pub mod message;
mod options;
mod read;
mod registry;
mod sampling;
mod segment;
mod shm;
mod sink;
mod stats;
mod sys;
mod tags;
mod write;

pub use cache::{Cache, Keys, ReadInto, unlink, unlink_path};
pub use dump::{DUMP_MAGIC, DUMP_VERSION, DumpReport, LoadReport, dump_to, load_from};
pub use error::{Error, Result};
pub use layout::{ITEM_HEADER, LAYOUT_VERSION, capacity_for_entries};
pub use lease::{FILL_WAIT_SLICE, Fill, FillCall, FillError, FillLease, WaitTicket};
pub use options::{
    DEFAULT_CAPACITY, DEFAULT_EXPECTED_ENTRY_SIZE, DEFAULT_MAX_VALUE_SIZE, Expiry, GetOrSetOptions,
    MAX_CAPACITY, MAX_EXPECTED_ENTRY_SIZE, MAX_KEY_LEN, MAX_TAG_LEN, MAX_TAGS, MAX_TTL,
    MIN_CAPACITY, OpenOptions, PutOptions, Ttl, duration_from_secs, parse_size, validate_key,
    validate_name,
};
pub use sampling::Histogram;
pub use sink::ValueSink;
pub use stats::Stats;

// `Cache` is shared between threads by cloning (an `Arc` inside).
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Cache>();
    assert_send_sync::<FillLease>();
};
