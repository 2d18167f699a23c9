//! Redis Pub/Sub: at-most-once. Every (re)connection is a gap nothing
//! replays: whatever was published meanwhile is lost.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use super::{Feed, FeedEvent, Gap};
use crate::metrics::GapReason;
use crate::resp::{Address, Connection, Value};

/// Subscribes to channels and patterns.
pub struct PubSub {
    addr: Address,
    channels: Vec<String>,
    patterns: Vec<String>,
    ping_interval: Duration,
    dead_after: Duration,
    max_frame: usize,
    conn: Option<Connection>,
    last_rx: Instant,
    tick: tokio::time::Interval,
    pending: VecDeque<Vec<u8>>,
}

impl PubSub {
    /// A feed of `channels` and `patterns` on `addr`; the agent PINGs every
    /// `ping_interval` and gives up on a connection silent for `dead_after`.
    pub fn new(
        addr: Address,
        channels: Vec<String>,
        patterns: Vec<String>,
        ping_interval: Duration,
        dead_after: Duration,
        max_message: usize,
    ) -> PubSub {
        PubSub {
            addr,
            channels,
            patterns,
            ping_interval,
            dead_after,
            max_frame: max_message.saturating_mul(4).max(64 << 20),
            conn: None,
            last_rx: Instant::now(),
            tick: tokio::time::interval(ping_interval),
            pending: VecDeque::new(),
        }
    }
}

fn kind(v: &Value) -> Option<(&[u8], &[Value])> {
    match v {
        Value::Array(items) if !items.is_empty() => Some((items[0].as_bytes()?, &items[1..])),
        _ => None,
    }
}

impl Feed for PubSub {
    fn describe(&self) -> String {
        format!(
            "pubsub broker={} channels={} patterns={}",
            self.addr,
            self.channels.join(","),
            self.patterns.join(",")
        )
    }

    fn replayable(&self) -> bool {
        false
    }

    async fn connect(&mut self, first: bool) -> io::Result<Vec<Gap>> {
        self.conn = None;
        self.pending.clear();
        let mut c = Connection::connect(&self.addr, self.dead_after).await?;
        c.set_max_frame(self.max_frame);
        let mut expect = 0;
        if !self.channels.is_empty() {
            let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
            args.extend(self.channels.iter().map(|s| s.as_bytes()));
            c.send(&args).await?;
            expect += self.channels.len();
        }
        if !self.patterns.is_empty() {
            let mut args: Vec<&[u8]> = vec![b"PSUBSCRIBE"];
            args.extend(self.patterns.iter().map(|s| s.as_bytes()));
            c.send(&args).await?;
            expect += self.patterns.len();
        }
        // Wait for every confirmation, so that the subscription is in place
        // before the caller clears (a message published after this point is
        // delivered). Messages may already interleave: keep them.
        let deadline = tokio::time::Instant::now() + self.dead_after;
        while expect > 0 {
            let v = tokio::time::timeout_at(deadline, c.read())
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "no SUBSCRIBE confirmation")
                })??;
            match kind(&v) {
                Some((b"subscribe" | b"psubscribe", _)) => expect -= 1,
                _ => {
                    if let Some(data) = into_payload(v)? {
                        self.pending.push_back(data);
                    }
                }
            }
        }
        self.conn = Some(c);
        self.last_rx = Instant::now();
        self.tick = tokio::time::interval_at(
            tokio::time::Instant::now() + self.ping_interval,
            self.ping_interval,
        );
        self.tick
            .set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(vec![Gap::uncovered(if first {
            GapReason::Startup
        } else {
            GapReason::Disconnect
        })])
    }

    async fn next(&mut self) -> io::Result<FeedEvent> {
        if let Some(data) = self.pending.pop_front() {
            return Ok(FeedEvent::Payload { data, id: None });
        }
        let PubSub {
            conn,
            tick,
            last_rx,
            dead_after,
            ..
        } = self;
        let conn = conn
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))?;
        loop {
            let frame = tokio::select! {
                f = conn.read() => Some(f?),
                _ = tick.tick() => None,
            };
            let Some(v) = frame else {
                if last_rx.elapsed() > *dead_after {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no reply from the broker for {dead_after:?}"),
                    ));
                }
                conn.send(&[b"PING"]).await?;
                continue;
            };
            *last_rx = Instant::now();
            if let Some(data) = into_payload(v)? {
                return Ok(FeedEvent::Payload { data, id: None });
            }
        }
    }
}

/// The payload of a `message`/`pmessage` push; `None` for PONG replies and
/// (un)subscribe confirmations (liveness only).
fn into_payload(v: Value) -> io::Result<Option<Vec<u8>>> {
    match v {
        Value::Array(items) => {
            let is_msg = match items.first().and_then(Value::as_bytes) {
                Some(b"message") => items.len() == 3,
                Some(b"pmessage") => items.len() == 4,
                _ => false,
            };
            if !is_msg {
                return Ok(None);
            }
            Ok(Some(match items.into_iter().next_back() {
                Some(Value::Bulk(b)) => b,
                _ => Vec::new(),
            }))
        }
        Value::Error(e) => Err(io::Error::other(format!("broker error: {e}"))),
        _ => Ok(None),
    }
}
