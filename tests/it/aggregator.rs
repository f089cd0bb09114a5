//! The aggregator seed's exporters, unchanged: its cron client's
//! registration request (`POST /api/post` with `uuid`, `ip_addr`,
//! `timestamp`, expecting 200 and the body echoed) and its JSON exporter
//! (`cpu`, `ram`, `disk`, `throughput.bytes_sent/bytes_recv`), both written
//! here from the documented facts, against `examples/aggregator/config.toml`:
//! two exporters with the same metric names on one port (127.0.0.1 and
//! 127.0.0.2), eviction after failed polls and re-admission on the next
//! POST, and the data in a real InfluxDB through the existing sink.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::daemons::{enc, influxd_with_metrics_db, poll_until};
use crate::support::*;

/// One seed exporter: its JSON document, or 500 while `fail` is set.
struct Exporter {
    cpu: f64,
    fail: AtomicBool,
}

async fn exporter_metrics(State(e): State<Arc<Exporter>>) -> Response {
    if e.fail.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "collector crashed").into_response();
    }
    let doc = json!({
        "cpu": e.cpu, "ram": 41.5, "disk": 70.25,
        "throughput": {"bytes_sent": 800, "bytes_recv": 1200},
        "timestamp": "2024-07-08T10:00:00.123456Z",
    });
    ([("content-type", "application/json")], doc.to_string()).into_response()
}

async fn start_exporter(addr: SocketAddr, cpu: f64) -> (Arc<Exporter>, SocketAddr) {
    let e = Arc::new(Exporter {
        cpu,
        fail: AtomicBool::new(false),
    });
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(exporter_metrics))
        .with_state(e.clone());
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (e, addr)
}

/// The seed's `post_request.py`: POST {uuid, ip_addr, timestamp} as JSON.
async fn seed_post(app: &TestApp, uuid: &str, ip: &str) -> (u16, Value, Value) {
    let body = json!({"uuid": uuid, "ip_addr": ip, "timestamp": "2024-07-08 10:00:00.123456"});
    let bytes = body.to_string();
    let len = bytes.len().to_string();
    let r = request_with_body(
        app.http,
        "POST",
        "/api/post",
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &len),
        ],
        bytes.as_bytes(),
    )
    .await;
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v, body)
}

/// The example from `[poll.register]` on, with test timings, the
/// exporters' port and InfluxDB 1.x (Debian's) instead of 2.
fn example(port: u16, influx: SocketAddr) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/aggregator/config.toml"),
    )
    .unwrap();
    let mut text = text[text.find("[poll.register]").unwrap()..].to_owned();
    for (from, to) in [
        (
            "default_interval = \"15s\"",
            "min_interval = \"100ms\"\ndefault_interval = \"200ms\"",
        ),
        ("port = 8081", &format!("port = {port}")),
        (
            "url = \"http://127.0.0.1:8086\"",
            &format!("url = \"http://{influx}\"\ninterval = \"200ms\""),
        ),
        ("api = \"v2\"", "api = \"v1\""),
        ("org = \"seed\"", "database = \"metrics\""),
        ("bucket = \"metrics\"\n", ""),
        ("token_env = \"INFLUXDB_TOKEN\"\n", ""),
    ] {
        assert!(text.contains(from), "{from:?} not in the example");
        text = text.replace(from, to);
    }
    text
}

#[test]
fn the_committed_example_is_valid_as_it_is() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/aggregator/config.toml"),
    )
    .unwrap();
    let c = exporter_proxy::config::Config::parse(&text)
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    let r = c.poll.register.unwrap();
    let compat = r.compat.unwrap();
    assert_eq!((compat.path.as_str(), compat.port), ("/api/post", 8081));
    assert_eq!(compat.mapping.unwrap().metrics.len(), 5);
    assert_eq!(r.evict_after_failures, Some(2));
    assert!(r.instance_label);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_exporters_register_are_scraped_evicted_and_reach_influxdb() {
    let influx = influxd_with_metrics_db().await;
    // Two exporters on one port, as the seed scrapes every exporter on its
    // configured port: 127.0.0.1 and 127.0.0.2 (both loopback on Linux).
    let (_a, a_addr) = start_exporter("127.0.0.1:0".parse().unwrap(), 3.5).await;
    let port = a_addr.port();
    let (b, _) = start_exporter(format!("127.0.0.2:{port}").parse().unwrap(), 7.25).await;
    let app = TestApp::with_config(&example(port, influx.addr)).await;

    // The cron client's request: 200 and the body echoed.
    for (uuid, ip) in [("uuid-a", "127.0.0.1"), ("uuid-b", "127.0.0.2")] {
        let (status, echoed, sent) = seed_post(&app, uuid, ip).await;
        assert_eq!((status, &echoed), (200, &sent));
    }
    // Same metric names, told apart by `instance`, from the JSON documents.
    let cpu = |uuid: &str| metric("cpu").label("instance", uuid);
    eventually(|| async {
        let m = app.metrics().await;
        cpu("uuid-a").get(&m) == Some(3.5) && cpu("uuid-b").get(&m) == Some(7.25)
    })
    .await;
    let m = app.metrics().await;
    for (name, v) in [
        ("ram", 41.5),
        ("disk", 70.25),
        ("throughput_bytes_sent", 800.0),
        ("throughput_bytes_recv", 1200.0),
    ] {
        assert_eq!(
            metric(name).label("instance", "uuid-b").get(&m),
            Some(v),
            "{name}\n{m}"
        );
    }
    // A heartbeat (the cron client POSTs every minute) is 200 too.
    assert_eq!(seed_post(&app, "uuid-a", "127.0.0.1").await.0, 200);
    // Into InfluxDB through the sink, instance as a tag.
    let value = poll_until("cpu of uuid-b in InfluxDB", || async {
        let q = enc("SELECT last(\"value\") FROM \"cpu\" WHERE \"instance\" = 'uuid-b'");
        let r = get(influx.addr, &format!("/query?db=metrics&q={q}")).await;
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        v["results"][0]["series"][0]["values"][0][1].as_f64()
    })
    .await;
    assert_eq!(value, 7.25);

    // B's scrapes fail: evicted after 2 failed polls while A stays.
    b.fail.store(true, Ordering::SeqCst);
    let registered = |id: &'static str| {
        let http = app.http;
        async move {
            let body = get(http, "/register").await.body_string();
            let v: Value = serde_json::from_str(&body).unwrap();
            v["registrations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == id)
        }
    };
    eventually(|| async { !registered("uuid-b").await }).await;
    eventually(|| async { cpu("uuid-b").get(&app.metrics().await).is_none() }).await;
    assert!(registered("uuid-a").await);
    assert_eq!(cpu("uuid-a").get(&app.metrics().await), Some(3.5));
    // It comes back with its next registration.
    b.fail.store(false, Ordering::SeqCst);
    let (status, _, _) = seed_post(&app, "uuid-b", "127.0.0.2").await;
    assert_eq!(status, 200);
    eventually(|| async { cpu("uuid-b").get(&app.metrics().await) == Some(7.25) }).await;

    // The seed's bad requests get a clear 400, never a 500.
    let r = request_with_body(
        app.http,
        "POST",
        "/api/post",
        &[("Content-Length", "13")],
        b"{\"uuid\": \"x\"}",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body_string().contains("`ip_addr`: required"),
        "{}",
        r.body_string()
    );
    app.stop().await;
}

/// A configured target and a `POST /register` name a mapping too; without
/// `evict_after_failures` a failing registered target stays registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_and_registered_targets_name_a_mapping_and_eviction_is_off_by_default() {
    let (_a, a_addr) = start_exporter("127.0.0.1:0".parse().unwrap(), 1.5).await;
    let (b, b_addr) = start_exporter("127.0.0.1:0".parse().unwrap(), 2.5).await;
    let app = TestApp::with_config(&format!(
        r#"
[[poll.mappings]]
name = "seed"
metrics = [
  {{ name = "cpu", type = "gauge", path = "cpu" }},
  {{ name = "net_bytes", type = "gauge", expr = '.throughput | to_entries[] | {{direction: .key, value: .value}}', labels = {{ direction = "direction" }} }},
]
[[poll.targets]]
name = "static-a"
url = "http://{a_addr}/metrics"
interval = "200ms"
timeout = "150ms"
mapping = "seed"
[poll.register]
min_interval = "100ms"
default_interval = "200ms"
"#
    ))
    .await;
    let doc = json!({"id": "reg-b", "url": format!("http://{b_addr}/metrics"), "mapping": "seed"})
        .to_string();
    let r = request_with_body(
        app.http,
        "POST",
        "/register",
        &[("Content-Length", &doc.len().to_string())],
        doc.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body_string());
    eventually(|| async {
        let m = app.metrics().await;
        m.lines().any(|l| l == "cpu 1.5")
            && metric("cpu").label("instance", "reg-b").get(&m) == Some(2.5)
    })
    .await;
    let m = app.metrics().await;
    assert_eq!(
        metric("net_bytes")
            .label("instance", "reg-b")
            .label("direction", "bytes_recv")
            .get(&m),
        Some(1200.0),
        "{m}"
    );
    // A configured target gets no instance label of ours.
    assert!(!m.contains("instance=\"static-a\""), "{m}");
    // An unknown mapping is refused with the names there are.
    let bad = json!({"id": "reg-c", "url": format!("http://{b_addr}/metrics"), "mapping": "nope"})
        .to_string();
    let r = request_with_body(
        app.http,
        "POST",
        "/register",
        &[("Content-Length", &bad.len().to_string())],
        bad.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body_string().contains("no mapping is named \\\"nope\\\""),
        "{}",
        r.body_string()
    );
    // Failing polls: down, but still registered (no eviction configured).
    b.fail.store(true, Ordering::SeqCst);
    let failures = || async {
        metric("exporter_proxy_target_poll_failures_total")
            .label("target", "reg-b")
            .label("reason", "http_status")
            .get(&app.metrics().await)
            .unwrap_or(0.0)
    };
    eventually(|| async { failures().await >= 5.0 }).await;
    let list = get(app.http, "/register").await.body_string();
    assert!(list.contains("\"reg-b\""), "{list}");
    app.stop().await;
}
