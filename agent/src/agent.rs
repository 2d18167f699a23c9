//! The agent: a reader task that drives a [`Feed`] (reconnecting with
//! backoff), a bounded queue, an applier task, and the HTTP server.
//!
//! A lost connection reaches the applier on a separate, unbounded control
//! channel that it reads first, so the served segments are cleared at once
//! (SPEC 6a), not after the payloads still queued.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::apply::Applier;
use crate::config::{Config, FeedKind};
use crate::engine::Guard;
use crate::feed::pubsub::PubSub;
use crate::feed::stream::{StateFile, StreamFeed};
use crate::feed::tracking::Tracking;
use crate::feed::{Connected, Feed, FeedEvent};
use crate::log::RateLimit;
use crate::metrics::{GapReason, Metrics, Outcome};

/// What the reader hands to the applier, in order.
#[derive(Debug)]
enum Event {
    Payload { data: Vec<u8>, id: Option<String> },
    Keys(Vec<Vec<u8>>),
    Flush,
    Connected(Connected),
    Gap(GapReason),
}

/// What the reader tells the applier at once.
#[derive(Debug)]
enum Ctrl {
    Lost { reason: GapReason, replayable: bool },
}

/// A running agent.
pub struct Agent {
    metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    http: Option<SocketAddr>,
}

impl Agent {
    /// The counters (the same ones `/metrics` shows).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
    /// Where the HTTP server listens, if it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }
    /// Stops reading, applies what is queued, saves the stream position
    /// and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts an agent for `cfg` on the current tokio runtime. Before it
/// returns, the served segments that exist are attached, this process is
/// recorded as their keeper, and the start-up gap is handled: cleared at
/// once (unless a stream resumes from a saved position) and degraded until
/// the feed is connected.
pub async fn start(cfg: Config) -> Result<Agent, String> {
    let metrics = Arc::new(Metrics::default());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut http = None;
    if let Some(addr) = &cfg.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        http = listener.local_addr().ok();
        tasks.push(tokio::spawn(crate::http::serve(
            listener,
            metrics.clone(),
            shutdown_rx.clone(),
        )));
    }
    let state = match cfg.feed {
        FeedKind::Stream => cfg.state_file.clone().map(StateFile::new),
        _ => None,
    };
    let mut applier = Applier::new(&cfg, metrics.clone(), state.clone());
    let (tx, rx) = mpsc::channel(cfg.queue_size);
    let (ctrl_tx, ctrl_rx) = mpsc::unbounded_channel();
    let overflow = Arc::new(AtomicBool::new(false));
    info!(
        segments = %cfg.segments.join(","),
        broker = %cfg.broker,
        feed = ?cfg.feed,
        gap_policy = ?cfg.gap_policy,
        degraded_ttl = ?cfg.degraded_ttl,
        http = %http.map_or("off".to_string(), |a| a.to_string()),
        "starting"
    );
    let tick = Guard::tick_every(cfg.degraded_ttl);
    match cfg.feed {
        FeedKind::None => {
            // The exporter alone: no broker, nothing to keep coherent.
            metrics.set_no_feed();
            drop((tx, ctrl_tx));
        }
        FeedKind::Pubsub => {
            if cfg.broker.db() != 0 {
                info!(
                    db = cfg.broker.db(),
                    "Pub/Sub channels do not depend on the database index"
                );
            }
            let feed = PubSub::new(
                cfg.broker.clone(),
                cfg.channels.clone(),
                cfg.patterns.clone(),
                cfg.ping_interval,
                cfg.dead_after,
            );
            applier.startup(feed.replayable());
            tasks.push(tokio::spawn(read_loop(
                feed,
                cfg.clone(),
                tx,
                ctrl_tx,
                metrics.clone(),
                overflow.clone(),
                shutdown_rx.clone(),
            )));
        }
        FeedKind::Tracking => {
            if let Some(limit) = cfg.silence_limit {
                warn!(
                    limit = ?limit,
                    "a silence limit with the tracking feed: an idle Redis pushes nothing, so quiet periods count as gaps (liveness is the PING)"
                );
            }
            if cfg.broker.db() != 0 {
                info!(
                    db = cfg.broker.db(),
                    "BCAST tracking does not depend on the database index: writes in every database invalidate"
                );
            }
            let feed = Tracking::new(
                cfg.broker.clone(),
                cfg.tracking_prefixes.clone(),
                cfg.ping_interval,
                cfg.dead_after,
                cfg.topology_interval,
            );
            applier.startup(feed.replayable());
            tasks.push(tokio::spawn(read_loop(
                feed,
                cfg.clone(),
                tx,
                ctrl_tx,
                metrics.clone(),
                overflow.clone(),
                shutdown_rx.clone(),
            )));
        }
        FeedKind::Stream => {
            let resume = state.as_ref().and_then(StateFile::load);
            let feed = StreamFeed::new(
                cfg.broker.clone(),
                cfg.stream.clone(),
                resume,
                cfg.ping_interval,
                cfg.dead_after,
            );
            applier.startup(feed.replayable());
            tasks.push(tokio::spawn(read_loop(
                feed,
                cfg.clone(),
                tx,
                ctrl_tx,
                metrics.clone(),
                overflow.clone(),
                shutdown_rx.clone(),
            )));
        }
    }
    if cfg.feed == FeedKind::None {
        tasks.push(tokio::spawn(idle_loop(applier, tick, shutdown_rx.clone())));
    } else {
        tasks.push(tokio::spawn(apply_loop(
            applier, rx, ctrl_rx, overflow, tick,
        )));
    }
    Ok(Agent {
        metrics,
        shutdown,
        tasks,
        http,
    })
}

/// Full jitter: a random wait in `[0, min(max, min * 2^attempt)]`.
fn backoff(cfg: &Config, attempt: u32) -> Duration {
    let cap = cfg
        .backoff_min
        .saturating_mul(1u32 << attempt.min(16))
        .min(cfg.backoff_max);
    cap.mul_f64(fastrand::f64())
}

async fn read_loop<F: Feed>(
    mut feed: F,
    cfg: Config,
    tx: mpsc::Sender<Event>,
    ctrl: mpsc::UnboundedSender<Ctrl>,
    metrics: Arc<Metrics>,
    overflow: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut first = true;
    let mut attempt = 0u32;
    let mut fail_log = RateLimit::new(Duration::from_secs(10));
    let mut lost_log = RateLimit::new(Duration::from_secs(10));
    // Connections lost within `STEADY` of being made, in a row: a link that
    // drops every connection (a proxy, `CLIENT KILL` in a loop) backs off
    // as a refused one does, instead of reconnecting every 0-50 ms.
    const STEADY: Duration = Duration::from_secs(10);
    let mut flaps = 0u32;
    let mut connected_at;
    loop {
        let r = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            r = feed.connect() => r,
        };
        match r {
            Ok(c) => {
                if !first {
                    metrics.reconnected();
                }
                info!(feed = %feed.describe(), reconnect = !first, covered = c.covered, "connected");
                first = false;
                attempt = 0;
                connected_at = std::time::Instant::now();
                metrics.touch();
                // In order with the payloads: the second clear lands after
                // the subscription is in place.
                if tx.send(Event::Connected(c)).await.is_err() {
                    return;
                }
                metrics.set_connected(true);
            }
            Err(e) => {
                metrics.set_connected(false);
                if let Some(suppressed) = fail_log.allow() {
                    warn!(broker = %cfg.broker, error = %e, suppressed, "cannot connect to the broker; retrying");
                }
                metrics.set_error(Some(e));
                let wait = backoff(&cfg, attempt);
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
        }
        let replayable = feed.replayable();
        loop {
            let ev = tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                ev = feed.next() => ev,
            };
            let ev = match ev {
                Ok(FeedEvent::Payload { data, id }) => Ok(Event::Payload { data, id }),
                Ok(FeedEvent::Keys(keys)) => Ok(Event::Keys(keys)),
                Ok(FeedEvent::Flush) => Ok(Event::Flush),
                Ok(FeedEvent::Gap(g)) => Ok(Event::Gap(g)),
                Err(lost) => Err(lost),
            };
            match ev {
                Ok(Event::Gap(g)) => {
                    if tx.send(Event::Gap(g)).await.is_err() {
                        return;
                    }
                }
                Ok(ev) => {
                    metrics.touch();
                    if replayable {
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    } else {
                        match tx.try_send(ev) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                metrics.message(Outcome::Dropped);
                                overflow.store(true, Relaxed);
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                }
                Err(lost) => {
                    metrics.set_connected(false);
                    if let Some(suppressed) = lost_log.allow() {
                        warn!(reason = lost.reason.label(), error = %lost.error, suppressed, "disconnected from the broker");
                    }
                    metrics.set_error(Some(lost.error));
                    let replayable = feed.replayable();
                    if ctrl
                        .send(Ctrl::Lost {
                            reason: lost.reason,
                            replayable,
                        })
                        .is_err()
                    {
                        return;
                    }
                    break;
                }
            }
        }
        flaps = if connected_at.elapsed() < STEADY {
            flaps.saturating_add(1)
        } else {
            0
        };
        let wait = backoff(&cfg, flaps);
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn apply_loop(
    mut applier: Applier,
    mut rx: mpsc::Receiver<Event>,
    mut ctrl: mpsc::UnboundedReceiver<Ctrl>,
    overflow: Arc<AtomicBool>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ctrl_open = true;
    loop {
        tokio::select! {
            biased;
            c = ctrl.recv(), if ctrl_open => match c {
                Some(Ctrl::Lost { reason, replayable }) => applier.lost(reason, replayable),
                None => ctrl_open = false,
            },
            ev = rx.recv() => match ev {
                Some(Event::Payload { data, id }) => applier.payload(&data, id.as_deref()),
                Some(Event::Keys(keys)) => applier.invalidated(keys),
                Some(Event::Flush) => applier.flushed(),
                Some(Event::Connected(c)) => applier.connected(c),
                Some(Event::Gap(g)) => applier.gap(g),
                // The reader stopped (shutdown): everything queued is
                // applied.
                None => break,
            },
            _ = tick.tick() => applier.tick(false),
        }
        if overflow.swap(false, Relaxed) {
            applier.gap(GapReason::Overflow);
        }
        if rx.is_empty() {
            applier.checkpoint(false);
        }
    }
    applier.checkpoint(true);
    info!("stopped");
}

/// Without a feed: attaches the segments as they appear (for `/metrics`)
/// until the shutdown.
async fn idle_loop(mut applier: Applier, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            _ = tick.tick() => applier.tick(false),
        }
    }
    info!("stopped");
}
