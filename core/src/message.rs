//! Invalidation messages (SPEC section 6): the one type that builds,
//! validates and parses them, used by the agent, the CLI and every binding,
//! so there is one rule set.
//!
//! ```
//! use memshelf::message::Message;
//! let m = Message::delete(&[b"user:42".as_slice()]).cache("users");
//! let json = m.to_json()?;
//! assert_eq!(json, r#"{"v":1,"op":"del","keys":["user:42"],"cache":"users"}"#);
//! assert_eq!(Message::parse(json.as_bytes(), 1 << 20).unwrap(), m);
//! # Ok::<(), memshelf::Error>(())
//! ```
//!
//! The rules, for building ([`Message::to_json`], [`Message::from_parts`]):
//! a `del` names at least one key, each a key a cache can hold (1 to
//! [`MAX_KEY_LEN`] bytes); a `del_prefix` prefix and a tag are 1 to
//! [`MAX_KEY_LEN`] / [`MAX_TAG_LEN`] bytes of UTF-8 (the wire format has no
//! binary form for them); `cache` is a valid segment name; `origin` is
//! non-empty and `seq` needs an `origin` (it counts per origin). Parsing
//! ([`Message::parse`]) accepts what the agent can apply: the same rules,
//! except that a `del` keeps keys no cache can hold (the agent skips and
//! counts them, SPEC 6) and a `seq` without `origin` is ignored.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::options::{MAX_KEY_LEN, MAX_TAG_LEN};

/// One invalidation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// What to invalidate.
    pub op: Op,
    /// Only this segment (absent: every segment the agent serves).
    pub cache: Option<String>,
    /// Writer id plus per-boot nonce.
    pub origin: Option<String>,
    /// Per-origin contiguous sequence number.
    pub seq: Option<u64>,
    /// Sender's unix time in ms.
    pub ts: Option<u64>,
}

/// The operation of a [`Message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Delete these keys.
    Del(Vec<Vec<u8>>),
    /// Delete every key with this prefix.
    DelPrefix(Vec<u8>),
    /// Invalidate a tag.
    Tag(Vec<u8>),
    /// Clear the segment(s).
    Clear,
    /// Heartbeat: no effect but liveness.
    Heartbeat,
}

impl Op {
    /// The wire name: `del`, `del_prefix`, `tag`, `clear`, `hb`.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Del(_) => "del",
            Op::DelPrefix(_) => "del_prefix",
            Op::Tag(_) => "tag",
            Op::Clear => "clear",
            Op::Heartbeat => "hb",
        }
    }
}

/// The loosely typed fields a binding or a command line receives, for
/// [`Message::from_parts`]: an op by name and the fields that go with it.
#[derive(Clone, Debug, Default)]
pub struct Parts<'a> {
    /// `del`, `del_prefix`, `tag`, `clear` or `hb`.
    pub op: &'a str,
    /// The keys of a `del`.
    pub keys: Option<Vec<&'a [u8]>>,
    /// The prefix of a `del_prefix`.
    pub prefix: Option<&'a [u8]>,
    /// The tag of a `tag`.
    pub tag: Option<&'a [u8]>,
    /// See [`Message::cache`].
    pub cache: Option<&'a str>,
    /// See [`Message::origin`].
    pub origin: Option<&'a str>,
    /// See [`Message::seq`].
    pub seq: Option<u64>,
    /// See [`Message::ts`].
    pub ts: Option<u64>,
}

/// Why a payload was not applied ([`Message::parse`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Not a message the agent can apply (counted as `malformed`); says why.
    Malformed(String),
    /// A `"v"` other than 1: a gap (SPEC 6a).
    UnknownVersion(String),
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Malformed(why) => f.write_str(why),
            Rejected::UnknownVersion(v) => write!(f, "unknown message version {v}"),
        }
    }
}

/// The JSON object, both ways (field order = output order).
#[derive(Serialize, Deserialize, Default)]
struct Wire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<serde_json::Value>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    op: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keys_b64: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    prefix: Option<Cow<'a, str>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    tag: Option<Cow<'a, str>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    cache: Option<Cow<'a, str>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    origin: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lenient_ts",
        skip_serializing_if = "Option::is_none"
    )]
    ts: Option<u64>,
}

/// `ts` serves only the lag metric, so a number that is not a whole count
/// of ms since 1970 (`time.time() * 1000` has a fraction; a clock before
/// 1970 is negative) is read as whole ms, or as absent, and never costs
/// the message its delete.
fn lenient_ts<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u64>, D::Error> {
    let v = Option::<serde_json::Number>::deserialize(d)?;
    Ok(v.and_then(|n| {
        n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        })
    }))
}

fn invalid(why: impl Into<String>) -> Error {
    Error::InvalidArgument(why.into())
}

/// A prefix or tag: 1 to `max` bytes of UTF-8.
fn text_arg<'b>(what: &str, b: &'b [u8], max: usize) -> Result<&'b str> {
    if b.is_empty() || b.len() > max {
        return Err(invalid(format!(
            "a {what} must be 1 to {max} bytes (got {})",
            b.len()
        )));
    }
    std::str::from_utf8(b).map_err(|_| {
        invalid(format!(
            "a {what} in a message must be UTF-8 (the wire format has no binary {what})"
        ))
    })
}

impl Message {
    fn new(op: Op) -> Message {
        Message {
            op,
            cache: None,
            origin: None,
            seq: None,
            ts: None,
        }
    }
    /// `{"op":"del"}` of these keys.
    pub fn delete(keys: &[&[u8]]) -> Message {
        Self::new(Op::Del(keys.iter().map(|k| k.to_vec()).collect()))
    }
    /// `{"op":"del_prefix"}`.
    pub fn delete_prefix(prefix: &[u8]) -> Message {
        Self::new(Op::DelPrefix(prefix.to_vec()))
    }
    /// `{"op":"tag"}`.
    pub fn tag(tag: &[u8]) -> Message {
        Self::new(Op::Tag(tag.to_vec()))
    }
    /// `{"op":"clear"}`.
    pub fn clear() -> Message {
        Self::new(Op::Clear)
    }
    /// `{"op":"hb"}`.
    pub fn heartbeat() -> Message {
        Self::new(Op::Heartbeat)
    }
    /// Targets one segment.
    pub fn cache(mut self, name: impl Into<String>) -> Message {
        self.cache = Some(name.into());
        self
    }
    /// Sets origin and sequence number.
    pub fn origin(mut self, origin: impl Into<String>, seq: u64) -> Message {
        self.origin = Some(origin.into());
        self.seq = Some(seq);
        self
    }
    /// Sets the origin alone (so a host can skip its own messages; no
    /// sequence, so no gap detection for it).
    pub fn origin_only(mut self, origin: impl Into<String>) -> Message {
        self.origin = Some(origin.into());
        self.seq = None;
        self
    }
    /// Sets the timestamp (ms since the epoch).
    pub fn ts(mut self, ms: u64) -> Message {
        self.ts = Some(ms);
        self
    }

    /// A message from an op name and loosely typed fields, validated (see
    /// the module documentation). Fields the op does not use are an error,
    /// so a misspelt call never publishes something else.
    ///
    /// ```
    /// use memshelf::message::{Message, Parts};
    /// let m = Message::from_parts(&Parts { op: "tag", tag: Some(b"product:7"), ..Parts::default() })?;
    /// assert_eq!(m.to_json()?, r#"{"v":1,"op":"tag","tag":"product:7"}"#);
    /// assert!(Message::from_parts(&Parts { op: "del", keys: Some(vec![]), ..Parts::default() }).is_err());
    /// # Ok::<(), memshelf::Error>(())
    /// ```
    pub fn from_parts(p: &Parts<'_>) -> Result<Message> {
        let unused = |what: &str, given: bool| {
            if given {
                Err(invalid(format!("op {:?} takes no {what}", p.op)))
            } else {
                Ok(())
            }
        };
        let need = |v: Option<&[u8]>, what: &str| {
            v.map(<[u8]>::to_vec)
                .ok_or_else(|| invalid(format!("op {:?} needs a {what}", p.op)))
        };
        let op = match p.op {
            "del" => {
                unused("prefix", p.prefix.is_some())?;
                unused("tag", p.tag.is_some())?;
                let keys = p
                    .keys
                    .as_ref()
                    .ok_or_else(|| invalid("op \"del\" needs keys"))?;
                Op::Del(keys.iter().map(|k| k.to_vec()).collect())
            }
            "del_prefix" => {
                unused("keys", p.keys.is_some())?;
                unused("tag", p.tag.is_some())?;
                Op::DelPrefix(need(p.prefix, "prefix")?)
            }
            "tag" => {
                unused("keys", p.keys.is_some())?;
                unused("prefix", p.prefix.is_some())?;
                Op::Tag(need(p.tag, "tag")?)
            }
            "clear" | "hb" => {
                unused("keys", p.keys.is_some())?;
                unused("prefix", p.prefix.is_some())?;
                unused("tag", p.tag.is_some())?;
                if p.op == "clear" {
                    Op::Clear
                } else {
                    Op::Heartbeat
                }
            }
            other => {
                return Err(invalid(format!(
                    "unknown op {other:?} (expected del, del_prefix, tag, clear or hb)"
                )));
            }
        };
        let m = Message {
            op,
            cache: p.cache.map(str::to_owned),
            origin: p.origin.map(str::to_owned),
            seq: p.seq,
            ts: p.ts,
        };
        m.validate()?;
        Ok(m)
    }

    /// Checks the building rules (see the module documentation).
    pub fn validate(&self) -> Result<()> {
        match &self.op {
            Op::Del(keys) => {
                if keys.is_empty() {
                    return Err(invalid("op \"del\" needs at least one key"));
                }
                for k in keys {
                    crate::validate_key(k)?;
                }
            }
            Op::DelPrefix(p) => {
                text_arg("prefix", p, MAX_KEY_LEN)?;
            }
            Op::Tag(t) => {
                text_arg("tag", t, MAX_TAG_LEN)?;
            }
            Op::Clear | Op::Heartbeat => {}
        }
        self.validate_fields()
    }

    /// The rules on `cache`, `origin` and `seq` (every op's).
    fn validate_fields(&self) -> Result<()> {
        if let Some(c) = &self.cache {
            crate::validate_name(c)?;
        }
        match (&self.origin, self.seq) {
            (Some(o), _) if o.is_empty() => Err(invalid("origin must not be empty")),
            (None, Some(_)) => Err(invalid("seq needs an origin (seq counts per origin)")),
            _ => Ok(()),
        }
    }

    /// The JSON payload, after [`validate`](Self::validate). Keys that are
    /// not valid UTF-8 go in `keys_b64`.
    pub fn to_json(&self) -> Result<String> {
        self.validate()?;
        let mut w = Wire {
            v: Some(serde_json::Value::from(1)),
            op: Some(Cow::Borrowed(self.op.name())),
            cache: self.cache.as_deref().map(Cow::Borrowed),
            origin: self.origin.as_deref().map(Cow::Borrowed),
            seq: self.seq,
            ts: self.ts,
            ..Wire::default()
        };
        match &self.op {
            Op::Del(keys) => {
                let (mut text, mut bin) = (Vec::new(), Vec::new());
                for k in keys {
                    match std::str::from_utf8(k) {
                        Ok(s) => text.push(Cow::Borrowed(s)),
                        Err(_) => bin.push(Cow::Owned(B64.encode(k))),
                    }
                }
                w.keys = (!text.is_empty()).then_some(text);
                w.keys_b64 = (!bin.is_empty()).then_some(bin);
            }
            // validated as UTF-8 above
            Op::DelPrefix(p) => w.prefix = std::str::from_utf8(p).ok().map(Cow::Borrowed),
            Op::Tag(t) => w.tag = std::str::from_utf8(t).ok().map(Cow::Borrowed),
            Op::Clear | Op::Heartbeat => {}
        }
        serde_json::to_string(&w).map_err(|e| invalid(format!("cannot encode the message: {e}")))
    }

    /// Parses one payload of at most `max_len` bytes (see the module
    /// documentation for what is accepted). Unknown fields are ignored.
    pub fn parse(payload: &[u8], max_len: usize) -> std::result::Result<Message, Rejected> {
        let bad = |m: String| Err(Rejected::Malformed(m));
        if payload.len() > max_len {
            return bad(format!(
                "payload of {} bytes is larger than the limit of {max_len}",
                payload.len()
            ));
        }
        let w: Wire = match serde_json::from_slice(payload) {
            Ok(w) => w,
            Err(e) => return bad(format!("not a JSON message object: {e}")),
        };
        match &w.v {
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(1) => {}
            Some(other) => return Err(Rejected::UnknownVersion(other.to_string())),
            None => return bad("missing \"v\"".into()),
        }
        let Some(op) = w.op.as_deref() else {
            return bad("missing \"op\"".into());
        };
        let op = match op {
            "del" => {
                let mut keys: Vec<Vec<u8>> = w
                    .keys
                    .unwrap_or_default()
                    .into_iter()
                    .map(|k| k.into_owned().into_bytes())
                    .collect();
                for k in w.keys_b64.unwrap_or_default() {
                    match B64.decode(k.as_bytes()) {
                        Ok(b) => keys.push(b),
                        Err(e) => return bad(format!("bad base64 in \"keys_b64\": {e}")),
                    }
                }
                if keys.is_empty() {
                    return bad("\"del\" without \"keys\" or \"keys_b64\"".into());
                }
                Op::Del(keys)
            }
            "del_prefix" => Op::DelPrefix(w.prefix.unwrap_or_default().into_owned().into_bytes()),
            "tag" => Op::Tag(w.tag.unwrap_or_default().into_owned().into_bytes()),
            "clear" => Op::Clear,
            "hb" => Op::Heartbeat,
            other => {
                let mut o = other.to_string();
                o.truncate(64);
                return bad(format!("unknown op {o:?}"));
            }
        };
        let mut m = Message {
            op,
            cache: w.cache.map(Cow::into_owned),
            origin: w.origin.map(Cow::into_owned),
            seq: w.seq,
            ts: w.ts,
        };
        if m.origin.is_none() {
            m.seq = None; // meaningless without its scope
        }
        // The building rules, except for the keys of a del (see above).
        let check = match &m.op {
            Op::Del(_) => m.validate_fields(),
            _ => m.validate(),
        };
        match check {
            Ok(()) => Ok(m),
            Err(e) => bad(e.to_string()),
        }
    }
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    B64.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: Message) {
        let json = m.to_json().unwrap();
        let p =
            Message::parse(json.as_bytes(), 1 << 20).unwrap_or_else(|e| panic!("{json}: {e:?}"));
        assert_eq!(p, m, "{json}");
    }

    #[test]
    fn parses_what_it_builds() {
        round_trip(Message::delete(&[b"user:42".as_slice(), b"user:43"]));
        round_trip(Message::delete(&[b"\xff\x00bin".as_slice()]).cache("c"));
        round_trip(Message::delete_prefix(b"user:").origin("host-a:1f2e", 7));
        round_trip(Message::tag(b"product:7").ts(1_700_000_000_000));
        round_trip(Message::clear().cache("users"));
        round_trip(Message::heartbeat().origin("w", 1).ts(5));
        round_trip(Message::heartbeat().origin_only("w"));
        round_trip(Message::delete(&[b"quote\"back\\slash\nnl\x01".as_slice()]));
    }

    #[test]
    fn mixed_text_and_binary_keys() {
        let json = Message::delete(&[b"a".as_slice(), b"\xfe"])
            .to_json()
            .unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"op":"del","keys":["a"],"keys_b64":["/g=="]}"#
        );
        let p = Message::parse(json.as_bytes(), 1 << 20).unwrap();
        assert_eq!(p.op, Op::Del(vec![b"a".to_vec(), b"\xfe".to_vec()]));
    }

    #[test]
    fn refuses_to_build_what_the_agent_rejects() {
        let bad = |m: Message| assert!(m.to_json().is_err(), "{m:?}");
        bad(Message::delete(&[]));
        bad(Message::delete(&[b"".as_slice()]));
        bad(Message::delete(&[vec![b'k'; MAX_KEY_LEN + 1].as_slice()]));
        bad(Message::delete_prefix(b""));
        bad(Message::delete_prefix(b"\xff"));
        bad(Message::tag(b""));
        bad(Message::tag(&vec![b't'; MAX_TAG_LEN + 1]));
        bad(Message::clear().cache("bad/name"));
        bad(Message::clear().origin("", 1));
        let mut m = Message::clear();
        m.seq = Some(3);
        bad(m);
        let parts = |op, keys, prefix, tag| Parts {
            op,
            keys,
            prefix,
            tag,
            ..Parts::default()
        };
        for p in [
            parts("del", None, None, None),
            parts("del", Some(vec![]), None, None),
            parts(
                "del",
                Some(vec![b"k".as_slice()]),
                Some(b"p".as_slice()),
                None,
            ),
            parts("del_prefix", None, None, None),
            parts("del_prefix", None, Some(b"".as_slice()), None),
            parts("tag", None, None, None),
            parts("clear", None, None, Some(b"t".as_slice())),
            parts("explode", None, None, None),
        ] {
            assert!(Message::from_parts(&p).is_err(), "{p:?}");
        }
        let seq_alone = Parts {
            op: "hb",
            seq: Some(1),
            ..Parts::default()
        };
        assert!(Message::from_parts(&seq_alone).is_err());
        let origin_alone = Parts {
            op: "hb",
            origin: Some("w:1"),
            ..Parts::default()
        };
        assert_eq!(
            Message::from_parts(&origin_alone)
                .unwrap()
                .to_json()
                .unwrap(),
            r#"{"v":1,"op":"hb","origin":"w:1"}"#
        );
    }

    #[test]
    fn rejects_bad_payloads() {
        let m = |s: &str| match Message::parse(s.as_bytes(), 100) {
            Err(Rejected::Malformed(_)) => {}
            other => panic!("{s}: {other:?}"),
        };
        m("not json");
        m("[1,2]");
        m(r#"{"v":1}"#);
        m(r#"{"v":1,"op":"explode"}"#);
        m(r#"{"v":1,"op":"del"}"#);
        m(r#"{"v":1,"op":"del","keys":[]}"#);
        m(r#"{"v":1,"op":"del","keys":[1]}"#);
        m(r#"{"v":1,"op":"del","keys_b64":["!!"]}"#);
        m(r#"{"v":1,"op":"del_prefix"}"#);
        m(r#"{"v":1,"op":"tag","tag":""}"#);
        m(r#"{"v":1,"op":"clear","cache":"bad/name"}"#);
        m(r#"{"op":"clear"}"#);
        m(r#"{"v":1,"op":"clear","seq":-1}"#);
        m(&format!(
            r#"{{"v":1,"op":"del","keys":["{}"]}}"#,
            "x".repeat(200)
        ));
        assert!(matches!(
            Message::parse(br#"{"v":2,"op":"clear"}"#, 100),
            Err(Rejected::UnknownVersion(_))
        ));
        assert!(matches!(
            Message::parse(br#"{"v":"1","op":"clear"}"#, 100),
            Err(Rejected::UnknownVersion(_))
        ));
        // Unknown fields are ignored; a del keeps keys no cache can hold
        // (the agent skips and counts them).
        assert_eq!(
            Message::parse(br#"{"v":1,"op":"clear","new":{"a":[1]}}"#, 100)
                .unwrap()
                .op,
            Op::Clear
        );
        assert_eq!(
            Message::parse(br#"{"v":1,"op":"del","keys":["","ok"]}"#, 100)
                .unwrap()
                .op,
            Op::Del(vec![vec![], b"ok".to_vec()])
        );
    }
}
