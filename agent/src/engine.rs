//! The one place where the agent uses the engine's segment-wide TTL cap and
//! keeper record (SPEC 6a): `Cache::set_ttl_cap`, `Cache::ttl_cap`,
//! `Cache::become_keeper`.
//!
//! While the agent's cap is set, every entry written by any process expires
//! within it; while the recorded keeper (this agent) is dead by the
//! kernel's word, the engine caps puts at `cap_if_dead` by itself, so a
//! crashed agent never leaves a host silently incoherent.

use std::time::Duration;

use memshelf::Cache;

/// The agent's handle on one served segment's cap.
#[derive(Debug, Default)]
pub struct Guard {
    _private: (),
}

impl Guard {
    /// Records this process as the segment's keeper: while the recorded
    /// keeper is dead, puts are capped at `cap_if_dead`.
    pub fn become_keeper(&mut self, cache: &Cache, cap_if_dead: Duration) -> memshelf::Result<()> {
        cache.become_keeper(cap_if_dead)
    }

    /// Sets (`Some`) or lifts (`None`) the segment-wide TTL cap.
    pub fn set_ttl_cap(&mut self, cache: &Cache, cap: Option<Duration>) -> memshelf::Result<()> {
        cache.set_ttl_cap(cap)
    }

    /// The cap writes obey now (the agent's, or the dead keeper's).
    pub fn ttl_cap(&self, cache: &Cache) -> Option<Duration> {
        cache.ttl_cap()
    }

    /// How often the agent's periodic work runs (silence, late attaches).
    pub fn tick_every(cap: Duration) -> Duration {
        (cap / 4).clamp(Duration::from_millis(5), Duration::from_millis(100))
    }
}
