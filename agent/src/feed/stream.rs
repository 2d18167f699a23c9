//! A Redis Stream: replayable. The agent reads with `XREAD` from the last
//! applied id (kept in a state file across restarts), so a reconnect
//! replays what was missed. Only a stream trimmed (or reset) past that id
//! is a gap that needs a clear.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Feed, FeedEvent, Gap};
use crate::metrics::GapReason;
use crate::resp::{Address, Connection, Value};

/// The field of a stream entry that holds the JSON payload (written by
/// `memshelf publish --stream`). An entry without it is read from its first
/// field.
pub const PAYLOAD_FIELD: &str = "m";

/// A stream entry id `ms-seq`, compared numerically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId(pub u64, pub u64);

impl StreamId {
    /// Parses `ms-seq` (or `ms`).
    pub fn parse(s: &str) -> Option<StreamId> {
        let s = s.trim();
        match s.split_once('-') {
            Some((a, b)) => Some(StreamId(a.parse().ok()?, b.parse().ok()?)),
            None => Some(StreamId(s.parse().ok()?, 0)),
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// A position in the stream: the last id read and, when known, its
/// ordinal (how many entries were ever added up to it, comparable with
/// `XINFO STREAM`'s `entries-added`). The ordinal tells a trim that removed
/// unread entries from one that only removed read ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StreamPos {
    /// Last id read.
    pub id: StreamId,
    /// Its ordinal, if known.
    pub ordinal: Option<u64>,
}

impl StreamPos {
    /// Parses `ms-seq` or `ms-seq ordinal` (the state file's line).
    pub fn parse(s: &str) -> Option<StreamPos> {
        let mut it = s.split_whitespace();
        let id = StreamId::parse(it.next()?)?;
        let ordinal = match it.next() {
            Some(o) => Some(o.parse().ok()?),
            None => None,
        };
        Some(StreamPos { id, ordinal })
    }
}

impl std::fmt::Display for StreamPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ordinal {
            Some(o) => write!(f, "{} {o}", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

/// The file keeping the last applied id: one line, replaced atomically
/// (write to a temporary file, then rename). No fsync: after a power loss
/// the shared-memory segments are gone too.
#[derive(Clone, Debug)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// A state file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> StateFile {
        StateFile { path: path.into() }
    }
    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The saved position, if any (a missing or unreadable file is none).
    pub fn load(&self) -> Option<StreamPos> {
        StreamPos::parse(&std::fs::read_to_string(&self.path).ok()?)
    }
    /// Saves a position (as [`StreamPos`] writes it).
    pub fn save(&self, id: &str) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, format!("{id}\n"))?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// What `XINFO STREAM` says about the stream.
#[derive(Debug, Default)]
struct Info {
    last_generated: StreamId,
    max_deleted: Option<StreamId>,
    first_entry: Option<StreamId>,
    entries_added: Option<u64>,
    length: u64,
}

/// Reads one stream.
pub struct StreamFeed {
    addr: Address,
    key: String,
    block: Duration,
    dead_after: Duration,
    max_frame: usize,
    conn: Option<Connection>,
    /// Last position read (queued to the applier); `None` before the first
    /// connection when no position was saved.
    last: Option<StreamPos>,
    pending: VecDeque<(StreamPos, Vec<u8>)>,
}

impl StreamFeed {
    /// Reads `key` on `addr`, resuming after `resume_from` (the id in the
    /// state file) if given. Each `XREAD` blocks at most `block`, which is
    /// also the liveness check.
    pub fn new(
        addr: Address,
        key: String,
        resume_from: Option<StreamPos>,
        block: Duration,
        dead_after: Duration,
        max_message: usize,
    ) -> StreamFeed {
        StreamFeed {
            addr,
            key,
            block,
            dead_after,
            max_frame: max_message.saturating_mul(256).max(64 << 20),
            conn: None,
            last: resume_from,
            pending: VecDeque::new(),
        }
    }

    async fn info(conn: &mut Connection, key: &str) -> io::Result<Option<Info>> {
        conn.send(&[b"XINFO", b"STREAM", key.as_bytes()]).await?;
        parse_info(conn.read().await?)
    }

    /// After a trim gap, moves the position so that the same removal is
    /// not reported again.
    fn skip_reported(&mut self, info: Option<&Info>) {
        skip_reported(&mut self.last, info)
    }
}

/// After a trim gap, moves `last` past what was removed, so that the same
/// removal is not reported again.
fn skip_reported(last: &mut Option<StreamPos>, info: Option<&Info>) {
    let (Some(info), Some(last)) = (info, last.as_mut()) else {
        return;
    };
    if let Some(d) = info.max_deleted {
        last.id = last.id.max(d);
    }
    if info.first_entry.is_none_or(|f| f > last.id)
        && let Some(n) = info.entries_added
    {
        last.ordinal = Some(last.ordinal.unwrap_or(0).max(n.saturating_sub(info.length)));
    }
}

/// Whether entries after `after` were removed before being read; resets
/// `last` when the stream was deleted or recreated.
fn trimmed(last: &mut Option<StreamPos>, after: StreamPos, info: Option<&Info>) -> bool {
    let start = StreamPos {
        id: StreamId::default(),
        ordinal: Some(0),
    };
    let Some(info) = info else {
        // No stream: deleted, or the broker lost its data. Whatever comes
        // next is read from the start.
        *last = Some(start);
        return after.id != StreamId::default();
    };
    if info.last_generated < after.id {
        // Recreated with smaller ids.
        *last = Some(start);
        return true;
    }
    // XDEL of an entry after ours (Redis 7+ tracks the largest deleted id;
    // trimming does not update it).
    if info.max_deleted.is_some_and(|d| d > after.id) {
        return true;
    }
    // Trimming removes the oldest entries. If every remaining entry is
    // after ours, the ones between were removed unless none existed: with
    // ordinals, `entries_added - length` entries are gone and we had read
    // `ordinal` of them.
    if info.first_entry.is_none_or(|f| f > after.id) {
        return match (info.entries_added, after.ordinal) {
            (Some(added), Some(k)) => added.saturating_sub(info.length) > k,
            // Without ordinals (Redis < 7, or an old state file): assume
            // the worst unless nothing was ever added after our position.
            _ => info.length > 0 || info.last_generated > after.id,
        };
    }
    false
}

/// Ordinal of the entry before the first one of a batch read after `after`.
fn batch_base(after: StreamPos, info: Option<&Info>) -> Option<u64> {
    let info = info?;
    if info.first_entry.is_none_or(|f| f > after.id) {
        // Every remaining entry is after ours: the batch starts at the
        // first remaining entry.
        info.entries_added.map(|n| n.saturating_sub(info.length))
    } else {
        after.ordinal
    }
}

impl Feed for StreamFeed {
    fn describe(&self) -> String {
        format!("stream broker={} key={}", self.addr, self.key)
    }

    fn replayable(&self) -> bool {
        true
    }

    async fn connect(&mut self, first: bool) -> io::Result<Vec<Gap>> {
        self.conn = None;
        // Entries read but not yet handed over are read again.
        if let Some((p, _)) = self.pending.front() {
            self.last = Some(StreamPos {
                id: p.id.prev(),
                ordinal: p.ordinal.map(|o| o.saturating_sub(1)),
            });
        }
        self.pending.clear();
        let mut c = Connection::connect(&self.addr, self.dead_after).await?;
        c.set_max_frame(self.max_frame);
        let info = tokio::time::timeout(self.dead_after, Self::info(&mut c, &self.key))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "XINFO STREAM"))??;
        let mut gaps = Vec::new();
        match self.last {
            None => {
                // No saved position: start at the end and clear, since
                // anything published while no agent ran is unknown.
                self.last = Some(match &info {
                    Some(i) => StreamPos {
                        id: i.last_generated,
                        ordinal: i.entries_added,
                    },
                    None => StreamPos {
                        id: StreamId::default(),
                        ordinal: Some(0),
                    },
                });
                gaps.push(Gap::uncovered(GapReason::Startup));
            }
            Some(after) => {
                gaps.push(Gap::covered(if first {
                    GapReason::Startup
                } else {
                    GapReason::Disconnect
                }));
                if trimmed(&mut self.last, after, info.as_ref()) {
                    gaps.push(Gap::uncovered(GapReason::Trimmed));
                    self.skip_reported(info.as_ref());
                }
            }
        }
        self.conn = Some(c);
        Ok(gaps)
    }

    async fn next(&mut self) -> io::Result<FeedEvent> {
        loop {
            if let Some((id, data)) = self.pending.pop_front() {
                return Ok(FeedEvent::Payload {
                    data,
                    id: Some(id.to_string()),
                });
            }
            let after = self.last.unwrap_or_default();
            let after_s = after.id.to_string();
            let key = self.key.as_bytes();
            let conn = self
                .conn
                .as_mut()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))?;
            // Read a batch and the stream's deletion watermark atomically:
            // an entry after our position that is already deleted when we
            // read was trimmed unread.
            conn.send_many(&[
                vec![b"MULTI".to_vec()],
                vec![b"XINFO".to_vec(), b"STREAM".to_vec(), key.to_vec()],
                vec![
                    b"XREAD".to_vec(),
                    b"COUNT".to_vec(),
                    b"512".to_vec(),
                    b"STREAMS".to_vec(),
                    key.to_vec(),
                    after_s.as_bytes().to_vec(),
                ],
                vec![b"EXEC".to_vec()],
            ])
            .await?;
            let replies = tokio::time::timeout(self.dead_after, async {
                let mut r = Vec::with_capacity(4);
                for _ in 0..4 {
                    r.push(conn.read().await?);
                }
                Ok::<_, io::Error>(r)
            })
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no reply from the broker"))??;
            let Some(Value::Array(mut exec)) = replies.into_iter().next_back() else {
                return Err(io::Error::other("MULTI/EXEC of XINFO+XREAD failed"));
            };
            let (Some(read), Some(info)) = (exec.pop(), exec.pop()) else {
                return Err(io::Error::other("short EXEC reply"));
            };
            let info = parse_info(info)?;
            let batch = entries(read)?;
            let base = batch_base(after, info.as_ref());
            let trimmed = trimmed(&mut self.last, after, info.as_ref());
            for (i, (id, data)) in batch.into_iter().enumerate() {
                let pos = StreamPos {
                    id,
                    ordinal: base.map(|b| b + i as u64 + 1),
                };
                self.last = Some(pos);
                self.pending.push_back((pos, data));
            }
            if trimmed {
                skip_reported(&mut self.last, info.as_ref());
            }
            if trimmed {
                return Ok(FeedEvent::Gap(Gap::uncovered(GapReason::Trimmed)));
            }
            if !self.pending.is_empty() {
                continue;
            }
            // Nothing new: wait for an entry (or `block`, which doubles as
            // the liveness check), then read it atomically as above.
            let block_ms = self.block.as_millis().max(1).to_string();
            let after_s = self.last.unwrap_or_default().id.to_string();
            conn.send(&[
                b"XREAD",
                b"COUNT",
                b"1",
                b"BLOCK",
                block_ms.as_bytes(),
                b"STREAMS",
                key,
                after_s.as_bytes(),
            ])
            .await?;
            let reply = tokio::time::timeout(self.block + self.dead_after, conn.read())
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no reply to XREAD"))??;
            if let Value::Error(e) = reply {
                return Err(io::Error::other(format!("XREAD: {e}")));
            }
        }
    }
}

fn parse_info(v: Value) -> io::Result<Option<Info>> {
    let items = match v {
        Value::Error(e) if e.contains("no such key") => return Ok(None),
        Value::Error(e) => return Err(io::Error::other(format!("XINFO STREAM: {e}"))),
        Value::Array(items) => items,
        _ => return Err(io::Error::other("XINFO STREAM: unexpected reply")),
    };
    let mut info = Info::default();
    for pair in items.chunks(2) {
        let [k, v] = pair else { continue };
        let id = || v.text().as_deref().and_then(StreamId::parse);
        match k.as_bytes() {
            Some(b"last-generated-id") => info.last_generated = id().unwrap_or_default(),
            Some(b"max-deleted-entry-id") => info.max_deleted = id(),
            Some(b"entries-added") => {
                if let Value::Int(n) = v {
                    info.entries_added = u64::try_from(*n).ok();
                }
            }
            Some(b"length") => {
                if let Value::Int(n) = v {
                    info.length = u64::try_from(*n).unwrap_or(0);
                }
            }
            Some(b"first-entry") => {
                if let Value::Array(e) = v {
                    info.first_entry = e
                        .first()
                        .and_then(|i| i.text())
                        .as_deref()
                        .and_then(StreamId::parse);
                }
            }
            _ => {}
        }
    }
    Ok(Some(info))
}

impl StreamId {
    /// The id just before this one.
    fn prev(self) -> StreamId {
        match self {
            StreamId(0, 0) => self,
            StreamId(ms, 0) => StreamId(ms - 1, u64::MAX),
            StreamId(ms, s) => StreamId(ms, s - 1),
        }
    }
}

/// The entries of an `XREAD` reply: `[[key, [[id, [field, value, ...]], ...]]]`.
fn entries(reply: Value) -> io::Result<Vec<(StreamId, Vec<u8>)>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected XREAD reply");
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(s) => s,
        Value::Error(e) => return Err(io::Error::other(format!("XREAD: {e}"))),
        _ => return Err(bad()),
    };
    let mut out = Vec::new();
    for s in streams {
        let Value::Array(mut kv) = s else {
            return Err(bad());
        };
        let Some(Value::Array(list)) = kv.pop() else {
            return Err(bad());
        };
        for e in list {
            let Value::Array(mut e) = e else {
                return Err(bad());
            };
            let fields = match e.pop() {
                Some(Value::Array(f)) => f,
                _ => Vec::new(),
            };
            let id = e
                .pop()
                .and_then(|i| i.text())
                .and_then(|t| StreamId::parse(&t))
                .ok_or_else(bad)?;
            let mut payload = None;
            let mut it = fields.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                let is_payload = k.as_bytes() == Some(PAYLOAD_FIELD.as_bytes());
                if is_payload || payload.is_none() {
                    payload = Some(match v {
                        Value::Bulk(b) => b,
                        _ => Vec::new(),
                    });
                }
                if is_payload {
                    break;
                }
            }
            out.push((id, payload.unwrap_or_default()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_and_round_trip() {
        assert!(StreamId::parse("5-1").unwrap() > StreamId::parse("4-99").unwrap());
        assert!(StreamId::parse("10-0").unwrap() > StreamId::parse("9-0").unwrap());
        assert_eq!(StreamId::parse("7").unwrap(), StreamId(7, 0));
        assert_eq!(StreamId(3, 4).to_string(), "3-4");
        assert_eq!(StreamId(3, 0).prev(), StreamId(2, u64::MAX));
        assert!(StreamId::parse("x-1").is_none());
    }
}
