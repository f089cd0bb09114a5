//! The aggregator seed's registration endpoint (`[poll.register.compat]`):
//! its exporters' cron client POSTs `{"uuid", "ip_addr", "timestamp"}` to
//! `/api/post` every minute and expects 200 with the body echoed. Each POST
//! becomes a registration (an upsert, so a heartbeat) of the target
//! `<scheme>://<ip_addr>:<port><metrics_path>` with id `uuid`, going
//! through the same checks as `POST /register` (allowed networks, token,
//! limits), and optionally naming a JSON mapping: the seed's exporters serve
//! JSON (`cpu`, `ram`, `disk`, `throughput.bytes_sent`, ...).
//!
//! The path, scheme, port and metrics path are configured, as the seed
//! scrapes every exporter on one configured port.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::register::{Registrar, MAX_REQUEST_BYTES};
use crate::collect::mapping::{self, JsonMapping};

/// Paths the compatibility endpoint may not take (the router's own).
const RESERVED: [&str; 4] = ["/", "/metrics", "/apps", "/register"];

/// `[poll.register.compat]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompatConfig {
    /// Where the seed's client POSTs (default `/api/post`).
    pub path: String,
    /// Scheme of the registered targets (default `http`).
    pub scheme: String,
    /// Port of every registered target (the seed's `port`, default 8081).
    pub port: u16,
    /// Path polled on the targets (default `/metrics`).
    pub metrics_path: String,
    /// Mapping for the targets' JSON bodies; `None`: Prometheus text.
    pub mapping: Option<Arc<JsonMapping>>,
    /// Poll interval; `None`: `default_interval`.
    pub interval: Option<Duration>,
    /// Expiry after the last POST; `None`: `default_ttl`.
    pub ttl: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompat {
    #[serde(default = "default_true")]
    enabled: bool,
    path: Option<String>,
    scheme: Option<String>,
    port: Option<u16>,
    metrics_path: Option<String>,
    mapping: Option<String>,
    interval: Option<String>,
    ttl: Option<String>,
}

fn default_true() -> bool {
    true
}

impl CompatConfig {
    /// Parses `poll.register.compat`; problems name the key.
    pub fn from_config(
        v: Option<&toml::Value>,
        mappings: &[Arc<JsonMapping>],
        problems: &mut Vec<String>,
    ) -> Option<CompatConfig> {
        let v = v?;
        let key = |k: &str| format!("`poll.register.compat.{k}`");
        let raw: RawCompat = match v.clone().try_into() {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("`poll.register.compat`: {}", e.to_string().trim()));
                return None;
            }
        };
        let n = problems.len();
        let path = raw.path.unwrap_or_else(|| "/api/post".to_owned());
        if !path.starts_with('/')
            || path.contains(['{', '}', '*', '?', '#'])
            || RESERVED.contains(&path.as_str())
            || ["/metrics/", "/register/", "/-/"]
                .iter()
                .any(|p| path.starts_with(p))
        {
            problems.push(format!(
                "{}: expected an absolute path other than the proxy's own endpoints, found {path:?}",
                key("path")
            ));
        }
        let scheme = raw.scheme.unwrap_or_else(|| "http".to_owned());
        if scheme != "http" && scheme != "https" {
            problems.push(format!("{}: expected \"http\" or \"https\"", key("scheme")));
        }
        let metrics_path = raw.metrics_path.unwrap_or_else(|| "/metrics".to_owned());
        if !metrics_path.starts_with('/') {
            problems.push(format!(
                "{}: expected an absolute path",
                key("metrics_path")
            ));
        }
        let mapping = raw.mapping.and_then(|m| {
            mapping::find(mappings, &m)
                .map_err(|e| problems.push(format!("{}: {e}", key("mapping"))))
                .ok()
        });
        let mut duration = |k: &str, v: Option<String>| {
            v.and_then(|s| {
                humantime::parse_duration(&s)
                    .map_err(|e| problems.push(format!("{}: {s:?}: {e}", key(k))))
                    .ok()
            })
        };
        let interval = duration("interval", raw.interval);
        let ttl = duration("ttl", raw.ttl);
        (raw.enabled && problems.len() == n).then_some(CompatConfig {
            path,
            scheme,
            port: raw.port.unwrap_or(8081),
            metrics_path,
            mapping,
            interval,
            ttl,
        })
    }

    /// The `POST /register` document for a seed request, or why not.
    pub fn registration(&self, body: &[u8]) -> Result<(Value, Value), String> {
        let doc: Value = serde_json::from_slice(body)
            .map_err(|e| format!("invalid registration document: {e}"))?;
        let obj = doc
            .as_object()
            .ok_or("expected a JSON object {\"uuid\", \"ip_addr\", \"timestamp\"}")?;
        if let Some(k) = obj
            .keys()
            .find(|k| !["uuid", "ip_addr", "timestamp"].contains(&k.as_str()))
        {
            return Err(format!(
                "unknown key {k:?}: expected uuid, ip_addr and timestamp"
            ));
        }
        let text = |k: &str| {
            obj.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("`{k}`: required, a string"))
        };
        let uuid = text("uuid")?;
        let ip: IpAddr = text("ip_addr")?
            .parse()
            .map_err(|_| "`ip_addr`: expected an IP address".to_owned())?;
        let mut reg = Map::new();
        reg.insert("id".into(), json!(uuid));
        reg.insert("address".into(), json!(ip.to_string()));
        reg.insert("port".into(), json!(self.port));
        reg.insert("scheme".into(), json!(self.scheme));
        reg.insert("path".into(), json!(self.metrics_path));
        if let Some(i) = self.interval {
            reg.insert("interval".into(), json!(i.as_secs_f64()));
        }
        if let Some(t) = self.ttl {
            reg.insert("ttl".into(), json!(t.as_secs_f64()));
        }
        if let Some(m) = &self.mapping {
            reg.insert("mapping".into(), json!(m.name));
        }
        Ok((Value::Object(reg), doc))
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

/// `POST <compat.path>`: 200 echoing the body, as the seed's aggregator.
pub async fn handle(registrar: Option<Arc<Registrar>>, req: Request) -> Response {
    let Some(registrar) = registrar else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"ok": false, "error": "self-registration is disabled"}),
        );
    };
    let Some(compat) = registrar.compat().cloned() else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"ok": false, "error": "the compatibility endpoint is disabled"}),
        );
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let auth = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = axum::body::to_bytes(req.into_body(), MAX_REQUEST_BYTES).await else {
        return json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &json!({"ok": false, "error": format!("registration documents are limited to {MAX_REQUEST_BYTES} bytes")}),
        );
    };
    let (reg, echo) = match compat.registration(&body) {
        Ok(r) => r,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &json!({"ok": false, "error": e})),
    };
    let (status, v) = registrar
        .register(peer, auth.as_deref(), reg.to_string().as_bytes())
        .await;
    if status.is_success() {
        json_response(StatusCode::OK, &echo)
    } else {
        json_response(status, &v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<Option<CompatConfig>, Vec<String>> {
        let v: toml::Value = toml::from_str(toml_text).unwrap();
        let mut problems = Vec::new();
        let c = CompatConfig::from_config(v.get("compat"), &[], &mut problems);
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(problems)
        }
    }

    #[test]
    fn seed_requests_become_registrations() {
        let c = parse("[compat]\nport = 9100\n").unwrap().unwrap();
        assert_eq!(c.path, "/api/post");
        let body = br#"{"uuid": "4b9c-1", "ip_addr": "10.0.0.7", "timestamp": "2024-07-08 10:00:00.123456"}"#;
        let (reg, echo) = c.registration(body).unwrap();
        assert_eq!(
            reg,
            json!({"id": "4b9c-1", "address": "10.0.0.7", "port": 9100, "scheme": "http", "path": "/metrics"})
        );
        assert_eq!(echo["timestamp"], "2024-07-08 10:00:00.123456");
        for (bad, want) in [
            (&br#"{"uuid": "a"}"#[..], "`ip_addr`: required"),
            (
                br#"{"uuid": "a", "ip_addr": "host.example"}"#,
                "expected an IP address",
            ),
            (
                br#"{"uuid": "a", "ip_addr": "10.0.0.1", "x": 1}"#,
                "unknown key \"x\"",
            ),
            (b"[1]", "expected a JSON object"),
        ] {
            let e = c.registration(bad).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        let e =
            parse("[compat]\npath = \"/metrics\"\nmapping = \"nope\"\nbogus = 1\n").unwrap_err();
        assert!(e[0].contains("unknown field `bogus`"), "{e:?}");
        let e = parse("[compat]\npath = \"/metrics\"\nmapping = \"nope\"\n").unwrap_err();
        assert!(
            e.iter().any(|p| p.contains("`poll.register.compat.path`")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|p| p.contains("no mapping is named \"nope\"")),
            "{e:?}"
        );
        assert_eq!(parse("[compat]\nenabled = false\n"), Ok(None));
    }
}
