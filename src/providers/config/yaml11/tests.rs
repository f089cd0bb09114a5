use super::*;

fn int(s: &str) -> Typed {
    Typed::Int(s.to_owned())
}

/// PyYAML 1.1's implicit typing of plain scalars (resolver.py and
/// constructor.py), value by value.
#[test]
fn plain_scalars_are_typed_as_pyyaml_types_them() {
    let cases: &[(&str, Typed)] = &[
        // Integers: decimal, octal, hex, binary, underscores, sexagesimal.
        ("123456", int("123456")),
        ("0", int("0")),
        ("-0", int("0")),
        ("+12", int("12")),
        ("0123", int("83")),
        ("-017", int("-15")),
        ("0x1F", int("31")),
        ("0b101", int("5")),
        ("1_000", int("1000")),
        ("30:00", int("1800")),
        ("1:30:00", int("5400")),
        ("79201234567", int("79201234567")),
        (
            "123456789012345678901234567890",
            int("123456789012345678901234567890"),
        ),
        // Not octal (8 and 9), not decimal (leading zero): a string.
        ("0891", Typed::Str("0891".to_owned())),
        ("09", Typed::Str("09".to_owned())),
        // Floats need a dot; an exponent needs its sign.
        ("12.5", Typed::Float(12.5)),
        ("891.", Typed::Float(891.0)),
        (".5", Typed::Float(0.5)),
        ("1.5e+3", Typed::Float(1500.0)),
        ("1_000.5", Typed::Float(1000.5)),
        ("1:30.5", Typed::Float(90.5)),
        ("-.inf", Typed::Float(f64::NEG_INFINITY)),
        ("1e5", Typed::Str("1e5".to_owned())),
        ("1.5e3", Typed::Str("1.5e3".to_owned())),
        // Booleans: yes/no/on/off/true/false in three casings; y/n are strings.
        ("yes", Typed::Bool(true)),
        ("No", Typed::Bool(false)),
        ("ON", Typed::Bool(true)),
        ("off", Typed::Bool(false)),
        ("True", Typed::Bool(true)),
        ("y", Typed::Str("y".to_owned())),
        ("n", Typed::Str("n".to_owned())),
        ("yEs", Typed::Str("yEs".to_owned())),
        // Null.
        ("~", Typed::Null),
        ("null", Typed::Null),
        ("", Typed::Null),
        // Dates stay text (the original could not send them as JSON).
        ("2024-01-31", Typed::Str("2024-01-31".to_owned())),
        ("secret1", Typed::Str("secret1".to_owned())),
    ];
    for (text, want) in cases {
        assert_eq!(&resolve(text), want, "{text:?}");
    }
    assert!(matches!(resolve(".nan"), Typed::Float(f) if f.is_nan()));
}

#[test]
fn the_text_is_kept_and_the_document_typed() {
    let doc = load(
        "---\n\
         a: 0891\n\
         b: '0123'\n\
         c: 0123\n\
         d: !!str 42\n\
         e: [y, no, \"yes\"]\n\
         f: {g: 1_800, h: 30:00}\n\
         base: &b {x: 1, y: 2}\n\
         merged: {<<: *b, y: 3}\n",
    )
    .unwrap();
    let v = doc.to_value();
    assert_eq!(v["a"], "0891");
    assert_eq!(v["b"], "0123");
    assert_eq!(v["c"], 83);
    assert_eq!(v["d"], "42");
    assert_eq!(v["e"], serde_json::json!(["y", false, "yes"]));
    assert_eq!(v["f"], serde_json::json!({"g": 1800, "h": 1800}));
    assert_eq!(v["merged"], serde_json::json!({"x": 1, "y": 3}));
    let s = doc.scalars();
    let w = |p: &str| s.get(p).map(|w| (w.text.as_str(), w.plain));
    assert_eq!(w("/a"), Some(("0891", true)));
    assert_eq!(w("/b"), Some(("0123", false)));
    assert_eq!(w("/c"), Some(("0123", true)));
    assert_eq!(w("/d"), Some(("42", false)));
    assert_eq!(w("/e/1"), Some(("no", true)));
    assert_eq!(w("/f/h"), Some(("30:00", true)));
}

#[test]
fn bad_documents_name_the_line() {
    let e = load("a: 1\nb: 2\na: 3\n").unwrap_err();
    assert!(e.contains("line 3") && e.contains("`a`"), "{e}");
    let e = load("a: 1\n---\nb: 2\n").unwrap_err();
    assert!(e.contains("second YAML document"), "{e}");
    let e = load("a: [1, 2\n").unwrap_err();
    assert!(e.contains("line"), "{e}");
    // An alias bomb stops at the node limit.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let e = load(&bomb).unwrap_err();
    assert!(e.contains("nodes"), "{e}");
}

#[test]
fn written_never_shows_its_text() {
    let w = Written {
        text: "hunter2".to_owned(),
        plain: true,
    };
    assert!(!format!("{w:?}").contains("hunter2"));
}
