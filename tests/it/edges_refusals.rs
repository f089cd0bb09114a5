//! Refusals reach the sender (issue 13), over real sockets on loopback:
//! Linux resets a connection closed with unread bytes in its receive
//! buffer, so a sender refused while its push was still arriving saw
//! `connection reset` and often lost the reply. Every refusal path now
//! replies, half-closes and drains the rest. Also: pushes over the bytes
//! budget wait and complete under overload, RPC connections over the
//! budget wait, and HTTP write endpoints time out slow bodies with `408`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::task::JoinSet;

use crate::support::*;

/// Writes `data` whole, half-closes and reads the reply; any reset (on the
/// write or the read) is an error.
async fn push_whole<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    data: &[u8],
) -> std::io::Result<serde_json::Value> {
    s.write_all(data).await?;
    s.shutdown().await?;
    let mut out = String::new();
    tokio::time::timeout(STEP, s.read_to_string(&mut out))
        .await
        .expect("reply in time")?;
    Ok(reply(&out))
}

fn error_text(r: &serde_json::Value) -> &str {
    assert_eq!(r["ok"], false, "{r}");
    r["error"].as_str().unwrap()
}

/// A Cap'n Proto frame whose table announces one segment of `words`
/// words, followed by that many words of garbage.
fn frame(segments: u32, words: u32) -> Vec<u8> {
    let mut f = (segments - 1).to_le_bytes().to_vec();
    f.extend_from_slice(&words.to_le_bytes());
    f.resize(8 + words as usize * 8, 0xAB);
    f
}

#[tokio::test]
async fn refused_senders_that_wrote_their_whole_push_read_the_reply_not_a_reset() {
    let app = TestApp::with_config("[limits]\nmax_push_bytes = \"64KiB\"\n").await;
    // Sixteen times the limit: the proxy stops keeping it at the limit.
    let big = json_push("big", &format!("# {}\n", "x".repeat(1 << 20)));
    for _ in 0..3 {
        let tcp = TcpStream::connect(app.tcp).await.unwrap();
        let r = push_whole(tcp, &big).await.expect("the reply, not a reset");
        assert!(
            error_text(&r).contains("exceeds the limit of 65536 bytes"),
            "{r}"
        );
        let unix = UnixStream::connect(&app.socket).await.unwrap();
        let r = push_whole(unix, &big)
            .await
            .expect("the reply, not a reset");
        assert!(error_text(&r).contains("exceeds the limit"), "{r}");
    }
    // A Cap'n Proto message over the limit, announced by its table.
    let tcp = TcpStream::connect(app.tcp).await.unwrap();
    let r = push_whole(tcp, &frame(1, 128 * 1024))
        .await
        .expect("no reset");
    assert!(error_text(&r).contains("message 0 at byte offset 0"), "{r}");
    // A bad frame (too many segments), then a megabyte the proxy ignores.
    let mut bad = frame(100_000, 0);
    bad.resize(1 << 20, 0xAB);
    let tcp = TcpStream::connect(app.tcp).await.unwrap();
    let r = push_whole(tcp, &bad).await.expect("no reset");
    assert!(error_text(&r).contains("message 0"), "{r}");
    app.stop().await;

    // Refused at once (the only slot is taken, no queue), while it sends.
    let app = TestApp::with_all(
        "concurrent_requests = 1",
        "",
        "[limits]\nmax_queued_connections = 0\n",
    )
    .await;
    let mut holder = TcpStream::connect(app.tcp).await.unwrap();
    holder
        .write_all(&capnp_push("holder", "holder_up 1\n"))
        .await
        .unwrap();
    eventually(|| async { metric("holder_up").is_in(&app.metrics().await) }).await;
    let small = json_push(
        "queued",
        &format!("queued_up 1\n# {}\n", "x".repeat(60_000)),
    );
    let tcp = TcpStream::connect(app.tcp).await.unwrap();
    let r = push_whole(tcp, &small).await.expect("no reset");
    assert!(error_text(&r).contains("too many connections"), "{r}");
    drop(holder);
    // The proxy kept its state: the holder's push, nothing refused.
    let body = app.metrics().await;
    assert!(metric("holder_up").is_in(&body));
    assert!(!metric("queued_up").is_in(&body));
    app.stop().await;
}

/// Scaled-down form of 2,000 slow senders of 16 MiB on the default
/// 256 MiB budget: 40 slow senders of about 1 MiB (the limit) on a budget
/// of four. Pushes are admitted whole, a few at a time, and complete; each
/// of the others is told why; none is reset or left without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_budget_completes_some_pushes_and_answers_every_sender() {
    const SENDERS: usize = 40;
    let app = TestApp::with_config(
        "[limits]\nmax_push_bytes = \"1MiB\"\nmax_inflight_push_bytes = \"4MiB\"\nidle_timeout = \"1s\"\nread_timeout = \"20s\"\n",
    )
    .await;
    let mut senders = JoinSet::new();
    for i in 0..SENDERS {
        let (addr, socket) = (app.tcp, app.socket.clone());
        senders.spawn(async move {
            let name = format!("slow{i}");
            let text = format!("{name}_up 1\n# {}\n", "x".repeat(1000 * 1024));
            let doc = if i % 2 == 0 {
                json_push(&name, &text)
            } else {
                capnp_push(&name, &text)
            };
            let mut s = if i % 4 < 2 {
                Box::new(TcpStream::connect(addr).await.unwrap()) as Box<dyn Stream>
            } else {
                Box::new(UnixStream::connect(socket).await.unwrap())
            };
            for chunk in doc.chunks(32 * 1024) {
                s.write_all(chunk).await.expect("no reset while sending");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            s.shutdown().await.unwrap();
            let mut out = String::new();
            tokio::time::timeout(Duration::from_secs(60), s.read_to_string(&mut out))
                .await
                .expect("an answer")
                .expect("the reply, not a reset");
            reply(&out)
        });
    }
    let (mut ok, mut full) = (0, 0);
    while let Some(r) = senders.join_next().await {
        let r = r.unwrap();
        if r["ok"] == true {
            ok += 1;
        } else {
            assert!(
                error_text(&r).contains("limits.max_inflight_push_bytes"),
                "{r}"
            );
            full += 1;
        }
    }
    assert_eq!(ok + full, SENDERS);
    assert!(ok >= 3, "pushes complete under the overload: {ok}");
    let body = app.metrics().await;
    let stored = (0..SENDERS)
        .filter(|i| metric(&format!("slow{i}_up")).is_in(&body))
        .count();
    assert_eq!(stored, ok);
    app.stop().await;
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// One RPC push: accepted or not, `Err` with capnp's message when the
/// call failed.
async fn rpc_push(addr: SocketAddr, app: &'static str, text: String) -> Result<bool, String> {
    crate::rpc::push(addr, app, &text).await.map(|(ok, _)| ok)
}

/// Starts a Cap'n Proto stream push of about 900 KiB and sends half of
/// it: the proxy reserves its whole size from the budget at the table.
async fn budget_holder(app: &TestApp) -> (TcpStream, Vec<u8>) {
    let msg = capnp_push(
        "holder",
        &format!("holder_up 1\n# {}\n", "x".repeat(900 * 1024)),
    );
    let mut s = TcpStream::connect(app.tcp).await.unwrap();
    s.write_all(&msg[..msg.len() / 2]).await.unwrap();
    (s, msg)
}

#[tokio::test]
async fn an_rpc_push_over_the_budget_waits_for_room_then_is_told_why() {
    let app = TestApp::with_config(
        "[limits]\nmax_push_bytes = \"1MiB\"\nmax_inflight_push_bytes = \"1MiB\"\nidle_timeout = \"2s\"\nread_timeout = \"30s\"\n",
    )
    .await;
    let text = format!("rpc_waited 1\n# {}\n", "y".repeat(300 * 1024));
    // Room comes back while the call waits: it is accepted.
    let (mut holder, msg) = budget_holder(&app).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let call = tokio::task::spawn_blocking({
        let (addr, text) = (app.rpc, text.clone());
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(rpc_push(addr, "waiter", text))
        }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!call.is_finished(), "the call waits for the budget");
    holder.write_all(&msg[msg.len() / 2..]).await.unwrap();
    holder.shutdown().await.unwrap();
    assert_eq!(reply(&read_reply(&mut holder).await)["ok"], true);
    assert_eq!(call.await.unwrap(), Ok(true));
    assert!(metric("rpc_waited").is_in(&app.metrics().await));

    // The budget stays full past the idle timeout: the caller is told.
    let (mut holder, msg) = budget_holder(&app).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let call = tokio::task::spawn_blocking({
        let addr = app.rpc;
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(rpc_push(addr, "refused", text))
        }
    });
    // The holder keeps sending a little, so it is never idle itself.
    let mut sent = msg.len() / 2;
    while !call.is_finished() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        holder.write_all(&msg[sent..sent + 1]).await.unwrap();
        sent += 1;
    }
    let err = call.await.unwrap().expect_err("refused");
    assert!(
        err.contains("limits.max_inflight_push_bytes") && err.contains("limits.idle_timeout"),
        "{err}"
    );
    // The holder's push completes; the refused one left nothing behind.
    holder.write_all(&msg[sent..]).await.unwrap();
    holder.shutdown().await.unwrap();
    assert_eq!(reply(&read_reply(&mut holder).await)["ok"], true);
    let body = app.metrics().await;
    assert!(metric("holder_up").is_in(&body));
    assert!(metric("rpc_waited").is_in(&body));
    app.stop().await;
}

/// Sends the head of an HTTP request announcing `announced` body bytes,
/// then `sent` of them, then nothing; returns the status line, the body
/// and whether the proxy closed the connection after its answer.
async fn stalled_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    announced: usize,
    sent: &[u8],
) -> (String, String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {announced}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(sent).await.unwrap();
    let mut raw = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw))
        .await
        .is_ok();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (status, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        status.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
        closed,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_write_endpoints_answer_a_stalled_body_with_408_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let app = TestApp::with_config(&format!(
        "[limits]\nread_timeout = \"1s\"\n[poll.register]\nenabled = true\nregistry_file = \"{}\"\ntoken_file = \"{}\"\n",
        dir.path().join("registry.json").display(),
        token.display()
    ))
    .await;
    // Previous state: one push-API group.
    let r = request_with_body(
        app.http,
        "PUT",
        "/metrics/job/kept",
        &[("Content-Length", "10")],
        b"kept_up 1\n",
    )
    .await;
    assert!(r.status < 300, "{}", r.body_string());
    for method in ["PUT", "POST"] {
        let (status, body, closed) = stalled_body(
            app.http,
            method,
            "/metrics/job/kept",
            1000,
            b"kept_up 2\nhalf_of_it",
        )
        .await;
        assert!(status.contains(" 408 "), "{method}: {status} {body}");
        assert!(
            body.contains("not received within 1s") && body.contains("limits.read_timeout"),
            "{body}"
        );
        assert!(closed, "{method}: the connection is closed after the 408");
    }
    let body = app.metrics().await;
    assert!(
        metric("kept_up").value("1").is_in(&body),
        "previous state kept"
    );
    assert!(!body.contains("half_of_it"));

    let doc = br#"{"id":"svc-1","address":"127.0.0.1","port":9,"path":"/m"#;
    let (status, body, closed) = stalled_body(app.http, "POST", "/register", 400, doc).await;
    assert!(status.contains(" 408 "), "{status} {body}");
    assert!(body.contains("not received within 10s"), "{body}");
    assert!(closed, "the connection is closed after the 408");
    // No registration was made.
    let r = get(app.http, "/apps?format=json").await;
    assert!(!r.body_string().contains("svc-1"), "{}", r.body_string());
    app.stop().await;
}
