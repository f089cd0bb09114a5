//! Test helpers: a running proxy, push and HTTP clients, a metric matcher.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use exporter_proxy::app;
use exporter_proxy::config::Config;
use exporter_proxy::store::Store;
use exporter_proxy::telemetry::SelfMetrics;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::sync::CancellationToken;

/// Upper bound for any single network step in tests.
pub const STEP: Duration = Duration::from_secs(10);

/// A proxy running in this process on loopback port 0 and a temp socket.
pub struct TestApp {
    pub http: SocketAddr,
    pub tcp: SocketAddr,
    pub rpc: SocketAddr,
    pub socket: PathBuf,
    pub store: Arc<Store>,
    /// The config file the app was started from; a reload re-reads it.
    pub config_path: PathBuf,
    /// Its text, for tests that edit it.
    pub config_text: String,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// Starts with the default test config.
    pub async fn start() -> TestApp {
        TestApp::with_config("").await
    }

    /// Starts with extra TOML tables (`[limits]` ...) after the defaults.
    pub async fn with_config(extra: &str) -> TestApp {
        TestApp::with(extra, "").await
    }

    /// `extra`: whole tables; `receiver_extra`: lines inside `[receiver]`.
    pub async fn with(extra: &str, receiver_extra: &str) -> TestApp {
        TestApp::with_all("", receiver_extra, extra).await
    }

    /// Lines inside `[exporter]` and `[receiver]`, then whole tables.
    pub async fn with_all(exporter_extra: &str, receiver_extra: &str, extra: &str) -> TestApp {
        TestApp::with_top("", exporter_extra, receiver_extra, extra).await
    }

    /// Top-level keys (before any table), then as [`TestApp::with_all`].
    pub async fn with_top(
        top: &str,
        exporter_extra: &str,
        receiver_extra: &str,
        extra: &str,
    ) -> TestApp {
        let app = TestApp::launch_with_top(top, exporter_extra, receiver_extra, extra).await;
        app.wait_ready().await;
        app
    }

    /// [`TestApp::with_all`] without waiting for `/-/ready` over plain
    /// HTTP (which TLS or basic auth would refuse). Every listener is bound
    /// when this returns, so clients may connect at once.
    pub async fn launch(exporter_extra: &str, receiver_extra: &str, extra: &str) -> TestApp {
        TestApp::launch_with_top("", exporter_extra, receiver_extra, extra).await
    }

    async fn launch_with_top(
        top: &str,
        exporter_extra: &str,
        receiver_extra: &str,
        extra: &str,
    ) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("push.sock");
        // Tests reload and delete through HTTP unless they test the gates.
        let gates = if exporter_extra.contains("enable_") {
            ""
        } else {
            "enable_lifecycle = true\nenable_admin_api = true"
        };
        let toml = format!(
            r#"{top}
[exporter]
worker_threads = 2
scrape_expose_endpoint = "127.0.0.1:0"
shutdown_grace_period = "2s"
{gates}
{exporter_extra}
[receiver]
format = "auto"
receive_on_unix_socket = true
receiver_unix_socket = "{}"
receive_on_tcp_socket = true
receiver_tcp_socket = "127.0.0.1:0"
{receiver_extra}
[receiver.rpc]
receiver_tcp_socket = "127.0.0.1:0"
{extra}
"#,
            socket.display()
        );
        let config = Config::parse(&toml)
            .unwrap_or_else(|e| panic!("{e}"))
            .config;
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, &toml).unwrap();
        let bound = app::bind(&config)
            .await
            .unwrap()
            .with_config_path(config_path.clone());
        let http = bound.http_addr();
        let tcp = bound.receiver_addr("tcp").unwrap();
        let rpc = bound.rpc_addr().unwrap();
        let store = Arc::new(Store::new(config.store_options(), SelfMetrics::new()));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app::run_with_store(
            bound,
            config,
            store.clone(),
            shutdown.clone(),
        ));
        TestApp {
            http,
            tcp,
            rpc,
            socket,
            store,
            config_path,
            config_text: toml,
            shutdown,
            task: Some(task),
            _dir: dir,
        }
    }

    /// Writes a new config file and asks for a reload; returns the status
    /// and the answer.
    pub async fn reload_with(&self, toml: &str) -> (u16, String) {
        std::fs::write(&self.config_path, toml).unwrap();
        let r = request(self.http, "POST", "/-/reload", &[("Content-Length", "0")]).await;
        (r.status, r.body_string())
    }

    async fn wait_ready(&self) {
        eventually(|| async { get(self.http, "/-/ready").await.status == 200 }).await;
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(STEP, t)
                .await
                .expect("shutdown within the grace period")
                .unwrap()
                .unwrap();
        }
    }

    pub async fn metrics(&self) -> String {
        let r = get(self.http, "/metrics").await;
        assert_eq!(r.status, 200);
        r.body_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Retries `f` until it is true, for at most [`STEP`].
pub async fn eventually<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if f().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_string(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
}

/// A minimal HTTP/1.1 client (`Connection: close`, read to EOF).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    request_with_body(addr, method, path, headers, b"").await
}

/// [`request`] with a body (the caller sets `Content-Length`).
pub async fn request_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = tokio::time::timeout(STEP, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(STEP, s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        b = &b[nl + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[]).await
}

/// Sends raw bytes, half-closes, returns the server's reply line.
pub async fn send_tcp(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s.shutdown().await.unwrap();
    read_reply(&mut s).await
}

/// Same over a Unix socket.
pub async fn send_unix(path: &Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(path).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s.shutdown().await.unwrap();
    read_reply(&mut s).await
}

pub async fn read_reply<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut out = String::new();
    tokio::time::timeout(STEP, s.read_to_string(&mut out))
        .await
        .expect("reply in time")
        .unwrap();
    out
}

/// The reply line as JSON.
pub fn reply(line: &str) -> serde_json::Value {
    assert!(line.ends_with('\n'), "reply is one line: {line:?}");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("reply {line:?} is not JSON: {e}"))
}

/// A JSON push document for one app.
pub fn json_push(app: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ app: text })).unwrap()
}

pub fn capnp_push(app: &str, text: &str) -> Vec<u8> {
    exporter_proxy::ingest::codec::encode_capnp(app, text)
}

/// Matches one sample line in an exposition:
/// `metric("up").label("app", "a").value(1.0).is_in(&body)`.
pub fn metric(name: &str) -> Matcher {
    Matcher {
        name: name.to_owned(),
        labels: Vec::new(),
        value: None,
    }
}

pub struct Matcher {
    name: String,
    labels: Vec<(String, String)>,
    value: Option<String>,
}

impl Matcher {
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn value(mut self, v: &str) -> Self {
        self.value = Some(v.to_owned());
        self
    }

    fn matches(&self, line: &str) -> bool {
        if line.starts_with('#') {
            return false;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => return false,
        };
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        name == self.name
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
            && self.value.as_deref().is_none_or(|want| want == value)
    }

    /// Whether some line matches.
    pub fn is_in(&self, body: &str) -> bool {
        body.lines().any(|l| self.matches(l))
    }

    /// The value of the single matching line.
    pub fn get(&self, body: &str) -> Option<f64> {
        let found: Vec<&str> = body.lines().filter(|l| self.matches(l)).collect();
        assert!(
            found.len() <= 1,
            "{} matches several lines: {found:?}",
            self.name
        );
        found
            .first()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
    }
}

/// Asserts the body is a valid exposition as far as we can tell without
/// external tools: every family has one TYPE, its lines are contiguous.
pub fn assert_contiguous_families(body: &str) {
    let mut seen = std::collections::HashSet::new();
    let mut current = String::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert!(seen.insert(name.clone()), "second TYPE for {name}");
            current = name;
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                name.starts_with(&current),
                "sample {name} outside its family (current {current})"
            );
        }
    }
}

/// A loopback port that was free a moment ago (for child processes that
/// must be told their port; in-process servers bind port 0 instead).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
