//! The snapshot file: kill -9 and restart, corrupt and unwritable snapshots.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_exporter-proxy");

/// The binary, started with a config using `dir` for its socket and snapshot.
struct Proxy {
    child: Child,
    http: std::net::SocketAddr,
    tcp: std::net::SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, http: u16, tcp: u16) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[exporter]\nscrape_expose_endpoint = \"127.0.0.1:{http}\"\n[receiver]\nreceiver_tcp_socket = \"127.0.0.1:{tcp}\"\n[persistence]\nfile = \"{}\"\ninterval = \"100ms\"\n",
            dir.join("snap.bin").display()
        ),
    )
    .unwrap();
    path
}

async fn start(dir: &Path, http: u16, tcp: u16) -> Proxy {
    let child = Command::new(BIN)
        .args(["-c", config(dir, http, tcp).to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(dir.join(format!(
                "stderr-{}.log",
                chrono::Utc::now().timestamp_nanos_opt().unwrap()
            )))
            .unwrap(),
        )
        .spawn()
        .unwrap();
    let p = Proxy {
        child,
        http: format!("127.0.0.1:{http}").parse().unwrap(),
        tcp: format!("127.0.0.1:{tcp}").parse().unwrap(),
    };
    eventually(|| async {
        tokio::net::TcpStream::connect(p.http).await.is_ok()
            && get(p.http, "/-/ready").await.status == 200
    })
    .await;
    p
}

async fn apps_json(http: std::net::SocketAddr) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&get(http, "/apps?format=json").await.body_string()).unwrap();
    v["apps"].as_array().unwrap().clone()
}

fn metric_value(body: &str, name: &str) -> f64 {
    metric(name).get(body).unwrap_or(0.0)
}

#[tokio::test]
async fn kill_9_then_restart_restores_the_last_snapshot_with_push_times() {
    let dir = tempfile::tempdir().unwrap();
    let (http, tcp) = (free_port(), free_port());
    let p = start(dir.path(), http, tcp).await;
    let doc = serde_json::json!({
        "a": "# TYPE a_jobs gauge\na_jobs{q=\"x\"} 3\n",
        "b": { "metrics": ["# TYPE b_up gauge", "b_up 1"], "ttl": "1h" },
    });
    assert_eq!(
        reply(&send_tcp(p.tcp, doc.to_string().as_bytes()).await)["ok"],
        true
    );
    let r = request_with_body(
        p.http,
        "PUT",
        "/metrics/job/nightly/instance/db1",
        &[("Content-Length", "13")],
        b"backup_ok 1\n\n",
    )
    .await;
    assert_eq!(r.status, 200);
    let before = apps_json(p.http).await;
    assert_eq!(before.len(), 3);
    let pushed = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    // Wait for a snapshot written after those pushes.
    eventually(|| async {
        metric_value(
            &get(p.http, "/metrics").await.body_string(),
            "exporter_proxy_snapshot_last_success_timestamp_seconds",
        ) > pushed
    })
    .await;
    // A stream of pushes is going on when the process is killed.
    let stream_tcp = p.tcp;
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let acked2 = acked.clone();
    let stream = tokio::spawn(async move {
        for i in 1..=10_000u64 {
            let Ok(mut s) = tokio::net::TcpStream::connect(stream_tcp).await else {
                return;
            };
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let doc = json_push("stream", &format!("stream_seq {i}\n"));
            if s.write_all(&doc).await.is_err() || s.shutdown().await.is_err() {
                return;
            }
            let mut out = String::new();
            if s.read_to_string(&mut out).await.is_err() || !out.contains("\"ok\":true") {
                return;
            }
            acked2.store(i, std::sync::atomic::Ordering::SeqCst);
        }
    });
    eventually(|| async { acked.load(std::sync::atomic::Ordering::SeqCst) >= 20 }).await;
    let mut p = p;
    p.child.kill().unwrap(); // SIGKILL: no shutdown snapshot
    p.child.wait().unwrap();
    let _ = stream.await;
    let last_acked = acked.load(std::sync::atomic::Ordering::SeqCst);
    drop(p);

    let q = start(dir.path(), http, tcp).await;
    let after = apps_json(q.http).await;
    for app in &before {
        let restored = after
            .iter()
            .find(|a| a["name"] == app["name"])
            .unwrap_or_else(|| panic!("{} not restored: {after:?}", app["name"]));
        assert_eq!(
            restored["last_update"], app["last_update"],
            "push time kept"
        );
        assert_eq!(restored["ttl"], app["ttl"]);
        assert_eq!(restored["kind"], app["kind"]);
        assert_eq!(restored["source"], app["source"]);
    }
    let b = after.iter().find(|a| a["name"] == "b").unwrap();
    let left = b["expires_in_seconds"].as_f64().unwrap();
    assert!(
        left < 3600.0 && left > 3000.0,
        "the TTL kept running: {left}"
    );
    let m = get(q.http, "/metrics").await.body_string();
    assert!(metric("a_jobs").label("q", "x").value("3").is_in(&m), "{m}");
    assert!(metric("backup_ok")
        .label("job", "nightly")
        .label("instance", "db1")
        .is_in(&m));
    // The streamed app is whatever the last snapshot held: an acknowledged push.
    if let Some(v) = metric("stream_seq").get(&m) {
        assert!(v >= 1.0 && v <= last_acked as f64, "{v} vs {last_acked}");
    }
    assert_eq!(
        metric_value(&m, "exporter_proxy_snapshot_restore_failures_total"),
        0.0
    );
}

#[tokio::test]
async fn a_corrupt_snapshot_is_moved_aside_and_the_proxy_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("snap.bin"),
        b"EPSNAP\0\ngarbage garbage garbage",
    )
    .unwrap();
    let p = start(dir.path(), free_port(), free_port()).await;
    assert_eq!(apps_json(p.http).await.len(), 0);
    let m = get(p.http, "/metrics").await.body_string();
    assert_eq!(
        metric_value(&m, "exporter_proxy_snapshot_restore_failures_total"),
        1.0
    );
    let aside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("snap.bin.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "moved aside for inspection");
    // It works normally, and writes a good snapshot again.
    assert_eq!(
        reply(&send_tcp(p.tcp, &json_push("fresh", "fresh_up 1\n")).await)["ok"],
        true
    );
    eventually(|| async {
        std::fs::read(dir.path().join("snap.bin"))
            .ok()
            .and_then(|b| exporter_proxy::persist::decode(&b).ok())
            .is_some_and(|apps| apps.iter().any(|a| a.name == "fresh"))
    })
    .await;
}

#[tokio::test]
async fn an_unwritable_snapshot_location_never_stops_ingestion() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), b"").unwrap();
    // A path below a regular file cannot be created, even by root.
    let blocked = dir.path().join("a-file").join("snap.bin");
    let app = TestApp::with_config(&format!(
        "[persistence]\nfile = \"{}\"\ninterval = \"50ms\"\n",
        blocked.display()
    ))
    .await;
    assert_eq!(
        reply(&send_tcp(app.tcp, &json_push("x", "x_up 1\n")).await)["ok"],
        true
    );
    eventually(|| async {
        metric_value(
            &app.metrics().await,
            "exporter_proxy_snapshot_failures_total",
        ) >= 2.0
    })
    .await;
    assert_eq!(
        reply(&send_tcp(app.tcp, &json_push("x", "x_up 2\n")).await)["ok"],
        true
    );
    assert!(metric("x_up").value("2").is_in(&app.metrics().await));
    app.stop().await;
}
