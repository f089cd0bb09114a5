//! Real servers from Debian started by the tests on free loopback ports
//! (Prometheus, the Pushgateway, node-exporter, InfluxDB 1.x,
//! VictoriaMetrics), each in its own temp dir and killed on drop; and the
//! small helpers the tests that query them share.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::interop::tool;
use crate::support::*;

/// A server process on a free loopback port, killed on drop.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program` (from Debian's `package`) with the arguments `args`
/// makes of its temp dir and port, and waits until `ready_path` answers
/// 2xx.
pub async fn start(
    program: &str,
    package: &str,
    args: impl FnOnce(&Path, u16) -> Vec<String>,
    ready_path: &str,
) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(tool(program, package))
        .args(args(dir.path(), port))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon {
        child,
        addr,
        _dir: dir,
    };
    let deadline = tokio::time::Instant::now() + STEP * 3;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            let s = get(addr, ready_path).await.status;
            if (200..300).contains(&s) {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{program} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d
}

/// A Prometheus server with `config` as its `prometheus.yml` and `extra`
/// flags after the config, storage and listen address.
pub async fn prometheus(config: &str, extra: &[&str]) -> Daemon {
    start(
        "prometheus",
        "prometheus",
        |dir, port| {
            let cfg = dir.join("prometheus.yml");
            std::fs::write(&cfg, config).unwrap();
            let mut args = vec![
                format!("--config.file={}", cfg.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
            ];
            args.extend(extra.iter().map(|a| a.to_string()));
            args
        },
        "/-/ready",
    )
    .await
}

/// A Prometheus configuration scraping `target` every second as the job
/// `proxy` (labels kept), with `job_extra` lines inside the job.
pub fn scraping(target: SocketAddr, job_extra: &str) -> String {
    format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: proxy\n    honor_labels: true\n{job_extra}    static_configs:\n      - targets: ['{target}']\n"
    )
}

/// The Pushgateway without persistence.
pub async fn pushgateway() -> Daemon {
    start(
        "prometheus-pushgateway",
        "prometheus-pushgateway",
        |_, port| {
            vec![
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--persistence.file=".into(),
            ]
        },
        "/-/ready",
    )
    .await
}

/// Debian's node exporter.
pub async fn node_exporter() -> Daemon {
    start(
        "prometheus-node-exporter",
        "prometheus-node-exporter",
        |_, port| vec![format!("--web.listen-address=127.0.0.1:{port}")],
        "/metrics",
    )
    .await
}

/// InfluxDB 1.x with its data in the temp dir, no reporting, no monitor.
pub async fn influxd() -> Daemon {
    start(
        "influxd",
        "influxdb",
        |dir: &Path, port| {
            let cfg = dir.join("influxdb.conf");
            std::fs::write(
                &cfg,
                format!(
                    "reporting-disabled = true\nbind-address = \"127.0.0.1:{}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n[http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n[monitor]\n  store-enabled = false\n",
                    free_port(),
                    d = dir.display()
                ),
            )
            .unwrap();
            vec!["run".into(), "-config".into(), cfg.display().to_string()]
        },
        "/ping",
    )
    .await
}

/// [`influxd`] with the database `metrics` created.
pub async fn influxd_with_metrics_db() -> Daemon {
    let influx = influxd().await;
    let r = request_with_body(
        influx.addr,
        "POST",
        &format!("/query?q={}", enc("CREATE DATABASE metrics")),
        &[("Content-Length", "0")],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_string());
    influx
}

/// VictoriaMetrics with its data in the temp dir and `extra` flags.
pub async fn victoria_metrics(extra: &[&str]) -> Daemon {
    start(
        "victoria-metrics",
        "victoria-metrics",
        |dir, port| {
            let mut args = vec![
                format!("-httpListenAddr=127.0.0.1:{port}"),
                format!("-storageDataPath={}", dir.join("data").display()),
            ];
            args.extend(extra.iter().map(|a| a.to_string()));
            args
        },
        "/health",
    )
    .await
}

/// Percent-encodes a query-string value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Waits for `f` to return `Some` within 30 s.
pub async fn poll_until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + STEP * 3;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
