//! Redis server-assisted client-side caching (SPEC 6b, near-cache mode):
//! the `tracking` feed owns the tracking connections (one per data node)
//! and turns Redis's invalidations into key deletes and clears. No
//! publisher is needed: Redis itself reports every key written, expired,
//! evicted or deleted under the tracked prefixes, by any client.
//!
//! How invalidations are received: **RESP3 push on the tracking connection
//! itself** (`HELLO 3`, then `CLIENT TRACKING ON BCAST [PREFIX p]...`, no
//! `NOLOOP`, no `REDIRECT`). Not a `REDIRECT` to a second connection
//! subscribed to `__redis__:invalidate`, because with one connection per
//! node: the invalidations and the redis crate's disconnect notice arrive
//! in order on one channel; the PING that proves the connection alive
//! runs on the very connection that tracks; there is no redirect target
//! that can die on its own (no `tracking-redir-broken` case to miss) and no
//! `CLIENT ID` race between two connections. It needs Redis >= 6 (as
//! tracking does); the URL's `?protocol=` is overridden for this feed.
//!
//! What a push means: an array of keys (the Redis key bytes, used as the
//! memshelf keys unchanged) is one `del` of those keys in every served
//! segment ([`FeedEvent::Keys`]); a null payload (`FLUSHALL`, `FLUSHDB`)
//! clears them ([`FeedEvent::Flush`]). BCAST tracking does not depend on
//! the database index: a write to a key in any database invalidates it
//! (extra deletes are harmless).
//!
//! Gaps: tracking cannot replay, so losing any tracking connection (closed,
//! reset, a PING unanswered within `dead_after`, an unexpected push such as
//! `tracking-redir-broken`) loses the feed: the agent clears at once and
//! stays degraded until every node is tracked again, then clears once more
//! (SPEC 6a). With Sentinel the master's address is checked at each PING (a
//! failover is a gap). With Cluster every master is tracked (BCAST tracking
//! is per node); the set of masters is re-read from `CLUSTER SLOTS` every
//! `topology_interval` and at each (re)connection, and a change (a new or
//! moved master) is a gap, so the new master is tracked at the reconnect.
//! A master that is down keeps the whole feed down (all or nothing): the
//! segments stay degraded until it is back.

use std::pin::Pin;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info};

use super::{Connected, Feed, FeedEvent, Lost};
use crate::broker::{Broker, Topology};
use crate::metrics::GapReason;

type Probe = Pin<Box<dyn std::future::Future<Output = Result<(), Lost>> + Send>>;

/// One tracked node.
struct Node {
    addr: String,
    con: MultiplexedConnection,
}

struct Conn {
    nodes: Vec<Node>,
    /// Pushes from every node, tagged with the node's index.
    pushes: mpsc::UnboundedReceiver<(usize, PushInfo)>,
    tick: tokio::time::Interval,
    probe: Option<Probe>,
    /// When the Cluster's masters are next re-read.
    topology_due: Instant,
}

/// Follows Redis's invalidations of the keys under `prefixes` (all keys
/// when empty).
pub struct Tracking {
    broker: Broker,
    prefixes: Vec<String>,
    ping_interval: Duration,
    dead_after: Duration,
    topology_interval: Duration,
    attempt: usize,
    conn: Option<Conn>,
}

/// The `CLIENT TRACKING` command for `prefixes`.
pub fn tracking_command(prefixes: &[String]) -> redis::Cmd {
    let mut c = redis::cmd("CLIENT");
    c.arg("TRACKING").arg("ON").arg("BCAST");
    for p in prefixes {
        c.arg("PREFIX").arg(p);
    }
    c
}

/// What one push from a tracking connection means.
#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    /// These keys were invalidated.
    Keys(Vec<Vec<u8>>),
    /// A null invalidation: the node's data was flushed.
    Flush,
    /// Nothing to do (an empty invalidation, a reply echoed as a push).
    Ignore,
    /// The connection is lost, or tracking broke (the string says how).
    Lost(String),
}

/// Reads one push.
pub fn classify(p: PushInfo) -> Push {
    match p.kind {
        PushKind::Invalidate => match p.data.into_iter().next() {
            None | Some(Value::Nil) => Push::Flush,
            Some(Value::Array(keys)) | Some(Value::Set(keys)) => {
                let keys: Vec<Vec<u8>> = keys
                    .into_iter()
                    .filter_map(|k| match k {
                        Value::BulkString(b) => Some(b),
                        Value::SimpleString(s) => Some(s.into_bytes()),
                        _ => None,
                    })
                    .collect();
                if keys.is_empty() {
                    Push::Ignore
                } else {
                    Push::Keys(keys)
                }
            }
            // A payload we cannot read: we may have missed keys.
            Some(other) => Push::Lost(format!("unreadable invalidation {other:?}")),
        },
        PushKind::Disconnection => Push::Lost("connection closed".into()),
        PushKind::Other(k) if k == "tracking-redir-broken" => {
            Push::Lost("tracking-redir-broken".into())
        }
        PushKind::Other(k) => {
            debug!(kind = %k, "push ignored");
            Push::Ignore
        }
        // (Un)subscription confirmations and messages of subscriptions
        // this connection never made.
        _ => Push::Ignore,
    }
}

impl Tracking {
    /// A feed tracking `prefixes` on `broker`; the agent PINGs every node
    /// every `ping_interval`, gives up on a PING unanswered for
    /// `dead_after`, and re-reads a Cluster's masters every
    /// `topology_interval`.
    pub fn new(
        broker: Broker,
        prefixes: Vec<String>,
        ping_interval: Duration,
        dead_after: Duration,
        topology_interval: Duration,
    ) -> Tracking {
        Tracking {
            broker,
            prefixes,
            ping_interval,
            dead_after,
            topology_interval,
            attempt: 0,
            conn: None,
        }
    }

    async fn open(&mut self) -> Result<Conn, String> {
        let t = self.dead_after;
        let targets = self.broker.tracking_nodes(self.attempt, t).await?;
        let (tx, pushes) = mpsc::unbounded_channel();
        let mut nodes = Vec::with_capacity(targets.len());
        for (i, (client, addr)) in targets.into_iter().enumerate() {
            let tx = tx.clone();
            let cfg = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(t))
                .set_response_timeout(Some(t))
                .set_push_sender(move |p: PushInfo| tx.send((i, p)));
            let mut con =
                tokio::time::timeout(t, client.get_multiplexed_async_connection_with_config(&cfg))
                    .await
                    .map_err(|_| format!("{addr}: no answer within {t:?}"))?
                    .map_err(|e| format!("{addr}: {e}"))?;
            // Tracking is in place once this is answered: a write after it
            // is pushed.
            tokio::time::timeout(
                t,
                tracking_command(&self.prefixes).query_async::<()>(&mut con),
            )
            .await
            .map_err(|_| format!("{addr}: no CLIENT TRACKING reply within {t:?}"))?
            .map_err(|e| format!("{addr}: CLIENT TRACKING: {e}"))?;
            nodes.push(Node { addr, con });
        }
        let mut tick =
            tokio::time::interval_at(Instant::now() + self.ping_interval, self.ping_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(
            nodes = %nodes.iter().map(|n| n.addr.as_str()).collect::<Vec<_>>().join(","),
            "tracking on"
        );
        Ok(Conn {
            nodes,
            pushes,
            tick,
            probe: None,
            topology_due: Instant::now() + self.topology_interval,
        })
    }

    /// The liveness probe: a PING answered by every node within
    /// `dead_after`; with Sentinel, the master still where we track; with
    /// Cluster (when due), the same set of masters.
    fn probe(&self, conn: &mut Conn) -> Probe {
        let cons: Vec<(String, MultiplexedConnection)> = conn
            .nodes
            .iter()
            .map(|n| (n.addr.clone(), n.con.clone()))
            .collect();
        let dead_after = self.dead_after;
        let broker = self.broker.clone();
        let check_topology =
            broker.topology == Topology::Cluster && Instant::now() >= conn.topology_due;
        if check_topology {
            conn.topology_due = Instant::now() + self.topology_interval;
        }
        Box::pin(async move {
            let pings = cons.iter().map(|(node, c)| {
                let mut c = c.clone();
                async move {
                    match tokio::time::timeout(
                        dead_after,
                        redis::cmd("PING").query_async::<Value>(&mut c),
                    )
                    .await
                    {
                        Err(_) => Err(Lost::disconnect(format!(
                            "{node}: PING unanswered for {dead_after:?}"
                        ))),
                        Ok(Err(e)) => Err(Lost::disconnect(format!("{node}: PING: {e}"))),
                        Ok(Ok(_)) => Ok(()),
                    }
                }
            });
            for r in futures_util::future::join_all(pings).await {
                r?;
            }
            match &broker.topology {
                Topology::Sentinel { .. } => {
                    if let Ok((h, p)) = broker.sentinel_master(dead_after).await {
                        let now = if h.contains(':') {
                            format!("[{h}]:{p}")
                        } else {
                            format!("{h}:{p}")
                        };
                        if cons.first().is_some_and(|(node, _)| *node != now) {
                            return Err(Lost {
                                reason: GapReason::Failover,
                                error: format!("the master moved from {} to {now}", cons[0].0),
                            });
                        }
                    }
                }
                Topology::Cluster if check_topology => {
                    // A seed that cannot answer says nothing: the PINGs
                    // decide about the nodes we track.
                    if let Ok(masters) = broker.cluster_masters(0, dead_after).await {
                        let mut now: Vec<String> = masters
                            .iter()
                            .map(|(h, p)| {
                                if h.contains(':') {
                                    format!("[{h}]:{p}")
                                } else {
                                    format!("{h}:{p}")
                                }
                            })
                            .collect();
                        let mut had: Vec<String> = cons.iter().map(|(n, _)| n.clone()).collect();
                        now.sort();
                        had.sort();
                        if now != had {
                            return Err(Lost {
                                reason: GapReason::Failover,
                                error: format!(
                                    "the cluster's masters changed from {} to {}",
                                    had.join(","),
                                    now.join(",")
                                ),
                            });
                        }
                    }
                }
                _ => {}
            }
            Ok(())
        })
    }

    fn lose(&mut self, l: Lost) -> Result<FeedEvent, Lost> {
        self.conn = None;
        self.attempt = self.attempt.wrapping_add(1);
        Err(l)
    }
}

impl Feed for Tracking {
    fn describe(&self) -> String {
        let prefixes = if self.prefixes.is_empty() {
            "(all keys)".to_string()
        } else {
            self.prefixes.join(",")
        };
        format!("tracking broker={} prefixes={prefixes}", self.broker)
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
                p = conn.pushes.recv() => {
                    let Some((i, p)) = p else {
                        return self.lose(Lost::disconnect("every tracking connection closed"));
                    };
                    let node = conn.nodes.get(i).map_or("?", |n| n.addr.as_str()).to_string();
                    match classify(p) {
                        Push::Keys(keys) => return Ok(FeedEvent::Keys(keys)),
                        Push::Flush => {
                            info!(node = %node, "null invalidation (FLUSHALL/FLUSHDB)");
                            return Ok(FeedEvent::Flush);
                        }
                        Push::Ignore => {}
                        Push::Lost(why) => {
                            let l = Lost::disconnect(format!("{node}: {why}"));
                            return self.lose(l);
                        }
                    }
                }
                r = async { conn.probe.as_mut().expect("probing").await }, if probing => {
                    conn.probe = None;
                    if let Err(l) = r {
                        return self.lose(l);
                    }
                }
                _ = conn.tick.tick(), if !probing => {
                    let mut c = self.conn.take().expect("connected");
                    let p = self.probe(&mut c);
                    c.probe = Some(p);
                    self.conn = Some(c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(kind: PushKind, data: Vec<Value>) -> PushInfo {
        PushInfo { kind, data }
    }

    #[test]
    fn pushes() {
        let keys = Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::BulkString(b"\xff\x00b".to_vec()),
        ]);
        assert_eq!(
            classify(push(PushKind::Invalidate, vec![keys])),
            Push::Keys(vec![b"a".to_vec(), b"\xff\x00b".to_vec()])
        );
        assert_eq!(
            classify(push(PushKind::Invalidate, vec![Value::Nil])),
            Push::Flush
        );
        assert_eq!(
            classify(push(PushKind::Invalidate, vec![Value::Array(vec![])])),
            Push::Ignore
        );
        assert!(matches!(
            classify(push(PushKind::Disconnection, vec![])),
            Push::Lost(_)
        ));
        assert!(matches!(
            classify(push(
                PushKind::Other("tracking-redir-broken".into()),
                vec![]
            )),
            Push::Lost(_)
        ));
        assert!(matches!(
            classify(push(PushKind::Invalidate, vec![Value::Int(3)])),
            Push::Lost(_)
        ));
    }

    #[test]
    fn command() {
        let c = tracking_command(&["user:".into(), "product:".into()]);
        let args: Vec<Vec<u8>> = c
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(b.to_vec()),
                _ => None,
            })
            .collect();
        let want: Vec<&[u8]> = vec![
            b"CLIENT",
            b"TRACKING",
            b"ON",
            b"BCAST",
            b"PREFIX",
            b"user:",
            b"PREFIX",
            b"product:",
        ];
        assert_eq!(args, want);
    }
}
