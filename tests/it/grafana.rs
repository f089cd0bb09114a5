//! The Grafana dashboard in `grafana/`: every query names only metrics the
//! proxy exports, and the balance panels map every sentinel code.

use crate::portals::Portal;
use crate::support::*;

const DASHBOARD: &str = include_str!("../../grafana/ssp-balances.json");

/// Keywords, modifiers and aggregation operators of PromQL that look like
/// names (an aggregation may be followed by `by (...)` instead of `(`).
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

/// The metric names a PromQL expression selects: identifiers outside
/// `{...}`, `[...]` and strings that are neither functions (followed by
/// `(`) nor keywords, nor the label list after `by`/`without`/`on`/`ignoring`.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut skip_group = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' | '[' | '"' => {
                let close = match c {
                    '{' => '}',
                    '[' => ']',
                    _ => '"',
                };
                i += 1;
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                i += 1;
            }
            '(' if skip_group => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_group = false;
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j] == ' ' {
                    j += 1;
                }
                let is_call = j < chars.len() && chars[j] == '(';
                if [
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                ]
                .contains(&word.as_str())
                {
                    skip_group = true;
                } else if !is_call && !KEYWORDS.contains(&word.as_str()) {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn the_name_extraction_understands_promql() {
    assert_eq!(
        metric_names(r#"sum by (reason) (rate(foo_total{a="b c"}[5m])) and on (x) bar == 1"#),
        vec!["foo_total", "bar"]
    );
}

fn all_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("definition", serde_json::Value::String(s)) => {
                        // label_values(metric, label): the metric only.
                        let inner = s
                            .trim_start_matches("label_values(")
                            .split(',')
                            .next()
                            .unwrap();
                        out.push(inner.to_owned());
                    }
                    _ => all_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| all_exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_names_an_exported_metric() {
    let dash: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    let mut exprs = Vec::new();
    all_exprs(&dash, &mut exprs);
    assert!(exprs.len() >= 8, "{exprs:?}");

    let portal = Portal::start("Vultr").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ssp.yaml");
    std::fs::write(
        &file,
        format!(
            "service: {{messages: {{init: -1000000, disabled: -1000001}}, user_agents: []}}\nidentifiers:\n  Vultr:\n    - {{identifier: a, password: \"ok:1\", base_url: \"{}\"}}\n",
            portal.base()
        ),
    )
    .unwrap();
    let app = TestApp::with_config(&format!(
        "[providers]\nconfig_file = \"{}\"\n",
        file.display()
    ))
    .await;
    let body = app.metrics().await;
    let exported: std::collections::BTreeSet<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "no metric in {e:?}");
        for n in names {
            assert!(
                exported.contains(n.as_str()),
                "{n} (in {e:?}) is not exported: {exported:?}"
            );
        }
    }
    // Every sentinel code has a value mapping on the balance stat panel.
    let stat = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Balance")
        .unwrap();
    let options = &stat["fieldConfig"]["defaults"]["mappings"][0]["options"];
    for code in -1000007..=-1000000 {
        assert!(
            options.get(code.to_string()).is_some(),
            "no mapping for {code}"
        );
    }
    // A datasource variable.
    assert!(dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["type"] == "datasource"));
    app.stop().await;
}
