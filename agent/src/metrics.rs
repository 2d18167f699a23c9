//! The agent's metrics (SPEC 7), kept in a `prometheus-client` registry and
//! rendered as Prometheus text (version 0.0.4). The served segments' own
//! counters are read from the segments at each scrape.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What happened to one received payload (label `result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied to at least one served segment.
    Applied,
    /// A heartbeat.
    Heartbeat,
    /// Skipped: sent by this host's own origin.
    SkippedOrigin,
    /// Skipped: names a segment this agent does not serve.
    OtherCache,
    /// Not JSON, unknown op, missing field, too large.
    Malformed,
    /// An unknown `"v"` (also counted as a gap).
    UnknownVersion,
    /// Dropped because the queue was full (also counted as a gap).
    Dropped,
    /// A served segment failed to apply it.
    Failed,
    /// One key of a `del` that cannot exist in a cache (empty, longer than
    /// `memshelf::MAX_KEY_LEN`): skipped, the rest applied. Counted per key.
    BadKey,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 9] = [
        Outcome::Applied,
        Outcome::Heartbeat,
        Outcome::SkippedOrigin,
        Outcome::OtherCache,
        Outcome::Malformed,
        Outcome::UnknownVersion,
        Outcome::Dropped,
        Outcome::Failed,
        Outcome::BadKey,
    ];
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Heartbeat => "heartbeat",
            Outcome::SkippedOrigin => "skipped_origin",
            Outcome::OtherCache => "other_cache",
            Outcome::Malformed => "malformed",
            Outcome::UnknownVersion => "unknown_version",
            Outcome::Dropped => "dropped",
            Outcome::Failed => "failed",
            Outcome::BadKey => "bad_key",
        }
    }
}

/// Why the agent may have missed invalidations (label `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapReason {
    /// The agent started (whatever was published while it was not running
    /// is unknown, unless a stream replays it).
    Startup,
    /// The connection to the broker was lost (closed, reset, or a PING
    /// unanswered past the limit).
    Disconnect,
    /// The Sentinel master moved, or (tracking feed) the Cluster's set of
    /// masters changed.
    Failover,
    /// A `seq` jump from one origin.
    Seq,
    /// No message or heartbeat for longer than the silence limit.
    Silence,
    /// The stream was trimmed past the last applied id.
    Trimmed,
    /// The stream was deleted or recreated (or the broker lost it).
    Recreated,
    /// A message with an unknown `"v"`.
    UnknownVersion,
    /// The queue between reader and applier overflowed.
    Overflow,
    /// A segment appeared after the agent started: invalidations before
    /// its attach were not applied to it.
    Attach,
    /// Not a gap: the broker's data was flushed (`FLUSHALL`/`FLUSHDB`, a
    /// null invalidation of the tracking feed), so the served segments were
    /// cleared. Counted in `memshelf_agent_flushes_total` only.
    RedisFlush,
}

impl GapReason {
    /// Every reason, in label order.
    pub const ALL: [GapReason; 11] = [
        GapReason::Startup,
        GapReason::Disconnect,
        GapReason::Failover,
        GapReason::Seq,
        GapReason::Silence,
        GapReason::Trimmed,
        GapReason::Recreated,
        GapReason::UnknownVersion,
        GapReason::Overflow,
        GapReason::Attach,
        GapReason::RedisFlush,
    ];
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            GapReason::Startup => "startup",
            GapReason::Disconnect => "disconnect",
            GapReason::Failover => "failover",
            GapReason::Seq => "seq",
            GapReason::Silence => "silence",
            GapReason::Trimmed => "trimmed",
            GapReason::Recreated => "recreated",
            GapReason::UnknownVersion => "unknown_version",
            GapReason::Overflow => "overflow",
            GapReason::Attach => "attach",
            GapReason::RedisFlush => "redis_flush",
        }
    }
}

/// Upper bounds of the lag histogram, in seconds.
pub const LAG_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabel {
    cache: String,
}

/// `cache` and `op` labels of the sampled latency histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    cache: String,
    op: String,
}

/// A segment's sampled latency histogram (log2 buckets of ns) as a
/// Prometheus histogram in seconds; the sum is estimated from bucket
/// midpoints (the engine keeps counts only).
fn encode_latency(
    m: &mut prometheus_client::encoding::MetricEncoder<'_>,
    h: &memshelf::Histogram,
) -> Result<(), std::fmt::Error> {
    let n = h.buckets.len();
    let buckets: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .enumerate()
        .map(|(b, &c)| {
            let upper = if b + 1 == n {
                f64::INFINITY
            } else {
                memshelf::Histogram::bucket_upper_ns(b) as f64 / 1e9
            };
            (upper, c)
        })
        .collect();
    let sum: f64 = h
        .buckets
        .iter()
        .enumerate()
        .map(|(b, &c)| c as f64 * 0.75 * memshelf::Histogram::bucket_upper_ns(b) as f64 / 1e9)
        .sum();
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, h.count(), &buckets, None)
}

/// The metrics read at scrape time: the segments' stats and the age of the
/// last message.
#[derive(Debug)]
struct Live {
    caches: Arc<Mutex<Vec<memshelf::Cache>>>,
    start: Instant,
    last_message_ms: Arc<AtomicU64>,
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let caches = self.caches.lock().map(|c| c.clone()).unwrap_or_default();
        let stats: Vec<(CacheLabel, memshelf::Stats)> = caches
            .iter()
            .map(|c| {
                (
                    CacheLabel {
                        cache: c.name().to_string(),
                    },
                    c.stats(),
                )
            })
            .collect();
        type Get = fn(&memshelf::Stats) -> u64;
        let counters: [(&str, &str, Get); 4] = [
            ("memshelf_hits", "Gets that found a live entry", |s| s.hits),
            ("memshelf_misses", "Gets that found none", |s| s.misses),
            ("memshelf_evictions", "Entries evicted to make room", |s| {
                s.evictions
            }),
            (
                "memshelf_expirations",
                "Entries dropped because their TTL passed",
                |s| s.expirations,
            ),
        ];
        for (name, help, get) in counters {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (label, st) in &stats {
                ConstCounter::new(get(st)).encode(m.encode_family(label)?)?;
            }
        }
        let gauges: [(&str, &str, Get); 4] = [
            ("memshelf_entries", "Live entries", |s| s.entries),
            (
                "memshelf_data_bytes",
                "Bytes of the segment that can hold items (capacity less header and index): what used_bytes fills up to",
                |s| s.data_bytes,
            ),
            (
                "memshelf_used_bytes",
                "Bytes of the logs holding items",
                |s| s.used_bytes,
            ),
            ("memshelf_capacity_bytes", "Bytes of the segment", |s| {
                s.capacity_bytes
            }),
        ];
        for (name, help, get) in gauges {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (label, st) in &stats {
                ConstGauge::new(get(st) as i64).encode(m.encode_family(label)?)?;
            }
        }
        let mut m = encoder.encode_descriptor(
            "memshelf_hot_key_share",
            "The hottest key's share of the sampled hits (hot-key skew)",
            None,
            MetricType::Gauge,
        )?;
        for (label, st) in &stats {
            ConstGauge::new(st.hot_key_share).encode(m.encode_family(label)?)?;
        }
        let mut m = encoder.encode_descriptor(
            "memshelf_op_duration_seconds",
            "Sampled latency of gets and puts (one in 64 per thread)",
            None,
            MetricType::Histogram,
        )?;
        for (label, st) in &stats {
            for (op, h) in [("get", &st.get_latency), ("put", &st.put_latency)] {
                let l = OpLabel {
                    cache: label.cache.clone(),
                    op: op.into(),
                };
                encode_latency(&mut m.encode_family(&l)?, h)?;
            }
        }
        let now = self.start.elapsed().as_secs_f64();
        let age = now - self.last_message_ms.load(Relaxed) as f64 / 1000.0;
        let m = encoder.encode_descriptor(
            "memshelf_agent_last_message_age_seconds",
            "Seconds since the last payload (or since start)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(age).encode(m)?;
        Ok(())
    }
}

/// Counters and state shared by the reader, the applier and the HTTP server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    messages: [Counter; Outcome::ALL.len()],
    gaps: [Counter; GapReason::ALL.len()],
    flushes: [Counter; GapReason::ALL.len()],
    connected_g: Gauge,
    degraded_g: Gauge,
    coherent_g: Gauge,
    reconnects: Counter,
    lag: Histogram,
    connected: AtomicBool,
    degraded: AtomicBool,
    coherent: AtomicBool,
    silent: AtomicBool,
    /// No broker at all (`--feed none`): always ready.
    no_feed: AtomicBool,
    last_error: Mutex<Option<String>>,
    last_message_ms: Arc<AtomicU64>,
    start: Instant,
    caches: Arc<Mutex<Vec<memshelf::Cache>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let messages = Family::<ResultLabel, Counter>::default();
        let gaps = Family::<ReasonLabel, Counter>::default();
        let flushes = Family::<ReasonLabel, Counter>::default();
        let connected_g = Gauge::default();
        let degraded_g = Gauge::default();
        let coherent_g = Gauge::default();
        let reconnects = Counter::default();
        let lag = Histogram::new(LAG_BUCKETS);
        let caches = Arc::new(Mutex::new(Vec::new()));
        let last_message_ms = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        registry.register_collector(Box::new(Live {
            caches: caches.clone(),
            start,
            last_message_ms: last_message_ms.clone(),
        }));
        registry.register(
            "memshelf_agent_messages",
            "Invalidation payloads received, by result",
            messages.clone(),
        );
        registry.register(
            "memshelf_agent_connected",
            "1 while connected and subscribed to the broker",
            connected_g.clone(),
        );
        registry.register(
            "memshelf_agent_reconnects",
            "Connections made after the first",
            reconnects.clone(),
        );
        registry.register(
            "memshelf_agent_gaps",
            "Moments after which invalidations may have been missed, by reason",
            gaps.clone(),
        );
        registry.register(
            "memshelf_agent_flushes",
            "Clears of the served segments after a gap (or a FLUSHALL/FLUSHDB seen by the tracking feed: redis_flush), by reason",
            flushes.clone(),
        );
        registry.register(
            "memshelf_agent_lag_seconds",
            "Receive time minus the message's ts",
            lag.clone(),
        );
        registry.register(
            "memshelf_agent_degraded",
            "1 while a gap is not yet closed: entries written meanwhile expire within the degraded TTL",
            degraded_g.clone(),
        );
        registry.register(
            "memshelf_agent_coherent",
            "0 when a gap was only logged (gap policy log) and entries may be stale",
            coherent_g.clone(),
        );
        // Every series exists from the start; the handles are kept so that
        // counting is one atomic add.
        let by_outcome = Outcome::ALL.map(|o| {
            messages
                .get_or_create(&ResultLabel { result: o.label() })
                .clone()
        });
        let by_gap = GapReason::ALL.map(|r| {
            if r == GapReason::RedisFlush {
                // Not a gap: no series (the counter is never incremented).
                return Counter::default();
            }
            gaps.get_or_create(&ReasonLabel { reason: r.label() })
                .clone()
        });
        let by_flush = GapReason::ALL.map(|r| {
            flushes
                .get_or_create(&ReasonLabel { reason: r.label() })
                .clone()
        });
        coherent_g.set(1);
        Metrics {
            registry,
            messages: by_outcome,
            gaps: by_gap,
            flushes: by_flush,
            connected_g,
            degraded_g,
            coherent_g,
            reconnects,
            lag,
            connected: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
            coherent: AtomicBool::new(true),
            silent: AtomicBool::new(false),
            no_feed: AtomicBool::new(false),
            last_error: Mutex::new(None),
            last_message_ms,
            start,
            caches,
        }
    }
}

impl Metrics {
    /// Counts one payload.
    pub fn message(&self, o: Outcome) {
        self.messages[o as usize].inc();
    }
    /// Payloads with this outcome so far.
    pub fn messages(&self, o: Outcome) -> u64 {
        self.messages[o as usize].get()
    }
    /// Counts a gap.
    pub fn gap(&self, r: GapReason) {
        self.gaps[r as usize].inc();
    }
    /// Gaps of this reason so far.
    pub fn gaps(&self, r: GapReason) -> u64 {
        self.gaps[r as usize].get()
    }
    /// Counts a clear of the served segments after a gap.
    pub fn flush(&self, r: GapReason) {
        self.flushes[r as usize].inc();
    }
    /// Clears for this reason so far.
    pub fn flushes(&self, r: GapReason) -> u64 {
        self.flushes[r as usize].get()
    }
    /// Counts a successful reconnection.
    pub fn reconnected(&self) {
        self.reconnects.inc();
    }
    /// Successful connections after the first.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.get()
    }
    /// Sets whether the feed is connected and subscribed.
    pub fn set_connected(&self, on: bool) {
        self.connected.store(on, Relaxed);
        self.connected_g.set(i64::from(on));
        if on {
            self.set_error(None);
        }
    }
    /// Whether the feed is connected and subscribed.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Relaxed)
    }
    /// Sets whether the segments are degraded (a gap not yet closed).
    pub fn set_degraded(&self, on: bool) {
        self.degraded.store(on, Relaxed);
        self.degraded_g.set(i64::from(on));
    }
    /// Whether the segments are degraded.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Relaxed)
    }
    /// Sets whether the agent is coherent (false after a gap only logged).
    pub fn set_coherent(&self, on: bool) {
        self.coherent.store(on, Relaxed);
        self.coherent_g.set(i64::from(on));
    }
    /// Whether no gap was only logged since the last clear.
    pub fn is_coherent(&self) -> bool {
        self.coherent.load(Relaxed)
    }
    /// Sets the silence state; returns the previous one.
    pub fn set_silent(&self, on: bool) -> bool {
        self.silent.swap(on, Relaxed)
    }
    /// Marks an agent without a feed (`--feed none`).
    pub fn set_no_feed(&self) {
        self.no_feed.store(true, Relaxed);
    }
    /// Records the last connection error (shown by `/readyz`).
    pub fn set_error(&self, e: Option<String>) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = e;
        }
    }
    /// The last connection error, if not connected since.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|l| l.clone())
    }
    /// Adds a segment to the per-segment metrics.
    pub fn add_cache(&self, c: memshelf::Cache) {
        if let Ok(mut l) = self.caches.lock() {
            l.push(c);
        }
    }
    /// Removes the segment of `c`'s name from the per-segment metrics (it
    /// was unlinked; its successor is added when attached).
    pub fn remove_cache(&self, c: &memshelf::Cache) {
        if let Ok(mut l) = self.caches.lock() {
            l.retain(|x| x.name() != c.name());
        }
    }
    /// Notes that a payload arrived now.
    pub fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_message_ms.store(ms.max(1), Relaxed);
    }
    /// Seconds since the last payload (or since the start when none came).
    pub fn last_message_age(&self) -> f64 {
        let now = self.start.elapsed().as_secs_f64();
        now - self.last_message_ms.load(Relaxed) as f64 / 1000.0
    }
    /// Records a lag (now minus the message's `ts`).
    pub fn lag(&self, secs: f64) {
        self.lag.observe(secs.max(0.0));
    }
    /// Whether `/readyz` answers 200, and why not.
    pub fn ready(&self) -> Result<(), String> {
        if self.no_feed.load(Relaxed) {
            return Ok(());
        }
        if !self.is_connected() {
            return Err(match self.last_error() {
                Some(e) => format!("not connected to the broker: {e}"),
                None => "not connected to the broker".into(),
            });
        }
        if self.is_degraded() {
            return Err("degraded: a gap is not closed yet".into());
        }
        if !self.is_coherent() {
            return Err("a gap was only logged (gap policy log): entries may be stale".into());
        }
        if self.silent.load(Relaxed) {
            return Err("no message or heartbeat within the silence limit".into());
        }
        Ok(())
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut s, &self.registry);
        s
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_tables_follow_the_declaration_order() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i, "{o:?}");
        }
        for (i, r) in GapReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
        let m = Metrics::default();
        m.message(Outcome::BadKey);
        m.gap(GapReason::Recreated);
        m.flush(GapReason::Attach);
        let text = m.render();
        assert!(
            text.contains("memshelf_agent_messages_total{result=\"bad_key\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("memshelf_agent_gaps_total{reason=\"recreated\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("memshelf_agent_flushes_total{reason=\"attach\"} 1"),
            "{text}"
        );
        assert!(text.contains("memshelf_agent_degraded 0"), "{text}");
    }
}
