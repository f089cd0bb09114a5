//! What the container image relies on, without a container engine (none
//! is available where the tests run): the Dockerfile's HEALTHCHECK command
//! run as written, with the image's `EXPORTER_PROXY_CONFIG`.

use std::process::Command;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_exporter-proxy");

/// The exec-form command of the Dockerfile's `HEALTHCHECK ... CMD [...]`,
/// continuation lines joined.
fn dockerfile_healthcheck() -> Vec<String> {
    let text = include_str!("../../Dockerfile").replace("\\\n", " ");
    let line = text
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .expect("the Dockerfile has a HEALTHCHECK");
    let json = &line[line.find("CMD [").expect("exec form") + 4..];
    serde_json::from_str(json.trim()).expect("CMD is a JSON array")
}

#[tokio::test]
async fn dockerfile_healthcheck_command() {
    let cmd = dockerfile_healthcheck();
    assert_eq!(cmd[0], "/usr/bin/exporter-proxy");
    assert_eq!(cmd[1], "healthcheck");
    let app = TestApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[exporter]\nscrape_expose_endpoint = \"{}\"\n", app.http),
    )
    .unwrap();
    let run = |config: std::path::PathBuf| {
        let args = cmd[1..].to_vec();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(BIN)
                    .args(&args)
                    .env("EXPORTER_PROXY_CONFIG", config)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let out = run(config.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop().await;
    let out = run(config).await;
    assert_eq!(out.status.code(), Some(1), "unhealthy once stopped");
}
