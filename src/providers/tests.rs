use super::*;

#[test]
fn amounts_in_portal_formats() {
    let check = |s: &str, want: Option<f64>| assert_eq!(parse_amount(s), want, "{s:?}");
    check("387.32", Some(387.32));
    check("1 234,56", Some(1234.56));
    check("1\u{a0}234,56 ₽", Some(1234.56));
    check("-12,5", Some(-12.5));
    check("\u{2212}7", Some(-7.0));
    check("1,234.56", Some(1234.56));
    check("0", Some(0.0));
    check("0,00", Some(0.0));
    check("", None);
    check("n/a", None);
    check("12abc", None);
}

#[test]
fn json_balances() {
    let v: Value = serde_json::json!({"a": {"n": -3.5, "s": "12,5", "z": 0, "x": null, "o": {}}});
    assert_eq!(balance_at(&v, &["a", "n"], "t"), Ok(-3.5));
    assert_eq!(balance_at(&v, &["a", "s"], "t"), Ok(12.5));
    assert_eq!(balance_at(&v, &["a", "z"], "t"), Ok(0.0));
    for path in [&["a", "x"][..], &["a", "missing"], &["a", "o"], &["b", "n"]] {
        let e = balance_at(&v, path, "t").unwrap_err();
        assert_eq!(e.code, Code::ParsingError, "{path:?}");
    }
}

#[test]
fn statuses_map_to_codes() {
    let c = |s: u16, step| {
        check_status(StatusCode::from_u16(s).unwrap(), step, "x").map_err(|f| f.code)
    };
    assert_eq!(c(200, Step::First), Ok(()));
    assert_eq!(c(500, Step::First), Err(Code::NoAnswer));
    assert_eq!(c(500, Step::Later), Err(Code::CannotProceed));
    assert_eq!(c(401, Step::First), Err(Code::CannotProceed));
    assert_eq!(c(429, Step::Later), Err(Code::RateLimit));
}

#[test]
fn almatel_balance_from_html() {
    let page = r#"<html><body><div class="lk__profile--block lk__profile-balance"><div><div>
        <span class="question-block-title">Баланс</span><span class="question-block-value">1 234,56</span>
        </div></div></div></body></html>"#;
    assert_eq!(almatel::balance_in(page), Ok(1234.56));
    let changed = page.replace("question-block-value", "value");
    assert!(almatel::balance_in(&changed).is_err());
    // The first direct text node, as the original's `span/text()`: nested
    // markup after the amount is not part of it.
    let nested = page.replace(
        "1 234,56</span>",
        "\n  387,32 <small>руб./мес.</small></span>",
    );
    assert_eq!(almatel::balance_in(&nested), Ok(387.32));
    // Markup first: its first direct text node is what follows it.
    let first = page.replace("1 234,56</span>", "<b>x</b>12,5<i>7</i></span>");
    assert_eq!(almatel::balance_in(&first), Ok(12.5));
    let none = page.replace("1 234,56</span>", "<b>5</b></span>");
    assert!(almatel::balance_in(&none).is_err());
}

#[test]
fn every_provider_is_in_the_schema() {
    let schema: Value = serde_json::from_str(config::SCHEMA).unwrap();
    for p in all() {
        assert!(
            schema["properties"]["identifiers"]["properties"]
                .get(p.name())
                .is_some(),
            "{} missing from the schema",
            p.name()
        );
        assert_eq!(lookup(p.name()).map(|q| q.name()), Some(p.name()));
    }
    assert!(lookup("Template").is_none());
}
