//! Where the broker is and how to reach it: one server, a Sentinel-managed
//! master, or a Cluster; credentials (AUTH / ACL users), the database index
//! and TLS. Parsed once at start-up: anything the agent cannot honour is an
//! error then, never silently dropped.
//!
//! URL forms (`rediss` for TLS in each):
//! * `redis://[user][:password@]host[:port][/db]`, `unix:///path[?db=N&user=U&pass=P]`
//!   or `/path/to/redis.sock`;
//! * `redis+sentinel://[user][:password@]sentinel1:26379[,sentinel2:26379]/MASTER[/db]`
//!   (or `--sentinel-master MASTER` with the sentinels as the broker hosts);
//!   the credentials and database are the master's;
//! * `redis+cluster://[user][:password@]node1:7000[,node2:7001]` (or `--cluster`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::{
    Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion,
    RedisConnectionInfo, TlsCertificates, Value,
};

/// How the servers are arranged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topology {
    /// One server.
    Single,
    /// A master found through Sentinel.
    Sentinel {
        /// The monitored master's name.
        master: String,
    },
    /// A Redis Cluster: Pub/Sub on any node (classic Pub/Sub is broadcast to
    /// the whole cluster), a stream on the master owning its slot, tracking
    /// on every master.
    Cluster,
}

/// Options given next to the URL.
#[derive(Clone, Debug, Default)]
pub struct BrokerOptions {
    /// PEM file of the CA that signed the server certificates (default: the
    /// system roots).
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate (mutual TLS), with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Treat the broker hosts as sentinels of this master.
    pub sentinel_master: Option<String>,
    /// Treat the broker hosts as cluster nodes.
    pub cluster: bool,
}

/// A broker the agent knows how to reach.
#[derive(Clone)]
pub struct Broker {
    /// Single, Sentinel or Cluster.
    pub topology: Topology,
    /// The server (single), the sentinels, or the cluster seed nodes.
    nodes: Vec<ConnectionAddr>,
    /// Credentials and database of the data nodes.
    redis: RedisConnectionInfo,
    /// TLS to every node.
    tls: bool,
    certs: Option<TlsCertificates>,
    shown: String,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Broker({})", self.shown)
    }
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PartialEq for Broker {
    fn eq(&self, other: &Self) -> bool {
        self.shown == other.shown
            && self.redis.db() == other.redis.db()
            && self.redis.username() == other.redis.username()
            && self.redis.password() == other.redis.password()
    }
}

fn read_pem(p: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("cannot read the {what} {}: {e}", p.display()))
}

fn addr_str(a: &ConnectionAddr) -> String {
    match a {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => {
            if h.contains(':') {
                format!("[{h}]:{p}")
            } else {
                format!("{h}:{p}")
            }
        }
        ConnectionAddr::Unix(p) => p.display().to_string(),
        other => format!("{other}"),
    }
}

impl Broker {
    /// Parses a broker URL with no extra options.
    pub fn parse(url: &str) -> Result<Broker, String> {
        Broker::with_options(url, &BrokerOptions::default())
    }

    /// Parses a broker URL and its options.
    pub fn with_options(url: &str, o: &BrokerOptions) -> Result<Broker, String> {
        let url = url.trim();
        let bad = |why: &str| format!("broker URL {:?}: {why}", redact(url));
        let url_owned;
        let url = if url.starts_with('/') {
            url_owned = format!("unix://{url}");
            url_owned.as_str()
        } else {
            url
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            bad("expected redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://")
        })?;
        let (base, mut topology) = match scheme {
            "redis" | "rediss" | "unix" | "redis+unix" => (scheme, Topology::Single),
            "redis+sentinel" | "rediss+sentinel" => (
                scheme.trim_end_matches("+sentinel"),
                Topology::Sentinel {
                    master: String::new(),
                },
            ),
            "redis+cluster" | "rediss+cluster" => {
                (scheme.trim_end_matches("+cluster"), Topology::Cluster)
            }
            other => return Err(bad(&format!("unsupported scheme {other:?}"))),
        };
        let unix = matches!(base, "unix" | "redis+unix");
        let tls = base == "rediss";
        if let Some((_, frag)) = rest.split_once('#') {
            return Err(bad(&format!(
                "fragment #{frag} is not supported (for a private CA give --tls-ca-file)"
            )));
        }
        let mut redis = RedisConnectionInfo::default();
        let mut nodes = Vec::new();
        let mut path_parts: Vec<String> = Vec::new();
        if unix {
            let info = url
                .into_connection_info()
                .map_err(|e| bad(&e.to_string()))?;
            if let Some((_, q)) = rest.split_once('?') {
                for kv in q.split('&') {
                    let k = kv.split('=').next().unwrap_or("");
                    if !["db", "user", "pass", "protocol"].contains(&k) {
                        return Err(bad(&format!("unknown query parameter {k:?}")));
                    }
                }
            }
            redis = info.redis_settings().clone();
            nodes.push(info.addr().clone());
        } else {
            let (before_q, query) = match rest.split_once('?') {
                Some((a, q)) => (a, Some(q)),
                None => (rest, None),
            };
            if let Some(q) = query {
                for kv in q.split('&') {
                    let k = kv.split('=').next().unwrap_or("");
                    if k != "protocol" {
                        return Err(bad(&format!("unknown query parameter {k:?}")));
                    }
                }
            }
            let (authority, path) = match before_q.split_once('/') {
                Some((a, p)) => (a, p),
                None => (before_q, ""),
            };
            let (userinfo, hosts) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, authority),
            };
            path_parts = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if hosts.is_empty() {
                return Err(bad("missing host"));
            }
            let host_list: Vec<&str> = hosts.split(',').collect();
            if host_list.len() > 1
                && topology == Topology::Single
                && !o.cluster
                && o.sentinel_master.is_none()
            {
                return Err(bad(
                    "several hosts need redis+sentinel://, redis+cluster://, --sentinel-master or --cluster",
                ));
            }
            for (i, h) in host_list.iter().enumerate() {
                // Each host through the redis crate's own parser (percent
                // decoding, IPv6, default port); credentials once.
                let auth = match (i, userinfo) {
                    (0, Some(u)) => format!("{u}@"),
                    _ => String::new(),
                };
                let u = format!("{base}://{auth}{h}/");
                let info = u
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| bad(&e.to_string()))?;
                if i == 0 {
                    redis = info.redis_settings().clone();
                }
                nodes.push(info.addr().clone());
            }
            if let Some(q) = query {
                let info = format!("{base}://x/?{q}")
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| bad(&e.to_string()))?;
                redis = redis.set_protocol(info.redis_settings().protocol());
            }
        }
        if let Some(m) = &o.sentinel_master {
            if topology != Topology::Single || unix {
                return Err(bad(
                    "--sentinel-master needs a redis:// or rediss:// URL of the sentinels",
                ));
            }
            topology = Topology::Sentinel { master: m.clone() };
        }
        if o.cluster {
            if topology != Topology::Single || unix {
                return Err(bad(
                    "--cluster needs a redis:// or rediss:// URL of the nodes",
                ));
            }
            topology = Topology::Cluster;
        }
        // The path: the database, or (Sentinel URL) the master name then the
        // database.
        if let Topology::Sentinel { master } = &mut topology
            && master.is_empty()
        {
            if path_parts.is_empty() {
                return Err(bad(
                    "a Sentinel URL needs the master name: redis+sentinel://host:26379/MASTER",
                ));
            }
            *master = path_parts.remove(0);
        }
        if !unix {
            let db = match path_parts.as_slice() {
                [] => 0,
                [db] => db
                    .parse::<i64>()
                    .ok()
                    .filter(|d| *d >= 0)
                    .ok_or_else(|| bad(&format!("invalid database index {db:?}")))?,
                _ => return Err(bad("unexpected path segments")),
            };
            redis = redis.set_db(db);
        }
        if topology == Topology::Cluster && redis.db() != 0 {
            return Err(bad("Redis Cluster has only database 0"));
        }
        let certs = if o.tls_ca_file.is_some() || o.tls_cert.is_some() || o.tls_key.is_some() {
            if !tls {
                return Err(bad("TLS options need a rediss:// URL"));
            }
            let client_tls = match (&o.tls_cert, &o.tls_key) {
                (Some(c), Some(k)) => Some(ClientTlsConfig {
                    client_cert: read_pem(c, "client certificate")?,
                    client_key: read_pem(k, "client key")?,
                }),
                (None, None) => None,
                _ => return Err("--tls-cert and --tls-key go together".into()),
            };
            let root_cert = match &o.tls_ca_file {
                Some(p) => Some(read_pem(p, "CA file")?),
                None => None,
            };
            Some(TlsCertificates {
                client_tls,
                root_cert,
            })
        } else {
            None
        };
        if tls {
            install_crypto_provider();
        }
        let b = Broker {
            topology,
            nodes,
            redis,
            tls,
            certs,
            shown: String::new(),
        };
        // Validate the TLS material now rather than at the first connection.
        if b.tls {
            b.client_for(b.nodes[0].clone())
                .map_err(|e| bad(&format!("TLS setup: {e}")))?;
        }
        Ok(Broker {
            shown: b.describe(),
            ..b
        })
    }

    fn describe(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let hosts: Vec<String> = self.nodes.iter().map(addr_str).collect();
        let user = match (self.redis.username(), self.redis.password()) {
            (Some(u), _) => format!("{u}@"),
            (None, Some(_)) => ":***@".to_string(),
            _ => String::new(),
        };
        let db = self.redis.db();
        match &self.topology {
            Topology::Single => match &self.nodes[0] {
                ConnectionAddr::Unix(p) => format!("unix://{}?db={db}", p.display()),
                _ => format!("{scheme}://{user}{}/{db}", hosts[0]),
            },
            Topology::Sentinel { master } => {
                format!(
                    "{scheme}+sentinel://{user}{}/{master}/{db}",
                    hosts.join(",")
                )
            }
            Topology::Cluster => format!("{scheme}+cluster://{user}{}", hosts.join(",")),
        }
    }

    /// The database index of the data nodes.
    pub fn db(&self) -> i64 {
        self.redis.db()
    }

    /// Whether connections use TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    fn addr(&self, host: String, port: u16) -> ConnectionAddr {
        if self.tls {
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host, port)
        }
    }

    fn client_with(
        &self,
        addr: ConnectionAddr,
        redis: RedisConnectionInfo,
    ) -> redis::RedisResult<Client> {
        let info: ConnectionInfo = addr.into_connection_info()?.set_redis_settings(redis);
        match &self.certs {
            Some(c) => Client::build_with_tls(info, c.clone()),
            None => Client::open(info),
        }
    }

    fn client_for(&self, addr: ConnectionAddr) -> redis::RedisResult<Client> {
        self.client_with(addr, self.redis.clone())
    }

    /// A client for a data node: the server, the current master (asked
    /// from the sentinels), or a cluster node (`key`: the master owning
    /// that key's slot; none: the `attempt`-th seed, round robin). Also
    /// returns the node's address.
    pub async fn data_client(
        &self,
        key: Option<&str>,
        attempt: usize,
        timeout: Duration,
    ) -> Result<(Client, String), String> {
        match &self.topology {
            Topology::Single => {
                let a = self.nodes[0].clone();
                let s = addr_str(&a);
                Ok((self.client_for(a).map_err(|e| e.to_string())?, s))
            }
            Topology::Sentinel { .. } => {
                let (h, p) = self.sentinel_master(timeout).await?;
                let a = self.addr(h, p);
                let s = addr_str(&a);
                Ok((self.client_for(a).map_err(|e| e.to_string())?, s))
            }
            Topology::Cluster => match key {
                None => {
                    let a = self.nodes[attempt % self.nodes.len()].clone();
                    let s = addr_str(&a);
                    Ok((self.client_for(a).map_err(|e| e.to_string())?, s))
                }
                Some(k) => {
                    let (h, p) = self.cluster_owner(k, attempt, timeout).await?;
                    let a = self.addr(h, p);
                    let s = addr_str(&a);
                    Ok((self.client_for(a).map_err(|e| e.to_string())?, s))
                }
            },
        }
    }

    /// The data nodes a tracking feed follows, each with a RESP3 client
    /// (invalidations arrive as pushes on the tracking connection): the
    /// server, the current master (asked from the sentinels), or every
    /// master of a Cluster (asked from the seeds, starting at the
    /// `attempt`-th). Credentials, TLS and the database are the URL's.
    pub async fn tracking_nodes(
        &self,
        attempt: usize,
        timeout: Duration,
    ) -> Result<Vec<(Client, String)>, String> {
        let resp3 = self.redis.clone().set_protocol(ProtocolVersion::RESP3);
        let addrs = match &self.topology {
            Topology::Single => vec![self.nodes[0].clone()],
            Topology::Sentinel { .. } => {
                let (h, p) = self.sentinel_master(timeout).await?;
                vec![self.addr(h, p)]
            }
            Topology::Cluster => self
                .cluster_masters(attempt, timeout)
                .await?
                .into_iter()
                .map(|(h, p)| self.addr(h, p))
                .collect(),
        };
        addrs
            .into_iter()
            .map(|a| {
                let s = addr_str(&a);
                self.client_with(a, resp3.clone())
                    .map(|c| (c, s.clone()))
                    .map_err(|e| format!("{s}: {e}"))
            })
            .collect()
    }

    /// Every master of the Cluster, `(host, port)` sorted, from `CLUSTER
    /// SLOTS` asked of the seeds in turn (starting at the `attempt`-th). A
    /// master that is down but still owns slots is listed.
    pub async fn cluster_masters(
        &self,
        attempt: usize,
        timeout: Duration,
    ) -> Result<Vec<(String, u16)>, String> {
        let mut errors = Vec::new();
        for i in 0..self.nodes.len() {
            let seed = self.nodes[(attempt + i) % self.nodes.len()].clone();
            let client = self.client_for(seed.clone()).map_err(|e| e.to_string())?;
            let r = tokio::time::timeout(timeout, async {
                let mut c = client.get_multiplexed_async_connection().await?;
                redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<Value>(&mut c)
                    .await
            })
            .await;
            match r {
                Ok(Ok(slots)) => {
                    let seed_host = match &seed {
                        ConnectionAddr::Tcp(h, _) | ConnectionAddr::TcpTls { host: h, .. } => {
                            h.clone()
                        }
                        _ => String::new(),
                    };
                    let mut masters = slot_masters(&slots, &seed_host);
                    if masters.is_empty() {
                        errors.push(format!("{}: no slot has a master", addr_str(&seed)));
                        continue;
                    }
                    masters.sort();
                    masters.dedup();
                    return Ok(masters);
                }
                Ok(Err(e)) => errors.push(format!("{}: {e}", addr_str(&seed))),
                Err(_) => errors.push(format!("{}: no reply within {timeout:?}", addr_str(&seed))),
            }
        }
        Err(format!(
            "cannot list the cluster's masters: {}",
            errors.join("; ")
        ))
    }

    /// Asks the sentinels, in order, for the master's address.
    pub async fn sentinel_master(&self, timeout: Duration) -> Result<(String, u16), String> {
        let Topology::Sentinel { master } = &self.topology else {
            return Err("not a Sentinel broker".into());
        };
        let mut errors = Vec::new();
        for s in &self.nodes {
            // Sentinels take no database; credentials are the master's.
            let client = match self.client_with(s.clone(), RedisConnectionInfo::default()) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(format!("{}: {e}", addr_str(s)));
                    continue;
                }
            };
            let r = tokio::time::timeout(timeout, async {
                let mut c = client.get_multiplexed_async_connection().await?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(master)
                    .query_async::<Option<(String, u16)>>(&mut c)
                    .await
            })
            .await;
            match r {
                Ok(Ok(Some(hp))) => return Ok(hp),
                Ok(Ok(None)) => errors.push(format!("{}: no master named {master:?}", addr_str(s))),
                Ok(Err(e)) => errors.push(format!("{}: {e}", addr_str(s))),
                Err(_) => errors.push(format!("{}: no reply within {timeout:?}", addr_str(s))),
            }
        }
        Err(format!(
            "no sentinel knows the master: {}",
            errors.join("; ")
        ))
    }

    /// The master that owns `key`'s slot, asked from the seed nodes
    /// (starting at the `attempt`-th).
    async fn cluster_owner(
        &self,
        key: &str,
        attempt: usize,
        timeout: Duration,
    ) -> Result<(String, u16), String> {
        let mut errors = Vec::new();
        for i in 0..self.nodes.len() {
            let seed = self.nodes[(attempt + i) % self.nodes.len()].clone();
            let client = self.client_for(seed.clone()).map_err(|e| e.to_string())?;
            let r = tokio::time::timeout(timeout, async {
                let mut c = client.get_multiplexed_async_connection().await?;
                let slot: i64 = redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(key)
                    .query_async(&mut c)
                    .await?;
                let slots: Value = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async(&mut c)
                    .await?;
                Ok::<_, redis::RedisError>((slot, slots))
            })
            .await;
            match r {
                Ok(Ok((slot, slots))) => {
                    if let Some((h, p)) = slot_owner(&slots, slot) {
                        let h = if h.is_empty() || h == "?" {
                            match &seed {
                                ConnectionAddr::Tcp(h, _)
                                | ConnectionAddr::TcpTls { host: h, .. } => h.clone(),
                                _ => h,
                            }
                        } else {
                            h
                        };
                        return Ok((h, p));
                    }
                    errors.push(format!("{}: slot {slot} has no master", addr_str(&seed)));
                }
                Ok(Err(e)) => errors.push(format!("{}: {e}", addr_str(&seed))),
                Err(_) => errors.push(format!("{}: no reply within {timeout:?}", addr_str(&seed))),
            }
        }
        Err(format!(
            "cannot find the node owning {key:?}: {}",
            errors.join("; ")
        ))
    }
}

/// The master `(host, port)` serving `slot` in a `CLUSTER SLOTS` reply.
fn slot_owner(slots: &Value, slot: i64) -> Option<(String, u16)> {
    let Value::Array(ranges) = slots else {
        return None;
    };
    for r in ranges {
        let Value::Array(r) = r else { continue };
        let (Some(Value::Int(lo)), Some(Value::Int(hi)), Some(Value::Array(master))) =
            (r.first(), r.get(1), r.get(2))
        else {
            continue;
        };
        if (*lo..=*hi).contains(&slot) {
            let host = master.first().and_then(text)?;
            let port = match master.get(1) {
                Some(Value::Int(p)) => u16::try_from(*p).ok()?,
                _ => return None,
            };
            return Some((host, port));
        }
    }
    None
}

/// Every master `(host, port)` in a `CLUSTER SLOTS` reply, in reply order
/// and possibly repeated; an empty or `?` host is `seed_host` (the node
/// that answered).
fn slot_masters(slots: &Value, seed_host: &str) -> Vec<(String, u16)> {
    let Value::Array(ranges) = slots else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in ranges {
        let Value::Array(r) = r else { continue };
        let Some(Value::Array(master)) = r.get(2) else {
            continue;
        };
        let (Some(host), Some(Value::Int(port))) = (master.first().and_then(text), master.get(1))
        else {
            continue;
        };
        let Ok(port) = u16::try_from(*port) else {
            continue;
        };
        let host = if host.is_empty() || host == "?" {
            seed_host.to_string()
        } else {
            host
        };
        out.push((host, port));
    }
    out
}

/// A reply as text (bulk or simple strings).
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".into()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The URL with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, tail) = match rest.split_once('/') {
        Some((a, t)) => (a, format!("/{t}")),
        None => (rest, String::new()),
    };
    match auth.rsplit_once('@') {
        Some((u, h)) => {
            let user = u.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{h}{tail}")
        }
        None => url.to_string(),
    }
}

/// rustls needs one process-wide crypto provider; `ring` is the one
/// compiled in. Installing it twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let b = Broker::parse("redis://127.0.0.1:6394/2").unwrap();
        assert_eq!(b.db(), 2);
        assert_eq!(b.topology, Topology::Single);
        assert_eq!(b.to_string(), "redis://127.0.0.1:6394/2");
        let b = Broker::parse("redis://:secret@host").unwrap();
        assert_eq!(b.redis.password(), Some("secret"));
        assert_eq!(b.to_string(), "redis://:***@host:6379/0");
        let b = Broker::parse("redis://app:p%40ss@host:1/3").unwrap();
        assert_eq!(
            (b.redis.username(), b.redis.password()),
            (Some("app"), Some("p@ss"))
        );
        let b = Broker::parse("rediss://h:6380").unwrap();
        assert!(b.tls());
        let b = Broker::parse("redis+sentinel://s1:26379,s2:26380/mymaster/4").unwrap();
        assert_eq!(
            b.topology,
            Topology::Sentinel {
                master: "mymaster".into()
            }
        );
        assert_eq!(b.db(), 4);
        assert_eq!(b.nodes.len(), 2);
        let b = Broker::parse("redis+cluster://a:7000,b:7001").unwrap();
        assert_eq!(b.topology, Topology::Cluster);
        let b = Broker::parse("/run/redis.sock").unwrap();
        assert!(matches!(b.nodes[0], ConnectionAddr::Unix(_)));
        let b = Broker::parse("unix:///run/redis.sock?db=5").unwrap();
        assert_eq!(b.db(), 5);
        for bad in [
            "http://x",
            "redis://",
            "redis://h/x",
            "redis://h/1/2",
            "redis://a:1,b:2",
            "redis+sentinel://s:26379",
            "redis+cluster://a:1/2",
            "redis://h/?foo=1",
            "rediss://h/#insecure",
        ] {
            assert!(Broker::parse(bad).is_err(), "{bad} accepted");
        }
        let o = BrokerOptions {
            sentinel_master: Some("m".into()),
            ..Default::default()
        };
        let b = Broker::with_options("redis://s1:26379,s2:26379/1", &o).unwrap();
        assert_eq!(b.topology, Topology::Sentinel { master: "m".into() });
        assert_eq!(b.db(), 1);
        let o = BrokerOptions {
            tls_ca_file: Some("/nonexistent.pem".into()),
            ..Default::default()
        };
        assert!(
            Broker::with_options("redis://h", &o)
                .unwrap_err()
                .contains("rediss")
        );
        assert!(
            Broker::with_options("rediss://h", &o)
                .unwrap_err()
                .contains("CA file")
        );
        assert_eq!(redact("redis://u:pw@h:1/2"), "redis://u:***@h:1/2");
    }
}
