//! The JSON push envelope decoder on arbitrary bytes.
//!
//! Besides "never panics", checks what holds for every accepted document:
//! it was UTF-8, its app names are distinct, and re-encoding the decoded
//! pushes as `{"app": "text", ...}` decodes to the same pushes.

#![no_main]

use exporter_proxy::ingest::codec::{decode_json, AppPush};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pushes = match decode_json(data) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.0.is_empty(), "an error says what is wrong");
            return;
        }
    };
    assert!(std::str::from_utf8(data).is_ok(), "accepted invalid UTF-8");
    for (i, p) in pushes.iter().enumerate() {
        assert!(
            pushes[..i].iter().all(|q| q.app != p.app),
            "app {:?} decoded twice",
            p.app
        );
    }
    // Re-encode app and text in the string form (keeping the order; a TTL
    // is not carried by that form) and decode again.
    let mut doc = String::from("{");
    for (i, AppPush { app, text, .. }) in pushes.iter().enumerate() {
        if i > 0 {
            doc.push(',');
        }
        doc.push_str(&serde_json_string(app));
        doc.push(':');
        doc.push_str(&serde_json_string(text));
    }
    doc.push('}');
    let again = decode_json(doc.as_bytes())
        .unwrap_or_else(|e| panic!("re-encoded document {doc:?} refused: {e}"));
    let texts = |p: &[AppPush]| -> Vec<(String, String)> {
        p.iter().map(|p| (p.app.clone(), p.text.clone())).collect()
    };
    assert_eq!(texts(&again), texts(&pushes));
    assert!(again.iter().all(|p| p.ttl.is_none()), "a TTL from nowhere");
});

/// A JSON string literal, written by hand so the target needs no serde_json.
fn serde_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
