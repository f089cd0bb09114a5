//! Push receivers: Unix and TCP stream listeners sharing one accept loop,
//! and the optional Cap'n Proto RPC listener.
//!
//! A connection is handled by [`handle_connection`], generic over
//! `AsyncRead + AsyncWrite` so tests can drive it with `tokio::io::duplex`.
//! After the stream is processed the server answers with one line of JSON
//! (`{"ok":true,...}` or `{"ok":false,"error":"..."}`) and closes; a client
//! that has already gone away is unaffected.
//!
//! Every read is bounded: bytes per push, a total read timeout, an idle
//! timeout between reads, a per-listener connection limit, and one budget
//! of bytes held by all pushes in progress ([`budget`]).
//!
//! A connection over the limit waits for a slot (at most
//! `limits.max_queued_connections` of them, each for at most
//! `limits.read_timeout`) before a clear refusal: a burst of clients, such
//! as cron jobs starting on the same minute, is queued, not refused.
//!
//! A Cap'n Proto connection may stay open between messages for
//! `limits.stream_idle_timeout` (default 10 minutes, or never); each
//! message is bounded by the read and idle timeouts from its first byte.

pub mod backlog;
pub mod budget;
pub mod codec;
pub mod config;
pub mod rpc;
pub mod rpc_io;
pub mod unix;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn, Instrument};

use crate::netacl::AllowedNetworks;
use crate::store::{AppKind, PushError, Store};
use crate::telemetry::RejectReason;
use codec::AppPush;
use config::{Limits, WireFormat};

/// How long we try to deliver a refusal to a client over the connection
/// limit before dropping it: short, as such clients are the overload.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed `accept()` (e.g. EMFILE) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Time allowed to write the one-line reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound stream listener: TCP or Unix.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix socket at a path.
    Unix(UnixListener, std::path::PathBuf),
}

/// An accepted connection.
#[derive(Debug)]
pub enum Conn {
    /// TCP.
    Tcp(TcpStream),
    /// Unix socket.
    Unix(UnixStream),
}

impl Listener {
    /// Accepts one connection and describes its peer: the peer address for
    /// TCP, the socket path plus peer uid/pid (`SO_PEERCRED`) for Unix.
    pub async fn accept(&self) -> io::Result<(Conn, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Conn::Tcp(s), peer.to_string()))
            }
            Listener::Unix(l, path) => {
                let (s, _) = l.accept().await?;
                let who = match s.peer_cred() {
                    Ok(c) => match c.pid() {
                        Some(pid) => format!("{} (uid={} pid={pid})", path.display(), c.uid()),
                        None => format!("{} (uid={})", path.display(), c.uid()),
                    },
                    Err(_) => path.display().to_string(),
                };
                Ok((Conn::Unix(s), who))
            }
        }
    }

    /// The address, for logs.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp".to_owned(), |a| format!("tcp://{a}")),
            Listener::Unix(_, p) => format!("unix://{}", p.display()),
        }
    }

    /// The TCP address, when this is a TCP listener.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }
}

/// What every connection handler needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Listener name, for logs and labels.
    pub listener: Arc<str>,
    /// Accepted format.
    pub format: WireFormat,
    /// The store.
    pub store: Arc<Store>,
    /// Limits.
    pub limits: Limits,
    /// Cancelled when the shutdown grace period is over: in-flight reads
    /// stop then (not at the start of the shutdown, so pushes in progress
    /// can finish).
    pub abort: CancellationToken,
    /// TTL of pushes through this listener that do not set one
    /// (`None`: the store's default).
    pub ttl: Option<crate::store::Ttl>,
    /// Networks TCP peers must belong to (`receiver.allowed_networks`);
    /// `None` allows any peer. Unix sockets are governed by their mode.
    pub allowed_networks: Option<Arc<AllowedNetworks>>,
    /// The bytes budget shared by every listener.
    pub budget: budget::ByteBudget,
    /// Cancelled when the listener stops (shutdown or reload): streams
    /// waiting between two messages close then; pushes in progress go on.
    pub stop: CancellationToken,
}

/// The reply line sent after a connection's data was processed.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Reply {
    /// Whether every push on the connection was accepted.
    pub ok: bool,
    /// Apps whose push was applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accepted: Vec<String>,
    /// Series applied in total.
    pub series: usize,
    /// The first error, when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every error, when more than one push failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Reply {
    fn fail(&mut self, msg: String) {
        self.ok = false;
        if self.error.is_none() {
            self.error = Some(msg.clone());
        }
        self.errors.push(msg);
    }

    fn line(&self) -> Vec<u8> {
        let mut r = self.clone();
        if r.errors.len() < 2 {
            r.errors.clear();
        }
        let mut v = serde_json::to_vec(&r).expect("reply serialises");
        v.push(b'\n');
        v
    }
}

/// Runs the accept loop of one listener until `shutdown`, then returns the
/// listener (connections in progress go on, tracked by `tracker`).
pub async fn serve(
    listener: Listener,
    ctx: Ctx,
    max_connections: usize,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) -> Listener {
    let permits = Arc::new(Semaphore::new(max_connections));
    let queue = Arc::new(Semaphore::new(ctx.limits.max_queued_connections));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (conn, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                warn!(listener = %ctx.listener, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let span = tracing::info_span!("conn", listener = %ctx.listener, peer = %peer);
        if let (Conn::Tcp(s), Some(allowed)) = (&conn, &ctx.allowed_networks) {
            if !s.peer_addr().is_ok_and(|a| allowed.allows(a.ip())) {
                ctx.store
                    .self_metrics()
                    .count_rejection(RejectReason::NetworkNotAllowed);
                warn!(parent: &span, "connection refused: peer outside receiver.allowed_networks");
                let msg = format!(
                    "connections from {peer} are not allowed on this listener (receiver.allowed_networks)"
                );
                tracker.spawn(refuse(conn, msg).instrument(span));
                continue;
            }
        }
        let slot = match permits.clone().try_acquire_owned() {
            Ok(p) => Slot::Now(p),
            Err(_) => match queue.clone().try_acquire_owned() {
                Ok(q) => Slot::Queued(q),
                Err(_) => {
                    ctx.store
                        .self_metrics()
                        .count_rejection(RejectReason::TooManyConnections);
                    warn!(parent: &span, limit = max_connections, "connection refused: too many connections, queue full");
                    let msg = format!(
                        "too many connections on this listener (limit {max_connections}, {} more waiting); retry later",
                        ctx.limits.max_queued_connections
                    );
                    tracker.spawn(refuse(conn, msg).instrument(span));
                    continue;
                }
            },
        };
        let ctx = ctx.clone();
        let permits = permits.clone();
        tracker.spawn(
            async move {
                let Some(permit) = slot.wait(&permits, &ctx, max_connections).await else {
                    let msg = format!(
                        "too many connections on this listener (limit {max_connections}): no slot within {:?} (limits.read_timeout); retry later",
                        ctx.limits.read_timeout
                    );
                    refuse(conn, msg).await;
                    return;
                };
                ctx.store.self_metrics().connection(&ctx.listener, 1);
                match conn {
                    Conn::Tcp(s) => handle_connection(s, &ctx, &peer).await,
                    Conn::Unix(s) => handle_connection(s, &ctx, &peer).await,
                };
                ctx.store.self_metrics().connection(&ctx.listener, -1);
                drop(permit);
            }
            .instrument(span),
        );
    }
    // Handed back so that a reload can keep the bound socket.
    listener
}

/// A connection's claim on the listener's concurrency.
enum Slot {
    /// A slot was free.
    Now(tokio::sync::OwnedSemaphorePermit),
    /// A place in the queue, waiting for a slot.
    Queued(tokio::sync::OwnedSemaphorePermit),
}

impl Slot {
    /// The slot, after waiting for one for at most the read timeout; `None`
    /// (counted, logged) when none came or the listener stopped.
    async fn wait(
        self,
        permits: &Arc<Semaphore>,
        ctx: &Ctx,
        limit: usize,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let queued = match self {
            Slot::Now(p) => return Some(p),
            Slot::Queued(q) => q,
        };
        let got = tokio::select! {
            r = tokio::time::timeout(ctx.limits.read_timeout, permits.clone().acquire_owned()) => r.ok().and_then(Result::ok),
            _ = ctx.stop.cancelled() => None,
        };
        drop(queued);
        if got.is_none() {
            ctx.store
                .self_metrics()
                .count_rejection(RejectReason::TooManyConnections);
            warn!(limit, "connection refused: no slot within the read timeout");
        }
        got
    }
}

/// Refuses a connection before reading it: the reply line, a half-close,
/// then what the client sent is drained briefly (see [`finish`]): such
/// clients are the overload, so the bounds are small.
async fn refuse(conn: Conn, msg: String) {
    let reply = Reply {
        ok: false,
        error: Some(msg),
        ..Reply::default()
    }
    .line();
    let (t, bytes) = (REFUSAL_WRITE_TIMEOUT, REFUSAL_DRAIN_BYTES);
    let _ = tokio::time::timeout(t, async {
        match conn {
            Conn::Tcp(mut s) => {
                let _ = s.write_all(&reply).await;
                let _ = s.shutdown().await;
                drain(&mut s, bytes, t, t).await;
            }
            Conn::Unix(mut s) => {
                let _ = s.write_all(&reply).await;
                let _ = s.shutdown().await;
                drain(&mut s, bytes, t, t).await;
            }
        }
    })
    .await;
}

/// Bytes a refused push may still send and get its reply, at least (more
/// with a larger `max_push_bytes`): reading them costs no memory.
const DRAIN_MIN_BYTES: usize = 16 << 20;

/// Most bytes read and discarded from a client refused before its push was
/// read: a push written whole before the refusal is in the socket buffers.
const REFUSAL_DRAIN_BYTES: usize = 1 << 20;

/// Reads and discards input until EOF, at most `bytes` of it, within
/// `within`, each read within `idle`; `true` when the client finished.
async fn drain<S: AsyncRead + Unpin>(
    s: &mut S,
    bytes: usize,
    within: Duration,
    idle: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 8192];
    let mut left = bytes;
    loop {
        let read_by = (Instant::now() + idle).min(deadline);
        match tokio::time::timeout_at(read_by, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) if n < left => left -= n,
            Ok(Ok(_)) | Err(_) => return false,
        }
    }
}

/// Why reading stopped early.
enum ReadFail {
    Timeout(&'static str),
    TooLarge(usize),
    Io(io::Error),
    Shutdown,
}

/// Reads with both the total deadline and the idle timeout applied.
struct Reader<'a, S> {
    stream: &'a mut S,
    deadline: Instant,
    idle: Duration,
    abort: &'a CancellationToken,
    /// Bytes consumed so far on this connection, for error offsets.
    offset: usize,
    /// The client finished sending (EOF) or the stream ended cleanly
    /// between two messages: nothing is left to drain before closing.
    done: bool,
}

/// One read of a connection, bounded by the idle and whole-read deadlines
/// and cancelled when the listener stops.
async fn bounded(
    idle_deadline: Instant,
    deadline: Instant,
    abort: &CancellationToken,
    read: impl std::future::Future<Output = io::Result<usize>>,
) -> Result<usize, ReadFail> {
    tokio::select! {
        r = tokio::time::timeout_at(idle_deadline, read) => match r {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(ReadFail::Io(e)),
            Err(_) if Instant::now() >= deadline => Err(ReadFail::Timeout("read timeout")),
            Err(_) => Err(ReadFail::Timeout("idle timeout")),
        },
        _ = abort.cancelled() => Err(ReadFail::Shutdown),
    }
}

impl<S: AsyncRead + Unpin> Reader<'_, S> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadFail> {
        let idle_deadline = (Instant::now() + self.idle).min(self.deadline);
        let n = bounded(
            idle_deadline,
            self.deadline,
            self.abort,
            self.stream.read(buf),
        )
        .await?;
        Ok(self.consumed(n))
    }

    /// [`Reader::read`] into the spare capacity of `buf` (which must have
    /// some), appending without zero-filling or copying through another
    /// buffer.
    async fn read_spare(&mut self, buf: &mut Vec<u8>) -> Result<usize, ReadFail> {
        debug_assert!(buf.capacity() > buf.len(), "no room to read into");
        let idle_deadline = (Instant::now() + self.idle).min(self.deadline);
        let n = bounded(
            idle_deadline,
            self.deadline,
            self.abort,
            self.stream.read_buf(buf),
        )
        .await?;
        Ok(self.consumed(n))
    }

    /// Counts `n` bytes read (0: the client finished sending).
    fn consumed(&mut self, n: usize) -> usize {
        self.offset += n;
        self.done = n == 0;
        n
    }

    /// Waits for the first bytes of the next message of a stream, for at
    /// most `bound` (`None`: forever), then starts that message's read
    /// deadline. `Ok(0)` ends the stream cleanly: EOF, the bound passed
    /// (the stream was idle), or the listener stopped.
    async fn read_next_message(
        &mut self,
        buf: &mut [u8],
        bound: Option<Duration>,
        read_timeout: Duration,
        stop: &CancellationToken,
    ) -> Result<usize, ReadFail> {
        let idle = async {
            match bound {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let n = tokio::select! {
            r = self.stream.read(buf) => r.map_err(ReadFail::Io)?,
            _ = idle => {
                debug!(offset = self.offset, "stream closed after limits.stream_idle_timeout without a new message");
                0
            }
            _ = stop.cancelled() => 0,
            _ = self.abort.cancelled() => 0,
        };
        self.done = n == 0;
        if n == 0 {
            return Ok(0);
        }
        self.offset += n;
        self.deadline = Instant::now() + read_timeout;
        Ok(n)
    }

    /// How long a push may wait for the bytes budget: as long as it may
    /// stay silent, within its read deadline.
    fn budget_deadline(&self, ctx: &Ctx) -> Instant {
        (Instant::now() + ctx.limits.idle_timeout).min(self.deadline)
    }

    /// Fills `buf` completely; `Ok(false)` on EOF before the first byte.
    async fn read_exact_or_eof(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ReadFail> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = self.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Ok(if filled == 0 { None } else { Some(filled) });
            }
            filled += n;
        }
        Ok(Some(filled))
    }
}

/// Processes one push connection and writes the reply line.
pub async fn handle_connection<S>(mut stream: S, ctx: &Ctx, peer: &str) -> Reply
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut reader = Reader {
        stream: &mut stream,
        deadline: Instant::now() + ctx.limits.read_timeout,
        idle: ctx.limits.idle_timeout,
        abort: &ctx.abort,
        offset: 0,
        done: false,
    };
    let mut reply = Reply {
        ok: true,
        ..Reply::default()
    };
    // Peek the first chunk to detect the format.
    let mut first = vec![0u8; 4];
    let got = match reader.read_exact_or_eof(&mut first).await {
        Ok(None) => {
            debug!("empty connection");
            return finish(stream, reply, ctx, true).await;
        }
        Ok(Some(n)) => n,
        Err(f) => {
            read_failed(ctx, &mut reply, f, 0);
            let done = reader.done;
            return finish(stream, reply, ctx, done).await;
        }
    };
    first.truncate(got);
    let format = match ctx.format {
        WireFormat::Auto if codec::looks_like_json(&first) => WireFormat::Json,
        WireFormat::Auto => WireFormat::Capnp,
        f => f,
    };
    match format {
        WireFormat::Json => json_connection(&mut reader, first, ctx, peer, &mut reply).await,
        _ => capnp_connection(&mut reader, first, ctx, peer, &mut reply).await,
    }
    let done = reader.done;
    finish(stream, reply, ctx, done).await
}

/// Ends a connection: writes the reply line and half-closes; then, unless
/// the client has finished sending, reads and discards the rest of its
/// input (at most `max_push_bytes` or 16 MiB, within `read_timeout`, each read within
/// `idle_timeout`). Linux answers a close with unread bytes in the receive
/// buffer with a reset instead of a FIN, and the client, still sending its
/// refused push, would see `connection reset` and often lose the reply.
async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    reply: Reply,
    ctx: &Ctx,
    input_done: bool,
) -> Reply {
    let line = reply.line();
    let _ = tokio::time::timeout(REPLY_TIMEOUT, async {
        // The client may have closed already: that is fine.
        let _ = stream.write_all(&line).await;
        let _ = stream.shutdown().await;
    })
    .await;
    if !input_done {
        let lim = &ctx.limits;
        let drained = tokio::select! {
            d = drain(&mut stream, lim.max_push_bytes.max(DRAIN_MIN_BYTES), lim.read_timeout, lim.idle_timeout) => d,
            _ = ctx.abort.cancelled() => false,
        };
        if !drained {
            debug!("closing with the client still sending: it may see a reset");
        }
    }
    reply
}

fn read_failed(ctx: &Ctx, reply: &mut Reply, f: ReadFail, offset: usize) {
    let (reason, msg) = match f {
        ReadFail::Timeout(which) => (
            RejectReason::Timeout,
            format!("{which} after byte offset {offset}: no data within {:?}; close or half-close the connection to end the push", match which {
                "idle timeout" => ctx.limits.idle_timeout,
                _ => ctx.limits.read_timeout,
            }),
        ),
        ReadFail::TooLarge(limit) => (
            RejectReason::TooLarge,
            format!("push exceeds the limit of {limit} bytes"),
        ),
        ReadFail::Io(e) => (RejectReason::IoError, format!("read error at byte offset {offset}: {e}")),
        ReadFail::Shutdown => (RejectReason::IoError, "the proxy shut down before the push was complete".to_owned()),
    };
    warn!(reason = reason.as_str(), "push refused: {msg}");
    ctx.store.self_metrics().count_rejection(reason);
    reply.fail(msg);
}

async fn json_connection<S: AsyncRead + Unpin>(
    reader: &mut Reader<'_, S>,
    mut buf: Vec<u8>,
    ctx: &Ctx,
    peer: &str,
    reply: &mut Reply,
) {
    let limit = ctx.limits.max_push_bytes;
    // Bytes of the document reserved from the shared budget, as it grows:
    // its buffer's capacity, which grows by doubling up to the limit. The
    // socket is read straight into that buffer: no other buffer, no copy.
    let mut held = budget::Held::default();
    loop {
        if buf.len() >= limit {
            // Full to the limit: one more byte makes the push too large.
            let mut probe = [0u8; 1];
            match reader.read(&mut probe).await {
                Ok(0) => break,
                Ok(_) => {
                    read_failed(ctx, reply, ReadFail::TooLarge(limit), reader.offset);
                    ctx.store
                        .self_metrics()
                        .count_push(&ctx.listener, "json", false);
                    return;
                }
                Err(f) => {
                    let off = reader.offset;
                    read_failed(ctx, reply, f, off);
                    ctx.store
                        .self_metrics()
                        .count_push(&ctx.listener, "json", false);
                    return;
                }
            }
        }
        if buf.len() == buf.capacity() {
            let capacity = (buf.len() + JSON_READ_MIN)
                .max(buf.capacity().saturating_mul(2))
                .min(limit);
            if let Err(e) = ctx
                .budget
                .grow(&mut held, capacity, reader.budget_deadline(ctx))
                .await
            {
                warn!("json push refused: {e}");
                ctx.store
                    .self_metrics()
                    .count_rejection(RejectReason::TooManyConnections);
                ctx.store
                    .self_metrics()
                    .count_push(&ctx.listener, "json", false);
                reply.fail(format!("at byte offset {}: {e}", reader.offset));
                // The buffer and its reservation are freed on return;
                // the rest of the push is drained after the reply.
                return;
            }
            buf.reserve_exact(capacity - buf.len());
        }
        match reader.read_spare(&mut buf).await {
            Ok(0) => break,
            Ok(_) if buf.len() > limit => {
                read_failed(ctx, reply, ReadFail::TooLarge(limit), reader.offset);
                ctx.store
                    .self_metrics()
                    .count_push(&ctx.listener, "json", false);
                return;
            }
            Ok(_) => {}
            Err(f) => {
                let off = reader.offset;
                read_failed(ctx, reply, f, off);
                ctx.store
                    .self_metrics()
                    .count_push(&ctx.listener, "json", false);
                return;
            }
        }
    }
    let pushes = match codec::decode_json_limited(&buf, ctx.limits.max_apps) {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "json push refused");
            ctx.store
                .self_metrics()
                .count_rejection(RejectReason::InvalidEnvelope);
            ctx.store
                .self_metrics()
                .count_push(&ctx.listener, "json", false);
            reply.fail(e.0);
            return;
        }
    };
    // All apps of one document are applied together or not at all.
    let apps: Vec<String> = pushes.iter().map(|p| p.app.clone()).collect();
    let store = ctx.store.clone();
    let source = peer.to_owned();
    let listener_ttl = ctx.ttl;
    let result = parse_inline_or_blocking(buf.len(), move || {
        let mut prepared = Vec::with_capacity(pushes.len());
        for p in &pushes {
            let mut prep = store.prepare(&p.app, &p.text)?;
            prep.set_ttl(p.ttl.or(listener_ttl));
            prepared.push(prep);
        }
        store.commit(prepared, AppKind::Push, &source)
    })
    .await;
    match result {
        Ok(series) => {
            for _ in &apps {
                ctx.store
                    .self_metrics()
                    .count_push(&ctx.listener, "json", true);
            }
            // Accepted pushes are counted and shown in /apps; a log line
            // each would drown the log of a busy proxy (refusals are warnings).
            debug!(apps = ?apps, series, "json push accepted");
            reply.accepted = apps;
            reply.series += series;
        }
        Err(e) => reject(ctx, reply, "json", &e),
    }
}

fn reject(ctx: &Ctx, reply: &mut Reply, format: &'static str, e: &PushError) {
    warn!(app = %e.app, reason = e.reason.as_str(), "push refused: {}", e.message);
    ctx.store.record_rejection(e);
    ctx.store.self_metrics().count_rejection(e.reason);
    ctx.store
        .self_metrics()
        .count_push(&ctx.listener, format, false);
    reply.fail(e.to_string());
}

async fn capnp_connection<S: AsyncRead + Unpin>(
    reader: &mut Reader<'_, S>,
    first: Vec<u8>,
    ctx: &Ctx,
    peer: &str,
    reply: &mut Reply,
) {
    let limit = ctx.limits.max_push_bytes;
    let mut pending = Some(first);
    let mut message_no = 0usize;
    loop {
        let start = reader.offset - pending.as_ref().map_or(0, Vec::len);
        // Segment count (4 bytes).
        let mut head = [0u8; 4];
        match pending.take() {
            Some(first) if first.len() == 4 => head.copy_from_slice(&first),
            Some(first) => {
                let msg = format!(
                    "truncated cap'n proto message at byte offset {}: the connection ended inside the segment table",
                    first.len()
                );
                capnp_fail(ctx, reply, RejectReason::InvalidEnvelope, msg);
                return;
            }
            None => match read_head(reader, &mut head, ctx).await {
                Ok(None) => return, // clean end at a message boundary
                Ok(Some(4)) => {}
                Ok(Some(_)) => {
                    let msg = format!("truncated cap'n proto message {message_no} at byte offset {start}: the connection ended inside the segment table");
                    capnp_fail(ctx, reply, RejectReason::InvalidEnvelope, msg);
                    return;
                }
                Err(f) => {
                    read_failed(ctx, reply, f, start);
                    return;
                }
            },
        }
        let table_len = match codec::segment_table_len(head) {
            Ok(n) => n,
            Err(e) => {
                let msg = format!("message {message_no} at byte offset {start}: {e}");
                capnp_fail(ctx, reply, RejectReason::InvalidEnvelope, msg);
                return;
            }
        };
        let mut message = vec![0u8; table_len];
        message[..4].copy_from_slice(&head);
        match reader.read_exact_or_eof(&mut message[4..]).await {
            Ok(Some(n)) if n == table_len - 4 => {}
            Ok(_) => {
                let msg = format!("truncated cap'n proto message {message_no} at byte offset {start}: the connection ended inside the segment table");
                capnp_fail(ctx, reply, RejectReason::InvalidEnvelope, msg);
                return;
            }
            Err(f) => {
                read_failed(ctx, reply, f, start);
                return;
            }
        }
        let header = match codec::parse_segment_table(&message, limit) {
            Ok(h) => h,
            Err(e) => {
                let msg = format!("message {message_no} at byte offset {start}: {e}");
                capnp_fail(ctx, reply, RejectReason::TooLarge, msg);
                return;
            }
        };
        // Reserved before the message is buffered, given back once applied.
        let mut held = budget::Held::default();
        if let Err(e) = ctx
            .budget
            .hold_whole(&mut held, header.total_bytes, reader.budget_deadline(ctx))
            .await
        {
            let msg = format!("message {message_no} at byte offset {start}: {e}");
            capnp_fail(ctx, reply, RejectReason::TooManyConnections, msg);
            return;
        }
        message.resize(header.total_bytes, 0);
        match reader.read_exact_or_eof(&mut message[table_len..]).await {
            Ok(Some(n)) if n == header.total_bytes - table_len => {}
            Ok(got) => {
                let msg = format!(
                    "truncated cap'n proto message {message_no} at byte offset {start}: expected {} bytes, the connection ended after {}",
                    header.total_bytes,
                    table_len + got.unwrap_or(0)
                );
                capnp_fail(ctx, reply, RejectReason::InvalidEnvelope, msg);
                return;
            }
            Err(f) => {
                read_failed(ctx, reply, f, start);
                return;
            }
        }
        match codec::decode_capnp(&message) {
            Ok(AppPush { app, text, ttl }) => {
                let store = ctx.store.clone();
                let source = peer.to_owned();
                let ttl = ttl.or(ctx.ttl);
                let (app, result) = parse_inline_or_blocking(text.len(), move || {
                    let r = store.push_with_ttl(&app, &text, AppKind::Push, &source, ttl);
                    (app, r)
                })
                .await;
                match result {
                    Ok(series) => {
                        ctx.store
                            .self_metrics()
                            .count_push(&ctx.listener, "capnp", true);
                        debug!(app = %app, series, "capnp push accepted");
                        reply.accepted.push(app);
                        reply.series += series;
                    }
                    Err(e) => {
                        // `Store::push` already recorded the rejection on the app.
                        warn!(app = %e.app, reason = e.reason.as_str(), "push refused: {}", e.message);
                        ctx.store.self_metrics().count_rejection(e.reason);
                        ctx.store
                            .self_metrics()
                            .count_push(&ctx.listener, "capnp", false);
                        reply.fail(e.to_string());
                    }
                }
            }
            Err(e) => {
                let msg = format!("message {message_no} at byte offset {start}: {e}");
                capnp_fail(ctx, reply, RejectReason::InvalidEnvelope, msg);
                return;
            }
        }
        message_no += 1;
    }
}

/// Reads the 4-byte segment count of a message after the first: waiting
/// for its first byte is bounded by `limits.stream_idle_timeout`, the rest
/// of the message by the read and idle timeouts. `None`: the stream ended.
async fn read_head<S: AsyncRead + Unpin>(
    reader: &mut Reader<'_, S>,
    head: &mut [u8; 4],
    ctx: &Ctx,
) -> Result<Option<usize>, ReadFail> {
    let lim = &ctx.limits;
    let n = reader
        .read_next_message(head, lim.stream_idle_timeout, lim.read_timeout, &ctx.stop)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    match reader.read_exact_or_eof(&mut head[n..]).await? {
        Some(m) => Ok(Some(n + m)),
        None if n == 4 => Ok(Some(4)),
        None => Ok(Some(n)),
    }
}

fn capnp_fail(ctx: &Ctx, reply: &mut Reply, reason: RejectReason, msg: String) {
    warn!(reason = reason.as_str(), "capnp push refused: {msg}");
    ctx.store.self_metrics().count_rejection(reason);
    ctx.store
        .self_metrics()
        .count_push(&ctx.listener, "capnp", false);
    reply.fail(msg);
}

/// The first reservation of a JSON document's buffer, and its least
/// growth: the socket is read straight into that buffer, so this is also
/// the most a read can return at first. Large enough that a typical push
/// (tens of KB) takes one or two reads (a 16 KiB read buffer made an 85 KB
/// push cost six reads, a copy and a zero-fill: about 5% of its server CPU).
const JSON_READ_MIN: usize = 64 * 1024;

/// Pushes above this size are parsed on the blocking pool so that a large
/// push does not stall the other connections served by the same worker.
/// The push path parses about 300 MB/s on the benchmark machine, so a push
/// this size holds a worker for under a millisecond, while handing it to
/// the pool and back cost a tenth of the server CPU per push of 85 KB
/// (context switches; see docs/benchmarks.md).
const INLINE_PARSE_BYTES: usize = 256 * 1024;

/// Runs push parsing: inline when small, on the blocking pool when large.
pub(crate) async fn parse_inline_or_blocking<R: Send + 'static>(
    size: usize,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    if size <= INLINE_PARSE_BYTES {
        return f();
    }
    tokio::task::spawn_blocking(f)
        .await
        .expect("push parsing does not panic")
}
