//! Invalidation messages (SPEC section 6), built here once for every
//! binding and the agent.
//!
//! ```
//! use memshelf::message::Message;
//! let m = Message::delete(&[b"user:42".as_slice()]).cache("users").to_json();
//! assert_eq!(m, r#"{"v":1,"op":"del","keys":["user:42"],"cache":"users"}"#);
//! ```

/// One invalidation to publish.
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
    /// Sets the timestamp (ms since the epoch).
    pub fn ts(mut self, ms: u64) -> Message {
        self.ts = Some(ms);
        self
    }

    /// The JSON payload. Keys that are not valid UTF-8 go in `keys_b64`.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\"v\":1,");
        match &self.op {
            Op::Del(keys) => {
                s.push_str("\"op\":\"del\",");
                let (text, bin): (Vec<_>, Vec<_>) =
                    keys.iter().partition(|k| std::str::from_utf8(k).is_ok());
                let mut first = true;
                if !text.is_empty() || bin.is_empty() {
                    s.push_str("\"keys\":[");
                    for k in &text {
                        if !first {
                            s.push(',');
                        }
                        first = false;
                        push_str(&mut s, std::str::from_utf8(k).unwrap_or_default());
                    }
                    s.push(']');
                }
                if !bin.is_empty() {
                    if !text.is_empty() {
                        s.push(',');
                    }
                    s.push_str("\"keys_b64\":[");
                    for (i, k) in bin.iter().enumerate() {
                        if i > 0 {
                            s.push(',');
                        }
                        s.push('"');
                        s.push_str(&base64(k));
                        s.push('"');
                    }
                    s.push(']');
                }
            }
            Op::DelPrefix(p) => {
                s.push_str("\"op\":\"del_prefix\",\"prefix\":");
                push_str(&mut s, &String::from_utf8_lossy(p));
            }
            Op::Tag(t) => {
                s.push_str("\"op\":\"tag\",\"tag\":");
                push_str(&mut s, &String::from_utf8_lossy(t));
            }
            Op::Clear => s.push_str("\"op\":\"clear\""),
            Op::Heartbeat => s.push_str("\"op\":\"hb\""),
        }
        if let Some(c) = &self.cache {
            s.push_str(",\"cache\":");
            push_str(&mut s, c);
        }
        if let Some(o) = &self.origin {
            s.push_str(",\"origin\":");
            push_str(&mut s, o);
        }
        if let Some(q) = self.seq {
            s.push_str(&format!(",\"seq\":{q}"));
        }
        if let Some(t) = self.ts {
            s.push_str(&format!(",\"ts\":{t}"));
        }
        s.push('}');
        s
    }
}

fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}
