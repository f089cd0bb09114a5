//! Poll targets from service discovery, through the real server: an
//! `http_sd` endpoint (a mock on loopback that wants a bearer token) lists
//! stub exporters; its answers add, keep and remove targets; a bad answer
//! keeps the previous ones and shows in `/apps` and the self-metrics; a
//! reload removes the source with its targets.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};

use crate::poll::{app_row, apps_json, Mode, Stub};
use crate::support::*;

/// An http_sd endpoint answering what `answer` holds, to the right token only.
async fn sd_endpoint(answer: Arc<Mutex<String>>) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/sd",
        axum::routing::get(move |headers: HeaderMap| {
            let answer = answer.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if auth != "Bearer sd-s3cret" {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                (StatusCode::OK, answer.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sd_drives_targets_and_a_bad_answer_keeps_them() {
    let one = Stub::start("one", Mode::Healthy).await;
    let two = Stub::start("two", Mode::Healthy).await;
    let answer = Arc::new(Mutex::new(format!(
        r#"[{{"targets": ["{}", "{}"], "labels": {{"job": "stubs"}}}}]"#,
        one.addr, two.addr
    )));
    let sd = sd_endpoint(answer.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "sd-s3cret\n").unwrap();
    let sd_config = format!(
        "[[poll.http_sd]]\nname = \"jobs\"\nurl = \"http://{sd}/sd\"\nrefresh_interval = \"200ms\"\n\
         bearer_token_file = \"{}\"\n[poll.http_sd.targets]\ninterval = \"200ms\"\ntimeout = \"150ms\"\n",
        token.display()
    );
    let app = TestApp::with_config(&sd_config).await;
    let name_one = format!("jobs/{}/metrics", one.addr);
    let name_two = format!("jobs/{}/metrics", two.addr);
    let series = |stub: &str, addr: std::net::SocketAddr| {
        metric("stub_requests_total")
            .label("stub", stub)
            .label("job", "stubs")
            .label("instance", &addr.to_string())
    };
    eventually(|| async {
        let b = app.metrics().await;
        series("one", one.addr).is_in(&b) && series("two", two.addr).is_in(&b)
    })
    .await;
    let apps = apps_json(&app).await;
    assert_eq!(app_row(&apps, "sd/jobs").unwrap()["status"], "up", "{apps}");
    assert_eq!(app_row(&apps, &name_one).unwrap()["status"], "up", "{apps}");
    // The token is nowhere in /apps.
    assert!(!apps.to_string().contains("sd-s3cret"));

    // A bad answer: the targets stay, the error shows.
    *answer.lock().unwrap() = "[{\"targets\": 42}]".to_owned();
    eventually(|| async {
        app_row(&apps_json(&app).await, "sd/jobs").is_some_and(|r| r["status"] == "down")
    })
    .await;
    let apps = apps_json(&app).await;
    let row = app_row(&apps, "sd/jobs").unwrap();
    assert!(
        row.to_string().contains("invalid service-discovery JSON"),
        "{row}"
    );
    assert!(app_row(&apps, &name_two).is_some(), "{apps}");
    let body = app.metrics().await;
    assert_eq!(
        metric("exporter_proxy_target_up")
            .label("target", "sd/jobs")
            .get(&body),
        Some(0.0),
        "{body}"
    );
    assert!(metric("exporter_proxy_target_poll_failures_total")
        .label("target", "sd/jobs")
        .label("reason", "invalid_body")
        .get(&body)
        .is_some_and(|n| n >= 1.0));
    assert!(series("two", two.addr).is_in(&body));

    // Target two leaves the list: its app and data go, one stays.
    *answer.lock().unwrap() = format!(
        r#"[{{"targets": ["{}"], "labels": {{"job": "stubs"}}}}]"#,
        one.addr
    );
    eventually(|| async { app_row(&apps_json(&app).await, &name_two).is_none() }).await;
    let body = app.metrics().await;
    assert!(!series("two", two.addr).is_in(&body), "{body}");
    assert!(series("one", one.addr).is_in(&body));
    assert_eq!(
        app_row(&apps_json(&app).await, "sd/jobs").unwrap()["status"],
        "up"
    );

    // A reload without the source removes it and its targets.
    let without = app.config_text.replace(&sd_config, "");
    let (status, text) = app.reload_with(&without).await;
    assert_eq!(status, 200, "{text}");
    eventually(|| async {
        let apps = apps_json(&app).await;
        app_row(&apps, &name_one).is_none() && app_row(&apps, "sd/jobs").is_none()
    })
    .await;
    app.stop().await;
}
