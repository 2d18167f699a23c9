//! Test harness: a real redis-server child process, unique segments, and
//! bounded polls.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memshelf_agent::{Agent, Broker, Config};
pub use redis::Value;

/// A redis-server on a loopback port, killed on drop.
pub struct Redis {
    pub port: u16,
    pub dir: PathBuf,
    /// Extra arguments (TLS, ACL, cluster, replication...).
    pub args: Vec<String>,
    /// The URL clients use (default `redis://127.0.0.1:PORT`).
    pub url: String,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// The kernel's ephemeral port range (`ip_local_port_range`).
pub fn ephemeral_range() -> (u32, u32) {
    let r = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_else(|_| "32768 60999".into());
    let mut it = r.split_whitespace().map(|x| x.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// A free port for a cluster node, with its cluster bus port (port +
/// 10000, which redis-server also listens on) free too. At most 55535
/// (redis-server refuses more), and where the range allows (here
/// 32768-60999: ports 51000-55535) with the bus port above the ephemeral
/// range, so that no other test's `free_port` or outgoing connection can
/// take it between this check and the server's start. (Nodes on
/// `free_port` ports had bus ports inside that range; a cluster test once
/// failed with "redis-server did not answer within 10 s", most likely
/// from such a collision: the server's output was not kept then.)
pub fn free_cluster_port() -> u16 {
    let (_, hi) = ephemeral_range();
    let lo = if hi < 65535 {
        (hi + 1 - 10000).clamp(1024, 55535) as u16
    } else {
        40000
    };
    for _ in 0..10_000 {
        let port = fastrand::u16(lo..=55535);
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10000) {
            return port;
        }
    }
    panic!("no free port pair (p, p + 10000) for a cluster node");
}

pub fn unique(tag: &str) -> String {
    format!("agt-{}-{:08x}-{tag}", std::process::id(), fastrand::u32(..))
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// A server with extra arguments; `{port}` and `{dir}` in them are
    /// replaced.
    pub fn start_with(args: &[&str]) -> Redis {
        let mut r = Redis::prepare(args);
        r.spawn();
        r
    }

    /// A server not started yet (see [`Redis::spawn`]).
    pub fn prepare(args: &[&str]) -> Redis {
        let dir = std::env::temp_dir().join(unique("redis"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = if args.contains(&"--cluster-enabled") {
            free_cluster_port()
        } else {
            free_port()
        };
        Redis {
            port,
            url: format!("redis://127.0.0.1:{port}"),
            args: args
                .iter()
                .map(|a| {
                    a.replace("{port}", &port.to_string())
                        .replace("{dir}", dir.to_str().unwrap())
                })
                .collect(),
            dir,
            child: None,
        }
    }

    pub fn spawn(&mut self) {
        let tls = self.args.iter().any(|a| a == "--tls-port");
        let mut cmd = Command::new("redis-server");
        if !tls {
            cmd.args(["--port", &self.port.to_string()]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.args)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): the agent tests need it on PATH \
                     (Debian/Ubuntu: apt-get install -y redis-server)"
                )
            });
        self.child = Some(child);
        if tls {
            // Only wait for the port to accept.
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "redis-server (TLS) did not listen within 10 s"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").is_ok() && matches!(s.read(&mut buf), Ok(n) if n > 0) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within 10 s; its log ends:\n{}",
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last lines of the server's log (why it did not start).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server (SIGSTOP): its sockets stay open, nothing answers.
    pub fn stop(&self) {
        self.signal("-STOP");
    }

    /// Resumes a stopped server (SIGCONT).
    pub fn cont(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    /// Starts it again on the same port (empty: no persistence).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn broker(&self) -> Broker {
        Broker::parse(&self.url()).unwrap()
    }

    /// A plain (admin) connection, over TCP without TLS or credentials
    /// unless the URL has them.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).unwrap();
        client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis")
    }

    /// Runs one command on a fresh connection.
    pub async fn cmd(&self, args: &[&str]) -> Value {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query_async(&mut self.conn().await)
            .await
            .expect("redis command")
    }

    pub async fn publish(&self, channel: &str, payload: impl AsRef<[u8]>) {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload.as_ref())
            .query_async(&mut self.conn().await)
            .await
            .expect("PUBLISH");
    }

    pub async fn xadd(&self, stream: &str, payload: &str) -> String {
        redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("m")
            .arg(payload)
            .query_async(&mut self.conn().await)
            .await
            .expect("XADD")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A segment with a unique name, unlinked on drop.
pub struct Segment {
    pub name: String,
    pub cache: memshelf::Cache,
}

impl Segment {
    pub fn new(tag: &str) -> Segment {
        let name = unique(tag);
        let cache = memshelf::Cache::open(&name, 4 << 20).expect("create segment");
        Segment { name, cache }
    }
    pub fn put(&self, k: &str) {
        self.cache.put(k, b"v").unwrap();
    }
    pub fn put_tagged(&self, k: &str, tag: &str) {
        let tags = [tag.as_bytes()];
        self.cache
            .put_with(k, b"v", &memshelf::PutOptions::default().with_tags(&tags))
            .unwrap();
    }
    pub fn has(&self, k: impl AsRef<[u8]>) -> bool {
        self.cache.get(k).unwrap().is_some()
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let _ = memshelf::unlink(&self.name);
    }
}

/// Polls `cond` every 10 ms for up to 10 s.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after 10 s waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A test configuration: fast backoff, HTTP on an ephemeral port.
/// `n` cluster-enabled redis-servers joined into one cluster of `n`
/// masters with `redis-cli --cluster create`, and their `host:port`s (the
/// caller waits for `cluster_state:ok` as it prefers).
pub fn start_cluster(n: usize) -> (Vec<Redis>, Vec<String>) {
    let nodes: Vec<Redis> = (0..n)
        .map(|_| {
            Redis::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "{dir}/nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ])
        })
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .arg("--cluster-yes")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("redis-cli --cluster create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    (nodes, addrs)
}

pub fn config(segments: &[&str], redis: &Redis) -> Config {
    let mut c = Config::new(segments, redis.broker());
    c.metrics_addr = Some("127.0.0.1:0".into());
    c.backoff_max = Duration::from_millis(300);
    c.ping_interval = Duration::from_millis(200);
    c.dead_after = Duration::from_secs(2);
    c
}

/// Starts an agent and waits until it is subscribed and ready.
pub async fn start(cfg: Config) -> Agent {
    let agent = memshelf_agent::start(cfg).await.expect("start agent");
    let m = agent.metrics().clone();
    // Connected, and the startup gap closed (cleared again, logged or
    // covered by a replay; the cap lifted), so a test's first put cannot
    // race the startup clear.
    wait_for("agent connected and its startup gap closed", || {
        m.is_connected() && !m.is_degraded() && m.gaps(memshelf_agent::GapReason::Startup) >= 1
    })
    .await;
    agent
}

/// GET a path from the agent's HTTP server: (status, body).
pub async fn http_get(agent: &Agent, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = agent.http_addr().expect("http server");
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect http");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Parses Prometheus text format strictly enough to catch mistakes:
/// returns (series with labels, value) and checks every sample has a TYPE.
pub fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut typed = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split_whitespace();
            let name = p.next().expect("TYPE name");
            let kind = p.next().expect("TYPE kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type in {line:?}"
            );
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name {name:?}"
        );
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(
                labels.starts_with('{') && labels.ends_with('}'),
                "bad labels {line:?}"
            );
            for kv in labels[1..labels.len() - 1].split(',') {
                let (k, v) = kv.split_once('=').expect("label k=v");
                assert!(
                    !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                    "bad label {kv:?}"
                );
            }
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| typed.contains(*b))
            .unwrap_or(name);
        assert!(typed.contains(base), "sample {name} without # TYPE");
        out.push((series.to_string(), v));
    }
    out
}

/// The value of one series in parsed metrics.
pub fn metric(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .unwrap_or_else(|| panic!("no series {series}"))
        .1
}
