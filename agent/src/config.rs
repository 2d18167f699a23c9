//! Configuration: command-line flags, each with an environment variable,
//! over an optional TOML file, over defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::broker::{Broker, BrokerOptions};
use crate::log::LogFormat;

/// Which broker feed to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FeedKind {
    /// Redis Pub/Sub: at-most-once; any disconnect is a gap.
    Pubsub,
    /// A Redis Stream: replayable from the last applied id.
    Stream,
    /// Redis server-assisted client-side caching (near-cache mode): the
    /// agent tracks the keys under `tracking_prefixes` (`CLIENT TRACKING
    /// ON BCAST`) and deletes each key any client writes, expires, evicts or
    /// deletes in Redis; no publisher needed. Not replayable: a lost
    /// connection is a gap.
    Tracking,
    /// No broker: only the exporter (`/metrics` of the served segments).
    None,
}

/// What to do on a gap that no replay covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GapPolicy {
    /// Clear the served segments (O(1)): never serve possibly stale entries.
    Clear,
    /// Only log and count it; `/readyz` then reports the agent incoherent.
    Log,
}

/// `memshelf-agent`: keeps this host's memshelf segments coherent by
/// applying the invalidations published to Redis.
#[derive(Parser, Debug, Default)]
#[command(name = "memshelf-agent", version, about, long_about = None)]
pub struct Cli {
    /// TOML file with the same settings (snake_case keys); flags and
    /// environment variables override it. [default: none]
    #[arg(long, env = "MEMSHELF_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Segment to serve (repeat, or comma-separate in the variable).
    /// [default: none, one is required]
    #[arg(
        long = "segment",
        env = "MEMSHELF_AGENT_SEGMENTS",
        value_delimiter = ','
    )]
    pub segments: Vec<String>,
    /// Create absent segments with this capacity ("256MiB"); without it the
    /// agent only attaches, retrying until the application creates them.
    /// [default: none]
    #[arg(long, env = "MEMSHELF_AGENT_CREATE_CAPACITY")]
    pub create_capacity: Option<String>,
    /// redis://user:pass@host:port/db (each part but the host optional),
    /// rediss://... (TLS), unix:///path, redis+sentinel://s1:26379,s2:26379/MASTER/db,
    /// redis+cluster://n1:7000,n2:7001. [default: redis://127.0.0.1:6379]
    #[arg(long, env = "MEMSHELF_AGENT_BROKER")]
    pub broker: Option<String>,
    /// The broker hosts are sentinels of this master (instead of a
    /// redis+sentinel:// URL). [default: none]
    #[arg(long, env = "MEMSHELF_AGENT_SENTINEL_MASTER")]
    pub sentinel_master: Option<String>,
    /// The broker hosts are Redis Cluster nodes (instead of a
    /// redis+cluster:// URL). [default: false]
    #[arg(long, env = "MEMSHELF_AGENT_CLUSTER")]
    pub cluster: bool,
    /// PEM file of the CA that signs the broker's certificate (rediss://).
    /// [default: the system's roots]
    #[arg(long, env = "MEMSHELF_AGENT_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --tls-key). [default: none]
    #[arg(long, env = "MEMSHELF_AGENT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert. [default: none]
    #[arg(long, env = "MEMSHELF_AGENT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// pubsub (at-most-once), stream (replayable), tracking (near-cache
    /// mode: Redis reports every key written, expired, evicted or deleted,
    /// no publisher; not replayable) or none (exporter only, no broker).
    /// [default: pubsub]
    #[arg(long, env = "MEMSHELF_AGENT_FEED")]
    pub feed: Option<FeedKind>,
    /// Pub/Sub channel to subscribe to (repeatable). [default: memshelf]
    #[arg(
        long = "channel",
        env = "MEMSHELF_AGENT_CHANNELS",
        value_delimiter = ','
    )]
    pub channels: Vec<String>,
    /// Pub/Sub pattern to subscribe to (PSUBSCRIBE; repeatable). [default: none]
    #[arg(
        long = "pattern",
        env = "MEMSHELF_AGENT_PATTERNS",
        value_delimiter = ','
    )]
    pub patterns: Vec<String>,
    /// Key prefix to track (feed tracking; repeat, or comma-separate in the
    /// variable): a key written under it in Redis is deleted from the
    /// served segments. Prefixes must not overlap. [default: none: every
    /// key]
    #[arg(
        long = "tracking-prefix",
        env = "MEMSHELF_AGENT_TRACKING_PREFIXES",
        value_delimiter = ','
    )]
    pub tracking_prefixes: Vec<String>,
    /// How often the tracking feed re-reads a Redis Cluster's masters
    /// (CLUSTER SLOTS); a new or moved master is a gap, then tracked.
    /// [default: 5s]
    #[arg(long, env = "MEMSHELF_AGENT_TOPOLOGY_INTERVAL")]
    pub topology_interval: Option<String>,
    /// Stream key to read (feed stream). [default: memshelf]
    #[arg(long, env = "MEMSHELF_AGENT_STREAM")]
    pub stream: Option<String>,
    /// File keeping the last applied stream position across restarts.
    /// [default: none]
    #[arg(long, env = "MEMSHELF_AGENT_STATE_FILE")]
    pub state_file: Option<PathBuf>,
    /// Address of the HTTP server (/metrics, /healthz, /readyz); "off" for
    /// none. [default: 127.0.0.1:9464]
    #[arg(long, env = "MEMSHELF_AGENT_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// clear or log (only count gaps: entries may be stale). [default: clear]
    #[arg(long, env = "MEMSHELF_AGENT_GAP_POLICY")]
    pub gap_policy: Option<GapPolicy>,
    /// While a gap is not closed, every entry written expires within this
    /// ("1s", "500ms"). [default: 1s]
    #[arg(long, env = "MEMSHELF_AGENT_DEGRADED_TTL")]
    pub degraded_ttl: Option<String>,
    /// A gap when no message or heartbeat arrives for this long ("10s"; 0:
    /// off). [default: 0 (off)]
    #[arg(long, env = "MEMSHELF_AGENT_SILENCE_LIMIT")]
    pub silence_limit: Option<String>,
    /// This host's writer id: messages whose origin is ID or starts with
    /// "ID:" are skipped. [default: none]
    #[arg(long, env = "MEMSHELF_AGENT_ORIGIN")]
    pub origin: Option<String>,
    /// Messages buffered between the socket reader and the applier.
    /// [default: 65536]
    #[arg(long, env = "MEMSHELF_AGENT_QUEUE_SIZE")]
    pub queue_size: Option<usize>,
    /// Largest payload accepted ("1MiB"); larger ones are malformed.
    /// [default: 1MiB]
    #[arg(long, env = "MEMSHELF_AGENT_MAX_MESSAGE")]
    pub max_message: Option<String>,
    /// Interval of the agent's PINGs (stream: longest XREAD BLOCK).
    /// [default: 1s]
    #[arg(long, env = "MEMSHELF_AGENT_PING_INTERVAL")]
    pub ping_interval: Option<String>,
    /// A PING (or a stream read) unanswered for this long loses the
    /// connection: a stopped broker is detected within ping-interval +
    /// dead-after. [default: 2s]
    #[arg(long, env = "MEMSHELF_AGENT_DEAD_AFTER")]
    pub dead_after: Option<String>,
    /// Longest wait between reconnection attempts. [default: 5s]
    #[arg(long, env = "MEMSHELF_AGENT_BACKOFF_MAX")]
    pub backoff_max: Option<String>,
    /// human or json (one object per line). [default: human]
    #[arg(long, env = "MEMSHELF_AGENT_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// error, warn, info, debug or trace. [default: info]
    #[arg(long, env = "MEMSHELF_AGENT_LOG_LEVEL")]
    pub log_level: Option<tracing::Level>,
}

/// The TOML file: the same settings as [`Cli`].
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    segments: Option<Vec<String>>,
    create_capacity: Option<String>,
    broker: Option<String>,
    sentinel_master: Option<String>,
    cluster: Option<bool>,
    tls_ca_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    feed: Option<FeedKind>,
    channels: Option<Vec<String>>,
    patterns: Option<Vec<String>>,
    tracking_prefixes: Option<Vec<String>>,
    topology_interval: Option<String>,
    stream: Option<String>,
    state_file: Option<PathBuf>,
    metrics_addr: Option<String>,
    gap_policy: Option<GapPolicy>,
    degraded_ttl: Option<String>,
    silence_limit: Option<String>,
    origin: Option<String>,
    queue_size: Option<usize>,
    max_message: Option<String>,
    ping_interval: Option<String>,
    dead_after: Option<String>,
    backoff_max: Option<String>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Served segments.
    pub segments: Vec<String>,
    /// Create absent segments with this capacity.
    pub create_capacity: Option<u64>,
    /// The broker.
    pub broker: Broker,
    /// The feed.
    pub feed: FeedKind,
    /// Pub/Sub channels.
    pub channels: Vec<String>,
    /// Pub/Sub patterns.
    pub patterns: Vec<String>,
    /// Tracked key prefixes (feed tracking; empty: every key).
    pub tracking_prefixes: Vec<String>,
    /// How often the tracking feed re-reads a Cluster's masters.
    pub topology_interval: Duration,
    /// Stream key.
    pub stream: String,
    /// Where the last applied stream id is kept.
    pub state_file: Option<PathBuf>,
    /// HTTP listen address (None: no server).
    pub metrics_addr: Option<String>,
    /// Gap policy.
    pub gap_policy: GapPolicy,
    /// The segment-wide TTL cap while degraded.
    pub degraded_ttl: Duration,
    /// Silence limit (None: off).
    pub silence_limit: Option<Duration>,
    /// Own origin id.
    pub origin: Option<String>,
    /// Queue capacity.
    pub queue_size: usize,
    /// Largest payload.
    pub max_message: usize,
    /// PING interval.
    pub ping_interval: Duration,
    /// Dead-connection timeout.
    pub dead_after: Duration,
    /// Smallest reconnect backoff.
    pub backoff_min: Duration,
    /// Largest reconnect backoff.
    pub backoff_max: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Log level.
    pub log_level: tracing::Level,
}

impl Config {
    /// Defaults for `segments` on `broker` (used by tests and benchmarks).
    pub fn new(segments: &[&str], broker: Broker) -> Config {
        Config {
            segments: segments.iter().map(|s| s.to_string()).collect(),
            create_capacity: None,
            broker,
            feed: FeedKind::Pubsub,
            channels: vec!["memshelf".into()],
            patterns: Vec::new(),
            tracking_prefixes: Vec::new(),
            topology_interval: Duration::from_secs(5),
            stream: "memshelf".into(),
            state_file: None,
            metrics_addr: None,
            gap_policy: GapPolicy::Clear,
            degraded_ttl: Duration::from_secs(1),
            silence_limit: None,
            origin: None,
            queue_size: 65536,
            max_message: 1 << 20,
            ping_interval: Duration::from_secs(1),
            dead_after: Duration::from_secs(2),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            log_format: LogFormat::Human,
            log_level: tracing::Level::INFO,
        }
    }

    /// Resolves flags and environment over the TOML file (if any) over the
    /// defaults, and validates the result.
    pub fn resolve(cli: Cli) -> Result<Config, String> {
        let file = match &cli.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                toml::from_str::<FileConfig>(&text).map_err(|e| format!("{}: {e}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let list = |c: Vec<String>, f: Option<Vec<String>>| {
            if c.is_empty() {
                f.unwrap_or_default()
            } else {
                c
            }
        };
        let broker = cli
            .broker
            .or(file.broker)
            .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
        let opts = BrokerOptions {
            tls_ca_file: cli.tls_ca_file.or(file.tls_ca_file),
            tls_cert: cli.tls_cert.or(file.tls_cert),
            tls_key: cli.tls_key.or(file.tls_key),
            sentinel_master: cli.sentinel_master.or(file.sentinel_master),
            cluster: cli.cluster || file.cluster.unwrap_or(false),
        };
        let mut c = Config::new(&[], Broker::with_options(&broker, &opts)?);
        c.segments = list(cli.segments, file.segments);
        if c.segments.is_empty() {
            return Err(
                "no segment to serve: give --segment NAME (or MEMSHELF_AGENT_SEGMENTS)".into(),
            );
        }
        for s in &c.segments {
            memshelf::validate_name(s).map_err(|e| e.to_string())?;
        }
        if let Some(cap) = cli.create_capacity.or(file.create_capacity) {
            c.create_capacity = Some(memshelf::parse_size(&cap).map_err(|e| e.to_string())?);
        }
        c.feed = cli.feed.or(file.feed).unwrap_or(FeedKind::Pubsub);
        let channels = list(cli.channels, file.channels);
        c.patterns = list(cli.patterns, file.patterns);
        if !channels.is_empty() || !c.patterns.is_empty() {
            c.channels = channels;
        }
        c.tracking_prefixes =
            tracking_prefixes(list(cli.tracking_prefixes, file.tracking_prefixes))?;
        if let Some(t) = cli.topology_interval.or(file.topology_interval) {
            c.topology_interval = parse_duration(&t)?.max(Duration::from_millis(100));
        }
        if let Some(s) = cli.stream.or(file.stream) {
            c.stream = s;
        }
        c.state_file = cli.state_file.or(file.state_file);
        c.metrics_addr = match cli.metrics_addr.or(file.metrics_addr) {
            Some(a) if a == "off" || a.is_empty() => None,
            Some(a) => Some(a),
            None => Some("127.0.0.1:9464".into()),
        };
        c.gap_policy = cli
            .gap_policy
            .or(file.gap_policy)
            .unwrap_or(GapPolicy::Clear);
        if let Some(s) = cli.degraded_ttl.or(file.degraded_ttl) {
            let d = parse_duration(&s)?;
            if d.is_zero() {
                return Err("degraded_ttl must be more than 0".into());
            }
            c.degraded_ttl = d;
        }
        c.log_format = cli.log_format.or(file.log_format).unwrap_or_default();
        if let Some(l) = cli.log_level {
            c.log_level = l;
        } else if let Some(l) = file.log_level {
            c.log_level = l.parse().map_err(|_| {
                format!("log_level {l:?}: expected error, warn, info, debug or trace")
            })?;
        }
        if let Some(s) = cli.silence_limit.or(file.silence_limit) {
            let d = parse_duration(&s)?;
            c.silence_limit = (!d.is_zero()).then_some(d);
        }
        c.origin = cli.origin.or(file.origin).filter(|o| !o.is_empty());
        if let Some(q) = cli.queue_size.or(file.queue_size) {
            if q == 0 {
                return Err("queue_size must be at least 1".into());
            }
            c.queue_size = q;
        }
        if let Some(m) = cli.max_message.or(file.max_message) {
            c.max_message = memshelf::parse_size(&m).map_err(|e| e.to_string())? as usize;
        }
        if let Some(p) = cli.ping_interval.or(file.ping_interval) {
            c.ping_interval = parse_duration(&p)?.max(Duration::from_millis(10));
        }
        if let Some(p) = cli.dead_after.or(file.dead_after) {
            c.dead_after = parse_duration(&p)?;
        }
        if c.dead_after <= c.ping_interval {
            return Err(format!(
                "dead_after ({:?}) must be longer than ping_interval ({:?})",
                c.dead_after, c.ping_interval
            ));
        }
        if let Some(p) = cli.backoff_max.or(file.backoff_max) {
            c.backoff_max = parse_duration(&p)?.max(c.backoff_min);
        }
        Ok(c)
    }
}

/// Checks the tracked prefixes: Redis refuses overlapping ones (one a
/// prefix of another) with an error at each connection, so they are an
/// error at start-up. A lone empty prefix means every key.
pub fn tracking_prefixes(mut p: Vec<String>) -> Result<Vec<String>, String> {
    if p.len() == 1 && p[0].is_empty() {
        p.clear();
    }
    for (i, a) in p.iter().enumerate() {
        for b in &p[i + 1..] {
            if a.starts_with(b.as_str()) || b.starts_with(a.as_str()) {
                return Err(format!(
                    "tracking prefixes {a:?} and {b:?} overlap (Redis refuses them): keep the shorter one"
                ));
            }
        }
    }
    Ok(p)
}

/// Parses "250ms", "2s", "1.5m", "1h" or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("cannot parse duration {text:?} (try \"500ms\", \"2s\")"))?;
    let mult = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        u => return Err(format!("unknown unit {u:?} in duration {text:?}")),
    };
    Duration::try_from_secs_f64(n * mult).map_err(|e| format!("duration {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("msa-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("agent.toml");
        std::fs::write(
            &p,
            "segments = [\"a\", \"b\"]\nbroker = \"redis://10.0.0.1:7000\"\nfeed = \"stream\"\ngap_policy = \"log\"\nsilence_limit = \"5s\"\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "memshelf-agent",
            "--config",
            p.to_str().unwrap(),
            "--gap-policy",
            "clear",
        ]);
        let c = Config::resolve(cli).unwrap();
        assert_eq!(c.segments, ["a", "b"]);
        assert_eq!(c.broker, Broker::parse("redis://10.0.0.1:7000").unwrap());
        assert_eq!(c.feed, FeedKind::Stream);
        assert_eq!(c.gap_policy, GapPolicy::Clear);
        assert_eq!(c.silence_limit, Some(Duration::from_secs(5)));
        std::fs::write(&p, "segmnts = [\"a\"]\n").unwrap();
        let cli = Cli::parse_from(["memshelf-agent", "--config", p.to_str().unwrap()]);
        assert!(Config::resolve(cli).unwrap_err().contains("segmnts"));
        std::fs::remove_dir_all(&dir).unwrap();
        let cli = Cli::parse_from(["memshelf-agent"]);
        assert!(Config::resolve(cli).unwrap_err().contains("no segment"));
        let cli = Cli::parse_from(["memshelf-agent", "--segment", "../x"]);
        assert!(Config::resolve(cli).is_err());
    }

    #[test]
    fn tracking_flags() {
        let cli = Cli::parse_from([
            "memshelf-agent",
            "--segment",
            "s",
            "--feed",
            "tracking",
            "--tracking-prefix",
            "user:",
            "--tracking-prefix",
            "product:",
            "--topology-interval",
            "2s",
        ]);
        let c = Config::resolve(cli).unwrap();
        assert_eq!(c.feed, FeedKind::Tracking);
        assert_eq!(c.tracking_prefixes, ["user:", "product:"]);
        assert_eq!(c.topology_interval, Duration::from_secs(2));
        let cli = Cli::parse_from(["memshelf-agent", "--segment", "s", "--feed", "tracking"]);
        let c = Config::resolve(cli).unwrap();
        assert!(c.tracking_prefixes.is_empty());
        assert_eq!(c.topology_interval, Duration::from_secs(5));
        let cli = Cli::parse_from([
            "memshelf-agent",
            "--segment",
            "s",
            "--tracking-prefix",
            "user:",
            "--tracking-prefix",
            "user:1",
        ]);
        assert!(Config::resolve(cli).unwrap_err().contains("overlap"));
        assert_eq!(
            tracking_prefixes(vec![String::new()]).unwrap(),
            Vec::<String>::new()
        );
        assert!(tracking_prefixes(vec![String::new(), "a".into()]).is_err());
        let dir = std::env::temp_dir().join(format!("msa-cfg-tr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("agent.toml");
        std::fs::write(
            &p,
            "segments = [\"a\"]\nfeed = \"tracking\"\ntracking_prefixes = [\"u:\", \"p:\"]\ntopology_interval = \"1s\"\n",
        )
        .unwrap();
        let cli = Cli::parse_from(["memshelf-agent", "--config", p.to_str().unwrap()]);
        let c = Config::resolve(cli).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.feed, FeedKind::Tracking);
        assert_eq!(c.tracking_prefixes, ["u:", "p:"]);
        assert_eq!(c.topology_interval, Duration::from_secs(1));
    }

    #[test]
    fn every_flag_shows_its_default() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(
                help.contains("[default: "),
                "--{id} does not show its default: {help:?}"
            );
        }
    }

    #[test]
    fn broker_urls_the_agent_cannot_honour_are_errors() {
        for url in [
            "redis+cluster://127.0.0.1:7000/3",
            "rediss://h/#insecure",
            "redis://h/?dbx=1",
            "redis://h/abc",
            "memcached://h",
        ] {
            let cli = Cli::parse_from(["memshelf-agent", "--segment", "s", "--broker", url]);
            assert!(Config::resolve(cli).is_err(), "{url} accepted");
        }
        let cli = Cli::parse_from([
            "memshelf-agent",
            "--segment",
            "s",
            "--broker",
            "redis://h:1/2",
        ]);
        assert_eq!(Config::resolve(cli).unwrap().broker.db(), 2);
    }
}
