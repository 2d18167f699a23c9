//! The agent's counters and their Prometheus text rendering (SPEC 7).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

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
    /// A served segment failed to apply it (e.g. it could not be opened).
    Failed,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 8] = [
        Outcome::Applied,
        Outcome::Heartbeat,
        Outcome::SkippedOrigin,
        Outcome::OtherCache,
        Outcome::Malformed,
        Outcome::UnknownVersion,
        Outcome::Dropped,
        Outcome::Failed,
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
        }
    }
}

/// Why the agent may have missed invalidations (label `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapReason {
    /// The agent started (whatever was published while it was not running
    /// is unknown, unless a stream replays it).
    Startup,
    /// The connection to the broker was lost.
    Disconnect,
    /// A `seq` jump from one origin.
    Seq,
    /// No message or heartbeat for longer than the silence limit.
    Silence,
    /// The stream was trimmed (or reset) past the last applied id.
    Trimmed,
    /// A message with an unknown `"v"`.
    UnknownVersion,
    /// The queue between reader and applier overflowed.
    Overflow,
}

impl GapReason {
    /// Every reason, in label order.
    pub const ALL: [GapReason; 7] = [
        GapReason::Startup,
        GapReason::Disconnect,
        GapReason::Seq,
        GapReason::Silence,
        GapReason::Trimmed,
        GapReason::UnknownVersion,
        GapReason::Overflow,
    ];
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            GapReason::Startup => "startup",
            GapReason::Disconnect => "disconnect",
            GapReason::Seq => "seq",
            GapReason::Silence => "silence",
            GapReason::Trimmed => "trimmed",
            GapReason::UnknownVersion => "unknown_version",
            GapReason::Overflow => "overflow",
        }
    }
}

/// Upper bounds of the lag histogram, in seconds.
pub const LAG_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Counters shared by the reader, the applier and the HTTP server.
#[derive(Debug)]
pub struct Metrics {
    messages: [AtomicU64; 8],
    gaps: [AtomicU64; 7],
    flushes: [AtomicU64; 7],
    /// 1 while connected and subscribed.
    pub connected: AtomicBool,
    /// Successful connections after the first one.
    pub reconnects: AtomicU64,
    /// False after a gap under the `log` policy, until a `clear` is applied.
    pub coherent: AtomicBool,
    /// True while no message or heartbeat arrived within the silence limit.
    pub silent: AtomicBool,
    /// Milliseconds since `start` of the last received payload (0: none).
    last_message_ms: AtomicU64,
    lag_buckets: [AtomicU64; 13],
    lag_count: AtomicU64,
    lag_sum_us: AtomicU64,
    start: Instant,
    /// Names of served segments whose stats go into `/metrics`.
    pub caches: Mutex<Vec<memshelf::Cache>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            messages: Default::default(),
            gaps: Default::default(),
            flushes: Default::default(),
            connected: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            coherent: AtomicBool::new(true),
            silent: AtomicBool::new(false),
            last_message_ms: AtomicU64::new(0),
            lag_buckets: Default::default(),
            lag_count: AtomicU64::new(0),
            lag_sum_us: AtomicU64::new(0),
            start: Instant::now(),
            caches: Mutex::new(Vec::new()),
        }
    }
}

fn idx<T: PartialEq>(all: &[T], x: T) -> usize {
    all.iter().position(|a| *a == x).unwrap_or(0)
}

impl Metrics {
    /// Counts one payload.
    pub fn message(&self, o: Outcome) {
        self.messages[idx(&Outcome::ALL, o)].fetch_add(1, Relaxed);
    }
    /// Payloads with this outcome so far.
    pub fn messages(&self, o: Outcome) -> u64 {
        self.messages[idx(&Outcome::ALL, o)].load(Relaxed)
    }
    /// Counts a gap.
    pub fn gap(&self, r: GapReason) {
        self.gaps[idx(&GapReason::ALL, r)].fetch_add(1, Relaxed);
    }
    /// Gaps of this reason so far.
    pub fn gaps(&self, r: GapReason) -> u64 {
        self.gaps[idx(&GapReason::ALL, r)].load(Relaxed)
    }
    /// Counts a flush (clear of the served segments) after a gap.
    pub fn flush(&self, r: GapReason) {
        self.flushes[idx(&GapReason::ALL, r)].fetch_add(1, Relaxed);
    }
    /// Flushes for this reason so far.
    pub fn flushes(&self, r: GapReason) -> u64 {
        self.flushes[idx(&GapReason::ALL, r)].load(Relaxed)
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
        let secs = secs.max(0.0);
        for (i, b) in LAG_BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.lag_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.lag_count.fetch_add(1, Relaxed);
        self.lag_sum_us.fetch_add((secs * 1e6) as u64, Relaxed);
    }
    /// Whether `/readyz` answers 200, and why not.
    pub fn ready(&self) -> Result<(), &'static str> {
        if !self.connected.load(Relaxed) {
            return Err("not connected to the broker");
        }
        if !self.coherent.load(Relaxed) {
            return Err("a gap was only logged (gap policy log): entries may be stale");
        }
        if self.silent.load(Relaxed) {
            return Err("no message or heartbeat within the silence limit");
        }
        Ok(())
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        let caches = self.caches.lock().map(|c| c.clone()).unwrap_or_default();
        let stats: Vec<(String, memshelf::Stats)> = caches
            .iter()
            .map(|c| (c.name().to_string(), c.stats()))
            .collect();
        type Get = fn(&memshelf::Stats) -> u64;
        let per_cache: [(&str, &str, &str, Get); 8] = [
            (
                "memshelf_hits_total",
                "counter",
                "Gets that found a live entry.",
                |s| s.hits,
            ),
            (
                "memshelf_misses_total",
                "counter",
                "Gets that found none.",
                |s| s.misses,
            ),
            (
                "memshelf_evictions_total",
                "counter",
                "Entries evicted to make room.",
                |s| s.evictions,
            ),
            (
                "memshelf_expirations_total",
                "counter",
                "Entries dropped because their TTL passed.",
                |s| s.expirations,
            ),
            (
                "memshelf_entries",
                "gauge",
                "Index slots holding an entry.",
                |s| s.entries,
            ),
            (
                "memshelf_used_bytes",
                "gauge",
                "Bytes of the logs holding items.",
                |s| s.used_bytes,
            ),
            (
                "memshelf_capacity_bytes",
                "gauge",
                "Bytes of the segment.",
                |s| s.capacity_bytes,
            ),
            (
                "memshelf_data_bytes",
                "gauge",
                "Bytes of the segment that can hold items (capacity less header and index): what used_bytes fills up to.",
                |s| s.data_bytes,
            ),
        ];
        for (name, kind, help, get) in per_cache {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (cache, st) in &stats {
                let _ = writeln!(s, "{name}{{cache=\"{}\"}} {}", escape(cache), get(st));
            }
        }
        let _ = writeln!(
            s,
            "# HELP memshelf_agent_messages_total Invalidation payloads received, by result.\n# TYPE memshelf_agent_messages_total counter"
        );
        for o in Outcome::ALL {
            let _ = writeln!(
                s,
                "memshelf_agent_messages_total{{result=\"{}\"}} {}",
                o.label(),
                self.messages(o)
            );
        }
        let _ = writeln!(
            s,
            "# HELP memshelf_agent_connected 1 while connected and subscribed to the broker.\n# TYPE memshelf_agent_connected gauge\nmemshelf_agent_connected {}",
            u8::from(self.connected.load(Relaxed))
        );
        let _ = writeln!(
            s,
            "# HELP memshelf_agent_reconnects_total Connections made after the first.\n# TYPE memshelf_agent_reconnects_total counter\nmemshelf_agent_reconnects_total {}",
            self.reconnects.load(Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP memshelf_agent_coherent 0 when a gap was only logged (gap policy log) and entries may be stale.\n# TYPE memshelf_agent_coherent gauge\nmemshelf_agent_coherent {}",
            u8::from(self.coherent.load(Relaxed))
        );
        let _ = writeln!(
            s,
            "# HELP memshelf_agent_gaps_total Moments after which invalidations may have been missed, by reason.\n# TYPE memshelf_agent_gaps_total counter"
        );
        for r in GapReason::ALL {
            let _ = writeln!(
                s,
                "memshelf_agent_gaps_total{{reason=\"{}\"}} {}",
                r.label(),
                self.gaps(r)
            );
        }
        let _ = writeln!(
            s,
            "# HELP memshelf_agent_flushes_total Clears of the served segments after a gap, by reason.\n# TYPE memshelf_agent_flushes_total counter"
        );
        for r in GapReason::ALL {
            let _ = writeln!(
                s,
                "memshelf_agent_flushes_total{{reason=\"{}\"}} {}",
                r.label(),
                self.flushes(r)
            );
        }
        let _ = writeln!(
            s,
            "# HELP memshelf_agent_lag_seconds Receive time minus the message's ts.\n# TYPE memshelf_agent_lag_seconds histogram"
        );
        for (i, b) in LAG_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "memshelf_agent_lag_seconds_bucket{{le=\"{b}\"}} {}",
                self.lag_buckets[i].load(Relaxed)
            );
        }
        let count = self.lag_count.load(Relaxed);
        let _ = writeln!(
            s,
            "memshelf_agent_lag_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "memshelf_agent_lag_seconds_sum {}",
            self.lag_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "memshelf_agent_lag_seconds_count {count}");
        let _ = writeln!(
            s,
            "# HELP memshelf_agent_last_message_age_seconds Seconds since the last payload (or since start).\n# TYPE memshelf_agent_last_message_age_seconds gauge\nmemshelf_agent_last_message_age_seconds {:.3}",
            self.last_message_age()
        );
        s
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
