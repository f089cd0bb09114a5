//! Hardened edges (issue 13), over real sockets on loopback: bursts over
//! the concurrency limit are queued, long-lived Cap'n Proto streams and RPC
//! connections are kept, the bytes budget, the HTTP connection cap, and the
//! gates of the write endpoints. The load cases run here scaled down; the
//! benchmark tool's hostile mode runs them at full size.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::support::*;

fn error_of(line: &str) -> String {
    let r = reply(line);
    assert_eq!(r["ok"], false, "{r}");
    r["error"].as_str().unwrap().to_owned()
}

fn rejections(body: &str, reason: &str) -> f64 {
    metric("exporter_proxy_push_rejections_total")
        .label("reason", reason)
        .get(body)
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_concurrency_limit_is_queued_not_refused() {
    // 300 pushers connecting at once against 4 slots (the benchmark's
    // hostile mode: 1,000 against 64). The original left them in the
    // backlog; refusing them loses the data of cron jobs that start on the
    // same minute.
    const PUSHERS: usize = 300;
    let app = TestApp::with_all("concurrent_requests = 4", "", "").await;
    let connected = Arc::new(Barrier::new(PUSHERS));
    let mut pushers = JoinSet::new();
    for i in 0..PUSHERS {
        let (addr, connected) = (app.tcp, connected.clone());
        pushers.spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            connected.wait().await;
            let name = format!("burst{i}");
            s.write_all(&json_push(&name, &format!("burst_up{{i=\"{i}\"}} 1\n")))
                .await
                .unwrap();
            s.shutdown().await.unwrap();
            reply(&read_reply(&mut s).await)
        });
    }
    while let Some(r) = pushers.join_next().await {
        let r = r.unwrap();
        assert_eq!(r["ok"], true, "{r}");
    }
    let body = app.metrics().await;
    for i in 0..PUSHERS {
        assert!(
            metric("burst_up").label("i", &i.to_string()).is_in(&body),
            "push {i} lost"
        );
    }
    assert_eq!(rejections(&body, "too_many_connections"), 0.0);
    app.stop().await;
}

#[tokio::test]
async fn a_queued_connection_is_refused_after_the_read_timeout() {
    let app = TestApp::with_all(
        "concurrent_requests = 1",
        "",
        "[limits]\nread_timeout = \"1s\"\nstream_idle_timeout = \"never\"\n",
    )
    .await;
    // A Cap'n Proto stream holds the only slot between two messages.
    let mut holder = TcpStream::connect(app.tcp).await.unwrap();
    holder
        .write_all(&capnp_push("holder", "holder_seq 1\n"))
        .await
        .unwrap();
    eventually(|| async { metric("holder_seq").value("1").is_in(&app.metrics().await) }).await;
    let mut queued = TcpStream::connect(app.tcp).await.unwrap();
    queued
        .write_all(&json_push("queued", "queued_up 1\n"))
        .await
        .unwrap();
    queued.shutdown().await.unwrap();
    let err = error_of(&read_reply(&mut queued).await);
    assert!(
        err.contains("too many connections") && err.contains("no slot within 1s"),
        "{err}"
    );
    // The holder's stream goes on.
    holder
        .write_all(&capnp_push("holder", "holder_seq 2\n"))
        .await
        .unwrap();
    holder.shutdown().await.unwrap();
    let r = reply(&read_reply(&mut holder).await);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["accepted"], serde_json::json!(["holder", "holder"]));
    let body = app.metrics().await;
    assert!(!metric("queued_up").is_in(&body));
    assert_eq!(rejections(&body, "too_many_connections"), 1.0);
    app.stop().await;
}

#[tokio::test]
async fn capnp_streams_are_kept_between_messages_but_not_inside_one() {
    // Pauses longer than the read and idle timeouts between messages, as an
    // app that keeps its connection and pushes every 12 s does.
    let app =
        TestApp::with_config("[limits]\nread_timeout = \"2s\"\nidle_timeout = \"1s\"\n").await;
    let mut s = TcpStream::connect(app.tcp).await.unwrap();
    for seq in 1..=3 {
        s.write_all(&capnp_push("long", &format!("long_seq {seq}\n")))
            .await
            .unwrap();
        eventually(|| async {
            metric("long_seq")
                .value(&seq.to_string())
                .is_in(&app.metrics().await)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    s.shutdown().await.unwrap();
    let r = reply(&read_reply(&mut s).await);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["accepted"], serde_json::json!(["long", "long", "long"]));

    // Half a message keeps the idle timeout: refused with the reason, the
    // complete message before it stays applied.
    let mut s = TcpStream::connect(app.tcp).await.unwrap();
    let whole = capnp_push("half", "half_up 1\n");
    s.write_all(&whole).await.unwrap();
    s.write_all(&whole[..10]).await.unwrap();
    let line = read_reply(&mut s).await;
    assert!(error_of(&line).contains("idle timeout"), "{line}");
    assert_eq!(reply(&line)["accepted"], serde_json::json!(["half"]));
    assert!(metric("half_up").is_in(&app.metrics().await));
    app.stop().await;
}

#[tokio::test]
async fn an_idle_stream_is_closed_cleanly_after_stream_idle_timeout() {
    let app = TestApp::with_config("[limits]\nstream_idle_timeout = \"1s\"\n").await;
    let mut s = TcpStream::connect(app.tcp).await.unwrap();
    s.write_all(&capnp_push("quiet", "quiet_up 1\n"))
        .await
        .unwrap();
    // No half-close: the proxy ends the stream itself, and it was fine.
    let r = reply(&read_reply(&mut s).await);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["accepted"], serde_json::json!(["quiet"]));
    assert_eq!(rejections(&app.metrics().await, "timeout"), 0.0);
    app.stop().await;
}

/// Pushes `texts` over one RPC connection, pausing `pause` between them.
async fn rpc_pushes(addr: std::net::SocketAddr, texts: Vec<String>, pause: Duration) -> Vec<bool> {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let client = crate::rpc::client(addr).await;
            let mut out = Vec::new();
            for (i, text) in texts.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(pause).await;
                }
                let mut req = client.push_request();
                {
                    let mut m = req.get().init_metrics();
                    m.set_app_name("rpc_long");
                    m.set_data(&text[..]);
                }
                let resp = tokio::time::timeout(STEP, req.send().promise)
                    .await
                    .unwrap()
                    .unwrap();
                out.push(resp.get().unwrap().get_accepted());
            }
            out
        })
        .await
}

#[tokio::test]
async fn rpc_connections_are_kept_between_calls_but_not_inside_one() {
    let app =
        TestApp::with_config("[limits]\nread_timeout = \"2s\"\nidle_timeout = \"1s\"\n").await;
    let texts = (1..=3).map(|i| format!("rpc_seq {i}\n")).collect();
    let accepted = rpc_pushes(app.rpc, texts, Duration::from_millis(2500)).await;
    assert_eq!(accepted, [true, true, true]);
    assert!(metric("rpc_seq").value("3").is_in(&app.metrics().await));

    // Half a message: the proxy ends the connection after the idle timeout,
    // with capnp-rpc's abort message naming the reason.
    let mut s = TcpStream::connect(app.rpc).await.unwrap();
    s.write_all(&[0, 0, 0, 0, 16, 0, 0, 0, 1, 2, 3])
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(STEP, s.read_to_end(&mut got))
        .await
        .expect("closed by the proxy")
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("limits.idle_timeout"), "{text:?}");
    app.stop().await;
}

#[tokio::test]
async fn pushes_over_the_bytes_budget_wait_then_are_refused() {
    let app = TestApp::with_config(
        "[limits]\nmax_push_bytes = \"1MiB\"\nmax_inflight_push_bytes = \"1MiB\"\nidle_timeout = \"1s\"\nread_timeout = \"20s\"\n",
    )
    .await;
    let big = |app: &str, kib: usize| {
        let mut text = format!("{app}_up 1\n");
        text.push_str(&format!("# {}\n", "x".repeat(kib * 1024)));
        json_push(app, &text)
    };
    // One slow sender holds 900 KiB of the budget for 3 s, sending a byte
    // now and then (trailing whitespace) so that it is never idle.
    let mut holder = TcpStream::connect(app.tcp).await.unwrap();
    holder.write_all(&big("holder", 900)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (addr, other) = (app.tcp, big("other", 200));
    let second = tokio::spawn(async move { send_tcp(addr, &other).await });
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        holder.write_all(b" ").await.unwrap();
    }
    // The second waited up to its idle timeout for room, then was told why.
    let err = error_of(&second.await.unwrap());
    assert!(err.contains("limits.max_inflight_push_bytes"), "{err}");
    holder.shutdown().await.unwrap();
    let r = reply(&read_reply(&mut holder).await);
    assert_eq!(r["ok"], true, "{r}");
    // The budget came back: the same push now lands.
    let r = reply(&send_tcp(app.tcp, &big("other", 200)).await);
    assert_eq!(r["ok"], true, "{r}");
    app.stop().await;
}

#[tokio::test]
async fn idle_http_connections_are_capped_and_closed() {
    // Scaled-down form of 15,000 idle HTTP connections.
    const CAP: usize = 20;
    let app = TestApp::with_all(
        &format!("max_http_connections = {CAP}"),
        "",
        "[limits]\nread_timeout = \"1s\"\n",
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..CAP + 5 {
        idle.push(TcpStream::connect(app.http).await.unwrap());
    }
    let r = get(app.http, "/metrics").await;
    assert_eq!(r.status, 503, "{}", r.body_string());
    assert!(r.body_string().contains("max_http_connections = 20"));
    // Idle connections are closed after the header read timeout...
    for mut s in idle {
        let mut buf = [0u8; 1024];
        loop {
            let n = tokio::time::timeout(STEP, s.read(&mut buf))
                .await
                .expect("closed by the proxy")
                .unwrap_or(0);
            if n == 0 {
                break;
            }
        }
    }
    // ...and the port serves again.
    eventually(|| async { get(app.http, "/metrics").await.status == 200 }).await;
    app.stop().await;
}

#[tokio::test]
async fn lifecycle_and_admin_endpoints_are_off_by_default() {
    let app = TestApp::with_all("enable_lifecycle = false\nenable_admin_api = false", "", "").await;
    let r = request(app.http, "POST", "/-/reload", &[("Content-Length", "0")]).await;
    assert_eq!(r.status, 403);
    assert!(
        r.body_string().contains("enable_lifecycle")
            && r.body_string().contains("--web.enable-lifecycle"),
        "{}",
        r.body_string()
    );
    let body = b"gated_up 1\n";
    let len = body.len().to_string();
    let r = request_with_body(
        app.http,
        "PUT",
        "/metrics/job/gated",
        &[("Content-Length", &len)],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "loopback may push: {}", r.body_string());
    let r = request(app.http, "DELETE", "/metrics/job/gated", &[]).await;
    assert_eq!(r.status, 403);
    assert!(
        r.body_string().contains("enable_admin_api"),
        "{}",
        r.body_string()
    );
    assert!(
        metric("gated_up").is_in(&app.metrics().await),
        "not deleted"
    );
    app.stop().await;
}

#[tokio::test]
async fn push_api_peers_outside_its_networks_are_refused() {
    let app = TestApp::with_config("[push_api]\nallowed_networks = [\"10.0.0.0/8\"]\n").await;
    let body = b"far_up 1\n";
    let len = body.len().to_string();
    let r = request_with_body(
        app.http,
        "PUT",
        "/metrics/job/far",
        &[("Content-Length", &len)],
        body,
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body_string().contains("127.0.0.1")
            && r.body_string().contains("[push_api] allowed_networks"),
        "{}",
        r.body_string()
    );
    let metrics = app.metrics().await;
    assert!(!metric("far_up").is_in(&metrics));
    assert_eq!(rejections(&metrics, "network_not_allowed"), 1.0);
    app.stop().await;
}

#[tokio::test]
async fn push_api_delete_removes_only_push_api_groups() {
    // Admin API on (the test default).
    let app = TestApp::start().await;
    // A socket push whose app name is the one a push-API group would have.
    let r = reply(&send_tcp(app.tcp, &json_push("{job=\"x\"}", "sock_up 1\n")).await);
    assert_eq!(r["ok"], true, "{r}");
    let r = request(app.http, "DELETE", "/metrics/job/x", &[]).await;
    assert_eq!(r.status, 202);
    assert!(
        metric("sock_up").is_in(&app.metrics().await),
        "not the push API's to delete"
    );
    // Its own group goes.
    let body = b"gw_up 1\n";
    let len = body.len().to_string();
    let r = request_with_body(
        app.http,
        "PUT",
        "/metrics/job/y",
        &[("Content-Length", &len)],
        body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(metric("gw_up").is_in(&app.metrics().await));
    let r = request(app.http, "DELETE", "/metrics/job/y", &[]).await;
    assert_eq!(r.status, 202);
    assert!(!metric("gw_up").is_in(&app.metrics().await));
    app.stop().await;
}

/// The original's usage: one Cap'n Proto connection kept open, a push
/// every 12 s, then every 5 s past the read timeout (pycapnp, as the
/// original's clients), against the limits of the committed config.toml.
#[tokio::test]
async fn the_originals_long_lived_python_client_works_with_the_committed_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = exporter_proxy::config::Config::load(&root.join("config.toml"))
        .unwrap()
        .config;
    // The test app runs with the defaults: the committed file has them.
    assert_eq!(
        committed.limits,
        exporter_proxy::ingest::config::Limits::default()
    );
    let app = TestApp::start().await;
    let script = r##"
import socket, sys, time
import capnp
schema = capnp.load(sys.argv[1])
host, port = sys.argv[2].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=60)
start = time.monotonic()
# 0 s, 12 s (longer than idle_timeout), then every 5 s past read_timeout.
for seq, at in enumerate([0, 12, 17, 22, 27, 32, 37], start=1):
    time.sleep(max(0, start + at - time.monotonic()))
    m = schema.InboundMetrics.new_message()
    m.appName = "kept_open"
    m.data = "# TYPE kept_open_seq gauge\nkept_open_seq %d\n" % seq
    s.sendall(m.to_bytes())
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    reply += chunk
print(reply.decode())
"##;
    let out = tokio::process::Command::new(crate::interop::python())
        .args([
            "-c",
            script,
            root.join("schema/metric_data.capnp").to_str().unwrap(),
            &app.tcp.to_string(),
        ])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("the client finishes")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = format!("{}\n", String::from_utf8_lossy(&out.stdout).trim_end());
    let r = reply(&line);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["accepted"].as_array().unwrap().len(), 7, "{r}");
    assert!(metric("kept_open_seq")
        .value("7")
        .is_in(&app.metrics().await));
    app.stop().await;
}

/// The Prometheus flags turn the gates on for the binary; `SIGHUP` works
/// without them (`reload::sighup_reloads_the_binary`).
#[tokio::test]
async fn the_web_enable_flags_open_reload_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!("[exporter]\nscrape_expose_endpoint = \"127.0.0.1:{http}\"\n"),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_exporter-proxy"))
        .args([
            "-c",
            path.to_str().unwrap(),
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    eventually(|| async { TcpStream::connect(addr).await.is_ok() }).await;
    let r = request(addr, "POST", "/-/reload", &[("Content-Length", "0")]).await;
    assert_eq!(r.status, 200, "{}", r.body_string());
    let body = b"flag_up 1\n";
    let len = body.len().to_string();
    let r = request_with_body(
        addr,
        "PUT",
        "/metrics/job/flag",
        &[("Content-Length", &len)],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_string());
    let r = request(addr, "DELETE", "/metrics/job/flag", &[]).await;
    assert_eq!(r.status, 202, "{}", r.body_string());
    assert!(!get(addr, "/metrics")
        .await
        .body_string()
        .contains("flag_up"));
    child.kill().unwrap();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}

/// Scaled-down form of 2,000 slow senders of 16 MiB (the hostile mode):
/// 40 senders of 200 KiB against a budget of 1 MiB. Each gets an answer,
/// accepted or told the budget is full; none is left hanging or reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_slow_senders_each_get_an_answer_within_the_budget() {
    const SENDERS: usize = 40;
    let app = TestApp::with_config(
        "[limits]\nmax_push_bytes = \"1MiB\"\nmax_inflight_push_bytes = \"1MiB\"\nidle_timeout = \"1s\"\nread_timeout = \"20s\"\n",
    )
    .await;
    let mut senders = JoinSet::new();
    for i in 0..SENDERS {
        let addr = app.tcp;
        senders.spawn(async move {
            let name = format!("slow{i}");
            let text = format!("{name}_up 1\n# {}\n", "x".repeat(200 * 1024));
            let doc = json_push(&name, &text);
            let mut s = TcpStream::connect(addr).await.unwrap();
            for chunk in doc.chunks(16 * 1024) {
                if s.write_all(chunk).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = s.shutdown().await;
            reply(&read_reply(&mut s).await)
        });
    }
    let (mut ok, mut full) = (0, 0);
    while let Some(r) = senders.join_next().await {
        let r = r.unwrap();
        if r["ok"] == true {
            ok += 1;
        } else {
            let e = r["error"].as_str().unwrap();
            assert!(e.contains("limits.max_inflight_push_bytes"), "{r}");
            full += 1;
        }
    }
    assert_eq!(ok + full, SENDERS);
    assert!(ok >= 1, "some pushes land");
    // Exactly the accepted pushes are stored.
    let body = app.metrics().await;
    let stored = (0..SENDERS)
        .filter(|i| metric(&format!("slow{i}_up")).is_in(&body))
        .count();
    assert_eq!(stored, ok);
    app.stop().await;
}
