//! Config-driven API collectors against mock APIs on loopback (real HTTP,
//! axum): the three examples of `examples/collectors/` loaded as they are
//! (only the API's base URL replaced), every metric type, labels from
//! arrays, delta across a reset, the log-in flow with a CSRF token and a
//! cookie, a changed response shape, a timeout, promtool on the result,
//! and configuration errors naming the collector and the key.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get as route_get;
use axum::Router;
use serde_json::{json, Value};

use crate::support::*;

/// What the mock APIs answer; tests change it while the proxy runs.
#[derive(Default)]
struct Mock {
    /// `/v2/account` (`null`: hang, never answer).
    account: Mutex<Value>,
    /// `/api-reporting/v2/incidents`.
    incidents: Mutex<Value>,
    /// The portal's balance text.
    balance: Mutex<String>,
    /// CSRF tokens handed out by the log-in form.
    csrf: Mutex<Vec<String>>,
    logins: AtomicU64,
    balance_pages: AtomicU64,
    incident_requests: AtomicU64,
    /// Last query string of the incidents request.
    incidents_query: Mutex<String>,
    /// Every `startedAfter` asked for.
    started_after: Mutex<Vec<String>>,
}

type S = State<Arc<Mock>>;

fn json_response(v: &Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

async fn account(State(m): S, h: HeaderMap) -> Response {
    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer vultr-test-key") {
        return (StatusCode::UNAUTHORIZED, "{\"error\":\"invalid API key\"}").into_response();
    }
    let v = m.account.lock().unwrap().clone();
    if v.is_null() {
        std::future::pending::<()>().await;
    }
    json_response(&v)
}

async fn incidents(
    State(m): S,
    h: HeaderMap,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Response {
    let hdr = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if hdr("x-vo-api-id").as_deref() != Some("vo-id")
        || hdr("x-vo-api-key").as_deref() != Some("vo-key")
    {
        return StatusCode::FORBIDDEN.into_response();
    }
    let q = q.unwrap_or_default();
    *m.incidents_query.lock().unwrap() = q.clone();
    m.incident_requests.fetch_add(1, Ordering::SeqCst);
    let mut v = m.incidents.lock().unwrap().clone();
    // As the reporting API: `startedAfter` keeps the incidents started since.
    let after = url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "startedAfter")
        .map(|(_, v)| v.into_owned());
    if let (Some(after), Some(list)) = (after, v["incidents"].as_array_mut()) {
        m.started_after.lock().unwrap().push(after.clone());
        let after = chrono::DateTime::parse_from_rfc3339(&after).unwrap();
        list.retain(|i| {
            chrono::DateTime::parse_from_rfc3339(i["startTime"].as_str().unwrap()).unwrap() >= after
        });
    }
    json_response(&v)
}

async fn login_form(State(m): S) -> Response {
    let token = format!("tok{}", m.logins.load(Ordering::SeqCst) * 7 + 13);
    m.csrf.lock().unwrap().push(token.clone());
    axum::response::Html(format!(
        "<html><body><form id=\"login\" method=\"post\"><input type=\"hidden\" name=\"csrf_token\" value=\"{token}\"><input name=\"username\"><input type=\"password\" name=\"password\"></form></body></html>"
    ))
    .into_response()
}

async fn login_post(State(m): S, body: String) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let token_ok = get("csrf_token").is_some_and(|t| m.csrf.lock().unwrap().iter().any(|x| x == t));
    if !token_ok || get("username") != Some("alice") || get("password") != Some("s3cret pw") {
        return (StatusCode::FORBIDDEN, "bad login").into_response();
    }
    m.logins.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::SEE_OTHER,
        [
            ("location", "/account/balance"),
            ("set-cookie", "session=sess-42; Path=/; HttpOnly"),
        ],
    )
        .into_response()
}

async fn balance(State(m): S, h: HeaderMap) -> Response {
    let cookie = h.get("cookie").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !cookie.split(';').any(|c| c.trim() == "session=sess-42") {
        return (StatusCode::SEE_OTHER, [("location", "/login")]).into_response();
    }
    m.balance_pages.fetch_add(1, Ordering::SeqCst);
    axum::response::Html(format!(
        "<html><body><div id=\"balance\">Your balance: <span class=\"amount\">{}</span></div><p>Account status: active</p></body></html>",
        m.balance.lock().unwrap()
    ))
    .into_response()
}

/// Answers `{"got": <the JSON body>, "ctype": <its content type>}`.
async fn echo(h: HeaderMap, body: String) -> Response {
    let got: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let ctype = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    json_response(&json!({"got": got, "ctype": ctype}))
}

async fn start_mock(m: Arc<Mock>) -> SocketAddr {
    let app = Router::new()
        .route("/v2/account", route_get(account))
        .route("/api-reporting/v2/incidents", route_get(incidents))
        .route("/login", route_get(login_form).post(login_post))
        .route("/account/balance", route_get(balance))
        .route("/echo", axum::routing::post(echo))
        .with_state(m);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

/// A secret file in `dir` (tests never set environment variables: other
/// threads read the environment).
fn secret_file(dir: &Path, name: &str, value: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, value).unwrap();
    format!("{{ file = \"{}\" }}", p.display())
}

fn example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/collectors")
            .join(name),
    )
    .unwrap()
}

/// Writes the example with the API's base URL pointing at the mock, short
/// intervals, and `extra` replacements; returns the `collectors_file` line.
fn example_file(
    dir: &Path,
    name: &str,
    base: &str,
    addr: SocketAddr,
    replace: &[(&str, &str)],
) -> String {
    let mut text = example(name).replace(base, &format!("http://{addr}"));
    for (from, to) in replace {
        assert!(text.contains(from), "{from:?} not in {name}");
        text = text.replace(from, to);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    format!("collectors_file = \"{}\"\n", path.display())
}

async fn apps_entry(app: &TestApp, name: &str) -> Value {
    let body = get(app.http, "/apps?format=json").await.body_string();
    let v: Value = serde_json::from_str(&body).unwrap();
    let list = v
        .as_array()
        .cloned()
        .or_else(|| v["apps"].as_array().cloned())
        .unwrap();
    list.into_iter()
        .find(|a| a["name"] == name)
        .unwrap_or(Value::Null)
}

async fn value_of(app: &TestApp, m: Matcher) -> Option<f64> {
    m.get(&app.metrics().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vultr_example_keeps_the_sign_then_survives_a_changed_shape_and_a_timeout() {
    let mock = Arc::new(Mock::default());
    *mock.account.lock().unwrap() = json!({"account": {"name": "acme", "email": "ops@acme.test",
        "balance": -25.5, "pending_charges": "3.20", "last_payment_date": "2026-11-01T00:00:00+00:00",
        "last_payment_amount": -50}});
    let addr = start_mock(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let key = secret_file(dir.path(), "key", "vultr-test-key\n");
    let file = example_file(
        dir.path(),
        "vultr.toml",
        "https://api.vultr.com",
        addr,
        &[
            ("{ env = \"VULTR_API_KEY\" }", &key),
            ("interval = \"5m\"", "interval = \"200ms\""),
            ("timeout = \"20s\"", "timeout = \"150ms\""),
        ],
    );
    let app = TestApp::with_top(&file, "", "", "").await;

    eventually(|| async {
        value_of(&app, metric("vultr_account_balance_dollars")).await == Some(-25.5)
    })
    .await;
    let body = app.metrics().await;
    assert_eq!(
        metric("vultr_account_pending_charges_dollars").get(&body),
        Some(3.2)
    );
    assert!(
        body.contains("# HELP vultr_account_balance_dollars Vultr account balance"),
        "{body}"
    );
    let e = apps_entry(&app, "vultr").await;
    assert_eq!(e["kind"], "collector", "{e}");
    assert_eq!(e["status"], "up", "{e}");
    assert_eq!(
        metric("exporter_proxy_target_up")
            .label("target", "vultr")
            .get(&body),
        Some(1.0)
    );

    // A changed response shape: a clear error naming the path, the last
    // good values kept.
    *mock.account.lock().unwrap() = json!({"acct": {"balance": -1}});
    eventually(|| async { apps_entry(&app, "vultr").await["status"] == "down" }).await;
    let e = apps_entry(&app, "vultr").await;
    let err = e["last_error"].as_str().unwrap();
    assert!(
        err.contains("vultr_account_balance_dollars")
            && err.contains("account.balance")
            && err.contains("no key \"account\""),
        "{err}"
    );
    let body = app.metrics().await;
    assert_eq!(
        metric("vultr_account_balance_dollars").get(&body),
        Some(-25.5)
    );
    assert_eq!(
        metric("exporter_proxy_target_up")
            .label("target", "vultr")
            .get(&body),
        Some(0.0)
    );
    assert!(!err.contains("vultr-test-key"));

    // Back, then a timeout.
    *mock.account.lock().unwrap() = json!({"account": {"balance": "12.5", "pending_charges": 0}});
    eventually(|| async {
        value_of(&app, metric("vultr_account_balance_dollars")).await == Some(12.5)
    })
    .await;
    *mock.account.lock().unwrap() = Value::Null;
    eventually(|| async {
        apps_entry(&app, "vultr").await["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("timeout:"))
    })
    .await;
    assert_eq!(
        value_of(&app, metric("vultr_account_balance_dollars")).await,
        Some(12.5),
        "last good value kept until stale"
    );
    app.stop().await;
}

/// An incident of the reporting API's shape, times relative to `t0`.
fn vo_incident(
    n: &str,
    phase: &str,
    t0: chrono::DateTime<chrono::Utc>,
    start: i64,
    acked: Option<i64>,
    resolved: Option<i64>,
) -> Value {
    let at = |s: i64| {
        (t0 + chrono::Duration::seconds(s)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let mut transitions = Vec::new();
    for (name, t) in [("ACKED", acked), ("RESOLVED", resolved)] {
        if let Some(t) = t {
            transitions.push(json!({"name": name, "at": at(t), "by": "ann", "message": null, "manually": true, "alertId": "a1", "alertUrl": null}));
        }
    }
    json!({
        "incidentNumber": n, "startTime": at(start), "currentPhase": phase,
        "entityState": "CRITICAL", "entityType": "SERVICE", "routingKey": "default",
        "alertCount": 1, "lastAlertTime": at(start), "lastAlertId": "a1", "entityId": "e1",
        "host": "web-1", "service": "http", "pagedUsers": ["ann"], "pagedTeams": ["ops"],
        "pagedPolicies": [{"policy": {"name": "Ops", "slug": "pol-ops"}, "team": {"name": "Ops", "slug": "team-ops"}}],
        "transitions": transitions,
    })
}

/// Collectington's own example as configuration: the secret file of
/// `KEY="value"` lines, a request relative to now (`startedAfter`), the
/// mean times computed by jq expressions and observed once per poll, and
/// the incident counts by state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn victorops_example_computes_collectingtons_mean_times() {
    let mock = Arc::new(Mock::default());
    let t0 = chrono::Utc::now();
    *mock.incidents.lock().unwrap() = json!({"offset": 0, "limit": 20, "total": 4, "incidents": [
        // Started 50 s ago, acknowledged after 30 s, resolved after 45 s.
        vo_incident("1", "RESOLVED", t0, -50, Some(-20), Some(-5)),
        // Acknowledged after 10 s, not resolved.
        vo_incident("2", "ACKED", t0, -40, Some(-30), None),
        // Two hours ago: outside `startedAfter`.
        vo_incident("3", "RESOLVED", t0, -7200, Some(-7000), Some(-6000)),
        vo_incident("4", "UNACKED", t0, -10, None, None),
    ]});
    let addr = start_mock(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("splunk");
    std::fs::write(&secrets, "API_KEY=\"vo-key\"\nAPI_ID=\"vo-id\"\n").unwrap();
    let file = example_file(
        dir.path(),
        "victorops.yaml",
        "https://api.victorops.com",
        addr,
        &[
            ("/etc/exporter-proxy/splunk", secrets.to_str().unwrap()),
            ("interval: 1m", "interval: 200ms"),
            ("timeout: 20s", "timeout: 200ms"),
        ],
    );
    let app = TestApp::with_top(&file, "", "", "").await;
    let count = || metric("victorops_time_to_acknowledge_minutes_count");
    // Per poll: one observation each poll, so the count keeps growing.
    eventually(|| async { value_of(&app, count()).await >= Some(3.0) }).await;
    let body = app.metrics().await;
    let n = count().get(&body).unwrap();
    let sum = metric("victorops_time_to_acknowledge_minutes_sum")
        .get(&body)
        .unwrap();
    // The mean of 30 s and 10 s, in minutes, observed n times.
    assert!(
        (sum - n * (20.0 / 60.0)).abs() < 1e-9,
        "sum {sum} count {n}"
    );
    let n = metric("victorops_time_to_resolve_minutes_count")
        .get(&body)
        .unwrap();
    let sum = metric("victorops_time_to_resolve_minutes_sum")
        .get(&body)
        .unwrap();
    assert!(
        n >= 1.0 && (sum - n * 0.75).abs() < 1e-9,
        "sum {sum} count {n}"
    );
    assert_eq!(metric("victorops_incidents_total").get(&body), Some(4.0));
    for (state, v) in [("RESOLVED", 2.0), ("ACKED", 1.0), ("UNACKED", 1.0)] {
        assert_eq!(
            metric("victorops_incidents")
                .label("state", state)
                .get(&body),
            Some(v),
            "{state}"
        );
    }
    // `startedAfter` is one minute before each request, in RFC 3339.
    let asked = mock.started_after.lock().unwrap().clone();
    assert!(!asked.is_empty());
    for a in &asked {
        let t = chrono::DateTime::parse_from_rfc3339(a).unwrap();
        let ago = (t0 - t.with_timezone(&chrono::Utc)).num_seconds();
        assert!(
            (30..=61).contains(&ago),
            "startedAfter {a} is {ago} s before the test's start"
        );
    }
    // A minute without acknowledged incidents observes nothing (missing: skip)
    // and the collector stays up.
    *mock.incidents.lock().unwrap() =
        json!({"offset": 0, "limit": 20, "total": 4, "incidents": []});
    let before = value_of(&app, count()).await.unwrap();
    let polls = mock.incident_requests.load(Ordering::SeqCst);
    eventually(|| async { mock.incident_requests.load(Ordering::SeqCst) >= polls + 6 }).await;
    let body = app.metrics().await;
    let after = count().get(&body).unwrap();
    assert!(after <= before + 1.0, "{before} -> {after}");
    assert_eq!(apps_entry(&app, "victorops").await["status"], "up");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_example_counts_each_incident_once_and_delta_survives_a_reset() {
    let mock = Arc::new(Mock::default());
    let inc = |n: &str, team: &str, ack: Value, res: Value| json!({"incidentNumber": n, "pagedTeams": [team], "currentPhase": "RESOLVED", "ackSeconds": ack, "resolveSeconds": res});
    *mock.incidents.lock().unwrap() = json!({"total": 10, "incidents": [
        inc("1", "ops", json!(60), json!(600)),
        inc("2", "ops", json!(120), json!(4000)),
        inc("3", "web", json!(30), Value::Null),
    ]});
    let addr = start_mock(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let id = secret_file(dir.path(), "id", "vo-id");
    let key = secret_file(dir.path(), "key", "vo-key");
    let file = example_file(
        dir.path(),
        "incidents.yaml",
        "https://api.victorops.com",
        addr,
        &[
            ("{ env: VO_API_ID }", &id.replace(" = ", ": ")),
            ("{ env: VO_API_KEY }", &key.replace(" = ", ": ")),
            ("interval: 1m", "interval: 100ms"),
            ("timeout: 20s", "timeout: 100ms"),
        ],
    );
    let app = TestApp::with_top(&file, "", "", "").await;
    let ack_count = |team: &str| metric("oncall_incident_ack_seconds_count").label("team", team);
    eventually(|| async { value_of(&app, ack_count("ops")).await == Some(2.0) }).await;
    let body = app.metrics().await;
    assert_eq!(metric("oncall_incidents_total").get(&body), Some(10.0));
    assert_eq!(
        metric("oncall_incident_ack_seconds_sum")
            .label("team", "ops")
            .get(&body),
        Some(180.0)
    );
    assert_eq!(ack_count("web").get(&body), Some(1.0));
    // Histogram: cumulative buckets; incident 3 is not resolved yet.
    let bucket = |le: &str| {
        metric("oncall_incident_resolve_seconds_bucket")
            .label("team", "ops")
            .label("le", le)
    };
    assert_eq!(bucket("300").get(&body), Some(0.0));
    assert_eq!(bucket("900").get(&body), Some(1.0));
    assert_eq!(bucket("3600").get(&body), Some(1.0));
    assert_eq!(bucket("14400").get(&body), Some(2.0));
    assert_eq!(bucket("+Inf").get(&body), Some(2.0));
    assert_eq!(
        metric("oncall_incident_resolve_seconds_sum")
            .label("team", "ops")
            .get(&body),
        Some(4600.0)
    );
    assert!(!metric("oncall_incident_resolve_seconds_count")
        .label("team", "web")
        .is_in(&body));
    assert_eq!(*mock.incidents_query.lock().unwrap(), "limit=100");

    // The same response several more times: nothing is counted again.
    let seen = mock.incident_requests.load(Ordering::SeqCst);
    eventually(|| async { mock.incident_requests.load(Ordering::SeqCst) >= seen + 3 }).await;
    let body = app.metrics().await;
    assert_eq!(ack_count("ops").get(&body), Some(2.0));
    assert_eq!(
        metric("oncall_incident_resolve_seconds_count")
            .label("team", "ops")
            .get(&body),
        Some(2.0)
    );

    // Window moves: 1 leaves, 3 gets resolved, 4 arrives; total grows.
    *mock.incidents.lock().unwrap() = json!({"total": 15, "incidents": [
        inc("2", "ops", json!(120), json!(4000)),
        inc("3", "web", json!(30), json!(100)),
        inc("4", "web", json!(10), Value::Null),
    ]});
    eventually(|| async { value_of(&app, ack_count("web")).await == Some(2.0) }).await;
    let body = app.metrics().await;
    assert_eq!(ack_count("ops").get(&body), Some(2.0));
    assert_eq!(
        metric("oncall_incident_resolve_seconds_count")
            .label("team", "web")
            .get(&body),
        Some(1.0)
    );
    assert_eq!(
        metric("oncall_incident_resolve_seconds_sum")
            .label("team", "web")
            .get(&body),
        Some(100.0)
    );
    assert_eq!(metric("oncall_incidents_total").get(&body), Some(15.0));

    // Upstream reset: 15 → 3 counts as +3, never a decrease.
    *mock.incidents.lock().unwrap() = json!({"total": 3, "incidents": []});
    eventually(|| async { value_of(&app, metric("oncall_incidents_total")).await == Some(18.0) })
        .await;
    *mock.incidents.lock().unwrap() = json!({"total": 5, "incidents": []});
    eventually(|| async { value_of(&app, metric("oncall_incidents_total")).await == Some(20.0) })
        .await;
    let body = app.metrics().await;
    assert_eq!(
        ack_count("ops").get(&body),
        Some(2.0),
        "counts kept when the window is empty"
    );
    crate::interop::promtool_check(&body).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_example_logs_in_with_a_csrf_token_and_a_session_cookie() {
    let mock = Arc::new(Mock::default());
    *mock.balance.lock().unwrap() = "1.234,56 €".to_owned();
    let addr = start_mock(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret pw\n").unwrap();
    let user = secret_file(dir.path(), "user", "alice");
    let file = example_file(
        dir.path(),
        "portal.toml",
        "https://portal.example.net",
        addr,
        &[
            ("{ env = \"PORTAL_USER\" }", &user),
            ("interval = \"1h\"", "interval = \"200ms\""),
            ("timeout = \"30s\"", "timeout = \"200ms\""),
            (
                "/run/credentials/exporter-proxy.service/portal_password",
                pw.to_str().unwrap(),
            ),
        ],
    );
    let app = TestApp::with_top(&file, "", "", "").await;
    eventually(|| async { value_of(&app, metric("portal_balance_euros")).await == Some(1234.56) })
        .await;
    let body = app.metrics().await;
    assert_eq!(metric("portal_account_active").get(&body), Some(1.0));
    assert!(mock.logins.load(Ordering::SeqCst) >= 1);
    assert!(mock.balance_pages.load(Ordering::SeqCst) >= 1);

    // A number that does not parse: the error names the variable, the
    // last good value stays.
    *mock.balance.lock().unwrap() = "n/a".to_owned();
    eventually(|| async { apps_entry(&app, "portal").await["status"] == "down" }).await;
    let e = apps_entry(&app, "portal").await;
    let err = e["last_error"].as_str().unwrap();
    assert!(
        err.contains("portal_balance_euros") && err.contains("balance"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    assert_eq!(
        value_of(&app, metric("portal_balance_euros")).await,
        Some(1234.56)
    );
    *mock.balance.lock().unwrap() = "-7,5 €".to_owned();
    eventually(|| async { value_of(&app, metric("portal_balance_euros")).await == Some(-7.5) })
        .await;
    crate::interop::promtool_check(&app.metrics().await).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_collectors_cover_gauge_labels_from_arrays_and_a_failing_neighbour() {
    let mock = Arc::new(Mock::default());
    *mock.account.lock().unwrap() = json!({"account": {"balance": 1}, "regions": [
        {"id": "ams", "servers": 3, "state": "active", "ok": true},
        {"id": "fra", "servers": "1,204", "state": "suspended", "ok": false}
    ]});
    let addr = start_mock(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "vultr-test-key").unwrap();
    let id = secret_file(dir.path(), "id", "vo-id");
    let vo = secret_file(dir.path(), "vo", "vo-key");
    *mock.incidents.lock().unwrap() = json!({"total": 2, "incidents": []});
    let cfg = format!(
        r#"
[[collectors]]
name = "regions"
interval = "100ms"
timeout = "100ms"
secrets = {{ key = {{ file = "{key}" }} }}
[[collectors.steps]]
url = "http://{addr}/v2/account"
headers = {{ Authorization = "Bearer ${{secret.key}}" }}
[[collectors.metrics]]
name = "region_servers"
help = "Servers per region."
type = "gauge"
path = "regions[*].servers"
labels = {{ region = "id", balance = "$.account.balance" }}
static_labels = {{ provider = "mock" }}
[[collectors.metrics]]
name = "region_active"
help = "Region state."
type = "gauge"
path = "regions[*].state"
map = {{ active = 1, suspended = 0 }}
labels = {{ region = "id" }}
[[collectors.metrics]]
name = "region_ok"
help = "Region ok flag."
type = "gauge"
path = "regions[*].ok"
labels = {{ region = "id" }}
[[collectors.metrics]]
name = "region_milli_servers"
help = "Scaled."
type = "gauge"
path = "regions[0].servers"
scale = 1000

[[collectors]]
name = "chain"
interval = "100ms"
timeout = "100ms"
secrets = {{ key = {{ file = "{key}" }}, id = {id}, vo = {vo} }}
[[collectors.steps]]
name = "account"
url = "http://{addr}/v2/account"
headers = {{ Authorization = "Bearer ${{secret.key}}" }}
extract = [{{ var = "bal", json = "/account/balance" }}, {{ var = "ctype", header = "content-type" }}]
[[collectors.steps]]
name = "incidents"
url = "http://{addr}/api-reporting/v2/incidents"
query = {{ bal = "${{var.bal}}", ct = "${{var.ctype}}" }}
headers = {{ X-VO-Api-Id = "${{secret.id}}", X-VO-Api-Key = "${{secret.vo}}" }}
[[collectors.steps]]
name = "echo"
method = "POST"
url = "http://{addr}/echo"
json = {{ user = "n${{var.bal}}", list = [1, "${{var.bal}}"], flag = true }}
[[collectors.metrics]]
name = "chain_balance"
help = "From a variable."
type = "gauge"
var = "bal"
[[collectors.metrics]]
name = "chain_incidents_total"
help = "From the second step."
type = "counter"
path = "total"
step = "incidents"
[[collectors.metrics]]
name = "chain_echoed"
help = "From the JSON body echoed back."
type = "gauge"
path = "got.list[1]"
labels = {{ user = "got.user", flag = "got.flag", ctype = "ctype" }}

[[collectors]]
name = "broken"
interval = "100ms"
timeout = "100ms"
[[collectors.steps]]
url = "http://{addr}/v2/account"
[[collectors.metrics]]
name = "broken_value"
type = "gauge"
path = "account.balance"
"#,
        key = key.display()
    );
    let app = TestApp::with_config(&cfg).await;
    eventually(|| async {
        value_of(&app, metric("region_servers").label("region", "fra")).await == Some(1204.0)
    })
    .await;
    let body = app.metrics().await;
    let s = |r: &str| {
        metric("region_servers")
            .label("region", r)
            .label("provider", "mock")
            .label("balance", "1")
    };
    assert_eq!(s("ams").get(&body), Some(3.0));
    assert_eq!(
        metric("region_active").label("region", "ams").get(&body),
        Some(1.0)
    );
    assert_eq!(
        metric("region_active").label("region", "fra").get(&body),
        Some(0.0)
    );
    assert_eq!(
        metric("region_ok").label("region", "fra").get(&body),
        Some(0.0)
    );
    assert_eq!(metric("region_milli_servers").get(&body), Some(3000.0));
    // Variables from a JSON field and a header, used in the next steps'
    // query and JSON body.
    eventually(|| async { value_of(&app, metric("chain_balance")).await == Some(1.0) }).await;
    let body = app.metrics().await;
    assert_eq!(metric("chain_incidents_total").get(&body), Some(2.0));
    assert_eq!(
        metric("chain_echoed")
            .label("user", "n1")
            .label("flag", "true")
            .label("ctype", "application/json")
            .get(&body),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        *mock.incidents_query.lock().unwrap(),
        "bal=1&ct=application%2Fjson"
    );
    // The neighbour without credentials fails on its own.
    eventually(|| async { apps_entry(&app, "broken").await["status"] == "down" }).await;
    let e = apps_entry(&app, "broken").await;
    assert!(e["last_error"].as_str().unwrap().contains("401"), "{e}");
    assert_eq!(apps_entry(&app, "regions").await["status"], "up");
    crate::interop::promtool_check(&app.metrics().await).await;
    app.stop().await;
}

#[test]
fn config_errors_name_the_collector_and_the_key_and_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[[collectors]]
name = "api_one"
[[collectors.steps]]
url = "http://127.0.0.1:1/x"
[[collectors.metrics]]
name = "one_value"
type = "gauge2"
path = "a..b"

[[collectors]]
name = "api_two"
[[collectors.steps]]
url = "http://127.0.0.1:1/x"
headers = { X = "${secret.nope}" }
[[collectors.metrics]]
type = "histogram"
buckets = [1, 1]
path = "items[*].v"
"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_exporter-proxy"))
        .args(["-c", path.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "collector \"api_one\": `metrics[0].type`: unknown type \"gauge2\"",
        "collector \"api_one\": `metrics[0].path`: invalid path \"a..b\"",
        "collector \"api_two\": `steps[0].headers.X`: `${secret.nope}` is not defined",
        "collector \"api_two\": `metrics[0].name`: required",
        "collector \"api_two\": `metrics[0].buckets`: expected a non-empty list of increasing finite numbers",
    ] {
        assert!(err.contains(want), "{want:?} missing in:\n{err}");
    }
}

/// Runs cycles by hand (no scheduler): the cache serves one request to
/// every step and metric of a cycle, and across cycles within `cache_ttl`.
#[tokio::test]
async fn one_response_serves_every_metric_and_the_cache_is_keyed_by_the_request() {
    use exporter_proxy::collect::CollectJob;
    use exporter_proxy::config::Config;
    use exporter_proxy::store::{Store, StoreOptions};
    use exporter_proxy::telemetry::SelfMetrics;

    let mock = Arc::new(Mock::default());
    *mock.incidents.lock().unwrap() = json!({"total": 4, "incidents": []});
    let addr = start_mock(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let id = secret_file(dir.path(), "id", "vo-id");
    let key = secret_file(dir.path(), "key", "vo-key");
    let config = |ttl: &str, second_query: &str| {
        format!(
            r#"
[[collectors]]
name = "cached"
interval = "1h"
cache_ttl = "{ttl}"
secrets = {{ id = {id}, key = {key} }}
[[collectors.steps]]
name = "first"
url = "http://{addr}/api-reporting/v2/incidents"
headers = {{ X-VO-Api-Id = "${{secret.id}}", X-VO-Api-Key = "${{secret.key}}" }}
[[collectors.steps]]
name = "second"
url = "http://{addr}/api-reporting/v2/incidents{second_query}"
headers = {{ X-VO-Api-Id = "${{secret.id}}", X-VO-Api-Key = "${{secret.key}}" }}
[[collectors.metrics]]
name = "a_total"
type = "counter"
path = "total"
step = "first"
[[collectors.metrics]]
name = "b"
type = "gauge"
path = "total"
step = "second"
[[collectors.metrics]]
name = "c"
type = "gauge"
path = "total"
"#
        )
    };
    let job = |text: String| {
        let def = Config::parse(&text).unwrap().config.collectors.remove(0);
        let store = Arc::new(Store::new(StoreOptions::default(), SelfMetrics::new()));
        (CollectJob::new(def, store.clone()), store)
    };
    let requests = || mock.incident_requests.load(Ordering::SeqCst);

    // The same request twice in one cycle, three metrics: one request.
    let (j, store) = job(config("0s", ""));
    j.cycle().await;
    assert_eq!(requests(), 1);
    let body = String::from_utf8(store.render().to_bytes().to_vec()).unwrap();
    for m in ["a_total", "b", "c"] {
        assert_eq!(metric(m).get(&body), Some(4.0), "{m} in {body}");
    }
    // No TTL: the next cycle asks again.
    j.cycle().await;
    assert_eq!(requests(), 2);

    // A TTL: the next cycles reuse the response.
    let (j, _) = job(config("1h", ""));
    j.cycle().await;
    j.cycle().await;
    assert_eq!(requests(), 3);

    // Another request (a query) is another cache entry.
    let (j, _) = job(config("1h", "?team=ops"));
    j.cycle().await;
    assert_eq!(requests(), 5);
    j.cycle().await;
    assert_eq!(requests(), 5);
}

/// A failing request never shows its secrets: not in `/apps`, not in the
/// message (reqwest errors are stripped of their URL).
#[tokio::test]
async fn failures_never_show_secrets() {
    use exporter_proxy::collect::CollectJob;
    use exporter_proxy::config::Config;
    use exporter_proxy::store::{Store, StoreOptions};
    use exporter_proxy::telemetry::SelfMetrics;

    let dir = tempfile::tempdir().unwrap();
    let key = secret_file(dir.path(), "key", "TOPSECRET123");
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        r#"
[[collectors]]
name = "leaky"
secrets = {{ key = {key} }}
[[collectors.steps]]
url = "http://127.0.0.1:{port}/x?token=${{secret.key}}"
query = {{ again = "${{secret.key}}" }}
headers = {{ X-Key = "${{secret.key}}" }}
[[collectors.metrics]]
name = "v"
type = "gauge"
path = "v"
"#
    );
    let def = Config::parse(&text).unwrap().config.collectors.remove(0);
    assert!(!format!("{def:?}").contains("TOPSECRET"));
    let store = Arc::new(Store::new(StoreOptions::default(), SelfMetrics::new()));
    CollectJob::new(def, store.clone()).cycle().await;
    let apps = store.apps();
    let err = apps[0].last_error.clone().unwrap();
    assert_eq!(apps[0].up, Some(false));
    assert!(err.starts_with("connect_error: step \"step0\""), "{err}");
    assert!(
        err.contains("${secret.key}") && !err.contains("TOPSECRET"),
        "{err}"
    );
}

/// A runaway jq expression is stopped by its budget: the cycle fails with
/// an error naming the collector, the metric and the expression, and the
/// next cycle runs normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_expression_fails_its_cycle_naming_collector_metric_and_expression() {
    use exporter_proxy::collect::CollectJob;
    use exporter_proxy::config::Config;
    use exporter_proxy::store::{Store, StoreOptions};
    use exporter_proxy::telemetry::SelfMetrics;

    let addr = start_mock(Arc::new(Mock::default())).await;
    let text = format!(
        r#"
[[collectors]]
name = "spinner"
[[collectors.steps]]
method = "POST"
url = "http://{addr}/echo"
json = {{ n = 3 }}
[[collectors.metrics]]
name = "fine"
type = "gauge"
expr = ".got.n * 2"
[[collectors.metrics]]
name = "spin"
type = "gauge"
expr = "last(range(1e18))"
"#
    );
    let def = Config::parse(&text).unwrap().config.collectors.remove(0);
    let store = Arc::new(Store::new(StoreOptions::default(), SelfMetrics::new()));
    let job = CollectJob::new(def, store.clone());
    job.cycle().await;
    let apps = store.apps();
    let err = apps[0].last_error.clone().unwrap();
    assert_eq!(apps[0].up, Some(false));
    assert!(
        err.contains(
            "collector spinner: metric spin: expression `last(range(1e18))`: stopped after"
        ),
        "{err}"
    );
    // All or nothing: `fine` evaluated but was not applied.
    assert!(store.apps()[0].series == 0, "{:?}", store.apps()[0]);
    // The evaluation ended: the next cycle runs (and fails the same way).
    job.cycle().await;
    assert_eq!(store.apps()[0].up, Some(false));
}

/// One element without the key: with `missing = "skip"` the other
/// elements and metrics are served; with the default (`fail`) the cycle
/// fails naming the exact element; with a default value it is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_in_one_element_is_skipped_defaulted_or_named_exactly() {
    let addr = start_mock(Arc::new(Mock::default())).await;
    // The echo endpoint answers {"got": <the JSON body sent>}.
    let collector = |name: &str, missing: &str| {
        format!(
            r#"
[[collectors]]
name = "{name}"
interval = "200ms"
timeout = "200ms"
[[collectors.steps]]
method = "POST"
url = "http://{addr}/echo"
json = {{ teams = [{{ name = "a", open_incidents = 2 }}, {{ name = "b" }}, {{ name = "c", open_incidents = 5 }}] }}
[[collectors.metrics]]
name = "{name}_open"
type = "gauge"
path = "got.teams[*].open_incidents"
labels = {{ team = "name" }}
{missing}
[[collectors.metrics]]
name = "{name}_teams"
type = "gauge"
expr = ".got.teams | length"
"#
        )
    };
    let app = TestApp::with_config(&format!(
        "{}{}{}",
        collector("skipping", "missing = \"skip\""),
        collector("defaulting", "missing = 0"),
        collector("failing", "")
    ))
    .await;
    eventually(|| async { apps_entry(&app, "failing").await["status"] == "down" }).await;
    let e = apps_entry(&app, "failing").await;
    let err = e["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(
        err.contains("metric failing_open: missing value: path `got.teams[*].open_incidents`: no key \"open_incidents\" at `got.teams[1]`"),
        "{e}"
    );
    eventually(|| async {
        value_of(&app, metric("defaulting_open").label("team", "b")).await == Some(0.0)
    })
    .await;
    eventually(|| async { value_of(&app, metric("skipping_teams")).await == Some(3.0) }).await;
    let body = app.metrics().await;
    let open = |c: &str, t: &str| metric(&format!("{c}_open")).label("team", t).get(&body);
    assert_eq!(
        (
            open("skipping", "a"),
            open("skipping", "b"),
            open("skipping", "c")
        ),
        (Some(2.0), None, Some(5.0))
    );
    assert_eq!(open("defaulting", "c"), Some(5.0));
    assert!(
        metric("failing_teams").get(&body).is_none(),
        "all or nothing"
    );
    app.stop().await;
}

/// Time placeholders reach the API in each format, and a per-poll
/// histogram observes its one value at every poll, in the default buckets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_placeholders_and_a_per_poll_histogram_over_loopback() {
    let mock = Arc::new(Mock::default());
    *mock.incidents.lock().unwrap() = json!({"total": 3, "incidents": []});
    let addr = start_mock(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("splunk");
    std::fs::write(
        &secrets,
        "# dotenv\nexport API_ID=vo-id\nAPI_KEY='vo-key'\n",
    )
    .unwrap();
    let before = chrono::Utc::now();
    let app = TestApp::with_config(&format!(
        r#"
[[collectors]]
name = "timed"
interval = "200ms"
timeout = "200ms"
secrets = {{ id = {{ file = "{s}", key = "API_ID" }}, key = {{ file = "{s}", key = "API_KEY" }} }}
[[collectors.steps]]
url = "http://{addr}/api-reporting/v2/incidents"
query = {{ since = "${{now-1h|unix}}", until_ms = "${{now+1m|unix_ms}}", at = "${{now}}" }}
headers = {{ X-VO-Api-Id = "${{secret.id}}", X-VO-Api-Key = "${{secret.key}}" }}
[[collectors.metrics]]
name = "timed_total_tenths"
type = "histogram"
observe = "per_poll"
expr = ".total / 10"
"#,
        s = secrets.display()
    ))
    .await;
    let count = || metric("timed_total_tenths_count");
    eventually(|| async { value_of(&app, count()).await >= Some(2.0) }).await;
    let body = app.metrics().await;
    let n = count().get(&body).unwrap();
    let bucket = |le: &str| {
        metric("timed_total_tenths_bucket")
            .label("le", le)
            .get(&body)
    };
    // 0.3, every poll: above 0.25, within 0.5.
    assert_eq!(
        (bucket("0.25"), bucket("0.5"), bucket("+Inf")),
        (Some(0.0), Some(n), Some(n))
    );
    let q = mock.incidents_query.lock().unwrap().clone();
    let param = |k: &str| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("{k} not in {q}"))
    };
    let after = chrono::Utc::now();
    let since: i64 = param("since").parse().unwrap();
    assert!(
        (before.timestamp() - 3600..=after.timestamp() - 3600).contains(&since),
        "{q}"
    );
    let until_ms: i64 = param("until_ms").parse().unwrap();
    assert!(
        (before.timestamp_millis() + 60_000..=after.timestamp_millis() + 60_000)
            .contains(&until_ms),
        "{q}"
    );
    let at = chrono::DateTime::parse_from_rfc3339(&param("at")).unwrap();
    assert!(
        param("at").ends_with('Z') && at.timestamp() >= before.timestamp() - 1,
        "{q}"
    );
    app.stop().await;
}
