//! Redis Pub/Sub: at-most-once. Every (re)connection is a gap nothing
//! replays: whatever was published meanwhile is lost.
//!
//! Liveness: a PING every `ping_interval`; a PING unanswered within
//! `dead_after` (a stopped or unreachable broker) loses the connection. A
//! closed or reset connection (a killed broker) is noticed at once. With
//! Sentinel, the master's address is checked at each PING: a failover is a
//! gap even when the old master keeps the connection open. With Cluster,
//! one node is enough (classic Pub/Sub is broadcast to every node); a lost
//! node makes the agent try the next seed.

use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::{PubSubSink, PubSubStream};

use super::{Connected, Feed, FeedEvent, Lost};
use crate::broker::{Broker, Topology};
use crate::metrics::GapReason;

type Probe = Pin<Box<dyn std::future::Future<Output = Result<(), Lost>> + Send>>;

struct Conn {
    sink: PubSubSink,
    stream: PubSubStream,
    node: String,
    tick: tokio::time::Interval,
    probe: Option<Probe>,
}

/// Subscribes to channels and patterns.
pub struct PubSub {
    broker: Broker,
    channels: Vec<String>,
    patterns: Vec<String>,
    ping_interval: Duration,
    dead_after: Duration,
    attempt: usize,
    conn: Option<Conn>,
}

impl PubSub {
    /// A feed of `channels` and `patterns` on `broker`; the agent PINGs
    /// every `ping_interval` and gives up on a PING unanswered for
    /// `dead_after`.
    pub fn new(
        broker: Broker,
        channels: Vec<String>,
        patterns: Vec<String>,
        ping_interval: Duration,
        dead_after: Duration,
    ) -> PubSub {
        PubSub {
            broker,
            channels,
            patterns,
            ping_interval,
            dead_after,
            attempt: 0,
            conn: None,
        }
    }

    async fn open(&mut self) -> Result<Conn, String> {
        let t = self.dead_after;
        let (client, node) = self.broker.data_client(None, self.attempt, t).await?;
        let ps = tokio::time::timeout(t, client.get_async_pubsub())
            .await
            .map_err(|_| format!("{node}: no answer within {t:?}"))?
            .map_err(|e| format!("{node}: {e}"))?;
        let (mut sink, stream) = ps.split();
        // One channel per command: the subscription is in place when its
        // confirmation arrives, so a message published after this is seen.
        for c in &self.channels {
            tokio::time::timeout(t, sink.subscribe(c))
                .await
                .map_err(|_| format!("{node}: no SUBSCRIBE confirmation within {t:?}"))?
                .map_err(|e| format!("{node}: SUBSCRIBE {c}: {e}"))?;
        }
        for p in &self.patterns {
            tokio::time::timeout(t, sink.psubscribe(p))
                .await
                .map_err(|_| format!("{node}: no PSUBSCRIBE confirmation within {t:?}"))?
                .map_err(|e| format!("{node}: PSUBSCRIBE {p}: {e}"))?;
        }
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + self.ping_interval,
            self.ping_interval,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Conn {
            sink,
            stream,
            node,
            tick,
            probe: None,
        })
    }

    /// The liveness probe: a PING answered within `dead_after`, and with
    /// Sentinel, the master still where we are connected.
    fn probe(&self, conn: &Conn) -> Probe {
        let mut sink = conn.sink.clone();
        let dead_after = self.dead_after;
        let broker = self.broker.clone();
        let node = conn.node.clone();
        Box::pin(async move {
            match tokio::time::timeout(dead_after, sink.ping::<redis::Value>()).await {
                Err(_) => {
                    return Err(Lost::disconnect(format!(
                        "{node}: PING unanswered for {dead_after:?}"
                    )));
                }
                Ok(Err(e)) => return Err(Lost::disconnect(format!("{node}: PING: {e}"))),
                Ok(Ok(_)) => {}
            }
            if matches!(broker.topology, Topology::Sentinel { .. })
                && let Ok((h, p)) = broker.sentinel_master(dead_after).await
            {
                let now = if h.contains(':') {
                    format!("[{h}]:{p}")
                } else {
                    format!("{h}:{p}")
                };
                if now != node {
                    return Err(Lost {
                        reason: GapReason::Failover,
                        error: format!("the master moved from {node} to {now}"),
                    });
                }
            }
            Ok(())
        })
    }
}

impl Feed for PubSub {
    fn describe(&self) -> String {
        format!(
            "pubsub broker={} channels={} patterns={}",
            self.broker,
            self.channels.join(","),
            self.patterns.join(",")
        )
    }

    fn replayable(&self) -> bool {
        false
    }

    async fn connect(&mut self) -> Result<Connected, String> {
        self.conn = None;
        match self.open().await {
            Ok(c) => {
                self.conn = Some(c);
                Ok(Connected::default())
            }
            Err(e) => {
                self.attempt = self.attempt.wrapping_add(1);
                Err(e)
            }
        }
    }

    async fn next(&mut self) -> Result<FeedEvent, Lost> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Err(Lost::disconnect("not connected"));
            };
            let probing = conn.probe.is_some();
            tokio::select! {
                biased;
                m = conn.stream.next() => {
                    let Some(m) = m else {
                        let node = conn.node.clone();
                        self.conn = None;
                        self.attempt = self.attempt.wrapping_add(1);
                        return Err(Lost::disconnect(format!("{node}: connection closed")));
                    };
                    return Ok(FeedEvent::Payload {
                        data: m.get_payload_bytes().to_vec(),
                        id: None,
                    });
                }
                r = async { conn.probe.as_mut().expect("probing").await }, if probing => {
                    conn.probe = None;
                    if let Err(l) = r {
                        self.conn = None;
                        self.attempt = self.attempt.wrapping_add(1);
                        return Err(l);
                    }
                }
                _ = conn.tick.tick(), if !probing => {
                    let p = self.probe(self.conn.as_ref().expect("connected"));
                    if let Some(c) = self.conn.as_mut() {
                        c.probe = Some(p);
                    }
                }
            }
        }
    }
}
