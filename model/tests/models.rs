//! The model checks. Under `--cfg loom` every scenario is explored
//! exhaustively (within `LOOM_MAX_PREEMPTIONS`, default 2); without it the
//! correct protocols run a few hundred times on std threads (a smoke test).
//! The broken variants are loom-only: each must be caught.

use std::time::Instant;

use memshelf_model::{bucket, check, lease, ring};

fn run(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let t = Instant::now();
    let n = check(f);
    eprintln!("model {name}: {n} executions in {:.2?}", t.elapsed());
}

// ---- (b) item write / validated read ---------------------------------

#[test]
fn ring_lap_overwrite() {
    run("ring_lap_overwrite", || ring::lap_overwrite(ring::Variant::Correct));
}

#[test]
fn ring_concurrent_tail_passes() {
    run("ring_concurrent_tail_passes", || {
        ring::concurrent_tail_passes(ring::Variant::Correct)
    });
}

#[test]
fn ring_late_writer() {
    run("ring_late_writer", || ring::late_writer(ring::Variant::Correct));
}

// ---- (a) bucket lock, publish, delete, evictor move --------------------

#[test]
fn bucket_move_vs_put() {
    run("bucket_move_vs_put", || bucket::move_vs_put(bucket::Variant::Correct));
}

#[test]
fn bucket_move_vs_delete() {
    run("bucket_move_vs_delete", || {
        bucket::move_vs_delete(bucket::Variant::Correct)
    });
}

#[test]
fn bucket_dead_holder() {
    run("bucket_dead_holder", || bucket::dead_holder(bucket::Variant::Correct));
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
    run("lease_stampede", || lease::stampede(lease::Variant::Correct));
}

#[test]
fn lease_delete_during_fill() {
    run("lease_delete_during_fill", || {
        lease::delete_during_fill(lease::Variant::Correct)
    });
}

#[test]
fn lease_dead_leader() {
    run("lease_dead_leader", || lease::dead_leader(lease::Variant::Correct));
}

#[test]
fn lease_late_leader() {
    run("lease_late_leader", || lease::late_leader(lease::Variant::Correct));
}

#[test]
fn lease_warm_records() {
    run("lease_warm_records", || lease::warm_records(lease::Variant::Correct));
}

/// Each broken variant must make its scenario fail under loom.
#[cfg(loom)]
mod broken {
    use super::*;

    macro_rules! broken {
        ($name:ident, $scenario:path, $variant:expr) => {
            #[test]
            #[should_panic]
            fn $name() {
                run(stringify!($name), || $scenario($variant));
            }
        };
    }

    broken!(ring_no_release_fence, ring::lap_overwrite, ring::Variant::NoReleaseFence);
    broken!(ring_no_acquire_fence, ring::lap_overwrite, ring::Variant::NoAcquireFence);
    broken!(ring_no_tail_recheck, ring::lap_overwrite, ring::Variant::NoTailRecheck);
    broken!(ring_relaxed_publish, ring::lap_overwrite, ring::Variant::RelaxedPublish);
    broken!(ring_unseeded_checksum, ring::late_writer, ring::Variant::UnseededChecksum);

    broken!(bucket_move_without_lock, bucket::move_vs_put, bucket::Variant::MoveWithoutLock);
    broken!(bucket_move_without_lock_delete, bucket::move_vs_delete, bucket::Variant::MoveWithoutLock);
    broken!(bucket_no_intact_check, bucket::move_vs_delete, bucket::Variant::NoIntactCheck);
    broken!(bucket_key_slots_valid_only, bucket::move_vs_delete, bucket::Variant::KeySlotsValidOnly);
    broken!(bucket_unlock_relaxed, bucket::dead_holder, bucket::Variant::UnlockRelaxed);
    broken!(bucket_steal_on_timeout, bucket::registry_reuse, bucket::Variant::StealOnTimeout);
    broken!(bucket_generation_before_lock, bucket::registry_reuse, bucket::Variant::GenerationBeforeLock);

    broken!(lease_deadline_after_unlock, lease::warm_records, lease::Variant::DeadlineAfterUnlock);
    broken!(lease_fill_ignores_claim, lease::late_leader, lease::Variant::FillIgnoresClaim);
    broken!(lease_delete_ignores_pending, lease::delete_during_fill, lease::Variant::DeleteIgnoresPending);
    broken!(lease_takeover_always, lease::stampede, lease::Variant::TakeoverAlways);
}
