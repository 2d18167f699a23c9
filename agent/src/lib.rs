//! `memshelf-agent`: keeps a host's memshelf segments coherent with the
//! origin data by applying the invalidations writers publish to Redis
//! (Pub/Sub or a Stream), or those Redis itself reports (the `tracking`
//! feed, near-cache mode); one server, Sentinel or Cluster; TLS and ACL
//! users. See `agent/README.md`.
//!
//! The binary is a thin wrapper over [`agent::start`]; tests and benchmarks
//! run the same agent in-process.
#![warn(missing_docs)]

pub mod agent;
pub mod apply;
pub mod broker;
pub mod config;
pub mod engine;
pub mod feed;
pub mod http;
pub mod log;
pub mod metrics;

pub use agent::{Agent, start};
pub use broker::Broker;
pub use config::{Config, FeedKind, GapPolicy};
pub use metrics::{GapReason, Metrics, Outcome};
