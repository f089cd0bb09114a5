//! Wiring: bind every listener, then serve until shutdown.
//!
//! [`bind`] validates nothing (the config is already valid) and binds every
//! address up front, logging each, so that a bad address fails start-up
//! before anything serves. [`run`] spawns the servers on the bound sockets,
//! reports readiness (to `/-/ready` and to systemd), and on cancellation
//! drains connections within the grace period and removes Unix sockets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{Config, Endpoint, ReceiverConfig};
use crate::http::{self, HttpState};
use crate::ingest::{self, unix, Ctx, Listener};
use crate::store::{Store, StoreOptions};
use crate::telemetry::SelfMetrics;

/// Time aborted connections get to send their error reply at shutdown.
const ABORT_REPLY_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Every socket of the proxy, bound and not yet serving.
#[derive(Debug)]
pub struct Bound {
    /// The HTTP listener.
    pub http: TcpListener,
    /// Push receivers with their config.
    pub receivers: Vec<(ReceiverConfig, Listener)>,
    /// The RPC listener.
    pub rpc: Option<std::net::TcpListener>,
    /// Unix sockets to remove at exit: (path, inode).
    sockets: Vec<(PathBuf, u64)>,
}

impl Bound {
    /// The HTTP address (useful when bound to port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound socket has an address")
    }

    /// The TCP address of the named receiver.
    pub fn receiver_addr(&self, name: &str) -> Option<SocketAddr> {
        self.receivers
            .iter()
            .find(|(c, _)| c.name == name)
            .and_then(|(_, l)| l.tcp_addr())
    }

    /// The RPC address.
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        self.rpc.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Binds every listener of `config`. Nothing is spawned here.
pub async fn bind(config: &Config) -> anyhow::Result<Bound> {
    let mut sockets = Vec::new();
    let mut receivers = Vec::new();
    for r in &config.receivers {
        let listener = match &r.endpoint {
            Endpoint::Tcp(addr) => {
                let l = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("receiver `{}`: binding {addr}", r.name))?;
                Listener::Tcp(l)
            }
            Endpoint::Unix(u) => {
                let b = unix::bind(u).with_context(|| format!("receiver `{}`", r.name))?;
                sockets.push((b.path.clone(), b.inode()));
                Listener::Unix(b.listener, b.path)
            }
        };
        info!(receiver = %r.name, format = r.format.as_str(), address = %listener.describe(), "receiver bound");
        receivers.push((r.clone(), listener));
    }
    let rpc = match &config.rpc {
        Some(rpc) => {
            let l = std::net::TcpListener::bind(rpc.listen)
                .with_context(|| format!("receiver.rpc: binding {}", rpc.listen))?;
            info!(address = %l.local_addr()?, "cap'n proto rpc receiver bound");
            Some(l)
        }
        None => None,
    };
    let http = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| {
            format!(
                "exporter.scrape_expose_endpoint: binding {}",
                config.http_listen
            )
        })?;
    info!(address = %http.local_addr()?, "http server bound");
    Ok(Bound {
        http,
        receivers,
        rpc,
        sockets,
    })
}

/// A running proxy's shared handles, for tests and embedding.
#[derive(Debug, Clone)]
pub struct Handles {
    /// The store.
    pub store: Arc<Store>,
}

/// Serves on the bound sockets until `shutdown` is cancelled, then drains.
pub async fn run(bound: Bound, config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = SelfMetrics::new();
    let store = Arc::new(Store::new(
        StoreOptions {
            max_series_per_app: config.limits.max_series_per_app,
            max_apps: config.limits.max_apps,
            app_label: config.app_label.clone(),
        },
        metrics,
    ));
    run_with_store(bound, config, store, shutdown).await
}

/// [`run`] with a store supplied by the caller.
pub async fn run_with_store(
    bound: Bound,
    config: Config,
    store: Arc<Store>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tracker = TaskTracker::new();
    let abort = CancellationToken::new();
    let ready = Arc::new(AtomicBool::new(false));

    for (rc, listener) in bound.receivers {
        let ctx = Ctx {
            listener: Arc::from(rc.name.as_str()),
            format: rc.format,
            store: store.clone(),
            limits: config.limits.clone(),
            abort: abort.clone(),
        };
        tracker.spawn(ingest::serve(
            listener,
            ctx,
            rc.max_connections,
            shutdown.clone(),
            tracker.clone(),
        ));
    }
    let rpc_thread = match (bound.rpc, &config.rpc) {
        (Some(l), Some(rc)) => Some(ingest::rpc::spawn(
            l,
            store.clone(),
            rc.max_connections,
            config.limits.max_push_bytes,
            shutdown.clone(),
        )?),
        _ => None,
    };

    let router = http::router(HttpState {
        store: store.clone(),
        ready: ready.clone(),
    });
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(async move {
        // TCP_NODELAY: /metrics is written as many chunks; with Nagle the
        // last partial segment of a write waited for the client's delayed
        // ACK (40 ms scrapes in ep-bench).
        let listener = axum::serve::ListenerExt::tap_io(bound.http, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
            .await
    });

    ready.store(true, Ordering::Release);
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        warn!(error = %e, "could not notify systemd");
    }
    info!("serving");

    shutdown.cancelled().await;
    info!(grace = ?config.shutdown_grace, "shutting down: draining connections");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracker.close();
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        tracker.wait().await;
        let _ = http.await;
    })
    .await;
    if drained.is_err() {
        warn!("grace period over: closing remaining connections");
        abort.cancel();
        // Aborted handlers still send their error reply; give them a moment.
        let _ = tokio::time::timeout(ABORT_REPLY_TIME, tracker.wait()).await;
    }
    if let Some(t) = rpc_thread {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    for (path, inode) in &bound.sockets {
        unix::BoundUnix::cleanup(path, *inode);
    }
    info!("stopped");
    Ok(())
}

/// Waits for SIGINT or SIGTERM, then cancels `token`.
pub async fn cancel_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
        _ = term.recv() => info!("SIGTERM received"),
    }
    token.cancel();
}
