//! Pushes over every receiver and the store's semantics.

use crate::support::*;

const APP_A: &str = "# HELP shared_info Shared family.\n# TYPE shared_info gauge\nshared_info{app=\"a\"} 1\n# TYPE a_requests_total counter\na_requests_total{code=\"200\"} 10\na_requests_total{code=\"500\"} 2\n";
const APP_B: &str = "# HELP shared_info Shared family.\n# TYPE shared_info gauge\nshared_info{app=\"b\"} 1\n# TYPE b_queue gauge\nb_queue 7\n";

#[tokio::test]
async fn json_string_and_array_over_tcp_and_unix() {
    let app = TestApp::start().await;
    let r = reply(&send_tcp(app.tcp, &json_push("a", APP_A)).await);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["accepted"][0], "a");
    assert_eq!(r["series"], 3);
    let lines: Vec<&str> = APP_B.lines().collect();
    let doc = serde_json::to_vec(&serde_json::json!({ "b": lines })).unwrap();
    let r = reply(&send_unix(&app.socket, &doc).await);
    assert_eq!(r["ok"], true, "{r}");
    let body = app.metrics().await;
    assert!(
        metric("a_requests_total")
            .label("code", "500")
            .value("2")
            .is_in(&body),
        "{body}"
    );
    assert!(metric("b_queue").value("7").is_in(&body));
    // One header for the shared family, both apps' samples under it.
    assert_eq!(body.matches("# TYPE shared_info gauge").count(), 1);
    assert_eq!(body.matches("# HELP shared_info").count(), 1);
    assert!(metric("shared_info").label("app", "a").is_in(&body));
    assert!(metric("shared_info").label("app", "b").is_in(&body));
    assert_contiguous_families(&body);
    app.stop().await;
}

#[tokio::test]
async fn capnp_many_messages_on_one_connection() {
    let app = TestApp::start().await;
    let mut bytes = capnp_push("a", APP_A);
    bytes.extend(capnp_push("b", APP_B));
    let r = reply(&send_tcp(app.tcp, &bytes).await);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["accepted"], serde_json::json!(["a", "b"]));
    let r = reply(&send_unix(&app.socket, &capnp_push("c", "c_up 1\n")).await);
    assert_eq!(r["ok"], true, "{r}");
    let body = app.metrics().await;
    assert!(metric("b_queue").value("7").is_in(&body));
    assert!(metric("c_up").value("1").is_in(&body));
    app.stop().await;
}

#[tokio::test]
async fn a_push_replaces_the_whole_set() {
    let app = TestApp::start().await;
    send_tcp(app.tcp, &json_push("a", APP_A)).await;
    let second = "# TYPE a_requests_total counter\na_requests_total{code=\"200\"} 11\n";
    let r = reply(&send_tcp(app.tcp, &json_push("a", second)).await);
    assert_eq!(r["ok"], true);
    let body = app.metrics().await;
    assert!(metric("a_requests_total")
        .label("code", "200")
        .value("11")
        .is_in(&body));
    assert!(
        !metric("a_requests_total").label("code", "500").is_in(&body),
        "dropped series is gone"
    );
    assert!(!body.contains("shared_info"), "dropped family is gone");
    app.stop().await;
}

#[tokio::test]
async fn several_apps_in_one_json_document_apply_together_or_not_at_all() {
    let app = TestApp::start().await;
    let doc = serde_json::json!({ "a": APP_A, "b": APP_B });
    let r = reply(&send_tcp(app.tcp, doc.to_string().as_bytes()).await);
    assert_eq!(r["accepted"], serde_json::json!(["a", "b"]));
    let doc = serde_json::json!({ "c": "c_up 1\n", "d": "d_up{ 1\n" });
    let r = reply(&send_tcp(app.tcp, doc.to_string().as_bytes()).await);
    assert_eq!(r["ok"], false);
    assert!(
        r["error"].as_str().unwrap().contains("app \"d\": line 1"),
        "{r}"
    );
    let body = app.metrics().await;
    assert!(
        !body.contains("c_up"),
        "nothing of a refused document is applied"
    );
    assert!(body.contains("b_queue 7"));
    app.stop().await;
}

#[tokio::test]
async fn conflicts_with_other_apps_are_refused_naming_them() {
    let app = TestApp::start().await;
    send_tcp(app.tcp, &json_push("a", APP_A)).await;
    // Same family, other type.
    let r = reply(
        &send_tcp(
            app.tcp,
            &json_push("x", "# TYPE shared_info counter\nshared_info 1\n"),
        )
        .await,
    );
    let err = r["error"].as_str().unwrap();
    assert!(
        err.contains("shared_info") && err.contains("app \"a\""),
        "{err}"
    );
    // Same series as another app.
    let r = reply(
        &send_tcp(
            app.tcp,
            &json_push("x", "# TYPE shared_info gauge\nshared_info{app=\"a\"} 3\n"),
        )
        .await,
    );
    let err = r["error"].as_str().unwrap();
    assert!(err.contains("already pushed by app \"a\""), "{err}");
    // A gauge named like another app's histogram's derived series.
    send_tcp(
        app.tcp,
        &json_push(
            "h",
            "# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 1\nlat_sum 1\nlat_count 1\n",
        ),
    )
    .await;
    let r = reply(
        &send_tcp(
            app.tcp,
            &json_push("x", "# TYPE lat_count gauge\nlat_count 1\n"),
        )
        .await,
    );
    let err = r["error"].as_str().unwrap();
    assert!(
        err.contains("lat_count") && err.contains("app \"h\""),
        "{err}"
    );
    // Duplicate series inside one push.
    let r = reply(&send_tcp(app.tcp, &json_push("x", "x_up 1\nx_up 2\n")).await);
    assert!(r["error"].as_str().unwrap().contains("line 2"), "{r}");
    let body = app.metrics().await;
    assert!(!body.contains("app=\"x\""), "{body}");
    assert!(metric("shared_info")
        .label("app", "a")
        .value("1")
        .is_in(&body));
    let apps = get(app.http, "/apps?format=json").await.body_string();
    assert!(
        !apps.contains("\"x\""),
        "a refused new app is not listed: {apps}"
    );
    app.stop().await;
}

#[tokio::test]
async fn app_label_lets_apps_push_identical_series() {
    let app = TestApp::with("", "app_label = \"app\"").await;
    let text = "# TYPE jobs gauge\njobs{queue=\"q\"} 1\n";
    assert_eq!(
        reply(&send_tcp(app.tcp, &json_push("one", text)).await)["ok"],
        true
    );
    assert_eq!(
        reply(&send_tcp(app.tcp, &json_push("two", text)).await)["ok"],
        true
    );
    let body = app.metrics().await;
    assert!(
        metric("jobs")
            .label("app", "one")
            .label("queue", "q")
            .is_in(&body),
        "{body}"
    );
    assert!(metric("jobs").label("app", "two").is_in(&body));
    app.stop().await;
}

#[tokio::test]
async fn timestamps_pass_through_and_line_endings_are_normalised() {
    let app = TestApp::start().await;
    let text = "# TYPE t_total counter\r\nt_total{a=\"1\"} 5 1395066363000\r\nt_total{a=\"2\"} 6";
    let r = reply(&send_tcp(app.tcp, &capnp_push("t", text)).await);
    assert_eq!(r["ok"], true, "{r}");
    send_tcp(app.tcp, &json_push("u", "u_up 1")).await;
    let body = app.metrics().await;
    assert!(
        body.contains("t_total{a=\"1\"} 5 1395066363000\n"),
        "{body}"
    );
    assert!(body.contains("t_total{a=\"2\"} 6\n"));
    assert!(
        body.contains("\nu_up 1\n"),
        "missing final newline does not glue lines: {body}"
    );
    assert!(!body.contains('\r'));
    app.stop().await;
}

#[tokio::test]
async fn sources_name_the_peer() {
    let app = TestApp::start().await;
    send_tcp(app.tcp, &json_push("t", "t_up 1\n")).await;
    send_unix(&app.socket, &json_push("u", "u_up 1\n")).await;
    let apps: serde_json::Value =
        serde_json::from_str(&get(app.http, "/apps?format=json").await.body_string()).unwrap();
    let list = apps["apps"].as_array().unwrap();
    let t = list.iter().find(|a| a["name"] == "t").unwrap();
    assert!(
        t["source"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{t}"
    );
    let u = list.iter().find(|a| a["name"] == "u").unwrap();
    let src = u["source"].as_str().unwrap();
    let uid = nix::unistd::getuid().as_raw();
    assert!(
        src.contains("push.sock") && src.contains(&format!("uid={uid}")) && src.contains("pid="),
        "{src}"
    );
    assert_eq!(u["kind"], "push");
    assert_eq!(u["series"], 1);
    app.stop().await;
}

#[tokio::test]
async fn self_metrics_count_pushes_and_rejections() {
    let app = TestApp::start().await;
    send_tcp(app.tcp, &json_push("a", APP_A)).await;
    send_tcp(app.tcp, &json_push("a", "bad line here\n")).await;
    let body = app.metrics().await;
    let pushes = |result| {
        metric("exporter_proxy_pushes_total")
            .label("listener", "tcp")
            .label("format", "json")
            .label("result", result)
    };
    assert_eq!(pushes("accepted").get(&body), Some(1.0), "{body}");
    assert_eq!(pushes("rejected").get(&body), Some(1.0));
    assert_eq!(
        metric("exporter_proxy_push_rejections_total")
            .label("reason", "parse_error")
            .get(&body),
        Some(1.0)
    );
    assert_eq!(
        metric("exporter_proxy_app_series")
            .label("app", "a")
            .get(&body),
        Some(3.0)
    );
    assert!(metric("exporter_proxy_app_last_push_timestamp_seconds")
        .label("app", "a")
        .is_in(&body));
    assert!(metric("exporter_proxy_build_info").value("1").is_in(&body));
    assert!(metric("exporter_proxy_render_duration_seconds").is_in(&body));
    assert!(metric("exporter_proxy_open_connections")
        .label("listener", "tcp")
        .value("0")
        .is_in(&body));
    // The refused push shows on the app, which keeps its data.
    let apps = get(app.http, "/apps?format=json").await.body_string();
    assert!(apps.contains("\"status\": \"rejected\""), "{apps}");
    assert!(apps.contains("line 1"), "{apps}");
    app.stop().await;
}

#[tokio::test]
async fn json_with_long_leading_whitespace_is_detected() {
    let app = TestApp::start().await;
    let mut doc = b"\n\n        ".to_vec();
    doc.extend(json_push("ws", "ws_up 1\n"));
    assert_eq!(reply(&send_tcp(app.tcp, &doc).await)["ok"], true);
    app.stop().await;
}

#[tokio::test]
async fn shutdown_lets_a_push_in_progress_finish() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::start().await;
    let mut s = tokio::net::TcpStream::connect(app.tcp).await.unwrap();
    s.write_all(b"{\"late\": ").await.unwrap();
    eventually(|| async {
        metric("exporter_proxy_open_connections")
            .label("listener", "tcp")
            .value("1")
            .is_in(&app.metrics().await)
    })
    .await;
    let store = app.store.clone();
    let tcp = app.tcp;
    let stopping = tokio::spawn(app.stop());
    // Shutdown has begun: new connections are refused...
    eventually(|| async { tokio::net::TcpStream::connect(tcp).await.is_err() }).await;
    // ...but the one in progress completes within the grace period.
    s.write_all(b"\"late_up 1\\n\"}").await.unwrap();
    s.shutdown().await.unwrap();
    let r = reply(&read_reply(&mut s).await);
    assert_eq!(r["ok"], true, "{r}");
    stopping.await.unwrap();
    assert!(store.apps().iter().any(|a| a.name == "late"));
}

#[tokio::test]
async fn shutdown_aborts_a_stuck_push_after_the_grace_period() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::with_all(
        "",
        "",
        "[limits]\nidle_timeout = \"60s\"\nread_timeout = \"60s\"\n",
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(app.tcp).await.unwrap();
    s.write_all(b"{\"stuck\": ").await.unwrap();
    eventually(|| async {
        metric("exporter_proxy_open_connections")
            .label("listener", "tcp")
            .value("1")
            .is_in(&app.metrics().await)
    })
    .await;
    let started = std::time::Instant::now();
    app.stop().await; // grace period of the test config: 2s
    assert!(started.elapsed() < STEP);
    let r = reply(&read_reply(&mut s).await);
    assert!(r["error"].as_str().unwrap().contains("shut down"), "{r}");
}

#[tokio::test]
async fn ttls_from_the_push_the_listener_and_the_default() {
    // Default TTL never; the TCP listener's pushes live 1 s; pushes may set their own.
    let app = TestApp::with_all(
        "stale_check_interval = \"50ms\"",
        "tcp_socket_ttl = \"1s\"",
        "",
    )
    .await;
    send_tcp(app.tcp, &json_push("listener_ttl", "a_up 1\n")).await;
    let doc = serde_json::json!({ "own_ttl": { "metrics": ["b_up 1"], "ttl": "never" } });
    assert_eq!(
        reply(&send_tcp(app.tcp, doc.to_string().as_bytes()).await)["ok"],
        true
    );
    let capnp =
        exporter_proxy::ingest::codec::encode_capnp_with_ttl("capnp_ttl", "c_up 1\n", "600ms");
    assert_eq!(reply(&send_unix(&app.socket, &capnp).await)["ok"], true);
    send_unix(&app.socket, &json_push("default_ttl", "d_up 1\n")).await;
    let apps: serde_json::Value =
        serde_json::from_str(&get(app.http, "/apps?format=json").await.body_string()).unwrap();
    let ttl = |name: &str| {
        apps["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap()["ttl"]
            .clone()
    };
    assert_eq!(ttl("listener_ttl"), "1s");
    assert_eq!(ttl("own_ttl"), "never");
    assert_eq!(ttl("capnp_ttl"), "600ms");
    assert_eq!(ttl("default_ttl"), "never");
    eventually(|| async {
        let m = app.metrics().await;
        !m.contains("a_up") && !m.contains("c_up")
    })
    .await;
    let m = app.metrics().await;
    assert!(m.contains("b_up 1") && m.contains("d_up 1"), "{m}");
    assert!(
        metric("exporter_proxy_expired_apps_total")
            .value("2")
            .is_in(&m),
        "{m}"
    );
    app.stop().await;
}
