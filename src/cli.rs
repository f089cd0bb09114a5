//! Client subcommands: `exporter-proxy push` and `exporter-proxy apps`.
//!
//! Sockets (Unix, TCP receivers) are plain blocking sockets with timeouts.
//! HTTP goes through reqwest (rustls), the client the proxy itself polls
//! with, on a one-thread runtime for the one request: so `https://`, a CA
//! file and basic auth work as they do for Prometheus scraping the proxy.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;
use crate::ingest::codec;
use crate::ingest::config::{Endpoint, WireFormat};
use crate::secret::SecretSource;

/// Connect, read and write timeout of the client commands.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest reply we read (replies are one line, tables a few KiB per app).
const MAX_REPLY: u64 = 64 * 1024 * 1024;

/// Where `push` sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Unix socket receiver.
    Unix(PathBuf),
    /// A TCP receiver.
    Tcp(String),
    /// The HTTP push API at this base URL (`http://host:port` or `https://`).
    Http(String),
}

impl Target {
    /// Parses `unix:/path`, `/path`, `tcp://host:port`, `host:port`,
    /// `http://host:port` or `https://host:port`.
    pub fn parse(s: &str) -> Result<Target, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            Ok(Target::Unix(PathBuf::from(p.trim_start_matches("//"))))
        } else if s.starts_with('/') || s.starts_with("./") {
            Ok(Target::Unix(PathBuf::from(s)))
        } else if let Some(a) = s.strip_prefix("tcp://") {
            Ok(Target::Tcp(a.to_owned()))
        } else if s.starts_with("http://") || s.starts_with("https://") {
            Ok(Target::Http(s.trim_end_matches('/').to_owned()))
        } else if s.contains(':') {
            Ok(Target::Tcp(s.to_owned()))
        } else {
            Err(format!(
                "cannot tell what {s:?} is: use unix:/path, tcp://host:port, http://host:port or https://host:port"
            ))
        }
    }

    /// The first receiver of a config: Unix socket first, then TCP.
    pub fn from_config(config: &Config) -> Option<(Target, WireFormat)> {
        let pick = |unix: bool| {
            config
                .receivers
                .iter()
                .find_map(|r| match (&r.endpoint, unix) {
                    (Endpoint::Unix(u), true) => Some((Target::Unix(u.path.clone()), r.format)),
                    (Endpoint::Tcp(a), false) => {
                        Some((Target::Tcp(loopback(*a).to_string()), r.format))
                    }
                    _ => None,
                })
        };
        pick(true).or_else(|| pick(false))
    }
}

/// A wildcard bind address is reached on loopback.
pub fn loopback(a: SocketAddr) -> SocketAddr {
    let mut a = a;
    if a.ip().is_unspecified() {
        a.set_ip(if a.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    a
}

/// Outcome of a push: the server's answer and whether it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// What the server said.
    pub answer: String,
    /// Whether the push was accepted.
    pub accepted: bool,
}

/// How the client subcommands reach the proxy's HTTP port.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpOptions {
    /// PEM CA bundle to verify an `https` proxy with (replaces the system roots).
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification.
    pub insecure: bool,
    /// Basic auth user name.
    pub user: Option<String>,
    /// Where the basic auth password is read from.
    pub password: Option<SecretSource>,
}

/// Pushes `text` as `app`. `format` applies to socket targets (`Auto` =
/// JSON); `http` to the HTTP push API.
pub fn push(
    target: &Target,
    format: WireFormat,
    app: &str,
    text: &str,
    http_options: &HttpOptions,
) -> Result<PushOutcome, String> {
    match target {
        Target::Http(base) => {
            let url = format!("{base}{}", job_path(app));
            let r = http(http_options, "PUT", &url, text.as_bytes().to_vec())?;
            let accepted = (200..300).contains(&r.0);
            let answer = if r.1.trim().is_empty() {
                format!("HTTP {}", r.0)
            } else {
                format!("HTTP {}: {}", r.0, r.1.trim_end())
            };
            Ok(PushOutcome { answer, accepted })
        }
        Target::Unix(path) => {
            let s = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
            s.set_read_timeout(Some(TIMEOUT))
                .map_err(|e| e.to_string())?;
            s.set_write_timeout(Some(TIMEOUT))
                .map_err(|e| e.to_string())?;
            exchange(s, format, app, text, |s| {
                s.shutdown(std::net::Shutdown::Write)
            })
        }
        Target::Tcp(addr) => {
            let a = resolve(addr)?;
            let s = TcpStream::connect_timeout(&a, TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
            s.set_read_timeout(Some(TIMEOUT))
                .map_err(|e| e.to_string())?;
            s.set_write_timeout(Some(TIMEOUT))
                .map_err(|e| e.to_string())?;
            exchange(s, format, app, text, |s| {
                s.shutdown(std::net::Shutdown::Write)
            })
        }
    }
}

/// The push path for `app`: `@base64` when the name is not plain.
fn job_path(app: &str) -> String {
    use base64::Engine;
    let plain = !app.is_empty()
        && app
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if plain {
        format!("/metrics/job/{app}")
    } else if app.is_empty() {
        "/metrics/job@base64/=".to_owned()
    } else {
        let b64 = base64::engine::general_purpose::URL_SAFE.encode(app.as_bytes());
        format!("/metrics/job@base64/{b64}")
    }
}

fn exchange<S: Read + Write>(
    mut s: S,
    format: WireFormat,
    app: &str,
    text: &str,
    half_close: impl FnOnce(&S) -> std::io::Result<()>,
) -> Result<PushOutcome, String> {
    let bytes = match format {
        WireFormat::Capnp => codec::encode_capnp(app, text),
        WireFormat::Json | WireFormat::Auto => {
            serde_json::to_vec(&serde_json::json!({ app: text })).expect("json")
        }
    };
    s.write_all(&bytes).map_err(|e| format!("sending: {e}"))?;
    half_close(&s).map_err(|e| format!("closing the write side: {e}"))?;
    let mut answer = String::new();
    s.take(MAX_REPLY)
        .read_to_string(&mut answer)
        .map_err(|e| format!("reading the reply: {e}"))?;
    let answer = answer.trim_end().to_owned();
    let accepted = serde_json::from_str::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v.get("ok").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    if answer.is_empty() {
        return Err("the server closed the connection without a reply".to_owned());
    }
    Ok(PushOutcome { answer, accepted })
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))
}

/// One HTTP(S) request through reqwest; returns the status and the body
/// (at most `MAX_REPLY` bytes). The error names the URL and the cause
/// chain, never the password.
pub fn http(
    options: &HttpOptions,
    method: &str,
    url: &str,
    body: Vec<u8>,
) -> Result<(u16, String), String> {
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("{method:?} is not an HTTP method"))?;
    let client = crate::outbound::build_client(&crate::outbound::ClientOptions {
        ca_file: options.ca_file.as_deref().map(|p| (p, "--ca-file")),
        insecure_skip_verify: options.insecure,
        timeout: Some(TIMEOUT),
        ..crate::outbound::ClientOptions::default()
    })?;
    let mut request = client
        .request(method, url)
        .header(
            reqwest::header::CONTENT_TYPE,
            crate::http::METRICS_CONTENT_TYPE,
        )
        .body(body);
    match (&options.user, &options.password) {
        (Some(user), Some(source)) => {
            let password = source.read()?;
            request = request.basic_auth(user, Some(password.expose()));
        }
        (Some(user), None) => request = request.basic_auth(user, None::<&str>),
        (None, Some(_)) => return Err("a password file without --user".to_owned()),
        (None, None) => {}
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(async {
        let mut resp = request
            .send()
            .await
            .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("{url}: reading: {}", error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_REPLY as usize {
                return Err(format!("{url}: the reply is larger than {MAX_REPLY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    })
}

/// An error and its causes, `: `-separated (reqwest's top-level message
/// alone rarely says what went wrong).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("unix:/run/x.sock"),
            Ok(Target::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            Target::parse("/run/x.sock"),
            Ok(Target::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            Target::parse("tcp://127.0.0.1:6554"),
            Ok(Target::Tcp("127.0.0.1:6554".into()))
        );
        assert_eq!(
            Target::parse("localhost:6554"),
            Ok(Target::Tcp("localhost:6554".into()))
        );
        assert_eq!(
            Target::parse("http://127.0.0.1:6555/"),
            Ok(Target::Http("http://127.0.0.1:6555".into()))
        );
        assert_eq!(
            Target::parse("https://proxy:6555/"),
            Ok(Target::Http("https://proxy:6555".into()))
        );
        assert!(Target::parse("nonsense").is_err());
    }

    #[test]
    fn job_paths() {
        assert_eq!(job_path("batch-1.a"), "/metrics/job/batch-1.a");
        assert_eq!(job_path("a/b"), "/metrics/job@base64/YS9i");
        assert_eq!(job_path(""), "/metrics/job@base64/=");
    }

    #[test]
    fn loopback_for_wildcards() {
        assert_eq!(
            loopback("0.0.0.0:1".parse().unwrap()).to_string(),
            "127.0.0.1:1"
        );
        assert_eq!(loopback("[::]:1".parse().unwrap()).to_string(), "[::1]:1");
        assert_eq!(
            loopback("10.0.0.1:1".parse().unwrap()).to_string(),
            "10.0.0.1:1"
        );
    }
}
