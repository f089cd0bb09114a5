//! JSON request bodies written the way the original wrote them: Python's
//! `json.dumps` with its defaults (`", "` and `": "` separators, non-ASCII
//! escaped as `\uXXXX`), the values typed as PyYAML typed the provider
//! file ([`Typed`]): `password: 123456` is sent as the number `123456`,
//! `password: "123456"` and `password: 0891` as strings.
//!
//! A body is built from a few fields, so it is a small writer rather than
//! a serde serializer; integers of any length keep every digit.

use super::config::yaml11::{float_repr, Typed};

/// A JSON value of a request body. `Debug` shows the keys only: a body
/// carries credentials.
#[derive(Clone, PartialEq)]
pub enum Json {
    /// A value from the provider file, typed as the original typed it.
    Typed(Typed),
    /// A string.
    Str(String),
    /// An object, its fields in order.
    Object(Vec<(&'static str, Json)>),
}

impl std::fmt::Debug for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Json::Object(fields) => f
                .debug_map()
                .entries(fields.iter().map(|(k, v)| (k, v)))
                .finish(),
            _ => f.write_str(".."),
        }
    }
}

impl Json {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    /// The body text, as `json.dumps` writes it.
    pub fn dumps(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Str(s) => string(out, s),
            Json::Typed(t) => match t {
                Typed::Null => out.push_str("null"),
                Typed::Bool(true) => out.push_str("true"),
                Typed::Bool(false) => out.push_str("false"),
                Typed::Int(digits) => out.push_str(digits),
                Typed::Float(f) => out.push_str(&float_repr(*f)),
                Typed::Str(s) => string(out, s),
            },
            Json::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    string(out, k);
                    out.push_str(": ");
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A JSON string with `ensure_ascii`.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Python's `answer.get(key) == 0` on a JSON answer: true for `0`, `0.0`,
/// `-0.0` and `false` (a `bool` is an `int` in Python), not for `"0"`.
pub fn equals_zero(v: Option<&serde_json::Value>) -> bool {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(serde_json::Value::Bool(b)) => !b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_as_python_compares_it() {
        use serde_json::json;
        for v in [json!(0), json!(0.0), json!(-0.0), json!(false)] {
            assert!(equals_zero(Some(&v)), "{v}");
        }
        for v in [json!("0"), json!(1), json!(true), json!(null), json!(0.5)] {
            assert!(!equals_zero(Some(&v)), "{v}");
        }
        assert!(!equals_zero(None));
    }

    #[test]
    fn floats_as_python_prints_them() {
        for (f, want) in [
            (891.0, "891.0"),
            (12.5, "12.5"),
            (-0.5, "-0.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (1.5e300, "1.5e+300"),
            (0.0, "0.0"),
        ] {
            assert_eq!(float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn bodies_as_json_dumps_writes_them() {
        let body = Json::Object(vec![
            (
                "Username",
                Json::Typed(Typed::Int("79201234567".to_owned())),
            ),
            (
                "Password",
                Json::Typed(Typed::Str("пароль\"\u{1F600}".to_owned())),
            ),
            ("save", Json::str("true")),
            (
                "params",
                Json::Object(vec![("n", Json::Typed(Typed::Float(891.0)))]),
            ),
            ("b", Json::Typed(Typed::Bool(false))),
            ("z", Json::Typed(Typed::Null)),
        ]);
        assert_eq!(
            body.dumps(),
            r#"{"Username": 79201234567, "Password": "\u043f\u0430\u0440\u043e\u043b\u044c\"\ud83d\ude00", "save": "true", "params": {"n": 891.0}, "b": false, "z": null}"#
        );
        // A long integer keeps every digit.
        let big = Json::Typed(Typed::Int("123456789012345678901234567890".to_owned()));
        assert_eq!(big.dumps(), "123456789012345678901234567890");
        let v: serde_json::Value = serde_json::from_str(&body.dumps()).unwrap();
        assert_eq!(v["Password"], "пароль\"\u{1F600}");
        // Debug shows the shape, never a value.
        let dbg = format!("{body:?}");
        assert!(dbg.contains("Password") && !dbg.contains("пароль"), "{dbg}");
        assert!(!dbg.contains("79201234567"), "{dbg}");
    }
}
