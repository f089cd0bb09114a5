//! The web UI in a real browser: Debian's `chromium`, headless, against a
//! running proxy with pushed, polled, failing, refused and expired sources.
//! The DOM after load (`--dump-dom`, scripts run) must hold the expected
//! rows, counts, filters and app pages, and nothing a hostile app name,
//! label value or HELP text tried to inject. Screenshots of each page at a
//! desktop and a phone width are taken and checked to be real PNGs of that
//! width; with `EXPORTER_PROXY_UPDATE_SCREENSHOTS=1` they are written to
//! `docs/ui/` (the README links them), otherwise to a temporary directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use scraper::{Html, Selector};

use crate::poll::{Mode, Stub};
use crate::support::*;

/// The browser: Debian's package (installed by `scripts/test.sh`).
const CHROMIUM: &str = "chromium";
/// One browser run (start, load, render) may take this long on a busy
/// machine; a hung browser fails the test instead of hanging it.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

const HOSTILE: &str = "<script>alert(\"x\")</script>'\"&";

/// Runs chromium headless with `args`; returns its stdout.
async fn chromium(args: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        // Give the page's own script time to run before the dump.
        "--virtual-time-budget=2000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    let out = tokio::time::timeout(BROWSER_TIMEOUT, cmd.output())
        .await
        .expect("chromium finishes in time")
        .unwrap_or_else(|e| panic!("cannot run {CHROMIUM} (Debian package chromium): {e}"));
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The DOM of `url` after load.
async fn dom(url: &str) -> Html {
    let html = chromium(&["--dump-dom".to_owned(), url.to_owned()]).await;
    assert!(html.contains("</html>"), "no document: {html}");
    Html::parse_document(&html)
}

/// A screenshot of `url` at `width`×`height` into `path`; checks it is a
/// PNG of that width.
async fn screenshot(url: &str, width: u32, height: u32, path: &Path) {
    let _ = std::fs::remove_file(path);
    chromium(&[
        format!("--screenshot={}", path.display()),
        format!("--window-size={width},{height}"),
        url.to_owned(),
    ])
    .await;
    let png = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(w, width, "{}", path.display());
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

/// `data-name` of every app row, in order.
fn rows(doc: &Html) -> Vec<String> {
    doc.select(&sel("tr.app"))
        .map(|r| r.value().attr("data-name").unwrap().to_owned())
        .collect()
}

fn row_status(doc: &Html, name: &str) -> String {
    doc.select(&sel("tr.app"))
        .find(|r| r.value().attr("data-name") == Some(name))
        .unwrap_or_else(|| panic!("no row {name}"))
        .value()
        .attr("data-status")
        .unwrap()
        .to_owned()
}

fn text(doc: &Html, s: &str) -> String {
    doc.select(&sel(s))
        .map(|e| e.text().collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Percent-encodes an app name for its page's URL.
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Nothing injected: no element the hostile inputs carried, one script.
fn assert_inert(doc: &Html) {
    assert_eq!(doc.select(&sel("img")).count(), 0);
    assert_eq!(doc.select(&sel("b.evil")).count(), 0);
    assert!(doc.select(&sel("script")).count() <= 1);
    for s in doc.select(&sel("script")) {
        assert!(!s.inner_html().contains("alert"), "{}", s.inner_html());
    }
}

fn screenshot_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    if std::env::var_os("EXPORTER_PROXY_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ui");
        std::fs::create_dir_all(&d).unwrap();
        (d, None)
    } else {
        let t = tempfile::tempdir().unwrap();
        (t.path().to_owned(), Some(t))
    }
}

/// A proxy with two polled targets (one up, one refused), pushed apps (one
/// with a refused push, one hostile), and one app that expired; returns it
/// with the stub it polls and the closed port.
async fn proxy_with_every_kind_of_source() -> (TestApp, Stub, u16) {
    let healthy = Stub::start("healthy", Mode::Healthy).await;
    let closed = free_port();
    let app = TestApp::with_all(
        "stale_check_interval = \"50ms\"",
        "",
        &format!(
            "[[poll.targets]]\nname = \"exporter-a\"\nurl = \"{}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n[[poll.targets]]\nname = \"exporter-down\"\nurl = \"http://127.0.0.1:{closed}/metrics\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n",
            healthy.url()
        ),
    )
    .await;
    let push = |doc: serde_json::Value| {
        let socket = app.socket.clone();
        async move {
            let r = reply(&send_unix(&socket, doc.to_string().as_bytes()).await);
            assert_eq!(r["ok"], true, "{r}");
        }
    };
    push(serde_json::json!({
        "backup": {"metrics": "# HELP backup_ok Whether the last backup worked.\n# TYPE backup_ok gauge\nbackup_ok 1\nbackup_files{dir=\"/srv\"} 1234\n", "ttl": "26h"},
        "web": "# TYPE web_requests_total counter\nweb_requests_total{code=\"200\"} 10\nweb_requests_total{code=\"500\"} 1\n",
        "short-lived": {"metrics": "short_lived_up 1\n", "ttl": "300ms"},
    }))
    .await;
    push(serde_json::json!({
        HOSTILE: "# HELP evil_total <b class=\"evil\">bold</b> & \"q\"\\nsecond line\n# TYPE evil_total counter\nevil_total{v=\"<img src=x onerror=alert(1)>\",w=\"a } b\"} 7\n",
    }))
    .await;
    // A refused push of `web`: a long error, the old data stays.
    let refused = send_unix(
        &app.socket,
        &json_push(
            "web",
            &format!(
                "web_requests_total{{code=\"200\"}} 11\n{} 1\n",
                "x-".repeat(80)
            ),
        ),
    )
    .await;
    assert_eq!(reply(&refused)["ok"], false, "{refused}");
    // Wait for both targets' first polls and the short-lived app's expiry.
    eventually(|| async {
        let apps: serde_json::Value =
            serde_json::from_slice(&get(app.http, "/apps?format=json").await.body).unwrap();
        let status = |n: &str| {
            apps["apps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == n)
                .map(|a| a["status"].as_str().unwrap().to_owned())
        };
        status("exporter-a").as_deref() == Some("up")
            && status("exporter-down").as_deref() == Some("down")
            && status("short-lived").is_none()
    })
    .await;
    (app, healthy, closed)
}

/// Screenshots of each page at a desktop and a phone width.
async fn screenshots(base: &str) {
    let (dir, _keep) = screenshot_dir();
    for (name, path) in [
        ("apps", "/?refresh=0".to_owned()),
        ("app", format!("/apps/{}", pct("exporter-down"))),
        ("status", "/status".to_owned()),
    ] {
        for (device, w, h) in [("desktop", 1280, 900), ("phone", 390, 844)] {
            let file = dir.join(format!("{name}-{device}.png"));
            screenshot(&format!("{base}{path}"), w, h, &file).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_a_real_browser() {
    let (app, _healthy, closed) = proxy_with_every_kind_of_source().await;
    let base = format!("http://{}", app.http);

    // The apps page: every source, its status, the counts; the expired app gone.
    let doc = dom(&format!("{base}/?refresh=0")).await;
    assert_eq!(
        rows(&doc),
        [HOSTILE, "backup", "exporter-a", "exporter-down", "web"]
    );
    assert_eq!(row_status(&doc, "exporter-a"), "up");
    assert_eq!(row_status(&doc, "exporter-down"), "down");
    assert_eq!(row_status(&doc, "web"), "rejected");
    assert_eq!(row_status(&doc, "backup"), "ok");
    let counts = text(&doc, "#counts");
    assert!(
        counts.contains("all5") && counts.contains("push3") && counts.contains("poll2"),
        "{counts}"
    );
    // Ages with the UTC time on hover; the long error shortened, whole on demand.
    let web = doc
        .select(&sel("tr.app"))
        .find(|r| r.value().attr("data-name") == Some("web"))
        .unwrap();
    let time = web.select(&sel("time")).next().unwrap();
    assert!(time.text().collect::<String>().ends_with(" ago"));
    assert!(time.value().attr("title").unwrap().ends_with(" UTC"));
    let summary: String = web
        .select(&sel("td.err summary"))
        .next()
        .expect("a shortened error")
        .text()
        .collect();
    assert!(
        summary.ends_with('…') && summary.chars().count() <= 60,
        "{summary}"
    );
    let full: String = web
        .select(&sel("td.err .full"))
        .next()
        .unwrap()
        .text()
        .collect();
    assert!(full.contains("expected [a-zA-Z_:]"), "{full}");
    assert!(!summary.contains("expected"), "{summary}");
    assert_inert(&doc);
    // The hostile name is shown as text, exactly.
    assert!(text(&doc, "td.name a").contains(HOSTILE));
    // Without the admin API there is no delete button anywhere.
    assert_eq!(doc.select(&sel("#delete")).count(), 0);

    // Filters and sorting are links and a form: they work in the browser.
    let down = dom(&format!("{base}/apps?format=html&status=down&refresh=0")).await;
    assert_eq!(rows(&down), ["exporter-down"]);
    let polled = dom(&format!("{base}/?kind=poll&sort=name&dir=desc&refresh=0")).await;
    assert_eq!(rows(&polled), ["exporter-down", "exporter-a"]);
    assert_eq!(
        polled
            .select(&sel("#f-kind option[selected]"))
            .next()
            .unwrap()
            .text()
            .collect::<String>(),
        "poll"
    );

    // The hostile app's page: name, HELP, label values as text; nothing injected.
    let page = dom(&format!("{base}/apps/{}", pct(HOSTILE))).await;
    assert_inert(&page);
    assert_eq!(text(&page, "h1"), HOSTILE);
    let help = text(&page, "p.help");
    assert!(
        help.contains("<b class=\"evil\">bold</b> & \"q\""),
        "{help}"
    );
    let series = text(&page, "code.series");
    assert!(
        series.contains("v=\"<img src=x onerror=alert(1)>\""),
        "{series}"
    );
    assert!(series.contains("w=\"a } b\""), "{series}");
    assert_eq!(text(&page, "table.series td.num"), "7");

    // A failing target's page: where, how often, why.
    let down = dom(&format!("{base}/apps/exporter-down")).await;
    let facts = text(&down, "dl.facts");
    assert!(facts.contains(&format!("127.0.0.1:{closed}")), "{facts}");
    assert!(facts.contains("Interval200 ms"), "{facts}");
    assert!(facts.contains("connect_error"), "{facts}");

    // The status page, and its JSON.
    let status = dom(&format!("{base}/status")).await;
    let facts = text(&status, "dl.facts");
    assert!(
        facts.contains(&format!("Version{}", env!("CARGO_PKG_VERSION"))),
        "{facts}"
    );
    assert!(
        text(&status, "#listeners").contains("capnp-rpc"),
        "{}",
        text(&status, "#listeners")
    );
    assert!(text(&status, "#config").contains("exporter-down"));
    let json: serde_json::Value =
        serde_json::from_slice(&get(app.http, "/status?format=json").await.body).unwrap();
    assert_eq!(json["store"]["apps"], 5);
    assert_eq!(json["store"]["expired_total"], 1);

    screenshots(&base).await;
    app.stop().await;
}
