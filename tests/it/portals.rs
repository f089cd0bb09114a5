//! Mock self-service portals: one axum server per provider on loopback,
//! speaking each portal's documented flow. What a portal does is chosen by
//! the password (every flow sends it), carried through the flow in the
//! session cookie or token it hands out:
//!
//! * `ok:<balance>`: success; the balance is a JSON number when it parses
//!   as one, else a string (`ok:1 234,56`), and text on Almatel's page;
//! * `wrong`: the portal refuses the credentials;
//! * `layout`: the balance is missing from the answer (changed layout);
//! * `nonjson` / `empty`: the balance answer is HTML / empty;
//! * `e500`: HTTP 500 where the password is first seen;
//! * `hang`: no answer where the password is first seen;
//! * `captcha` / `ratelimit`: MegaFon's login answers.
//!
//! Logouts always fail with 500: a good balance must survive them.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Query, Request};
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
    task: tokio::task::JoinHandle<()>,
}

/// Requests received by a portal, by path.
pub type Hits = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>;

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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Hits::default();
        let app = counted(router(provider), hits.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Portal { addr, hits, task }
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
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Hits::default();
        let app = counted(router(provider), hits.clone());
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
        Portal { addr, hits, task }
    }

    /// Requests received on `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn https_base(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// The mock routes of `provider`.
pub fn router(provider: &str) -> Router {
    match provider {
        "Vultr" => Router::new().route("/v2/account", get(vultr)),
        "ArubaCloud" => {
            Router::new().route("/WsEndUser/v2.9/WsEndUser.svc/json/GetCredit", post(aruba))
        }
        "AlmatelRussia" => Router::new()
            .route("/lk/login.php", post(almatel_login))
            .route("/lk/", get(almatel_page)),
        "FreedomVrnRussia" => Router::new().route("/lk/api/v1", post(freedom)),
        "MegafonRussiaB2C" => Router::new()
            .route("/mlk/api/auth/sessionCheck", get(megafon_check))
            .route("/mlk/api/login", post(megafon_login))
            .route("/mlk/api/main/balance", get(megafon_balance))
            .route("/mlk/api/logout", get(logout)),
        "T2RussiaB2C" => Router::new()
            .route("/lk", get(t2_page))
            .route(
                "/auth/realms/tele2-b2c/protocol/openid-connect/token",
                post(t2_token),
            )
            .route("/api/subscribers/{id}/balance", get(t2_balance)),
        "WifireRussia" => Router::new()
            .route("/api/v1/get-way", get(wifire_way))
            .route("/api/v2/login", post(wifire_login))
            .route("/api/v1/get-balance", get(wifire_balance))
            .route("/logout", get(logout)),
        other => panic!("no mock for {other}"),
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

/// The answer of a balance step for scenario `sc`, the balance at `key`.
fn balance_answer(sc: &str, wrap: impl Fn(Value) -> Value) -> Response {
    match sc {
        "nonjson" => ([("content-type", "text/html")], "<html>maintenance</html>").into_response(),
        "empty" => StatusCode::OK.into_response(),
        "layout" => axum::Json(wrap(json!({"moved": 1}))).into_response(),
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

fn bearer(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(decode)
        .unwrap_or_default()
}

async fn form(req: Request) -> Vec<(String, String)> {
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    url::form_urlencoded::parse(&body).into_owned().collect()
}

fn field<'a>(form: &'a [(String, String)], k: &str) -> &'a str {
    form.iter()
        .find(|(n, _)| n == k)
        .map_or("", |(_, v)| v.as_str())
}

async fn logout() -> Response {
    e500()
}

// ---- Vultr: Authorization: Bearer <key> ----

/// The user agent is one of `service.user_agents` (or ours when the list
/// is empty), never reqwest's default.
fn check_user_agent(headers: &HeaderMap) {
    let ua = headers.get("user-agent").unwrap().to_str().unwrap();
    assert!(
        ua == "TestAgent/1.0" || ua.starts_with("exporter-proxy/"),
        "user agent {ua:?}"
    );
}

async fn vultr(headers: HeaderMap) -> Response {
    check_user_agent(&headers);
    let sc = bearer(&headers, "authorization");
    match sc.as_str() {
        "hang" => hang().await,
        "e500" => e500(),
        "wrong" => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "Invalid API token.", "status": 401})),
        )
            .into_response(),
        _ => balance_answer(
            &sc,
            |b| json!({"account": {"name": "n", "email": "e@x", "acls": [], "balance": b, "pending_charges": 1.5}}),
        ),
    }
}

// ---- Aruba: credentials in the JSON body ----

async fn aruba(headers: HeaderMap, body: String) -> Response {
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/json",
        "aruba content type"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    let sc = v["Password"].as_str().unwrap_or_default().to_owned();
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

// ---- Almatel: form login, then an HTML page ----

async fn almatel_login(req: Request) -> Response {
    let xrw = req.headers().get("x-requested-with").cloned();
    let referer = req.headers().get("referer").cloned();
    let f = form(req).await;
    assert_eq!(xrw.unwrap(), "XMLHttpRequest");
    assert!(referer
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with("/lk/login.php"));
    let sc = field(&f, "password").to_owned();
    match sc.as_str() {
        "hang" => hang().await,
        "e500" => e500(),
        "wrong" => axum::Json(json!({"ok": false, "error": "bad login"})).into_response(),
        _ => (
            [("set-cookie", format!("PHPSESSID={}; Path=/", encode(&sc)))],
            axum::Json(json!({"ok": true})),
        )
            .into_response(),
    }
}

async fn almatel_page(headers: HeaderMap) -> Response {
    check_user_agent(&headers);
    let Some(sc) = cookie(&headers, "PHPSESSID") else {
        return ([("content-type", "text/html")], "<html>login form</html>").into_response();
    };
    let value = match sc.strip_prefix("ok:") {
        Some(b) => b.replace('.', ","),
        None => String::new(),
    };
    let span = if sc == "layout" {
        r#"<span class="new-balance">?</span>"#.to_owned()
    } else {
        format!(r#"<span class="question-block-value">{value}</span>"#)
    };
    let page = format!(
        r#"<html><body><div class="lk__profile--block lk__profile-balance"><div><div>
<span class="question-block-title">Баланс</span>{span}</div></div></div></body></html>"#
    );
    ([("content-type", "text/html; charset=utf-8")], page).into_response()
}

// ---- Freedom-VRN: auth → Ic-Token → getClient ----

async fn freedom(headers: HeaderMap, body: String) -> Response {
    let v: Value = serde_json::from_str(&body).unwrap();
    match v["method"].as_str() {
        Some("auth") => {
            let sc = v["params"]["password"].as_str().unwrap_or_default();
            match sc {
                "hang" => hang().await,
                "e500" => e500(),
                "wrong" => axum::Json(json!({"error": 1, "token": ""})).into_response(),
                _ => axum::Json(json!({"error": 0, "token": encode(sc)})).into_response(),
            }
        }
        Some("getClient") => {
            let sc = headers
                .get("ic-token")
                .and_then(|v| v.to_str().ok())
                .map(decode)
                .unwrap_or_default();
            balance_answer(&sc, |b| json!({"client": {"billing": {"balance": b}}}))
        }
        _ => (StatusCode::BAD_REQUEST, "unknown method").into_response(),
    }
}

// ---- MegaFon: CSRF cookie → form login → JWT ----

async fn megafon_check(headers: HeaderMap) -> Response {
    assert_eq!(headers.get("x-app-type").unwrap(), "react_lk");
    assert_eq!(headers.get("x-cabinet-capabilities").unwrap(), "web-2020");
    (
        [("set-cookie", "NEW-CSRF-TOKEN=csrf123; Path=/")],
        axum::Json(json!({"authenticated": false})),
    )
        .into_response()
}

async fn megafon_login(req: Request) -> Response {
    let csrf_ok = req
        .headers()
        .get("x-csrf-token")
        .is_some_and(|v| v == "csrf123")
        && cookie(req.headers(), "NEW-CSRF-TOKEN").as_deref() == Some("csrf123");
    let f = form(req).await;
    if !csrf_ok {
        return (StatusCode::FORBIDDEN, "csrf").into_response();
    }
    let sc = field(&f, "password").to_owned();
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
        _ => axum::Json(json!({"jwtToken": encode(&sc), "name": "n"})).into_response(),
    }
}

async fn megafon_balance(headers: HeaderMap) -> Response {
    let sc = bearer(&headers, "x-cabinet-authorization");
    balance_answer(&sc, |b| json!({"balance": 1, "balanceWithLimit": b}))
}

// ---- T2: CSRF meta tags → Keycloak password grant → balance ----

async fn t2_page() -> Response {
    (
        [
            ("set-cookie", "session-cookie=s1; Path=/"),
            ("content-type", "text/html"),
        ],
        r#"<html><head><meta name="csrf-token-name" content="csrftoken"><meta name="csrf-token-value" content="tv1"></head></html>"#,
    )
        .into_response()
}

async fn t2_token(req: Request) -> Response {
    let csrf_ok = req.headers().get("x-csrftoken").is_some_and(|v| v == "tv1");
    let f = form(req).await;
    assert!(csrf_ok, "x-csrftoken header");
    assert_eq!(field(&f, "client_id"), "digital-suite-web-app");
    assert_eq!(field(&f, "grant_type"), "password");
    let sc = field(&f, "password").to_owned();
    match sc.as_str() {
        "hang" => hang().await,
        "e500" => e500(),
        // What the real portal does now: a one-time code is required.
        "wrong" => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_grant", "error_description": "OTP required"})),
        )
            .into_response(),
        _ => {
            axum::Json(json!({"access_token": encode(&sc), "token_type": "bearer"})).into_response()
        }
    }
}

async fn t2_balance(headers: HeaderMap) -> Response {
    let sc = bearer(&headers, "authorization");
    balance_answer(
        &sc,
        |b| json!({"meta": {"status": "OK"}, "data": {"value": b}}),
    )
}

// ---- Wifire: cookie priming → JSON login → balance → logout ----

async fn wifire_way(Query(q): Query<Vec<(String, String)>>) -> Response {
    assert!(q.iter().any(|(k, _)| k == "accountNumber"));
    (
        [("set-cookie", "way=1; Path=/")],
        axum::Json(json!({"way": "pass"})),
    )
        .into_response()
}

async fn wifire_login(headers: HeaderMap, body: String) -> Response {
    assert_eq!(cookie(&headers, "way").as_deref(), Some("1"), "primed jar");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["save"], json!("true"));
    assert_eq!(v["captchaCode"], json!(""));
    let sc = v["password"].as_str().unwrap_or_default().to_owned();
    match sc.as_str() {
        "hang" => hang().await,
        "e500" => e500(),
        "wrong" => {
            axum::Json(json!({"resultCode": 3, "message": "wrong password"})).into_response()
        }
        _ => (
            [("set-cookie", format!("sid={}; Path=/", encode(&sc)))],
            axum::Json(json!({"resultCode": 0})),
        )
            .into_response(),
    }
}

async fn wifire_balance(headers: HeaderMap) -> Response {
    check_user_agent(&headers);
    let sc = cookie(&headers, "sid").unwrap_or_default();
    balance_answer(&sc, |b| json!({"statusCode": 0, "accountBalance": b}))
}
