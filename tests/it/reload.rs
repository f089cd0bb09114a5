//! Live reload: POST /-/reload and SIGHUP apply a new config whole or not at
//! all, keep pushed data, rebind changed listeners and keep unchanged poll
//! jobs' schedules.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::*;

fn reload_ok(m: &str) -> Option<f64> {
    metric("exporter_proxy_config_last_reload_successful").get(m)
}

#[tokio::test]
async fn valid_invalid_and_restart_only_reloads() {
    let app = TestApp::start().await;
    assert_eq!(
        reply(&send_tcp(app.tcp, &json_push("kept", "kept_up 1\n")).await)["ok"],
        true
    );
    assert_eq!(reload_ok(&app.metrics().await), Some(1.0));

    // A syntax error: refused, nothing applied, the metric says so.
    let (status, body) = app.reload_with("[exporter\n").await;
    assert_eq!(status, 500);
    assert!(body.contains("not valid TOML"), "{body}");
    let m = app.metrics().await;
    assert_eq!(reload_ok(&m), Some(0.0));
    assert!(m.contains("kept_up 1"));

    // A setting that needs a restart: refused, named.
    let toml = app
        .config_text
        .replacen("[receiver]\n", "[receiver]\napp_label = \"app\"\n", 1);
    let (status, body) = app.reload_with(&toml).await;
    assert_eq!(status, 500);
    assert!(
        body.contains("receiver.app_label") && body.contains("nothing was applied"),
        "{body}"
    );

    // A valid change: a new JSON receiver and a TTL on the TCP one.
    let extra_port = free_port();
    let toml = app
        .config_text
        .replacen("[receiver]\n", "[receiver]\ntcp_socket_ttl = \"1h\"\n", 1)
        + &format!("[receiver.json]\nreceiver_tcp_socket = \"127.0.0.1:{extra_port}\"\n");
    let (status, body) = app.reload_with(&toml).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("receiver json_tcp added") && body.contains("receiver tcp updated"),
        "{body}"
    );
    let m = app.metrics().await;
    assert_eq!(reload_ok(&m), Some(1.0), "recovers on the next good reload");
    assert!(m.contains("kept_up 1"), "pushed data is kept");
    // The new receiver works; the old one too, with its new TTL.
    let added: std::net::SocketAddr = format!("127.0.0.1:{extra_port}").parse().unwrap();
    assert_eq!(
        reply(&send_tcp(added, &json_push("via_new", "via_new_up 1\n")).await)["ok"],
        true
    );
    assert_eq!(
        reply(&send_tcp(app.tcp, &json_push("ttl_now", "ttl_now_up 1\n")).await)["ok"],
        true
    );
    let apps = get(app.http, "/apps?format=json").await.body_string();
    assert!(apps.contains("\"ttl\": \"1h\""), "{apps}");

    // Reloading the same file again is fine and changes nothing.
    let (status, body) = app.reload_with(&toml).await;
    assert_eq!(
        (status, body.trim()),
        (200, "configuration reloaded: nothing changed")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_changed_address_is_rebound_and_a_failed_bind_applies_nothing() {
    let app = TestApp::start().await;
    let (p1, p2) = (free_port(), free_port());
    let with_json = |port: u16| {
        format!(
            "{}[receiver.json]\nreceiver_tcp_socket = \"127.0.0.1:{port}\"\n",
            app.config_text
        )
    };
    assert_eq!(app.reload_with(&with_json(p1)).await.0, 200);
    let a1: std::net::SocketAddr = format!("127.0.0.1:{p1}").parse().unwrap();
    let a2: std::net::SocketAddr = format!("127.0.0.1:{p2}").parse().unwrap();
    assert_eq!(
        reply(&send_tcp(a1, &json_push("one", "one_up 1\n")).await)["ok"],
        true
    );
    let (status, body) = app.reload_with(&with_json(p2)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        reply(&send_tcp(a2, &json_push("two", "two_up 1\n")).await)["ok"],
        true
    );
    assert!(
        tokio::net::TcpStream::connect(a1).await.is_err(),
        "the old address is closed"
    );

    // A port someone else holds: the whole reload is refused.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().port();
    let toml = format!(
        "{}[receiver.capnp]\nreceiver_tcp_socket = \"127.0.0.1:{taken}\"\n",
        with_json(p2)
    )
    .replacen("[receiver]\n", "[receiver]\ntcp_socket_ttl = \"5m\"\n", 1);
    let (status, body) = app.reload_with(&toml).await;
    assert_eq!(status, 500);
    assert!(
        body.contains("binding") && body.contains("nothing was applied"),
        "{body}"
    );
    // The TTL change that came with it was not applied either.
    send_tcp(app.tcp, &json_push("after", "after_up 1\n")).await;
    let apps = get(app.http, "/apps?format=json").await.body_string();
    assert!(!apps.contains("\"ttl\": \"5m\""), "{apps}");
    assert_eq!(
        reply(&send_tcp(a2, &json_push("two", "two_up 2\n")).await)["ok"],
        true
    );
    app.stop().await;
}

/// A stub exporter counting requests per path.
async fn counting_exporter() -> (std::net::SocketAddr, Arc<[AtomicUsize; 2]>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let counts: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let which = usize::from(head.starts_with("GET /b "));
                c[which].fetch_add(1, Ordering::SeqCst);
                let body = if which == 0 { "a_up 1\n" } else { "b_up 1\n" };
                let _ = s
                    .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
                    .await;
            });
        }
    });
    (addr, counts)
}

#[tokio::test]
async fn unchanged_poll_jobs_keep_their_schedule() {
    let (exporter, counts) = counting_exporter().await;
    let targets = |b_label: &str| {
        format!(
            "[[poll.targets]]\nname = \"a\"\nurl = \"http://{exporter}/a\"\ninterval = \"1h\"\ntimeout = \"5s\"\n\
             [[poll.targets]]\nname = \"b\"\nurl = \"http://{exporter}/b\"\ninterval = \"1h\"\ntimeout = \"5s\"\nlabels = {{ v = \"{b_label}\" }}\n"
        )
    };
    let app = TestApp::with_config(&targets("1")).await;
    // Both are polled once at start-up, then not for an hour.
    eventually(|| async {
        counts[0].load(Ordering::SeqCst) == 1 && counts[1].load(Ordering::SeqCst) == 1
    })
    .await;
    let toml = app.config_text.replace(&targets("1"), &targets("2"));
    let (status, body) = app.reload_with(&toml).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("0 added, 1 changed, 0 removed, 1 unchanged"),
        "{body}"
    );
    // The changed job starts anew (polled at once); the unchanged one is not reset.
    eventually(|| async { counts[1].load(Ordering::SeqCst) == 2 }).await;
    eventually(|| async { metric("b_up").label("v", "2").is_in(&app.metrics().await) }).await;
    assert_eq!(
        counts[0].load(Ordering::SeqCst),
        1,
        "the unchanged job kept its phase"
    );
    assert!(metric("a_up").is_in(&app.metrics().await));
    app.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (http, tcp, extra) = (free_port(), free_port(), free_port());
    let base = format!("[exporter]\nscrape_expose_endpoint = \"127.0.0.1:{http}\"\n[receiver]\nreceiver_tcp_socket = \"127.0.0.1:{tcp}\"\n");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, &base).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_exporter-proxy"))
        .args(["-c", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http_addr: std::net::SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    eventually(|| async { tokio::net::TcpStream::connect(http_addr).await.is_ok() }).await;
    let tcp_addr: std::net::SocketAddr = format!("127.0.0.1:{tcp}").parse().unwrap();
    assert_eq!(
        reply(&send_tcp(tcp_addr, &json_push("before", "before_up 1\n")).await)["ok"],
        true
    );
    std::fs::write(
        &path,
        format!("{base}[receiver.json]\nreceiver_tcp_socket = \"127.0.0.1:{extra}\"\n"),
    )
    .unwrap();
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let extra_addr: std::net::SocketAddr = format!("127.0.0.1:{extra}").parse().unwrap();
    eventually(|| async { tokio::net::TcpStream::connect(extra_addr).await.is_ok() }).await;
    assert_eq!(
        reply(&send_tcp(extra_addr, &json_push("after", "after_up 1\n")).await)["ok"],
        true
    );
    let m = get(http_addr, "/metrics").await.body_string();
    assert!(m.contains("before_up 1") && m.contains("after_up 1"), "{m}");
    assert_eq!(reload_ok(&m), Some(1.0));
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
}
