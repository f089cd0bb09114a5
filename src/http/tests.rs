//! Router tests without sockets: each request goes through
//! `tower::ServiceExt::oneshot` on a fresh [`router`].

use std::io::Read;

use axum::body::Body;
use axum::http::Request;
use chrono::TimeZone;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::store::{AppKind, StoreOptions};
use crate::telemetry::SelfMetrics;

/// A response, collected.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

fn state(ready: bool) -> HttpState {
    HttpState {
        store: Arc::new(Store::new(StoreOptions::default(), SelfMetrics::new())),
        ready: Arc::new(AtomicBool::new(ready)),
        push_api: None,
        max_push_bytes: crate::ingest::config::DEFAULT_MAX_PUSH_BYTES as usize,
        registrar: None,
        reload: None,
        lifecycle: true,
        admin_api: true,
        ui: ui::UiState::new(None),
        prebuild: Default::default(),
    }
}

/// Sends one request with `headers` through a new router on `state`.
async fn send(state: &HttpState, method: &str, uri: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = router(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .expect("the router is infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body collects")
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(state: &HttpState, uri: &str, headers: &[(&str, &str)]) -> Reply {
    send(state, "GET", uri, headers).await
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn time(secs: i64, nanos: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, nanos).unwrap()
}

// ---- /metrics ----

#[tokio::test]
async fn metrics_plain() {
    let s = state(true);
    s.store
        .push("a", "# TYPE up gauge\nup 1\n", AppKind::Push, "test")
        .unwrap();
    let r = get(&s, "/metrics", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), Some("Accept, Accept-Encoding"));
    let text = r.text();
    assert!(text.starts_with("# TYPE up gauge\nup 1\n"), "{text}");
    assert!(text.contains("\nexporter_proxy_apps 1\n"), "{text}");
    assert_eq!(r.body, s.store.render().to_bytes().to_vec());
}

#[tokio::test]
async fn metrics_formats_by_accept() {
    let s = state(true);
    s.store
        .push(
            "a",
            "# TYPE req_total counter\nreq_total{p=\"x\"} 3\n# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3.5\nlat_count 2\n",
            AppKind::Push,
            "test",
        )
        .unwrap();
    let om = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let r = get(&s, "/metrics", &[("accept", om)]).await;
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert_eq!(r.header("vary"), Some("Accept, Accept-Encoding"));
    let text = r.text();
    assert!(
        text.starts_with(
            "# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3.5\nlat_count 2\n# TYPE req counter\nreq_total{p=\"x\"} 3\n"
        ),
        "{text}"
    );
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    // `?format=` wins over `Accept`; an unknown name is a 400 naming it.
    let forced = get(&s, "/metrics?format=text", &[("accept", om)]).await;
    assert_eq!(forced.header("content-type"), Some(METRICS_CONTENT_TYPE));
    assert!(!forced.text().contains("# EOF"));
    let forced = get(&s, "/metrics?format=openmetrics", &[]).await;
    assert!(forced.text().ends_with("\n# EOF\n"));
    let bad = get(&s, "/metrics?format=xml", &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("\"xml\""), "{}", bad.text());
    let gz = get(
        &s,
        "/metrics",
        &[("accept", om), ("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gz.body), r.body);

    let pb = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
    let r = get(&s, "/metrics", &[("accept", pb)]).await;
    assert_eq!(
        r.header("content-type"),
        Some(crate::exposition::proto::DELIMITED_CONTENT_TYPE)
    );
    let fams = crate::exposition::proto::decode_delimited(&r.body).unwrap();
    let lat = &fams[0];
    assert_eq!(lat.name.as_deref(), Some("lat"));
    let h = lat.metric[0].histogram.as_ref().unwrap();
    assert_eq!((h.sample_count, h.sample_sum), (Some(2), Some(3.5)));
    assert_eq!(h.bucket.len(), 1, "+Inf is implied, as Go clients send it");
    assert_eq!(fams[1].metric[0].label[0].value.as_deref(), Some("x"));
    assert!(fams
        .iter()
        .any(|f| f.name.as_deref() == Some("exporter_proxy_apps")));
    let gz = get(
        &s,
        "/metrics",
        &[("accept", pb), ("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(gunzip(&gz.body), r.body);
    // Scrapes do not change the generation: every body is built once.
    let cached = s.store.cached().expect("scrapes keep the cache current");
    for f in [Format::OpenMetrics, Format::Protobuf] {
        assert!(cached.is_built(f, true), "{f:?}");
    }
    assert!(
        !cached.is_built(Format::Text, true),
        "only what was asked for is built"
    );
    // The text body is unchanged by the other formats.
    let r = get(&s, "/metrics", &[]).await;
    assert_eq!(r.body, s.store.render().to_bytes().to_vec());
}

/// A store that keeps its text packed serves the same bytes: plain
/// bodies unpacked frame by frame with an exact `Content-Length`, gzip
/// and the other formats as before.
#[tokio::test]
async fn a_packed_store_is_served_whole_in_every_format_and_encoding() {
    let packed = state(true);
    let packed = HttpState {
        store: Arc::new(Store::new(
            StoreOptions {
                pack_above_series: 0,
                ..StoreOptions::default()
            },
            SelfMetrics::new(),
        )),
        ..packed
    };
    // Several families of a few thousand lines: more than one frame.
    let mut text = String::new();
    for fam in 0..3 {
        text.push_str(&format!("# TYPE fam{fam}_total counter\n"));
        for i in 0..2000 {
            text.push_str(&format!(
                "fam{fam}_total{{route=\"/api/v1/items/{i}\"}} {i}\n"
            ));
        }
    }
    packed
        .store
        .push("a", &text, AppKind::Push, "test")
        .unwrap();
    // And many small packed blocks, unpacked together into one frame.
    for app in 0..40 {
        let lines: String = (0..12)
            .map(|i| format!("fam1_total{{route=\"/b/{app}/{i}\"}} {i}\n"))
            .collect();
        packed
            .store
            .push(&format!("b{app}"), &lines, AppKind::Push, "test")
            .unwrap();
    }
    let page = packed.store.render();
    let packed_chunks = page.chunks().iter().filter(|c| c.is_packed()).count();
    assert!(packed_chunks > 40, "{packed_chunks}");
    let whole = page.to_bytes();
    assert!(whole.len() > 3 * 64 * 1024, "{}", whole.len());
    let r = get(&packed, "/metrics", &[]).await;
    assert_eq!(r.body, whole.to_vec());
    assert_eq!(
        r.header("content-length"),
        Some(whole.len().to_string().as_str())
    );
    let gz = get(&packed, "/metrics", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gz.body), whole.to_vec());
    for format in ["openmetrics", "protobuf"] {
        let uri = format!("/metrics?format={format}");
        let plain = get(&packed, &uri, &[]).await;
        let gz = get(&packed, &uri, &[("accept-encoding", "gzip")]).await;
        assert!(plain.body.len() > 100_000, "{format}");
        assert_eq!(gunzip(&gz.body), plain.body, "{format}");
        assert_eq!(
            plain.header("content-length"),
            Some(plain.body.len().to_string().as_str())
        );
    }
    let om = get(&packed, "/metrics?format=openmetrics", &[])
        .await
        .text();
    assert!(
        om.contains("\nfam2_total{route=\"/api/v1/items/1999\"} 1999\n"),
        "{om:.200}"
    );
    assert!(om.ends_with("# EOF\n"));
}

#[tokio::test]
async fn metrics_gzip_negotiation() {
    let s = state(true);
    s.store.push("a", "up 1\n", AppKind::Push, "test").unwrap();
    let plain = get(&s, "/metrics", &[]).await.body;
    for (accept, gzip) in [
        ("gzip", true),
        ("GZIP", true),
        ("deflate, gzip;q=0.5", true),
        ("br, gzip", true),
        ("*", true),
        ("gzip;q=0", false),
        ("gzip; q=0.0", false),
        ("*;q=0", false),
        ("gzip;q=0, *", false),
        ("gzip;Q=0", false),
        ("*, gzip;q=0", false),
        ("gzip;q=0.001", true),
        ("identity", false),
        ("deflate, br", false),
        ("", false),
    ] {
        let r = get(&s, "/metrics", &[("accept-encoding", accept)]).await;
        assert_eq!(r.status, StatusCode::OK, "{accept:?}");
        assert_eq!(
            r.header("content-type"),
            Some(METRICS_CONTENT_TYPE),
            "{accept:?}"
        );
        assert_eq!(
            r.header("vary"),
            Some("Accept, Accept-Encoding"),
            "{accept:?}"
        );
        if gzip {
            assert_eq!(r.header("content-encoding"), Some("gzip"), "{accept:?}");
            assert_eq!(gunzip(&r.body), plain, "{accept:?}");
        } else {
            assert_eq!(r.header("content-encoding"), None, "{accept:?}");
            assert_eq!(r.body, plain, "{accept:?}");
        }
    }
}

#[tokio::test]
async fn metrics_follow_the_store() {
    let s = state(true);
    s.store.push("a", "up 1\n", AppKind::Push, "test").unwrap();
    let first = get(&s, "/metrics", &[("accept-encoding", "gzip")]).await;
    s.store.push("a", "up 2\n", AppKind::Push, "test").unwrap();
    let second = get(&s, "/metrics", &[("accept-encoding", "gzip")]).await;
    let text = String::from_utf8(gunzip(&second.body)).unwrap();
    assert!(text.contains("\nup 2\n"), "{text}");
    assert!(!text.contains("\nup 1\n"), "{text}");
    assert_ne!(gunzip(&first.body), gunzip(&second.body));
}

#[tokio::test]
async fn a_regular_scraper_finds_its_body_built_ahead_and_never_a_stale_one() {
    let s = state(true);
    let interval = std::time::Duration::from_millis(200);
    let gzip = [("accept-encoding", "gzip")];
    let mut built_ahead = 0;
    let start = tokio::time::Instant::now();
    for round in 0..12u32 {
        // A push right after each scrape: every scrape comes after a change.
        s.store
            .push("a", &format!("m {round}\n"), AppKind::Push, "test")
            .unwrap();
        tokio::time::sleep_until(start + interval * (round + 1) - interval / 60).await;
        // Just before the scrape is due (the build ahead starts at least
        // 10 ms before it), once the scraper's interval is known.
        if s.store
            .cached()
            .is_some_and(|r| r.is_built(crate::store::Format::Text, true))
        {
            built_ahead += 1;
        }
        tokio::time::sleep_until(start + interval * (round + 1)).await;
        let r = get(&s, "/metrics", &gzip).await;
        assert_eq!(r.status, StatusCode::OK);
        let text = String::from_utf8(gunzip(&r.body)).unwrap();
        // Always the page as of the scrape, with the last push in it.
        let last = format!("m {round}");
        assert!(text.lines().any(|l| l == last), "{round}: {text}");
    }
    // Three arrivals make a schedule: from the fourth scrape on (9 of the
    // 12), the body is built before the scraper comes (most rounds; the
    // machine may be slow to wake the task now and then).
    assert!(built_ahead >= 5, "built ahead {built_ahead} times of 9");
    // Nothing is built ahead for a scraper that stops.
    let gen_before = s.store.generation();
    tokio::time::sleep(interval * 2).await;
    s.store.push("a", "m 99\n", AppKind::Push, "test").unwrap();
    tokio::time::sleep(interval * 2).await;
    assert_ne!(s.store.generation(), gen_before);
    assert!(s.store.cached().is_none(), "rendered for nobody");
}

// ---- health, index, errors ----

#[tokio::test]
async fn ready_follows_the_flag() {
    let s = state(false);
    let r = get(&s, "/-/ready", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.text(), "not ready: listeners are starting\n");
    s.ready.store(true, Ordering::Release);
    let r = get(&s, "/-/ready", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "OK\n");
}

#[tokio::test]
async fn healthy_even_when_not_ready() {
    let r = get(&state(false), "/-/healthy", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "OK\n");
}

#[tokio::test]
async fn index_links_the_endpoints() {
    let r = get(&state(true), "/", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = r.text();
    for link in [
        "href=\"./metrics\"",
        "href=\"./apps\"",
        "href=\"./status\"",
        "href=\"./apps?format=json\"",
        "href=\"./-/healthy\"",
        "href=\"./-/ready\"",
    ] {
        assert!(html.contains(link), "{link} missing:\n{html}");
    }
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let s = state(true);
    for uri in ["/nope", "/metrics/extra", "/apps/", "/-/"] {
        let r = get(&s, uri, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.text(), "404 page not found: see / for the endpoints\n");
    }
}

#[tokio::test]
async fn other_methods_are_405() {
    let s = state(true);
    for (method, uri) in [
        ("POST", "/apps"),
        ("PUT", "/metrics"),
        ("DELETE", "/apps"),
        ("POST", "/-/ready"),
    ] {
        let r = send(&s, method, uri, &[]).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(
            r.text(),
            "405 method not allowed: see / for the endpoints and their methods\n"
        );
        assert_eq!(r.header("allow"), Some("GET,HEAD"), "{method} {uri}");
    }
    // Nothing was changed by them.
    assert_eq!(s.store.counts(), (0, 0));
}

// ---- /apps ----

/// Two apps with fixed times: one fine, one whose last push was refused.
fn two_apps() -> Vec<AppInfo> {
    vec![
        AppInfo {
            name: "app_a".to_owned(),
            kind: AppKind::Push,
            source: "/tmp/s.sock".to_owned(),
            last_update: Some(time(1_653_263_507, 970_724_000)),
            up: None,
            series: 3,
            last_error: None,
            last_error_time: None,
            ttl: crate::store::Ttl::After(std::time::Duration::from_secs(300)),
            expires_in: Some(std::time::Duration::from_millis(299_400)),
        },
        AppInfo {
            name: "b".to_owned(),
            kind: AppKind::Poll,
            source: "127.0.0.1:6554".to_owned(),
            last_update: Some(time(1_653_263_500, 0)),
            up: None,
            series: 12,
            last_error: Some("line 2: bad".to_owned()),
            last_error_time: Some(time(1_653_263_510, 0)),
            ttl: crate::store::Ttl::Never,
            expires_in: None,
        },
    ]
}

const TWO_APPS_TABLE: &str = "\
+------------------------------------------------------------------------------------------------------------------------------+
| Current time: 2022-05-22 23:51:52.939898700 UTC                                                                              |
+------------------------------------------------------------------------------------------------------------------------------+
| +----------+--------------------------------+----------------+------+--------+----------+-------+------------+-------------+ |
| | App Name | Last Update Time (UTC)         | Source         | Kind | Series | Status   | TTL   | Expires In | Last Error  | |
| +----------+--------------------------------+----------------+------+--------+----------+-------+------------+-------------+ |
| | app_a    | 2022-05-22 23:51:47.970724 UTC | /tmp/s.sock    | push | 3      | ok       | 5m    | 4m 59s     |             | |
| +----------+--------------------------------+----------------+------+--------+----------+-------+------------+-------------+ |
| | b        | 2022-05-22 23:51:40 UTC        | 127.0.0.1:6554 | poll | 12     | rejected | never |            | line 2: bad | |
| +----------+--------------------------------+----------------+------+--------+----------+-------+------------+-------------+ |
+------------------------------------------------------------------------------------------------------------------------------+
";

#[test]
fn apps_table_golden() {
    let now = time(1_653_263_512, 939_898_700);
    let table = apps_table(&two_apps(), now, false);
    assert_eq!(table, TWO_APPS_TABLE);
    // Wide: the error with its time, whole.
    let wide = apps_table(&two_apps(), now, true);
    assert!(
        wide.contains("| 2022-05-22 23:51:50 UTC: line 2: bad |"),
        "{wide}"
    );

    // The same layout, checked structurally: the original's table had a
    // border between every row, inner and outer.
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 11);
    let is_border = |l: &str| {
        l.len() > 2
            && l.starts_with('+')
            && l.ends_with('+')
            && l.chars().all(|c| c == '+' || c == '-')
    };
    for i in [0, 2, 10] {
        assert!(is_border(lines[i]), "outer border expected: {}", lines[i]);
    }
    for i in [3, 5, 7, 9] {
        let inner = lines[i]
            .strip_prefix("| ")
            .and_then(|l| l.strip_suffix(" |"))
            .unwrap();
        assert!(is_border(inner), "inner border expected: {}", lines[i]);
        assert_eq!(inner.matches('+').count(), 10, "9 columns: {inner}");
    }
    assert!(lines[1].starts_with("| Current time: 2022-05-22 23:51:52.939898700 UTC "));
    let header: Vec<&str> = lines[4]
        .trim_matches(|c| c == '|' || c == ' ')
        .split('|')
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        [
            "App Name",
            "Last Update Time (UTC)",
            "Source",
            "Kind",
            "Series",
            "Status",
            "TTL",
            "Expires In",
            "Last Error"
        ]
    );
    // Every line has the same width.
    assert!(lines.iter().all(|l| l.len() == lines[0].len()));
}

#[test]
fn apps_table_without_apps_has_the_header_row_only() {
    assert_eq!(
        apps_table(&[], time(0, 0), false),
        "\
+---------------------------------------------------------------------------------------------------------+
| Current time: 1970-01-01 00:00:00 UTC                                                                   |
+---------------------------------------------------------------------------------------------------------+
| +----------+------------------------+--------+------+--------+--------+-----+------------+------------+ |
| | App Name | Last Update Time (UTC) | Source | Kind | Series | Status | TTL | Expires In | Last Error | |
| +----------+------------------------+--------+------+--------+--------+-----+------------+------------+ |
+---------------------------------------------------------------------------------------------------------+
"
    );
}

#[tokio::test]
async fn apps_text_is_the_default() {
    let s = state(true);
    s.store
        .push("app_a", "up 1\n", AppKind::Push, "/tmp/s.sock")
        .unwrap();
    for headers in [&[][..], &[("accept", "*/*")][..]] {
        let r = get(&s, "/apps", headers).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        let text = r.text();
        assert!(text.starts_with("+-"), "{text}");
        assert!(text.contains("\n| Current time: "), "{text}");
        assert!(text.contains("| | app_a "), "{text}");
        assert!(text.contains(" | /tmp/s.sock "), "{text}");
        assert!(text.contains(" | push | 1      | ok "), "{text}");
    }
    // An explicit text format wins over the Accept header.
    let r = get(&s, "/apps?format=text", &[("accept", "application/json")]).await;
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[tokio::test]
async fn apps_json() {
    let s = state(true);
    s.store
        .push("ok_app", "up 1\nother 2\n", AppKind::Poll, "http://h:1/m")
        .unwrap();
    s.store
        .push("bad_app", "x 1\n", AppKind::Push, "127.0.0.1:6554")
        .unwrap();
    let err = s
        .store
        .push("bad_app", "not valid\n", AppKind::Push, "127.0.0.1:6554")
        .unwrap_err();
    for (uri, headers) in [
        ("/apps?format=json", &[][..]),
        ("/apps", &[("accept", "application/json")][..]),
    ] {
        let r = get(&s, uri, headers).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let current = v["current_time"].as_str().unwrap();
        assert!(DateTime::parse_from_rfc3339(current).is_ok(), "{current}");
        assert!(current.ends_with('Z'), "{current}");
        let apps = v["apps"].as_array().unwrap();
        assert_eq!(apps.len(), 2);

        let bad = apps[0].as_object().unwrap();
        assert_eq!(bad["name"], "bad_app");
        assert_eq!(bad["kind"], "push");
        assert_eq!(bad["source"], "127.0.0.1:6554");
        assert_eq!(bad["series"], 1);
        assert_eq!(bad["status"], "rejected");
        assert_eq!(bad["last_error"], err.message.as_str());
        assert!(bad["last_error_time"].as_str().unwrap().ends_with('Z'));

        let ok = apps[1].as_object().unwrap();
        let mut keys: Vec<&str> = ok.keys().map(String::as_str).collect();
        keys.sort();
        // No error fields while the app is fine, no expiry with TTL never.
        assert_eq!(
            keys,
            [
                "kind",
                "last_update",
                "name",
                "series",
                "source",
                "status",
                "ttl"
            ]
        );
        assert_eq!(ok["ttl"], "never");
        assert_eq!(ok["name"], "ok_app");
        assert_eq!(ok["kind"], "poll");
        assert_eq!(ok["source"], "http://h:1/m");
        assert_eq!(ok["series"], 2);
        assert_eq!(ok["status"], "up", "a polled target that answered");
        let last = ok["last_update"].as_str().unwrap();
        assert!(last.ends_with('Z'), "{last}");
        let parsed = DateTime::parse_from_rfc3339(last).unwrap();
        let stored = s.store.apps()[1].last_update;
        assert_eq!(
            parsed.timestamp_millis(),
            stored.unwrap().timestamp_millis()
        );
    }
}

#[test]
fn json_times_are_rfc3339_utc_with_milliseconds() {
    assert_eq!(
        rfc3339(time(1_653_263_507, 970_724_000)),
        "2022-05-22T23:51:47.970Z"
    );
    assert_eq!(rfc3339(time(0, 0)), "1970-01-01T00:00:00.000Z");
}

#[tokio::test]
async fn apps_html_escapes() {
    let s = state(true);
    s.store
        .push("<script>&\"x\"", "up 1\n", AppKind::Push, "src<1>")
        .unwrap();
    for (uri, headers) in [
        (
            "/apps",
            &[("accept", "text/html,application/xhtml+xml")][..],
        ),
        ("/apps?format=html", &[][..]),
    ] {
        let r = get(&s, uri, headers).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let html = r.text();
        assert!(
            html.contains(">&lt;script&gt;&amp;&quot;x&quot;</a></td>"),
            "{html}"
        );
        assert!(html.contains(">src&lt;1&gt;</td>"), "{html}");
        assert!(!html.contains("<script>&"), "{html}");
        assert!(html.contains(">App ▲</a></th>"), "{html}");
        assert!(
            html.contains("<span class=\"badge s-ok\">ok</span>"),
            "{html}"
        );
    }
}

#[tokio::test]
async fn apps_unknown_format_is_400() {
    let s = state(true);
    for uri in ["/apps?format=bogus", "/apps?format=", "/apps?format=JSON"] {
        let r = get(&s, uri, &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        let text = r.text();
        assert!(text.starts_with("unknown format \""), "{text}");
        assert!(text.ends_with("use text, json or html\n"), "{text}");
    }
    assert_eq!(
        get(&s, "/apps?format=bogus", &[]).await.text(),
        "unknown format \"bogus\": use text, json or html\n"
    );
}
