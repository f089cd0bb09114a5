//! Sinks against real databases from Debian (Prometheus with its
//! remote-write receiver, VictoriaMetrics, InfluxDB 1.x), started by the
//! tests on loopback, and against endpoints that fail.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::interop::tool;
use crate::support::*;

/// A server process on a free loopback port, killed on drop.
pub struct Daemon {
    child: Child,
    pub addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start(
    program: &str,
    package: &str,
    args: impl FnOnce(&Path, u16) -> Vec<String>,
    ready_path: &str,
) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
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

async fn sent(app: &TestApp, sink: &str) -> f64 {
    metric("exporter_proxy_sink_samples_sent_total")
        .label("sink", sink)
        .get(&app.metrics().await)
        .unwrap_or(0.0)
}

#[tokio::test]
async fn remote_write_into_prometheus() {
    let prom = start(
        "prometheus",
        "prometheus",
        |dir, port| {
            let cfg = dir.join("prometheus.yml");
            std::fs::write(&cfg, "global:\n  scrape_interval: 1h\n").unwrap();
            vec![
                format!("--config.file={}", cfg.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--web.enable-remote-write-receiver".into(),
            ]
        },
        "/-/ready",
    )
    .await;
    let app = TestApp::with_config(&format!(
        "[[sinks.remote_write]]\nname = \"prom\"\nurl = \"http://{}/api/v1/write\"\ninterval = \"200ms\"\n",
        prom.addr
    ))
    .await;
    send_tcp(
        app.tcp,
        &json_push(
            "rw",
            "# TYPE rw_value gauge\nrw_value{k=\"v\"} 42\n# TYPE rw_total counter\nrw_total 7\n",
        ),
    )
    .await;
    let result = poll_until("rw_value in Prometheus", || async {
        let r = get(
            prom.addr,
            &format!("/api/v1/query?query={}", enc("rw_value{app=\"rw\"}")),
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        let first = v["data"]["result"].as_array()?.first()?.clone();
        Some(first)
    })
    .await;
    assert_eq!(result["metric"]["k"], "v");
    assert_eq!(result["metric"]["app"], "rw");
    assert_eq!(result["value"][1], "42");
    let total = get(
        prom.addr,
        &format!("/api/v1/query?query={}", enc("rw_total")),
    )
    .await
    .body_string();
    assert!(total.contains("\"7\""), "{total}");
    // The counter follows the database's answer, which may come after the
    // data is queryable.
    eventually(|| async { sent(&app, "prom").await >= 2.0 }).await;
    app.stop().await;
}

#[tokio::test]
async fn remote_write_and_influx_v2_into_victoria_metrics() {
    let vm = start(
        "victoria-metrics",
        "victoria-metrics",
        |dir, port| {
            vec![
                format!("-httpListenAddr=127.0.0.1:{port}"),
                format!("-storageDataPath={}", dir.join("data").display()),
                "-influxSkipSingleField".into(),
            ]
        },
        "/health",
    )
    .await;
    let app = TestApp::with_config(&format!(
        "[[sinks.remote_write]]\nname = \"vm_rw\"\nurl = \"http://{0}/api/v1/write\"\ninterval = \"200ms\"\n\
         [[sinks.influxdb]]\nname = \"vm_influx\"\nurl = \"http://{0}\"\napi = \"v2\"\norg = \"o\"\nbucket = \"b\"\ntoken_env = \"PATH\"\napp_label = \"src\"\ninterval = \"200ms\"\n",
        vm.addr
    ))
    .await;
    send_tcp(
        app.tcp,
        &json_push("vm", "# TYPE vm_value gauge\nvm_value{k=\"a b,c\"} 42.5\n"),
    )
    .await;
    let series = poll_until("vm_value from both sinks in VictoriaMetrics", || async {
        get(vm.addr, "/internal/force_flush").await;
        let r = get(
            vm.addr,
            &format!("/api/v1/export?match[]={}", enc("vm_value")),
        )
        .await;
        let lines: Vec<serde_json::Value> = r
            .body_string()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let via_rw = lines.iter().any(|s| s["metric"]["app"] == "vm");
        let via_influx = lines.iter().any(|s| s["metric"]["src"] == "vm");
        (via_rw && via_influx).then_some(lines)
    })
    .await;
    for s in &series {
        assert_eq!(s["metric"]["k"], "a b,c", "{s}");
        assert_eq!(s["values"][0], 42.5, "{s}");
    }
    for sink in ["vm_rw", "vm_influx"] {
        eventually(|| async { sent(&app, sink).await >= 1.0 }).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn influx_v1_into_influxdb() {
    let influx = start(
        "influxd",
        "influxdb",
        |dir, port| {
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
    .await;
    let r = request_with_body(
        influx.addr,
        "POST",
        &format!("/query?q={}", enc("CREATE DATABASE metrics")),
        &[("Content-Length", "0")],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_string());
    let app = TestApp::with_config(&format!(
        "[[sinks.influxdb]]\nname = \"influx\"\nurl = \"http://{}\"\napi = \"v1\"\ndatabase = \"metrics\"\ninterval = \"200ms\"\n",
        influx.addr
    ))
    .await;
    send_tcp(
        app.tcp,
        &json_push(
            "iv",
            "# TYPE iv_value gauge\niv_value{k=\"x y\"} 17\n# TYPE iv_nan gauge\niv_nan NaN\n",
        ),
    )
    .await;
    let value = poll_until("iv_value in InfluxDB", || async {
        let q =
            enc("SELECT last(\"value\") FROM \"iv_value\" WHERE \"app\" = 'iv' AND \"k\" = 'x y'");
        let r = get(influx.addr, &format!("/query?db=metrics&q={q}")).await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        v["results"][0]["series"][0]["values"][0][1].as_f64()
    })
    .await;
    assert_eq!(value, 17.0);
    eventually(|| async { sent(&app, "influx").await >= 1.0 }).await;
    let m = app.metrics().await;
    // NaN has no line-protocol form: counted as dropped, not sent.
    assert!(
        metric("exporter_proxy_sink_samples_dropped_total")
            .label("sink", "influx")
            .get(&m)
            .unwrap()
            >= 1.0,
        "{m}"
    );
    app.stop().await;
}

/// A loopback HTTP server that reads each request fully, then answers 500
/// (`hang` = false) or never answers (`hang` = true).
async fn bad_server(hang: bool) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 20];
                let mut got = Vec::new();
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            if hang {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                            }
                            let _ = s.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nnope").await;
                            got.clear();
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn failing_sinks_keep_the_proxy_healthy_and_count_what_was_not_sent() {
    let closed = free_port();
    let err500 = bad_server(false).await;
    let hang = bad_server(true).await;
    let app = TestApp::with_config(&format!(
        "[[sinks.remote_write]]\nname = \"closed\"\nurl = \"http://127.0.0.1:{closed}/api/v1/write\"\ninterval = \"100ms\"\nmax_retries = 1\n\
         [[sinks.remote_write]]\nname = \"err500\"\nurl = \"http://{err500}/api/v1/write\"\ninterval = \"100ms\"\nmax_retries = 1\n\
         [[sinks.influxdb]]\nname = \"hang\"\nurl = \"http://{hang}\"\ndatabase = \"d\"\ninterval = \"50ms\"\ntimeout = \"30s\"\nqueue_capacity = 1\n"
    ))
    .await;
    send_tcp(app.tcp, &json_push("s", "# TYPE s_up gauge\ns_up 1\n")).await;
    eventually(|| async {
        let m = app.metrics().await;
        let failed = |sink| {
            metric("exporter_proxy_sink_samples_failed_total")
                .label("sink", sink)
                .get(&m)
                .unwrap_or(0.0)
        };
        let dropped = metric("exporter_proxy_sink_samples_dropped_total")
            .label("sink", "hang")
            .get(&m)
            .unwrap_or(0.0);
        failed("closed") >= 1.0 && failed("err500") >= 1.0 && dropped >= 1.0
    })
    .await;
    // Ingestion and scraping are unaffected.
    assert_eq!(get(app.http, "/-/ready").await.status, 200);
    let r = reply(&send_tcp(app.tcp, &json_push("s", "# TYPE s_up gauge\ns_up 2\n")).await);
    assert_eq!(r["ok"], true);
    assert!(metric("s_up").value("2").is_in(&app.metrics().await));
    app.stop().await;
}
