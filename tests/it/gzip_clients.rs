//! The gzip `/metrics` body (built from separately compressed runs, see
//! `src/store/gzip.rs`) read by every client the project meets: a
//! single-member Rust reader, reqwest, curl, Python's gzip module with
//! prometheus_client's parser, promtool, and a Prometheus server (Go's
//! reader), after the page changed in the middle.

use std::process::{Command, Stdio};

use crate::daemons::{enc, poll_until, prometheus, scraping};
use crate::interop::{python, tool};
use crate::support::*;

const APPS: usize = 30;
const SERIES: usize = 300;

/// One app's text: ~25 KB, so that the page is cut into many runs.
fn app_text(app: usize, round: usize) -> String {
    let mut s =
        String::from("# HELP gz_requests_total Requests.\n# TYPE gz_requests_total counter\n");
    for i in 0..SERIES {
        s.push_str(&format!(
            "gz_requests_total{{app=\"a{app}\",route=\"/api/v1/items/{i}\"}} {}\n",
            app * 1000 + i + round
        ));
    }
    s
}

/// The gzip body of `/metrics` and the plain one, fetched one after the other.
async fn bodies(app: &TestApp, accept: &str) -> (Vec<u8>, String) {
    let gz = request(
        app.http,
        "GET",
        "/metrics",
        &[("Accept-Encoding", "gzip"), ("Accept", accept)],
    )
    .await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let plain = request(app.http, "GET", "/metrics", &[("Accept", accept)]).await;
    (gz.body.to_vec(), plain.body_string())
}

/// Runs `cmd` with `input` on stdin; its stdout.
async fn pipe(mut cmd: Command, input: Vec<u8>) -> Vec<u8> {
    let desc = format!("{cmd:?}");
    let out = tokio::task::spawn_blocking(move || {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            stdin.write_all(&input).unwrap();
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{desc} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test]
async fn every_client_reads_the_gzip_body_after_a_change() {
    let app = TestApp::start().await;
    for a in 0..APPS {
        send_tcp(app.tcp, &json_push(&format!("a{a}"), &app_text(a, 0))).await;
    }
    // A first gzip scrape caches the runs; then one app in the middle
    // changes and one goes away, so the next body mixes reused and new runs.
    let _ = bodies(&app, "text/plain").await;
    send_tcp(app.tcp, &json_push("a13", &app_text(13, 7))).await;
    assert!(app.store.remove("a20"));
    let (gz, plain) = bodies(&app, "text/plain").await;
    assert!(plain.contains("gz_requests_total{app=\"a13\",route=\"/api/v1/items/0\"} 13007\n"));
    assert!(!plain.contains("app=\"a20\""));

    // A reader of one gzip member.
    let mut one = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut one).unwrap();
    assert_eq!(one, plain, "flate2 single-member reader");

    // reqwest with its gzip support (async-compression).
    let client = reqwest::Client::builder().gzip(true).build().unwrap();
    let via_reqwest = client
        .get(format!("http://{}/metrics", app.http))
        .header("Accept", "text/plain")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(via_reqwest, plain, "reqwest");

    // curl --compressed, then promtool on what curl decoded.
    let mut curl = Command::new(tool("curl", "curl"));
    curl.args(["-sS", "--fail", "--compressed", "-H", "Accept: text/plain"])
        .arg(format!("http://{}/metrics", app.http));
    let via_curl = pipe(curl, Vec::new()).await;
    assert_eq!(String::from_utf8(via_curl.clone()).unwrap(), plain, "curl");
    let mut promtool = Command::new(tool("promtool", "prometheus"));
    promtool.args(["check", "metrics"]);
    pipe(promtool, via_curl).await;

    // Python's gzip module and prometheus_client's parser.
    let script = r#"
import gzip, sys
from prometheus_client.parser import text_string_to_metric_families
text = gzip.decompress(sys.stdin.buffer.read()).decode()
n = sum(len(f.samples) for f in text_string_to_metric_families(text) if f.name == "gz_requests")
sys.stdout.write("%d\n%s" % (n, text))
"#;
    let mut py = Command::new(python());
    py.args(["-c", script]);
    let out = String::from_utf8(pipe(py, gz.clone()).await).unwrap();
    let (count, text) = out.split_once('\n').unwrap();
    assert_eq!(text, plain, "python gzip");
    assert_eq!(
        count,
        ((APPS - 1) * SERIES).to_string(),
        "prometheus_client parsed every series"
    );
    app.stop().await;
}

#[tokio::test]
async fn prometheus_scrapes_the_gzip_body() {
    let app = TestApp::start().await;
    for a in 0..APPS {
        send_tcp(app.tcp, &json_push(&format!("a{a}"), &app_text(a, 0))).await;
    }
    let target = app.http;
    let prom = prometheus(&scraping(target, ""), &[]).await;
    let count = |q: &'static str| {
        let addr = prom.addr;
        move || async move {
            let r = get(addr, &format!("/api/v1/query?query={}", enc(q))).await;
            let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
            let value = v["data"]["result"].as_array()?.first()?["value"][1]
                .as_str()?
                .to_owned();
            Some(value)
        }
    };
    // Every series arrived through Go's gzip reader.
    let all = (APPS * SERIES).to_string();
    poll_until("all series", || {
        let all = all.clone();
        let f = count("count(gz_requests_total)");
        async move { f().await.filter(|v| *v == all) }
    })
    .await;
    // A change in the middle of the page arrives too.
    send_tcp(app.tcp, &json_push("a13", &app_text(13, 7))).await;
    poll_until("the changed value", || {
        let f = count("gz_requests_total{app=\"a13\",route=\"/api/v1/items/0\"}");
        async move { f().await.filter(|v| v == "13007") }
    })
    .await;
    drop(prom);
    app.stop().await;
}
