//! Sinks against real databases from Debian (Prometheus with its
//! remote-write receiver, VictoriaMetrics, InfluxDB 1.x), started by the
//! tests on loopback, and against endpoints that fail.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::daemons::{enc, influxd_with_metrics_db, poll_until, prometheus, victoria_metrics};
use crate::support::*;

async fn sent(app: &TestApp, sink: &str) -> f64 {
    metric("exporter_proxy_sink_samples_sent_total")
        .label("sink", sink)
        .get(&app.metrics().await)
        .unwrap_or(0.0)
}

#[tokio::test]
async fn remote_write_into_prometheus() {
    let prom = prometheus(
        "global:\n  scrape_interval: 1h\n",
        &["--web.enable-remote-write-receiver"],
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
    let vm = victoria_metrics(&["-influxSkipSingleField"]).await;
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
    let influx = influxd_with_metrics_db().await;
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
