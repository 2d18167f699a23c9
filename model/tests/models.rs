//! The model checks. Under `--cfg loom` every scenario is explored
//! exhaustively (within `LOOM_MAX_PREEMPTIONS`, default 2); without it the
//! correct protocols run a few hundred times on std threads (a smoke test).
//! The broken variants are loom-only: each must be caught.

use std::time::Instant;

use memshelf_model::{bucket, check, forkgate, lease, reglock, ring, tags};

fn run(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let t = Instant::now();
    let n = check(f);
    eprintln!("model {name}: {n} executions in {:.2?}", t.elapsed());
}

// ---- (b) item write / validated read ---------------------------------

#[test]
fn ring_lap_overwrite() {
    run("ring_lap_overwrite", || {
        ring::lap_overwrite(ring::Variant::Correct)
    });
}

#[test]
fn ring_concurrent_tail_passes() {
    run("ring_concurrent_tail_passes", || {
        ring::concurrent_tail_passes(ring::Variant::Correct)
    });
}

#[test]
fn ring_late_writer() {
    run("ring_late_writer", || {
        ring::late_writer(ring::Variant::Correct)
    });
}

// ---- (a) bucket lock, publish, delete, evictor move --------------------

#[test]
fn bucket_move_vs_put() {
    run("bucket_move_vs_put", || {
        bucket::move_vs_put(bucket::Variant::Correct)
    });
}

#[test]
fn bucket_move_vs_delete() {
    run("bucket_move_vs_delete", || {
        bucket::move_vs_delete(bucket::Variant::Correct)
    });
}

#[test]
fn bucket_move_over_source_vs_delete() {
    run("bucket_move_over_source_vs_delete", || {
        bucket::move_over_source_vs_delete(bucket::Variant::Correct)
    });
}

#[test]
fn bucket_dead_holder() {
    run("bucket_dead_holder", || {
        bucket::dead_holder(bucket::Variant::Correct)
    });
}

#[test]
fn bucket_registry_reuse() {
    run("bucket_registry_reuse", || {
        bucket::registry_reuse(bucket::Variant::Correct)
    });
}

// ---- (c) leases --------------------------------------------------------

#[test]
fn lease_stampede() {
    run("lease_stampede", || {
        lease::stampede(lease::Variant::Correct)
    });
}

#[test]
fn lease_delete_during_fill() {
    run("lease_delete_during_fill", || {
        lease::delete_during_fill(lease::Variant::Correct)
    });
}

#[test]
fn lease_dead_leader() {
    run("lease_dead_leader", || {
        lease::dead_leader(lease::Variant::Correct)
    });
}

#[test]
fn lease_late_leader() {
    run("lease_late_leader", || {
        lease::late_leader(lease::Variant::Correct)
    });
}

#[test]
fn lease_warm_records() {
    run("lease_warm_records", || {
        lease::warm_records(lease::Variant::Correct)
    });
}

/// Each broken variant must make its scenario fail under loom, and fail
/// on one of the model's oracles (not, say, on loom's branch limit).
// ---- (d) tag invalidation records --------------------------------------

#[test]
fn tags_overflow_vs_reader() {
    run("tags_overflow_vs_reader", || {
        tags::overflow_vs_reader(tags::Variant::Correct)
    });
}

#[test]
fn tags_same_tag_twice() {
    run("tags_same_tag_twice", || {
        tags::same_tag_twice(tags::Variant::Correct)
    });
}

// ---- (e) the registration lock after a fork ----------------------------

#[test]
fn reglock_after_fork() {
    run("reglock_after_fork", || {
        reglock::after_fork(reglock::Variant::Correct)
    });
}

// ---- (f) no fork inside a registry descriptor's open/record ------------

#[test]
fn forkgate_fork_during_section() {
    run("forkgate_fork_during_section", || {
        forkgate::fork_during_section(forkgate::Variant::Correct)
    });
}

#[cfg(loom)]
mod broken {
    use super::*;

    const SEQLOCK: &[&str] = &["seqlock argument broken"];
    const FOREIGN: &[&str] = &["torn or foreign bytes"];
    const I1: &[&str] = &["I1 broken", "a read after the", "the bucket holds"];
    const STEAL: &[&str] = &["taken over while its process lives", "Causality violation"];
    const RACE: &[&str] = &[
        "I1 broken",
        "the bucket holds",
        "Causality violation",
        "data race",
    ];
    const LEASE: &[&str] = &[
        "leads while process",
        "fill stored",
        "delete left",
        "the factory ran",
    ];

    const TAGS: &[&str] = &["invalidation lost"];

    fn broken(name: &str, expect: &[&str], f: impl Fn() + Sync + Send + 'static) {
        let t = Instant::now();
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(f)))
            .expect_err("the checker did not catch the broken variant");
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        eprintln!("model {name}: caught in {:.2?}: {msg}", t.elapsed());
        assert!(
            expect.iter().any(|e| msg.contains(e)),
            "{name} failed, but not on the expected oracle: {msg}"
        );
    }

    macro_rules! broken {
        ($name:ident, $expect:expr, $scenario:path, $variant:expr) => {
            #[test]
            fn $name() {
                broken(stringify!($name), $expect, || $scenario($variant));
            }
        };
    }

    broken!(
        ring_no_release_fence,
        SEQLOCK,
        ring::lap_overwrite,
        ring::Variant::NoReleaseFence
    );
    broken!(
        ring_no_acquire_fence,
        SEQLOCK,
        ring::lap_overwrite,
        ring::Variant::NoAcquireFence
    );
    broken!(
        ring_no_tail_recheck,
        SEQLOCK,
        ring::lap_overwrite,
        ring::Variant::NoTailRecheck
    );
    broken!(
        ring_relaxed_publish,
        SEQLOCK,
        ring::lap_overwrite,
        ring::Variant::RelaxedPublish
    );
    broken!(
        ring_unseeded_checksum,
        FOREIGN,
        ring::late_writer,
        ring::Variant::UnseededChecksum
    );

    broken!(
        bucket_move_without_lock,
        I1,
        bucket::move_vs_put,
        bucket::Variant::MoveWithoutLock
    );
    broken!(
        bucket_move_without_lock_delete,
        I1,
        bucket::move_vs_delete,
        bucket::Variant::MoveWithoutLock
    );
    broken!(
        bucket_no_intact_check,
        I1,
        bucket::move_vs_delete,
        bucket::Variant::NoIntactCheck
    );
    broken!(
        bucket_overlap_copy_unlocked,
        I1,
        bucket::move_over_source_vs_delete,
        bucket::Variant::OverlapCopyUnlocked
    );
    broken!(
        bucket_key_slots_valid_only,
        I1,
        bucket::move_vs_delete,
        bucket::Variant::KeySlotsValidOnly
    );
    broken!(
        bucket_unlock_relaxed,
        RACE,
        bucket::dead_holder,
        bucket::Variant::UnlockRelaxed
    );
    broken!(
        bucket_steal_on_timeout,
        STEAL,
        bucket::registry_reuse,
        bucket::Variant::StealOnTimeout
    );
    broken!(
        bucket_generation_before_lock,
        STEAL,
        bucket::registry_reuse,
        bucket::Variant::GenerationBeforeLock
    );
    broken!(
        bucket_lock_orderings_of_the_engine_today,
        STEAL,
        bucket::registry_reuse,
        bucket::Variant::LockAcquireOnly
    );

    broken!(
        lease_deadline_after_unlock,
        LEASE,
        lease::warm_records,
        lease::Variant::DeadlineAfterUnlock
    );
    broken!(
        lease_fill_ignores_claim,
        LEASE,
        lease::late_leader,
        lease::Variant::FillIgnoresClaim
    );
    broken!(
        lease_delete_ignores_pending,
        LEASE,
        lease::delete_during_fill,
        lease::Variant::DeleteIgnoresPending
    );
    broken!(
        lease_takeover_always,
        LEASE,
        lease::stampede,
        lease::Variant::TakeoverAlways
    );

    const REGLOCK: &[&str] = &["two holders", "Causality violation", "data race"];
    broken!(
        reglock_acquire_relaxed,
        REGLOCK,
        reglock::after_fork,
        reglock::Variant::AcquireRelaxed
    );
    broken!(
        reglock_unlock_relaxed,
        REGLOCK,
        reglock::after_fork,
        reglock::Variant::UnlockRelaxed
    );
    broken!(
        reglock_takeover_always,
        REGLOCK,
        reglock::after_fork,
        reglock::Variant::TakeoverAlways
    );

    const FORKGATE: &[&str] = &["inside a section", "Causality violation", "data race"];
    broken!(
        forkgate_acquire_release,
        FORKGATE,
        forkgate::fork_during_section,
        forkgate::Variant::AcquireRelease
    );
    broken!(
        forkgate_no_gate,
        FORKGATE,
        forkgate::fork_during_section,
        forkgate::Variant::NoGate
    );
    broken!(
        forkgate_check_before_announce,
        FORKGATE,
        forkgate::fork_during_section,
        forkgate::Variant::CheckBeforeAnnounce
    );

    broken!(
        tags_record_before_floor,
        TAGS,
        tags::overflow_vs_reader,
        tags::Variant::RecordBeforeFloor
    );
    broken!(
        tags_floor_first,
        TAGS,
        tags::overflow_vs_reader,
        tags::Variant::FloorFirst
    );
    broken!(
        tags_relaxed_reader,
        TAGS,
        tags::overflow_vs_reader,
        tags::Variant::RelaxedReader
    );
    broken!(
        tags_blind_own_update,
        TAGS,
        tags::same_tag_twice,
        tags::Variant::BlindOwnUpdate
    );
}
