//! The applier: parses payloads, tracks `seq` per origin, applies deletes
//! to the served segments and handles gaps.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memshelf::message::Op;
use memshelf::{Cache, OpenOptions};

use crate::config::{Config, GapPolicy};
use crate::feed::Gap;
use crate::feed::stream::{StateFile, StreamPos};
use crate::log::{RateLimit, log};
use crate::metrics::{GapReason, Metrics, Outcome};
use crate::parse::{Invalidation, Rejected, parse};

/// Origins remembered for `seq` tracking before the table is reset.
const MAX_ORIGINS: usize = 10_000;

/// One served segment, attached lazily (the application may create it
/// after the agent starts).
struct Served {
    name: String,
    cache: Option<Cache>,
    last_try: Option<Instant>,
}

/// Applies invalidations to the served segments.
pub struct Applier {
    served: Vec<Served>,
    create_capacity: Option<u64>,
    policy: GapPolicy,
    origin: Option<String>,
    max_message: usize,
    silence_limit: Option<Duration>,
    metrics: Arc<Metrics>,
    seqs: HashMap<String, u64>,
    state: Option<StateFile>,
    unsaved: Option<StreamPos>,
    last_save: Instant,
    bad_log: RateLimit,
    fail_log: RateLimit,
}

impl Applier {
    /// An applier for `cfg`'s segments; `state` checkpoints stream ids.
    pub fn new(cfg: &Config, metrics: Arc<Metrics>, state: Option<StateFile>) -> Applier {
        let mut a = Applier {
            served: cfg
                .segments
                .iter()
                .map(|n| Served {
                    name: n.clone(),
                    cache: None,
                    last_try: None,
                })
                .collect(),
            create_capacity: cfg.create_capacity,
            policy: cfg.gap_policy,
            origin: cfg.origin.clone(),
            max_message: cfg.max_message,
            silence_limit: cfg.silence_limit,
            metrics,
            seqs: HashMap::new(),
            state,
            unsaved: None,
            last_save: Instant::now(),
            bad_log: RateLimit::new(Duration::from_secs(1)),
            fail_log: RateLimit::new(Duration::from_secs(1)),
        };
        for i in 0..a.served.len() {
            a.attach(i);
        }
        a
    }

    fn attach(&mut self, i: usize) -> Option<&Cache> {
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
                    log("info", "attached segment", &[("segment", &s.name)]);
                    if let Ok(mut list) = self.metrics.caches.lock() {
                        list.push(c.clone());
                    }
                    s.cache = Some(c);
                }
                Err(memshelf::Error::NotFound { .. }) => {}
                Err(e) => log(
                    "warn",
                    "cannot open segment",
                    &[("segment", &s.name), ("error", &e)],
                ),
            }
        }
        self.served[i].cache.as_ref()
    }

    /// Unless a replay covers it, clears the served segments (policy
    /// `clear`) or marks the agent incoherent (`log`); then counts the gap,
    /// so a counted gap is a handled one.
    pub fn gap(&mut self, g: Gap) {
        self.handle_gap(&g);
        self.metrics.gap(g.reason);
    }

    fn handle_gap(&mut self, g: &Gap) {
        if g.covered {
            log(
                "info",
                "gap covered by replay",
                &[("reason", &g.reason.label())],
            );
            return;
        }
        match self.policy {
            GapPolicy::Clear => {
                self.clear_all();
                self.metrics.flush(g.reason);
                self.metrics.coherent.store(true, Relaxed);
                log(
                    "warn",
                    "gap: cleared served segments",
                    &[("reason", &g.reason.label())],
                );
            }
            GapPolicy::Log => {
                self.metrics.coherent.store(false, Relaxed);
                log(
                    "warn",
                    "gap: entries may be stale (gap policy log)",
                    &[("reason", &g.reason.label())],
                );
            }
        }
        // After a clear nothing older matters; after a logged gap a fresh
        // start avoids counting the same hole twice.
        self.seqs.clear();
    }

    fn clear_all(&mut self) {
        for i in 0..self.served.len() {
            if let Some(c) = self.attach(i).cloned()
                && let Err(e) = c.clear()
            {
                log(
                    "error",
                    "clear failed",
                    &[("segment", &c.name()), ("error", &e)],
                );
            }
        }
    }

    /// Parses and applies one payload; `id` is its stream id, if any.
    pub fn payload(&mut self, data: &[u8], id: Option<&str>) {
        match parse(data, self.max_message) {
            Ok(inv) => {
                let o = self.apply(inv);
                self.metrics.message(o);
            }
            Err(Rejected::Malformed(why)) => {
                self.metrics.message(Outcome::Malformed);
                if let Some(suppressed) = self.bad_log.allow() {
                    log(
                        "warn",
                        "malformed message skipped",
                        &[
                            ("reason", &why),
                            ("bytes", &data.len()),
                            ("suppressed", &suppressed),
                        ],
                    );
                }
            }
            Err(Rejected::UnknownVersion(v)) => {
                self.metrics.message(Outcome::UnknownVersion);
                log("warn", "message of unknown version", &[("v", &v)]);
                self.gap(Gap::uncovered(GapReason::UnknownVersion));
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

    fn apply(&mut self, inv: Invalidation) -> Outcome {
        if let Some(o) = &inv.origin {
            if self.own(o) {
                return Outcome::SkippedOrigin;
            }
            if let Some(seq) = inv.seq {
                match self.seqs.get(o) {
                    Some(&last) if seq > last.saturating_add(1) => {
                        log(
                            "warn",
                            "seq jump",
                            &[("origin", o), ("expected", &(last + 1)), ("got", &seq)],
                        );
                        self.gap(Gap::uncovered(GapReason::Seq));
                    }
                    _ => {}
                }
                if self.seqs.len() >= MAX_ORIGINS && !self.seqs.contains_key(o) {
                    self.seqs.clear();
                }
                let e = self.seqs.entry(o.clone()).or_insert(seq);
                *e = (*e).max(seq);
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
        let targets: Vec<usize> = match &inv.cache {
            Some(name) => match self.served.iter().position(|s| &s.name == name) {
                Some(i) => vec![i],
                None => return Outcome::OtherCache,
            },
            None => (0..self.served.len()).collect(),
        };
        let mut outcome = Outcome::Applied;
        for i in targets {
            let Some(c) = self.attach(i).cloned() else {
                // Not created yet: nothing in it can be stale.
                continue;
            };
            let r = match &inv.op {
                Op::Del(keys) => keys.iter().try_for_each(|k| c.delete(k).map(drop)),
                Op::DelPrefix(p) => c.delete_prefix(p).map(drop),
                Op::Tag(t) => c.invalidate_tag(t),
                Op::Clear => c.clear(),
                Op::Heartbeat => Ok(()),
            };
            if let Err(e) = r {
                outcome = Outcome::Failed;
                if let Some(suppressed) = self.fail_log.allow() {
                    log(
                        "warn",
                        "cannot apply message",
                        &[
                            ("segment", &c.name()),
                            ("error", &e),
                            ("suppressed", &suppressed),
                        ],
                    );
                }
            }
        }
        if inv.op == Op::Clear && inv.cache.is_none() && outcome == Outcome::Applied {
            // Every served segment is empty: coherent again.
            self.metrics.coherent.store(true, Relaxed);
        }
        outcome
    }

    /// Periodic work: silence detection and stream checkpoints. `force`
    /// saves the checkpoint now.
    pub fn tick(&mut self, force: bool) {
        if let Some(limit) = self.silence_limit {
            let silent = self.metrics.connected.load(Relaxed)
                && self.metrics.last_message_age() > limit.as_secs_f64();
            let was = self.metrics.silent.swap(silent, Relaxed);
            if silent && !was {
                log(
                    "warn",
                    "no message or heartbeat within the silence limit",
                    &[("limit", &format!("{limit:?}"))],
                );
                self.gap(Gap::uncovered(GapReason::Silence));
            }
        }
        for i in 0..self.served.len() {
            self.attach(i);
        }
        self.checkpoint(force);
    }

    /// Saves the last applied stream id if due (every 100 ms at most, or
    /// now with `force`).
    pub fn checkpoint(&mut self, force: bool) {
        let (Some(state), Some(id)) = (&self.state, self.unsaved) else {
            return;
        };
        if !force && self.last_save.elapsed() < Duration::from_millis(100) {
            return;
        }
        match state.save(&id.to_string()) {
            Ok(()) => self.unsaved = None,
            Err(e) => log(
                "error",
                "cannot save the stream position",
                &[("path", &state.path().display()), ("error", &e)],
            ),
        }
        self.last_save = Instant::now();
    }
}
