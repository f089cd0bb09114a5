//! The pages through the router, without sockets: hostile names, label
//! values and HELP texts come out escaped; filters, sorting, the app page,
//! the status JSON and the admin gate of the delete endpoint.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::http::{router, HttpState};
use crate::store::{AppKind, Store, StoreOptions};
use crate::telemetry::SelfMetrics;

const HOSTILE_APP: &str = "<script>alert(\"x\")</script>'/a?b#c";
const HOSTILE_TEXT: &str = "# HELP evil_total HELP with <b>tags</b> & \"quotes\"\\nand a newline\n# TYPE evil_total counter\nevil_total{v=\"<img src=x onerror=alert(1)>\",q=\"a \\\"b\\\" {c} d\"} 3\n";

fn state(admin_api: bool) -> HttpState {
    HttpState {
        lifecycle: false,
        store: Arc::new(Store::new(StoreOptions::default(), SelfMetrics::new())),
        ready: Arc::new(AtomicBool::new(true)),
        push_api: Some(Arc::new(crate::http::pushgw::PushApi::new(None))),
        max_push_bytes: 1 << 20,
        registrar: None,
        reload: None,
        admin_api,
        ui: UiState::new(Some(
            crate::config::Config::parse(
                "[exporter]\nscrape_expose_endpoint = \"127.0.0.1:6555\"\n[[poll.targets]]\nname = \"polled\"\nurl = \"http://127.0.0.1:9/metrics?token=s3cret&x=1\"\ninterval = \"15s\"\nheaders = { \"X-Api-Key\" = \"k3y\" }\n[[sinks.remote_write]]\nname = \"vm\"\nurl = \"http://127.0.0.1:9/api/v1/write?token=t0ken\"\n",
            )
            .unwrap()
            .config
            .ui_facts(),
        )),
        prebuild: Default::default(),
    }
}

async fn send(
    s: &HttpState,
    method: &str,
    uri: &str,
    accept: &str,
) -> (StatusCode, HeaderMap, String) {
    send_from(s, method, uri, accept, "127.0.0.1:40000").await
}

/// [`send`] from the peer `from`.
async fn send_from(
    s: &HttpState,
    method: &str,
    uri: &str,
    accept: &str,
    from: &str,
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("accept", accept)
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(axum::extract::ConnectInfo(
        from.parse::<std::net::SocketAddr>().unwrap(),
    ));
    let resp = router(s.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

async fn page_of(s: &HttpState, uri: &str) -> String {
    let (status, headers, body) = send(s, "GET", uri, "text/html").await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    body
}

/// No tag of the hostile inputs survives, and no script but ours.
fn assert_inert(html: &str) {
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<b>tags"), "{html}");
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script>\n(function(){").count(),
        "only the page's own script: {html}"
    );
}

#[tokio::test]
async fn hostile_names_labels_and_help_are_escaped_on_every_page() {
    let s = state(true);
    s.store
        .push(HOSTILE_APP, HOSTILE_TEXT, AppKind::Push, "src \"<x>\"")
        .unwrap();
    let apps = page_of(&s, "/").await;
    assert_inert(&apps);
    assert!(apps.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;/a?b#c"));
    // The link to the app page encodes every reserved character.
    let href = format!("href=\"./apps/{}\"", pct(HOSTILE_APP));
    assert!(apps.contains(&href), "{href} in {apps}");
    assert!(!pct(HOSTILE_APP).contains(['/', '?', '#', '<', '"', '\'']));

    let app = page_of(&s, &format!("/apps/{}", pct(HOSTILE_APP))).await;
    assert_inert(&app);
    assert!(
        app.contains("<h1>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;/a?b#c</h1>"),
        "{app}"
    );
    // HELP as served (its escapes intact), value, and the label values.
    assert!(
        app.contains("HELP with &lt;b&gt;tags&lt;/b&gt; &amp; &quot;quotes&quot;"),
        "{app}"
    );
    assert!(
        app.contains("v=&quot;&lt;img src=x onerror=alert(1)&gt;&quot;"),
        "{app}"
    );
    assert!(
        app.contains("<td class=\"num\">3</td>"),
        "the value is split off after the quoted braces: {app}"
    );
    assert!(app.contains("src &quot;&lt;x&gt;&quot;"), "{app}");
    // Links from a page one level down go back up.
    assert!(app.contains("href=\"../apps\""), "{app}");

    let status = page_of(&s, "/status").await;
    assert_inert(&status);
}

#[tokio::test]
async fn app_names_with_slashes_work_encoded_or_not() {
    let s = state(false);
    s.store.push("a/b c", "x 1\n", AppKind::Push, "t").unwrap();
    for uri in ["/apps/a%2Fb%20c", "/apps/a/b%20c"] {
        let html = page_of(&s, uri).await;
        assert!(html.contains("<h1>a/b c</h1>"), "{uri}: {html}");
    }
    let (status, _, body) = send(&s, "GET", "/apps/nope", "text/html").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("No app nope"), "{body}");
}

#[tokio::test]
async fn apps_page_counts_filters_and_sorts() {
    let s = state(false);
    s.store
        .push("alpha", "a 1\na2 2\n", AppKind::Push, "t")
        .unwrap();
    s.store
        .push("beta", "b 1\n", AppKind::Gateway, "t")
        .unwrap();
    s.store
        .push("gamma", "c 1\nc2 1\nc3 1\n", AppKind::Push, "t")
        .unwrap();
    // A refused push of gamma.
    let e = s
        .store
        .push("gamma", "bad line here\n", AppKind::Push, "t")
        .unwrap_err();
    s.store.record_rejection(&e);

    let html = page_of(&s, "/").await;
    let rows = |h: &str| -> Vec<String> {
        h.match_indices("data-name=\"")
            .map(|(i, _)| h[i + 11..].split('"').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(rows(&html), ["alpha", "beta", "gamma"]);
    assert!(
        html.contains("data-kind=\"push\" href=\"?kind=push\">push<b>2</b>"),
        "{html}"
    );
    assert!(
        html.contains("data-kind=\"pushgateway\" href=\"?kind=pushgateway\">pushgateway<b>1</b>"),
        "{html}"
    );
    assert!(html.contains(">rejected<b>1</b>"), "{html}");
    assert!(html.contains(">ok<b>2</b>"), "{html}");
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"10\">"));

    assert_eq!(rows(&page_of(&s, "/?kind=push").await), ["alpha", "gamma"]);
    assert_eq!(rows(&page_of(&s, "/?status=rejected").await), ["gamma"]);
    assert_eq!(rows(&page_of(&s, "/?q=ET").await), ["beta"]);
    assert_eq!(
        rows(&page_of(&s, "/?sort=series&dir=desc").await),
        ["gamma", "alpha", "beta"]
    );
    assert_eq!(
        rows(&page_of(&s, "/apps?format=html&sort=kind").await),
        ["alpha", "gamma", "beta"]
    );
    // Refresh off: no meta refresh, and a link to turn it back on.
    let off = page_of(&s, "/?refresh=0&kind=push").await;
    assert!(!off.contains("http-equiv=\"refresh\""));
    assert!(
        off.contains("href=\"?kind=push&amp;refresh=10\">turn on</a>"),
        "{off}"
    );
}

#[tokio::test]
async fn long_errors_are_shortened_with_the_whole_text_on_demand() {
    let s = state(false);
    let long = format!("{}<end>", "x".repeat(300));
    s.store
        .record_poll_failure("app", AppKind::Poll, "http://t", &long, false);
    let html = page_of(&s, "/").await;
    let summary = format!("<summary>{}…</summary>", "x".repeat(59));
    assert!(html.contains(&summary), "{html}");
    assert!(html.contains(&format!(
        "<div class=\"full\">{}&lt;end&gt;</div>",
        "x".repeat(300)
    )));

    // The text table: shortened unless ?wide=1; JSON has it whole.
    let (_, _, text) = send(&s, "GET", "/apps", "*/*").await;
    assert!(text.contains(&format!("{}…", "x".repeat(39))), "{text}");
    assert!(!text.contains("<end>"), "{text}");
    assert!(text.lines().all(|l| l.chars().count() < 200), "{text}");
    let (_, _, wide) = send(&s, "GET", "/apps?wide=1", "*/*").await;
    assert!(
        wide.contains(&format!("{}<end>", "x".repeat(300))),
        "{wide}"
    );
    let (_, _, json) = send(&s, "GET", "/apps?format=json", "*/*").await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["apps"][0]["last_error"], long.as_str());
}

#[tokio::test]
async fn poll_facts_and_redacted_target_on_the_app_page() {
    let s = state(false);
    s.store.record_poll_failure(
        "polled",
        AppKind::Poll,
        "http://user:hunter2@127.0.0.1:9/metrics?token=s3cret&x=1",
        "connection refused",
        false,
    );
    s.store.self_metrics().poll_result(
        "polled",
        std::time::Duration::from_millis(1500),
        Err(crate::telemetry::PollFailure::Connect),
    );
    let html = page_of(&s, "/apps/polled").await;
    assert!(
        !html.contains("hunter2") && !html.contains("s3cret"),
        "{html}"
    );
    assert!(
        html.contains("http://user:***@127.0.0.1:9/metrics?token=***&amp;x=1"),
        "{html}"
    );
    assert!(html.contains("<dt>Interval</dt><dd>15 s</dd>"), "{html}");
    assert!(
        html.contains("<dt>Last duration</dt><dd>1.500 s</dd>"),
        "{html}"
    );
    assert!(
        html.contains("<dt>Failures by reason</dt><dd>connect_error 1</dd>"),
        "{html}"
    );
    assert!(html.contains("connection refused"), "{html}");
    // A configured source has no delete button even with the admin API.
    let s2 = HttpState {
        admin_api: true,
        ..s.clone()
    };
    assert!(!page_of(&s2, "/apps/polled").await.contains("id=\"delete\""));
}

#[tokio::test]
async fn delete_only_with_the_admin_api() {
    let off = state(false);
    off.store
        .push("victim", "v 1\n", AppKind::Push, "t")
        .unwrap();
    assert!(!page_of(&off, "/apps/victim")
        .await
        .contains("id=\"delete\""));
    for method in ["POST", "DELETE"] {
        let (status, _, body) = send(&off, method, "/apps/victim", "*/*").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}");
        assert!(body.contains("enable_admin_api"), "{body}");
    }
    assert_eq!(off.store.counts().0, 1, "nothing deleted");

    let on = HttpState {
        admin_api: true,
        ..off.clone()
    };
    let html = page_of(&on, "/apps/victim").await;
    assert!(
        html.contains("<form method=\"post\" action=\"../apps/victim\""),
        "{html}"
    );
    // A peer outside the push API's networks (loopback by default) may not.
    let (status, _, body) = send_from(&on, "DELETE", "/apps/victim", "*/*", "10.1.2.3:5000").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.contains("10.1.2.3") && body.contains("allowed_networks"),
        "{body}"
    );
    assert_eq!(on.store.counts().0, 1, "nothing deleted");
    let (status, headers, _) = send(&on, "POST", "/apps/victim", "text/html").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "../apps");
    assert_eq!(on.store.counts().0, 0);
    let (status, _, _) = send(&on, "DELETE", "/apps/victim", "*/*").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Configured sources are refused (they would come back).
    on.store
        .record_poll_failure("polled", AppKind::Poll, "http://x", "down", false);
    let (status, _, _) = send(&on, "DELETE", "/apps/polled", "*/*").await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn status_as_json_and_html_without_secrets() {
    let s = state(false);
    s.store.push("a", "x 1\ny 2\n", AppKind::Push, "t").unwrap();
    s.store.self_metrics().set_sink_queue("vm", 3);
    s.store
        .self_metrics()
        .count_sink("vm", crate::telemetry::SinkOutcome::Dropped, 7);
    let (status, headers, json) = send(&s, "GET", "/status?format=json", "*/*").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["revision"], env!("EXPORTER_PROXY_REVISION"));
    assert_eq!(v["store"]["apps"], 1);
    assert_eq!(v["store"]["series"], 2);
    assert_eq!(v["listeners"][0]["address"], "127.0.0.1:6555");
    assert_eq!(v["config"]["poll"]["targets"][0]["interval"], "15s");
    assert_eq!(
        v["config"]["poll"]["targets"][0]["headers"][0],
        "X-Api-Key: ***"
    );
    assert!(v["started"].as_str().unwrap().ends_with('Z'));
    for secret in ["hunter2", "s3cret", "k3y", "t0ken"] {
        assert!(!json.contains(secret), "{secret} in {json}");
    }
    // The same through Accept, and the page.
    let (_, _, again) = send(&s, "GET", "/status", "application/json").await;
    assert!(again.starts_with('{'));
    let html = page_of(&s, "/status").await;
    for secret in ["hunter2", "s3cret", "k3y"] {
        assert!(!html.contains(secret), "{secret} in {html}");
    }
    assert!(html.contains("<dt>Version</dt>"), "{html}");
    assert!(html.contains("id=\"listeners\""), "{html}");
    assert!(html.contains("<pre id=\"config\">"), "{html}");
    let (status, _, _) = send(&s, "GET", "/status?format=xml", "*/*").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[test]
fn urls_lose_their_credentials() {
    for (u, want) in [
        ("http://u:p@h:1/x", "http://u:***@h:1/x"),
        ("https://h/x?token=abc&a=1#f", "https://h/x?token=***&a=1#f"),
        ("https://u@h/?API_KEY=z", "https://u@h/?API_KEY=***"),
        ("/run/s.sock peer uid 1", "/run/s.sock peer uid 1"),
        ("http://h/p@x", "http://h/p@x"),
    ] {
        assert_eq!(redact_url(u), want, "{u}");
    }
}

#[test]
fn lines_split_after_quoted_labels() {
    use super::app::split_line;
    assert_eq!(split_line("a 1"), ("a", "1"));
    assert_eq!(
        split_line("a{x=\"} {\"} 2 1700"),
        ("a{x=\"} {\"}", "2 1700")
    );
    assert_eq!(split_line("a{x=\"\\\"}\"} 3"), ("a{x=\"\\\"}\"}", "3"));
}

#[test]
fn ages_and_roots() {
    assert_eq!(short(Duration::from_secs(12)), "12 s");
    assert_eq!(short(Duration::from_secs(299)), "4 min 59 s");
    assert_eq!(short(Duration::from_secs(7200)), "2 h");
    assert_eq!(short(Duration::from_secs(3 * 86_400 + 5)), "3 d");
    assert_eq!(short(Duration::from_secs(26 * 3600)), "1 d 2 h");
    assert_eq!(short(Duration::from_millis(200)), "200 ms");
    assert_eq!(root_of("/"), "./");
    assert_eq!(root_of("/status"), "./");
    assert_eq!(root_of("/apps/x"), "../");
    assert_eq!(root_of("/apps/a/b"), "../../");
    assert_eq!(shorten("a\nb", 10), ("a b".to_owned(), false));
}

#[test]
fn pages_copy_the_apps_rows_once_per_store_change() {
    let s = state(false);
    s.store.push("a", "x 1\n", AppKind::Push, "t").unwrap();
    let first = s.ui.apps(&s.store);
    // Views of an unchanged store share one copy: no lock, no clone.
    for _ in 0..3 {
        assert!(Arc::ptr_eq(&first.apps, &s.ui.apps(&s.store).apps));
    }
    assert_eq!(s.ui.copies(), 1);
    s.store.push("b", "y 1\n", AppKind::Push, "t").unwrap();
    let second = s.ui.apps(&s.store);
    assert!(!Arc::ptr_eq(&first.apps, &second.apps));
    assert_eq!(second.apps.len(), 2);
    assert_eq!(s.ui.copies(), 2);
}

#[tokio::test]
async fn pages_render_no_metrics_body_and_copy_the_rows_once() {
    let s = state(false);
    s.store.push("a", "x 1\n", AppKind::Push, "t").unwrap();
    s.store.push("b", "y 1\n", AppKind::Push, "t").unwrap();
    let (status, _, _) = send(&s, "GET", "/metrics", "text/plain").await;
    assert_eq!(status, StatusCode::OK);
    let renders = s.store.self_metrics().renders();
    assert_eq!(renders, 1);
    for _ in 0..3 {
        for uri in ["/", "/apps", "/apps/a", "/apps/b", "/status"] {
            page_of(&s, uri).await;
        }
        let (status, _, _) = send(&s, "GET", "/apps", "application/json").await;
        assert_eq!(status, StatusCode::OK);
    }
    // The views rendered no /metrics body and shared one copy of the rows.
    assert_eq!(s.store.self_metrics().renders(), renders);
    assert_eq!(s.ui.copies(), 1);
    let (_, _, json) = send(&s, "GET", "/status?format=json", "*/*").await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["store"]["renders_total"], 1, "{v}");
    assert_eq!(v["ui"]["apps_copies_total"], 1, "{v}");
    // A scrape after a change renders once more, and says how many before.
    s.store.push("a", "x 2\n", AppKind::Push, "t").unwrap();
    let (_, _, body) = send(&s, "GET", "/metrics", "text/plain").await;
    assert!(
        body.contains("\nexporter_proxy_renders_total 1\n"),
        "{body}"
    );
    assert_eq!(s.store.self_metrics().renders(), 2);
}
