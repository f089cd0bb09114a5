//! Mock self-service portals: one axum server per provider on loopback,
//! built from the requests the original ssp-exporter sends (its
//! `providers/*.py`), not from ours. Every request is checked like a strict
//! portal would: each header, cookie, form field and JSON field the
//! original sends must be there with the right value and JSON type, and
//! nothing else in a form or JSON body; otherwise the portal answers 400
//! and records why in [`Portal::violations`], which the tests assert empty.
//! The headers checked are those the original's code sets, plus `Accept:
//! */*`; what the `requests` library adds on its own (`Accept-Encoding:
//! gzip, deflate`, `Connection: keep-alive`) is transport detail a portal
//! does not look at, and is not required.
//!
//! The cookie-based portals set their session or CSRF cookies as real ones
//! do: on redirect hops and with paths narrower than the next request's.
//!
//! What a portal does is chosen by the password (every flow sends it),
//! carried through the flow in the session cookie or token it hands out:
//!
//! * `ok:<balance>`: success; the balance is a JSON number when it parses
//!   as one, else a string (`ok:1 234,56`), and text on Almatel's page;
//! * `wrong`: the portal refuses the credentials;
//! * `layout`: the balance is missing from the answer (changed layout);
//! * `nonjson` / `empty`: the balance answer is HTML / empty;
//! * `e500`: HTTP 500 where the password is first seen;
//! * `hang`: no answer where the password is first seen;
//! * `captcha` / `ratelimit`: MegaFon's login answers; `jwtmsg`: a MegaFon
//!   login that succeeds with a `jwtToken` beside a login-form text (4.5);
//! * `pyzero`: Freedom and Wifire answer their result codes as `false` or
//!   `0.0`, which the original's `== 0` accepts (6.5);
//! * passwords typed by YAML: `0891` must arrive as the text `0891` (a JSON
//!   string), `123456` as the number `123456` in JSON and the text
//!   elsewhere, `0123` as `83` in JSON (PyYAML reads it as octal) and the
//!   text `0123` elsewhere: balances 8.91, 1234.56 and 1.23.
//!
//! An identifier sent in a JSON body must be a number when it is a decimal
//! integer (the original's PyYAML typed `123456` so) and a string else
//! (`0891`); a login that reads `891`, `891.0` or `83` lost its text.
//!
//! Vultr reports what is owed: its balance is the negated one asked for
//! (credit is negative there). Logouts always fail with 500: a good
//! balance must survive them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// A running mock portal; stops when dropped.
pub struct Portal {
    pub addr: SocketAddr,
    /// Requests received, by path.
    pub hits: Hits,
    /// Every refused request and why.
    pub violations: Violations,
    task: tokio::task::JoinHandle<()>,
}

/// Requests received by a portal, by path.
pub type Hits = Arc<Mutex<std::collections::BTreeMap<String, usize>>>;

/// Why requests were refused.
pub type Violations = Arc<Mutex<Vec<String>>>;

fn counted(router: Router, hits: Hits) -> Router {
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: axum::middleware::Next| {
            let hits = hits.clone();
            async move {
                *hits
                    .lock()
                    .unwrap()
                    .entry(req.uri().path().to_owned())
                    .or_default() += 1;
                next.run(req).await
            }
        },
    ))
}

impl Drop for Portal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Portal {
    /// Serves the mock of `provider` over plain HTTP.
    pub async fn start(provider: &str) -> Portal {
        Portal::start_variant(provider, Variant::Hops).await
    }

    /// Serves the mock of `provider`, setting its cookies as `variant` says.
    pub async fn start_variant(provider: &str, variant: Variant) -> Portal {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Hits::default();
        let violations = Violations::default();
        let app = counted(router(provider, violations.clone(), variant), hits.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Portal {
            addr,
            hits,
            violations,
            task,
        }
    }

    /// Serves the mock of `provider` over HTTPS with this certificate.
    pub async fn start_tls(provider: &str, cert_pem: &str, key_pem: &str) -> Portal {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Hits::default();
        let violations = Violations::default();
        let app = counted(
            router(provider, violations.clone(), Variant::Hops),
            hits.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client refusing our certificate ends the handshake.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        tower::ServiceExt::oneshot(app.clone(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Portal {
            addr,
            hits,
            violations,
            task,
        }
    }

    /// Requests received on `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// The refused requests, for an assertion message.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn https_base(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// The mock routes of `provider`.
pub fn router(provider: &str, violations: Violations, variant: Variant) -> Router {
    let m = Mock {
        violations,
        variant,
    };
    let r = match provider {
        "Vultr" => Router::new().route("/v2/account", get(vultr)),
        "ArubaCloud" => {
            Router::new().route("/WsEndUser/v2.9/WsEndUser.svc/json/GetCredit", post(aruba))
        }
        "AlmatelRussia" => Router::new()
            .route("/lk/login.php", post(almatel_login).get(almatel_login_done))
            .route("/lk/", get(almatel_page)),
        "FreedomVrnRussia" => Router::new().route("/lk/api/v1", post(freedom)),
        "MegafonRussiaB2C" => Router::new()
            .route("/mlk/api/auth/sessionCheck", get(megafon_check))
            .route("/mlk/api/auth/session", get(megafon_session))
            .route("/mlk/api/login", post(megafon_login))
            .route("/mlk/api/main/balance", get(megafon_balance))
            .route("/mlk/api/logout", get(megafon_logout)),
        "T2RussiaB2C" => Router::new()
            .route("/lk", get(t2_redirect))
            .route("/lk/", get(t2_page))
            .route(
                "/auth/realms/tele2-b2c/protocol/openid-connect/token",
                post(t2_token),
            )
            .route("/api/subscribers/{id}/balance", get(t2_balance)),
        "WifireRussia" => Router::new()
            .route("/api/v1/get-way", get(wifire_way))
            .route("/api/v1/get-way/done", get(wifire_way_done))
            .route("/api/v2/login", post(wifire_login))
            .route("/api/v1/get-balance", get(wifire_balance))
            .route("/logout", get(wifire_logout)),
        other => panic!("no mock for {other}"),
    };
    r.with_state(m)
}

/// A portal's shared state: where refusals are recorded.
#[derive(Clone)]
pub struct Mock {
    violations: Violations,
    variant: Variant,
}

/// Where MegaFon and T2 set the cookies of their first step.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    /// On a redirect hop, with a path narrower than the next request's.
    Hops,
    /// On the final answer of the first step: MegaFon's CSRF cookie with a
    /// narrow path, T2's session cookie with path `/`.
    Final,
    /// MegaFon: both cookies on the final answer, for the whole site.
    Simple,
}

impl Mock {
    fn checks(&self, what: &'static str) -> Checks {
        Checks {
            violations: self.violations.clone(),
            what,
            errors: Vec::new(),
        }
    }
}

/// What one request got wrong.
struct Checks {
    violations: Violations,
    what: &'static str,
    errors: Vec<String>,
}

impl Checks {
    fn fail(&mut self, msg: impl Into<String>) {
        self.errors.push(msg.into());
    }

    /// A header with exactly this value.
    fn header(&mut self, h: &HeaderMap, name: &str, want: &str) {
        match h.get(name).map(|v| v.to_str().unwrap_or("<binary>")) {
            Some(v) if v == want => {}
            Some(v) => self.fail(format!("header {name}: {v:?}, expected {want:?}")),
            None => self.fail(format!("header {name} missing (expected {want:?})")),
        }
    }

    /// What every request of the original has: its user agent (one of
    /// `service.user_agents`, or ours when the list is empty) and
    /// requests' `Accept: */*`.
    fn common(&mut self, h: &HeaderMap) {
        let ua = h
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !(ua == "TestAgent/1.0" || ua.starts_with("exporter-proxy/")) {
            self.fail(format!("user agent {ua:?}"));
        }
        self.header(h, "accept", "*/*");
    }

    /// The value of cookie `name`, which must be sent.
    fn cookie(&mut self, h: &HeaderMap, name: &str) -> String {
        let v = cookie(h, name);
        if v.is_none() {
            let sent = h
                .get_all("cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join("; ");
            // Names only: values may carry a scenario (a password).
            let names: Vec<&str> = sent
                .split(';')
                .filter_map(|kv| kv.trim().split_once('=').map(|(k, _)| k))
                .collect();
            self.fail(format!("cookie {name} not sent (sent: {names:?})"));
        }
        v.unwrap_or_default()
    }

    /// A form body with exactly these fields.
    fn form(&mut self, h: &HeaderMap, body: &[u8], fields: &[&str]) -> Vec<(String, String)> {
        self.header(h, "content-type", "application/x-www-form-urlencoded");
        let f: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
        let mut names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        let mut want = fields.to_vec();
        want.sort_unstable();
        if names != want {
            self.fail(format!("form fields {names:?}, expected {want:?}"));
        }
        f
    }

    /// A JSON body (`Content-Type: application/json`) whose object at
    /// `path` has exactly `keys`.
    fn json(&mut self, h: &HeaderMap, body: &[u8]) -> Value {
        self.header(h, "content-type", "application/json");
        serde_json::from_slice(body).unwrap_or_else(|_| {
            self.fail("body is not JSON");
            Value::Null
        })
    }

    fn keys(&mut self, v: &Value, at: &str, keys: &[&str]) {
        let mut got: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        got.sort_unstable();
        let mut want = keys.to_vec();
        want.sort_unstable();
        if got != want {
            self.fail(format!("JSON keys of {at}: {got:?}, expected {want:?}"));
        }
    }

    /// A login or account number sent as text: the text written in the file.
    fn login_text(&mut self, s: &str) {
        if matches!(s, "891" | "891.0" | "83" | "123456.0") {
            self.fail(format!(
                "identifier sent as {s:?}: the file's text was lost"
            ));
        }
    }

    /// An identifier in a JSON body, typed as the original's PyYAML typed
    /// it; returns its text.
    fn identifier_json(&mut self, v: &Value) -> String {
        match v {
            Value::String(s) => {
                let decimal = !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_digit())
                    && (s == "0" || !s.starts_with('0'));
                if decimal {
                    self.fail(format!(
                        "identifier {s:?} sent as a string: the original sent the number"
                    ));
                }
                self.login_text(s);
                s.clone()
            }
            Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
            other => {
                self.fail(format!("identifier sent as {other}"));
                String::new()
            }
        }
    }

    /// The scenario of a password sent as text (a form field, a header).
    fn password_text(&mut self, s: &str) -> String {
        match s {
            "0891" => "ok:8.91".to_owned(),
            "0123" => "ok:1.23".to_owned(),
            "123456" => "ok:1234.56".to_owned(),
            "891" | "891.0" | "83" | "123456.0" => {
                self.fail(format!(
                    "password sent as {s:?}: the text written in the file was lost"
                ));
                String::new()
            }
            s => s.to_owned(),
        }
    }

    /// The scenario of a password in a JSON body, typed as the original
    /// sent it.
    fn password_json(&mut self, v: &Value) -> String {
        match v {
            Value::String(s) if matches!(s.as_str(), "123456" | "0123" | "83") => {
                self.fail(format!(
                    "password {s:?} sent as a string: the original sent a number"
                ));
                String::new()
            }
            Value::String(s) => self.password_text(s),
            Value::Number(n) if n.as_u64() == Some(123_456) => "ok:1234.56".to_owned(),
            // `password: 0123` is octal 83 to PyYAML: the original sent 83.
            Value::Number(n) if n.as_u64() == Some(83) => "ok:1.23".to_owned(),
            other => {
                self.fail(format!("password sent as {other}"));
                String::new()
            }
        }
    }

    /// `Some(400)` when something was wrong (recorded with the step).
    fn refused(self) -> Option<Response> {
        if self.errors.is_empty() {
            return None;
        }
        let msg = format!("{}: {}", self.what, self.errors.join("; "));
        self.violations.lock().unwrap().push(msg.clone());
        Some((StatusCode::BAD_REQUEST, msg).into_response())
    }
}

/// Waits "forever" (past any test timeout), for the `hang` scenario.
async fn hang() -> Response {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    StatusCode::OK.into_response()
}

fn e500() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

/// The balance as JSON: a number when it is one, else the text.
fn amount(text: &str) -> Value {
    text.parse::<f64>()
        .map(|f| json!(f))
        .unwrap_or_else(|_| json!(text))
}

/// The answer of a balance step for scenario `sc`, the balance wrapped.
fn balance_answer(sc: &str, wrap: impl Fn(Value) -> Value) -> Response {
    match sc {
        "nonjson" => ([("content-type", "text/html")], "<html>maintenance</html>").into_response(),
        "empty" => StatusCode::OK.into_response(),
        "layout" => axum::Json(wrap(json!({"moved": 1}))).into_response(),
        "jwtmsg" => axum::Json(wrap(json!(4.5))).into_response(),
        "pyzero" => axum::Json(wrap(json!(6.5))).into_response(),
        _ => match sc.strip_prefix("ok:") {
            Some(b) => axum::Json(wrap(amount(b))).into_response(),
            None => (StatusCode::FORBIDDEN, "no session").into_response(),
        },
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(v))
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn field<'a>(form: &'a [(String, String)], k: &str) -> &'a str {
    form.iter()
        .find(|(n, _)| n == k)
        .map_or("", |(_, v)| v.as_str())
}

/// A bearer token `name: Bearer <token>`, which must be sent.
fn bearer(c: &mut Checks, headers: &HeaderMap, name: &str) -> String {
    match headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        Some(t) => decode(t),
        None => {
            c.fail(format!("header {name}: no `Bearer <token>`"));
            String::new()
        }
    }
}

async fn body(req: Request) -> (HeaderMap, axum::body::Bytes) {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (parts.headers, bytes)
}

fn redirect(location: &str, set_cookie: &str) -> Response {
    (
        StatusCode::FOUND,
        [("location", location), ("set-cookie", set_cookie)],
    )
        .into_response()
}

// ---- Vultr: Authorization: Bearer <key>; credit is a negative balance ----

async fn vultr(State(m): State<Mock>, headers: HeaderMap) -> Response {
    let mut c = m.checks("GET /v2/account");
    c.common(&headers);
    let key = bearer(&mut c, &headers, "authorization");
    let sc = c.password_text(&key);
    if let Some(r) = c.refused() {
        return r;
    }
    // What Vultr reports is owed: the opposite of the balance asked for.
    let owed = |b: Value| match b {
        Value::Number(n) => json!(-n.as_f64().unwrap()),
        Value::String(s) => json!(s.strip_prefix('-').map_or(format!("-{s}"), str::to_owned)),
        other => other,
    };
    match sc.as_str() {
        "hang" => hang().await,
        "e500" => e500(),
        "wrong" => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "Invalid API token.", "status": 401})),
        )
            .into_response(),
        _ => balance_answer(&sc, |b| {
            let b = if b.is_object() { b } else { owed(b) };
            json!({"account": {"name": "n", "email": "e@x", "acls": [], "balance": b, "pending_charges": 1.5}})
        }),
    }
}

// ---- Aruba: credentials in the JSON body ----

async fn aruba(State(m): State<Mock>, req: Request) -> Response {
    let mut c = m.checks("POST GetCredit");
    let (headers, bytes) = body(req).await;
    c.common(&headers);
    let v = c.json(&headers, &bytes);
    c.keys(&v, "the body", &["Username", "Password"]);
    c.identifier_json(&v["Username"]);
    let sc = c.password_json(&v["Password"]);
    if let Some(r) = c.refused() {
        return r;
    }
    match sc.as_str() {
        "hang" => hang().await,
        "e500" => e500(),
        "wrong" => {
            axum::Json(json!({"Success": false, "ResultCode": 11, "Value": null})).into_response()
        }
        _ => balance_answer(
            &sc,
            |b| json!({"Success": true, "ResultCode": 0, "Value": {"Value": b}}),
        ),
    }
}

// ---- Almatel: form login (its cookie set on a redirect hop), an HTML page ----

async fn almatel_login(State(m): State<Mock>, req: Request) -> Response {
    let mut c = m.checks("POST /lk/login.php");
    let (headers, bytes) = body(req).await;
    c.common(&headers);
    c.header(&headers, "x-requested-with", "XMLHttpRequest");
    let referer = headers
        .get("referer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if referer != format!("http://{host}/lk/login.php") {
        c.fail(format!("header referer {referer:?}"));
    }
    let f = c.form(&headers, &bytes, &["login", "password"]);
    c.login_text(field(&f, "login"));
    let sc = c.password_text(field(&f, "password"));
    if let Some(r) = c.refused() {
        return r;
    }
    match sc.as_str() {
        "hang" => hang().await,
        "e500" => e500(),
        "wrong" => axum::Json(json!({"ok": false, "error": "bad login"})).into_response(),
        // The session cookie comes with a redirect, for the cabinet only.
        _ => redirect(
            "/lk/login.php?done=1",
            &format!("PHPSESSID={}; Path=/lk/; HttpOnly", encode(&sc)),
        ),
    }
}

async fn almatel_login_done(State(m): State<Mock>, headers: HeaderMap) -> Response {
    let mut c = m.checks("GET /lk/login.php?done=1");
    c.common(&headers);
    c.cookie(&headers, "PHPSESSID");
    if let Some(r) = c.refused() {
        return r;
    }
    axum::Json(json!({"ok": true})).into_response()
}

async fn almatel_page(State(m): State<Mock>, headers: HeaderMap) -> Response {
    let mut c = m.checks("GET /lk/");
    c.common(&headers);
    let Some(sc) = cookie(&headers, "PHPSESSID") else {
        return ([("content-type", "text/html")], "<html>login form</html>").into_response();
    };
    if let Some(r) = c.refused() {
        return r;
    }
    let value = match sc.strip_prefix("ok:") {
        Some(b) => b.replace('.', ","),
        None => String::new(),
    };
    // The amount is the span's first text node, the unit nested markup.
    let span = if sc == "layout" {
        r#"<span class="new-balance">?</span>"#.to_owned()
    } else {
        format!(r#"<span class="question-block-value">{value} <small>руб./мес.</small></span>"#)
    };
    let page = format!(
        r#"<html><body><div class="lk__profile--block lk__profile-balance"><div><div>
<span class="question-block-title">Баланс</span>{span}</div></div></div></body></html>"#
    );
    ([("content-type", "text/html; charset=utf-8")], page).into_response()
}

// ---- Freedom-VRN: auth → Ic-Token → getClient ----

async fn freedom(State(m): State<Mock>, req: Request) -> Response {
    let (headers, bytes) = body(req).await;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    match v["method"].as_str() {
        Some("auth") => {
            let mut c = m.checks("POST /lk/api/v1 auth");
            c.common(&headers);
            let v = c.json(&headers, &bytes);
            c.keys(&v, "the body", &["method", "params"]);
            c.keys(&v["params"], "params", &["username", "password"]);
            c.identifier_json(&v["params"]["username"]);
            let sc = c.password_json(&v["params"]["password"]);
            if let Some(r) = c.refused() {
                return r;
            }
            match sc.as_str() {
                "hang" => hang().await,
                "e500" => e500(),
                "wrong" => axum::Json(json!({"error": 1, "token": ""})).into_response(),
                // Python's `== 0` takes `false` too.
                "pyzero" => {
                    axum::Json(json!({"error": false, "token": encode(&sc)})).into_response()
                }
                _ => axum::Json(json!({"error": 0, "token": encode(&sc)})).into_response(),
            }
        }
        Some("getClient") => {
            let mut c = m.checks("POST /lk/api/v1 getClient");
            c.common(&headers);
            let v = c.json(&headers, &bytes);
            c.keys(&v, "the body", &["method", "params"]);
            c.keys(&v["params"], "params", &[]);
            let sc = headers
                .get("ic-token")
                .and_then(|v| v.to_str().ok())
                .map(decode)
                .unwrap_or_else(|| {
                    c.fail("header ic-token missing");
                    String::new()
                });
            if let Some(r) = c.refused() {
                return r;
            }
            balance_answer(&sc, |b| json!({"client": {"billing": {"balance": b}}}))
        }
        _ => (StatusCode::BAD_REQUEST, "unknown method").into_response(),
    }
}

// ---- MegaFon: CSRF cookie (on a redirect hop, narrow path) → form login → JWT ----

fn megafon_common(c: &mut Checks, h: &HeaderMap) {
    c.common(h);
    c.header(h, "x-app-type", "react_lk");
    c.header(h, "x-cabinet-capabilities", "web-2020");
}

async fn megafon_check(State(m): State<Mock>, headers: HeaderMap) -> Response {
    let mut c = m.checks("GET /mlk/api/auth/sessionCheck");
    megafon_common(&mut c, &headers);
    if let Some(r) = c.refused() {
        return r;
    }
    if m.variant != Variant::Hops {
        // Both cookies at once; the CSRF one for /mlk/api/auth only (Final).
        let csrf = if m.variant == Variant::Final {
            "NEW-CSRF-TOKEN=csrf123; Path=/mlk/api/auth"
        } else {
            "NEW-CSRF-TOKEN=csrf123; Path=/"
        };
        let mut r = axum::Json(json!({"authenticated": false})).into_response();
        for c in [csrf, "SESSION=sess1; Path=/mlk"] {
            r.headers_mut().append("set-cookie", c.parse().unwrap());
        }
        return r;
    }
    // The CSRF cookie is set on the redirect, for /mlk/api/auth only: the
    // login (/mlk/api/login) gets it only as the original sends it, from
    // the whole jar.
    redirect(
        "/mlk/api/auth/session",
        "NEW-CSRF-TOKEN=csrf123; Path=/mlk/api/auth",
    )
}

async fn megafon_session(State(m): State<Mock>, headers: HeaderMap) -> Response {
    let mut c = m.checks("GET /mlk/api/auth/session");
    megafon_common(&mut c, &headers);
    c.cookie(&headers, "NEW-CSRF-TOKEN");
    if let Some(r) = c.refused() {
        return r;
    }
    (
        [("set-cookie", "SESSION=sess1; Path=/mlk")],
        axum::Json(json!({"authenticated": false})),
    )
        .into_response()
}

async fn megafon_login(State(m): State<Mock>, req: Request) -> Response {
    let mut c = m.checks("POST /mlk/api/login");
    let (headers, bytes) = body(req).await;
    megafon_common(&mut c, &headers);
    c.header(&headers, "x-csrf-token", "csrf123");
    if c.cookie(&headers, "NEW-CSRF-TOKEN") != "csrf123" {
        c.fail("cookie NEW-CSRF-TOKEN: wrong value");
    }
    if c.cookie(&headers, "SESSION") != "sess1" {
        c.fail("cookie SESSION: wrong value");
    }
    let f = c.form(&headers, &bytes, &["login", "password"]);
    c.login_text(field(&f, "login"));
    let sc = c.password_text(field(&f, "password"));
    if let Some(r) = c.refused() {
        return r;
    }
    let msg = |m: &str| axum::Json(json!({"code": "a216", "message": m})).into_response();
    match sc.as_str() {
        "hang" => hang().await,
        "e500" => e500(),
        "wrong" => (
            StatusCode::UNAUTHORIZED,
            msg("Неправильный номер телефона или пароль"),
        )
            .into_response(),
        "captcha" => msg("Введите код с картинки"),
        "ratelimit" => msg("Превышено количество попыток входа с использованием пароля"),
        // A success whose page also carries a login-form text.
        "jwtmsg" => {
            axum::Json(json!({"jwtToken": "jwtmsg", "hint": "Как получить пароль"})).into_response()
        }
        _ => axum::Json(json!({"jwtToken": encode(&sc), "name": "n"})).into_response(),
    }
}

async fn megafon_balance(State(m): State<Mock>, headers: HeaderMap) -> Response {
    let mut c = m.checks("GET /mlk/api/main/balance");
    megafon_common(&mut c, &headers);
    let sc = bearer(&mut c, &headers, "x-cabinet-authorization");
    c.cookie(&headers, "SESSION");
    if let Some(r) = c.refused() {
        return r;
    }
    balance_answer(&sc, |b| json!({"balance": 1, "balanceWithLimit": b}))
}

async fn megafon_logout(State(m): State<Mock>, headers: HeaderMap) -> Response {
    let mut c = m.checks("GET /mlk/api/logout");
    megafon_common(&mut c, &headers);
    bearer(&mut c, &headers, "x-cabinet-authorization");
    if let Some(r) = c.refused() {
        return r;
    }
    e500()
}

// ---- T2: session cookie on a redirect hop, CSRF meta tags → password grant ----

async fn t2_redirect(State(m): State<Mock>, headers: HeaderMap) -> Response {
    let mut c = m.checks("GET /lk");
    c.common(&headers);
    if let Some(r) = c.refused() {
        return r;
    }
    if m.variant == Variant::Final {
        // The page itself, its session cookie for the whole site.
        let (status, headers_out, page) = t2_page_parts();
        let mut r = (status, headers_out, page).into_response();
        r.headers_mut()
            .append("set-cookie", "session-cookie=s1; Path=/".parse().unwrap());
        return r;
    }
    // The session cookie comes with the redirect, for /lk only: the token
    // request gets it only as the original sends it, from the whole jar.
    redirect("/lk/", "session-cookie=s1; Path=/lk")
}

fn t2_page_parts() -> (StatusCode, [(&'static str, &'static str); 1], &'static str) {
    (
        StatusCode::OK,
        [("content-type", "text/html")],
        r#"<html><head><meta name="csrf-token-name" content="csrftoken"><meta name="csrf-token-value" content="tv1"></head></html>"#,
    )
}

async fn t2_page(State(m): State<Mock>, headers: HeaderMap) -> Response {
    let mut c = m.checks("GET /lk/");
    c.common(&headers);
    c.cookie(&headers, "session-cookie");
    if let Some(r) = c.refused() {
        return r;
    }
    t2_page_parts().into_response()
}

async fn t2_token(State(m): State<Mock>, req: Request) -> Response {
    let mut c = m.checks("POST openid-connect/token");
    let (headers, bytes) = body(req).await;
    c.common(&headers);
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    c.header(&headers, "authority", &host);
    c.header(&headers, "x-requested-with", "XMLHttpRequest");
    c.header(&headers, "x-csrftoken", "tv1");
    for (name, want) in [
        ("session-cookie", "s1"),
        ("csrf-token-name", "csrftoken"),
        ("csrf-token-value", "tv1"),
    ] {
        if c.cookie(&headers, name) != want {
            c.fail(format!("cookie {name}: wrong value"));
        }
    }
    let f = c.form(
        &headers,
        &bytes,
        &[
            "username",
            "password",
            "client_id",
            "grant_type",
            "password_type",
        ],
    );
    for (k, want) in [
        ("client_id", "digital-suite-web-app"),
        ("grant_type", "password"),
        ("password_type", "password"),
    ] {
        if field(&f, k) != want {
            c.fail(format!("form field {k}: {:?}", field(&f, k)));
        }
    }
    let user = field(&f, "username").to_owned();
    c.login_text(&user);
    let sc = c.password_text(field(&f, "password"));
    if let Some(r) = c.refused() {
        return r;
    }
    match sc.as_str() {
        "hang" => hang().await,
        "e500" => e500(),
        // What the real portal does now: a one-time code is required.
        "wrong" => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_grant", "error_description": "OTP required"})),
        )
            .into_response(),
        _ => axum::Json(
            json!({"access_token": encode(&format!("{user}|{sc}")), "token_type": "bearer"}),
        )
        .into_response(),
    }
}

async fn t2_balance(State(m): State<Mock>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut c = m.checks("GET /api/subscribers/<id>/balance");
    c.common(&headers);
    let token = bearer(&mut c, &headers, "authorization");
    let (user, sc) = token.split_once('|').unwrap_or(("", ""));
    if user != id {
        c.fail(format!(
            "balance of {id:?} asked with the token of {user:?}"
        ));
    }
    let sc = sc.to_owned();
    if let Some(r) = c.refused() {
        return r;
    }
    balance_answer(
        &sc,
        |b| json!({"meta": {"status": "OK"}, "data": {"value": b}}),
    )
}

// ---- Wifire: cookie priming (on a redirect hop) → JSON login → balance → logout ----

async fn wifire_way(
    State(m): State<Mock>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let mut c = m.checks("GET /api/v1/get-way");
    c.common(&headers);
    match &q[..] {
        [(k, v)] if k == "accountNumber" => c.login_text(v),
        _ => c.fail(format!("query {q:?}, expected accountNumber only")),
    }
    if let Some(r) = c.refused() {
        return r;
    }
    redirect("/api/v1/get-way/done", "way=1; Path=/api")
}

async fn wifire_way_done(State(m): State<Mock>, headers: HeaderMap) -> Response {
    let mut c = m.checks("GET /api/v1/get-way/done");
    c.common(&headers);
    c.cookie(&headers, "way");
    if let Some(r) = c.refused() {
        return r;
    }
    axum::Json(json!({"way": "pass"})).into_response()
}

async fn wifire_login(State(m): State<Mock>, req: Request) -> Response {
    let mut c = m.checks("POST /api/v2/login");
    let (headers, bytes) = body(req).await;
    c.common(&headers);
    if c.cookie(&headers, "way") != "1" {
        c.fail("cookie way: wrong value (jar not primed)");
    }
    let v = c.json(&headers, &bytes);
    c.keys(
        &v,
        "the body",
        &["accountNumber", "password", "captchaCode", "save"],
    );
    if v["save"] != json!("true") {
        c.fail(format!("save: {}, expected \"true\"", v["save"]));
    }
    if v["captchaCode"] != json!("") {
        c.fail(format!("captchaCode: {}", v["captchaCode"]));
    }
    c.identifier_json(&v["accountNumber"]);
    let sc = c.password_json(&v["password"]);
    if let Some(r) = c.refused() {
        return r;
    }
    match sc.as_str() {
        "hang" => hang().await,
        "e500" => e500(),
        "wrong" => {
            axum::Json(json!({"resultCode": 3, "message": "wrong password"})).into_response()
        }
        _ => (
            [("set-cookie", format!("sid={}; Path=/api/v1", encode(&sc)))],
            // Python's `== 0` takes `0.0` too.
            axum::Json(json!({"resultCode": if sc == "pyzero" { json!(0.0) } else { json!(0) }})),
        )
            .into_response(),
    }
}

async fn wifire_balance(State(m): State<Mock>, headers: HeaderMap) -> Response {
    let mut c = m.checks("GET /api/v1/get-balance");
    c.common(&headers);
    let sc = c.cookie(&headers, "sid");
    c.cookie(&headers, "way");
    if let Some(r) = c.refused() {
        return r;
    }
    let code = if sc == "pyzero" {
        json!(false)
    } else {
        json!(0)
    };
    balance_answer(&sc, |b| json!({"statusCode": code, "accountBalance": b}))
}

async fn wifire_logout(State(m): State<Mock>, headers: HeaderMap) -> Response {
    let mut c = m.checks("GET /logout");
    c.common(&headers);
    if let Some(r) = c.refused() {
        return r;
    }
    e500()
}
