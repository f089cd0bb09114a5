//! The text parser against Go's: `tests/go/expfmt_oracle` is built on Debian's
//! `golang-github-prometheus-common-dev` (the `expfmt` package Prometheus, the
//! Pushgateway and client_golang parse with) and prints what Go understood of
//! an input. For input Go accepts, Go must understand our output of it exactly
//! as it understood the input: same families, types, HELP, series, values and
//! timestamps. Input only one side accepts is listed, each with its reason.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use exporter_proxy::exposition::{self, DropReason, ParseLimits};

use crate::interop::tool;

/// The oracle binary, built once per test run (GOPATH mode, offline, from
/// /usr/share/gocode).
fn oracle() -> &'static Path {
    static ORACLE: OnceLock<PathBuf> = OnceLock::new();
    ORACLE.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let out = tmp.join("expfmt_oracle");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/expfmt_oracle");
        let common = Path::new("/usr/share/gocode/src/github.com/prometheus/common/expfmt");
        assert!(
            common.is_dir(),
            "{} not found: install the Debian package golang-github-prometheus-common-dev \
             (scripts/test.sh does)",
            common.display()
        );
        let status = Command::new(tool("go", "golang-go"))
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(&src)
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOCACHE", tmp.join("go-cache"))
            .env("GOFLAGS", "")
            .env("GOPROXY", "off")
            .status()
            .expect("go build runs");
        assert!(status.success(), "go build of the expfmt oracle failed");
        out
    })
}

/// Go's reading of `text`: `Ok(families as expfmt writes them)` or `Err(error)`.
fn go(text: &str) -> Result<String, String> {
    let mut child = Command::new(oracle())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the oracle starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Our output for `text`, or our error.
fn ours(text: &str) -> Result<exposition::Exposition, String> {
    exposition::parse(text, &ParseLimits::default()).map_err(|e| e.to_string())
}

/// Go accepts `input`, we accept it, and Go reads our output as it read the input.
#[track_caller]
fn agree(input: &str) -> exposition::Exposition {
    let want = go(input).unwrap_or_else(|e| panic!("Go refused:\n{input}\n{e}"));
    let exp = ours(input).unwrap_or_else(|e| panic!("we refused:\n{input}\n{e}"));
    let out = exposition::encode(&exp);
    let got = go(&out).unwrap_or_else(|e| panic!("Go refused our output:\n{out}\n{e}"));
    assert_eq!(got, want, "input:\n{input}\nour output:\n{out}");
    exp
}

#[test]
fn go_valid_input_reads_the_same_through_us() {
    let cases = [
        // Ordinary input, with escapes, specials and timestamps.
        "# HELP a A \\\\ help\\nline.\n# TYPE a counter\na{x=\"q\\\"\\\\\\n\"} 1.5 1700000000000\na 2\n",
        "# TYPE g gauge\ng NaN\ng{a=\"1\"} +Inf\ng{a=\"2\"} -Inf\ng{a=\"3\"} 1e3\n",
        "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 3\ns_count 2\n",
        "  indented{a=\"1\" ,b = \"2\",} 3\n\n# a comment\nuntyped 1\n",
        // Label names starting with `__` (Go reserves only `__name__`).
        "foo{__meta_x=\"1\",__y=\"2\"} 3\n",
        // TYPE keywords in another case, and a TYPE line without a type.
        "# TYPE a Counter\na 1\n# TYPE b COUNTER\nb 1\n# TYPE c Histogram\nc_count 1\n",
        "# TYPE t\nt 1\n",
        "# TYPE t \n# TYPE t gauge\nt 1\n",
        // An empty HELP, then a second HELP (one of expfmt's own valid scenarios).
        "# HELP m\n# HELP m \n# HELP m real\nm 1\n",
        // HELP for a derived name of a declared histogram or summary.
        "# TYPE h histogram\n# HELP h_bucket Latency.\nh_bucket{le=\"1\"} 1\nh_count 1\n",
        "# TYPE s summary\n# HELP s_count Sizes.\ns_count 1\ns_sum 2\n",
        // A histogram sample named like its family with `le` is a bucket to Go.
        "# TYPE h histogram\nh{le=\"1\"} 1\nh{le=\"+Inf\"} 2\nh_count 2\n",
    ];
    for input in cases {
        agree(input);
    }
}

/// Samples Go ignores: a bucket without `le`, a summary sample without
/// `quantile`. Go accepts the input but keeps no value of theirs (only an
/// empty histogram or summary for their label set, with invented zero
/// counts); we drop them and count them. Go reads our output as it reads the
/// input without those lines.
#[test]
fn samples_go_ignores_are_dropped_and_counted_by_reason() {
    let cases = [
        (
            "# TYPE h histogram\nh_bucket 1\nh{x=\"1\"} 1\nh_count 2\n",
            "# TYPE h histogram\nh_count 2\n",
            DropReason::BucketWithoutLe,
            2,
        ),
        (
            "# TYPE h histogram\nh_bucket{a=\"1\"} 2\nh_bucket{a=\"1\",le=\"+Inf\"} 2\nh_count{a=\"1\"} 2\n",
            "# TYPE h histogram\nh_bucket{a=\"1\",le=\"+Inf\"} 2\nh_count{a=\"1\"} 2\n",
            DropReason::BucketWithoutLe,
            1,
        ),
        (
            "# TYPE s summary\ns 1\ns{quantile=\"0.9\"} 2\ns_count 3\n",
            "# TYPE s summary\ns{quantile=\"0.9\"} 2\ns_count 3\n",
            DropReason::QuantileWithoutQuantile,
            1,
        ),
    ];
    for (input, without, reason, n) in cases {
        assert!(go(input).is_ok(), "Go refused:\n{input}");
        let exp = ours(input).unwrap_or_else(|e| panic!("we refused:\n{input}\n{e}"));
        assert_eq!(exp.dropped.get(&reason), Some(&n), "input:\n{input}");
        let out = exposition::encode(&exp);
        assert_eq!(go(&out), go(without), "input:\n{input}\nour output:\n{out}");
    }
}

/// What we accept beyond Go (documented in the README): Go refuses the input,
/// we accept it, and Go reads our output as it reads the plain form.
#[test]
fn beyond_go_we_accept_transport_details() {
    let cases = [
        ("a 1\r\nb 2\r\n", "a 1\nb 2\n"),
        ("a 1", "a 1\n"),
        ("a 1 \n", "a 1\n"),
        ("a 1 1700000000000 \t\n", "a 1 1700000000000\n"),
        ("# TYPE a counter \na 1\n", "# TYPE a counter\na 1\n"),
    ];
    for (input, plain) in cases {
        assert!(go(input).is_err(), "Go accepts {input:?}: not beyond Go");
        let exp = ours(input).unwrap_or_else(|e| panic!("we refused {input:?}: {e}"));
        let out = exposition::encode(&exp);
        assert_eq!(go(&out), go(plain), "input {input:?}, our output:\n{out}");
    }
}

/// Where we refuse what Go accepts, each for a documented reason: the output
/// would be ambiguous or invalid for a scraper.
#[test]
fn stricter_than_go_only_where_documented() {
    let cases = [
        // Duplicate series: a scraper keeps one, at random.
        ("a 1\na 2\n", "duplicate series"),
        // A family's derived name taken by another family.
        (
            "foo_count 1\n# TYPE foo summary\n",
            "both use the sample name",
        ),
    ];
    for (input, why) in cases {
        assert!(go(input).is_ok(), "Go refuses {input:?}");
        let e = ours(input).expect_err(input);
        assert!(e.contains(why), "{input:?}: {e}");
    }
    // And both refuse what is broken.
    for input in [
        "a{__name__=\"x\"} 1\n",
        "# TYPE a Countr\n",
        "# HELP a x\n# HELP a y\n",
        "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
        "a x\n",
    ] {
        assert!(go(input).is_err(), "Go accepts {input:?}");
        assert!(ours(input).is_err(), "we accept {input:?}");
    }
}

/// Through a real push: the push is accepted, the dropped samples are counted
/// by reason in the self-metrics, the rest is served, and Go reads the page.
#[tokio::test]
async fn a_push_with_samples_go_ignores_is_accepted_and_counted() {
    use crate::support::*;
    let app = TestApp::start().await;
    let text = "# TYPE h histogram\nh_bucket 1\nh{le=\"1\"} 1\nh_count 1\n\
                # TYPE s summary\ns 1\ns_sum 2\n# TYPE t Gauge\nt{__k=\"v\"} 1\n";
    let r = reply(&send_tcp(app.tcp, &json_push("a", text)).await);
    assert_eq!(r["ok"], true, "{r}");
    let body = app.metrics().await;
    assert!(metric("exporter_proxy_dropped_samples_total")
        .label("reason", "bucket_without_le")
        .value("1")
        .is_in(&body));
    assert!(metric("exporter_proxy_dropped_samples_total")
        .label("reason", "quantile_without_quantile_label")
        .value("1")
        .is_in(&body));
    assert!(metric("h_bucket").label("le", "1").value("1").is_in(&body));
    assert!(metric("t").label("__k", "v").value("1").is_in(&body));
    assert!(body.contains("# TYPE t gauge\n"), "{body}");
    go(&body).unwrap_or_else(|e| panic!("Go refused the page: {e}\n{body}"));
    app.stop().await;
}
