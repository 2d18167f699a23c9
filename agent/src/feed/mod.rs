//! Feeds: where invalidation payloads come from.
//!
//! A [`Feed`] connects (and re-subscribes) to a broker, says whether the
//! time it was away is covered by a replay, and then yields payloads. The
//! agent drives any feed the same way: reconnect with backoff, count gaps,
//! apply payloads. To add a feed (NATS, Kafka, ...), implement the trait
//! and construct it in [`crate::agent::start`].

use std::future::Future;
use std::io;

use crate::metrics::GapReason;

pub mod pubsub;
pub mod stream;

/// A gap noticed by a feed, and whether a replay covers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Why invalidations may have been missed.
    pub reason: GapReason,
    /// True when the feed replays what was missed (no clear needed).
    pub covered: bool,
}

impl Gap {
    /// A gap no replay covers.
    pub fn uncovered(reason: GapReason) -> Gap {
        Gap {
            reason,
            covered: false,
        }
    }
    /// A gap the feed replays.
    pub fn covered(reason: GapReason) -> Gap {
        Gap {
            reason,
            covered: true,
        }
    }
}

/// What a connected feed yields.
#[derive(Debug)]
pub enum FeedEvent {
    /// One payload; `id` is its position in a replayable feed (to
    /// checkpoint once applied).
    Payload {
        /// The raw payload (JSON text, not yet parsed).
        data: Vec<u8>,
        /// Stream id, for replayable feeds.
        id: Option<String>,
    },
    /// A gap found while connected (e.g. the stream was trimmed past us).
    Gap(Gap),
}

/// A source of invalidation payloads.
pub trait Feed: Send + 'static {
    /// A short description for logs ("pubsub channels=a,b").
    fn describe(&self) -> String;
    /// Whether a reconnect replays what was missed; a non-replayable feed
    /// drops payloads (and reports an overflow gap) when the queue is full,
    /// a replayable one waits.
    fn replayable(&self) -> bool;
    /// Connects and subscribes (or resumes). `first` is true for the first
    /// connection of this process. Returns the gaps to account for: for
    /// example a disconnect that a replay covers, or one that it does not.
    fn connect(&mut self, first: bool) -> impl Future<Output = io::Result<Vec<Gap>>> + Send;
    /// The next event. An error means the connection is lost (the agent
    /// then reconnects). Must be cancel-safe only in the sense that
    /// dropping the future and the feed together is fine.
    fn next(&mut self) -> impl Future<Output = io::Result<FeedEvent>> + Send;
}
