//! The agent: a reader task that drives a [`Feed`] (reconnecting with
//! backoff), a bounded queue, an applier task, and the HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::apply::Applier;
use crate::config::{Config, FeedKind};
use crate::feed::pubsub::PubSub;
use crate::feed::stream::{StateFile, StreamFeed};
use crate::feed::{Feed, FeedEvent, Gap};
use crate::log::{RateLimit, log};
use crate::metrics::{GapReason, Metrics, Outcome};

/// What the reader hands to the applier.
#[derive(Debug)]
enum Event {
    Payload { data: Vec<u8>, id: Option<String> },
    Gaps(Vec<Gap>),
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

/// Starts an agent for `cfg` on the current tokio runtime.
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
        FeedKind::Pubsub => None,
    };
    let applier = Applier::new(&cfg, metrics.clone(), state.clone());
    let (tx, rx) = mpsc::channel(cfg.queue_size);
    let overflow = Arc::new(AtomicBool::new(false));
    log(
        "info",
        "starting",
        &[
            ("segments", &cfg.segments.join(",")),
            ("broker", &cfg.broker),
            (
                "gap_policy",
                &format!("{:?}", cfg.gap_policy).to_lowercase(),
            ),
            ("http", &http.map_or("off".to_string(), |a| a.to_string())),
        ],
    );
    let reader = match cfg.feed {
        FeedKind::Pubsub => {
            let feed = PubSub::new(
                cfg.broker.clone(),
                cfg.channels.clone(),
                cfg.patterns.clone(),
                cfg.ping_interval,
                cfg.dead_after,
                cfg.max_message,
            );
            tokio::spawn(read_loop(
                feed,
                cfg.clone(),
                tx,
                metrics.clone(),
                overflow.clone(),
                shutdown_rx.clone(),
            ))
        }
        FeedKind::Stream => {
            let resume = state.as_ref().and_then(StateFile::load);
            let feed = StreamFeed::new(
                cfg.broker.clone(),
                cfg.stream.clone(),
                resume,
                cfg.ping_interval,
                cfg.dead_after,
                cfg.max_message,
            );
            tokio::spawn(read_loop(
                feed,
                cfg.clone(),
                tx,
                metrics.clone(),
                overflow.clone(),
                shutdown_rx.clone(),
            ))
        }
    };
    tasks.push(reader);
    tasks.push(tokio::spawn(apply_loop(applier, rx, overflow)));
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
    metrics: Arc<Metrics>,
    overflow: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let replayable = feed.replayable();
    let mut first = true;
    let mut attempt = 0u32;
    let mut fail_log = RateLimit::new(Duration::from_secs(10));
    loop {
        let r = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            r = feed.connect(first) => r,
        };
        match r {
            Ok(gaps) => {
                if !first {
                    metrics.reconnects.fetch_add(1, Relaxed);
                }
                log(
                    "info",
                    "connected",
                    &[("feed", &feed.describe()), ("reconnect", &!first)],
                );
                first = false;
                attempt = 0;
                metrics.touch();
                // Gaps go in order with the payloads, so the clear lands
                // after the subscription is in place.
                if tx.send(Event::Gaps(gaps)).await.is_err() {
                    return;
                }
                metrics.connected.store(true, Relaxed);
            }
            Err(e) => {
                metrics.connected.store(false, Relaxed);
                if let Some(suppressed) = fail_log.allow() {
                    log(
                        "warn",
                        "cannot connect to the broker",
                        &[
                            ("broker", &cfg.broker),
                            ("error", &e),
                            ("suppressed", &suppressed),
                        ],
                    );
                }
                let wait = backoff(&cfg, attempt);
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
        }
        loop {
            let ev = tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                ev = feed.next() => ev,
            };
            match ev {
                Ok(FeedEvent::Payload { data, id }) => {
                    metrics.touch();
                    let ev = Event::Payload { data, id };
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
                Ok(FeedEvent::Gap(g)) => {
                    if tx.send(Event::Gaps(vec![g])).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    metrics.connected.store(false, Relaxed);
                    log("warn", "disconnected from the broker", &[("error", &e)]);
                    break;
                }
            }
        }
        let wait = backoff(&cfg, 0);
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn apply_loop(
    mut applier: Applier,
    mut rx: mpsc::Receiver<Event>,
    overflow: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            ev = rx.recv() => match ev {
                Some(Event::Payload { data, id }) => applier.payload(&data, id.as_deref()),
                Some(Event::Gaps(gaps)) => {
                    for g in gaps {
                        applier.gap(g);
                    }
                }
                // The reader stopped (shutdown): everything queued is applied.
                None => break,
            },
            _ = tick.tick() => applier.tick(false),
        }
        if overflow.swap(false, Relaxed) {
            applier.gap(Gap::uncovered(GapReason::Overflow));
        }
        if rx.is_empty() {
            applier.checkpoint(false);
        }
    }
    applier.checkpoint(true);
    log("info", "stopped", &[]);
}
