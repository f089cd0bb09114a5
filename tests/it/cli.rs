//! The binary: config checking, exit codes, start-up and shutdown.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_exporter-proxy");

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn committed_config_is_valid() {
    let out = Command::new(BIN)
        .args(["-c", repo("config.toml").to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

#[test]
fn bad_config_lists_every_problem_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[exporter]\nworker_threads = \"two\"\nconcurrent_requests = 0\nscrape_expose_endpoint = \"localhost:80\"\nbogus = 1\n[receiver]\nformat = \"xml\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["-c", path.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "exporter.worker_threads",
        "exporter.concurrent_requests",
        "exporter.scrape_expose_endpoint",
        "exporter.bogus",
        "receiver.format",
    ] {
        assert!(err.contains(&format!("`{key}`")), "{key} missing in: {err}");
    }
    // The same through the environment variable, and for `run`.
    let out = Command::new(BIN)
        .env("EXPORTER_PROXY_CONFIG", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = Command::new(BIN)
        .args(["-c", "/nonexistent/config.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read file"));
}

#[test]
fn version_flag() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn binary_serves_then_drains_on_sigterm_and_removes_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("p.sock");
    let http = free_port();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[exporter]\nworker_threads = 0\nscrape_expose_endpoint = \"127.0.0.1:{http}\"\n[receiver]\nformat = \"json\"\nreceive_on_unix_socket = true\nreceiver_unix_socket = \"{}\"\nunix_socket_user = \"current_user\"\nunix_socket_group = \"current_group\"\nunix_socket_mode = \"0600\"\nreceive_on_tcp_socket = false\nreceiver_tcp_socket = \"127.0.0.1:1\"\n",
            socket.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["-c", config.to_str().unwrap(), "--log.level", "debug"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    eventually(|| async { tokio::net::TcpStream::connect(addr).await.is_ok() }).await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let r = reply(&send_unix(&socket, &json_push("bin", "bin_up 1\n")).await);
    assert_eq!(r["ok"], true);
    assert!(get(addr, "/metrics")
        .await
        .body_string()
        .contains("bin_up 1"));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || {
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
    assert!(status.0.success(), "{}", status.1);
    assert!(
        status.1.contains("receiver bound") && status.1.contains("http server bound"),
        "{}",
        status.1
    );
    assert!(!socket.exists(), "socket removed on shutdown");
}

#[test]
fn refuses_to_replace_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("precious.txt");
    std::fs::write(&victim, "data").unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!("[exporter]\nscrape_expose_endpoint = \"127.0.0.1:0\"\n[receiver]\nreceiver_unix_socket = \"{}\"\n", victim.display()),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["-c", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "data");
}

#[test]
fn container_config_is_valid() {
    let out = Command::new(BIN)
        .args([
            "-c",
            repo("docker/config.toml").to_str().unwrap(),
            "check-config",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every key of the committed config.toml, active or commented out, has a
/// comment line directly above it.
#[test]
fn every_key_in_the_committed_config_is_documented() {
    let text = std::fs::read_to_string(repo("config.toml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let is_key = |l: &str| {
        let l = l.trim_start_matches("# ");
        l.split_once(" = ").is_some_and(|(k, _)| {
            k.starts_with(|c: char| c.is_ascii_lowercase())
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
    };
    for (i, line) in lines.iter().enumerate() {
        if !is_key(line) {
            continue;
        }
        let above = if i > 0 { lines[i - 1] } else { "" };
        assert!(
            above.starts_with('#') && !is_key(above),
            "config.toml line {}: `{line}` has no comment above it",
            i + 1
        );
    }
}
