//! A small Redis client: RESP2 frames over TCP or a unix socket.
//!
//! Reading is cancel-safe (bytes are read into a buffer, and a frame is
//! parsed only once it is complete), so a caller may race a read against a
//! timer in `tokio::select!` without losing data.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Where the broker listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `redis://host:port` (port 6379 by default).
    Tcp(String),
    /// `unix:///path`, `redis+unix:///path`, or a plain absolute path.
    Unix(std::path::PathBuf),
}

impl Address {
    /// Parses `redis://host[:port][/db]`, `unix:///path`, `redis+unix:///path`
    /// or `/path/to/redis.sock`. A database number and credentials are not
    /// supported (Pub/Sub ignores the database anyway).
    pub fn parse(url: &str) -> Result<Address, String> {
        let url = url.trim();
        for scheme in ["unix://", "redis+unix://"] {
            if let Some(p) = url.strip_prefix(scheme) {
                return Ok(Address::Unix(p.into()));
            }
        }
        if url.starts_with('/') {
            return Ok(Address::Unix(url.into()));
        }
        let rest = url.strip_prefix("redis://").ok_or_else(|| {
            format!("broker URL {url:?}: expected redis://host:port or a unix socket path")
        })?;
        let hostport = rest.split('/').next().unwrap_or_default();
        if hostport.contains('@') {
            return Err(format!("broker URL {url:?}: credentials are not supported"));
        }
        if hostport.is_empty() {
            return Err(format!("broker URL {url:?}: missing host"));
        }
        let has_port = match hostport.rfind(':') {
            Some(i) => !hostport.ends_with(']') && hostport[i + 1..].parse::<u16>().is_ok(),
            None => false,
        };
        Ok(Address::Tcp(if has_port {
            hostport.to_string()
        } else {
            format!("{hostport}:6379")
        }))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "redis://{a}"),
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// One RESP2 value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Int(i64),
    /// `$n` bytes
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`
    Nil,
    /// `*n` values
    Array(Vec<Value>),
}

impl Value {
    /// The bytes of a bulk or simple string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
    /// Text of a bulk or simple string (lossy).
    pub fn text(&self) -> Option<String> {
        self.as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A connection to Redis.
pub struct Connection {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    max_frame: usize,
}

/// Frames larger than this close the connection (default 512 MiB, Redis's
/// own `proto-max-bulk-len`).
pub const DEFAULT_MAX_FRAME: usize = 512 << 20;

impl Connection {
    /// Connects within `timeout`.
    pub async fn connect(addr: &Address, timeout: Duration) -> io::Result<Connection> {
        let fut = async {
            Ok::<Box<dyn Stream>, io::Error>(match addr {
                Address::Tcp(a) => {
                    let s = TcpStream::connect(a).await?;
                    s.set_nodelay(true)?;
                    Box::new(s)
                }
                Address::Unix(p) => Box::new(UnixStream::connect(p).await?),
            })
        };
        let stream = tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect to {addr}")))??;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(64 << 10),
            max_frame: DEFAULT_MAX_FRAME,
        })
    }

    /// Sets the largest frame accepted before the connection is declared
    /// broken.
    pub fn set_max_frame(&mut self, bytes: usize) {
        self.max_frame = bytes;
    }

    /// Writes one command (not flushed past the socket; no reply read).
    pub async fn send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
        encode(&mut out, args);
        self.stream.write_all(&out).await
    }

    /// Writes several commands at once (a pipeline).
    pub async fn send_many(&mut self, cmds: &[Vec<Vec<u8>>]) -> io::Result<()> {
        let mut out = Vec::new();
        for c in cmds {
            let args: Vec<&[u8]> = c.iter().map(|a| a.as_slice()).collect();
            encode(&mut out, &args);
        }
        self.stream.write_all(&out).await
    }

    /// Sends a command and reads its reply. A Redis error reply is returned
    /// as `Err` of kind `Other`.
    pub async fn cmd(&mut self, args: &[&[u8]]) -> io::Result<Value> {
        self.send(args).await?;
        match self.read().await? {
            Value::Error(e) => Err(io::Error::other(e)),
            v => Ok(v),
        }
    }

    /// Reads the next frame. Cancel-safe.
    pub async fn read(&mut self) -> io::Result<Value> {
        loop {
            match parse(&self.buf) {
                Ok(Some((v, used))) => {
                    self.buf.drain(..used);
                    return Ok(v);
                }
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            if self.buf.len() > self.max_frame {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("frame larger than {} bytes", self.max_frame),
                ));
            }
            self.buf.reserve(64 << 10);
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed by the broker",
                ));
            }
        }
    }
}

fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one frame from the front of `buf`: `Ok(None)` when incomplete,
/// else the value and the bytes it used.
pub fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, String> {
    parse_at(buf, 0, 0)
}

fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let i = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..i], at + i + 2))
}

fn int(b: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad integer in RESP: {:?}", String::from_utf8_lossy(b)))
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Value, usize)>, String> {
    if depth > 32 {
        return Err("RESP nested too deeply".into());
    }
    let Some(&tag) = buf.get(at) else {
        return Ok(None);
    };
    let Some((l, next)) = line(buf, at + 1) else {
        return Ok(None);
    };
    match tag {
        b'+' => Ok(Some((
            Value::Simple(String::from_utf8_lossy(l).into()),
            next,
        ))),
        b'-' => Ok(Some((
            Value::Error(String::from_utf8_lossy(l).into()),
            next,
        ))),
        b':' => Ok(Some((Value::Int(int(l)?), next))),
        b'$' => {
            let n = int(l)?;
            if n < 0 {
                return Ok(Some((Value::Nil, next)));
            }
            let end = next + n as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err("bulk string not followed by CRLF".into());
            }
            Ok(Some((Value::Bulk(buf[next..end].to_vec()), end + 2)))
        }
        b'*' => {
            let n = int(l)?;
            if n < 0 {
                return Ok(Some((Value::Nil, next)));
            }
            let mut items = Vec::with_capacity((n as usize).min(1024));
            let mut pos = next;
            for _ in 0..n {
                match parse_at(buf, pos, depth + 1)? {
                    Some((v, p)) => {
                        items.push(v);
                        pos = p;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Value::Array(items), pos)))
        }
        t => Err(format!("unexpected RESP type byte {t:#04x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frames_and_partial_input() {
        let f = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n";
        for cut in 0..f.len() {
            assert_eq!(parse(&f[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (v, used) = parse(f).unwrap().unwrap();
        assert_eq!(used, f.len());
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Bulk(b"message".to_vec()),
                Value::Bulk(b"ch".to_vec()),
                Value::Bulk(b"hello".to_vec())
            ])
        );
        assert_eq!(parse(b"$-1\r\n").unwrap().unwrap().0, Value::Nil);
        assert_eq!(parse(b":-5\r\n").unwrap().unwrap().0, Value::Int(-5));
        assert_eq!(
            parse(b"-ERR x\r\n").unwrap().unwrap().0,
            Value::Error("ERR x".into())
        );
        assert!(parse(b"?\r\n").is_err());
    }

    #[test]
    fn parses_addresses() {
        assert_eq!(
            Address::parse("redis://127.0.0.1:7000").unwrap(),
            Address::Tcp("127.0.0.1:7000".into())
        );
        assert_eq!(
            Address::parse("redis://localhost").unwrap(),
            Address::Tcp("localhost:6379".into())
        );
        assert_eq!(
            Address::parse("/tmp/r.sock").unwrap(),
            Address::Unix("/tmp/r.sock".into())
        );
        assert_eq!(
            Address::parse("unix:///tmp/r.sock").unwrap(),
            Address::Unix("/tmp/r.sock".into())
        );
        assert!(Address::parse("http://x").is_err());
        assert!(Address::parse("redis://u:p@x:1").is_err());
    }
}
