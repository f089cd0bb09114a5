//! The web UI's view of the configuration in effect (`ConfigFacts`):
//! built here, where `Config` is known, so that the HTTP layer never reads
//! it. Secrets are reduced to where they are read from; header values and
//! URL passwords are replaced.

use serde_json::{json, Value};

use super::Config;
use crate::http::ui::{ConfigFacts, SinkFacts};
use crate::ingest::config::Endpoint;
use crate::secret::SecretSource;

impl Config {
    /// What the web UI shows of this configuration.
    pub fn ui_facts(&self) -> ConfigFacts {
        let mut planned = std::collections::BTreeMap::new();
        let names = self
            .poll
            .targets
            .iter()
            .map(|t| t.name.clone())
            .chain(self.collectors.iter().map(|k| k.name.clone()))
            .chain(self.providers.iter().flat_map(|p| {
                p.ssp
                    .identifiers
                    .iter()
                    .map(|i| crate::providers::job::app_name(&i.provider, &i.identifier))
            }));
        for name in names {
            if let Some(p) = planned_for(self, &name) {
                planned.insert(name, p);
            }
        }
        ConfigFacts {
            view: config_view(self),
            listeners: listeners(self),
            planned,
            sinks: self
                .sinks
                .iter()
                .map(|k| SinkFacts {
                    name: k.name.clone(),
                    queue_capacity: k.queue_capacity,
                })
                .collect(),
            snapshot_file: self
                .persistence
                .as_ref()
                .map(|p| p.file.display().to_string()),
        }
    }
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
fn config_view(c: &Config) -> Value {
    let targets: Vec<Value> = c
        .poll
        .targets
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "url": crate::http::ui::redact_url(&t.url),
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
                "url": crate::http::ui::redact_url(url),
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
            "pack_above_series": c.limits.pack_above_series,
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
            "source": crate::http::ui::redact_url(&k.source()),
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

/// The configured interval and URL of a polled target, collector or
/// provider identifier named `app`.
fn planned_for(c: &Config, app: &str) -> Option<crate::http::ui::app::Planned> {
    if let Some(t) = c.poll.targets.iter().find(|t| t.name == app) {
        return Some(crate::http::ui::app::Planned {
            url: Some(t.url.clone()),
            interval: t.interval,
            timeout: Some(t.timeout),
        });
    }
    if let Some(k) = c.collectors.iter().find(|k| k.name == app) {
        return Some(crate::http::ui::app::Planned {
            url: Some(k.source()),
            interval: k.interval,
            timeout: Some(k.timeout),
        });
    }
    let p = c.providers.as_ref()?;
    let id = p
        .ssp
        .identifiers
        .iter()
        .find(|i| crate::providers::job::app_name(&i.provider, &i.identifier) == app)?;
    Some(crate::http::ui::app::Planned {
        url: id.base_url.clone(),
        interval: id.poll_interval,
        timeout: Some(p.timeout),
    })
}
