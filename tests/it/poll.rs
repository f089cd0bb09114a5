//! Polling stub exporters on loopback: every failure kind shows in `up`,
//! the failure counters and `/apps`; stale data is dropped; a slow target
//! never holds up `/metrics` or the other targets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

/// What a stub answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Mode {
    Healthy = 0,
    OpenMetrics = 1,
    Slow = 2,
    Status500 = 3,
    Garbage = 4,
    Large = 5,
}

/// A stub exporter: answers by mode, counts requests, keeps the last request head.
pub struct Stub {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    pub requests: Arc<AtomicU64>,
    pub last_head: Arc<Mutex<String>>,
    task: Option<tokio::task::JoinHandle<()>>,
    name: String,
}

impl Stub {
    pub async fn start(name: &str, mode: Mode) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut s = Stub {
            addr,
            mode: Arc::new(AtomicU8::new(mode as u8)),
            requests: Arc::default(),
            last_head: Arc::default(),
            task: None,
            name: name.to_owned(),
        };
        s.serve(listener);
        s
    }

    fn serve(&mut self, listener: TcpListener) {
        let (mode, requests, head, name) = (
            self.mode.clone(),
            self.requests.clone(),
            self.last_head.clone(),
            self.name.clone(),
        );
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (mode, requests, head, name) =
                    (mode.clone(), requests.clone(), head.clone(), name.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let req = String::from_utf8_lossy(&buf).into_owned();
                    *head.lock().unwrap() = req.clone();
                    let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
                    let gzip = req.to_ascii_lowercase().contains("accept-encoding: gzip");
                    let (status, ctype, body): (&str, &str, Vec<u8>) =
                        match mode.load(Ordering::SeqCst) {
                            0 => (
                                "200 OK",
                                "text/plain; version=0.0.4",
                                format!("# HELP stub_requests_total Requests.\n# TYPE stub_requests_total counter\nstub_requests_total{{stub=\"{name}\"}} {n}\nstub_up{{job=\"inner\"}} 1\n").into_bytes(),
                            ),
                            1 => (
                                "200 OK",
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                format!("# HELP om_events Events.\n# TYPE om_events counter\nom_events_total{{stub=\"{name}\"}} {n} # {{trace_id=\"x\"}} 1\nom_events_created{{stub=\"{name}\"}} 1.7e9\n# EOF\n").into_bytes(),
                            ),
                            2 => {
                                // Never answers within any test timeout.
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                return;
                            }
                            3 => ("500 Internal Server Error", "text/plain", b"boom\n".to_vec()),
                            4 => ("200 OK", "text/plain", b"<html>not metrics</html>\n".to_vec()),
                            _ => (
                                "200 OK",
                                "text/plain",
                                (0..200)
                                    .map(|i| format!("big_{i} {i}\n"))
                                    .collect::<String>()
                                    .into_bytes(),
                            ),
                        };
                    let (body, enc) = if gzip {
                        use std::io::Write;
                        let mut e =
                            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                        e.write_all(&body).unwrap();
                        (e.finish().unwrap(), "Content-Encoding: gzip\r\n")
                    } else {
                        (body, "")
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n{enc}Content-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(&body).await;
                    let _ = conn.shutdown().await;
                });
            }
        }));
    }

    /// Stops listening: connections are refused.
    pub async fn kill(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Listens again on the same port.
    pub async fn revive(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

pub async fn apps_json(app: &TestApp) -> serde_json::Value {
    let r = get(app.http, "/apps?format=json").await;
    assert_eq!(r.status, 200);
    serde_json::from_slice(&r.body).unwrap()
}

pub fn app_row(apps: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
}

fn target(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[poll.targets]]\nname = \"{name}\"\nurl = \"{url}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nlabels = {{ source = \"{name}\" }}\n{extra}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_target_state_shows_in_up_failures_and_apps() {
    let healthy = Stub::start("healthy", Mode::Healthy).await;
    let om = Stub::start("om", Mode::OpenMetrics).await;
    let slow = Stub::start("slow", Mode::Slow).await;
    let e500 = Stub::start("e500", Mode::Status500).await;
    let garbage = Stub::start("garbage", Mode::Garbage).await;
    let large = Stub::start("large", Mode::Large).await;
    let mut flaky = Stub::start("flaky", Mode::Healthy).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let config = [
        target(
            "healthy",
            &healthy.url(),
            &format!(
                "bearer_token_file = \"{}\"\nheaders = {{ \"X-Test\" = \"yes\" }}",
                token.display()
            ),
        ),
        target("om", &om.url(), ""),
        target("slow", &slow.url(), ""),
        target("e500", &e500.url(), ""),
        target("garbage", &garbage.url(), ""),
        target("large", &large.url(), "max_body_size = \"1KiB\""),
        target("flaky", &flaky.url(), "stale_after = \"3s\""),
    ]
    .concat();
    let app = TestApp::with_config(&config).await;

    let up = |body: &str, t: &str| {
        metric("exporter_proxy_target_up")
            .label("target", t)
            .get(body)
    };
    let failures = |body: &str, t: &str, reason: &str| {
        metric("exporter_proxy_target_poll_failures_total")
            .label("target", t)
            .label("reason", reason)
            .get(body)
            .unwrap_or(0.0)
    };
    eventually(|| async {
        let body = app.metrics().await;
        up(&body, "healthy") == Some(1.0)
            && up(&body, "om") == Some(1.0)
            && up(&body, "flaky") == Some(1.0)
            && failures(&body, "slow", "timeout") >= 1.0
            && failures(&body, "e500", "http_status") >= 1.0
            && failures(&body, "garbage", "invalid_body") >= 1.0
            && failures(&body, "large", "too_large") >= 1.0
    })
    .await;
    let body = app.metrics().await;
    for t in ["slow", "e500", "garbage", "large"] {
        assert_eq!(up(&body, t), Some(0.0), "{t} is down");
        assert!(
            metric("exporter_proxy_target_last_failure_timestamp_seconds")
                .label("target", t)
                .is_in(&body)
        );
    }
    assert!(
        metric("exporter_proxy_target_last_success_timestamp_seconds")
            .label("target", "healthy")
            .is_in(&body)
    );
    assert!(metric("exporter_proxy_target_poll_duration_seconds")
        .label("target", "healthy")
        .is_in(&body));
    // Data with the target's labels; the OpenMetrics body converted.
    assert!(
        metric("stub_up")
            .label("job", "inner")
            .label("source", "healthy")
            .is_in(&body),
        "{body}"
    );
    assert!(
        metric("om_events_total").label("source", "om").is_in(&body),
        "{body}"
    );
    assert!(
        metric("om_events_created")
            .label("source", "om")
            .is_in(&body),
        "{body}"
    );
    assert!(body.contains("# TYPE om_events_total counter\n"));
    assert_contiguous_families(&body);

    // The request: Accept lists what we take, gzip, the header and the token.
    let head = healthy.last_head.lock().unwrap().to_ascii_lowercase();
    assert!(head.contains("accept: text/plain;version=0.0.4"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(head.contains("accept-encoding: gzip"), "{head}");
    assert!(head.contains("x-test: yes"), "{head}");
    assert!(
        head.contains("authorization: bearer s3cret-token"),
        "{head}"
    );

    // /apps: kind poll, status and the reason in the last error.
    let apps = apps_json(&app).await;
    for (t, status, reason) in [
        ("healthy", "up", None),
        ("slow", "down", Some("timeout")),
        ("e500", "down", Some("http_status")),
        ("garbage", "down", Some("invalid_body")),
        ("large", "down", Some("too_large")),
    ] {
        let row = app_row(&apps, t).unwrap_or_else(|| panic!("{t} in /apps: {apps}"));
        assert_eq!(row["kind"], "poll");
        assert_eq!(row["status"], status, "{t}: {row}");
        if let Some(r) = reason {
            let e = row["last_error"].as_str().unwrap();
            assert!(e.starts_with(r), "{t}: {e}");
        }
    }
    let text = get(app.http, "/apps").await.body_string();
    assert!(text.contains("| slow") && text.contains("down"), "{text}");

    // A slow target does not hold up the others: the healthy one keeps being
    // polled while the slow one keeps timing out, and /metrics answers.
    let before = healthy.requests.load(Ordering::SeqCst);
    let slow_before = failures(&app.metrics().await, "slow", "timeout");
    eventually(|| async {
        let b = app.metrics().await;
        healthy.requests.load(Ordering::SeqCst) >= before + 3
            && failures(&b, "slow", "timeout") >= slow_before + 1.0
    })
    .await;

    // The flaky one dies: down, last data still served until stale_after...
    flaky.kill().await;
    eventually(|| async {
        let b = app.metrics().await;
        up(&b, "flaky") == Some(0.0)
            && failures(&b, "flaky", "connect_error") >= 1.0
            && metric("stub_requests_total")
                .label("source", "flaky")
                .is_in(&b)
    })
    .await;
    let row = app_row(&apps_json(&app).await, "flaky").unwrap();
    assert_eq!(row["status"], "down");
    // ...then dropped, while the target stays listed.
    eventually(|| async {
        let b = app.metrics().await;
        !metric("stub_requests_total")
            .label("source", "flaky")
            .is_in(&b)
    })
    .await;
    let row = app_row(&apps_json(&app).await, "flaky").unwrap();
    assert_eq!(row["series"], 0);
    // It comes back.
    flaky.revive().await;
    eventually(|| async {
        let b = app.metrics().await;
        up(&b, "flaky") == Some(1.0)
            && metric("stub_requests_total")
                .label("source", "flaky")
                .is_in(&b)
    })
    .await;
    // A pushed app may not take a polled target's name.
    let reply = send_tcp(app.tcp, &json_push("healthy", "x 1\n")).await;
    assert!(reply.contains("already used by a poll source"), "{reply}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_poll_external_keys_poll_and_name_targets_by_url() {
    let stub = Stub::start("legacy", Mode::Healthy).await;
    let app = TestApp::with_config(&format!(
        "[poll_external]\npoll_other_scrape_endpoints = true\nother_scrape_endpoints = [\"{}\"]\nallow_invalid_certs = false\npoll_interval = 1\nclient_timeout = 1\n",
        stub.url()
    ))
    .await;
    let name = format!("{}/metrics", stub.addr);
    eventually(|| async {
        metric("stub_requests_total")
            .label("stub", "legacy")
            .is_in(&app.metrics().await)
    })
    .await;
    let row = app_row(&apps_json(&app).await, &name).expect("named host:port/path");
    assert_eq!(row["kind"], "poll");
    assert_eq!(row["status"], "up");
    assert_eq!(row["source"], stub.url());
    app.stop().await;
}
