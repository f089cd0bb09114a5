//! Expressions, observation modes and missing values, evaluated without
//! HTTP (the collector integration tests drive the same code over loopback).

use serde_json::json;

use super::metrics::State;
use super::tests::{parse, run, with_metrics};

fn incidents() -> serde_json::Value {
    json!({"total": 3, "incidents": [
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
fn expressions_compute_values_and_labels() {
    let c = with_metrics(
        r#"
[[collectors.metrics]]
name = "mtta_minutes"
type = "gauge"
expr = '[.incidents[] | select(.currentPhase != "UNACKED") | ((.transitions[] | select(.name == "ACKED") | .at | fromdateiso8601) - (.startTime | fromdateiso8601)) / 60] | add / length'
[[collectors.metrics]]
name = "incidents_by_state"
type = "gauge"
expr = '.incidents | group_by(.currentPhase)[] | {state: .[0].currentPhase, value: length}'
labels = { state = "state" }
[[collectors.metrics]]
name = "alerts"
type = "gauge"
path = "incidents[*].transitions"
scale = 1
labels = { n = "$.total", phase = { expr = "length | tostring | . + \" transitions\"" } }
missing = "skip"
"#,
    );
    let err = run(&c, &State::default(), incidents()).unwrap_err();
    // An array is not a number: the error names the metric, the path and the element.
    assert!(
        err.contains("metric alerts: path `incidents[*].transitions`: at `incidents[0].transitions`: expected a number"),
        "{err}"
    );
    let c = with_metrics(
        r#"
[[collectors.metrics]]
name = "mtta_minutes"
type = "gauge"
expr = '[.incidents[] | select(.currentPhase != "UNACKED") | ((.transitions[] | select(.name == "ACKED") | .at | fromdateiso8601) - (.startTime | fromdateiso8601)) / 60] | add / length'
[[collectors.metrics]]
name = "incidents_by_state"
type = "gauge"
expr = '.incidents | group_by(.currentPhase)[] | {state: .[0].currentPhase, value: length}'
labels = { state = "state" }
[[collectors.metrics]]
name = "transitions"
type = "gauge"
path = "incidents[*].currentPhase"
map = { RESOLVED = 1, ACKED = 1, UNACKED = 0 }
labels = { number = "incidentNumber", count = { expr = ".transitions | length" } }
"#,
    );
    let (text, _) = run(&c, &State::default(), incidents()).unwrap();
    assert_eq!(
        text,
        "# TYPE mtta_minutes gauge\nmtta_minutes 3\n\
         # TYPE incidents_by_state gauge\n\
         incidents_by_state{state=\"ACKED\"} 1\nincidents_by_state{state=\"RESOLVED\"} 1\nincidents_by_state{state=\"UNACKED\"} 1\n\
         # TYPE transitions gauge\n\
         transitions{count=\"2\",number=\"1\"} 1\ntransitions{count=\"1\",number=\"2\"} 1\ntransitions{count=\"0\",number=\"3\"} 0\n"
    );
}

#[test]
fn expression_errors_name_the_metric_and_the_expression() {
    let c = with_metrics(
        r#"
[[collectors.metrics]]
name = "runaway"
type = "gauge"
expr = "last(range(1e18))"
"#,
    );
    let err = run(&c, &State::default(), json!({})).unwrap_err();
    assert!(
        err.starts_with("metric runaway: expression `last(range(1e18))`: stopped after"),
        "{err}"
    );
    let err = parse(&format!(
        "{}{}",
        super::tests::BASE,
        r#"
[[collectors.metrics]]
name = "a"
type = "gauge"
expr = ".x | nosuch"
[[collectors.metrics]]
name = "b"
type = "gauge"
expr = "def f: f; f"
[[collectors.metrics]]
name = "c"
type = "summary"
expr = ".x"
[[collectors.metrics]]
name = "d"
type = "gauge"
path = "x"
expr = ".x"
[[collectors.metrics]]
name = "e"
type = "gauge"
path = "x[*]"
labels = { l = { expr = "env" } }
"#
    ))
    .unwrap_err()
    .join("\n");
    for want in [
        "collector \"c\": `metrics[0].expr`: undefined filter \"nosuch\" at byte 5",
        "collector \"c\": `metrics[1].expr`: `def` at byte 0 is not allowed",
        "collector \"c\": `metrics[2].observe`: required with `expr`",
        "collector \"c\": `metrics[3]`: expected exactly one of `path`, `var` or `expr`",
        "collector \"c\": `metrics[4].labels.l`: undefined filter \"env\"",
    ] {
        assert!(err.contains(want), "{want:?} missing in:\n{err}");
    }
}

#[test]
fn per_poll_observes_one_value_each_poll_with_default_buckets() {
    let c = with_metrics(
        r#"
[[collectors.metrics]]
name = "mtta_minutes"
type = "summary"
path = "mean"
[[collectors.metrics]]
name = "latency_seconds"
type = "histogram"
expr = ".mean / 10"
observe = "per_poll"
"#,
    );
    let (_, s1) = run(&c, &State::default(), json!({"mean": 3})).unwrap();
    // The same response again: per poll, observed again (collectington's meaning).
    let (text, _) = run(&c, &s1, json!({"mean": 3})).unwrap();
    assert!(
        text.contains("mtta_minutes_sum 6\nmtta_minutes_count 2\n"),
        "{text}"
    );
    for line in [
        "latency_seconds_bucket{le=\"0.25\"} 0\n",
        "latency_seconds_bucket{le=\"0.5\"} 2\n",
        "latency_seconds_bucket{le=\"10\"} 2\n",
        "latency_seconds_bucket{le=\"+Inf\"} 2\n",
        "latency_seconds_sum 0.6\n",
        "latency_seconds_count 2\n",
    ] {
        assert!(text.contains(line), "{line:?} missing in:\n{text}");
    }
    assert!(
        text.contains("latency_seconds_bucket{le=\"0.005\"} 0\n"),
        "{text}"
    );
    // Per element: the same elements again are not counted twice.
    let c = with_metrics(
        r#"
[[collectors.metrics]]
name = "ack_seconds"
type = "histogram"
expr = ".incidents[] | {value: .ack, id: .n}"
observe = "per_element"
id = "id"
"#,
    );
    let body = json!({"incidents": [{"n": 1, "ack": 0.2}, {"n": 2, "ack": 4}]});
    let (_, s1) = run(&c, &State::default(), body.clone()).unwrap();
    let (text, _) = run(&c, &s1, body).unwrap();
    assert!(text.contains("ack_seconds_count 2\n"), "{text}");
    assert!(
        text.contains("ack_seconds_bucket{le=\"0.25\"} 1\n"),
        "{text}"
    );
}

#[test]
fn missing_values_fail_skip_or_default_and_name_the_exact_place() {
    let body = json!({"teams": [{"name": "a", "open_incidents": 2}, {"name": "b"}, {"name": "c", "open_incidents": 5}]});
    let metric = |missing: &str| {
        with_metrics(&format!(
            r#"
[[collectors.metrics]]
name = "open"
type = "gauge"
path = "teams[*].open_incidents"
labels = {{ team = "name" }}
{missing}
[[collectors.metrics]]
name = "other"
type = "gauge"
path = "absent.value"
{missing}
"#
        ))
    };
    let err = run(&metric(""), &State::default(), body.clone()).unwrap_err();
    assert!(
        err.contains("metric open: missing value: path `teams[*].open_incidents`: no key \"open_incidents\" at `teams[1]`"),
        "{err}"
    );
    let (text, _) = run(
        &metric("missing = \"skip\""),
        &State::default(),
        body.clone(),
    )
    .unwrap();
    assert_eq!(
        text,
        "# TYPE open gauge\nopen{team=\"a\"} 2\nopen{team=\"c\"} 5\n# TYPE other gauge\n"
    );
    let (text, _) = run(&metric("missing = -1"), &State::default(), body).unwrap();
    assert_eq!(
        text,
        "# TYPE open gauge\nopen{team=\"a\"} 2\nopen{team=\"b\"} -1\nopen{team=\"c\"} 5\n# TYPE other gauge\nother -1\n"
    );
    // A wrong type is never "missing": it fails whatever `missing` says.
    let err = run(
        &metric("missing = \"skip\""),
        &State::default(),
        json!({"teams": [{"name": "a", "open_incidents": [1]}]}),
    )
    .unwrap_err();
    assert!(
        err.contains("at `teams[0].open_incidents`: expected a number"),
        "{err}"
    );
    let err = run(
        &metric("missing = \"skip\""),
        &State::default(),
        json!({"teams": {"x": 1}}),
    )
    .unwrap_err();
    assert!(
        err.contains("expected an object at `teams.x`, found a number"),
        "{err}"
    );
}

#[test]
fn time_placeholders_and_key_secrets_are_configured() {
    use super::spec::{Part, SecretSpec, Template};
    let t = Template::parse("${now-1m}/${now|unix_ms}").unwrap();
    assert!(matches!(&t.parts[0], Part::Now(r) if r.offset_ms == -60_000));
    assert!(matches!(&t.parts[1], Part::Lit(l) if l == "/"));
    let err = Template::parse("${now-1 fortnight}").unwrap_err();
    assert!(err.contains("now-1m"), "{err}");
    let err = Template::parse("${later}").unwrap_err();
    assert!(err.contains("${now-1m}"), "{err}");
    let c = super::tests::one(
        r#"
[[collectors]]
name = "vo"
secrets = { id = { file = "/etc/splunk", key = "API_ID" }, k = { file = "/etc/splunk" } }
[[collectors.steps]]
url = "http://h/x"
query = { startedAfter = "${now-1m}" }
headers = { X-VO-Api-Id = "${secret.id}", X-VO-Api-Key = "${secret.k}" }
[[collectors.metrics]]
name = "m"
type = "gauge"
path = "x"
"#,
    );
    assert_eq!(
        c.secrets[0].1,
        SecretSpec::Key {
            file: "/etc/splunk".into(),
            key: "API_ID".into()
        }
    );
    let err = parse(
        r#"
[[collectors]]
name = "vo"
secrets = { id = { env = "X", key = "API_ID" } }
[[collectors.steps]]
url = "http://h/x"
[[collectors.metrics]]
name = "m"
type = "gauge"
path = "x"
"#,
    )
    .unwrap_err();
    assert!(
        err[0].contains("`secrets.id.key`: only with `file`"),
        "{err:?}"
    );
}
