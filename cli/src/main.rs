//! `memshelf`: inspect and edit segments, and publish invalidations.

mod dump;
mod hot;
mod ls;
mod output;
mod stats;
mod top;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use memshelf::message::Message;
use memshelf::{Cache, Expiry, OpenOptions, PutOptions, Ttl};
use memshelf_agent::broker::{Broker, BrokerOptions};
use memshelf_agent::feed::stream::PAYLOAD_FIELD;

/// memshelf: a shared-memory key-value cache.
#[derive(Parser, Debug)]
#[command(name = "memshelf", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List the segments on this host: name, owner, mode, capacity, used,
    /// entries, age.
    Ls {
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Print a segment's statistics (key=value lines, or JSON).
    Stats {
        /// Segment name.
        name: String,
        /// Print one JSON object (one per line with --watch).
        #[arg(long)]
        json: bool,
        /// Print them again every --interval until interrupted.
        #[arg(long)]
        watch: bool,
        /// Seconds between two prints with --watch.
        #[arg(long, default_value = "1", value_parser = parse_secs)]
        interval: Duration,
        /// Stop after this many prints (with --watch).
        #[arg(long, requires = "watch")]
        count: Option<u64>,
    },
    /// A live view of a segment: rates, hit ratio, memory, latency, hot
    /// keys, agent health (q to quit).
    Top {
        /// Segment name.
        name: String,
        /// Seconds between two samples.
        #[arg(long, default_value = "1", value_parser = parse_secs)]
        interval: Duration,
        /// Show the health of the agent at HOST:PORT (its /metrics).
        #[arg(long)]
        agent: Option<String>,
    },
    /// List the keys with the most sampled hits: count, estimated share of
    /// the hits, key.
    Hot {
        /// Segment name.
        name: String,
        /// How many keys.
        #[arg(short = 'n', long = "count", default_value_t = 10)]
        n: usize,
    },
    /// Print a value (raw bytes) or exit 1 when absent.
    Get {
        /// Segment name.
        name: String,
        /// Key.
        key: String,
    },
    /// Store a value (creates the segment if absent).
    Put {
        /// Segment name.
        name: String,
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Time to live in seconds (default: the segment's default).
        #[arg(long)]
        ttl: Option<f64>,
        /// Tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Capacity when creating ("64MiB").
        #[arg(long, default_value = "64MiB")]
        capacity: String,
        /// Key + value bytes of a typical entry when creating (sizes the
        /// index; default 128).
        #[arg(long)]
        expected_entry_size: Option<u64>,
    },
    /// Print the remaining TTL in seconds ("never" for no expiry), or exit 1
    /// when absent.
    Ttl {
        /// Segment name.
        name: String,
        /// Key.
        key: String,
    },
    /// Atomically add DELTA (default 1) to an integer value; prints the
    /// new value (a missing key counts from 0).
    Incr {
        /// Segment name.
        name: String,
        /// Key.
        key: String,
        /// Amount (negative after `--`: `incr NAME KEY -- -5`).
        #[arg(default_value_t = 1, allow_negative_numbers = true)]
        delta: i64,
        /// Time to live in seconds for the entry (default: keep its expiry).
        #[arg(long)]
        ttl: Option<f64>,
    },
    /// Write every live entry (key, value, remaining TTL) to FILE.
    Dump {
        /// Segment name.
        name: String,
        /// Dump file (replaced atomically).
        file: std::path::PathBuf,
    },
    /// Insert the entries of a dump (never overwriting newer entries;
    /// creates the segment if absent).
    Load {
        /// Segment name.
        name: String,
        /// Dump file.
        file: std::path::PathBuf,
        /// Capacity when creating ("64MiB").
        #[arg(long, default_value = "64MiB")]
        capacity: String,
        /// Key + value bytes of a typical entry when creating (sizes the
        /// index; default 128).
        #[arg(long)]
        expected_entry_size: Option<u64>,
    },
    /// Delete keys; prints how many were present.
    Delete {
        /// Segment name.
        name: String,
        /// Keys.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Make every entry a miss (O(1)).
    Clear {
        /// Segment name.
        name: String,
    },
    /// List live keys, one per line.
    Keys {
        /// Segment name.
        name: String,
        /// Only keys with this prefix.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Remove a segment from /dev/shm.
    Unlink {
        /// Segment name.
        name: String,
    },
    /// Publish an invalidation (SPEC 6) to Redis for every host's agent.
    Publish(Publish),
}

#[derive(Parser, Debug)]
struct Publish {
    /// redis://user:pass@host:port/db (each part but the host optional),
    /// rediss://... (TLS), unix:///path, redis+sentinel://s1:26379/MASTER/db or
    /// redis+cluster://n1:7000,n2:7001 (the agent's URL forms).
    #[arg(
        long,
        env = "MEMSHELF_BROKER",
        default_value = "redis://127.0.0.1:6379"
    )]
    broker: String,
    /// The broker hosts are sentinels of this master.
    #[arg(long, env = "MEMSHELF_SENTINEL_MASTER")]
    sentinel_master: Option<String>,
    /// The broker hosts are Redis Cluster nodes.
    #[arg(long)]
    cluster: bool,
    /// PEM file of the CA that signs the broker's certificate (rediss://).
    #[arg(long, env = "MEMSHELF_TLS_CA_FILE")]
    tls_ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate for mutual TLS (with --tls-key).
    #[arg(long, env = "MEMSHELF_TLS_CERT")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "MEMSHELF_TLS_KEY")]
    tls_key: Option<std::path::PathBuf>,
    /// Pub/Sub channel (ignored with --stream).
    #[arg(long, env = "MEMSHELF_CHANNEL", default_value = "memshelf")]
    channel: String,
    /// XADD to this stream instead of PUBLISH.
    #[arg(long, env = "MEMSHELF_STREAM")]
    stream: Option<String>,
    /// Trim the stream to about this many entries (XADD MAXLEN ~).
    #[arg(long)]
    maxlen: Option<u64>,
    /// Only this segment (default: every segment the agents serve).
    #[arg(long)]
    cache: Option<String>,
    /// Writer id plus per-boot nonce (so a host can skip its own messages).
    #[arg(long)]
    origin: Option<String>,
    /// Per-origin sequence number (needs --origin).
    #[arg(long)]
    seq: Option<u64>,
    /// Print the payload instead of sending it.
    #[arg(long)]
    dry_run: bool,
    #[command(subcommand)]
    op: PublishOp,
}

#[derive(Subcommand, Debug)]
enum PublishOp {
    /// Delete keys.
    Del {
        /// Keys.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Delete every key with a prefix.
    DelPrefix {
        /// Prefix.
        prefix: String,
    },
    /// Invalidate a tag.
    Tag {
        /// Tag.
        tag: String,
    },
    /// Clear the segment(s).
    Clear,
    /// A heartbeat (liveness only).
    Hb,
}

fn attach(name: &str) -> Result<Cache, String> {
    OpenOptions::new()
        .create(false)
        .open(name)
        .map_err(|e| e.to_string())
}

/// Options of a command that creates the segment when it is absent.
fn create_options(capacity: &str, expected_entry_size: Option<u64>) -> Result<OpenOptions, String> {
    let mut o = OpenOptions::new();
    o.capacity(memshelf::parse_size(capacity).map_err(|e| e.to_string())?);
    if let Some(e) = expected_entry_size {
        o.expected_entry_size(e);
    }
    Ok(o)
}

fn parse_secs(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.01..=86400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{text:?}: seconds between 0.01 and 86400 expected")),
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let w = output::check;
    match cli.cmd {
        Cmd::Ls { json } => ls::run(json)?,
        Cmd::Stats {
            name,
            json,
            watch,
            interval,
            count,
        } => stats::run(&name, json, watch, interval, count)?,
        Cmd::Top {
            name,
            interval,
            agent,
        } => top::run(&name, interval, agent)?,
        Cmd::Ttl { name, key } => match attach(&name)?.ttl(&key).map_err(|e| e.to_string())? {
            Some(Expiry::Never) => w(writeln!(out, "never"))?,
            Some(Expiry::In(d)) => w(writeln!(out, "{:.3}", d.as_secs_f64()))?,
            None => return Ok(ExitCode::from(1)),
        },
        Cmd::Incr {
            name,
            key,
            delta,
            ttl,
        } => {
            let ttl = match ttl {
                Some(t) => Ttl::from_secs_f64(t).map_err(|e| e.to_string())?,
                None => Ttl::Default,
            };
            let n = attach(&name)?
                .incr_with(&key, delta, ttl)
                .map_err(|e| e.to_string())?;
            w(writeln!(out, "{n}"))?;
        }
        Cmd::Hot { name, n } => hot::run(&attach(&name)?, n, &mut out)?,
        Cmd::Dump { name, file } => dump::dump(&attach(&name)?, &file, &mut out)?,
        Cmd::Load {
            name,
            file,
            capacity,
            expected_entry_size,
        } => {
            let cache = create_options(&capacity, expected_entry_size)?
                .open(&name)
                .map_err(|e| e.to_string())?;
            dump::load(&cache, &file, &mut out)?;
        }
        Cmd::Get { name, key } => match attach(&name)?.get(&key).map_err(|e| e.to_string())? {
            Some(v) => w(out.write_all(&v))?,
            None => return Ok(ExitCode::from(1)),
        },
        Cmd::Put {
            name,
            key,
            value,
            ttl,
            tags,
            capacity,
            expected_entry_size,
        } => {
            let cache = create_options(&capacity, expected_entry_size)?
                .open(&name)
                .map_err(|e| e.to_string())?;
            let ttl = match ttl {
                Some(t) => Ttl::from_secs_f64(t).map_err(|e| e.to_string())?,
                None => Ttl::Default,
            };
            let tags: Vec<&[u8]> = tags.iter().map(|t| t.as_bytes()).collect();
            cache
                .put_with(&key, &value, &PutOptions::ttl(ttl).with_tags(&tags))
                .map_err(|e| e.to_string())?;
        }
        Cmd::Delete { name, keys } => {
            let cache = attach(&name)?;
            let mut n = 0;
            for k in keys {
                n += u64::from(cache.delete(&k).map_err(|e| e.to_string())?);
            }
            w(writeln!(out, "{n}"))?;
        }
        Cmd::Clear { name } => attach(&name)?.clear().map_err(|e| e.to_string())?,
        Cmd::Keys { name, prefix } => {
            for k in attach(&name)?.keys(prefix.as_deref().map(str::as_bytes)) {
                w(out.write_all(&k))?;
                w(out.write_all(b"\n"))?;
            }
        }
        Cmd::Unlink { name } => memshelf::unlink(&name).map_err(|e| e.to_string())?,
        Cmd::Publish(p) => return publish(p),
    }
    w(out.flush())?;
    Ok(ExitCode::SUCCESS)
}

fn publish(p: Publish) -> Result<ExitCode, String> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let (op, keys, arg) = match &p.op {
        PublishOp::Del { keys } => (
            "del",
            Some(keys.iter().map(|k| k.as_bytes()).collect()),
            None,
        ),
        PublishOp::DelPrefix { prefix } => ("del_prefix", None, Some(prefix.as_bytes())),
        PublishOp::Tag { tag } => ("tag", None, Some(tag.as_bytes())),
        PublishOp::Clear => ("clear", None, None),
        PublishOp::Hb => ("hb", None, None),
    };
    let parts = memshelf::message::Parts {
        op,
        keys,
        prefix: arg.filter(|_| op == "del_prefix"),
        tag: arg.filter(|_| op == "tag"),
        cache: p.cache.as_deref(),
        origin: p.origin.as_deref(),
        seq: p.seq,
        ts: Some(ms),
    };
    let json = Message::from_parts(&parts)
        .and_then(|m| m.to_json())
        .map_err(|e| e.to_string())?;
    if p.dry_run {
        println!("{json}");
        return Ok(ExitCode::SUCCESS);
    }
    let broker = Broker::with_options(
        &p.broker,
        &BrokerOptions {
            tls_ca_file: p.tls_ca_file.clone(),
            tls_cert: p.tls_cert.clone(),
            tls_key: p.tls_key.clone(),
            sentinel_master: p.sentinel_master.clone(),
            cluster: p.cluster,
        },
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let t = Duration::from_secs(5);
    let reply = rt.block_on(async {
        // A stream lives on one node (in a cluster, the owner of its slot);
        // a Pub/Sub message reaches every node from any of them.
        let (client, node) = broker.data_client(p.stream.as_deref(), 0, t).await?;
        let mut c = tokio::time::timeout(t, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| format!("cannot connect to {node}: no answer within 5 s"))?
            .map_err(|e| format!("cannot connect to {node}: {e}"))?;
        let cmd = match &p.stream {
            Some(key) => {
                let mut cmd = redis::cmd("XADD");
                cmd.arg(key);
                if let Some(n) = p.maxlen {
                    cmd.arg("MAXLEN").arg("~").arg(n);
                }
                cmd.arg("*").arg(PAYLOAD_FIELD).arg(&json);
                cmd
            }
            None => {
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(&p.channel).arg(&json);
                cmd
            }
        };
        tokio::time::timeout(t, cmd.query_async::<redis::Value>(&mut c))
            .await
            .map_err(|_| "no reply from the broker within 5 s".to_string())?
            .map_err(|e| e.to_string())
    })?;
    match reply {
        redis::Value::Int(n) => println!("published to {n} subscriber(s)"),
        v => println!(
            "added {}",
            memshelf_agent::broker::text(&v).unwrap_or_default()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("memshelf: {e}");
            ExitCode::from(2)
        }
    }
}
