//! Hostile and broken input: each gets a clear error and leaves the
//! previous state intact.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const GOOD: &str = "# TYPE kept_total counter\nkept_total 41\n";

/// Pushes a known set for app "kept" and returns a checker that it is intact.
async fn seeded() -> TestApp {
    let app = TestApp::with_config(
        "[limits]\nmax_push_bytes = 4096\nidle_timeout = \"300ms\"\nread_timeout = \"2s\"\n",
    )
    .await;
    let r = reply(&send_tcp(app.tcp, &json_push("kept", GOOD)).await);
    assert_eq!(r["ok"], true, "{r}");
    app
}

async fn assert_intact(app: &TestApp) {
    let body = app.metrics().await;
    assert!(
        metric("kept_total").value("41").is_in(&body),
        "previous set lost: {body}"
    );
}

fn error_of(line: &str) -> String {
    let r = reply(line);
    assert_eq!(r["ok"], false, "{r}");
    r["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn truncated_capnp() {
    let app = seeded().await;
    let full = capnp_push("kept", "kept_total 1\n");
    let err = error_of(&send_tcp(app.tcp, &full[..full.len() - 5]).await);
    assert!(
        err.contains("truncated") && err.contains("byte offset 0"),
        "{err}"
    );
    // Two messages, the second truncated inside its segment table: the
    // first one is applied, the error names the second's offset.
    let mut two = capnp_push("other", "other_up 1\n");
    let off = two.len();
    two.extend_from_slice(&[0, 0]);
    let err = error_of(&send_tcp(app.tcp, &two).await);
    assert!(err.contains(&format!("byte offset {off}")), "{err}");
    assert_intact(&app).await;
    assert!(app.metrics().await.contains("other_up 1"));
    app.stop().await;
}

#[tokio::test]
async fn random_bytes() {
    let app = seeded().await;
    // A deterministic pseudo-random stream (xorshift), not starting with '{'.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..2000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let err = error_of(&send_tcp(app.tcp, &bytes).await);
    assert!(err.contains("byte offset"), "{err}");
    assert_intact(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn invalid_utf8() {
    let app = seeded().await;
    let err = error_of(&send_tcp(app.tcp, b"{\"kept\": \"kept_total \xff\"}").await);
    assert_eq!(err, "invalid UTF-8 at byte offset 21");
    let mut msg = capnp_push("kept", "kept_total 9\n");
    let at = msg.len() - 10;
    msg[at] = 0xff;
    let err = error_of(&send_tcp(app.tcp, &msg).await);
    assert!(err.contains("UTF-8"), "{err}");
    assert_intact(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn invalid_json_and_wrong_types() {
    let app = seeded().await;
    for (doc, want) in [
        (&b"{\"kept\": \"kept_total 1\""[..], "EOF"),
        (
            b"{\"kept\": 5}",
            "expected a string, an array of strings, or {\"metrics\"",
        ),
        (b"{\"kept\": [\"a\", 1]}", "expected a string"),
        (
            b"{\"kept\": {\"x\": 1}}",
            "unknown field \"x\", expected \"metrics\" or \"ttl\"",
        ),
        (b"[\"kept\"]", "expected {\"app\""),
    ] {
        let err = error_of(&send_tcp(app.tcp, doc).await);
        assert!(err.contains(want) && err.contains("line 1 column"), "{err}");
    }
    assert_intact(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn malformed_exposition() {
    let app = seeded().await;
    for (text, want) in [
        ("kept_total 1\nkept_total{a=\"b\" 2\n", "line 2"),
        ("# TYPE kept_total countr\n", "countr"),
        ("kept_total one\n", "expected a float"),
        ("kept_total 1 2 3\n", "line 1"),
    ] {
        let err = error_of(&send_unix(&app.socket, &json_push("kept", text)).await);
        assert!(
            err.starts_with("app \"kept\": ") && err.contains(want),
            "{err}"
        );
    }
    assert_intact(&app).await;
    let apps = get(app.http, "/apps?format=json").await.body_string();
    assert!(apps.contains("\"status\": \"rejected\""), "{apps}");
    app.stop().await;
}

#[tokio::test]
async fn invalid_app_names() {
    let app = seeded().await;
    let err = error_of(&send_tcp(app.tcp, &json_push("", "x 1\n")).await);
    assert!(err.contains("empty"), "{err}");
    let err = error_of(&send_tcp(app.tcp, &capnp_push("a\nb", "x 1\n")).await);
    assert!(err.contains("control character"), "{err}");
    assert_intact(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn oversized_push() {
    let app = seeded().await;
    let big = format!(
        "# TYPE kept_total counter\nkept_total 1\n# {}\n",
        "x".repeat(5000)
    );
    let err = error_of(&send_tcp(app.tcp, &json_push("kept", &big)).await);
    assert!(err.contains("exceeds the limit of 4096 bytes"), "{err}");
    let err = error_of(&send_tcp(app.tcp, &capnp_push("kept", &big)).await);
    assert!(err.contains("exceeds the limit of 4096 bytes"), "{err}");
    assert_intact(&app).await;
    let body = app.metrics().await;
    assert_eq!(
        metric("exporter_proxy_push_rejections_total")
            .label("reason", "too_large")
            .get(&body),
        Some(2.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn client_that_never_sends_eof_hits_the_idle_timeout() {
    let app = seeded().await;
    let mut s = TcpStream::connect(app.tcp).await.unwrap();
    s.write_all(b"{\"kept\": \"kept_total 2\\n\"}")
        .await
        .unwrap();
    // No shutdown: the server must give up by itself and say why.
    let line = read_reply(&mut s).await;
    let err = error_of(&line);
    assert!(err.contains("idle timeout"), "{err}");
    assert_intact(&app).await;
    let body = app.metrics().await;
    assert_eq!(
        metric("exporter_proxy_push_rejections_total")
            .label("reason", "timeout")
            .get(&body),
        Some(1.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn slow_trickle_hits_the_read_timeout() {
    let app = seeded().await;
    let mut s = TcpStream::connect(app.tcp).await.unwrap();
    let started = std::time::Instant::now();
    // One byte every 100 ms never trips the idle timeout, only the total one.
    let mut reply = String::new();
    for b in b"{\"kept\": \"kept_total 2                                      \"}"
        .iter()
        .cycle()
    {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            reply.push_str(std::str::from_utf8(&buf[..n]).unwrap());
            if n == 0 || reply.ends_with('\n') {
                break;
            }
        }
        assert!(started.elapsed() < STEP, "no timeout");
    }
    let mut rest = String::new();
    let _ = tokio::time::timeout(STEP, s.read_to_string(&mut rest)).await;
    reply.push_str(&rest);
    assert!(error_of(&reply).contains("read timeout"), "{reply}");
    assert_intact(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn more_connections_than_the_limit() {
    let app = TestApp::with_all(
        "concurrent_requests = 2",
        "",
        // No queue: this test is about the refusal (bursts: `edges.rs`).
        "[limits]\nidle_timeout = \"5s\"\nmax_queued_connections = 0\n",
    )
    .await;
    send_tcp(app.tcp, &json_push("kept", GOOD)).await;
    // Two idle connections hold both permits...
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(app.tcp).await.unwrap();
        s.write_all(b"{").await.unwrap();
        held.push(s);
    }
    eventually(|| async {
        metric("exporter_proxy_open_connections")
            .label("listener", "tcp")
            .value("2")
            .is_in(&app.metrics().await)
    })
    .await;
    // ...so the third is refused with a reason.
    let mut third = TcpStream::connect(app.tcp).await.unwrap();
    let err = error_of(&read_reply(&mut third).await);
    assert!(err.contains("too many connections"), "{err}");
    // The Unix listener has its own limit and is unaffected.
    let r = reply(&send_unix(&app.socket, &json_push("other", "other_up 1\n")).await);
    assert_eq!(r["ok"], true);
    drop(held);
    // Permits come back: the TCP listener accepts again.
    eventually(|| async {
        let r = reply(&send_tcp(app.tcp, &json_push("again", "again_up 1\n")).await);
        r["ok"] == true
    })
    .await;
    assert_intact(&app).await;
    let body = app.metrics().await;
    assert!(
        metric("exporter_proxy_push_rejections_total")
            .label("reason", "too_many_connections")
            .get(&body)
            .unwrap()
            >= 1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn too_many_series_and_apps() {
    let app = TestApp::with_config("[limits]\nmax_series_per_app = 2\nmax_apps = 2\n").await;
    let err = error_of(&send_tcp(app.tcp, &json_push("a", "a 1\nb 1\nc 1\n")).await);
    assert!(err.contains("too many series"), "{err}");
    assert_eq!(
        reply(&send_tcp(app.tcp, &json_push("a", "a 1\n")).await)["ok"],
        true
    );
    assert_eq!(
        reply(&send_tcp(app.tcp, &json_push("b", "b 1\n")).await)["ok"],
        true
    );
    let err = error_of(&send_tcp(app.tcp, &json_push("c", "c 1\n")).await);
    assert!(err.contains("maximum of 2 applications"), "{err}");
    // An existing app may still replace its set.
    assert_eq!(
        reply(&send_tcp(app.tcp, &json_push("b", "b 2\n")).await)["ok"],
        true
    );
    app.stop().await;
}
