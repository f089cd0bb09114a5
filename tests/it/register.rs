//! Self-registration over real HTTP: register, heartbeat (with a new
//! address), list, delete, expiry, restart with the registry file, and
//! refusals (network, token).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::poll::{app_row, apps_json, Mode, Stub};
use crate::support::*;

/// An HTTP/1.1 request with a body; returns status and JSON body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(STEP, s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (
        status,
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

fn register_config(registry: &std::path::Path, token: &std::path::Path, extra: &str) -> String {
    format!(
        "[poll.register]\nenabled = true\nmin_interval = \"100ms\"\ndefault_interval = \"200ms\"\ntimeout = \"150ms\"\nregistry_file = \"{}\"\ntoken_file = \"{}\"\nmax_registrations = 2\n{extra}\n",
        registry.display(),
        token.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_heartbeat_list_delete_restart_and_limits() {
    let a = Stub::start("reg-a", Mode::Healthy).await;
    let b = Stub::start("reg-b", Mode::Healthy).await;
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.json");
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let config = register_config(&registry, &token, "");
    let app = TestApp::with_config(&config).await;
    let doc = |port: u16| {
        format!(
            r#"{{"id":"svc-1","address":"127.0.0.1","port":{port},"path":"/metrics","interval":"200ms","ttl":"30s","labels":{{"team":"a"}}}}"#
        )
    };

    // No token, a wrong token: 401 with a JSON error.
    let (st, v) = call(app.http, "POST", "/register", None, &doc(a.addr.port())).await;
    assert_eq!(st, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("token"), "{v}");
    let (st, _) = call(
        app.http,
        "POST",
        "/register",
        Some("nope"),
        &doc(a.addr.port()),
    )
    .await;
    assert_eq!(st, 401);
    // A bad document names the field.
    let (st, v) = call(
        app.http,
        "POST",
        "/register",
        Some("t0ken"),
        r#"{"id":"x","address":"127.0.0.1"}"#,
    )
    .await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("`port`"), "{v}");
    let (st, v) = call(
        app.http,
        "POST",
        "/register",
        Some("t0ken"),
        r#"{"id":"x","url":"http://127.0.0.1:1/m","interval":"1ms"}"#,
    )
    .await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("`interval`"), "{v}");

    // Register: 201, polled, kind registered, labels added.
    let (st, v) = call(
        app.http,
        "POST",
        "/register",
        Some("t0ken"),
        &doc(a.addr.port()),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["created"], true);
    eventually(|| async {
        metric("stub_requests_total")
            .label("stub", "reg-a")
            .label("team", "a")
            .is_in(&app.metrics().await)
    })
    .await;
    let row = app_row(&apps_json(&app).await, "svc-1").unwrap();
    assert_eq!(row["kind"], "registered");
    assert_eq!(row["status"], "up");

    // Heartbeat moving to another address: 200, now polls b.
    let (st, v) = call(
        app.http,
        "POST",
        "/register",
        Some("t0ken"),
        &doc(b.addr.port()),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["created"], false);
    eventually(|| async {
        metric("stub_requests_total")
            .label("stub", "reg-b")
            .is_in(&app.metrics().await)
    })
    .await;

    // The list.
    let (st, v) = call(app.http, "GET", "/register", Some("t0ken"), "").await;
    assert_eq!(st, 200);
    let regs = v["registrations"].as_array().unwrap();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0]["url"], b.url());
    assert_eq!(regs[0]["peer"], "127.0.0.1");

    // Limits: max_registrations = 2.
    let other = |id: &str| format!(r#"{{"id":"{id}","url":"{}","ttl":"30s"}}"#, a.url());
    assert_eq!(
        call(
            app.http,
            "POST",
            "/register",
            Some("t0ken"),
            &other("svc-2")
        )
        .await
        .0,
        201
    );
    let (st, v) = call(
        app.http,
        "POST",
        "/register",
        Some("t0ken"),
        &other("svc-3"),
    )
    .await;
    assert_eq!(st, 429, "{v}");
    assert!(v["error"].as_str().unwrap().contains("full"), "{v}");

    // Restart: the registry file brings both back.
    app.stop().await;
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&registry).unwrap()).unwrap();
    assert_eq!(saved["registrations"].as_array().unwrap().len(), 2);
    let app = TestApp::with_config(&config).await;
    let (_, v) = call(app.http, "GET", "/register", Some("t0ken"), "").await;
    assert_eq!(v["registrations"].as_array().unwrap().len(), 2, "{v}");
    eventually(|| async {
        metric("stub_requests_total")
            .label("stub", "reg-b")
            .label("team", "a")
            .is_in(&app.metrics().await)
    })
    .await;
    assert!(metric("exporter_proxy_registrations")
        .value("2")
        .is_in(&app.metrics().await));

    // Delete: gone from the list, /apps and /metrics; a second delete is 404.
    let (st, v) = call(app.http, "DELETE", "/register/svc-1", Some("t0ken"), "").await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = call(app.http, "DELETE", "/register/svc-1", Some("t0ken"), "").await;
    assert_eq!(st, 404);
    assert!(app_row(&apps_json(&app).await, "svc-1").is_none());
    assert!(!metric("stub_requests_total")
        .label("stub", "reg-b")
        .is_in(&app.metrics().await));
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&registry).unwrap()).unwrap();
    assert_eq!(saved["registrations"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_expire_without_heartbeat() {
    let a = Stub::start("exp", Mode::Healthy).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let app = TestApp::with_config(&register_config(&dir.path().join("r.json"), &token, "")).await;
    let doc = format!(
        r#"{{"id":"short","url":"{}","interval":"200ms","ttl":"1s"}}"#,
        a.url()
    );
    assert_eq!(
        call(app.http, "POST", "/register", Some("t"), &doc).await.0,
        201
    );
    eventually(|| async { app_row(&apps_json(&app).await, "short").is_some() }).await;
    // No heartbeat: target and metrics disappear.
    eventually(|| async {
        app_row(&apps_json(&app).await, "short").is_none()
            && !metric("stub_requests_total")
                .label("stub", "exp")
                .is_in(&app.metrics().await)
    })
    .await;
    let (_, v) = call(app.http, "GET", "/register", Some("t"), "").await;
    assert_eq!(v["registrations"].as_array().unwrap().len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn registration_from_a_disallowed_network_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let app = TestApp::with_config(&register_config(
        &dir.path().join("r.json"),
        &token,
        "allowed_networks = [\"10.0.0.0/8\"]",
    ))
    .await;
    let (st, v) = call(
        app.http,
        "POST",
        "/register",
        Some("t"),
        r#"{"id":"x","url":"http://127.0.0.1:9/metrics"}"#,
    )
    .await;
    assert_eq!(st, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("127.0.0.1"), "{v}");
    assert_eq!(v["ok"], false);
    // Without [poll.register], the endpoint says it is disabled.
    let plain = TestApp::start().await;
    let (st, v) = call(plain.http, "POST", "/register", None, "{}").await;
    assert_eq!(st, 404);
    assert!(v["error"].as_str().unwrap().contains("disabled"), "{v}");
    app.stop().await;
    plain.stop().await;
}
