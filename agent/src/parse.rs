//! The parser of invalidation messages (SPEC section 6), the counterpart of
//! the builder in [`memshelf::message`].

use base64::Engine as _;
use memshelf::message::Op;
use serde::Deserialize;

/// A message that parsed, before it is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalidation {
    /// What to invalidate.
    pub op: Op,
    /// Only this segment (absent: every served segment).
    pub cache: Option<String>,
    /// Writer id plus per-boot nonce.
    pub origin: Option<String>,
    /// Per-origin contiguous sequence number.
    pub seq: Option<u64>,
    /// Sender's unix time in ms.
    pub ts: Option<u64>,
}

/// Why a payload was not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Not applied and counted as `malformed`; the string says why.
    Malformed(String),
    /// A `"v"` other than 1: a gap (SPEC 6a).
    UnknownVersion(String),
}

#[derive(Deserialize)]
struct Wire<'a> {
    v: Option<serde_json::Value>,
    #[serde(borrow)]
    op: Option<std::borrow::Cow<'a, str>>,
    keys: Option<Vec<String>>,
    keys_b64: Option<Vec<String>>,
    prefix: Option<String>,
    tag: Option<String>,
    cache: Option<String>,
    origin: Option<String>,
    seq: Option<u64>,
    ts: Option<u64>,
}

/// Parses one payload, at most `max_len` bytes.
pub fn parse(payload: &[u8], max_len: usize) -> Result<Invalidation, Rejected> {
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
                .map(String::into_bytes)
                .collect();
            for k in w.keys_b64.unwrap_or_default() {
                match base64::engine::general_purpose::STANDARD.decode(k.as_bytes()) {
                    Ok(b) => keys.push(b),
                    Err(e) => return bad(format!("bad base64 in \"keys_b64\": {e}")),
                }
            }
            if keys.is_empty() {
                return bad("\"del\" without \"keys\" or \"keys_b64\"".into());
            }
            Op::Del(keys)
        }
        "del_prefix" => match w.prefix {
            Some(p) if !p.is_empty() => Op::DelPrefix(p.into_bytes()),
            _ => return bad("\"del_prefix\" needs a non-empty \"prefix\"".into()),
        },
        "tag" => match w.tag {
            Some(t) if !t.is_empty() => Op::Tag(t.into_bytes()),
            _ => return bad("\"tag\" needs a non-empty \"tag\"".into()),
        },
        "clear" => Op::Clear,
        "hb" => Op::Heartbeat,
        other => {
            let mut o = other.to_string();
            o.truncate(64);
            return bad(format!("unknown op {o:?}"));
        }
    };
    Ok(Invalidation {
        op,
        cache: w.cache,
        origin: w.origin,
        seq: w.seq,
        ts: w.ts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use memshelf::message::Message;

    fn round_trip(m: Message) {
        let json = m.to_json();
        let p = parse(json.as_bytes(), 1 << 20).unwrap_or_else(|e| panic!("{json}: {e:?}"));
        assert_eq!(p.op, m.op, "{json}");
        assert_eq!(p.cache, m.cache);
        assert_eq!(p.origin, m.origin);
        assert_eq!(p.seq, m.seq);
        assert_eq!(p.ts, m.ts);
    }

    #[test]
    fn parses_what_the_core_builder_emits() {
        round_trip(Message::delete(&[b"user:42".as_slice(), b"user:43"]));
        round_trip(Message::delete(&[b"\xff\x00bin".as_slice()]).cache("c"));
        round_trip(Message::delete_prefix(b"user:").origin("host-a:1f2e", 7));
        round_trip(Message::tag(b"product:7").ts(1_700_000_000_000));
        round_trip(Message::clear().cache("users"));
        round_trip(Message::heartbeat().origin("w", 1).ts(5));
        round_trip(Message::delete(&[b"quote\"back\\slash\nnl\x01".as_slice()]));
    }

    #[test]
    fn mixed_text_and_binary_keys() {
        let json = Message::delete(&[b"a".as_slice(), b"\xfe"]).to_json();
        let p = parse(json.as_bytes(), 1 << 20).unwrap();
        assert_eq!(p.op, Op::Del(vec![b"a".to_vec(), b"\xfe".to_vec()]));
    }

    #[test]
    fn rejects_bad_payloads() {
        let m = |s: &str| match parse(s.as_bytes(), 100) {
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
        m(r#"{"op":"clear"}"#);
        m(r#"{"v":1,"op":"clear","seq":-1}"#);
        m(&format!(
            r#"{{"v":1,"op":"del","keys":["{}"]}}"#,
            "x".repeat(200)
        ));
        assert!(matches!(
            parse(br#"{"v":2,"op":"clear"}"#, 100),
            Err(Rejected::UnknownVersion(_))
        ));
        assert!(matches!(
            parse(br#"{"v":"1","op":"clear"}"#, 100),
            Err(Rejected::UnknownVersion(_))
        ));
        // Unknown fields are ignored.
        assert_eq!(
            parse(br#"{"v":1,"op":"clear","new":{"a":[1]}}"#, 100)
                .unwrap()
                .op,
            Op::Clear
        );
    }
}
