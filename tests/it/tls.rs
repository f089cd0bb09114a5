//! TLS and basic auth of the HTTP port (`--web.config.file`), allowed
//! networks of the TCP receivers, the `healthcheck` subcommand, and a
//! Prometheus server from Debian scraping us over TLS with basic auth.
//!
//! Certificates are made in the test with rcgen: a server CA and a
//! server certificate for `localhost` and `127.0.0.1`, a client CA with a
//! client certificate, and a rogue CA with a client certificate of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::daemons::{enc, poll_until, prometheus};
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_exporter-proxy");

/// Certificates and keys in a temp dir.
pub(crate) struct Pki {
    pub(crate) dir: tempfile::TempDir,
    /// The server CA (what clients trust).
    pub(crate) ca: PathBuf,
    /// The client CA (what the server trusts for client certificates).
    client_ca: PathBuf,
    /// A client certificate and key signed by the client CA (PEM, both).
    client_identity: String,
    /// A client certificate and key signed by another CA.
    rogue_identity: String,
}

fn new_ca(name: &str) -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (cert, Issuer::new(params, key))
}

fn leaf(names: &[&str], issuer: &Issuer<'_, KeyPair>, client: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

pub(crate) fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (server_ca, server_issuer) = new_ca("test server CA");
    let (cert, key) = leaf(&["localhost", "127.0.0.1"], &server_issuer, false);
    write("server.crt", &cert);
    write("server.key", &key);
    let ca = write("ca.crt", &server_ca.pem());
    let (client_ca_cert, client_issuer) = new_ca("test client CA");
    let client_ca = write("client-ca.crt", &client_ca_cert.pem());
    let (c, k) = leaf(&["scraper"], &client_issuer, true);
    let (_, rogue_issuer) = new_ca("rogue CA");
    let (rc, rk) = leaf(&["scraper"], &rogue_issuer, true);
    Pki {
        ca,
        client_ca,
        client_identity: format!("{c}{k}"),
        rogue_identity: format!("{rc}{rk}"),
        dir,
    }
}

impl Pki {
    /// Writes `web.yml` with `text` and returns its path.
    pub(crate) fn web_config(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("web.yml");
        std::fs::write(&p, text).unwrap();
        p
    }
}

pub(crate) const TLS: &str =
    "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

/// A proxy with the web config `web`. Not waiting for `/-/ready`: the
/// listeners are bound, requests queue until the server runs.
pub(crate) async fn start_with_web(web: &Path, receiver_extra: &str) -> TestApp {
    TestApp::launch(
        &format!("web_config_file = \"{}\"", web.display()),
        receiver_extra,
        "",
    )
    .await
}

/// A client trusting only `ca`, presenting `identity` when given.
fn client(ca: &Path, identity: Option<&str>) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .timeout(STEP);
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// GET over https; `Err` with the error chain when the request fails.
async fn https_get(c: &reqwest::Client, url: &str) -> Result<(u16, String), String> {
    match c.get(url).send().await {
        Ok(r) => Ok((r.status().as_u16(), r.text().await.unwrap())),
        Err(e) => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(c) = src {
                s.push_str(&format!(": {c}"));
                src = c.source();
            }
            Err(s)
        }
    }
}

#[tokio::test]
async fn https_scrape_with_a_self_signed_ca() {
    let pki = pki();
    let app = start_with_web(&pki.web_config(TLS), "").await;
    send_tcp(app.tcp, &json_push("tls_app", "tls_app_value 42\n")).await;
    let c = client(&pki.ca, None);
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}/metrics", app.http.port());
        let (status, body) = https_get(&c, &url).await.unwrap();
        assert_eq!(status, 200);
        assert!(metric("tls_app_value").value("42").is_in(&body), "{body}");
    }
    // The push API works over TLS too.
    let put = c
        .put(format!(
            "https://127.0.0.1:{}/metrics/job/tls_job",
            app.http.port()
        ))
        .body("tls_job_value 1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    // A client that does not trust our CA refuses the server.
    let other = client(&pki.client_ca, None);
    let err = https_get(
        &other,
        &format!("https://127.0.0.1:{}/metrics", app.http.port()),
    )
    .await
    .unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut s = tokio::net::TcpStream::connect(app.http).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(STEP, s.read_to_end(&mut buf))
        .await
        .unwrap();
    assert!(!buf.starts_with(b"HTTP/1.1 200"), "{buf:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_handshake_does_not_block_other_clients() {
    let pki = pki();
    let app = start_with_web(&pki.web_config(TLS), "").await;
    // Connects and never says a word: its handshake waits in its own task.
    let _stalled = tokio::net::TcpStream::connect(app.http).await.unwrap();
    let c = client(&pki.ca, None);
    let (status, _) = https_get(
        &c,
        &format!("https://127.0.0.1:{}/-/ready", app.http.port()),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    // Shutdown is not held up by it either.
    app.stop().await;
}

#[tokio::test]
async fn client_certificates_required_and_verified() {
    let pki = pki();
    let web = pki.web_config(&format!(
        "{TLS}  client_ca_file: client-ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n"
    ));
    let app = start_with_web(&web, "").await;
    let url = format!("https://127.0.0.1:{}/metrics", app.http.port());
    let (status, _) = https_get(&client(&pki.ca, Some(&pki.client_identity)), &url)
        .await
        .unwrap();
    assert_eq!(status, 200, "a good client certificate is accepted");
    let err = https_get(&client(&pki.ca, None), &url).await.unwrap_err();
    assert!(err.contains("CertificateRequired"), "{err}");
    let err = https_get(&client(&pki.ca, Some(&pki.rogue_identity)), &url)
        .await
        .unwrap_err();
    assert!(err.contains("UnknownCA"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn client_certificates_verified_if_given() {
    let pki = pki();
    let web = pki.web_config(&format!(
        "{TLS}  client_ca_file: client-ca.crt\n  client_auth_type: VerifyClientCertIfGiven\n"
    ));
    let app = start_with_web(&web, "").await;
    let url = format!("https://127.0.0.1:{}/metrics", app.http.port());
    for id in [None, Some(pki.client_identity.as_str())] {
        let (status, _) = https_get(&client(&pki.ca, id), &url).await.unwrap();
        assert_eq!(status, 200);
    }
    let err = https_get(&client(&pki.ca, Some(&pki.rogue_identity)), &url)
        .await
        .unwrap_err();
    assert!(err.contains("UnknownCA"), "{err}");
    app.stop().await;
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn basic_auth_on_every_endpoint_but_healthy() {
    let pki = pki();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = pki.web_config(&format!("basic_auth_users:\n  prom: {hash}\n"));
    let app = start_with_web(&web, "").await;
    let good = basic("prom", "s3cret");
    let bad = basic("prom", "wrong");
    let unknown = basic("eve", "s3cret");

    for path in ["/metrics", "/apps", "/", "/-/ready", "/nope"] {
        let r = request(app.http, "GET", path, &[]).await;
        assert_eq!(r.status, 401, "{path} without credentials");
        let challenge = r.header("www-authenticate").unwrap_or("");
        assert!(challenge.starts_with("Basic"), "{path}: {challenge:?}");
        for wrong in [&bad, &unknown] {
            let r = request(app.http, "GET", path, &[("Authorization", wrong)]).await;
            assert_eq!(r.status, 401, "{path} with {wrong}");
        }
    }
    let r = request(app.http, "GET", "/metrics", &[("Authorization", &good)]).await;
    assert_eq!(r.status, 200);
    // Twice: the second answer comes from the verification cache.
    let r = request(app.http, "GET", "/metrics", &[("Authorization", &good)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(get(app.http, "/-/healthy").await.status, 200);

    // The push API needs credentials too; a refused push changes nothing.
    let body = b"auth_job_value 1\n";
    let len = body.len().to_string();
    let r = request_with_body(
        app.http,
        "PUT",
        "/metrics/job/auth_job",
        &[("Content-Length", &len), ("Authorization", &bad)],
        body,
    )
    .await;
    assert_eq!(r.status, 401);
    let r = request_with_body(
        app.http,
        "PUT",
        "/metrics/job/auth_job",
        &[("Content-Length", &len)],
        body,
    )
    .await;
    assert_eq!(r.status, 401);
    let r = request(app.http, "GET", "/metrics", &[("Authorization", &good)]).await;
    assert!(!r.body_string().contains("auth_job_value"));
    let r = request_with_body(
        app.http,
        "PUT",
        "/metrics/job/auth_job",
        &[("Content-Length", &len), ("Authorization", &good)],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_string());
    let r = request(app.http, "GET", "/metrics", &[("Authorization", &good)]).await;
    assert!(metric("auth_job_value")
        .label("job", "auth_job")
        .is_in(&r.body_string()));
    app.stop().await;
}

#[tokio::test]
async fn tcp_receivers_refuse_peers_outside_allowed_networks() {
    let app = TestApp::with("", "allowed_networks = [\"10.0.0.0/8\"]").await;
    let r = reply(&send_tcp(app.tcp, &json_push("outsider", "outsider_up 1\n")).await);
    assert_eq!(r["ok"], false);
    let err = r["error"].as_str().unwrap();
    assert!(
        err.contains("127.0.0.1") && err.contains("allowed_networks"),
        "{err}"
    );
    // The RPC listener closes the connection without a word.
    let mut s = tokio::net::TcpStream::connect(app.rpc).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(STEP, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    // The Unix socket is not subject to it.
    let r = reply(&send_unix(&app.socket, &json_push("local", "local_up 1\n")).await);
    assert_eq!(r["ok"], true);
    let body = app.metrics().await;
    assert!(!body.contains("outsider_up"));
    assert_eq!(
        metric("exporter_proxy_push_rejections_total")
            .label("reason", "network_not_allowed")
            .get(&body),
        Some(2.0)
    );
    app.stop().await;

    // Allowed peers push as usual.
    let app = TestApp::with("", "allowed_networks = [\"10.0.0.0/8\", \"127.0.0.0/8\"]").await;
    let r = reply(&send_tcp(app.tcp, &json_push("insider", "insider_up 1\n")).await);
    assert_eq!(r["ok"], true);
    app.stop().await;
}

/// `c.toml` in `dir`: the proxy's HTTP address and its web config `web`,
/// which the client subcommands read with `-c` for the URL and TLS.
pub(crate) fn client_config(dir: &Path, http: std::net::SocketAddr, web: &Path) -> PathBuf {
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[exporter]\nscrape_expose_endpoint = \"{http}\"\nweb_config_file = \"{}\"\n",
            web.display()
        ),
    )
    .unwrap();
    config
}

/// Runs the binary; returns (exit code, stdout, stderr).
pub(crate) async fn run_bin(args: Vec<String>) -> (i32, String, String) {
    let out = tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn healthcheck_subcommand() {
    let app = TestApp::start().await;
    let url = format!("http://{}/-/healthy", app.http);
    let (code, out, err) = run_bin(vec!["healthcheck".into(), "--url".into(), url]).await;
    assert_eq!(code, 0, "{out}{err}");
    let closed = crate::support::free_port();
    let (code, _, err) = run_bin(vec![
        "healthcheck".into(),
        "--url".into(),
        format!("http://127.0.0.1:{closed}/-/healthy"),
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("unhealthy"), "{err}");
    let (code, _, _) = run_bin(vec![
        "healthcheck".into(),
        "--url".into(),
        format!("http://{}/nope", app.http),
    ])
    .await;
    assert_eq!(code, 1, "404 is unhealthy");
    app.stop().await;

    // Over TLS with basic auth: /-/healthy needs no credentials.
    let pki = pki();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let web = pki.web_config(&format!("{TLS}basic_auth_users:\n  prom: {hash}\n"));
    let app = start_with_web(&web, "").await;
    let url = format!("https://127.0.0.1:{}/-/healthy", app.http.port());
    let ca = pki.ca.display().to_string();
    let (code, out, err) = run_bin(vec![
        "healthcheck".into(),
        "--url".into(),
        url.clone(),
        "--ca-file".into(),
        ca,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run_bin(vec!["healthcheck".into(), "--url".into(), url]).await;
    assert_eq!(code, 1, "unknown CA without --ca-file: {err}");
    // Derived from the config: https, certificate not verified.
    let config = client_config(pki.dir.path(), app.http, &web);
    let (code, out, err) = run_bin(vec![
        "-c".into(),
        config.display().to_string(),
        "healthcheck".into(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("https://"), "{out}");
    app.stop().await;
}

#[tokio::test]
async fn bad_web_config_exits_64_naming_the_problems() {
    let pki = pki();
    let web = pki.web_config("tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\nbasic_auth_users:\n  prom: plaintext-password\n");
    let config = pki.dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[exporter]\nscrape_expose_endpoint = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    for args in [
        vec!["check-config"],
        vec!["run"],
        // The environment variable stands for the flag.
        vec![],
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(["-c", config.to_str().unwrap()]);
        if args.is_empty() {
            cmd.env("EXPORTER_PROXY_WEB_CONFIG_FILE", &web);
        } else {
            cmd.args(["--web.config.file", web.to_str().unwrap()]);
            cmd.args(&args);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(
            err.contains("missing.crt") && err.contains("basic_auth_users.prom"),
            "{err}"
        );
        assert!(!err.contains("plaintext-password"), "{err}");
    }
}

#[tokio::test]
async fn prometheus_scrapes_us_over_tls_with_basic_auth() {
    let pki = pki();
    let hash = bcrypt::hash("scrape-pw", 10).unwrap();
    let web = pki.web_config(&format!("{TLS}basic_auth_users:\n  prometheus: {hash}\n"));
    let app = start_with_web(&web, "").await;
    send_tcp(
        app.tcp,
        &json_push("scraped", "# TYPE scraped_value gauge\nscraped_value 42\n"),
    )
    .await;
    let target = format!("127.0.0.1:{}", app.http.port());
    let ca = pki.ca.display().to_string();
    let config = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: proxy_tls
    scheme: https
    tls_config:
      ca_file: {ca}
    basic_auth:
      username: prometheus
      password: scrape-pw
    static_configs:
      - targets: ["{target}"]
  - job_name: proxy_wrong_password
    scheme: https
    tls_config:
      ca_file: {ca}
    basic_auth:
      username: prometheus
      password: not-it
    static_configs:
      - targets: ["{target}"]
"#
    );
    let prom = prometheus(&config, &[]).await;
    let query = |q: &'static str| {
        let addr = prom.addr;
        async move {
            let r = get(addr, &format!("/api/v1/query?query={}", enc(q))).await;
            let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
            let first = v["data"]["result"].as_array()?.first()?.clone();
            first["value"][1].as_str().map(str::to_owned)
        }
    };
    let up = poll_until("up{job=\"proxy_tls\"} == 1", || async {
        query("up{job=\"proxy_tls\"}").await.filter(|v| v == "1")
    })
    .await;
    assert_eq!(up, "1");
    let value = poll_until("scraped_value", || {
        query("scraped_value{job=\"proxy_tls\"}")
    })
    .await;
    assert_eq!(value, "42");
    let wrong = poll_until("up{job=\"proxy_wrong_password\"}", || {
        query("up{job=\"proxy_wrong_password\"}")
    })
    .await;
    assert_eq!(wrong, "0", "a wrong password is refused");
    app.stop().await;
}

#[tokio::test]
async fn a_request_in_flight_over_tls_finishes_during_shutdown() {
    use std::sync::Arc;
    use tokio::io::AsyncWriteExt;
    let pki = pki();
    let app = start_with_web(&pki.web_config(TLS), "").await;
    let addr = app.http;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::pem::PemObject::pem_file_iter(&pki.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    // A push whose handler is running: with `Expect: 100-continue`, the
    // server answers `100 Continue` when the handler starts reading the body.
    let body = "inflight_value 1\n";
    tls.write_all(
        format!(
            "PUT /metrics/job/inflight HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tls.flush().await.unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tokio::time::timeout(STEP, tls.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        interim.push(b[0]);
    }
    assert!(interim.starts_with(b"HTTP/1.1 100"), "{interim:?}");
    let store = app.store.clone();
    let stopping = tokio::spawn(app.stop());
    // Shutdown has begun once new connections are refused.
    eventually(|| async { tokio::net::TcpStream::connect(addr).await.is_err() }).await;
    tls.write_all(body.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(STEP, tls.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    stopping.await.unwrap();
    assert!(store.apps().iter().any(|a| a.name.contains("inflight")));
}

/// An HTTPS exporter on loopback: `/metrics` behind basic auth `poller:secret`.
async fn https_exporter(pki: &Pki) -> (std::net::SocketAddr, CancellationToken) {
    use axum::http::{header::AUTHORIZATION, HeaderMap, StatusCode};
    let web = exporter_proxy::http::web::WebConfig::load(&pki.web_config(TLS)).unwrap();
    let tls = web.tls.expect("tls configured").server_config.clone();
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|headers: HeaderMap| async move {
            let want = basic("poller", "secret");
            match headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
                Some(got) if got == want => {
                    (StatusCode::OK, "# TYPE remote_up gauge\nremote_up 1\n")
                }
                _ => (StatusCode::UNAUTHORIZED, "who are you?\n"),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(exporter_proxy::http::serve::serve(
        listener,
        router,
        Some(tls),
        Default::default(),
        stop.clone(),
    ));
    (addr, stop)
}

#[tokio::test]
async fn poll_targets_over_tls_with_a_ca_file_and_basic_auth() {
    let pki = pki();
    let (exporter, stop) = https_exporter(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "secret\n").unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "guess\n").unwrap();
    let url = format!("https://127.0.0.1:{}/metrics", exporter.port());
    let target = |name: &str, rest: &str| {
        format!("[[poll.targets]]\nname = \"{name}\"\nurl = \"{url}\"\ninterval = \"1h\"\ntimeout = \"5s\"\nlabels = {{ via = \"{name}\" }}\n{rest}\n")
    };
    let ca = pki.ca.display();
    let auth = |file: &Path| {
        format!(
            "basic_auth = {{ username = \"poller\", password_file = \"{}\" }}",
            file.display()
        )
    };
    let config = [
        target(
            "good",
            &format!("tls = {{ ca_file = \"{ca}\" }}\n{}", auth(&password)),
        ),
        target(
            "skip_verify",
            &format!(
                "tls = {{ insecure_skip_verify = true }}\n{}",
                auth(&password)
            ),
        ),
        target("unknown_ca", &auth(&password)),
        target(
            "wrong_password",
            &format!("tls = {{ ca_file = \"{ca}\" }}\n{}", auth(&wrong)),
        ),
        target(
            "missing_secret",
            &format!(
                "tls = {{ ca_file = \"{ca}\" }}\n{}",
                auth(&dir.path().join("nope"))
            ),
        ),
    ]
    .concat();
    let app = TestApp::with_config(&config).await;
    let up = |m: &str, t: &str| metric("exporter_proxy_target_up").label("target", t).get(m);
    eventually(|| async {
        let m = app.metrics().await;
        [
            "good",
            "skip_verify",
            "unknown_ca",
            "wrong_password",
            "missing_secret",
        ]
        .iter()
        .all(|t| up(&m, t).is_some())
    })
    .await;
    let m = app.metrics().await;
    assert_eq!(up(&m, "good"), Some(1.0), "{m}");
    assert!(
        metric("remote_up")
            .label("via", "good")
            .value("1")
            .is_in(&m),
        "{m}"
    );
    assert_eq!(up(&m, "skip_verify"), Some(1.0));
    assert_eq!(
        up(&m, "unknown_ca"),
        Some(0.0),
        "verification is on by default"
    );
    assert_eq!(up(&m, "wrong_password"), Some(0.0));
    assert_eq!(up(&m, "missing_secret"), Some(0.0));
    let failures = |t: &str, reason: &str| {
        metric("exporter_proxy_target_poll_failures_total")
            .label("target", t)
            .label("reason", reason)
            .get(&m)
    };
    assert_eq!(failures("wrong_password", "http_status"), Some(1.0), "{m}");
    assert_eq!(failures("missing_secret", "credentials"), Some(1.0), "{m}");
    let apps = get(app.http, "/apps?format=json").await.body_string();
    assert!(!apps.contains("guess"), "no password in /apps: {apps}");
    stop.cancel();
    app.stop().await;
}

/// The outbound layer's clients present a client certificate (mutual TLS)
/// from one PEM file holding the certificate and its key, and trust only
/// the CA file they are given.
#[tokio::test]
async fn outbound_clients_present_a_client_certificate() {
    use exporter_proxy::outbound::{build_client, ClientOptions};
    let pki = pki();
    let web = pki.web_config(&format!(
        "{TLS}  client_ca_file: client-ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n"
    ));
    let app = start_with_web(&web, "").await;
    let url = format!("https://127.0.0.1:{}/metrics", app.http.port());
    let identity = pki.dir.path().join("client-identity.pem");
    std::fs::write(&identity, &pki.client_identity).unwrap();
    let with_cert = build_client(&ClientOptions {
        ca_file: Some((&pki.ca, "tls.ca_file")),
        client_cert: Some((&identity, "tls.cert_file")),
        timeout: Some(STEP),
        ..ClientOptions::default()
    })
    .unwrap();
    let (status, _) = https_get(&with_cert, &url).await.unwrap();
    assert_eq!(status, 200, "the client certificate is presented");
    let without = build_client(&ClientOptions {
        ca_file: Some((&pki.ca, "tls.ca_file")),
        timeout: Some(STEP),
        ..ClientOptions::default()
    })
    .unwrap();
    let err = https_get(&without, &url).await.unwrap_err();
    assert!(err.contains("CertificateRequired"), "{err}");
    // A file that holds no identity is refused at build time, naming its key.
    let bad = pki.dir.path().join("not-an-identity.pem");
    std::fs::write(&bad, "nothing\n").unwrap();
    let err = build_client(&ClientOptions {
        client_cert: Some((&bad, "tls.cert_file")),
        ..ClientOptions::default()
    })
    .unwrap_err();
    assert!(
        err.contains("`tls.cert_file`") && err.contains("not-an-identity.pem"),
        "{err}"
    );
    app.stop().await;
}
