//! Envelope decoding: pure functions on bytes, no IO.
//!
//! * JSON: one document per connection, `{"app": "text"}` or
//!   `{"app": ["line", ...]}`, several apps allowed (all applied).
//! * Cap'n Proto: standard unpacked stream framing, `InboundMetrics`.

use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::fmt;
use std::hash::BuildHasher;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

use crate::generated::metric_data_capnp::inbound_metrics;
use crate::ttl::Ttl;

/// Most segments we accept in one Cap'n Proto message. pycapnp and the Rust
/// writer produce one segment for messages below ~8 KiB and a handful above;
/// the library's own limit is 512.
pub const MAX_SEGMENTS: usize = 64;

/// One application's push, decoded from an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPush {
    /// The application name (key).
    pub app: String,
    /// The exposition text, newline-terminated.
    pub text: String,
    /// The push's own TTL, when it sets one.
    pub ttl: Option<Ttl>,
}

/// A malformed envelope, with the position of the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// What the first bytes of a connection say about its format: JSON starts
/// with `{` (or `[`, a common mistake we want to report as a JSON error)
/// after optional whitespace; a Cap'n Proto stream starts with a segment
/// count below 64, i.e. a small first byte and three zero bytes.
pub fn looks_like_json(first: &[u8]) -> bool {
    // All-whitespace is JSON too: as a capnp segment count it is absurd.
    first
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|b| matches!(b, b'{' | b'['))
}

/// Decodes a JSON push document, whatever its number of apps.
pub fn decode_json(buf: &[u8]) -> Result<Vec<AppPush>, DecodeError> {
    decode_json_limited(buf, usize::MAX)
}

/// Decodes a JSON push document of at most `max_apps` apps: the document
/// is refused at the first app over the limit, before the rest is read.
/// Time is linear in the document's size (one hash per app name).
pub fn decode_json_limited(buf: &[u8], max_apps: usize) -> Result<Vec<AppPush>, DecodeError> {
    if let Err(e) = std::str::from_utf8(buf) {
        return Err(DecodeError(format!(
            "invalid UTF-8 at byte offset {}",
            e.valid_up_to()
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(buf);
    let pushes = (&mut de)
        .deserialize_map(PushVisitor { max_apps })
        .map_err(|e| json_error(buf, &e))?;
    de.end().map_err(|e| json_error(buf, &e))?;
    Ok(pushes)
}

fn json_error(buf: &[u8], e: &serde_json::Error) -> DecodeError {
    // serde_json reports line and column; add the byte offset for binary-ish
    // input where lines mean little.
    let offset = offset_of(buf, e.line(), e.column());
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg.as_str(),
    };
    DecodeError(format!(
        "invalid JSON at line {} column {} (byte offset {offset}): {msg}; expected {{\"app\": \"text\"}} or {{\"app\": [\"line\", ...]}}",
        e.line(),
        e.column()
    ))
}

fn offset_of(buf: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in buf.split(|b| *b == b'\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1);
        }
        offset += l.len() + 1;
    }
    buf.len()
}

struct PushVisitor {
    max_apps: usize,
}

impl<'de> Visitor<'de> for PushVisitor {
    type Value = Vec<AppPush>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object mapping app names to a string or an array of strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: Vec<AppPush> = Vec::new();
        // The index of each name by its hash (keyed at random per document,
        // so no one can aim at collisions): a lookup per app keeps the
        // check linear (comparing with every earlier name took hours at
        // 16 MiB) without a second copy of the names.
        let keys = RandomState::new();
        let mut seen: HashMap<u64, usize> = HashMap::new();
        while let Some(app) = map.next_key::<String>()? {
            if out.len() >= self.max_apps {
                return Err(serde::de::Error::custom(format!(
                    "app {app:?} is app number {} of the document: more than limits.max_apps ({})",
                    out.len() + 1,
                    self.max_apps
                )));
            }
            let twice = match seen.entry(keys.hash_one(&app)) {
                Entry::Vacant(slot) => {
                    slot.insert(out.len());
                    false
                }
                // Same hash: the same name, or (rarely) a collision.
                Entry::Occupied(first) => {
                    out[*first.get()].app == app || out.iter().any(|p| p.app == app)
                }
            };
            if twice {
                return Err(serde::de::Error::custom(format!(
                    "app {app:?} appears twice in the object"
                )));
            }
            let Payload { text, ttl } = map.next_value::<Payload>()?;
            out.push(AppPush { app, text, ttl });
        }
        Ok(out)
    }
}

/// A string, an array of lines joined with `\n` (newline-terminated), or
/// an object `{"metrics": <string or array>, "ttl": "5m" | "never" | 300}`.
struct Payload {
    text: String,
    ttl: Option<Ttl>,
}

/// The text forms of a payload.
struct Text(String);

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
                let mut text = String::new();
                while let Some(line) = seq.next_element::<String>()? {
                    text.push_str(&line);
                    text.push('\n');
                }
                Ok(Text(text))
            }
        }
        d.deserialize_any(V)
    }
}

/// A TTL as a string (`"5m"`, `"never"`) or positive seconds.
struct TtlField(Ttl);

impl<'de> serde::Deserialize<'de> for TtlField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TtlField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TTL such as \"5m\" or \"never\", or positive seconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TtlField, E> {
                Ttl::parse(v).map(TtlField).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TtlField, E> {
                if v == 0 {
                    return Err(E::custom("a TTL of 0 would expire at once; use \"never\""));
                }
                Ok(TtlField(Ttl::After(std::time::Duration::from_secs(v))))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, an array of strings, or {\"metrics\": ..., \"ttl\": ...}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Payload, E> {
                Ok(Payload {
                    text: v.to_owned(),
                    ttl: None,
                })
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Payload, E> {
                Ok(Payload { text: v, ttl: None })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Payload, A::Error> {
                let Text(text) = serde::Deserialize::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(seq),
                )?;
                Ok(Payload { text, ttl: None })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
                let mut text = None;
                let mut ttl = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "metrics" => text = Some(map.next_value::<Text>()?.0),
                        "ttl" => ttl = Some(map.next_value::<TtlField>()?.0),
                        other => {
                            return Err(serde::de::Error::custom(format!(
                                "unknown field {other:?}, expected \"metrics\" or \"ttl\""
                            )))
                        }
                    }
                }
                let text =
                    text.ok_or_else(|| serde::de::Error::custom("missing field \"metrics\""))?;
                Ok(Payload { text, ttl })
            }
        }
        d.deserialize_any(V)
    }
}

/// Size of a Cap'n Proto stream message, from its segment table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Number of segments.
    pub segments: usize,
    /// Bytes of the segment table (including padding).
    pub table_bytes: usize,
    /// Total bytes of the message (table plus segments).
    pub total_bytes: usize,
}

/// Reads the segment count from the first 4 bytes of a message and returns
/// how many bytes the full segment table takes.
pub fn segment_table_len(first4: [u8; 4]) -> Result<usize, DecodeError> {
    let segments = u32::from_le_bytes(first4) as usize + 1;
    if segments > MAX_SEGMENTS {
        return Err(DecodeError(format!(
            "cap'n proto segment table announces {segments} segments (at most {MAX_SEGMENTS}); \
             is this a Cap'n Proto stream message?"
        )));
    }
    // 4 bytes count + 4 per segment, padded to 8.
    Ok((4 + 4 * segments).next_multiple_of(8))
}

/// Parses a complete segment table and checks the message size.
pub fn parse_segment_table(table: &[u8], max_bytes: usize) -> Result<FrameHeader, DecodeError> {
    let segments = u32::from_le_bytes(table[..4].try_into().expect("4 bytes")) as usize + 1;
    let mut words: u64 = 0;
    for i in 0..segments {
        let at = 4 + 4 * i;
        words += u64::from(u32::from_le_bytes(
            table[at..at + 4].try_into().expect("4 bytes"),
        ));
    }
    let total = table.len() as u64 + words * 8;
    if total > max_bytes as u64 {
        return Err(DecodeError(format!(
            "cap'n proto message of {total} bytes exceeds the limit of {max_bytes} bytes"
        )));
    }
    Ok(FrameHeader {
        segments,
        table_bytes: table.len(),
        total_bytes: total as usize,
    })
}

/// Decodes one complete framed message (segment table and segments).
pub fn decode_capnp(message: &[u8]) -> Result<AppPush, DecodeError> {
    let options = capnp::message::ReaderOptions {
        // The message is already bounded by `max_push_bytes`; traversal is
        // bounded by its size so that amplification attacks cannot loop.
        traversal_limit_in_words: Some(message.len() / 8 * 2 + 64),
        nesting_limit: 16,
    };
    let reader = capnp::serialize::read_message_from_flat_slice(&mut &message[..], options)
        .map_err(|e| DecodeError(format!("invalid cap'n proto message: {e}")))?;
    let root: inbound_metrics::Reader = reader
        .get_root()
        .map_err(|e| DecodeError(format!("invalid InboundMetrics: {e}")))?;
    let text =
        |r: capnp::Result<capnp::text::Reader>, field: &str| -> Result<String, DecodeError> {
            let t = r.map_err(|e| DecodeError(format!("invalid field {field}: {e}")))?;
            t.to_string()
                .map_err(|e| DecodeError(format!("field {field} is not valid UTF-8: {e}")))
        };
    let app = text(root.get_app_name(), "appName")?;
    let data = text(root.get_data(), "data")?;
    let ttl = match text(root.get_ttl(), "ttl")?.as_str() {
        "" => None,
        t => Some(Ttl::parse(t).map_err(|e| DecodeError(format!("invalid field ttl: {e}")))?),
    };
    Ok(AppPush {
        app,
        text: data,
        ttl,
    })
}

/// Encodes a push as a framed Cap'n Proto message (used by the CLI and tests).
pub fn encode_capnp(app: &str, text: &str) -> Vec<u8> {
    encode_capnp_with_ttl(app, text, "")
}

/// [`encode_capnp`] with the `ttl` field (`""`: the listener's default).
pub fn encode_capnp_with_ttl(app: &str, text: &str, ttl: &str) -> Vec<u8> {
    let mut msg = capnp::message::Builder::new_default();
    let mut root = msg.init_root::<inbound_metrics::Builder>();
    root.set_app_name(app);
    root.set_data(text);
    if !ttl.is_empty() {
        root.set_ttl(ttl);
    }
    capnp::serialize::write_message_to_words(&msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Vec<(String, String)> {
        decode_json(input.as_bytes())
            .unwrap()
            .into_iter()
            .map(|p| (p.app, p.text))
            .collect()
    }

    fn err(input: &[u8]) -> String {
        decode_json(input).unwrap_err().0
    }

    #[test]
    fn json_string_and_array_forms() {
        assert_eq!(ok(r#"{"a": "x 1\n"}"#), [("a".into(), "x 1\n".into())]);
        assert_eq!(
            ok(r#"{"a": ["x 1", "y 2"]}"#),
            [("a".into(), "x 1\ny 2\n".into())]
        );
        assert_eq!(
            ok(r#"{"a": "x 1", "b": ["y 2"]}"#),
            [("a".into(), "x 1".into()), ("b".into(), "y 2\n".into())]
        );
        assert_eq!(ok("  {}  \n"), []);
    }

    #[test]
    fn json_errors_name_the_position() {
        assert!(
            err(b"{\"a\": 1}").contains("line 1 column"),
            "{}",
            err(b"{\"a\": 1}")
        );
        assert!(err(b"[1]").contains("expected {\"app\""));
        assert!(err(b"{\"a\": \"x\"} {}").contains("trailing"));
        assert!(err(b"{\"a\": \"x\", \"a\": \"y\"}").contains("appears twice"));
        assert_eq!(err(b"{\"a\": \"\xff\"}"), "invalid UTF-8 at byte offset 7");
        assert!(err(b"{\"a\": [\"x\", 2]}").contains("expected a string"));
        assert!(err(b"{\"a\": \"x").contains("EOF"));
    }

    #[test]
    fn capnp_round_trip_and_limits() {
        let bytes = encode_capnp("app", "x 1\n");
        let n = segment_table_len(bytes[..4].try_into().unwrap()).unwrap();
        let h = parse_segment_table(&bytes[..n], 1 << 20).unwrap();
        assert_eq!(h.total_bytes, bytes.len());
        let p = decode_capnp(&bytes).unwrap();
        assert_eq!((p.app.as_str(), p.text.as_str()), ("app", "x 1\n"));
        assert!(parse_segment_table(&bytes[..n], 8)
            .unwrap_err()
            .0
            .contains("exceeds"));
        assert!(segment_table_len(*b"{\"a\"").is_err());
    }

    #[test]
    fn capnp_garbage_is_an_error() {
        let mut bytes = encode_capnp("app", "x 1\n");
        // Point the root pointer far outside the segment.
        bytes[8..16].copy_from_slice(&[0xfc, 0xff, 0xff, 0x7f, 0, 0, 2, 0]);
        assert!(decode_capnp(&bytes).is_err());
        assert!(
            decode_capnp(&[0, 0, 0, 0, 0, 0, 0, 0]).is_err(),
            "an empty segment has no root"
        );
    }

    #[test]
    fn json_object_form_with_ttl() {
        let p = decode_json(br#"{"a": {"metrics": ["x 1"], "ttl": "5m"}, "b": {"metrics": "y 1\n", "ttl": 30}, "c": {"metrics": "z 1\n", "ttl": "never"}}"#).unwrap();
        assert_eq!(p[0].text, "x 1\n");
        assert_eq!(
            p[0].ttl,
            Some(Ttl::After(std::time::Duration::from_secs(300)))
        );
        assert_eq!(
            p[1].ttl,
            Some(Ttl::After(std::time::Duration::from_secs(30)))
        );
        assert_eq!(p[2].ttl, Some(Ttl::Never));
        assert_eq!(decode_json(br#"{"a": "x 1\n"}"#).unwrap()[0].ttl, None);
        for (doc, want) in [
            (&br#"{"a": {"ttl": "5m"}}"#[..], "missing field"),
            (br#"{"a": {"metrics": "x", "ttl": 0}}"#, "expire at once"),
            (
                br#"{"a": {"metrics": "x", "ttl": "soon"}}"#,
                "expected a TTL",
            ),
            (br#"{"a": {"metrics": "x", "color": 1}}"#, "unknown field"),
        ] {
            let e = decode_json(doc).unwrap_err().0;
            assert!(e.contains(want) && e.contains("line 1 column"), "{e}");
        }
    }

    #[test]
    fn capnp_ttl_field() {
        let p = decode_capnp(&encode_capnp_with_ttl("a", "x 1\n", "never")).unwrap();
        assert_eq!(p.ttl, Some(Ttl::Never));
        assert_eq!(decode_capnp(&encode_capnp("a", "x 1\n")).unwrap().ttl, None);
        let e = decode_capnp(&encode_capnp_with_ttl("a", "x 1\n", "0s")).unwrap_err();
        assert!(e.0.contains("invalid field ttl"), "{e}");
    }

    #[test]
    fn json_app_count_is_bounded_while_decoding() {
        let doc = |n: usize| {
            let body: Vec<String> = (0..n).map(|i| format!("\"a{i}\": \"x 1\\n\"")).collect();
            format!("{{{}}}", body.join(","))
        };
        assert_eq!(decode_json_limited(doc(3).as_bytes(), 3).unwrap().len(), 3);
        let e = decode_json_limited(doc(4).as_bytes(), 3).unwrap_err().0;
        assert!(
            e.contains("\"a3\" is app number 4") && e.contains("limits.max_apps (3)"),
            "{e}"
        );
        // 200,000 distinct names: the duplicate check is a hash lookup per
        // name (the earlier scan of every previous name made this 2e10
        // comparisons); a duplicate at the very end is still found.
        let mut big = doc(200_000);
        assert_eq!(decode_json(big.as_bytes()).unwrap().len(), 200_000);
        big.insert_str(big.len() - 1, ",\"a0\": \"\"");
        assert!(decode_json(big.as_bytes())
            .unwrap_err()
            .0
            .contains("\"a0\" appears twice"));
    }

    #[test]
    fn detects_json() {
        assert!(looks_like_json(b"  \n{"));
        assert!(looks_like_json(b"    "));
        assert!(!looks_like_json(&[0, 0, 0, 0]));
    }
}
