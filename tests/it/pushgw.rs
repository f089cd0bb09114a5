//! The Pushgateway-compatible push API, and a differential test against the
//! real Pushgateway driven by Python's prometheus_client.

use std::io::Write;
use std::process::Command;

use crate::daemons::pushgateway;
use crate::interop::{python, python_parse_with};
use crate::support::*;

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let len = body.len().to_string();
    let mut h: Vec<(&str, &str)> = headers.to_vec();
    h.push(("Content-Length", &len));
    request_with_body(app.http, method, path, &h, body).await
}

#[tokio::test]
async fn put_post_delete_with_grouping_labels() {
    let app = TestApp::start().await;
    let body = "# TYPE q_jobs gauge\nq_jobs{queue=\"a\",job=\"ignored\"} 3\n# TYPE q_age gauge\nq_age 10\n";
    let r = send(
        &app,
        "PUT",
        "/metrics/job/batch/instance/h1",
        &[],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_string());
    let m = app.metrics().await;
    assert!(
        metric("q_jobs")
            .label("job", "batch")
            .label("instance", "h1")
            .label("queue", "a")
            .value("3")
            .is_in(&m),
        "{m}"
    );
    assert!(
        !m.contains("ignored"),
        "grouping labels override pushed ones"
    );
    assert!(metric("push_time_seconds")
        .label("job", "batch")
        .label("instance", "h1")
        .is_in(&m));
    assert!(metric("push_failure_time_seconds")
        .label("job", "batch")
        .value("0.0")
        .is_in(&m));
    // POST replaces only the families in the body.
    let r = send(
        &app,
        "POST",
        "/metrics/job/batch/instance/h1",
        &[],
        b"# TYPE q_age gauge\nq_age 11\n",
    )
    .await;
    assert_eq!(r.status, 200);
    let m = app.metrics().await;
    assert!(metric("q_jobs").value("3").is_in(&m), "kept by POST: {m}");
    assert!(metric("q_age").value("11").is_in(&m));
    // PUT replaces everything.
    let r = send(
        &app,
        "PUT",
        "/metrics/job/batch/instance/h1",
        &[],
        b"# TYPE q_age gauge\nq_age 12\n",
    )
    .await;
    assert_eq!(r.status, 200);
    let m = app.metrics().await;
    assert!(!m.contains("q_jobs"), "{m}");
    // Without an instance in the key, series get instance="".
    let r = send(
        &app,
        "PUT",
        "/metrics/job/nightly/path@base64/L3Zhci90bXA",
        &[],
        b"n_up 1\n",
    )
    .await;
    assert_eq!(r.status, 200);
    let m = app.metrics().await;
    assert!(
        metric("n_up")
            .label("job", "nightly")
            .label("path", "/var/tmp")
            .label("instance", "")
            .is_in(&m),
        "{m}"
    );
    let apps = get(app.http, "/apps?format=json").await.body_string();
    assert!(
        apps.contains(r#""name": "{job=\"nightly\",path=\"/var/tmp\"}""#),
        "{apps}"
    );
    assert!(apps.contains("\"kind\": \"pushgateway\""), "{apps}");
    // DELETE removes the group; deleting a missing group is fine too.
    assert_eq!(
        send(
            &app,
            "DELETE",
            "/metrics/job/nightly/path@base64/L3Zhci90bXA",
            &[],
            b""
        )
        .await
        .status,
        202
    );
    assert_eq!(
        send(&app, "DELETE", "/metrics/job/never", &[], b"")
            .await
            .status,
        202
    );
    assert!(!app.metrics().await.contains("n_up"));
    app.stop().await;
}

#[tokio::test]
async fn gzip_bodies_and_refusals() {
    let app = TestApp::with_config("[limits]\nmax_push_bytes = 2048\n").await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"# TYPE z_up gauge\nz_up 1\n").unwrap();
    let gz = gz.finish().unwrap();
    let r = send(
        &app,
        "PUT",
        "/metrics/job/z",
        &[("Content-Encoding", "gzip")],
        &gz,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_string());
    assert!(metric("z_up").label("job", "z").is_in(&app.metrics().await));
    // Invalid body: 400 with the reason, data kept, failure time set.
    let r = send(&app, "PUT", "/metrics/job/z", &[], b"z_up{ 2\n").await;
    assert_eq!(r.status, 400);
    assert!(r.body_string().contains("line 1"), "{}", r.body_string());
    let m = app.metrics().await;
    assert!(metric("z_up").value("1").is_in(&m));
    let failed = metric("push_failure_time_seconds")
        .label("job", "z")
        .get(&m)
        .unwrap();
    assert!(failed > 1.6e9, "{m}");
    // gzip without the header, protobuf, unknown encodings, bombs.
    let r = send(&app, "PUT", "/metrics/job/z", &[], &gz).await;
    assert!(
        r.status == 400 && r.body_string().contains("Content-Encoding"),
        "{}",
        r.body_string()
    );
    let r = send(&app, "PUT", "/metrics/job/z", &[("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text")], b"\x00").await;
    assert_eq!(r.status, 415);
    let r = send(
        &app,
        "PUT",
        "/metrics/job/z",
        &[("Content-Encoding", "br")],
        b"x",
    )
    .await;
    assert_eq!(r.status, 415);
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&vec![b'#'; 1 << 20]).unwrap();
    let bomb = bomb.finish().unwrap();
    assert!(bomb.len() < 2048);
    let r = send(
        &app,
        "PUT",
        "/metrics/job/z",
        &[("Content-Encoding", "gzip")],
        &bomb,
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body_string());
    let r = send(&app, "PUT", "/metrics/job/z", &[], &[b'#'; 4096]).await;
    assert_eq!(r.status, 413);
    // Bad grouping keys.
    for path in [
        "/metrics/job@base64/=",
        "/metrics/job/a/b",
        "/metrics/job/a/__x/y",
    ] {
        assert_eq!(
            send(&app, "PUT", path, &[], b"").await.status,
            400,
            "{path}"
        );
    }
    assert!(metric("z_up").value("1").is_in(&app.metrics().await));
    app.stop().await;
}

#[tokio::test]
async fn empty_put_keeps_the_group_with_its_push_time() {
    let app = TestApp::start().await;
    send(&app, "PUT", "/metrics/job/e", &[], b"e_up 1\n").await;
    let r = send(&app, "PUT", "/metrics/job/e", &[], b"").await;
    assert_eq!(r.status, 200);
    let m = app.metrics().await;
    assert!(!m.contains("e_up"));
    assert!(metric("push_time_seconds").label("job", "e").is_in(&m));
    app.stop().await;
}

#[tokio::test]
async fn push_api_can_be_disabled() {
    let app = TestApp::with_config("[push_api]\nenabled = false\n").await;
    let r = send(&app, "PUT", "/metrics/job/x", &[], b"x 1\n").await;
    assert_eq!(r.status, 403);
    assert!(r.body_string().contains("push_api.enabled"));
    app.stop().await;
}

/// Samples of the pushed families only, as `type name{labels} value`,
/// with the push times replaced by a marker (they differ by nature).
pub async fn pushed_samples(body: &str, strict: bool) -> Vec<String> {
    let mut out: Vec<String> = python_parse_with(body, strict)
        .await
        .into_iter()
        .filter(|l| {
            let name = l.split(' ').nth(1).unwrap_or("");
            !["pushgateway_", "go_", "process_", "exporter_proxy_"]
                .iter()
                .any(|p| name.starts_with(p))
        })
        .map(|l| {
            if l.contains(" push_time_seconds{") {
                let (series, _) = l.rsplit_once(' ').unwrap();
                format!("{series} <time>")
            } else {
                l
            }
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn prometheus_client_gets_the_same_result_as_on_a_real_pushgateway() {
    let app = TestApp::start().await;
    let pg = pushgateway().await;
    let mut cmd = Command::new(python());
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/pushgateway_client.py"
    ))
    .arg(app.http.to_string())
    .arg(pg.addr.to_string());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ours = pushed_samples(&app.metrics().await, true).await;
    let theirs = pushed_samples(&get(pg.addr, "/metrics").await.body_string(), false).await;
    assert!(
        ours.iter()
            .any(|l| l.contains("extra_value{") && l.contains("job=\"batch\"")),
        "{ours:#?}"
    );
    assert!(
        ours.iter().any(|l| l.contains("path=\"/var/tmp\"")),
        "{ours:#?}"
    );
    assert!(
        !ours.iter().any(|l| l.contains("deleted_soon")),
        "{ours:#?}"
    );
    assert_eq!(
        ours, theirs,
        "same series and values as the real Pushgateway"
    );
    app.stop().await;
}
