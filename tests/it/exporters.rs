//! Five real exporters polled by one proxy: Debian's
//! prometheus-node-exporter, Prometheus, the Pushgateway, InfluxDB and
//! VictoriaMetrics. They expose the same Go runtime families, typed by some
//! (Prometheus' `go_gc_duration_seconds` summary) and untyped by others
//! (VictoriaMetrics): the untyped ones join the typed ones, every target is
//! up, and promtool accepts the page.

use crate::daemons::{influxd, node_exporter, prometheus, pushgateway, victoria_metrics};
use crate::interop::promtool_parses;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_real_exporters_polled_together_make_one_valid_page() {
    let node = node_exporter().await;
    let prometheus = prometheus("global:\n  scrape_interval: 1m\n", &[]).await;
    let pushgateway = pushgateway().await;
    let influxdb = influxd().await;
    let victoria = victoria_metrics(&[]).await;
    let targets = [
        ("node", node.addr),
        ("prometheus", prometheus.addr),
        ("pushgateway", pushgateway.addr),
        ("influxdb", influxdb.addr),
        ("victoria", victoria.addr),
    ];
    let config: String = targets
        .iter()
        .map(|(name, addr)| {
            format!(
                "[[poll.targets]]\nname = \"{name}\"\nurl = \"http://{addr}/metrics\"\n\
                 interval = \"1s\"\ntimeout = \"1s\"\nlabels = {{ source = \"{name}\" }}\n"
            )
        })
        .collect();
    let app = TestApp::with_config(&config).await;

    let up = |b: &str, t: &str| {
        metric("exporter_proxy_target_up").label("target", t).get(b) == Some(1.0)
    };
    let deadline = tokio::time::Instant::now() + STEP * 3;
    let body = loop {
        let b = app.metrics().await;
        // Two rounds of polls, so that every order of arrival has been met.
        let polled_twice = targets.iter().all(|(t, _)| {
            up(&b, t)
                && metric("exporter_proxy_target_poll_duration_seconds")
                    .label("target", t)
                    .is_in(&b)
        });
        if polled_twice {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            let b = app.metrics().await;
            if targets.iter().all(|(t, _)| up(&b, t)) {
                break b;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "all five exporters up within {:?}; /apps:\n{}",
            STEP * 3,
            get(app.http, "/apps").await.body_string()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    // One summary, with every target's samples in it.
    assert_eq!(
        body.matches("# TYPE go_gc_duration_seconds ").count(),
        1,
        "{body}"
    );
    assert!(body.contains("# TYPE go_gc_duration_seconds summary\n"));
    for (t, _) in &targets {
        assert!(
            metric("go_gc_duration_seconds_count")
                .label("source", t)
                .is_in(&body),
            "go_gc_duration_seconds_count of {t}"
        );
    }
    assert!(body.contains("node_cpu_seconds_total{source=\"node\""));
    assert!(body.contains("prometheus_build_info{source=\"prometheus\""));
    assert!(body.contains("pushgateway_build_info{source=\"pushgateway\""));
    assert!(body.contains("{source=\"victoria\""));
    // VictoriaMetrics' untyped quantiles sit in the summary.
    let summary = &body[body
        .find("# TYPE go_gc_duration_seconds summary\n")
        .unwrap()..];
    let summary = &summary[..summary[1..].find("# ").map_or(summary.len(), |e| e + 1)];
    assert!(
        summary.contains("go_gc_duration_seconds{source=\"victoria\",quantile=\"1\"}"),
        "{summary}"
    );
    assert_contiguous_families(&body);
    promtool_parses(&body).await;
    app.stop().await;
}
