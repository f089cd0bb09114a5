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

/// Runs the binary with stdin from `input`; returns (exit code, stdout, stderr).
async fn run_bin(args: Vec<String>, input: &'static str) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn push_command_over_every_transport_and_apps_command() {
    // Every transport pushes the same series: the app label tells them apart.
    let app = TestApp::with("", "app_label = \"app\"").await;
    let targets = [
        (format!("unix:{}", app.socket.display()), "json", "via_unix"),
        (format!("tcp://{}", app.tcp), "json", "via_tcp_json"),
        (app.tcp.to_string(), "capnp", "via_tcp_capnp"),
        (format!("http://{}", app.http), "json", "via_http"),
    ];
    for (to, format, name) in &targets {
        let args = vec![
            "push".into(),
            "--app".into(),
            name.to_string(),
            "--to".into(),
            to.clone(),
            "--format".into(),
            format.to_string(),
        ];
        let (code, out, err) = run_bin(args, "# TYPE pushed_up gauge\npushed_up 1\n").await;
        assert_eq!(code, 0, "{to}: {out} {err}");
        assert!(
            out.contains("\"ok\":true") || out.starts_with("HTTP 200"),
            "{to}: {out}"
        );
    }
    let m = app.metrics().await;
    for (_, _, name) in &targets[..3] {
        assert!(metric("pushed_up").is_in(&m), "{m}");
        assert!(get(app.http, "/apps?format=json")
            .await
            .body_string()
            .contains(name));
    }
    assert!(
        metric("pushed_up").label("job", "via_http").is_in(&m),
        "{m}"
    );

    // A refused push: the reason is printed and the exit code is 2.
    let args = vec![
        "push".into(),
        "-a".into(),
        "via_unix".into(),
        "-t".into(),
        format!("unix:{}", app.socket.display()),
    ];
    let (code, out, _) = run_bin(args, "broken{ 1\n").await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("line 1"), "{out}");
    let args = vec![
        "push".into(),
        "-a".into(),
        "via_http".into(),
        "-t".into(),
        format!("http://{}", app.http),
    ];
    let (code, out, _) = run_bin(args, "broken{ 1\n").await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("HTTP 400") && out.contains("line 1"),
        "{out}"
    );

    // apps: the table, or JSON.
    let (code, out, _) = run_bin(
        vec![
            "apps".into(),
            "--url".into(),
            format!("http://{}", app.http),
        ],
        "",
    )
    .await;
    assert_eq!(code, 0);
    assert!(
        out.contains("| App Name") && out.contains("via_tcp_capnp"),
        "{out}"
    );
    let (code, out, _) = run_bin(
        vec![
            "apps".into(),
            "--url".into(),
            format!("http://{}", app.http),
            "--json".into(),
        ],
        "",
    )
    .await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["apps"].as_array().unwrap().len() >= 4);
    app.stop().await;

    // Nobody listening: exit 1 with the address in the message.
    let (code, _, err) = run_bin(
        vec![
            "push".into(),
            "-a".into(),
            "x".into(),
            "-t".into(),
            "unix:/nonexistent/sock".into(),
        ],
        "x 1\n",
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/sock"), "{err}");
}

#[tokio::test]
async fn push_command_defaults_to_the_configs_receiver() {
    let app = TestApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[receiver]\nreceiver_unix_socket = \"{}\"\n",
            app.socket.display()
        ),
    )
    .unwrap();
    let args = vec![
        "-c".into(),
        config.to_str().unwrap().to_owned(),
        "push".into(),
        "--app".into(),
        "defaulted".into(),
        "-".into(),
    ];
    let (code, out, err) = run_bin(args, "defaulted_up 1\n").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(app.metrics().await.contains("defaulted_up 1"));
    app.stop().await;
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
