//! Feeds: where invalidation payloads come from.
//!
//! A [`Feed`] connects (and re-subscribes) to a broker, says whether a
//! verified replay covers the time it was away, and then yields payloads.
//! The agent drives any feed the same way: reconnect with backoff, handle
//! gaps (SPEC 6a), apply payloads. To add a feed (NATS, Kafka, ...),
//! implement the trait and construct it in [`crate::agent::start`].

use std::future::Future;

use crate::metrics::GapReason;

pub mod pubsub;
pub mod stream;
pub mod tracking;

/// The result of a (re)connection.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Connected {
    /// True when the feed replays, from a position verified to belong to
    /// the same stream, everything published while it was away.
    pub covered: bool,
    /// Gaps found while connecting that nothing replays (a trimmed or
    /// recreated stream).
    pub gaps: Vec<GapReason>,
}

/// A lost connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    /// `Disconnect` (closed, reset, PING timeout) or `Failover`.
    pub reason: GapReason,
    /// What happened, for the log.
    pub error: String,
}

impl Lost {
    /// A disconnect.
    pub fn disconnect(error: impl std::fmt::Display) -> Lost {
        Lost {
            reason: GapReason::Disconnect,
            error: error.to_string(),
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
        /// Stream position, for replayable feeds.
        id: Option<String>,
    },
    /// Keys the broker itself invalidated (the tracking feed): deleted
    /// from every served segment, as in a `del` message.
    Keys(Vec<Vec<u8>>),
    /// The broker's data was flushed (tracking feed: `FLUSHALL`,
    /// `FLUSHDB`): every served segment is cleared.
    Flush,
    /// A gap found while connected (e.g. the stream was trimmed past us,
    /// or deleted and recreated).
    Gap(GapReason),
}

/// A source of invalidation payloads.
pub trait Feed: Send + 'static {
    /// A short description for logs ("pubsub channels=a,b").
    fn describe(&self) -> String;
    /// Whether a reconnect may replay what was missed (a stream with a
    /// known position). A feed that cannot replay has the served segments
    /// cleared at once when its connection is lost, and drops payloads
    /// (an overflow gap) when the queue is full; one that can waits.
    fn replayable(&self) -> bool;
    /// Connects and subscribes (or resumes and verifies the position).
    fn connect(&mut self) -> impl Future<Output = Result<Connected, String>> + Send;
    /// The next event, or the connection is lost (the agent reconnects).
    fn next(&mut self) -> impl Future<Output = Result<FeedEvent, Lost>> + Send;
}
