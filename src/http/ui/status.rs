//! The status page: build, uptime, store size, listeners and limits, the
//! effective configuration (secrets left out: only where they are read
//! from is named, header values and URL passwords are replaced), snapshot,
//! reload and sink state. The same facts are served as JSON for scripts.

use chrono::{SecondsFormat, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{esc, facts_html, page};
use crate::http::HttpState;

/// `?format=json` or `?format=html`.
#[derive(Debug, Default, Deserialize)]
pub struct Format {
    /// `json` or `html`.
    pub format: Option<String>,
}

fn when(secs: Option<f64>) -> Value {
    secs.and_then(|s| Utc.timestamp_millis_opt((s * 1000.0) as i64).single())
        .map_or(Value::Null, |t| {
            Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true))
        })
}

/// Every fact of the page, as JSON.
pub fn facts(s: &HttpState) -> Value {
    let (apps, series) = s.store.counts();
    let f = s.store.self_metrics().status_facts();
    let config = s.ui.config();
    let sinks: Vec<Value> = config
        .as_ref()
        .map(|c| {
            c.sinks
                .iter()
                .map(|k| {
                    let count = |o: &str| {
                        f.sinks
                            .iter()
                            .find(|(n, out, _)| *n == k.name && *out == o)
                            .map_or(0, |x| x.2)
                    };
                    let queued = f
                        .sink_queues
                        .iter()
                        .find(|(n, _)| *n == k.name)
                        .map_or(0, |x| x.1);
                    json!({
                        "name": k.name,
                        "queued_bodies": queued,
                        "queue_capacity": k.queue_capacity,
                        "samples_sent": count("sent"),
                        "samples_failed": count("failed"),
                        "samples_dropped": count("dropped"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": env!("EXPORTER_PROXY_REVISION"),
        "started": s.ui.started().to_rfc3339_opts(SecondsFormat::Millis, true),
        "uptime_seconds": s.ui.uptime().as_secs(),
        "ready": s.ready.load(std::sync::atomic::Ordering::Acquire),
        "admin_api": s.admin_api,
        "push_api": s.push_api.is_some(),
        "store": {"apps": apps, "series": series, "generation": s.store.generation(), "expired_total": f.expired, "renders_total": s.store.self_metrics().renders()},
        "ui": {"apps_copies_total": s.ui.copies()},
        "reload": {
            "available": s.reload.is_some(),
            "last_ok": f.reload_ok,
            "last_success": when(f.reload_success),
        },
        "snapshot": {
            "file": config.as_ref().and_then(|c| c.snapshot_file.clone()),
            "last_written": when(f.snapshot_last_success),
            "write_failures": f.snapshot_failures,
            "restore_failures": f.snapshot_restore_failures,
        },
        "sinks": sinks,
        "open_connections": f.open_connections.iter().map(|(l, n)| json!({"listener": l, "open": n})).collect::<Vec<_>>(),
        "refusals": f.rejections.iter().map(|(r, n)| json!({"reason": r, "count": n})).collect::<Vec<_>>(),
        "listeners": config.as_ref().map(|c| c.listeners.clone()).unwrap_or_default(),
        "config": config.as_ref().map_or(Value::Null, |c| c.view.clone()),
    })
}

/// A JSON scalar as text for a cell.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "<span class=\"muted\">–</span>".to_owned(),
        Value::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

/// A table of an array of flat objects.
fn table(id: &str, rows: &Value) -> String {
    let Some(rows) = rows.as_array().filter(|r| !r.is_empty()) else {
        return "<p class=\"muted\">none</p>".to_owned();
    };
    // Every key of every row, in first-seen order (rows may differ).
    let mut keys: Vec<&String> = Vec::new();
    for k in rows
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|o| o.keys())
    {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut s = format!("<div class=\"scroll\"><table id=\"{id}\"><thead><tr>");
    for k in &keys {
        s.push_str(&format!("<th>{}</th>", esc(k)));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for k in &keys {
            s.push_str(&format!("<td>{}</td>", cell(&r[k.as_str()])));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");
    s
}

/// The page for `facts` (from [`facts`]).
pub fn render(f: &Value) -> String {
    let up = std::time::Duration::from_secs(f["uptime_seconds"].as_u64().unwrap_or(0));
    let build = facts_html(&[
        ("Version", cell(&f["version"])),
        ("Revision", cell(&f["revision"])),
        ("Started", cell(&f["started"])),
        ("Uptime", esc(&super::short(up))),
        ("Ready", cell(&f["ready"])),
        ("Push API", cell(&f["push_api"])),
        ("Admin API", cell(&f["admin_api"])),
        ("Apps", cell(&f["store"]["apps"])),
        ("Series", cell(&f["store"]["series"])),
        ("Apps expired", cell(&f["store"]["expired_total"])),
    ]);
    let state = facts_html(&[
        ("Reload available", cell(&f["reload"]["available"])),
        ("Last reload succeeded", cell(&f["reload"]["last_ok"])),
        ("Last successful reload", cell(&f["reload"]["last_success"])),
        ("Snapshot file", cell(&f["snapshot"]["file"])),
        (
            "Last snapshot written",
            cell(&f["snapshot"]["last_written"]),
        ),
        (
            "Snapshot write failures",
            cell(&f["snapshot"]["write_failures"]),
        ),
        (
            "Snapshot restore failures",
            cell(&f["snapshot"]["restore_failures"]),
        ),
    ]);
    let config = serde_json::to_string_pretty(&f["config"]).unwrap_or_default();
    let body = format!(
        "<h1>Status</h1>\n<p class=\"muted\"><a href=\"status?format=json\">as JSON</a></p>\n<h2>Build and runtime</h2>\n{build}\n<h2>Listeners and limits</h2>\n{listeners}\n{limits}\n<h2>Reload and snapshot</h2>\n{state}\n<h2>Sinks</h2>\n{sinks}\n<h2>Connections</h2>\n{conns}\n<h2>Refused pushes by reason</h2>\n{refusals}\n<h2>Configuration</h2>\n<p class=\"muted\">As in effect; secrets show only where they are read from.</p>\n<pre id=\"config\">{config}</pre>\n",
        listeners = table("listeners", &f["listeners"]),
        limits = match &f["config"]["limits"] {
            Value::Null => String::new(),
            v => table("limits", &json!([v])),
        },
        sinks = table("sinks", &f["sinks"]),
        conns = table("connections", &f["open_connections"]),
        refusals = table("refusals", &f["refusals"]),
        config = esc(&config),
    );
    page("exporter-proxy: status", "./", None, &body)
}
