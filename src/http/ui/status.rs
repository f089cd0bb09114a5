//! The status page: build, uptime, store size, listeners and limits, the
//! effective configuration (secrets left out: only where they are read
//! from is named, header values and URL passwords are replaced), snapshot,
//! reload and sink state. The same facts are served as JSON for scripts.

use chrono::{SecondsFormat, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{esc, facts_html, page, redact_url};
use crate::config::Config;
use crate::http::HttpState;
use crate::ingest::config::Endpoint;
use crate::secret::SecretSource;

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

fn secret(s: &SecretSource) -> Value {
    match s {
        SecretSource::File(p) => json!({"file": p.display().to_string()}),
        SecretSource::Env(v) => json!({"env": v}),
    }
}

fn secret_spec(s: &crate::collect::secret::SecretSpec) -> Value {
    match s {
        crate::collect::secret::SecretSpec::Whole(s) => secret(s),
        crate::collect::secret::SecretSpec::Key { file, key } => {
            json!({"file": file.display().to_string(), "key": key})
        }
    }
}

fn dur(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The listeners with their limits.
fn listeners(c: &Config) -> Vec<Value> {
    let mut out = vec![json!({
        "name": "http",
        "address": c.http_listen.to_string(),
        "web_config_file": c.web_config_file.as_ref().map(|p| p.display().to_string()),
    })];
    for r in &c.receivers {
        let address = match &r.endpoint {
            Endpoint::Tcp(a) => a.to_string(),
            Endpoint::Unix(u) => format!("unix:{}", u.path.display()),
        };
        out.push(json!({
            "name": r.name,
            "address": address,
            "format": r.format.as_str(),
            "max_connections": r.max_connections,
            "ttl": r.ttl.map(|t| t.describe()),
        }));
    }
    if let Some(r) = &c.rpc {
        out.push(json!({
            "name": "rpc",
            "address": r.listen.to_string(),
            "format": "capnp-rpc",
            "max_connections": r.max_connections,
            "ttl": r.ttl.map(|t| t.describe()),
        }));
    }
    out
}

/// The effective configuration, with secrets reduced to where they are
/// read from and header values left out.
pub fn config_view(c: &Config) -> Value {
    let targets: Vec<Value> = c
        .poll
        .targets
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "url": redact_url(&t.url),
                "interval": dur(t.interval),
                "timeout": dur(t.timeout),
                "headers": t.headers.iter().map(|(k, _)| format!("{k}: ***")).collect::<Vec<_>>(),
                "auth": match &t.auth {
                    None => Value::Null,
                    Some(crate::poll::config::Auth::Bearer(s)) => json!({"bearer": secret(s)}),
                    Some(crate::poll::config::Auth::Basic { username, password }) =>
                        json!({"basic": {"username": username, "password": secret(password)}}),
                },
                "ca_file": t.ca_file.as_ref().map(|p| p.display().to_string()),
                "insecure_skip_verify": t.insecure_skip_verify,
                "max_body_bytes": t.max_body_bytes,
                "stale_after": dur(t.stale_after),
            })
        })
        .collect();
    let sinks: Vec<Value> = c
        .sinks
        .iter()
        .map(|s| {
            let (kind, url, secret_from) = match &s.kind {
                crate::sinks::SinkKind::RemoteWrite { url, bearer_token } => {
                    ("remote_write", url, bearer_token.as_ref().map(secret))
                }
                crate::sinks::SinkKind::Influx { url, token, .. } => {
                    ("influx", url, token.as_ref().map(secret))
                }
            };
            json!({
                "name": s.name,
                "kind": kind,
                "url": redact_url(url),
                "token": secret_from,
                "interval": dur(s.interval),
                "timeout": dur(s.timeout),
                "queue_capacity": s.queue_capacity,
                "max_retries": s.max_retries,
            })
        })
        .collect();
    json!({
        "worker_threads": c.worker_threads,
        "app_label": c.app_label,
        "limits": {
            "max_push_bytes": c.limits.max_push_bytes,
            "max_series_per_app": c.limits.max_series_per_app,
            "max_apps": c.limits.max_apps,
            "read_timeout": dur(c.limits.read_timeout),
            "idle_timeout": dur(c.limits.idle_timeout),
        },
        "shutdown_grace": dur(c.shutdown_grace),
        "default_ttl": c.default_ttl.describe(),
        "expiry_interval": dur(c.expiry_interval),
        "push_api": {"enabled": c.push_api, "ttl": c.push_api_ttl.map(|t| t.describe())},
        "allowed_networks": c.allowed_networks.as_ref().map(|n| format!("{n:?}")),
        "persistence": c.persistence.as_ref().map(|p| json!({
            "file": p.file.display().to_string(),
            "interval": dur(p.interval),
        })),
        "poll": {
            "max_concurrent": c.poll.max_concurrent,
            "targets": targets,
            "register": c.poll.register.as_ref().map(|r| json!({
                "allowed_networks": r.allowed_networks.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "token": r.token.as_ref().map(secret),
                "max_registrations": r.max_registrations,
            })),
        },
        "collectors": c.collectors.iter().map(|k| json!({
            "name": k.name,
            "source": redact_url(&k.source()),
            "interval": dur(k.interval),
            "timeout": dur(k.timeout),
            "secrets": k.secrets.iter().map(|(n, s)| json!({"name": n, "from": secret_spec(s)})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "providers": c.providers.as_ref().map(|p| json!({
            "file": p.file.display().to_string(),
            "timeout": dur(p.timeout),
            "max_concurrent": p.max_concurrent,
            "identifiers": p.ssp.identifiers.len(),
        })),
        "sinks": sinks,
    })
}

/// Every fact of the page, as JSON.
pub fn facts(s: &HttpState) -> Value {
    let (apps, series) = s.store.counts();
    let f = s.store.metrics().status_facts();
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
        "store": {"apps": apps, "series": series, "generation": s.store.generation(), "expired_total": f.expired},
        "reload": {
            "available": s.reload.is_some(),
            "last_ok": f.reload_ok,
            "last_success": when(f.reload_success),
        },
        "snapshot": {
            "file": config.as_ref().and_then(|c| c.persistence.as_ref()).map(|p| p.file.display().to_string()),
            "last_written": when(f.snapshot_last_success),
            "write_failures": f.snapshot_failures,
            "restore_failures": f.snapshot_restore_failures,
        },
        "sinks": sinks,
        "open_connections": f.open_connections.iter().map(|(l, n)| json!({"listener": l, "open": n})).collect::<Vec<_>>(),
        "refusals": f.rejections.iter().map(|(r, n)| json!({"reason": r, "count": n})).collect::<Vec<_>>(),
        "listeners": config.as_deref().map(listeners).unwrap_or_default(),
        "config": config.as_deref().map_or(Value::Null, config_view),
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
