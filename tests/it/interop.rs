//! Interoperability with real external peers: the pycapnp clients in
//! `python_test_clients/`, netcat, `promtool check metrics` and Python
//! `prometheus_client`'s parser. `scripts/test.sh` installs them; a missing
//! tool is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The venv Python with pycapnp and prometheus_client.
pub fn python() -> PathBuf {
    let p = std::env::var_os("EXPORTER_PROXY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("target/test-venv/bin/python"));
    assert!(
        p.exists(),
        "{} not found: run scripts/test.sh (it creates the venv with pycapnp and prometheus_client)",
        p.display()
    );
    p
}

/// An external tool on PATH; panics with how to get it.
pub fn tool(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{name} not found: install the Debian package {package} (scripts/test.sh does)")
    })
}

/// netcat-openbsd (`-q 0`, `-U`), which the README's examples use.
fn netcat() -> PathBuf {
    tool("nc.openbsd", "netcat-openbsd")
}

async fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null());
    tokio::time::timeout(STEP * 3, tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .expect("external command finished in time")
        .unwrap()
        .unwrap()
}

async fn run_ok(cmd: Command) -> String {
    let desc = format!("{cmd:?}");
    let out = run(cmd).await;
    assert!(
        out.status.success(),
        "{desc} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub async fn promtool_check(body: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, body).unwrap();
    let mut cmd = Command::new(tool("promtool", "prometheus"));
    cmd.args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- body ---\n{body}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Parses an exposition with prometheus_client and returns
/// `name{sorted labels} -> value` lines.
pub async fn python_parse(body: &str) -> Vec<String> {
    python_parse_with(body, true).await
}

/// [`python_parse`]; `strict` also asserts that no family name appears
/// twice (off for the Pushgateway's own output, whose Go runtime metrics
/// `go_memstats_alloc_bytes` and `..._total` collide in Python's parser).
pub async fn python_parse_with(body: &str, strict: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, body).unwrap();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
names = set()
for fam in text_string_to_metric_families(text):
    assert sys.argv[2] == "0" or fam.name not in names, "family twice: " + fam.name
    names.add(fam.name)
    for s in fam.samples:
        labels = ",".join('%s=%s' % (k, json.dumps(v)) for k, v in sorted(s.labels.items()))
        print("%s %s{%s} %r" % (fam.type, s.name, labels, float(s.value)))
"#;
    let mut cmd = Command::new(python());
    cmd.args([
        "-c",
        script,
        file.to_str().unwrap(),
        if strict { "1" } else { "0" },
    ]);
    run_ok(cmd).await.lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn python_capnp_clients_netcat_promtool_and_prometheus_client() {
    let app = TestApp::start().await;
    let clients = repo("python_test_clients");

    // pycapnp over TCP and Unix: two apps per connection, reply checked by the script.
    let mut tcp = Command::new(python());
    tcp.current_dir(&clients)
        .arg("test_send_tcp_socket_capnp.py")
        .args(["--address", &app.tcp.to_string()]);
    let out = run_ok(tcp).await;
    assert!(out.contains("\"ok\":true"), "{out}");
    let mut unix = Command::new(python());
    unix.current_dir(&clients)
        .arg("test_send_unix_socket_capnp.py")
        .args(["--socket", app.socket.to_str().unwrap()]);
    run_ok(unix).await;

    // netcat, exactly as the README shows it.
    let mut nc = Command::new(netcat());
    nc.args(["-q", "0", "127.0.0.1", &app.tcp.port().to_string()])
        .current_dir(&clients)
        .stdin(std::fs::File::open(clients.join("json_string.json")).unwrap());
    let out = tokio::task::spawn_blocking(move || nc.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut nc = Command::new(netcat());
    nc.args(["-U", app.socket.to_str().unwrap(), "-q", "0"])
        .stdin(std::fs::File::open(clients.join("json_array.json")).unwrap());
    let out = tokio::task::spawn_blocking(move || nc.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    eventually(|| async {
        let body = app.metrics().await;
        body.contains("foo_bar_app0_metrics_queue_jobs")
            && body.contains("foo_bar_app1_metrics_errors_total")
    })
    .await;

    let body = app.metrics().await;
    for a in [
        "foo_bar_tcp_app0",
        "foo_bar_tcp_app1",
        "foo_bar_app0",
        "foo_bar_app1",
        "foo_bar_app0_metrics",
        "foo_bar_app1_metrics",
    ] {
        assert!(
            metric("demo_build_info")
                .label("app", a)
                .value("1")
                .is_in(&body),
            "{a} missing: {body}"
        );
    }
    assert_eq!(body.matches("# TYPE demo_build_info gauge").count(), 1);

    // An independent parser and linter accept the merged output.
    promtool_check(&body).await;
    let samples = python_parse(&body).await;
    let has = |line: &str| samples.iter().any(|s| s == line);
    assert!(
        has("gauge demo_build_info{app=\"foo_bar_app1\",version=\"1.1.0\"} 1.0"),
        "{samples:#?}"
    );
    assert!(
        has("counter foo_bar_app0_metrics_http_requests_total{code=\"400\",method=\"post\"} 3.0"),
        "{samples:#?}"
    );
    assert!(has("histogram foo_bar_app1_metrics_http_request_duration_seconds_bucket{le=\"+Inf\"} 144320.0"), "{samples:#?}");
    let demo = samples
        .iter()
        .filter(|s| s.starts_with("gauge demo_build_info{"))
        .count();
    assert_eq!(demo, 6, "{samples:#?}");

    // A second push of an app replaces its first set: the dropped series is gone.
    let second = "# HELP foo_bar_app0_metrics_http_requests_total Requests.\n# TYPE foo_bar_app0_metrics_http_requests_total counter\nfoo_bar_app0_metrics_http_requests_total{method=\"post\",code=\"200\"} 1029\n";
    let mut nc = Command::new(netcat());
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("second.json");
    std::fs::write(&doc, json_push("foo_bar_app0_metrics", second)).unwrap();
    nc.args(["-q", "0", "127.0.0.1", &app.tcp.port().to_string()])
        .stdin(std::fs::File::open(&doc).unwrap());
    let out = tokio::task::spawn_blocking(move || nc.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success());
    eventually(|| async { app.metrics().await.contains("1029") }).await;
    let body = app.metrics().await;
    promtool_check(&body).await;
    let samples = python_parse(&body).await;
    let app0: Vec<&String> = samples
        .iter()
        .filter(|s| s.contains("foo_bar_app0_metrics_"))
        .collect();
    assert_eq!(
        app0,
        ["counter foo_bar_app0_metrics_http_requests_total{code=\"200\",method=\"post\"} 1029.0"],
        "only the second set remains"
    );
    assert!(!samples
        .iter()
        .any(|s| s.contains("demo_build_info{app=\"foo_bar_app0_metrics\"")));
    app.stop().await;
}

#[tokio::test]
async fn promtool_accepts_escapes_specials_and_empty_families() {
    let app = TestApp::start().await;
    let text = concat!(
        "# HELP esc_info Help with a backslash \\\\ and a newline \\n here.\n",
        "# TYPE esc_info gauge\n",
        "esc_info{path=\"C:\\\\dir\",quote=\"say \\\"hi\\\"\",nl=\"a\\nb\"} 1\n",
        "# HELP special_values Values that are not finite.\n",
        "# TYPE special_values gauge\n",
        "special_values{kind=\"pinf\"} +Inf\n",
        "special_values{kind=\"ninf\"} -Inf\n",
        "special_values{kind=\"nan\"} NaN\n",
        "# HELP empty_family A family without samples.\n",
        "# TYPE empty_family gauge\n",
        "# HELP rpc_seconds Latency summary.\n",
        "# TYPE rpc_seconds summary\n",
        "rpc_seconds{quantile=\"0.5\"} 0.1\n",
        "rpc_seconds_sum 3\n",
        "rpc_seconds_count 30\n",
    );
    assert_eq!(
        reply(&send_tcp(app.tcp, &json_push("esc", text)).await)["ok"],
        true
    );
    let body = app.metrics().await;
    promtool_check(&body).await;
    let samples = python_parse(&body).await;
    let has = |line: &str| samples.iter().any(|s| s == line);
    assert!(
        has(r#"gauge esc_info{nl="a\nb",path="C:\\dir",quote="say \"hi\""} 1.0"#),
        "{samples:#?}"
    );
    assert!(
        has("gauge special_values{kind=\"pinf\"} inf"),
        "{samples:#?}"
    );
    assert!(
        has("gauge special_values{kind=\"nan\"} nan"),
        "{samples:#?}"
    );
    assert!(has("summary rpc_seconds_count{} 30.0"), "{samples:#?}");
    app.stop().await;
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Child(cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}")))
}

/// Polls a real prometheus-node-exporter and a real Prometheus server's own
/// /metrics (Debian packages), and checks the merged /metrics with promtool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_real_node_exporter_and_prometheus_and_promtool_accepts_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let node_port = free_port();
    let mut node = Command::new(tool("prometheus-node-exporter", "prometheus-node-exporter"));
    node.arg(format!("--web.listen-address=127.0.0.1:{node_port}"));
    let _node = spawn(node);
    let prom_port = free_port();
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(&prom_config, "global:\n  scrape_interval: 1m\n").unwrap();
    let mut prom = Command::new(tool("prometheus", "prometheus"));
    prom.arg(format!("--config.file={}", prom_config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"));
    let _prom = spawn(prom);

    let app = TestApp::with_config(&format!(
        "[[poll.targets]]\nname = \"node\"\nurl = \"http://127.0.0.1:{node_port}/metrics\"\ninterval = \"1s\"\ntimeout = \"1s\"\nlabels = {{ source = \"node\" }}\n\
         [[poll.targets]]\nname = \"prometheus\"\nurl = \"http://127.0.0.1:{prom_port}/metrics\"\ninterval = \"1s\"\ntimeout = \"1s\"\nlabels = {{ source = \"prometheus\" }}\n"
    ))
    .await;
    let up = |b: &str, t: &str| {
        metric("exporter_proxy_target_up").label("target", t).get(b) == Some(1.0)
    };
    let deadline = tokio::time::Instant::now() + STEP * 3;
    let body = loop {
        let b = app.metrics().await;
        if up(&b, "node") && up(&b, "prometheus") {
            break b;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "both exporters up within {:?}; /apps:\n{}",
            STEP * 3,
            get(app.http, "/apps").await.body_string()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        body.contains("node_cpu_seconds_total{source=\"node\""),
        "node data"
    );
    assert!(
        body.contains("prometheus_build_info{source=\"prometheus\""),
        "prometheus data"
    );
    assert_contiguous_families(&body);
    promtool_parses(&body).await;
    app.stop().await;
}

/// `promtool check metrics` parses the body. Style lints about the polled
/// exporters' own names (node_exporter's `node_memory_Active_bytes`...) exit
/// with 3 and are tolerated; a parse error ("error while linting") exits
/// with 1 and fails, as does any lint about our own metrics.
pub async fn promtool_parses(body: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, body).unwrap();
    let mut cmd = Command::new(tool("promtool", "prometheus"));
    cmd.args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap());
    let out = run(cmd).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = out.status.code();
    assert!(
        code == Some(0) || (code == Some(3) && !text.contains("error while linting")),
        "promtool check metrics failed ({:?}):\n{text}",
        out.status
    );
    assert!(
        !text.contains("exporter_proxy_"),
        "lint about our own metrics:\n{text}"
    );
}
