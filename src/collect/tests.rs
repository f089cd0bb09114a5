use std::collections::HashMap;

use serde_json::json;

use super::metrics::{evaluate, Inputs, State, MAX_OBSERVED_LABEL_SETS};
use super::path::Path;
use super::spec::{self, CollectorConfig, Part, Template};
use super::value::NumberFormat;

pub(super) fn parse(toml_text: &str) -> Result<Vec<CollectorConfig>, Vec<String>> {
    let v: toml::Table = toml::from_str(toml_text).unwrap();
    let mut problems = Vec::new();
    let out = spec::from_config(v.get("collectors"), v.get("collectors_file"), &mut problems);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

pub(super) fn one(toml_text: &str) -> CollectorConfig {
    parse(toml_text)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .remove(0)
}

pub(super) const BASE: &str = r#"
[[collectors]]
name = "c"
[[collectors.steps]]
url = "http://127.0.0.1:1/data"
"#;

pub(super) fn with_metrics(metrics: &str) -> CollectorConfig {
    one(&format!("{BASE}{metrics}"))
}

pub(super) fn run(
    c: &CollectorConfig,
    state: &State,
    body: serde_json::Value,
) -> Result<(String, State), String> {
    let vars = HashMap::new();
    evaluate(
        &c.metrics,
        state,
        &Inputs {
            json: &[Some(body)],
            vars: &vars,
        },
    )
    .map(|e| (e.text, e.state))
}

#[test]
fn paths_parse_and_select() {
    let v = json!({"a": {"b": [{"c": 1}, {"c": 2}], "x.y": 3}, "arr": [[1, 2], [3]]});
    let vals = |p: &str| -> Vec<serde_json::Value> {
        Path::parse(p)
            .unwrap()
            .select(&v)
            .unwrap()
            .into_iter()
            .cloned()
            .collect()
    };
    assert_eq!(vals("a.b[1].c"), [json!(2)]);
    assert_eq!(vals("$.a.b[*].c"), [json!(1), json!(2)]);
    assert_eq!(vals("/a/b/0/c"), [json!(1)]);
    assert_eq!(vals("a[\"x.y\"]"), [json!(3)]);
    assert_eq!(vals("arr[*][*]"), [json!(1), json!(2), json!(3)]);
    assert!(Path::parse("$.a").unwrap().rooted);
    for bad in ["a..b", "a[", "a[x]", ".a", "a.b]"] {
        assert!(Path::parse(bad).is_err(), "{bad}");
    }
    let e = Path::parse("a.b[5].c").unwrap().select(&v).unwrap_err();
    assert!(
        e.contains("`a.b[5].c`") && e.contains("index 5") && e.contains("`a.b`"),
        "{e}"
    );
    let e = Path::parse("a.nope").unwrap().select(&v).unwrap_err();
    assert!(e.contains("no key \"nope\" at `a`"), "{e}");
    let e = Path::parse("a.b.c").unwrap().select(&v).unwrap_err();
    assert!(
        e.contains("expected an object at `a.b`, found an array"),
        "{e}"
    );
}

#[test]
fn the_quick_walk_answers_as_the_located_one() {
    // `value_at` and `location` (the collector's per-element fast path)
    // give what `one_at` gives, errors included, from any base.
    let v = json!({"a": {"b": [{"c": 1}, {"c": null}], "x.y": 3, "": 4}, "n": 5});
    for p in [
        "a.b[1].c",
        "a.b[0].c",
        "$.a.b[0].c",
        "/a/b/0/c",
        "a[\"x.y\"]",
        "a[\"\"]",
        "n",
        "a.b[5].c",
        "a.nope",
        "a.b.c",
        "n.x",
        "a.b[0].c.d",
        "",
    ] {
        let path = Path::parse(p).unwrap();
        for base in ["", "items[3]"] {
            let located = path.one_at(&v, base);
            let quick = path.value_at(&v, base);
            match (&located, &quick) {
                (Ok((loc, a)), Ok(b)) => {
                    assert_eq!(a, b, "{p}");
                    assert_eq!(&path.location(base), loc, "{p} from {base:?}");
                }
                (Err(a), Err(b)) => {
                    assert_eq!((a.missing, &a.message), (b.missing, &b.message), "{p}")
                }
                _ => panic!("{p}: {located:?} against {quick:?}"),
            }
        }
    }
}

#[test]
fn numbers_parse_strictly() {
    let dot = NumberFormat::default();
    let comma = NumberFormat {
        decimal_comma: true,
        ..NumberFormat::default()
    };
    let n = |f: &NumberFormat, v: serde_json::Value| f.convert(&v);
    assert_eq!(n(&dot, json!(-25.5)), Ok(-25.5));
    assert_eq!(n(&dot, json!("-25.50")), Ok(-25.5));
    assert_eq!(n(&dot, json!("$ 1,234.50")), Ok(1234.5));
    assert_eq!(n(&dot, json!(true)), Ok(1.0));
    assert_eq!(n(&dot, json!("false")), Ok(0.0));
    assert_eq!(n(&comma, json!("1.234,56 €")), Ok(1234.56));
    assert_eq!(n(&comma, json!("-7,5")), Ok(-7.5));
    assert_eq!(n(&comma, json!("0")), Ok(0.0));
    // Ambiguous or wrong: errors, never a silently different number.
    assert!(n(&dot, json!("1,5"))
        .unwrap_err()
        .contains("decimal = \",\""));
    assert!(n(&comma, json!("1.5")).is_err());
    assert!(n(&dot, json!("n/a")).is_err());
    assert!(n(&dot, json!(null)).unwrap_err().contains("null"));
    let mapped = NumberFormat {
        map: vec![("active".into(), 1.0), ("suspended".into(), 0.0)],
        scale: 2.0,
        ..NumberFormat::default()
    };
    assert_eq!(n(&mapped, json!("active")), Ok(2.0));
    assert_eq!(n(&mapped, json!(3)), Ok(6.0));
    assert!(n(&mapped, json!("deleted")).unwrap_err().contains("map"));
}

#[test]
fn templates_parse_placeholders() {
    let t = Template::parse("Bearer ${secret.token} $$x $y ${var.csrf}").unwrap();
    assert_eq!(
        t.parts,
        [
            Part::Lit("Bearer ".into()),
            Part::Secret("token".into()),
            Part::Lit(" $x $y ".into()),
            Part::Var("csrf".into()),
        ]
    );
    assert!(Template::parse("${env.HOME}").is_err());
    assert!(Template::parse("${secret.x").is_err());
}

#[test]
fn config_problems_are_all_reported_with_collector_and_key() {
    let err = parse(
        r#"
[[collectors]]
name = "a"
interval = "1s"
timeout = "5s"
bogus = 1
secrets = { t = { env = "X", file = "/y" } }
[[collectors.steps]]
name = "login"
method = "FETCH"
url = "http://h/x"
headers = { Host2 = "${var.host}" }
extract = [{ var = "tok", css = "input[", attr = "value" }, { var = "v", json = "a", header = "b" }]
[[collectors.metrics]]
name = "m"
type = "summary"
path = "total"
observe = "per_element"
delta = true
labels = { "bad-label" = "x" }
[[collectors.metrics]]
name = "m"
type = "gauge"
var = "missing"

[[collectors]]
interval = "1m"
"#,
    )
    .unwrap_err();
    let all = err.join("\n");
    for want in [
        "collector \"a\": `timeout`: 5s is longer than `interval`",
        "collector \"a\": `bogus`: unknown key",
        "collector \"a\": `secrets.t`: expected exactly one of `file` or `env`",
        "collector \"a\": `steps[0].method`: expected one of GET",
        "collector \"a\": `steps[0].headers.Host2`: `${var.host}` is not extracted by an earlier step",
        "collector \"a\": `steps[0].extract[0].css`: invalid CSS selector",
        "collector \"a\": `steps[0].extract[1]`: expected exactly one of",
        "collector \"a\": `metrics[0].observe`: per_element needs a path with a wildcard",
        "collector \"a\": `metrics[0].delta`: only for a counter",
        "collector \"a\": `metrics[0].labels`: \"bad-label\" is not a valid label name",
        "collector \"a\": `metrics[1].name`: \"m\" is defined twice",
        "collector \"a\": `metrics[1].var`: no step extracts a variable \"missing\"",
        "collectors[1]: `name`: required",
        "collectors[1]: `steps`: required",
        "collectors[1]: `metrics`: required",
    ] {
        assert!(all.contains(want), "{want:?} missing in:\n{all}");
    }
}

#[test]
fn the_host_of_a_url_is_literal() {
    let err = parse(
        r#"
[[collectors]]
name = "a"
secrets = { h = { env = "H" } }
[[collectors.steps]]
url = "https://${secret.h}/x"
[[collectors.metrics]]
name = "m"
type = "gauge"
path = "x"
"#,
    )
    .unwrap_err();
    assert!(err[0].contains("literal host"), "{err:?}");
}

#[test]
fn debug_shows_where_secrets_come_from_not_their_values() {
    let c = one(r#"
[[collectors]]
name = "a"
secrets = { t = { env = "API_TOKEN_VAR" } }
[[collectors.steps]]
url = "http://h/x"
headers = { Authorization = "Bearer ${secret.t}" }
[[collectors.metrics]]
name = "m"
type = "gauge"
path = "x"
"#);
    let dbg = format!("{c:?}");
    assert!(
        dbg.contains("API_TOKEN_VAR") && dbg.contains("${secret.t}"),
        "{dbg}"
    );
    assert!(
        format!("{:?}", crate::secret::SecretSource::Env("X".into()).read()).contains("not set")
    );
}

#[test]
fn gauges_and_counters_from_array_elements() {
    let c = with_metrics(
        r#"
[[collectors.metrics]]
name = "open"
help = "Open \\ items."
type = "gauge"
path = "teams[*].open"
labels = { team = "name", region = "$.region" }
static_labels = { env = "prod" }
[[collectors.metrics]]
name = "upstream_total"
type = "counter"
path = "total"
"#,
    );
    let (text, _) = run(
        &c,
        &State::default(),
        json!({"region": "eu", "total": 7, "teams": [{"name": "ops", "open": 2}, {"name": "w\"eb", "open": "3"}]}),
    )
    .unwrap();
    assert_eq!(
        text,
        "# HELP open Open \\\\ items.\n# TYPE open gauge\nopen{region=\"eu\",team=\"ops\",env=\"prod\"} 2\nopen{region=\"eu\",team=\"w\\\"eb\",env=\"prod\"} 3\n# TYPE upstream_total counter\nupstream_total 7\n"
    );
    // Two elements with the same labels: an error, not a broken exposition.
    let e = run(
        &c,
        &State::default(),
        json!({"region": "eu", "total": 7, "teams": [{"name": "ops", "open": 2}, {"name": "ops", "open": 3}]}),
    )
    .unwrap_err();
    assert!(
        e.contains("metric open") && e.contains("team=\"ops\""),
        "{e}"
    );
    // A missing path names the metric and the path; never a silent 0.
    let e = run(&c, &State::default(), json!({"region": "eu", "teams": []})).unwrap_err();
    assert!(
        e.contains("metric upstream_total") && e.contains("no key \"total\""),
        "{e}"
    );
}

#[test]
fn delta_counter_never_goes_down() {
    let c = with_metrics(
        r#"
[[collectors.metrics]]
name = "events_total"
type = "counter"
path = "n"
delta = true
"#,
    );
    let mut st = State::default();
    let mut seen = Vec::new();
    for n in [100, 130, 130, 20, 25] {
        let (text, s) = run(&c, &st, json!({ "n": n })).unwrap();
        st = s;
        seen.push(text.lines().last().unwrap().to_owned());
    }
    assert_eq!(
        seen,
        [
            "events_total 100",
            "events_total 130",
            "events_total 130",
            "events_total 150",
            "events_total 155"
        ]
    );
    // A failed cycle leaves the state alone.
    assert!(run(&c, &st, json!({})).is_err());
    let (text, _) = run(&c, &st, json!({ "n": 30 })).unwrap();
    assert!(text.ends_with("events_total 160\n"), "{text}");
}

#[test]
fn observations_are_counted_once() {
    let c = with_metrics(
        r#"
[[collectors.metrics]]
name = "wait_seconds"
type = "histogram"
buckets = [1, 10]
path = "jobs[*].wait"
id = "id"
[[collectors.metrics]]
name = "size_bytes"
type = "summary"
path = "jobs[*].size"
"#,
    );
    let body =
        json!({"jobs": [{"id": 1, "wait": 0.5, "size": 10}, {"id": 2, "wait": null, "size": 20}]});
    let (text, st) = run(&c, &State::default(), body.clone()).unwrap();
    assert!(text.contains("wait_seconds_bucket{le=\"1\"} 1\nwait_seconds_bucket{le=\"10\"} 1\nwait_seconds_bucket{le=\"+Inf\"} 1\nwait_seconds_sum 0.5\nwait_seconds_count 1\n"), "{text}");
    assert!(
        text.contains("# TYPE size_bytes summary\nsize_bytes_sum 30\nsize_bytes_count 2\n"),
        "{text}"
    );
    // The same response again (a cached one): nothing new.
    let (again, st) = run(&c, &st, body).unwrap();
    assert_eq!(again, text);
    // Job 2 now has its wait; job 3 arrives.
    let (text, _) = run(
        &c,
        &st,
        json!({"jobs": [{"id": 2, "wait": 5, "size": 20}, {"id": 3, "wait": 50, "size": 1}]}),
    )
    .unwrap();
    assert!(text.contains("wait_seconds_bucket{le=\"1\"} 1\nwait_seconds_bucket{le=\"10\"} 2\nwait_seconds_bucket{le=\"+Inf\"} 3\nwait_seconds_sum 55.5\nwait_seconds_count 3\n"), "{text}");
    // Without `id` an element is identified by its content: job 2 changed
    // (its wait), so its size counts again; that is what `id` is for.
    assert!(text.contains("size_bytes_count 4\n"), "{text}");
}

#[test]
fn collectors_file_may_be_yaml_or_json() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("c.yaml");
    std::fs::write(
        &yaml,
        "collectors:\n  - name: yml\n    steps:\n      - url: http://h/x\n    metrics:\n      - name: m\n        type: gauge\n        path: a.b\n",
    )
    .unwrap();
    let json_file = dir.path().join("c.json");
    std::fs::write(
        &json_file,
        r#"{"collectors": [{"name": "j", "steps": [{"url": "http://h/x"}], "metrics": [{"name": "m", "type": "gaug", "path": "a"}]}]}"#,
    )
    .unwrap();
    let c = parse(&format!("collectors_file = \"{}\"\n", yaml.display())).unwrap();
    assert_eq!(c[0].name, "yml");
    let e = parse(&format!("collectors_file = \"{}\"\n", json_file.display())).unwrap_err();
    assert!(
        e[0].contains("collector \"j\": `metrics[0].type`: unknown type \"gaug\""),
        "{e:?}"
    );
    let e = parse("collectors_file = \"/nonexistent/c.yaml\"\n").unwrap_err();
    assert!(e[0].starts_with("`collectors_file`: cannot read"), "{e:?}");
}

#[test]
fn the_committed_examples_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/collectors");
    for f in [
        "vultr.toml",
        "incidents.yaml",
        "portal.toml",
        "victorops.yaml",
    ] {
        let c = parse(&format!(
            "collectors_file = \"{}\"\n",
            dir.join(f).display()
        ))
        .unwrap_or_else(|e| panic!("{f}: {e:?}"));
        assert_eq!(c.len(), 1, "{f}");
    }
}

#[test]
fn state_keeps_only_the_label_sets_of_the_last_response() {
    let c = with_metrics(
        r#"
[[collectors.metrics]]
name = "events_total"
type = "counter"
path = "items[*].n"
labels = { k = "k" }
delta = true
[[collectors.metrics]]
name = "wait_seconds"
type = "summary"
path = "items[*].n"
labels = { k = "k" }
"#,
    );
    let mut st = State::default();
    // A new key every cycle: delta state is per response; observation
    // counts are kept for keys that left, up to the bound.
    let mut most = 0;
    for i in 0..1100 {
        let (text, s) = run(&c, &st, json!({"items": [{"k": format!("k{i}"), "n": 5}]})).unwrap();
        st = s;
        assert_eq!(text.matches("events_total{").count(), 1, "{text}");
        most = most.max(text.matches("wait_seconds_count{").count());
    }
    assert_eq!(most, MAX_OBSERVED_LABEL_SETS);
    // A delta key that comes back restarts from its value (a counter reset).
    let (text, _) = run(&c, &st, json!({"items": [{"k": "k0", "n": 3}]})).unwrap();
    assert!(text.contains("events_total{k=\"k0\"} 3\n"), "{text}");
    // A key that left recently keeps its count.
    let (text, _) = run(&c, &st, json!({"items": []})).unwrap();
    assert!(
        text.contains("wait_seconds_count{k=\"k1099\"} 1\n"),
        "{text}"
    );
}
