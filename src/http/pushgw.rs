//! The Pushgateway-compatible push API on the HTTP port.
//!
//! `PUT`, `POST` and `DELETE` on `/metrics/job/<job>{/<label>/<value>}`, as
//! the Prometheus Pushgateway defines them, so its client libraries work
//! unchanged:
//!
//! * a grouping key (job plus path labels, `@base64` values allowed) is one
//!   app in our store, named like `{job="x",instance="y"}`, of kind
//!   `pushgateway`; its labels are set on every pushed series, and
//!   `instance=""` is added to series without an instance when the key has
//!   none;
//! * `PUT` replaces the group, `POST` replaces only the families in the
//!   body, `DELETE` removes the group (202, also when it does not exist;
//!   an app of another kind with that name is left alone);
//! * `PUT`/`POST` only from `[push_api] allowed_networks` (default
//!   loopback), `DELETE` only with the admin API enabled (see
//!   [`super::gates`]); the body is read within `limits.read_timeout`;
//! * bodies are text format 0.0.4, or delimited protobuf
//!   (`application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
//!   encoding=delimited`, what Go's `client_golang` sends by default, with
//!   native histograms and exemplars: [`crate::store::Store::prepare_protobuf`]),
//!   plain or `Content-Encoding: gzip`;
//! * each group has `push_time_seconds` and `push_failure_time_seconds`;
//! * an invalid body gets 400 with the reason and changes nothing but the
//!   group's `push_failure_time_seconds`.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tracing::{info, warn};

use super::HttpState;
use crate::exposition;
use crate::netacl::AllowedNetworks;
use crate::store::{AppKind, PrepareOptions, PushError, Ttl};
use crate::telemetry::RejectReason;

/// Label name of the job in a grouping key.
const JOB: &str = "job";
/// Listener name in self-metrics.
const LISTENER: &str = "http";

/// State of the push API: when each existing group last failed (for
/// `push_failure_time_seconds`, which survives replacing pushes).
#[derive(Debug)]
pub struct PushApi {
    /// Only groups present in the store get an entry; entries of groups
    /// that went away (expired) are pruned once the map outgrows the store.
    failures: Mutex<HashMap<String, f64>>,
    ttl: Option<Ttl>,
    networks: AllowedNetworks,
    body_timeout: Duration,
}

impl PushApi {
    /// A push API whose groups get `ttl` (`None`: the store's default),
    /// open to loopback peers, reading bodies within the default read timeout.
    pub fn new(ttl: Option<Ttl>) -> Self {
        PushApi::with_gates(
            ttl,
            super::gates::Gates::loopback(),
            crate::ingest::config::DEFAULT_READ_TIMEOUT,
        )
    }

    /// Peers allowed to write through the push API.
    pub fn networks(&self) -> &AllowedNetworks {
        &self.networks
    }

    /// A push API open to `networks`, reading a body within `body_timeout`.
    pub fn with_gates(ttl: Option<Ttl>, networks: AllowedNetworks, body_timeout: Duration) -> Self {
        PushApi {
            failures: Mutex::default(),
            ttl,
            networks,
            body_timeout,
        }
    }

    /// Entries of the failure map (for tests and self-checks).
    pub fn failure_entries(&self) -> usize {
        lock(&self.failures).len()
    }

    /// Notes a failure of the existing group `app`; drops the entries of
    /// groups gone from the store when the map outgrows it.
    fn record_failure(&self, store: &crate::store::Store, app: &str, now: f64) {
        let mut failures = lock(&self.failures);
        failures.insert(app.to_owned(), now);
        let (apps, _) = store.counts();
        if failures.len() > apps + FAILURE_MAP_SLACK {
            let live: std::collections::HashSet<String> = store
                .apps()
                .into_iter()
                .filter(|a| a.kind == AppKind::Gateway)
                .map(|a| a.name)
                .collect();
            failures.retain(|k, _| live.contains(k));
        }
    }
}

/// Entries the failure map may hold beyond the store's app count before it
/// is pruned (amortises the pruning's walk over the apps).
const FAILURE_MAP_SLACK: usize = 64;

/// A parsed grouping key: `job` first, then the path labels in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupingKey(pub Vec<(String, String)>);

impl GroupingKey {
    /// The app name: `{job="x",a="b"}` with the other labels sorted by name.
    pub fn app_name(&self) -> String {
        let mut labels: Vec<&(String, String)> = self.0.iter().collect();
        labels.sort_by(|a, b| (a.0 != JOB, &a.0).cmp(&(b.0 != JOB, &b.0)));
        let mut out = Vec::new();
        out.push(b'{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"=\"");
            exposition::escape_label_value(&mut out, v);
            out.push(b'"');
        }
        out.push(b'}');
        String::from_utf8(out).expect("escaping keeps UTF-8")
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// Most labels in a grouping key. Every pushed series carries them, and
/// the push path checks each series' labels against them: a bound keeps a
/// push linear in its size. Real keys have a handful (job, instance, ...).
pub const MAX_GROUPING_LABELS: usize = 64;

/// Parses the part of the path after `/metrics/`, e.g. `job/x/instance/y`.
pub fn parse_grouping_path(rest: &str) -> Result<GroupingKey, String> {
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.len() > 2 * MAX_GROUPING_LABELS {
        return Err(format!(
            "the grouping key has {} labels: at most {MAX_GROUPING_LABELS} (job included)",
            segments.len() / 2
        ));
    }
    if !segments.len().is_multiple_of(2) {
        return Err(format!(
            "grouping key path {rest:?} has an odd number of segments; expected job/<job>{{/<label>/<value>}}"
        ));
    }
    let mut labels: Vec<(String, String)> = Vec::with_capacity(segments.len() / 2);
    // A hash per name keeps a path of thousands of labels linear.
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for pair in segments.chunks(2) {
        let raw_name = percent_decode(pair[0])?;
        let (name, b64) = match raw_name.strip_suffix("@base64") {
            Some(n) => (n.to_owned(), true),
            None => (raw_name, false),
        };
        let value = if b64 {
            decode_base64(pair[1]).map_err(|e| format!("label {name}: {e}"))?
        } else {
            percent_decode(pair[1])?
        };
        if !exposition::is_valid_label_name(&name) || name.starts_with("__") {
            return Err(format!("invalid label name {name:?} in the grouping key"));
        }
        if !seen.insert(name.clone()) {
            return Err(format!("label {name} appears twice in the grouping key"));
        }
        labels.push((name, value));
    }
    match labels.first() {
        Some((k, v)) if k == JOB && !v.is_empty() => Ok(GroupingKey(labels)),
        Some((k, _)) if k == JOB => Err("the job name must not be empty".to_owned()),
        _ => Err("the grouping key must start with job/<job>".to_owned()),
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoding in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} does not decode to UTF-8"))
}

fn decode_base64(s: &str) -> Result<String, String> {
    // `=` alone encodes the empty value (a `//` would be collapsed).
    let trimmed = s.trim_end_matches('=');
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::general_purpose::NO_PAD,
    );
    let bytes = engine
        .decode(trimmed)
        .map_err(|e| format!("invalid URL-safe base64 {s:?}: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("base64 value {s:?} is not UTF-8"))
}

fn now_seconds() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    m.push('\n');
    (status, m).into_response()
}

/// A decoded push body.
enum PushBody {
    /// Text format 0.0.4.
    Text(String),
    /// Delimited protobuf, not yet decoded.
    Protobuf(Vec<u8>),
}

impl PushBody {
    /// The format label of the self-metrics.
    fn format(&self) -> &'static str {
        match self {
            PushBody::Text(_) => "text",
            PushBody::Protobuf(_) => "protobuf",
        }
    }
}

/// Whether the body is delimited protobuf (`Ok(true)`), text (`Ok(false)`),
/// or a protobuf we do not take.
fn is_protobuf(headers: &HeaderMap) -> Result<bool, (StatusCode, String)> {
    let ctype = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = ctype.split(';').map(str::trim);
    let media = parts.next().unwrap_or("").to_ascii_lowercase();
    if media == "application/x-protobuf" {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this looks like a remote-write request: this endpoint takes the text format or delimited MetricFamily protobuf"
                .to_owned(),
        ));
    }
    if media != "application/vnd.google.protobuf" {
        return Ok(false);
    }
    let mut proto = None;
    let mut encoding = None;
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            match k.trim().to_ascii_lowercase().as_str() {
                "proto" => proto = Some(v.trim().trim_matches('"').to_owned()),
                "encoding" => encoding = Some(v.trim().trim_matches('"').to_owned()),
                _ => {}
            }
        }
    }
    if proto.as_deref() != Some("io.prometheus.client.MetricFamily")
        || encoding.as_deref() != Some("delimited")
    {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported protobuf body {ctype:?}: expected proto=io.prometheus.client.MetricFamily; encoding=delimited"
            ),
        ));
    }
    Ok(true)
}

/// Decodes the request body: gzip when announced, bounded to `limit` bytes.
fn push_body(
    headers: &HeaderMap,
    body: &Bytes,
    limit: usize,
) -> Result<PushBody, (StatusCode, String)> {
    let protobuf = is_protobuf(headers)?;
    let encoding = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let bytes: Vec<u8> = match encoding.as_str() {
        "" | "identity" => body.to_vec(),
        "gzip" => {
            let mut out = Vec::new();
            let mut dec = flate2::read::GzDecoder::new(&body[..]).take(limit as u64 + 1);
            dec.read_to_end(&mut out)
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid gzip body: {e}")))?;
            if out.len() > limit {
                return Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("decompressed body exceeds the limit of {limit} bytes"),
                ));
            }
            out
        }
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Encoding {other:?}: use gzip or none"),
            ))
        }
    };
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err((
            StatusCode::BAD_REQUEST,
            "the body is gzip-compressed but has no Content-Encoding: gzip header".to_owned(),
        ));
    }
    if protobuf {
        return Ok(PushBody::Protobuf(bytes));
    }
    String::from_utf8(bytes).map(PushBody::Text).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!(
                "invalid UTF-8 at byte offset {}",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Handles `PUT`/`POST`/`DELETE /metrics/job/...`.
pub async fn handle(State(s): State<HttpState>, req: Request) -> Response {
    let Some(api) = s.push_api.clone() else {
        return error(
            StatusCode::FORBIDDEN,
            "the push API is disabled (set `push_api.enabled = true`)",
        );
    };
    let peer_addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let peer = peer_addr.map_or_else(|| "http".to_owned(), |a| format!("http {a}"));
    let method = req.method().clone();
    if method == Method::DELETE {
        if !s.admin_api {
            return super::gates::admin_disabled();
        }
    } else if let Err(refusal) =
        super::gates::check_push_peer(&api.networks, peer_addr.map(|a| a.ip()))
    {
        s.store
            .self_metrics()
            .count_rejection(RejectReason::NetworkNotAllowed);
        warn!(peer = %peer, "http push refused: peer outside push_api.allowed_networks");
        return error(StatusCode::FORBIDDEN, refusal);
    }
    let rest = req
        .uri()
        .path()
        .strip_prefix("/metrics/")
        .unwrap_or_default()
        .to_owned();
    let key = match parse_grouping_path(&rest) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let app = key.app_name();
    if method == Method::DELETE {
        // Only the push API's own groups: a pushed, polled or collected app
        // that happens to have this name is not the push API's to delete.
        delete_app(&s, &app, Some(AppKind::Gateway));
        return StatusCode::ACCEPTED.into_response();
    }
    let (parts, body) = req.into_parts();
    let limit = s.max_push_bytes;
    let read = axum::body::to_bytes(body, limit.saturating_mul(2).max(1024));
    let body = match tokio::time::timeout(api.body_timeout, read).await {
        Ok(Ok(b)) => b,
        Err(_) => {
            s.store
                .self_metrics()
                .count_rejection(RejectReason::Timeout);
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body was not received within {:?} (limits.read_timeout)",
                    api.body_timeout
                ),
            );
        }
        Ok(Err(_)) => {
            s.store
                .self_metrics()
                .count_rejection(RejectReason::TooLarge);
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body exceeds the limit of {limit} bytes"),
            );
        }
    };
    if body.len() > limit {
        s.store
            .self_metrics()
            .count_rejection(RejectReason::TooLarge);
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body exceeds the limit of {limit} bytes"),
        );
    }
    let store = s.store.clone();
    let merge = method == Method::POST;
    // A compressed body may inflate up to the limit: always off the worker.
    let work = if parts.headers.contains_key(CONTENT_ENCODING) {
        limit
    } else {
        body.len()
    };
    let result = crate::ingest::parse_inline_or_blocking(work, move || {
        let body = push_body(&parts.headers, &body, limit)
            .map_err(|(code, msg)| ("text", code, RejectReason::InvalidEnvelope, msg))?;
        let format = body.format();
        check_amplification(&key, &body, limit).map_err(|msg| {
            (
                format,
                StatusCode::PAYLOAD_TOO_LARGE,
                RejectReason::TooLarge,
                msg,
            )
        })?;
        apply(&store, &api, &key, &app, body, merge, &peer)
            .map(|()| format)
            .map_err(|e| (format, StatusCode::BAD_REQUEST, e.reason, e.to_string()))
    })
    .await;
    match result {
        Ok(format) => {
            s.store.self_metrics().count_push(LISTENER, format, true);
            StatusCode::OK.into_response()
        }
        Err((format, code, reason, msg)) => {
            s.store.self_metrics().count_push(LISTENER, format, false);
            s.store.self_metrics().count_rejection(reason);
            warn!(reason = reason.as_str(), "http push refused: {msg}");
            error(code, msg)
        }
    }
}

/// Removes an app and its push-failure record: the delete path of the push
/// API (`only` = its own kind, so that a pushed, polled or collected app of
/// the same name is left alone) and of the web UI (which checks the kind
/// itself). Returns whether it existed.
pub fn delete_app(s: &HttpState, app: &str, only: Option<AppKind>) -> bool {
    let existed = match only {
        Some(kind) => s.store.remove_kind(app, kind),
        None => s.store.remove(app),
    };
    if let Some(api) = &s.push_api {
        lock(&api.failures).remove(app);
    }
    info!(app = %app, existed, "app deleted");
    existed
}

/// The grouping labels are written on every series of the group: what they
/// add may be this many times `limits.max_push_bytes`, at most.
const MAX_AMPLIFICATION: usize = 4;

/// Refuses a body whose series, each carrying the grouping labels, would
/// make a group far larger than the push (64 long labels on 100,000 lines
/// would be 450 MB from a 16 MiB body). Counts an upper bound of the series
/// before any parsing: the lines of a text body, and for protobuf one
/// series per two bytes (the smallest encoded metric).
fn check_amplification(key: &GroupingKey, body: &PushBody, limit: usize) -> Result<(), String> {
    let key_bytes: usize = key.0.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let lines = match body {
        PushBody::Text(text) => text.bytes().filter(|b| *b == b'\n').count() + 1,
        PushBody::Protobuf(bytes) => bytes.len() / 2 + 1,
    };
    let added = key_bytes.saturating_mul(lines);
    let max = limit.saturating_mul(MAX_AMPLIFICATION);
    if added > max {
        return Err(format!(
            "the grouping labels ({key_bytes} bytes) on each of up to {lines} series would add {added} bytes: at most {max} ({MAX_AMPLIFICATION} x limits.max_push_bytes); use fewer or shorter grouping labels"
        ));
    }
    Ok(())
}

/// Validates and applies one push; on failure records the failure time.
fn apply(
    store: &crate::store::Store,
    api: &PushApi,
    key: &GroupingKey,
    app: &str,
    body: PushBody,
    merge: bool,
    source: &str,
) -> Result<(), PushError> {
    let set: Vec<(&str, &str)> = key
        .0
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let default: &[(&str, &str)] = if key.has("instance") {
        &[]
    } else {
        &[("instance", "")]
    };
    let mut labels = set.clone();
    labels.extend_from_slice(default);
    let now = now_seconds();
    let opts = PrepareOptions {
        set: &set,
        default,
        ..PrepareOptions::default()
    };
    let prepared = match body {
        PushBody::Text(text) => store.prepare_with(app, &text, &opts),
        PushBody::Protobuf(bytes) => exposition::proto::decode_delimited(&bytes)
            .map_err(|e| PushError {
                reason: RejectReason::ParseError,
                app: app.to_owned(),
                message: format!("protobuf: {e}"),
            })
            .and_then(|families| store.prepare_protobuf(app, families, &opts)),
    };
    let result = prepared.and_then(|mut p| {
        let failed = lock(&api.failures).get(app).copied().unwrap_or(0.0);
        p.add_gauge(
            "push_time_seconds",
            "Last Unix time when changing this group in the Pushgateway succeeded.",
            &labels,
            now,
        )?;
        p.add_gauge(
            "push_failure_time_seconds",
            "Last Unix time when changing this group in the Pushgateway failed.",
            &labels,
            failed,
        )?;
        p.set_ttl(api.ttl);
        if merge {
            store.commit_merge(p, AppKind::Gateway, source)
        } else {
            store.commit(vec![p], AppKind::Gateway, source)
        }
    });
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            // A group that does not exist gets no entry: a client cannot
            // grow the map with failed pushes to made-up groups.
            if store.update_gauge(app, "push_failure_time_seconds", &labels, now) {
                api.record_failure(store, app, now);
            }
            store.record_rejection(&e);
            Err(e)
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> Result<Vec<(String, String)>, String> {
        parse_grouping_path(path).map(|k| k.0)
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn grouping_keys() {
        assert_eq!(key("job/a"), Ok(pairs(&[("job", "a")])));
        assert_eq!(
            key("job/a/instance/h%3A1/path@base64/L3Zhci90bXA"),
            Ok(pairs(&[
                ("job", "a"),
                ("instance", "h:1"),
                ("path", "/var/tmp")
            ]))
        );
        assert_eq!(
            key("job/a/empty@base64/="),
            Ok(pairs(&[("job", "a"), ("empty", "")]))
        );
        assert_eq!(key("job@base64/L2pvYg=="), Ok(pairs(&[("job", "/job")])));
        assert_eq!(
            key("job/a+b"),
            Ok(pairs(&[("job", "a+b")])),
            "+ stays literal, as in Go"
        );
        assert!(key("job/a/instance").unwrap_err().contains("odd number"));
        assert!(key("job/").unwrap_err().contains("empty"));
        assert!(key("jobs/a").unwrap_err().contains("must start with job"));
        assert!(key("job/a/job/b").unwrap_err().contains("twice"));
        assert!(key("job/a/__x/b")
            .unwrap_err()
            .contains("invalid label name"));
        assert!(key("job/a/x@base64/!!").unwrap_err().contains("base64"));
        assert!(key("job/%zz").unwrap_err().contains("percent"));
    }

    #[test]
    fn grouping_keys_are_bounded_in_labels() {
        let path = |n: usize| {
            let mut p = "job/j".to_owned();
            for i in 1..n {
                p.push_str(&format!("/l{i}/v"));
            }
            p
        };
        assert_eq!(key(&path(MAX_GROUPING_LABELS)).unwrap().len(), 64);
        let e = key(&path(MAX_GROUPING_LABELS + 1)).unwrap_err();
        assert!(e.contains("65 labels: at most 64"), "{e}");
        // 100,000 labels (a path hyper accepts) are refused before any
        // per-label work.
        let e = key(&path(100_000)).unwrap_err();
        assert!(e.contains("100000 labels"), "{e}");
        let mut dup = path(MAX_GROUPING_LABELS - 1);
        dup.push_str("/l7/w");
        assert!(key(&dup).unwrap_err().contains("label l7 appears twice"));
    }

    #[test]
    fn grouping_labels_cannot_amplify_a_push_beyond_its_bound() {
        let k = GroupingKey(pairs(&[("job", "j"), ("long", &"v".repeat(96))]));
        // 112 bytes of labels per line: 1,000 lines fit in 4 x 64 KiB...
        assert!(check_amplification(&k, &PushBody::Text("x 1\n".repeat(1000)), 64 << 10).is_ok());
        // ...10,000 lines do not.
        let e =
            check_amplification(&k, &PushBody::Text("x 1\n".repeat(10_000)), 64 << 10).unwrap_err();
        assert!(e.contains("112 bytes") && e.contains("10001 series"), "{e}");
    }

    #[test]
    fn failures_are_kept_for_existing_groups_only() {
        let store =
            crate::store::Store::new(Default::default(), crate::telemetry::SelfMetrics::new());
        let api = PushApi::new(None);
        let key = |j: &str| GroupingKey(pairs(&[("job", j)]));
        // 1,000 failed pushes to groups that do not exist: no entries.
        for i in 0..1000 {
            let k = key(&format!("ghost{i}"));
            assert!(apply(
                &store,
                &api,
                &k,
                &k.app_name(),
                PushBody::Text("bad{".to_owned()),
                false,
                "t"
            )
            .is_err());
        }
        assert_eq!(api.failure_entries(), 0);
        // An existing group's failure is kept (for push_failure_time_seconds).
        let k = key("real");
        apply(
            &store,
            &api,
            &k,
            &k.app_name(),
            PushBody::Text("ok 1\n".to_owned()),
            false,
            "t",
        )
        .unwrap();
        assert!(apply(
            &store,
            &api,
            &k,
            &k.app_name(),
            PushBody::Text("bad{".to_owned()),
            false,
            "t"
        )
        .is_err());
        assert_eq!(api.failure_entries(), 1);
    }

    #[test]
    fn app_names_sort_labels_after_job() {
        let k = GroupingKey(pairs(&[("job", "j"), ("zone", "z"), ("instance", "a\"b")]));
        assert_eq!(k.app_name(), r#"{job="j",instance="a\"b",zone="z"}"#);
    }
}
