//! The HTTP(S) server: an accept loop over a bound listener that hands each
//! connection to its own task, where the TLS handshake (when configured)
//! runs with a timeout, then hyper serves the axum router over HTTP/1.1.
//!
//! The accept loop never waits for a client: a client that opens a
//! connection and sends nothing (or handshakes slowly) holds only its own
//! task, for at most [`HANDSHAKE_TIMEOUT`] (TLS) or the header read timeout
//! (`limits.read_timeout`, which also closes idle keep-alive connections).
//! At most `max_connections` connections are open at once: one over the
//! cap gets `503` with the reason and is closed, so idle connections cannot
//! exhaust the descriptors. Bodies are read by the handlers within their
//! own time limits.
//!
//! Shutdown: on cancellation the listener is closed, handshakes in progress
//! are dropped, and connections finish the request in flight (idle
//! keep-alive connections close at once); [`serve`] returns when all are
//! done. The caller bounds that wait with its grace period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Time a client gets to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client gets to send a request head (also bounds idle keep-alive
/// connections waiting for their next request), unless configured.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time given to write the `503` of a connection over the cap.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// The bounds of the HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time to receive a request head; idle keep-alive connections close
    /// after it too.
    pub header_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: super::gates::DEFAULT_MAX_HTTP_CONNECTIONS,
            header_timeout: HEADER_READ_TIMEOUT,
        }
    }
}
/// Pause after a failed `accept()` (e.g. EMFILE) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown`, over TLS when `tls` is
/// set, then waits for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ServeLimits,
    shutdown: CancellationToken,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "http accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(%peer, limit = limits.max_connections, "http connection refused: too many connections");
            if acceptor.is_none() {
                tokio::spawn(refuse(stream, limits.max_connections));
            }
            continue;
        };
        let conn = connection(
            stream,
            peer,
            router.clone(),
            acceptor.clone(),
            graceful.watcher(),
            shutdown.clone(),
            limits.header_timeout,
        );
        tokio::spawn(async move {
            conn.await;
            drop(permit);
        });
    }
    drop(listener);
    // Waits until every watched connection and every watcher held by a
    // handshake task is gone.
    graceful.shutdown().await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    acceptor: Option<TlsAcceptor>,
    watcher: Watcher,
    shutdown: CancellationToken,
    header_timeout: Duration,
) {
    match acceptor {
        None => http(TokioIo::new(stream), peer, router, watcher, header_timeout).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
            };
            match handshake {
                Ok(Ok(tls)) => http(TokioIo::new(tls), peer, router, watcher, header_timeout).await,
                Ok(Err(e)) => debug!(%peer, error = %e, "tls handshake failed"),
                Err(_) => debug!(%peer, "tls handshake timed out"),
            }
        }
    }
}

async fn http<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    router: Router,
    watcher: Watcher,
    header_timeout: Duration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // What `into_make_service_with_connect_info` would provide: the
        // push API records the peer as the source.
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move {
            std::future::poll_fn(|cx| {
                tower_service::Service::<hyper::Request<Incoming>>::poll_ready(&mut router, cx)
            })
            .await?;
            tower_service::Service::call(&mut router, req).await
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(io, service);
    if let Err(e) = watcher.watch(conn).await {
        debug!(%peer, error = %e, "http connection ended with an error");
    }
}

/// Answers a connection over the cap with `503` and closes it (plain HTTP:
/// over TLS the client sees a closed connection, which it retries too).
async fn refuse(mut stream: TcpStream, limit: usize) {
    let body = format!(
        "too many HTTP connections (exporter.max_http_connections = {limit}); retry later\n"
    );
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
        // Read what the client sent so that closing does not reset the
        // connection before it read the reply (bounded by the timeout).
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
