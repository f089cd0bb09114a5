//! Client subcommands: `exporter-proxy push` and `exporter-proxy apps`.
//!
//! Plain blocking sockets with timeouts: these run once and exit, so a
//! runtime would only add start-up cost.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;
use crate::ingest::codec;
use crate::ingest::config::{Endpoint, WireFormat};

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
    /// The HTTP push API at this base URL (`http://host:port`).
    Http(String),
}

impl Target {
    /// Parses `unix:/path`, `/path`, `tcp://host:port`, `host:port` or
    /// `http://host:port`.
    pub fn parse(s: &str) -> Result<Target, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            Ok(Target::Unix(PathBuf::from(p.trim_start_matches("//"))))
        } else if s.starts_with('/') || s.starts_with("./") {
            Ok(Target::Unix(PathBuf::from(s)))
        } else if let Some(a) = s.strip_prefix("tcp://") {
            Ok(Target::Tcp(a.to_owned()))
        } else if s.starts_with("http://") {
            Ok(Target::Http(s.trim_end_matches('/').to_owned()))
        } else if s.starts_with("https://") {
            Err("https is not supported by the push command; use http:// on loopback".to_owned())
        } else if s.contains(':') {
            Ok(Target::Tcp(s.to_owned()))
        } else {
            Err(format!(
                "cannot tell what {s:?} is: use unix:/path, tcp://host:port or http://host:port"
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

/// Pushes `text` as `app`. `format` applies to socket targets (`Auto` = JSON).
pub fn push(
    target: &Target,
    format: WireFormat,
    app: &str,
    text: &str,
) -> Result<PushOutcome, String> {
    match target {
        Target::Http(base) => {
            let path = job_path(app);
            let r = http(base, "PUT", &path, text.as_bytes())?;
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

/// A minimal HTTP/1.1 request (`Connection: close`); returns status and body.
pub fn http(base: &str, method: &str, path: &str, body: &[u8]) -> Result<(u16, String), String> {
    let hostport = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base}: expected an http:// URL"))?;
    let hostport = hostport.split('/').next().unwrap_or(hostport);
    let a = resolve(hostport)?;
    let mut s = TcpStream::connect_timeout(&a, TIMEOUT).map_err(|e| format!("{base}: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .map_err(|e| format!("{base}: sending: {e}"))?;
    let mut raw = Vec::new();
    s.take(MAX_REPLY)
        .read_to_end(&mut raw)
        .map_err(|e| format!("{base}: reading: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{base}: malformed HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{base}: malformed status line"))?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"))
    {
        body = dechunk(&body).ok_or_else(|| format!("{base}: malformed chunked body"))?;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..nl]).ok()?.trim(), 16).ok()?;
        b = b.get(nl + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
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
        assert!(Target::parse("https://x").is_err());
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
