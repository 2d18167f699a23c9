//! The one place where the agent uses the engine's segment-wide TTL cap and
//! keeper record (SPEC 6a).
//!
//! The engine API (`Cache::set_ttl_cap`, `Cache::ttl_cap`,
//! `Cache::become_keeper`, `Cache::keeper_alive`) is being added to the core.
//! Until it is there, this adapter emulates the cap from the agent's side:
//! while a cap is set, [`Guard::tick`] clears the segment every `cap`, so no
//! entry written meanwhile (by any process) is served for longer than the
//! cap plus one tick. The keeper record (a crashed agent leaves puts capped)
//! needs the engine and is a no-op here.

use std::time::{Duration, Instant};

use memshelf::Cache;

/// The agent's handle on one served segment's cap.
#[derive(Debug)]
pub struct Guard {
    cap: Option<Duration>,
    last_clear: Instant,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            cap: None,
            last_clear: Instant::now(),
        }
    }
}

impl Guard {
    /// Records this process as the segment's keeper: while the recorded
    /// keeper is dead, puts are capped at `cap_if_dead`.
    pub fn become_keeper(
        &mut self,
        _cache: &Cache,
        _cap_if_dead: Duration,
    ) -> memshelf::Result<()> {
        Ok(())
    }

    /// Sets (`Some`) or lifts (`None`) the segment-wide TTL cap.
    pub fn set_ttl_cap(&mut self, _cache: &Cache, cap: Option<Duration>) -> memshelf::Result<()> {
        if cap.is_some() && self.cap.is_none() {
            self.last_clear = Instant::now();
        }
        self.cap = cap;
        Ok(())
    }

    /// The cap in force.
    pub fn ttl_cap(&self, _cache: &Cache) -> Option<Duration> {
        self.cap
    }

    /// Notes that the segment was just cleared.
    pub fn cleared(&mut self) {
        self.last_clear = Instant::now();
    }

    /// Periodic work of the emulation: clears the segment when the cap has
    /// passed since the last clear. Returns whether it cleared.
    pub fn tick(&mut self, cache: &Cache) -> memshelf::Result<bool> {
        match self.cap {
            Some(cap) if self.last_clear.elapsed() >= cap => {
                cache.clear()?;
                self.last_clear = Instant::now();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// How often [`Guard::tick`] must run for the cap to hold within a
    /// small margin.
    pub fn tick_every(cap: Duration) -> Duration {
        (cap / 4).clamp(Duration::from_millis(5), Duration::from_millis(100))
    }
}
