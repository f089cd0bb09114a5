//! Minimal load clients: a keep-alive HTTP/1.1 client (Content-Length and
//! chunked bodies) and the proxy's one-push-per-connection stream client.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};

/// A response, without its body (which goes to the caller's buffer).
#[derive(Debug, Clone, Copy)]
pub struct Response {
    pub status: u16,
    pub gzip: bool,
    /// From sending the request to the first byte of the body being
    /// readable (the end of the headers for an empty body).
    pub first_byte: std::time::Duration,
}

/// One keep-alive HTTP/1.1 connection; reconnects after `Connection: close`.
pub struct HttpConn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
    line: String,
}

impl HttpConn {
    pub fn new(addr: SocketAddr) -> Self {
        HttpConn {
            addr,
            stream: None,
            line: String::new(),
        }
    }

    /// The request bytes of a GET, optionally accepting gzip.
    pub fn get(path: &str, gzip: bool) -> Vec<u8> {
        Self::get_as(path, gzip, None)
    }

    /// [`HttpConn::get`] with an `Accept` header.
    pub fn get_as(path: &str, gzip: bool, accept: Option<&str>) -> Vec<u8> {
        let enc = if gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        };
        let accept = accept.map_or_else(String::new, |a| format!("Accept: {a}\r\n"));
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{enc}{accept}\r\n").into_bytes()
    }

    /// The request bytes of a PUT with a text body.
    pub fn put(path: &str, body: &[u8]) -> Vec<u8> {
        let mut req = format!(
            "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        req
    }

    /// The request bytes of a DELETE without a body.
    pub fn delete(path: &str) -> Vec<u8> {
        format!("DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
            .into_bytes()
    }

    /// Sends `request` and reads the whole response; the body replaces the
    /// contents of `body` (whose capacity is reused).
    pub async fn send(&mut self, request: &[u8], body: &mut Vec<u8>) -> Result<Response> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("connecting to {}", self.addr))?;
            s.set_nodelay(true)?;
            self.stream = Some(BufReader::with_capacity(256 * 1024, s));
        }
        let result = self.exchange(request, body).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, request: &[u8], body: &mut Vec<u8>) -> Result<Response> {
        let s = self.stream.as_mut().expect("connected");
        let line = &mut self.line;
        let sent = std::time::Instant::now();
        s.get_mut().write_all(request).await?;
        read_line(s, line).await?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let (mut length, mut chunked, mut gzip, mut close) = (None, false, false, false);
        loop {
            read_line(s, line).await?;
            if line == "\r\n" {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                bail!("bad header line {line:?}");
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = Some(value.parse::<u64>()?),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "content-encoding" => gzip = value.eq_ignore_ascii_case("gzip"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        body.clear();
        if chunked || length.is_none_or(|n| n > 0) {
            // Wait for the first body byte without consuming it.
            s.fill_buf().await?;
        }
        let first_byte = sent.elapsed();
        if chunked {
            loop {
                read_line(s, line).await?;
                let size = line.trim().split(';').next().unwrap_or("");
                let size = u64::from_str_radix(size, 16)
                    .with_context(|| format!("bad chunk size {line:?}"))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    loop {
                        read_line(s, line).await?;
                        if line == "\r\n" {
                            break;
                        }
                    }
                    break;
                }
                read_n(s, size, body).await?;
                read_line(s, line).await?;
            }
        } else if let Some(n) = length {
            read_n(s, n, body).await?;
        } else {
            s.read_to_end(body).await?;
            close = true;
        }
        if close {
            self.stream = None;
        }
        Ok(Response {
            status,
            gzip,
            first_byte,
        })
    }
}

async fn read_line<R: AsyncBufReadExt + Unpin>(r: &mut R, line: &mut String) -> Result<()> {
    line.clear();
    if r.read_line(line).await? == 0 {
        bail!("connection closed by the server");
    }
    Ok(())
}

async fn read_n<R: AsyncRead + Unpin>(r: &mut R, n: u64, body: &mut Vec<u8>) -> Result<()> {
    // `take` + `read_to_end` appends without zero-filling the buffer first.
    let got = r.take(n).read_to_end(body).await?;
    if got as u64 != n {
        bail!("body ended after {got} of {n} bytes");
    }
    Ok(())
}

/// Where the proxy receives pushes.
#[derive(Debug, Clone)]
pub enum PushAddr {
    Unix(std::path::PathBuf),
    Tcp(SocketAddr),
}

/// Sends one framed push (JSON document or Cap'n Proto message) on a new
/// connection, half-closes, and checks the proxy's reply line.
pub async fn push_stream(addr: &PushAddr, payload: &[u8]) -> Result<()> {
    match addr {
        PushAddr::Unix(p) => push_on(connect_unix(p).await?, payload).await,
        PushAddr::Tcp(a) => {
            let s = TcpStream::connect(a).await?;
            s.set_nodelay(true)?;
            push_on(s, payload).await
        }
    }
}

async fn connect_unix(p: &Path) -> Result<UnixStream> {
    UnixStream::connect(p)
        .await
        .with_context(|| format!("connecting to {}", p.display()))
}

async fn push_on<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, payload: &[u8]) -> Result<()> {
    s.write_all(payload).await?;
    s.shutdown().await?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await?;
    if !reply.starts_with(b"{\"ok\":true") {
        bail!(
            "push refused: {}",
            String::from_utf8_lossy(&reply).trim_end()
        );
    }
    Ok(())
}
