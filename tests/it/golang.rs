//! Go's `client_golang` (Debian's `golang-github-prometheus-client-golang-dev`,
//! built offline with `golang-go` in GOPATH mode) against the push API, next
//! to a real Pushgateway; and the OpenMetrics and protobuf scrapes of what it
//! pushed, read back by `prometheus_client`'s OpenMetrics parser, our
//! protobuf decoder and Prometheus servers (native histograms, exemplars).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use exporter_proxy::exposition::proto::{self, MetricFamily};

use crate::daemons::{enc, poll_until, prometheus, pushgateway, scraping, Daemon};
use crate::interop::{python, tool};
use crate::pushgw::pushed_samples;
use crate::support::*;

const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const PROTOBUF: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.8,application/openmetrics-text;version=1.0.0;q=0.7,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Debian's Go packages, where GOPATH mode finds them.
const GOPATH: &str = "/usr/share/gocode";

/// Builds `tests/go/pusher` once per test run.
fn pusher() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let go = tool("go", "golang-go");
            assert!(
                Path::new(GOPATH)
                    .join("src/github.com/prometheus/client_golang/prometheus/push")
                    .is_dir(),
                "client_golang not found under {GOPATH}: install the Debian package \
                 golang-github-prometheus-client-golang-dev (scripts/test.sh does)"
            );
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
            std::fs::create_dir_all(&dir).unwrap();
            let out = dir.join("pusher");
            let status = Command::new(go)
                .args(["build", "-o"])
                .arg(&out)
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/go/pusher/main.go"
                ))
                .env("GOPATH", GOPATH)
                .env("GO111MODULE", "off")
                .env("GOFLAGS", "")
                .env("GOCACHE", dir.join("cache"))
                .env("GOTOOLCHAIN", "local")
                .status()
                .unwrap();
            assert!(status.success(), "building tests/go/pusher failed");
            out
        })
        .clone()
}

/// Runs the pusher's `scenario` against `addr`.
async fn run_pusher(addr: std::net::SocketAddr, scenario: &str) {
    let bin = tokio::task::spawn_blocking(pusher).await.unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("http://{addr}")).arg(scenario);
    let out = tokio::time::timeout(STEP * 3, tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "pusher {scenario} against {addr} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn scrape(app: &TestApp, accept: &str) -> Response {
    let r = request(app.http, "GET", "/metrics", &[("Accept", accept)]).await;
    assert_eq!(r.status, 200);
    r
}

#[tokio::test]
async fn go_client_gets_the_same_result_as_on_a_real_pushgateway() {
    let app = TestApp::start().await;
    let pg = pushgateway().await;
    for scenario in ["basic", "native"] {
        run_pusher(app.http, scenario).await;
        run_pusher(pg.addr, scenario).await;
    }

    let ours = pushed_samples(&app.metrics().await, true).await;
    let theirs = pushed_samples(&get(pg.addr, "/metrics").await.body_string(), false).await;
    for expected in [
        // The protobuf push, then the POST that added a family and a count.
        r#"counter gojob_records_processed_total{instance="i1",job="gojob"} 1235.0"#,
        r#"gauge gojob_added{instance="i1",job="gojob"} 7.0"#,
        r#"histogram gojob_duration_seconds_bucket{instance="i1",job="gojob",le="1e+06"} 6.0"#,
        r#"summary gojob_size_bytes{instance="i1",job="gojob",quantile="0.99"} 40.0"#,
        r#"unknown gojob_untyped{instance="i1",job="gojob"} 42.0"#,
        // The text push.
        r#"counter gojob_records_processed_total{instance="i2",job="gojob",zone="a/b"} 1234.0"#,
    ] {
        assert!(
            ours.iter().any(|l| l == expected),
            "{expected} in {ours:#?}"
        );
    }
    assert!(
        ours.iter().any(|l| l.contains(r#"stage="we\"ird\\path""#)),
        "{ours:#?}"
    );
    assert!(!ours.iter().any(|l| l.contains("gojob_gone")), "{ours:#?}");
    // A native-only histogram in text, as the Pushgateway writes it.
    assert!(
        ours.iter().any(|l| l
            == r#"histogram gonative_latency_seconds_bucket{instance="n1",job="gonative",le="+Inf"} 100.0"#),
        "{ours:#?}"
    );
    assert_eq!(
        ours, theirs,
        "same series and values as the real Pushgateway"
    );

    // The same groups in OpenMetrics, through prometheus_client's parser:
    // the same series (OpenMetrics names the counter family without
    // `_total`, and calls untyped `unknown`).
    let om = openmetrics_parse(&scrape(&app, OPENMETRICS).await.body_string()).await;
    let mut om: Vec<String> = om
        .into_iter()
        .filter(|l| {
            !l.split(' ')
                .nth(1)
                .unwrap_or("")
                .starts_with("exporter_proxy_")
        })
        .map(|l| {
            if l.contains(" push_time_seconds{") {
                format!("{} <time>", l.rsplit_once(' ').unwrap().0)
            } else {
                l.split(" # ").next().unwrap().to_owned()
            }
        })
        .collect();
    om.sort();
    assert_eq!(om, ours, "OpenMetrics has the same series as text");
    app.stop().await;
}

/// Decodes a delimited protobuf scrape.
fn families(body: &[u8]) -> Vec<MetricFamily> {
    proto::decode_delimited(body).expect("the protobuf scrape decodes")
}

#[tokio::test]
async fn native_histograms_and_exemplars_in_every_format() {
    let app = TestApp::start().await;
    run_pusher(app.http, "native").await;

    // Protobuf: the native histogram and the exemplars as pushed, with the
    // grouping labels.
    let r = scrape(&app, PROTOBUF).await;
    assert_eq!(
        r.header("content-type"),
        Some(proto::DELIMITED_CONTENT_TYPE)
    );
    let fams = families(&r.body);
    let lat = fams
        .iter()
        .find(|f| f.name.as_deref() == Some("gonative_latency_seconds"))
        .expect("the histogram family");
    let h = lat.metric[0].histogram.as_ref().unwrap();
    assert!(h.schema.is_some() && !h.positive_span.is_empty(), "{h:?}");
    assert_eq!(h.sample_count, Some(100));
    let labels: Vec<(&str, &str)> = lat.metric[0]
        .label
        .iter()
        .map(|l| (l.name.as_deref().unwrap(), l.value.as_deref().unwrap()))
        .collect();
    assert_eq!(labels, [("instance", "n1"), ("job", "gonative")]);
    let reqs = fams
        .iter()
        .find(|f| f.name.as_deref() == Some("gonative_requests_total"))
        .unwrap();
    let ex = reqs.metric[0]
        .counter
        .as_ref()
        .unwrap()
        .exemplar
        .as_ref()
        .unwrap();
    assert_eq!(ex.label[0].value.as_deref(), Some("abc123"));
    assert!(
        fams.iter()
            .any(|f| f.name.as_deref() == Some("exporter_proxy_pushes_total")),
        "self-metrics are in the protobuf scrape too"
    );

    // Text 0.0.4: the native-only histogram as the Pushgateway writes it.
    let text = app.metrics().await;
    assert!(
        metric("gonative_latency_seconds_bucket")
            .label("le", "+Inf")
            .value("100.0")
            .is_in(&text),
        "{text}"
    );
    assert!(metric("gonative_latency_seconds_count").is_in(&text));

    // OpenMetrics: `# EOF`, the counter's exemplar, read back by
    // prometheus_client's OpenMetrics parser.
    let r = scrape(&app, OPENMETRICS).await;
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let om = r.body_string();
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE gonative_requests counter\n"), "{om}");
    let parsed = openmetrics_parse(&om).await;
    assert!(
        parsed.iter().any(|l| l.starts_with(
            r#"counter gonative_requests_total{instance="n1",job="gonative"} 5.0 # {"trace_id": "abc123"} 5.0"#
        )),
        "{parsed:#?}"
    );
    assert!(
        parsed.iter().any(|l| l.starts_with(
            r#"histogram gonative_latency_seconds_count{instance="n1",job="gonative"} 100.0"#
        )),
        "{parsed:#?}"
    );
    app.stop().await;
}

/// Parses OpenMetrics text with prometheus_client's OpenMetrics parser
/// (which checks `# EOF`, names, histogram structure and exemplars), and
/// returns `type name{labels} value[ # exemplar]` lines.
async fn openmetrics_parse(body: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, body).unwrap();
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        labels = ",".join('%s=%s' % (k, json.dumps(v)) for k, v in sorted(s.labels.items()))
        line = "%s %s{%s} %r" % (fam.type, s.name, labels, float(s.value))
        if s.exemplar:
            line += " # %s %r" % (json.dumps(s.exemplar.labels, sort_keys=True), float(s.exemplar.value))
        print(line)
"#;
    let mut cmd = Command::new(python());
    cmd.args(["-c", script, file.to_str().unwrap()]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "prometheus_client's OpenMetrics parser refused the body: {}\n--- body ---\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A Prometheus server scraping `target` every second with `features`.
async fn prometheus_scraping(target: std::net::SocketAddr, features: &str) -> Daemon {
    prometheus_scraping_with(target, features, "").await
}

/// [`prometheus_scraping`] with extra lines for the scrape job.
async fn prometheus_scraping_with(
    target: std::net::SocketAddr,
    features: &str,
    job: &str,
) -> Daemon {
    prometheus(
        &scraping(target, job),
        &[&format!("--enable-feature={features}")],
    )
    .await
}

/// The first result of an instant query, once there is one.
async fn query(prom: std::net::SocketAddr, q: &str) -> serde_json::Value {
    poll_until(q, || async {
        let r = get(prom, &format!("/api/v1/query?query={}", enc(q))).await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        v["data"]["result"].as_array()?.first().cloned()
    })
    .await
}

/// The exemplars of `selector`, once there are some.
async fn exemplars(prom: std::net::SocketAddr, selector: &str) -> serde_json::Value {
    poll_until(selector, || async {
        let r = get(
            prom,
            &format!(
                "/api/v1/query_exemplars?query={}&start=0&end=4000000000",
                enc(selector)
            ),
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        let first = v["data"].as_array()?.first()?.clone();
        first["exemplars"].as_array()?.first().cloned()
    })
    .await
}

#[tokio::test]
async fn prometheus_scrapes_native_histograms_and_exemplars() {
    let app = TestApp::start().await;
    run_pusher(app.http, "native").await;
    // With native histograms Prometheus asks for protobuf; without, for
    // OpenMetrics.
    let native = prometheus_scraping(app.http, "native-histograms,exemplar-storage").await;
    let om = prometheus_scraping(app.http, "exemplar-storage").await;

    let count = query(native.addr, "histogram_count(gonative_latency_seconds)").await;
    assert_eq!(count["value"][1], "100", "{count}");
    let median = query(
        native.addr,
        "histogram_quantile(0.5, gonative_latency_seconds)",
    )
    .await;
    let median: f64 = median["value"][1].as_str().unwrap().parse().unwrap();
    assert!((0.4..0.6).contains(&median), "median {median}");
    let ex = exemplars(native.addr, "gonative_requests_total").await;
    assert_eq!(ex["labels"]["trace_id"], "abc123", "{ex}");

    let ex = exemplars(om.addr, "gonative_requests_total").await;
    assert_eq!(ex["labels"]["trace_id"], "abc123", "{ex}");
    assert_eq!(ex["value"], "5", "{ex}");
    let bucket = query(om.addr, "gonative_latency_seconds_count{job=\"gonative\"}").await;
    assert_eq!(bucket["value"][1], "100", "{bucket}");

    // The third format: a scrape job that asks for text 0.0.4 by `params`
    // (Prometheus 2.42 itself always prefers OpenMetrics or protobuf). The
    // native-only histogram arrives as its count, sum and +Inf bucket.
    let text = prometheus_scraping_with(
        app.http,
        "exemplar-storage",
        "    params:\n      format: [text]\n",
    )
    .await;
    let count = query(
        text.addr,
        "gonative_latency_seconds_count{job=\"gonative\"}",
    )
    .await;
    assert_eq!(count["value"][1], "100", "{count}");
    let inf = query(
        text.addr,
        "gonative_latency_seconds_bucket{job=\"gonative\",le=\"+Inf\"}",
    )
    .await;
    assert_eq!(inf["value"][1], "100", "{inf}");
    // Text carries no exemplars: none reach this server.
    let r = get(
        text.addr,
        &format!(
            "/api/v1/query_exemplars?query={}&start=0&end=4000000000",
            enc("gonative_requests_total")
        ),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["data"], serde_json::json!([]), "{v}");
    app.stop().await;
}

/// A delimited protobuf body of `families`, gzip-compressed when asked.
fn protobuf_body(families: &[MetricFamily], gzip: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for f in families {
        proto::encode_delimited(&mut body, f);
    }
    if gzip {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body).unwrap();
        body = gz.finish().unwrap();
    }
    body
}

fn gauge_family(name: &str, value: f64) -> MetricFamily {
    MetricFamily {
        name: Some(name.into()),
        help: None,
        r#type: Some(proto::MetricType::Gauge as i32),
        metric: vec![proto::Metric {
            gauge: Some(proto::Gauge { value: Some(value) }),
            ..proto::Metric::default()
        }],
    }
}

async fn put_protobuf(app: &TestApp, path: &str, body: &[u8], gzip: bool) -> Response {
    let len = body.len().to_string();
    let mut headers = vec![
        ("Content-Type", proto::DELIMITED_CONTENT_TYPE),
        ("Content-Length", len.as_str()),
    ];
    if gzip {
        headers.push(("Content-Encoding", "gzip"));
    }
    request_with_body(app.http, "PUT", path, &headers, body).await
}

#[tokio::test]
async fn protobuf_pushes_gzip_and_refusals_over_http() {
    let app = TestApp::start().await;
    let body = protobuf_body(&[gauge_family("pb_value", 1.5)], true);
    let r = put_protobuf(&app, "/metrics/job/pb", &body, true).await;
    assert_eq!(r.status, 200, "{}", r.body_string());
    let m = app.metrics().await;
    assert!(
        metric("pb_value")
            .label("job", "pb")
            .label("instance", "")
            .value("1.5")
            .is_in(&m),
        "{m}"
    );
    assert!(metric("exporter_proxy_pushes_total")
        .label("format", "protobuf")
        .label("result", "accepted")
        .is_in(&m));
    // Refused: a counter family whose metric carries a gauge; a truncated
    // stream. 400 with the reason, the group kept, its failure time set.
    let mut bad = gauge_family("pb_value", 2.0);
    bad.r#type = Some(proto::MetricType::Counter as i32);
    let r = put_protobuf(
        &app,
        "/metrics/job/pb",
        &protobuf_body(&[bad], false),
        false,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body_string()
            .contains("family pb_value, metric #1: a counter family needs the counter field"),
        "{}",
        r.body_string()
    );
    let full = protobuf_body(&[gauge_family("pb_value", 3.0)], false);
    let r = put_protobuf(&app, "/metrics/job/pb", &full[..full.len() - 2], false).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body_string().contains("byte offset 0"),
        "{}",
        r.body_string()
    );
    let m = app.metrics().await;
    assert!(metric("pb_value").value("1.5").is_in(&m), "{m}");
    let failed = metric("push_failure_time_seconds")
        .label("job", "pb")
        .get(&m)
        .unwrap();
    assert!(failed > 1.6e9, "{m}");
    app.stop().await;
}
