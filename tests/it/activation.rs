//! systemd socket activation: the binary started by
//! `systemd-socket-activate` (from Debian's systemd package), which binds
//! the sockets, waits for the first connection, and executes the proxy
//! with `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES` set.

use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::interop::tool;
use crate::support::free_port;
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_exporter-proxy");

#[tokio::test]
async fn pushes_through_handed_over_sockets_which_are_not_unlinked() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("push.sock");
    let json_socket = dir.path().join("handed-by-name.sock");
    let http = free_port();
    let config = dir.path().join("c.toml");
    // The receivers' paths: `unix` matches the first handed socket by its
    // path; `json_unix` is configured elsewhere and matched by its name.
    std::fs::write(
        &config,
        format!(
            "[exporter]\nscrape_expose_endpoint = \"127.0.0.1:{http}\"\nshutdown_grace_period = \"2s\"\n\
             [receiver]\nformat = \"auto\"\nreceiver_unix_socket = \"{}\"\n\
             [receiver.json]\nreceiver_unix_socket = \"{}\"\n",
            socket.display(),
            dir.path().join("not-bound-by-us.sock").display(),
        ),
    )
    .unwrap();
    let mut child = Command::new(tool("systemd-socket-activate", "systemd"))
        .arg(format!("--listen={}", socket.display()))
        .arg(format!("--listen={}", json_socket.display()))
        .arg(format!("--listen=127.0.0.1:{http}"))
        .arg("--fdname=unknown:json_unix:http")
        .arg(BIN)
        .args(["-c", config.to_str().unwrap(), "--log.level", "debug"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // systemd-socket-activate binds first; the proxy starts on the first
    // connection, which waits in the backlog meanwhile.
    eventually(|| async { socket.exists() && json_socket.exists() }).await;
    let r = reply(&send_unix(&socket, &json_push("activated", "activated_up 1\n")).await);
    assert_eq!(r["ok"], true, "{r}");
    let r = reply(&send_unix(&json_socket, &json_push("by_name", "by_name_up 1\n")).await);
    assert_eq!(r["ok"], true, "{r}");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let body = get(addr, "/metrics").await.body_string();
    assert!(metric("activated_up").value("1").is_in(&body), "{body}");
    assert!(metric("by_name_up").value("1").is_in(&body), "{body}");
    let apps = get(addr, "/apps?format=json").await.body_string();
    assert!(apps.contains(&socket.display().to_string()), "{apps}");

    // systemd-socket-activate executes the proxy in its own process.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + STEP;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                return (s, err);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("using the socket handed over by systemd"),
        "{stderr}"
    );
    // The service manager owns the sockets: they stay.
    assert!(socket.exists(), "handed-over socket not unlinked");
    assert!(json_socket.exists(), "handed-over socket not unlinked");
    assert!(!dir.path().join("not-bound-by-us.sock").exists());
}

#[tokio::test]
async fn a_handed_over_socket_matching_nothing_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("push.sock");
    let stray = dir.path().join("stray.sock");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[exporter]\nscrape_expose_endpoint = \"127.0.0.1:0\"\n[receiver]\nreceiver_unix_socket = \"{}\"\n",
            socket.display()
        ),
    )
    .unwrap();
    let child = Command::new(tool("systemd-socket-activate", "systemd"))
        .arg(format!("--listen={}", stray.display()))
        .arg(BIN)
        .args(["-c", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(|| async { stray.exists() }).await;
    // The first connection starts the proxy, which refuses to run.
    let mut s = tokio::net::UnixStream::connect(&stray).await.unwrap();
    let _ = s.write_all(b"{}").await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(STEP, s.read_to_end(&mut buf)).await;
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let out = child.wait_with_output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("match no configured listener") && stderr.contains("stray.sock"),
        "{stderr}"
    );
}
