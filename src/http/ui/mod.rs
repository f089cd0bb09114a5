//! The web UI: server-rendered HTML pages with one embedded stylesheet and a
//! few lines of plain JavaScript that only add to what works without it.
//!
//! * [`apps`]: every source, with counts, filters (query parameters, and
//!   live filtering when scripts run), sorting and an auto-refresh that can
//!   be switched off.
//! * [`app`]: one source: its families and series as served, its push or
//!   poll facts, and a delete button where the admin API is enabled.
//! * [`status`]: version, uptime, the effective configuration with secrets
//!   left out, listeners and limits, snapshot, reload and sink state; also
//!   as JSON.
//!
//! Pages never hold the store's lock while rendering: the apps page works
//! on a copy of the `/apps` rows taken once per store generation
//! ([`UiState::apps`]), the app page on the app's shared encoded blocks, so
//! a busy UI costs `/metrics` one short lock per change, not per view.
//! Every text that comes from outside (app names, label values, HELP
//! texts, errors, sources) goes through [`esc`].

pub mod app;
pub mod apps;
pub mod status;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};

use super::HttpState;
use crate::store::{AppInfo, Store};

/// What the pages show of the configuration in effect, built by the
/// configuration itself (`Config::ui_facts`): the HTTP layer never reads
/// `Config`. Secrets are reduced to where they are read from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigFacts {
    /// The effective configuration, redacted (the status page and its JSON).
    pub view: serde_json::Value,
    /// The listeners with their limits.
    pub listeners: Vec<serde_json::Value>,
    /// What the configuration says about each polled source, by app name.
    pub planned: std::collections::BTreeMap<String, app::Planned>,
    /// The sinks: name and queue capacity.
    pub sinks: Vec<SinkFacts>,
    /// The snapshot file, when persistence is on.
    pub snapshot_file: Option<String>,
}

/// One sink as the status page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkFacts {
    /// The sink's name.
    pub name: String,
    /// Bodies its queue holds at most.
    pub queue_capacity: usize,
}

/// What the pages need beyond the store: start time, the effective
/// configuration, and the cached copy of the `/apps` rows.
#[derive(Debug)]
pub struct UiState {
    started: DateTime<Utc>,
    started_at: Instant,
    /// Replaced after every successful reload.
    config: Mutex<Option<Arc<ConfigFacts>>>,
    /// The `/apps` rows of one store generation.
    cache: Mutex<Option<AppsSnapshot>>,
    /// Copies of the `/apps` rows taken so far (the status JSON shows it:
    /// ep-bench checks that a busy UI takes none while the store is still).
    copies: AtomicU64,
}

/// The `/apps` rows as of one store generation.
#[derive(Debug, Clone)]
pub struct AppsSnapshot {
    generation: u64,
    /// When the copy was taken (its `expires_in` values are as of then).
    pub taken: Instant,
    /// The rows, sorted by name.
    pub apps: Arc<Vec<AppInfo>>,
}

impl UiState {
    /// A new UI state; `config` is shown on the status page.
    pub fn new(config: Option<ConfigFacts>) -> Arc<Self> {
        Arc::new(UiState {
            started: Utc::now(),
            started_at: Instant::now(),
            config: Mutex::new(config.map(Arc::new)),
            cache: Mutex::new(None),
            copies: AtomicU64::new(0),
        })
    }

    /// Records the configuration now in effect (after a reload).
    pub fn set_config(&self, config: ConfigFacts) {
        *lock(&self.config) = Some(Arc::new(config));
    }

    /// The configuration in effect, when known.
    pub fn config(&self) -> Option<Arc<ConfigFacts>> {
        lock(&self.config).clone()
    }

    /// The `/apps` rows, copied from the store at most once per generation.
    pub fn apps(&self, store: &Store) -> AppsSnapshot {
        let generation = store.generation();
        if let Some(s) = lock(&self.cache).as_ref() {
            if s.generation == generation {
                return s.clone();
            }
        }
        let snap = AppsSnapshot {
            generation,
            taken: Instant::now(),
            apps: Arc::new(store.apps()),
        };
        self.copies.fetch_add(1, Ordering::Relaxed);
        *lock(&self.cache) = Some(snap.clone());
        snap
    }

    /// Copies of the `/apps` rows taken so far (one per store generation
    /// that a page was viewed in).
    pub fn copies(&self) -> u64 {
        self.copies.load(Ordering::Relaxed)
    }

    /// Start time of the process (of this UI state).
    pub fn started(&self) -> DateTime<Utc> {
        self.started
    }

    /// Time since the start.
    pub fn uptime(&self) -> Duration {
        self.started_at.elapsed()
    }
}

impl AppsSnapshot {
    /// The rows with their time left as of now.
    pub fn current(&self) -> Vec<AppInfo> {
        self.apps
            .iter()
            .map(|a| AppInfo {
                expires_in: self.expires_in(a),
                ..a.clone()
            })
            .collect()
    }

    /// Time left before expiry of `a` now (the copy may be older).
    pub fn expires_in(&self, a: &AppInfo) -> Option<Duration> {
        a.expires_in.map(|d| d.saturating_sub(self.taken.elapsed()))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A cache and a config copy: a panic elsewhere leaves them usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- handlers ----

/// `GET /` and `GET /apps` as HTML: the apps page.
pub async fn apps_page(State(s): State<HttpState>, q: Query<apps::Filter>) -> Response {
    let snap = s.ui.apps(&s.store);
    html(apps::render(&snap, Utc::now(), &q.0, "./"))
}

/// `GET /apps/<name>`: one app's page (`?format=json` for its facts).
pub async fn app_page(State(s): State<HttpState>, Path(name): Path<String>, uri: Uri) -> Response {
    let root = root_of(uri.path());
    let Some((info, families)) = s.store.app_detail(&name) else {
        return (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, "text/html; charset=utf-8")],
            page(
                "exporter-proxy: no such app",
                &root,
                None,
                &format!(
                    "<h1>No app {}</h1><p>It may have expired or been deleted. <a href=\"{root}apps\">All apps</a></p>",
                    esc(&name)
                ),
            ),
        )
            .into_response();
    };
    let facts = s.store.self_metrics().target_facts(&name);
    let config = s.ui.config();
    let ctx = app::Context {
        info: &info,
        families: &families,
        facts: facts.as_ref(),
        planned: config.as_ref().and_then(|c| c.planned.get(&name).cloned()),
        can_delete: s.admin_api && app::deletable(&info),
        root: &root,
    };
    html(app::render(&ctx, Utc::now()))
}

/// `POST /apps/<name>` (the page's form) and `DELETE /apps/<name>`: removes
/// a pushed app, only where the admin API is enabled.
pub async fn app_delete(
    State(s): State<HttpState>,
    Path(name): Path<String>,
    req: axum::extract::Request,
) -> Response {
    let (method, uri) = (req.method().clone(), req.uri().clone());
    // The write-endpoint gates: the admin API switch, and the peers allowed
    // to write through the push API (loopback when it is off); basic auth
    // already ran in the router's layer.
    if !s.admin_api {
        return (
            StatusCode::FORBIDDEN,
            "deleting apps needs the admin API: `[exporter] enable_admin_api = true` or `--web.enable-admin-api`\n",
        )
            .into_response();
    }
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let loopback = super::gates::Gates::loopback();
    let networks = s.push_api.as_ref().map_or(&loopback, |api| api.networks());
    if let Err(why) = super::gates::check_push_peer(networks, peer) {
        return (StatusCode::FORBIDDEN, format!("deleting apps: {why}\n")).into_response();
    }
    let Some((info, _)) = s.store.app_detail(&name) else {
        return (StatusCode::NOT_FOUND, format!("no app {name:?}\n")).into_response();
    };
    if !app::deletable(&info) {
        return (
            StatusCode::CONFLICT,
            format!(
                "{name:?} is a {} source from the configuration: it would come back at its next collection; remove it from the configuration instead\n",
                info.kind.as_str()
            ),
        )
            .into_response();
    }
    super::pushgw::delete_app(&s, &name, None);
    if method == axum::http::Method::POST {
        // The form: back to the list.
        let to = format!("{}apps", root_of(uri.path()));
        (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response()
    } else {
        StatusCode::ACCEPTED.into_response()
    }
}

/// `GET /status`: the status page, or its facts as JSON (`?format=json` or
/// `Accept: application/json`).
pub async fn status_page(
    State(s): State<HttpState>,
    Query(q): Query<status::Format>,
    headers: HeaderMap,
) -> Response {
    let facts = status::facts(&s);
    let json = match q.format.as_deref() {
        Some("json") => true,
        Some("html") => false,
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("unknown format {other:?}: use html or json\n"),
            )
                .into_response()
        }
        None => headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json")),
    };
    if json {
        let mut body = serde_json::to_string_pretty(&facts).expect("JSON values serialise");
        body.push('\n');
        ([(CONTENT_TYPE, "application/json")], body).into_response()
    } else {
        html(status::render(&facts))
    }
}

fn html(body: String) -> Response {
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// The relative path from a request path back to the root (`./`, `../`),
/// so that links work behind a reverse proxy that adds a prefix.
pub fn root_of(path: &str) -> String {
    let depth = path.matches('/').count().saturating_sub(1);
    if depth == 0 {
        "./".to_owned()
    } else {
        "../".repeat(depth)
    }
}

// ---- shared pieces of the pages ----

/// The stylesheet of every page: system fonts, status colours, a table
/// that scrolls sideways on a phone instead of stretching the page.
pub const CSS: &str = r#"
:root{--fg:#1b1f24;--muted:#5b6570;--line:#d8dee4;--bg:#fff;--head:#f3f5f7;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--info:#0969da}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.2rem 1rem;padding:.5rem 1rem;background:#24292f;color:#fff}
header a{color:#fff;text-decoration:none;opacity:.85}
header a.on,header a:hover{opacity:1;text-decoration:underline}
header .brand{font-weight:600;margin-right:1rem}
main{padding:1rem;max-width:100rem}
h1{font-size:1.35rem;margin:.2rem 0 .8rem;overflow-wrap:anywhere}
h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
h3{font-size:1rem;margin:1rem 0 .3rem;overflow-wrap:anywhere}
a{color:var(--info)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:var(--head);white-space:nowrap}
th a{color:inherit;text-decoration:none}
td.num,th.num{text-align:right}
td.name{overflow-wrap:anywhere;max-width:28rem}
td.src{overflow-wrap:anywhere;max-width:20rem;color:var(--muted)}
td.err{max-width:30rem;overflow-wrap:anywhere}
.badge{display:inline-block;padding:0 .45rem;border-radius:1rem;font-size:.8rem;font-weight:600;color:#fff;background:var(--muted)}
.s-ok,.s-up{background:var(--ok)}
.s-rejected,.s-down{background:var(--bad)}
.s-init{background:var(--info)}
.s-disabled{background:var(--warn)}
.chips{display:flex;flex-wrap:wrap;gap:.4rem;margin:.3rem 0}
.chip{border:1px solid var(--line);border-radius:1rem;padding:.1rem .6rem;text-decoration:none;color:var(--fg);background:var(--head)}
.chip b{margin-left:.3rem}
form.filter{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.8rem 0}
form.filter input,form.filter select,button{font:inherit;padding:.2rem .4rem}
.muted{color:var(--muted)}
details summary{cursor:pointer}
details .full{white-space:pre-wrap;margin-top:.3rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0;overflow-wrap:anywhere}
pre{background:var(--head);padding:.6rem;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
code.series{overflow-wrap:anywhere}
.help{color:var(--muted);margin:.1rem 0 .4rem;white-space:pre-wrap;overflow-wrap:anywhere}
.danger{background:var(--bad);color:#fff;border:0;border-radius:.3rem;padding:.3rem .8rem;cursor:pointer}
td.name{min-width:8rem}
td.err{min-width:14rem}
@media (max-width:640px){main{padding:.5rem}th,td{padding:.25rem .3rem}.wide{display:none}}
"#;

/// A whole page: head with the stylesheet, the navigation, `body`.
/// `refresh`: seconds between automatic reloads.
pub fn page(title: &str, root: &str, refresh: Option<u64>, body: &str) -> String {
    let refresh = refresh
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">\n"))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n{refresh}<title>{title}</title>\n<style>{CSS}</style></head>\n<body>\n<header><span class=\"brand\">exporter-proxy {version}</span>\n<a href=\"{root}apps\">Apps</a> <a href=\"{root}status\">Status</a> <a href=\"{root}metrics\">Metrics</a> <a href=\"{root}apps?format=json\">JSON</a> <a href=\"{root}-/healthy\">Healthy</a> <a href=\"{root}-/ready\">Ready</a></header>\n<main>\n{body}\n</main>\n</body></html>\n",
        title = esc(title),
        version = esc(env!("CARGO_PKG_VERSION")),
    )
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment or query value: everything but
/// unreserved characters, so `/`, `?`, `#` and quotes stay inside it.
pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A time as an age (`12 s ago`) with the UTC time on hover.
pub fn age_html(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    let text = if secs < 0 {
        "in the future".to_owned()
    } else {
        format!("{} ago", short(Duration::from_secs(secs as u64)))
    };
    format!(
        "<time datetime=\"{}\" title=\"{}\">{}</time>",
        t.to_rfc3339_opts(SecondsFormat::Millis, true),
        esc(&t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()),
        text
    )
}

/// A duration with its largest unit and, below a day, the next one
/// (`200 ms`, `12 s`, `4 min 59 s`, `3 h 2 min`, `1 d 2 h`).
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 if d.subsec_millis() > 0 => format!("{} ms", d.subsec_millis()),
        0..60 => format!("{s} s"),
        60..3600 if s.is_multiple_of(60) => format!("{} min", s / 60),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 if s % 3600 < 60 => format!("{} h", s / 3600),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ if s % 86_400 < 3600 => format!("{} d", s / 86_400),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// At most `max` characters of `s` on one line, with `…` when cut.
pub fn shorten(s: &str, max: usize) -> (String, bool) {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        return (one_line, false);
    }
    let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    (out, true)
}

/// An error text: shortened, with the whole text on demand (`<details>`,
/// no script needed).
pub fn error_html(e: &str, max: usize) -> String {
    match shorten(e, max) {
        (s, false) => esc(&s),
        (s, true) => format!(
            "<details><summary>{}</summary><div class=\"full\">{}</div></details>",
            esc(&s),
            esc(e)
        ),
    }
}

/// Query parameter names whose values are credentials.
const SECRET_PARAMS: [&str; 9] = [
    "token",
    "access_token",
    "password",
    "passwd",
    "secret",
    "key",
    "apikey",
    "api_key",
    "auth",
];

/// A URL with the password of its user information and the values of
/// credential-like query parameters replaced by `***`.
pub fn redact_url(u: &str) -> String {
    let Some((scheme, rest)) = u.split_once("://") else {
        return u.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, frag) = match query.split_once('#') {
                Some((q, f)) => (q, format!("#{f}")),
                None => (query, String::new()),
            };
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                        format!("{k}=***")
                    }
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}{frag}", q.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// A `<dl>` of facts; values are HTML already.
pub fn facts_html(rows: &[(&str, String)]) -> String {
    let mut s = String::from("<dl class=\"facts\">");
    for (k, v) in rows {
        s.push_str(&format!("<dt>{}</dt><dd>{v}</dd>", esc(k)));
    }
    s.push_str("</dl>");
    s
}

#[cfg(test)]
mod tests;
