//! Tests of the outbound layer against real HTTP servers on loopback.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;

use super::health::{fail, JobRef};
use super::*;
use crate::store::{AppKind, Store, StoreOptions};
use crate::telemetry::{PollFailure, SelfMetrics};

/// Serves `router` on 127.0.0.1:0; the server ends with the test's runtime.
async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn client() -> reqwest::Client {
    build_client(&ClientOptions::default()).unwrap()
}

#[test]
fn a_bad_ca_file_is_named_by_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let e = build_client(&ClientOptions {
        ca_file: Some((&missing, "tls.ca_file")),
        ..ClientOptions::default()
    })
    .unwrap_err();
    assert!(
        e.starts_with("cannot read `tls.ca_file` ") && e.contains("missing.pem"),
        "{e}"
    );

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let e = build_client(&ClientOptions {
        ca_file: Some((&empty, "ca_file")),
        ..ClientOptions::default()
    })
    .unwrap_err();
    assert!(
        e.contains("`ca_file`") && e.contains("no PEM certificate"),
        "{e}"
    );
}

#[tokio::test]
async fn a_body_is_bounded_after_decompression() {
    // 1 MiB of zeros compresses to about 1 KiB: the limit counts what it expands to.
    let big = gzip(&vec![b'0'; 1 << 20]);
    let small = gzip(b"up 1\n");
    let router = Router::new()
        .route(
            "/big",
            get(move || {
                let b = big.clone();
                async move { ([("content-encoding", "gzip")], b) }
            }),
        )
        .route(
            "/small",
            get(move || {
                let b = small.clone();
                async move { ([("content-encoding", "gzip")], b) }
            }),
        );
    let addr = serve(router).await;
    let mut resp = client()
        .get(format!("http://{addr}/big"))
        .send()
        .await
        .unwrap();
    match read_bounded(&mut resp, 64 * 1024).await {
        Err(BodyError::TooLarge { limit }) => assert_eq!(limit, 64 * 1024),
        other => panic!("expected too large, got {other:?}"),
    }
    let mut resp = client()
        .get(format!("http://{addr}/small"))
        .send()
        .await
        .unwrap();
    assert_eq!(read_bounded(&mut resp, 64 * 1024).await.unwrap(), b"up 1\n");
}

#[tokio::test]
async fn statuses_and_transport_errors_are_classified_without_the_url() {
    let router = Router::new().route(
        "/gone",
        get(|| async { (axum::http::StatusCode::GONE, "gone") }),
    );
    let addr = serve(router).await;
    let resp = client()
        .get(format!("http://{addr}/gone"))
        .send()
        .await
        .unwrap();
    let bad = check_status(resp.status()).unwrap_err();
    assert_eq!(bad.to_string(), "HTTP status 410 Gone, expected 2xx");
    assert!(check_status(reqwest::StatusCode::NO_CONTENT).is_ok());

    // A closed port: a connection error whose text has no URL (the query
    // could carry a token).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let e = client()
        .get(format!("http://127.0.0.1:{port}/x?token=s3cret"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(classify(&e), Transport::Connect);
    let f = Failure::transport(e);
    assert_eq!(f.reason, PollFailure::Connect);
    assert!(
        !f.message.contains("s3cret") && !f.message.contains("127.0.0.1"),
        "{}",
        f.message
    );
}

#[tokio::test(start_paused = true)]
async fn health_records_transitions_and_drops_stale_data() {
    let store = Arc::new(Store::new(StoreOptions::default(), SelfMetrics::new()));
    let prepared = store.prepare("job", "up 1\n").unwrap();
    store
        .commit(vec![prepared], AppKind::Poll, "http://t/metrics")
        .unwrap();
    let health = Health::default();
    let job = JobRef {
        name: "job",
        kind: AppKind::Poll,
        source: "http://t/metrics",
        stale_after: Duration::from_secs(60),
    };
    let down = fail(PollFailure::Timeout, "no answer");
    let rec = |r: Result<(), &Failure>| health.record(&store, job, Duration::from_millis(5), r);
    assert_eq!(rec(Ok(())), Outcome::CameUp);
    assert_eq!(rec(Ok(())), Outcome::StillUp);
    assert_eq!(rec(Err(&down)), Outcome::WentDown);
    // Within stale_after the last good data stays, with the error shown.
    let app = store.apps().into_iter().find(|a| a.name == "job").unwrap();
    assert_eq!(app.series, 1);
    assert!(app
        .last_error
        .as_deref()
        .unwrap()
        .contains("timeout: no answer"));
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(rec(Err(&down)), Outcome::StillDown);
    let app = store.apps().into_iter().find(|a| a.name == "job").unwrap();
    assert_eq!(app.series, 0);
    assert_eq!(
        store
            .self_metrics()
            .poll_failures("job", PollFailure::Timeout),
        2
    );
    assert_eq!(rec(Ok(())), Outcome::CameUp);
}

#[tokio::test(start_paused = true)]
async fn health_counts_failures_in_a_row_until_a_success() {
    let store = Arc::new(Store::new(StoreOptions::default(), SelfMetrics::new()));
    let health = Health::default();
    let job = JobRef {
        name: "job",
        kind: AppKind::Poll,
        source: "http://t/metrics",
        stale_after: Duration::from_secs(60),
    };
    let down = fail(PollFailure::Connect, "refused");
    let rec = |r: Result<(), &Failure>| health.record(&store, job, Duration::from_millis(5), r);
    assert_eq!(health.failures_in_row(), 0);
    for n in 1..=3 {
        rec(Err(&down));
        assert_eq!(health.failures_in_row(), n);
    }
    rec(Ok(()));
    assert_eq!(health.failures_in_row(), 0, "a success resets the count");
    rec(Err(&down));
    assert_eq!(
        health.failures_in_row(),
        1,
        "a new run of failures starts at 1"
    );
}
