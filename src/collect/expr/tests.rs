use serde_json::{json, Value};

use super::Expr;

fn eval(e: &str, input: Value) -> Result<Vec<Value>, String> {
    Expr::parse(e)
        .unwrap_or_else(|err| panic!("{e}: {err}"))
        .eval(&input)
}

fn incidents() -> Value {
    json!({"incidents": [
        {"incidentNumber": "1", "currentPhase": "RESOLVED", "startTime": "2021-11-02T10:00:00Z",
         "transitions": [{"name": "ACKED", "at": "2021-11-02T10:02:00Z"},
                         {"name": "RESOLVED", "at": "2021-11-02T10:30:00Z"}]},
        {"incidentNumber": "2", "currentPhase": "ACKED", "startTime": "2021-11-02T11:00:00Z",
         "transitions": [{"name": "ACKED", "at": "2021-11-02T11:04:00Z"}]},
        {"incidentNumber": "3", "currentPhase": "UNACKED", "startTime": "2021-11-02T12:00:00Z",
         "transitions": []}
    ]})
}

#[test]
fn computes_filters_dates_means_and_groups() {
    let mean_ack = r#"[.incidents[] | select(.currentPhase != "UNACKED")
        | ((.transitions[] | select(.name == "ACKED") | .at | fromdateiso8601)
           - (.startTime | fromdateiso8601)) / 60] | add / length"#;
    assert_eq!(eval(mean_ack, incidents()), Ok(vec![json!(3.0)]));
    let by_state =
        r#".incidents | group_by(.currentPhase)[] | {state: .[0].currentPhase, value: length}"#;
    assert_eq!(
        eval(by_state, incidents()),
        Ok(vec![
            json!({"state": "ACKED", "value": 1}),
            json!({"state": "RESOLVED", "value": 1}),
            json!({"state": "UNACKED", "value": 1}),
        ])
    );
    assert_eq!(eval(".incidents | length", incidents()), Ok(vec![json!(3)]));
    // NaN (an empty mean) is a missing value, as jq prints it.
    assert_eq!(eval("nan", json!(null)), Ok(vec![Value::Null]));
    assert_eq!(eval("empty", json!(1)), Ok(vec![]));
}

#[test]
fn runaway_expressions_are_stopped_with_a_clear_error() {
    for e in [
        "last(range(1e18))",
        "[repeat(1)] | length",
        "until(false; .)",
        "[recurse(. + 1)] | length",
        "reduce range(1; infinite) as $x (0; . + $x)",
        "[limit(1e9; repeat(.))] | length",
    ] {
        let err = eval(e, json!(0)).unwrap_err();
        assert!(
            err.contains("stopped after") && err.contains(e),
            "{e}: {err}"
        );
    }
    let err = eval("range(20000)", json!(0)).unwrap_err();
    assert!(err.contains("more than 10000 outputs"), "{err}");
    // Bounded generators still work.
    assert_eq!(eval("[range(5)] | add", json!(0)), Ok(vec![json!(10)]));
    assert_eq!(
        eval("[range(10; 0; -3)]", json!(0)),
        Ok(vec![json!([10, 7, 4, 1])])
    );
    // jq's `repeat`: the input first.
    assert_eq!(
        eval("[limit(3; repeat(2))]", json!(0)),
        Ok(vec![json!([0, 2, 2])])
    );
    assert_eq!(
        eval(
            "[.[] | recurse(if . > 0 then . - 1 else empty end)]",
            json!([2])
        ),
        Ok(vec![json!([2, 1, 0])])
    );
    assert_eq!(
        eval("[1, [2, [3]]] | flatten", json!(0)),
        Ok(vec![json!([1, 2, 3])])
    );
}

#[test]
fn unsafe_or_invalid_expressions_are_refused_at_load() {
    let err = Expr::parse("def f: f; f").unwrap_err();
    assert!(err.contains("`def` at byte 0 is not allowed"), "{err}");
    let err = Expr::parse(r#""\(def f: 1; f)""#).unwrap_err();
    assert!(err.contains("`def`"), "{err}");
    let err = Expr::parse(r#"import "x" as x; 1"#).unwrap_err();
    assert!(err.contains("`import`"), "{err}");
    for e in ["env", "$ENV", "halt", "input", "debug", "halt_error"] {
        assert!(Expr::parse(e).is_err(), "{e} must not compile");
    }
    let err = Expr::parse(".a | nosuchfilter").unwrap_err();
    assert!(
        err.contains("nosuchfilter") && err.contains("byte 5"),
        "{err}"
    );
    let err = Expr::parse(".a | (").unwrap_err();
    assert!(err.contains("byte"), "{err}");
    let err = eval(".a + 1", json!({"a": "x"})).unwrap_err();
    assert!(err.starts_with("expression `.a + 1`: "), "{err}");
}
