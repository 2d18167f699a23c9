//! The applier: parses payloads, tracks `seq` per origin, applies deletes
//! to the served segments and handles gaps.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memshelf::message::Op;
use memshelf::{Cache, OpenOptions};
use tracing::{error, info, warn};

use crate::config::{Config, FeedKind, GapPolicy};
use crate::engine::Guard;
use crate::feed::Connected;
use crate::feed::stream::{StateFile, StreamPos};
use crate::log::RateLimit;
use crate::metrics::{GapReason, Metrics, Outcome};
use memshelf::message::{Message, Rejected};

/// Origins remembered for `seq` tracking before the table is reset.
const MAX_ORIGINS: usize = 10_000;

/// One served segment, attached lazily (the application may create it
/// after the agent starts).
struct Served {
    name: String,
    cache: Option<Cache>,
    last_try: Option<Instant>,
    guard: Guard,
}

/// A gap detected and not yet closed: the segments are degraded.
#[derive(Clone, Copy, Debug)]
struct OpenGap {
    reason: GapReason,
    /// Cleared when detected: a replay may still cover it (a stream
    /// connection lost with a known position). Otherwise the segments
    /// were cleared at once.
    cleared: bool,
}

/// Applies invalidations to the served segments and runs the gap policy
/// (SPEC 6a): clear at once on a gap no replay covers, keep the segments
/// degraded (a segment-wide TTL cap of `degraded_ttl`) until the feed is
/// healthy, then clear once more unless a verified replay covered the
/// outage, and lift the cap.
pub struct Applier {
    served: Vec<Served>,
    create_capacity: Option<u64>,
    policy: GapPolicy,
    /// No feed (`--feed none`): attach for the metrics only.
    passive: bool,
    stream: bool,
    origin: Option<String>,
    max_message: usize,
    silence_limit: Option<Duration>,
    degraded_ttl: Duration,
    metrics: Arc<Metrics>,
    /// The last `seq` of each origin, keyed by the 128-bit hash of the
    /// origin (an origin may be as long as a message: keeping the strings
    /// let 10,000 origins of a megabyte each hold 10 GB).
    seqs: HashMap<u128, u64>,
    state: Option<StateFile>,
    unsaved: Option<StreamPos>,
    last_save: Instant,
    open: Option<OpenGap>,
    bad_log: RateLimit,
    fail_log: RateLimit,
}

impl Applier {
    /// An applier for `cfg`'s segments; `state` checkpoints stream
    /// positions. Attaches the segments that exist and records this
    /// process as their keeper.
    pub fn new(cfg: &Config, metrics: Arc<Metrics>, state: Option<StateFile>) -> Applier {
        let mut a = Applier {
            served: cfg
                .segments
                .iter()
                .map(|n| Served {
                    name: n.clone(),
                    cache: None,
                    last_try: None,
                    guard: Guard::default(),
                })
                .collect(),
            create_capacity: cfg.create_capacity,
            policy: cfg.gap_policy,
            passive: cfg.feed == FeedKind::None,
            stream: cfg.feed == FeedKind::Stream,
            origin: cfg.origin.clone(),
            max_message: cfg.max_message,
            silence_limit: cfg.silence_limit,
            degraded_ttl: cfg.degraded_ttl,
            metrics,
            seqs: HashMap::new(),
            state,
            unsaved: None,
            last_save: Instant::now(),
            open: None,
            bad_log: RateLimit::new(Duration::from_secs(1)),
            fail_log: RateLimit::new(Duration::from_secs(1)),
        };
        for i in 0..a.served.len() {
            a.attach(i, true);
        }
        a
    }

    /// Whether this applier keeps the segments coherent (policy `clear`).
    fn keeps(&self) -> bool {
        self.policy == GapPolicy::Clear && !self.passive
    }

    /// Attaches segment `i` if due. A segment attached after start-up
    /// missed what was published before: it is cleared (`initial`: the
    /// start-up gap handles it).
    fn attach(&mut self, i: usize, initial: bool) -> Option<&Cache> {
        let keeps = self.keeps();
        let cap = self.open.is_some().then_some(self.degraded_ttl);
        let s = &mut self.served[i];
        if s.cache.is_none()
            && s.last_try
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            s.last_try = Some(Instant::now());
            let mut o = OpenOptions::new();
            match self.create_capacity {
                Some(cap) => o.capacity(cap).create(true),
                None => o.create(false),
            };
            match o.open(&s.name) {
                Ok(c) => {
                    info!(segment = %s.name, "attached segment");
                    self.metrics.add_cache(c.clone());
                    if keeps {
                        if let Err(e) = s.guard.become_keeper(&c, self.degraded_ttl) {
                            warn!(segment = %s.name, error = %e, "cannot record the keeper");
                        }
                        if let Err(e) = s.guard.set_ttl_cap(&c, cap) {
                            warn!(segment = %s.name, error = %e, "cannot set the TTL cap");
                        }
                        if !initial {
                            match c.clear() {
                                Ok(()) => {
                                    self.metrics.gap(GapReason::Attach);
                                    self.metrics.flush(GapReason::Attach);
                                }
                                Err(e) => error!(segment = %s.name, error = %e, "clear failed"),
                            }
                        }
                    }
                    s.cache = Some(c);
                }
                Err(memshelf::Error::NotFound { .. }) => {}
                Err(e) => warn!(segment = %s.name, error = %e, "cannot open segment"),
            }
        }
        self.served[i].cache.as_ref()
    }

    /// The agent starts: a gap, cleared at once unless `replayable` (a
    /// stream with a saved position); degraded until connected.
    pub fn startup(&mut self, replayable: bool) {
        self.lost(GapReason::Startup, replayable);
    }

    /// The connection is lost (or not there yet): counts the gap, clears
    /// at once unless `replayable`, and degrades the segments.
    pub fn lost(&mut self, reason: GapReason, replayable: bool) {
        self.metrics.gap(reason);
        let cleared = !replayable;
        if cleared {
            self.clear_all(reason);
        }
        match &mut self.open {
            // Still away: a clear now counts for the open gap too.
            Some(o) => o.cleared |= cleared,
            None => self.open = Some(OpenGap { reason, cleared }),
        }
        self.degrade(reason);
    }

    /// Connected and subscribed (or resumed): handles the gaps found while
    /// connecting, clears once more unless a verified replay covered the
    /// outage, and lifts the cap.
    pub fn connected(&mut self, c: Connected) {
        for &g in &c.gaps {
            self.metrics.gap(g);
        }
        if let Some(&g) = c.gaps.first() {
            self.clear_all(g);
        } else if let Some(o) = self.open
            && !c.covered
        {
            self.clear_all(o.reason);
        } else if let Some(o) = self.open {
            info!(
                reason = o.reason.label(),
                "gap covered by a verified replay"
            );
        }
        self.seqs.clear();
        self.metrics.set_silent(false);
        self.heal();
    }

    /// A gap found while connected (a `seq` jump, an unknown `"v"`, a full
    /// queue, a trimmed or recreated stream): clears at once; the feed is
    /// healthy again right after.
    pub fn gap(&mut self, reason: GapReason) {
        self.metrics.gap(reason);
        self.clear_all(reason);
        self.seqs.clear();
    }

    fn degrade(&mut self, reason: GapReason) {
        if !self.keeps() {
            self.metrics.set_coherent(false);
            warn!(
                reason = reason.label(),
                "gap: entries may be stale (gap policy log)"
            );
            self.metrics.set_degraded(true);
            return;
        }
        let cap = Some(self.degraded_ttl);
        for s in &mut self.served {
            if let Some(c) = &s.cache
                && let Err(e) = s.guard.set_ttl_cap(c, cap)
            {
                error!(segment = %s.name, error = %e, "cannot set the TTL cap");
            }
        }
        if !self.metrics.is_degraded() {
            warn!(
                reason = reason.label(),
                degraded_ttl = ?self.degraded_ttl,
                "degraded: entries written until the feed is healthy expire within the degraded TTL"
            );
        }
        self.metrics.set_degraded(true);
    }

    fn heal(&mut self) {
        self.open = None;
        if self.keeps() {
            for s in &mut self.served {
                if let Some(c) = &s.cache
                    && let Err(e) = s.guard.set_ttl_cap(c, None)
                {
                    error!(segment = %s.name, error = %e, "cannot lift the TTL cap");
                }
            }
        }
        if self.metrics.is_degraded() {
            info!("healthy: the TTL cap is lifted");
        }
        self.metrics.set_degraded(false);
    }

    /// Clears the served segments (policy `clear`) or marks the agent
    /// incoherent (`log`).
    fn clear_all(&mut self, reason: GapReason) {
        if !self.keeps() {
            self.metrics.set_coherent(false);
            warn!(
                reason = reason.label(),
                "gap: entries may be stale (gap policy log)"
            );
            return;
        }
        for i in 0..self.served.len() {
            if self.attach(i, true).is_none() {
                continue;
            }
            let s = &self.served[i];
            if let Some(c) = &s.cache
                && let Err(e) = c.clear()
            {
                error!(segment = %s.name, error = %e, "clear failed");
            }
        }
        self.metrics.flush(reason);
        warn!(reason = reason.label(), "gap: cleared served segments");
    }

    /// The TTL cap in force on segment `name` (as the engine reports it).
    pub fn ttl_cap(&self, name: &str) -> Option<Duration> {
        let s = self.served.iter().find(|s| s.name == name)?;
        s.guard.ttl_cap(s.cache.as_ref()?)
    }

    /// Something arrived: after silence, the feed is alive again.
    fn alive(&mut self) {
        if self.metrics.set_silent(false) {
            // A message after silence: the feed is alive again.
            info!("a message after silence");
            if let Some(o) = self.open
                && o.reason == GapReason::Silence
            {
                if !self.stream {
                    // Pub/Sub (or tracking) may have lost messages
                    // meanwhile.
                    self.clear_all(GapReason::Silence);
                }
                self.heal();
            }
        }
    }

    /// Keys the broker invalidated (tracking feed): applied as one `del`
    /// of them to every served segment, through the same path as a `del`
    /// message (a key that cannot exist in a cache is skipped and counted
    /// `bad_key`; no `ts`, so no lag sample).
    pub fn invalidated(&mut self, keys: Vec<Vec<u8>>) {
        self.alive();
        let o = self.apply(Message {
            op: Op::Del(keys),
            cache: None,
            origin: None,
            seq: None,
            ts: None,
        });
        self.metrics.message(o);
    }

    /// The broker's data was flushed (tracking feed: a null invalidation
    /// after `FLUSHALL`/`FLUSHDB`): every served segment is cleared, as by
    /// a `clear` message, and counted as a flush (reason `redis_flush`).
    pub fn flushed(&mut self) {
        self.alive();
        let o = self.apply(Message {
            op: Op::Clear,
            cache: None,
            origin: None,
            seq: None,
            ts: None,
        });
        self.metrics.message(o);
        self.metrics.flush(GapReason::RedisFlush);
        info!("the broker flushed its data: cleared served segments");
    }

    /// Parses and applies one payload; `id` is its stream position, if any.
    pub fn payload(&mut self, data: &[u8], id: Option<&str>) {
        self.alive();
        match Message::parse(data, self.max_message) {
            Ok(inv) => {
                let o = self.apply(inv);
                self.metrics.message(o);
            }
            Err(Rejected::Malformed(why)) => {
                self.metrics.message(Outcome::Malformed);
                if let Some(suppressed) = self.bad_log.allow() {
                    warn!(reason = %why, bytes = data.len(), suppressed, "malformed message skipped");
                }
            }
            Err(Rejected::UnknownVersion(v)) => {
                self.metrics.message(Outcome::UnknownVersion);
                warn!(v = %v, "message of unknown version");
                self.gap(GapReason::UnknownVersion);
            }
        }
        if let Some(id) = id.and_then(StreamPos::parse) {
            self.unsaved = Some(id);
        }
    }

    fn own(&self, origin: &str) -> bool {
        self.origin.as_deref().is_some_and(|me| {
            origin == me
                || (origin.len() > me.len()
                    && origin.starts_with(me)
                    && origin.as_bytes()[me.len()] == b':')
        })
    }

    fn apply(&mut self, inv: Message) -> Outcome {
        if let Some(o) = &inv.origin {
            if self.own(o) {
                return Outcome::SkippedOrigin;
            }
            if let Some(seq) = inv.seq {
                let id = xxhash_rust::xxh3::xxh3_128(o.as_bytes());
                match self.seqs.get(&id) {
                    Some(&last) if seq > last.saturating_add(1) => {
                        let o: String = o.chars().take(200).collect();
                        warn!(origin = %o, expected = last.saturating_add(1), got = seq, "seq jump");
                        self.gap(GapReason::Seq);
                    }
                    _ => {}
                }
                if self.seqs.len() >= MAX_ORIGINS && !self.seqs.contains_key(&id) {
                    self.seqs.clear();
                }
                // The counter follows the messages, not the highest seen: a
                // seq far ahead (corrupt, or a publisher that restarted its
                // counter without a new nonce) is one gap, and the next
                // jump after it is another. A repeat or a step back (a
                // replayed entry) only moves the counter back.
                self.seqs.insert(id, seq);
            }
        }
        if let Some(ts) = inv.ts {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as i128;
            self.metrics.lag((now - ts as i128) as f64 / 1000.0);
        }
        if inv.op == Op::Heartbeat {
            return Outcome::Heartbeat;
        }
        // Keys that cannot exist in a cache are skipped (and counted); the
        // others are still applied.
        if let Op::Del(keys) = &inv.op {
            let bad = keys
                .iter()
                .filter(|k| memshelf::validate_key(k).is_err())
                .count();
            for _ in 0..bad {
                self.metrics.message(Outcome::BadKey);
            }
            if bad > 0
                && let Some(suppressed) = self.bad_log.allow()
            {
                warn!(
                    bad_keys = bad,
                    suppressed, "del: keys that cannot exist in a cache skipped"
                );
            }
        }
        let targets: Vec<usize> = match &inv.cache {
            Some(name) => match self.served.iter().position(|s| &s.name == name) {
                Some(i) => vec![i],
                None => return Outcome::OtherCache,
            },
            None => (0..self.served.len()).collect(),
        };
        let mut outcome = Outcome::Applied;
        for i in targets {
            let Some(c) = self.attach(i, false).cloned() else {
                // Not created yet: it is cleared when it appears.
                continue;
            };
            let mut errors = Vec::new();
            match &inv.op {
                Op::Del(keys) => {
                    for k in keys.iter().filter(|k| memshelf::validate_key(k).is_ok()) {
                        if let Err(e) = c.delete(k) {
                            errors.push(e);
                        }
                    }
                }
                Op::DelPrefix(p) => errors.extend(c.delete_prefix(p).err()),
                Op::Tag(t) => errors.extend(c.invalidate_tag(t).err()),
                Op::Clear => errors.extend(c.clear().err()),
                Op::Heartbeat => {}
            }
            if let Some(e) = errors.first() {
                outcome = Outcome::Failed;
                if let Some(suppressed) = self.fail_log.allow() {
                    warn!(segment = %c.name(), error = %e, errors = errors.len(), suppressed, "cannot apply message");
                }
            }
        }
        if inv.op == Op::Clear && inv.cache.is_none() && outcome == Outcome::Applied {
            // Every served segment is empty: coherent again.
            self.metrics.set_coherent(true);
        }
        outcome
    }

    /// Lets go of segment `i` if it was unlinked (its name may name a new
    /// segment now: a layout upgrade's dump, unlink and load), so the next
    /// `attach` opens whatever the name names, and clears it. Before, the
    /// agent stayed on the unlinked file and applied deletes nobody saw.
    fn follow_name(&mut self, i: usize) {
        let s = &mut self.served[i];
        let Some(c) = &s.cache else { return };
        match c.is_unlinked() {
            Ok(false) => {}
            Ok(true) => {
                info!(segment = %s.name, "segment was unlinked; attaching to its name again");
                self.metrics.remove_cache(c);
                s.cache = None;
                s.last_try = None;
            }
            Err(e) => warn!(segment = %s.name, error = %e, "cannot check the segment's name"),
        }
    }

    /// Periodic work: silence detection, late attaches and stream checkpoints. `force` saves the checkpoint now.
    pub fn tick(&mut self, force: bool) {
        if let Some(limit) = self.silence_limit {
            let silent = self.metrics.is_connected()
                && self.metrics.last_message_age() > limit.as_secs_f64();
            if silent && !self.metrics.set_silent(true) {
                warn!(limit = ?limit, "no message or heartbeat within the silence limit");
                self.metrics.gap(GapReason::Silence);
                self.clear_all(GapReason::Silence);
                if self.open.is_none() {
                    self.open = Some(OpenGap {
                        reason: GapReason::Silence,
                        cleared: true,
                    });
                }
                self.degrade(GapReason::Silence);
            }
        }
        for i in 0..self.served.len() {
            self.follow_name(i);
            self.attach(i, false);
        }
        self.checkpoint(force);
    }

    /// Saves the last applied stream position if due (every 100 ms at
    /// most, or now with `force`).
    pub fn checkpoint(&mut self, force: bool) {
        let (Some(state), Some(id)) = (&self.state, self.unsaved) else {
            return;
        };
        if !force && self.last_save.elapsed() < Duration::from_millis(100) {
            return;
        }
        match state.save(&id.to_string()) {
            Ok(()) => self.unsaved = None,
            Err(e) => {
                error!(path = %state.path().display(), error = %e, "cannot save the stream position")
            }
        }
        self.last_save = Instant::now();
    }
}
