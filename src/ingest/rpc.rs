//! Cap'n Proto RPC receiver: `MetricsReceiver.push` answers whether the
//! push was accepted and, if not, why.
//!
//! capnp-rpc objects are `!Send`, so the listener runs on its own thread
//! with a current-thread runtime and a `LocalSet`. The store is `Sync`, so
//! the RPC object calls it directly; no channel is needed.
//!
//! Bounds: `concurrent_requests` connections (more wait in a queue, as on
//! the stream listeners, then are closed); per connection the reads are
//! bounded by [`super::rpc_io::BoundedRead`] (idle between messages, read
//! and idle timeouts inside one, the shared bytes budget); calls are
//! answered one at a time per connection (`push` never awaits), so
//! in-flight calls are bounded by the connections.

use std::net::TcpListener as StdTcpListener;
use std::sync::Arc;

use capnp_rpc::{rpc_twoparty_capnp, twoparty, RpcSystem};
use futures::AsyncReadExt;
use tokio::sync::Semaphore;
use tokio_util::compat::TokioAsyncReadCompatExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};

use crate::generated::metric_data_capnp::metrics_receiver;
use crate::store::{AppKind, Store, Ttl};
use crate::telemetry::RejectReason;

const LISTENER: &str = "rpc";

struct Receiver {
    store: Arc<Store>,
    source: String,
    /// The listener's TTL (`None`: the store's default).
    ttl: Option<Ttl>,
}

impl metrics_receiver::Server for Receiver {
    async fn push(
        self: capnp::capability::Rc<Self>,
        params: metrics_receiver::PushParams,
        mut results: metrics_receiver::PushResults,
    ) -> Result<(), capnp::Error> {
        let metrics = params.get()?.get_metrics()?;
        let app = metrics.get_app_name()?.to_str();
        let data = metrics.get_data()?.to_str();
        let ttl = match metrics.get_ttl().map(|t| t.to_str()) {
            Ok(Ok("")) => Ok(self.ttl),
            Ok(Ok(t)) => Ttl::parse(t).map(Some),
            Ok(Err(e)) => Err(format!("field ttl is not valid UTF-8: {e}")),
            Err(e) => Err(format!("invalid field ttl: {e}")),
        };
        let outcome = match (app, data, ttl) {
            (Ok(app), Ok(data), Ok(ttl)) => {
                self.store
                    .push_with_ttl(app, data, AppKind::Push, &self.source, ttl)
            }
            (_, _, Err(e)) => {
                let m = self.store.self_metrics();
                m.count_rejection(RejectReason::InvalidEnvelope);
                m.count_push(LISTENER, "capnp", false);
                let mut r = results.get();
                r.set_accepted(false);
                r.set_error(format!("invalid ttl: {e}"));
                return Ok(());
            }
            (Err(e), _, _) | (_, Err(e), _) => {
                let m = self.store.self_metrics();
                m.count_rejection(RejectReason::InvalidEnvelope);
                m.count_push(LISTENER, "capnp", false);
                let mut r = results.get();
                r.set_accepted(false);
                r.set_error(format!("text field is not valid UTF-8: {e}"));
                return Ok(());
            }
        };
        let m = self.store.self_metrics();
        let mut r = results.get();
        match outcome {
            Ok(series) => {
                m.count_push(LISTENER, "capnp", true);
                debug!(source = %self.source, series, "rpc push accepted");
                r.set_accepted(true);
            }
            Err(e) => {
                warn!(source = %self.source, app = %e.app, reason = e.reason.as_str(), "rpc push refused: {}", e.message);
                m.count_rejection(e.reason);
                m.count_push(LISTENER, "capnp", false);
                r.set_accepted(false);
                r.set_error(e.to_string());
            }
        }
        Ok(())
    }
}

/// What the RPC listener needs besides its socket and the store.
#[derive(Debug, Clone)]
pub struct RpcSettings {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Limits (message size, timeouts, queue).
    pub limits: super::config::Limits,
    /// TTL of pushes without one (`None`: the store's default).
    pub ttl: Option<Ttl>,
    /// Networks peers must belong to (`None`: any).
    pub allowed_networks: Option<Arc<crate::netacl::AllowedNetworks>>,
    /// The bytes budget shared with the stream listeners.
    pub budget: super::budget::ByteBudget,
}

/// Starts the RPC listener on its own thread. When `shutdown` fires the
/// thread stops (its connections end) and returns the listener.
pub fn spawn(
    listener: StdTcpListener,
    store: Arc<Store>,
    settings: RpcSettings,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<Option<StdTcpListener>>> {
    let RpcSettings {
        max_connections,
        limits,
        ttl,
        allowed_networks,
        budget,
    } = settings;
    let max_message_bytes = limits.max_push_bytes;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("capnp-rpc".to_owned())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building the rpc runtime");
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        warn!(error = %e, "rpc listener unusable");
                        return None;
                    }
                };
                let permits = Arc::new(Semaphore::new(max_connections));
                let queue = Arc::new(Semaphore::new(limits.max_queued_connections));
                loop {
                    let (stream, peer) = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        r = listener.accept() => match r {
                            Ok(c) => c,
                            Err(e) => {
                                warn!(error = %e, "rpc accept failed");
                                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                                continue;
                            }
                        },
                    };
                    if allowed_networks.as_ref().is_some_and(|a| !a.allows(peer.ip())) {
                        // RPC has no reply line outside a call: just close.
                        store
                            .self_metrics()
                            .count_rejection(RejectReason::NetworkNotAllowed);
                        warn!(%peer, "rpc connection refused: peer outside receiver.allowed_networks");
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let queued = match permits.clone().try_acquire_owned() {
                        Ok(p) => Ok(p),
                        Err(_) => match queue.clone().try_acquire_owned() {
                            Ok(q) => Err(q),
                            Err(_) => {
                                store
                                    .self_metrics()
                                    .count_rejection(RejectReason::TooManyConnections);
                                warn!(%peer, "rpc connection refused: too many connections, queue full");
                                drop(stream);
                                continue;
                            }
                        },
                    };
                    let client: metrics_receiver::Client = capnp_rpc::new_client(Receiver {
                        store: store.clone(),
                        source: format!("rpc {peer}"),
                        ttl,
                    });
                    let (reader, writer) = stream.compat().split();
                    let reader =
                        super::rpc_io::BoundedRead::new(reader, limits.clone(), budget.clone());
                    let mut options = capnp::message::ReaderOptions::new();
                    // One RPC message carries one push: bound it like a push.
                    options.traversal_limit_in_words(Some(max_message_bytes / 8 + 1024));
                    let network = twoparty::VatNetwork::new(
                        futures::io::BufReader::new(reader),
                        futures::io::BufWriter::new(writer),
                        rpc_twoparty_capnp::Side::Server,
                        options,
                    );
                    let system = RpcSystem::new(Box::new(network), Some(client.client));
                    let shutdown = shutdown.clone();
                    let m = store.self_metrics().clone();
                    let permits = permits.clone();
                    let wait = limits.read_timeout;
                    tokio::task::spawn_local(
                        async move {
                            // Over the limit: wait in the queue for a slot,
                            // for at most the read timeout.
                            let permit = match queued {
                                Ok(p) => p,
                                Err(q) => {
                                    let got = tokio::select! {
                                        r = tokio::time::timeout(wait, permits.acquire_owned()) => r.ok().and_then(Result::ok),
                                        _ = shutdown.cancelled() => None,
                                    };
                                    drop(q);
                                    match got {
                                        Some(p) => p,
                                        None => {
                                            m.count_rejection(RejectReason::TooManyConnections);
                                            warn!("rpc connection closed: no slot within the read timeout");
                                            return;
                                        }
                                    }
                                }
                            };
                            m.connection(LISTENER, 1);
                            tokio::select! {
                                r = system => if let Err(e) = r {
                                    warn!(error = %e, "rpc connection failed");
                                },
                                _ = shutdown.cancelled() => {}
                            }
                            m.connection(LISTENER, -1);
                            drop(permit);
                        }
                        .instrument(tracing::info_span!("rpc", %peer)),
                    );
                }
                // Handed back so that a reload can keep the bound socket.
                listener.into_std().ok()
            })
        })
}
