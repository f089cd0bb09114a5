//! The HTTP endpoints over a real socket.

use std::io::Read;

use crate::support::*;

#[tokio::test]
async fn metrics_content_type_gzip_and_cache() {
    let app = TestApp::start().await;
    send_tcp(
        app.tcp,
        &json_push("a", "# HELP a_up Up.\n# TYPE a_up gauge\na_up 1\n"),
    )
    .await;
    let plain = get(app.http, "/metrics").await;
    assert_eq!(plain.status, 200);
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(plain.header("content-encoding"), None);
    let gz = request(app.http, "GET", "/metrics", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain.body_string(), "same body, compressed");
    let refused = request(
        app.http,
        "GET",
        "/metrics",
        &[("Accept-Encoding", "gzip;q=0, identity")],
    )
    .await;
    assert_eq!(refused.header("content-encoding"), None);
    // Unchanged store: the same cached bytes are served.
    let gen = app.store.generation();
    let again = get(app.http, "/metrics").await;
    assert_eq!(again.body, plain.body);
    assert_eq!(
        app.store.generation(),
        gen,
        "a scrape does not change the store"
    );
    app.stop().await;
}

#[tokio::test]
async fn apps_text_json_and_html() {
    let app = TestApp::start().await;
    send_tcp(app.tcp, &json_push("web<1>", "web_up 1\n")).await;
    let text = get(app.http, "/apps").await;
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let body = text.body_string();
    let lines: Vec<&str> = body.lines().collect();
    assert!(
        lines[0].starts_with("+---") && lines[0].ends_with("-+"),
        "{body}"
    );
    assert!(
        lines[1].starts_with("| Current time: ") && lines[1].contains(" UTC"),
        "{body}"
    );
    assert!(lines[3].starts_with("| +---"), "{body}");
    for col in [
        "App Name",
        "Last Update Time (UTC)",
        "Source",
        "Kind",
        "Series",
        "Status",
        "Last Error",
    ] {
        assert!(lines[4].contains(col), "{body}");
    }
    assert!(body.contains("| web<1> "), "{body}");
    let json = request(app.http, "GET", "/apps", &[("Accept", "application/json")]).await;
    assert_eq!(json.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(v["apps"][0]["name"], "web<1>");
    assert_eq!(v["apps"][0]["status"], "ok");
    assert!(v["current_time"].as_str().unwrap().ends_with('Z'));
    let html = request(app.http, "GET", "/apps", &[("Accept", "text/html")]).await;
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let h = html.body_string();
    assert!(h.contains(">web&lt;1&gt;</a></td>"), "escaped: {h}");
    assert!(!h.contains("web<1>"), "escaped: {h}");
    assert_eq!(get(app.http, "/apps?format=yaml").await.status, 400);
    app.stop().await;
}

#[tokio::test]
async fn landing_health_404_405_head() {
    let app = TestApp::start().await;
    let index = get(app.http, "/").await;
    assert_eq!(index.status, 200);
    assert!(index.body_string().contains("href=\"./metrics\""));
    assert_eq!(get(app.http, "/-/healthy").await.status, 200);
    assert_eq!(get(app.http, "/-/ready").await.body_string(), "OK\n");
    let missing = get(app.http, "/nope").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body_string().contains("not found"));
    let post = request(app.http, "POST", "/metrics", &[("Content-Length", "0")]).await;
    assert_eq!(post.status, 405);
    let head = request(app.http, "HEAD", "/metrics", &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    app.stop().await;
}
