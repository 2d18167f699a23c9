//! A Redis Stream: replayable. The agent reads with `XREAD` from the last
//! applied id (kept in a state file across restarts), so a reconnect
//! replays what was missed, once the position is verified to belong to the
//! same stream. A stream trimmed past that id, deleted or recreated (even
//! with entries again) is a gap that needs a clear.
//!
//! Identity: the position records the entry's ordinal (how many entries
//! were ever added up to it, comparable with `XINFO STREAM`'s
//! `entries-added`), a digest of its payload and the stream's
//! `max-deleted-entry-id`. The same stream never moves these backwards:
//! `entries-added` and `max-deleted-entry-id` only grow, the entry is still
//! there with the same payload unless it was trimmed, and once it is
//! trimmed exactly `ordinal` entries are gone (fewer: another stream; more:
//! trimmed unread). Each batch is read in one `MULTI` with these facts, so
//! a `DEL` + `XADD` at any time is seen.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::Value;
use redis::aio::MultiplexedConnection;

use super::{Connected, Feed, FeedEvent, Lost};
use crate::broker::{Broker, text};
use crate::metrics::GapReason;

/// The field of a stream entry that holds the JSON payload (written by
/// `memshelf publish --stream`). An entry without it is read from its first
/// field.
pub const PAYLOAD_FIELD: &str = "m";

/// Entries read per `XREAD` at most. A read that fails (no reply within
/// `dead_after`: big entries, a slow link) halves the next one's count, down
/// to one entry; each read that succeeds grows it again by a quarter. A
/// fixed count re-read the same batch for ever when it could not arrive in
/// time, leaving the deletes behind it unapplied.
const BATCH: usize = 512;

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
    fn is_zero(self) -> bool {
        self == StreamId(0, 0)
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// A position in the stream: the last id read and what identifies the
/// stream there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StreamPos {
    /// Last id read.
    pub id: StreamId,
    /// Its ordinal (entries ever added up to it), if known.
    pub ordinal: Option<u64>,
    /// xxh3 of the entry's payload, if known.
    pub digest: Option<u64>,
    /// The stream's `max-deleted-entry-id` when it was read.
    pub max_deleted: StreamId,
}

impl StreamPos {
    /// The start of an empty (or absent) stream.
    pub fn start() -> StreamPos {
        StreamPos {
            ordinal: Some(0),
            ..Default::default()
        }
    }

    /// Parses the state file's line: `ms-seq [ordinal [digest max_deleted]]`.
    pub fn parse(s: &str) -> Option<StreamPos> {
        let mut it = s.split_whitespace();
        let id = StreamId::parse(it.next()?)?;
        let ordinal = match it.next() {
            Some(o) => Some(o.parse().ok()?),
            None => None,
        };
        let digest = match it.next() {
            Some("-") | None => None,
            Some(d) => Some(u64::from_str_radix(d, 16).ok()?),
        };
        let max_deleted = match it.next() {
            Some(m) => StreamId::parse(m)?,
            None => StreamId::default(),
        };
        Some(StreamPos {
            id,
            ordinal,
            digest,
            max_deleted,
        })
    }
}

impl std::fmt::Display for StreamPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.id)?;
        if let Some(o) = self.ordinal {
            write!(f, " {o}")?;
            match self.digest {
                Some(d) => write!(f, " {d:016x}")?,
                None => write!(f, " -")?,
            }
            write!(f, " {}", self.max_deleted)?;
        }
        Ok(())
    }
}

/// The file keeping the last applied position: one line, replaced
/// atomically (write to a temporary file, then rename). No fsync: after a
/// power loss the shared-memory segments are gone too.
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
    pub fn save(&self, pos: &str) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, format!("{pos}\n"))?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// What `XINFO STREAM` says about the stream.
#[derive(Debug, Default, Clone)]
pub(crate) struct Info {
    last_generated: StreamId,
    max_deleted: StreamId,
    first_entry: Option<StreamId>,
    last_entry: Option<(StreamId, Vec<u8>)>,
    entries_added: Option<u64>,
    length: u64,
}

/// What the stream looks like from a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The same stream; nothing after the position was removed.
    Same,
    /// Entries after the position were removed before being read.
    Trimmed,
    /// Not the stream the position was read from (deleted, recreated,
    /// reset, or the broker lost it).
    Recreated,
}

fn digest(payload: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(payload)
}

/// Checks `pos` against the stream. `at` is the entry at `pos.id`, if the
/// stream holds it.
pub(crate) fn verify(
    pos: &StreamPos,
    info: Option<&Info>,
    at: Option<&(StreamId, Vec<u8>)>,
) -> Verdict {
    let Some(info) = info else {
        // No stream. At the start nothing was missed; otherwise it was
        // deleted (or the broker lost its data).
        return if pos.id.is_zero() && pos.ordinal.unwrap_or(0) == 0 {
            Verdict::Same
        } else {
            Verdict::Recreated
        };
    };
    if info.last_generated < pos.id || info.max_deleted < pos.max_deleted {
        return Verdict::Recreated;
    }
    if let (Some(added), Some(k)) = (info.entries_added, pos.ordinal)
        && added < k
    {
        return Verdict::Recreated;
    }
    // XDEL of an entry after ours (Redis 7 tracks the largest deleted id).
    let deleted_after = info.max_deleted > pos.id;
    if !pos.id.is_zero() && info.first_entry.is_some_and(|f| f <= pos.id) {
        // Our entry should still be there, with the same payload (unless
        // it was itself deleted with XDEL).
        match at {
            Some((id, payload)) if *id == pos.id => {
                if pos.digest.is_some_and(|d| d != digest(payload)) {
                    return Verdict::Recreated;
                }
            }
            _ if info.max_deleted >= pos.id => {}
            _ => return Verdict::Recreated,
        }
        return if deleted_after {
            Verdict::Trimmed
        } else {
            Verdict::Same
        };
    }
    // Every remaining entry is after ours: the ones up to ours were
    // removed. With ordinals exactly `ordinal` of them (fewer: another
    // stream; more: unread ones were trimmed).
    match (info.entries_added, pos.ordinal) {
        (Some(added), Some(k)) => {
            let removed = added.saturating_sub(info.length);
            if removed < k {
                Verdict::Recreated
            } else if removed > k || deleted_after {
                Verdict::Trimmed
            } else {
                Verdict::Same
            }
        }
        // Without ordinals (an old state file): assume the worst unless
        // nothing was ever added after our position.
        _ => {
            if info.length > 0 || info.last_generated > pos.id {
                Verdict::Trimmed
            } else {
                Verdict::Same
            }
        }
    }
}

/// The position at the end of the stream as `info` describes it.
fn end_of(info: Option<&Info>) -> StreamPos {
    match info {
        None => StreamPos::start(),
        Some(i) => StreamPos {
            id: i.last_generated,
            ordinal: i.entries_added,
            digest: i
                .last_entry
                .as_ref()
                .filter(|(id, _)| *id == i.last_generated)
                .map(|(_, p)| digest(p)),
            max_deleted: i.max_deleted,
        },
    }
}

/// Reads one stream.
pub struct StreamFeed {
    broker: Broker,
    key: String,
    block: Duration,
    dead_after: Duration,
    attempt: usize,
    conn: Option<(MultiplexedConnection, String)>,
    /// Last position read (queued to the applier); `None` before the first
    /// connection when no position was saved.
    last: Option<StreamPos>,
    /// Position of the last entry handed to the agent.
    delivered: Option<StreamPos>,
    pending: VecDeque<(StreamPos, Vec<u8>)>,
    /// Entries the next `XREAD` asks for (see `BATCH`).
    batch: usize,
}

impl StreamFeed {
    /// Reads `key` on `broker` (in the URL's database), resuming after
    /// `resume_from` (the state file's position) if given. Each `XREAD`
    /// blocks at most `block`; a reply later than `block + dead_after`
    /// loses the connection.
    pub fn new(
        broker: Broker,
        key: String,
        resume_from: Option<StreamPos>,
        block: Duration,
        dead_after: Duration,
    ) -> StreamFeed {
        StreamFeed {
            broker,
            key,
            block,
            dead_after,
            attempt: 0,
            conn: None,
            last: resume_from,
            delivered: resume_from,
            pending: VecDeque::new(),
            batch: BATCH,
        }
    }

    async fn open(&mut self) -> Result<(MultiplexedConnection, String), String> {
        let t = self.dead_after;
        let (client, node) = self
            .broker
            .data_client(Some(&self.key), self.attempt, t)
            .await?;
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(t))
            .set_response_timeout(None);
        let c = tokio::time::timeout(
            t * 2,
            client.get_multiplexed_async_connection_with_config(&cfg),
        )
        .await
        .map_err(|_| format!("{node}: no answer within {t:?}"))?
        .map_err(|e| format!("{node}: {e}"))?;
        Ok((c, node))
    }

    /// `XINFO STREAM`, the entry at `pos` and (optionally) a batch after
    /// it, atomically.
    async fn snapshot(
        conn: &mut MultiplexedConnection,
        key: &str,
        pos: StreamId,
        batch: Option<usize>,
        timeout: Duration,
    ) -> Result<
        (
            Option<Info>,
            Option<(StreamId, Vec<u8>)>,
            Vec<(StreamId, Vec<u8>)>,
        ),
        String,
    > {
        let id = pos.to_string();
        let mut p = redis::pipe();
        p.atomic().ignore_errors();
        p.cmd("XINFO").arg("STREAM").arg(key);
        p.cmd("XRANGE").arg(key).arg(&id).arg(&id);
        if let Some(count) = batch {
            p.cmd("XREAD")
                .arg("COUNT")
                .arg(count)
                .arg("STREAMS")
                .arg(key)
                .arg(&id);
        }
        let r: Vec<Value> = tokio::time::timeout(timeout, p.query_async(conn))
            .await
            .map_err(|_| format!("no reply to XINFO/XREAD within {timeout:?}"))?
            .map_err(|e| format!("XINFO/XREAD: {e}"))?;
        let mut it = r.into_iter();
        let info = parse_info(it.next().unwrap_or_default())?;
        let at = entry_list(it.next().unwrap_or_default())?
            .into_iter()
            .next();
        let read = match it.next() {
            Some(v) => entries(v)?,
            None => Vec::new(),
        };
        Ok((info, at, read))
    }
}

impl Feed for StreamFeed {
    fn describe(&self) -> String {
        format!("stream broker={} key={}", self.broker, self.key)
    }

    fn replayable(&self) -> bool {
        self.last.is_some()
    }

    async fn connect(&mut self) -> Result<Connected, String> {
        self.conn = None;
        // Entries read but not yet handed over are read again: go back to
        // the position before the first of them.
        if !self.pending.is_empty() {
            self.last = self.delivered;
        }
        self.pending.clear();
        let (mut c, node) = match self.open().await {
            Ok(c) => c,
            Err(e) => {
                self.attempt = self.attempt.wrapping_add(1);
                return Err(e);
            }
        };
        let from = self.last.map(|p| p.id).unwrap_or_default();
        let (info, at, _) = Self::snapshot(&mut c, &self.key, from, None, self.dead_after)
            .await
            .map_err(|e| format!("{node}: {e}"))?;
        let mut out = Connected::default();
        match self.last {
            None => {
                // No saved position: start at the end; what was published
                // while no agent ran is unknown (not covered).
                self.last = Some(end_of(info.as_ref()));
            }
            Some(pos) => match verify(&pos, info.as_ref(), at.as_ref()) {
                Verdict::Same => out.covered = true,
                v => {
                    out.gaps.push(if v == Verdict::Trimmed {
                        GapReason::Trimmed
                    } else {
                        GapReason::Recreated
                    });
                    // The clear covers everything up to now.
                    self.last = Some(end_of(info.as_ref()));
                }
            },
        }
        self.delivered = self.last;
        self.conn = Some((c, node));
        Ok(out)
    }

    async fn next(&mut self) -> Result<FeedEvent, Lost> {
        loop {
            if let Some((pos, data)) = self.pending.pop_front() {
                self.delivered = Some(pos);
                return Ok(FeedEvent::Payload {
                    data,
                    id: Some(pos.to_string()),
                });
            }
            let Some((conn, node)) = self.conn.as_mut() else {
                return Err(Lost::disconnect("not connected"));
            };
            let node = node.clone();
            let lost = |e: String| Lost::disconnect(format!("{node}: {e}"));
            let after = self.last.unwrap_or_else(StreamPos::start);
            let r =
                Self::snapshot(conn, &self.key, after.id, Some(self.batch), self.dead_after).await;
            let (info, at, batch) = match r {
                Ok(x) => {
                    self.batch = (self.batch + self.batch / 4 + 1).min(BATCH);
                    x
                }
                Err(e) => {
                    self.conn = None;
                    self.attempt = self.attempt.wrapping_add(1);
                    self.batch = (self.batch / 2).max(1);
                    return Err(lost(e));
                }
            };
            match verify(&after, info.as_ref(), at.as_ref()) {
                Verdict::Same => {}
                v => {
                    self.last = Some(end_of(info.as_ref()));
                    self.delivered = self.last;
                    return Ok(FeedEvent::Gap(if v == Verdict::Trimmed {
                        GapReason::Trimmed
                    } else {
                        GapReason::Recreated
                    }));
                }
            }
            let base = match &info {
                Some(i) if i.first_entry.is_none_or(|f| f > after.id) => {
                    i.entries_added.map(|n| n.saturating_sub(i.length))
                }
                _ => after.ordinal,
            };
            let max_deleted = info.as_ref().map(|i| i.max_deleted).unwrap_or_default();
            for (i, (id, data)) in batch.into_iter().enumerate() {
                let pos = StreamPos {
                    id,
                    ordinal: base.map(|b| b + i as u64 + 1),
                    digest: Some(digest(&data)),
                    max_deleted,
                };
                self.last = Some(pos);
                self.pending.push_back((pos, data));
            }
            if !self.pending.is_empty() {
                continue;
            }
            // Nothing new: wait for an entry (or `block`, which doubles as
            // the liveness check), then read it atomically as above.
            let block_ms = self.block.as_millis().max(1) as u64;
            let r = tokio::time::timeout(
                self.block + self.dead_after,
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(1)
                    .arg("BLOCK")
                    .arg(block_ms)
                    .arg("STREAMS")
                    .arg(&self.key)
                    .arg(after.id.to_string())
                    .query_async::<Value>(conn),
            )
            .await;
            match r {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    self.conn = None;
                    self.attempt = self.attempt.wrapping_add(1);
                    return Err(lost(format!("XREAD: {e}")));
                }
                Err(_) => {
                    self.conn = None;
                    self.attempt = self.attempt.wrapping_add(1);
                    return Err(lost(format!(
                        "no reply to XREAD BLOCK within {:?}",
                        self.block + self.dead_after
                    )));
                }
            }
        }
    }
}

/// Key/value pairs of a RESP2 flat array or a RESP3 map.
fn pairs(v: Value) -> Option<Vec<(Value, Value)>> {
    match v {
        Value::Map(m) => Some(m),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((k, v));
            }
            Some(out)
        }
        _ => None,
    }
}

pub(crate) fn parse_info(v: Value) -> Result<Option<Info>, String> {
    let items = match v {
        Value::ServerError(e) if format!("{e:?}").contains("no such key") => return Ok(None),
        Value::ServerError(e) => return Err(format!("XINFO STREAM: {e:?}")),
        other => pairs(other).ok_or("XINFO STREAM: unexpected reply")?,
    };
    let mut info = Info::default();
    for (k, v) in items {
        let id = || text(&v).as_deref().and_then(StreamId::parse);
        let int = || match &v {
            Value::Int(n) => u64::try_from(*n).ok(),
            _ => None,
        };
        match text(&k).as_deref() {
            Some("last-generated-id") => info.last_generated = id().unwrap_or_default(),
            Some("max-deleted-entry-id") => info.max_deleted = id().unwrap_or_default(),
            Some("entries-added") => info.entries_added = int(),
            Some("length") => info.length = int().unwrap_or(0),
            Some("first-entry") => info.first_entry = entry(v)?.map(|(id, _)| id),
            Some("last-entry") => info.last_entry = entry(v)?,
            _ => {}
        }
    }
    Ok(Some(info))
}

/// One entry `[id, [field, value, ...]]` (nil: none) and its payload.
fn entry(v: Value) -> Result<Option<(StreamId, Vec<u8>)>, String> {
    let bad = || "unexpected stream entry".to_string();
    let mut e = match v {
        Value::Nil => return Ok(None),
        Value::Array(e) => e,
        _ => return Err(bad()),
    };
    if e.is_empty() {
        return Ok(None);
    }
    let fields = match e.pop() {
        Some(f) => pairs(f).unwrap_or_default(),
        None => Vec::new(),
    };
    let id = e
        .pop()
        .and_then(|i| text(&i))
        .and_then(|t| StreamId::parse(&t))
        .ok_or_else(bad)?;
    let mut payload = None;
    for (k, v) in fields {
        let is_payload = text(&k).as_deref() == Some(PAYLOAD_FIELD);
        if is_payload || payload.is_none() {
            payload = Some(match v {
                Value::BulkString(b) => b,
                other => text(&other).map(String::into_bytes).unwrap_or_default(),
            });
        }
        if is_payload {
            break;
        }
    }
    Ok(Some((id, payload.unwrap_or_default())))
}

/// A list of entries (an `XRANGE` reply).
fn entry_list(v: Value) -> Result<Vec<(StreamId, Vec<u8>)>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Array(list) => Ok(list
            .into_iter()
            .filter_map(|e| entry(e).transpose())
            .collect::<Result<_, _>>()?),
        Value::ServerError(e) => Err(format!("XRANGE: {e:?}")),
        _ => Err("unexpected XRANGE reply".into()),
    }
}

/// The entries of an `XREAD` reply: `[[key, [entry, ...]]]` (RESP3: a map).
fn entries(reply: Value) -> Result<Vec<(StreamId, Vec<u8>)>, String> {
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::ServerError(e) => return Err(format!("XREAD: {e:?}")),
        Value::Map(m) => m.into_iter().map(|(_, v)| v).collect(),
        Value::Array(s) => s
            .into_iter()
            .map(|kv| match kv {
                Value::Array(mut kv) => kv.pop().unwrap_or_default(),
                other => other,
            })
            .collect::<Vec<_>>(),
        _ => return Err("unexpected XREAD reply".into()),
    };
    let mut out = Vec::new();
    for list in streams {
        out.extend(entry_list(list)?);
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
        assert!(StreamId::parse("x-1").is_none());
        let p = StreamPos {
            id: StreamId(5, 1),
            ordinal: Some(9),
            digest: Some(0xabc),
            max_deleted: StreamId(2, 0),
        };
        assert_eq!(StreamPos::parse(&p.to_string()), Some(p));
        assert_eq!(
            StreamPos::parse("5-1 9").unwrap().ordinal,
            Some(9),
            "the older two-field state file still loads"
        );
    }

    fn info(last: u64, added: u64, len: u64, first: Option<u64>) -> Info {
        Info {
            last_generated: StreamId(last, 0),
            max_deleted: StreamId::default(),
            first_entry: first.map(|f| StreamId(f, 0)),
            last_entry: None,
            entries_added: Some(added),
            length: len,
        }
    }

    #[test]
    fn verdicts() {
        let pos = StreamPos {
            id: StreamId(10, 0),
            ordinal: Some(3),
            digest: Some(digest(b"p")),
            max_deleted: StreamId::default(),
        };
        let at = (StreamId(10, 0), b"p".to_vec());
        // Same stream, our entry still there, two more added.
        assert_eq!(
            verify(&pos, Some(&info(12, 5, 5, Some(8))), Some(&at)),
            Verdict::Same
        );
        // Deleted.
        assert_eq!(verify(&pos, None, None), Verdict::Recreated);
        // Recreated with fewer entries ever added.
        assert_eq!(
            verify(&pos, Some(&info(20, 1, 1, Some(20))), None),
            Verdict::Recreated
        );
        // Recreated with as many entries as before: our entry is missing.
        assert_eq!(
            verify(&pos, Some(&info(20, 9, 9, Some(5))), None),
            Verdict::Recreated
        );
        // Same id, other payload.
        let other = (StreamId(10, 0), b"q".to_vec());
        assert_eq!(
            verify(&pos, Some(&info(12, 5, 5, Some(8))), Some(&other)),
            Verdict::Recreated
        );
        // Trimmed exactly up to us: fine; past us: a trim gap.
        assert_eq!(
            verify(&pos, Some(&info(12, 5, 2, Some(11))), None),
            Verdict::Same
        );
        assert_eq!(
            verify(&pos, Some(&info(12, 5, 1, Some(12))), None),
            Verdict::Trimmed
        );
        // Recreated and trimmed to look shorter than our history.
        assert_eq!(
            verify(&pos, Some(&info(30, 4, 3, Some(28))), None),
            Verdict::Recreated
        );
        // Smaller ids.
        assert_eq!(
            verify(&pos, Some(&info(9, 9, 9, Some(1))), None),
            Verdict::Recreated
        );
        // From the start of an absent stream.
        assert_eq!(verify(&StreamPos::start(), None, None), Verdict::Same);
        assert_eq!(
            verify(&StreamPos::start(), Some(&info(3, 3, 3, Some(1))), None),
            Verdict::Same
        );
        assert_eq!(
            verify(&StreamPos::start(), Some(&info(3, 3, 1, Some(3))), None),
            Verdict::Trimmed
        );
    }
}
