//! The HTTP server: one router, testable without sockets.
//!
//! Endpoints:
//!
//! | Method | Path | What |
//! |---|---|---|
//! | GET | `/` | the web UI's apps page ([`ui`]) |
//! | GET | `/metrics` | every app's metrics merged, plus self-metrics: text 0.0.4, OpenMetrics or delimited protobuf by `Accept` ([`negotiate`]) or `?format=text\|openmetrics\|protobuf`; gzip when accepted |
//! | GET | `/apps` | sources: text table (default; `?wide=1`: errors whole), JSON (`?format=json` or `Accept: application/json`), the UI's apps page (`Accept: text/html`) |
//! | GET | `/apps/<name>` | one app's page: families, series, push and poll facts (any name, percent-encoded) |
//! | POST, DELETE | `/apps/<name>` | deletes a pushed app; only with the admin API enabled (403 otherwise) |
//! | GET | `/status` | status page: build, uptime, listeners, configuration, reload, snapshot, sinks (`?format=json`) |
//! | POST | `/register` | self-registration of an exporter (JSON), or a heartbeat |
//! | GET | `/register` | the registrations (JSON) |
//! | DELETE | `/register/<id>` | removes a registration |
//! | POST | `/api/post` (configurable) | the aggregator seed's registration, with `[poll.register.compat]` |
//! | GET | `/-/healthy` | 200 while the process runs |
//! | GET | `/-/ready` | 200 once every listener is bound, 503 before |
//! | POST | `/-/reload` | re-read the config file and apply it whole or not at all (lifecycle API) |
//! | PUT, POST, DELETE | `/metrics/job/<job>{/<label>/<value>}` | Pushgateway-compatible push API ([`pushgw`]) |
//!
//! Anything else is 404; a known path with another method is 405. The
//! write endpoints are gated as Prometheus does ([`gates`]).
//!
//! The HTTP port lives in this folder: the router and pages (this file), the
//! push API ([`pushgw`]), the web configuration with TLS and basic auth
//! ([`web`], [`auth`]) and the accept loop ([`serve`]).

pub mod auth;
pub mod gates;
pub mod negotiate;
pub mod prebuild;
pub mod pushgw;
pub mod serve;
pub mod ui;
pub mod web;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request};
use axum::extract::{Query, State};
use axum::http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{LineStyle, TableStyle};
use serde::{Deserialize, Serialize};

use crate::poll::register::{Registrar, MAX_REQUEST_BYTES};
use crate::store::{AppInfo, Format, Store};

/// A reload request from `POST /-/reload`: the reply carries the outcome.
pub type ReloadRequest = tokio::sync::oneshot::Sender<Result<String, String>>;

/// Time to receive a `/register` document (a few KiB at most).
const REGISTER_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Content type of the text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct HttpState {
    /// The store.
    pub store: Arc<Store>,
    /// Set once every listener is bound and serving.
    pub ready: Arc<AtomicBool>,
    /// The Pushgateway-compatible push API, when enabled.
    pub push_api: Option<Arc<pushgw::PushApi>>,
    /// Largest accepted push body.
    pub max_push_bytes: usize,
    /// Self-registration, when `[poll.register]` is enabled.
    pub registrar: Option<Arc<Registrar>>,
    /// Where `POST /-/reload` sends its requests (`None`: reload disabled).
    pub reload: Option<tokio::sync::mpsc::Sender<ReloadRequest>>,
    /// Lifecycle endpoints (`POST /-/reload`) are served
    /// (`[exporter] enable_lifecycle`, `--web.enable-lifecycle`).
    pub lifecycle: bool,
    /// Endpoints that delete data (push API `DELETE`, the UI's delete) are
    /// served (`[exporter] enable_admin_api`, `--web.enable-admin-api`).
    pub admin_api: bool,
    /// Start time, effective config and page cache of the web UI.
    pub ui: Arc<ui::UiState>,
    /// Builds `/metrics` ahead of regular scrapers.
    pub prebuild: Arc<prebuild::Prebuild>,
}

/// Builds the router.
pub fn router(state: HttpState) -> Router {
    let compat = state
        .registrar
        .as_ref()
        .and_then(|r| r.compat())
        .map(|c| c.path.clone());
    let router = Router::new()
        .route("/", get(ui::apps_page))
        .route("/metrics", get(metrics))
        .route("/apps", get(apps))
        .route(
            "/apps/{*name}",
            get(ui::app_page)
                .post(ui::app_delete)
                .delete(ui::app_delete),
        )
        .route("/status", get(ui::status_page))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", axum::routing::post(reload))
        .route(
            "/metrics/{*grouping}",
            put(pushgw::handle)
                .post(pushgw::handle)
                .delete(pushgw::handle)
                .get(not_found),
        )
        .route("/register", get(register_list).post(register_post))
        .route("/register/{id}", delete(register_delete));
    let router = match compat {
        Some(path) => {
            let registrar = state.registrar.clone();
            router.route(
                &path,
                axum::routing::post(move |req: Request| {
                    crate::poll::compat::handle(registrar.clone(), req)
                }),
            )
        }
        None => router,
    };
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "404 page not found: see / for the endpoints\n",
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        "405 method not allowed: see / for the endpoints and their methods\n",
    )
        .into_response()
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    let mut body = serde_json::to_string(v).expect("JSON values serialise");
    body.push('\n');
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

fn registration_disabled() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &serde_json::json!({"ok": false, "error": "self-registration is disabled: see `[poll.register]` in the configuration"}),
    )
}

/// The peer's IP (set by `into_make_service_with_connect_info`) and the
/// `Authorization` header.
fn peer_and_auth(
    headers: &HeaderMap,
    ext: &axum::http::Extensions,
) -> (Option<std::net::IpAddr>, Option<String>) {
    let peer = ext
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (peer, auth)
}

async fn register_post(State(s): State<HttpState>, req: Request) -> Response {
    let Some(r) = s.registrar.clone() else {
        return registration_disabled();
    };
    let (peer, auth) = peer_and_auth(req.headers(), req.extensions());
    let read = axum::body::to_bytes(req.into_body(), MAX_REQUEST_BYTES);
    let body = match tokio::time::timeout(REGISTER_BODY_TIMEOUT, read).await {
        Ok(Ok(b)) => b,
        Err(_) => {
            return json_response(
                StatusCode::REQUEST_TIMEOUT,
                &serde_json::json!({"ok": false, "error": format!("the registration document was not received within {REGISTER_BODY_TIMEOUT:?} (the fixed body timeout of /register); send the whole body at once")}),
            )
        }
        Ok(Err(_)) => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &serde_json::json!({"ok": false, "error": format!("registration documents are limited to {MAX_REQUEST_BYTES} bytes")}),
            )
        }
    };
    let (status, v) = r.register(peer, auth.as_deref(), &body).await;
    json_response(status, &v)
}

async fn register_delete(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let Some(r) = s.registrar.clone() else {
        return registration_disabled();
    };
    let (peer, auth) = peer_and_auth(req.headers(), req.extensions());
    let (status, v) = r.deregister(peer, auth.as_deref(), &id).await;
    json_response(status, &v)
}

async fn register_list(State(s): State<HttpState>, req: Request) -> Response {
    let Some(r) = s.registrar.clone() else {
        return registration_disabled();
    };
    let (peer, auth) = peer_and_auth(req.headers(), req.extensions());
    let (status, v) = r.list(peer, auth.as_deref());
    json_response(status, &v)
}

/// `POST /-/reload`: re-reads the config file and applies it whole or not
/// at all; 200 with what changed, 500 with why nothing was applied.
async fn reload(State(s): State<HttpState>) -> Response {
    if !s.lifecycle {
        return gates::lifecycle_disabled();
    }
    let Some(tx) = s.reload.clone() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "reload is not available\n").into_response();
    };
    let (reply, outcome) = tokio::sync::oneshot::channel();
    if tx.send(reply).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the proxy is shutting down\n",
        )
            .into_response();
    }
    match outcome.await {
        Ok(Ok(msg)) => (StatusCode::OK, format!("{msg}\n")).into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed: {e}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the proxy is shutting down\n",
        )
            .into_response(),
    }
}

async fn ready(State(s): State<HttpState>) -> Response {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "OK\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: listeners are starting\n",
        )
            .into_response()
    }
}

/// Whether the client accepts gzip: an explicit `gzip` coding with a
/// non-zero weight, or else a `*` with a non-zero weight (RFC 9110 §12.5.3).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut star = None;
    for coding in headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let weight = parts
            .find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| v.trim().parse::<f32>().unwrap_or(0.0))
            })
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case("gzip") {
            gzip = Some(weight > 0.0);
        } else if name == "*" {
            star = Some(weight > 0.0);
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// `GET /metrics?format=...`: a scrape job may choose the format whatever
/// its `Accept` header says (Prometheus' scrape `params`).
#[derive(Debug, Default, Deserialize)]
struct MetricsQuery {
    format: Option<String>,
}

async fn metrics(
    State(s): State<HttpState>,
    Query(q): Query<MetricsQuery>,
    peer: Option<axum::Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let gzip = accepts_gzip(&headers);
    let format = match q.format.as_deref() {
        None => negotiate::metrics_format(&headers),
        Some(f) => match negotiate::format_by_name(f) {
            Some(format) => format,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("unknown format {f:?}: expected text, openmetrics or protobuf\n"),
                )
                    .into_response()
            }
        },
    };
    s.prebuild.arrived(
        &s.store,
        prebuild::Scraper {
            peer: peer.map(|p| p.0 .0),
            format,
            gzip,
        },
    );
    let Some(rendered) = rendered_for(&s, format, gzip).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response();
    };
    let mut resp = axum::body::Body::new(ChunksBody::new(&rendered, format, gzip)).into_response();
    if gzip {
        resp.headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    resp.headers_mut()
        .insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    resp
}

/// The page with its body in `format` built: the cached one, else built on
/// the blocking pool (rendering and compressing are CPU-bound: off the I/O
/// workers). One build at a time: a build ahead of this scrape may be
/// under way, and what it built is then only topped up. `None` if the build
/// panicked.
async fn rendered_for(
    s: &HttpState,
    format: Format,
    gzip: bool,
) -> Option<Arc<crate::store::Rendered>> {
    let built = || s.store.cached().filter(|r| r.is_built(format, gzip));
    if let Some(r) = built() {
        return Some(r);
    }
    let _building = s.prebuild.building.lock().await;
    if let Some(r) = built() {
        return Some(r);
    }
    let store = s.store.clone();
    tokio::task::spawn_blocking(move || prebuild::build(&store, &[(format, gzip)]))
        .await
        .ok()
}

/// The `/metrics` body, written straight from the rendered chunks (shared
/// with the store; for gzip, the compressed runs) with an exact length, so
/// hyper sends a `Content-Length` and never concatenates or copies the
/// whole page. Packed chunks (a large store's) are unpacked as they are
/// written, a frame of [`UNPACKED_FRAME`] bytes at a time: the page is
/// never whole in memory.
struct ChunksBody {
    rendered: Arc<crate::store::Rendered>,
    format: Format,
    gzip: bool,
    next: usize,
    remaining: u64,
}

impl ChunksBody {
    fn new(rendered: &Arc<crate::store::Rendered>, format: Format, gzip: bool) -> Self {
        let len = if gzip {
            rendered.gzip_chunks_of(format).1
        } else {
            rendered.len_of(format)
        };
        ChunksBody {
            rendered: rendered.clone(),
            format,
            gzip,
            next: 0,
            remaining: len as u64,
        }
    }

    /// The next frame: a chunk as it is shared, or packed chunks unpacked
    /// into one buffer.
    fn next_frame(&mut self) -> Option<bytes::Bytes> {
        if self.gzip {
            let chunk = self.rendered.gzip_chunks_of(self.format).0.get(self.next);
            self.next += 1;
            return chunk.cloned();
        }
        let chunks = self.rendered.chunks_of(self.format).get(self.next..)?;
        let first = chunks.first()?;
        if !first.is_packed() {
            self.next += 1;
            return Some(first.bytes());
        }
        let mut out = Frame::take(UNPACKED_FRAME + first.len());
        for c in chunks.iter().take_while(|c| c.is_packed()) {
            if !out.0.is_empty() && out.0.len() + c.len() > UNPACKED_FRAME {
                break;
            }
            c.write_to(&mut out.0);
            self.next += 1;
        }
        Some(bytes::Bytes::from_owner(out))
    }
}

/// Bytes of text unpacked into one frame of a plain body.
const UNPACKED_FRAME: usize = 64 * 1024;

/// The buffer of an unpacked frame, kept for a later frame once hyper has
/// written and dropped it. A plain scrape of a packed page at a million
/// series unpacks 1,300 frames: a new buffer for each was freed and given
/// back to the system at once (the allocator purges without delay, see
/// `main.rs`), so every frame's pages were faulted in again.
struct Frame(Vec<u8>);

/// Frame buffers kept (each holds about [`UNPACKED_FRAME`] bytes): enough
/// for what a few connections have in flight.
const KEPT_FRAMES: usize = 32;
static FRAMES: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

impl Frame {
    /// An empty frame of at least `capacity` bytes, kept or new.
    fn take(capacity: usize) -> Frame {
        let kept = FRAMES.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut buf = kept.unwrap_or_default();
        buf.reserve(capacity);
        Frame(buf)
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() > 4 * UNPACKED_FRAME {
            return;
        }
        buf.clear();
        let mut kept = FRAMES.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEPT_FRAMES {
            kept.push(buf);
        }
    }
}

impl http_body::Body for ChunksBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let chunk = this.next_frame();
        std::task::Poll::Ready(chunk.map(|c| {
            this.remaining -= c.len() as u64;
            Ok(http_body::Frame::data(c))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

#[derive(Debug, Deserialize)]
struct AppsQuery {
    format: Option<String>,
    /// `?wide=1`: error texts whole in the text table.
    wide: Option<String>,
}

/// The JSON view of one app.
#[derive(Debug, Serialize)]
struct AppJson<'a> {
    name: &'a str,
    kind: &'static str,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_update: Option<String>,
    series: usize,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error_time: Option<String>,
    /// `never` or a duration such as `5m`.
    ttl: String,
    /// Seconds left before expiry; absent when the TTL is never.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
struct AppsJson<'a> {
    current_time: String,
    apps: Vec<AppJson<'a>>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn apps(
    State(s): State<HttpState>,
    Query(q): Query<AppsQuery>,
    filter: Query<ui::apps::Filter>,
    headers: HeaderMap,
) -> Response {
    let snap = s.ui.apps(&s.store);
    let apps = &snap.current();
    let now = Utc::now();
    let accept = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = match q.format.as_deref() {
        Some(f) => f.to_owned(),
        None if accept.contains("application/json") => "json".to_owned(),
        None if accept.contains("text/html") => "html".to_owned(),
        None => "text".to_owned(),
    };
    match format.as_str() {
        "json" => {
            let body = AppsJson {
                current_time: rfc3339(now),
                apps: apps
                    .iter()
                    .map(|a| AppJson {
                        name: &a.name,
                        kind: a.kind.as_str(),
                        source: &a.source,
                        last_update: a.last_update.map(rfc3339),
                        series: a.series,
                        status: a.status(),
                        last_error: a.last_error.as_deref(),
                        last_error_time: a.last_error_time.map(rfc3339),
                        ttl: a.ttl.describe(),
                        expires_in_seconds: a.expires_in.map(|d| d.as_secs_f64()),
                    })
                    .collect(),
            };
            (
                [(CONTENT_TYPE, "application/json")],
                serde_json::to_string_pretty(&body).expect("apps serialise"),
            )
                .into_response()
        }
        "html" => (
            [(CONTENT_TYPE, "text/html; charset=utf-8")],
            ui::apps::render(&snap, now, &filter.0, "./"),
        )
            .into_response(),
        "text" => {
            let wide = q
                .wide
                .as_deref()
                .is_some_and(|w| !matches!(w, "" | "0" | "false"));
            (
                [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                apps_table(apps, now, wide),
            )
                .into_response()
        }
        other => (
            StatusCode::BAD_REQUEST,
            format!("unknown format {other:?}: use text, json or html\n"),
        )
            .into_response(),
    }
}

const COLUMNS: [&str; 9] = [
    "App Name",
    "Last Update Time (UTC)",
    "Source",
    "Kind",
    "Series",
    "Status",
    "TTL",
    "Expires In",
    "Last Error",
];

/// A duration in whole seconds, humantime style (`4m 59s`).
fn human(d: std::time::Duration) -> String {
    humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
}

/// Characters of an error text in the text table (without `?wide=1`,
/// which also drops the error's time): with the other columns of a
/// typical row this stays within a 180-column terminal.
pub const TABLE_ERROR_CHARS: usize = 40;

fn row(a: &AppInfo, wide: bool) -> [String; 9] {
    let error = |e: &str| {
        if wide {
            e.to_owned()
        } else {
            ui::shorten(e, TABLE_ERROR_CHARS).0
        }
    };
    [
        a.name.clone(),
        a.last_update
            .map_or_else(|| "never".to_owned(), |t| t.to_string()),
        a.source.clone(),
        a.kind.as_str().to_owned(),
        a.series.to_string(),
        a.status().to_owned(),
        a.ttl.describe(),
        a.expires_in.map(human).unwrap_or_default(),
        match (&a.last_error, a.last_error_time) {
            (Some(e), Some(t)) if wide => format!("{t}: {e}"),
            (Some(e), _) => error(e),
            _ => String::new(),
        },
    ]
}

/// comfy-table's ASCII_FULL with `+` where row separators meet the outer
/// border, which is what the original (prettytable's default) printed.
const ORIGINAL_STYLE: TableStyle =
    comfy_table::presets::ASCII_FULL.row_separator(LineStyle::new('+', '-', '+', '+'));

/// The original's layout: an outer one-column table holding a "Current
/// time" row and the inner table of apps, with a border between every row.
/// Error texts are shortened to [`TABLE_ERROR_CHARS`] unless `wide`.
pub fn apps_table(apps: &[AppInfo], now: DateTime<Utc>, wide: bool) -> String {
    use comfy_table::Table;

    let mut inner = Table::new();
    inner.load_style(ORIGINAL_STYLE);
    inner.add_row(COLUMNS);
    for a in apps {
        inner.add_row(row(a, wide));
    }
    let mut outer = Table::new();
    outer.load_style(ORIGINAL_STYLE);
    outer.add_row([format!("Current time: {now}")]);
    outer.add_row([inner.to_string()]);
    let mut s = outer.to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests;
