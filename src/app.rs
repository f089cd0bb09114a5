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

use crate::activation::Activated;
use crate::config::Config;
use crate::http::web::WebConfig;
use crate::http::{self, HttpState};
use crate::ingest::config::{Endpoint, ReceiverConfig};
use crate::ingest::{self, unix, Ctx, Listener};
use crate::outbound::scheduler::Reconciled;
use crate::poll::register::Registrar;
use crate::poll::Poller;
use crate::store::Store;
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
    /// Unix sockets to remove at exit: (path, inode). Handed-over
    /// (socket-activated) sockets are not in it: systemd owns them.
    sockets: Vec<(PathBuf, u64)>,
    /// TLS and basic auth of the HTTP port.
    web: WebConfig,
    /// The file a reload reads the configuration from.
    config_path: Option<PathBuf>,
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

    /// Sets the file that `SIGHUP` and `POST /-/reload` read the new
    /// configuration from. Without one, reloads are refused.
    pub fn with_config_path(mut self, path: PathBuf) -> Self {
        self.config_path = Some(path);
        self
    }
}

/// Binds every listener of `config`, loading `config.web_config_file`.
/// Nothing is spawned here.
pub async fn bind(config: &Config) -> anyhow::Result<Bound> {
    let web = match &config.web_config_file {
        Some(p) => WebConfig::load(p)?,
        None => WebConfig::default(),
    };
    bind_with(config, Activated::none(), web).await
}

/// [`bind`] with an already loaded web config, using the sockets handed
/// over by systemd where they match (see [`crate::activation`]).
pub async fn bind_with(
    config: &Config,
    mut activated: Activated,
    web: WebConfig,
) -> anyhow::Result<Bound> {
    let mut sockets = Vec::new();
    let mut receivers = Vec::new();
    for r in &config.receivers {
        let listener = match &r.endpoint {
            Endpoint::Tcp(addr) => match activated.take_tcp(&r.name, *addr) {
                Some(l) => {
                    info!(receiver = %r.name, "using the socket handed over by systemd");
                    Listener::Tcp(from_std_tcp(l)?)
                }
                None => {
                    let l = TcpListener::bind(addr)
                        .await
                        .and_then(|l| widen(l, config))
                        .with_context(|| format!("receiver `{}`: binding {addr}", r.name))?;
                    Listener::Tcp(l)
                }
            },
            Endpoint::Unix(u) => match activated.take_unix(&r.name, &u.path) {
                Some(l) => {
                    // systemd owns it: no mode/owner changes, never unlinked.
                    info!(receiver = %r.name, "using the socket handed over by systemd");
                    l.set_nonblocking(true)
                        .and_then(|()| tokio::net::UnixListener::from_std(l))
                        .map(|l| Listener::Unix(l, u.path.clone()))
                        .with_context(|| format!("receiver `{}`: handed-over socket", r.name))?
                }
                None => {
                    let b = unix::bind(u).with_context(|| format!("receiver `{}`", r.name))?;
                    sockets.push((b.path.clone(), b.inode()));
                    ingest::backlog::widen(&b.listener, config.limits.listen_backlog)
                        .with_context(|| format!("receiver `{}`: listen backlog", r.name))?;
                    Listener::Unix(b.listener, b.path)
                }
            },
        };
        info!(receiver = %r.name, format = r.format.as_str(), address = %listener.describe(), "receiver bound");
        receivers.push((r.clone(), listener));
    }
    let rpc = match &config.rpc {
        Some(rpc) => {
            let l = match activated.take_tcp("rpc", rpc.listen) {
                Some(l) => l,
                None => std::net::TcpListener::bind(rpc.listen)
                    .and_then(|l| widen(l, config))
                    .with_context(|| format!("receiver.rpc: binding {}", rpc.listen))?,
            };
            info!(address = %l.local_addr()?, "cap'n proto rpc receiver bound");
            Some(l)
        }
        None => None,
    };
    let http = match activated.take_tcp("http", config.http_listen) {
        Some(l) => from_std_tcp(l)?,
        None => TcpListener::bind(config.http_listen)
            .await
            .and_then(|l| widen(l, config))
            .with_context(|| {
                format!(
                    "exporter.scrape_expose_endpoint: binding {}",
                    config.http_listen
                )
            })?,
    };
    info!(address = %http.local_addr()?, web = %web.describe(), "http server bound");
    activated.finish().map_err(anyhow::Error::msg)?;
    Ok(Bound {
        http,
        receivers,
        rpc,
        sockets,
        web,
        config_path: None,
    })
}

/// Gives a listener we bound the configured backlog (`limits.listen_backlog`);
/// sockets handed over by systemd keep theirs (`Backlog=`).
fn widen<L: std::os::fd::AsFd>(l: L, config: &Config) -> std::io::Result<L> {
    ingest::backlog::widen(&l, config.limits.listen_backlog)?;
    Ok(l)
}

fn from_std_tcp(l: std::net::TcpListener) -> anyhow::Result<TcpListener> {
    l.set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(l))
        .context("handed-over tcp socket")
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
    let store = Arc::new(Store::new(config.store_options(), metrics));
    run_with_store(bound, config, store, shutdown).await
}

/// A socket file we created: path and inode.
type SocketFile = (PathBuf, u64);

/// One running push receiver.
struct RunningReceiver {
    config: ReceiverConfig,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Listener>,
    /// The socket file we created, removed when the receiver goes away.
    socket: Option<(PathBuf, u64)>,
}

/// Everything that a reload may change, and what it needs to do so.
struct Running {
    config: Config,
    config_path: Option<PathBuf>,
    store: Arc<Store>,
    tracker: TaskTracker,
    abort: CancellationToken,
    shutdown: CancellationToken,
    /// Bytes held by pushes in progress, shared by every listener (sized
    /// at start-up).
    budget: ingest::budget::ByteBudget,
    receivers: Vec<RunningReceiver>,
    rpc: Option<(
        CancellationToken,
        std::thread::JoinHandle<Option<std::net::TcpListener>>,
    )>,
    http: Vec<(CancellationToken, tokio::task::JoinHandle<()>)>,
    router: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    poller: Arc<Poller>,
    sd: Arc<crate::poll::sd::ServiceDiscovery>,
    collectors: Arc<crate::collect::Collectors>,
    providers: Arc<crate::providers::ProviderSet>,
    /// The web UI's state: shows the configuration in effect.
    ui: Arc<crate::http::ui::UiState>,
}

/// The key that tells whether two receivers listen on the same socket.
fn endpoint_key(e: &Endpoint) -> String {
    match e {
        Endpoint::Tcp(a) => format!("tcp {a}"),
        Endpoint::Unix(u) => format!("unix {}", u.path.display()),
    }
}

/// Sockets bound by a reload before anything changes.
struct FreshSockets {
    /// New receivers, with the socket file each created.
    receivers: Vec<(ReceiverConfig, Listener, Option<SocketFile>)>,
    /// The RPC listener, when its address changed.
    rpc: Option<std::net::TcpListener>,
    /// The HTTP listener, when its address changed.
    http: Option<TcpListener>,
}

/// Binds a receiver added by a reload.
async fn bind_receiver(
    rc: &ReceiverConfig,
    config: &Config,
) -> Result<(Listener, Option<SocketFile>), String> {
    match &rc.endpoint {
        Endpoint::Tcp(a) => TcpListener::bind(a)
            .await
            .and_then(|l| widen(l, config))
            .map(|l| (Listener::Tcp(l), None))
            .map_err(|e| format!("receiver `{}`: binding {a}: {e}", rc.name)),
        Endpoint::Unix(u) => {
            let b = unix::bind(u).map_err(|e| format!("receiver `{}`: {e}", rc.name))?;
            let socket = Some((b.path.clone(), b.inode()));
            match ingest::backlog::widen(&b.listener, config.limits.listen_backlog) {
                Ok(()) => Ok((Listener::Unix(b.listener, b.path), socket)),
                Err(e) => {
                    unix::BoundUnix::cleanup(&b.path, b.inode());
                    Err(format!("receiver `{}`: listen backlog: {e}", rc.name))
                }
            }
        }
    }
}

/// `"<what>: 1 added, 0 changed, ..."` when a reload changed any of them.
fn summarize(what: &str, report: &Reconciled) -> Option<String> {
    if report.added.is_empty() && report.replaced.is_empty() && report.removed.is_empty() {
        return None;
    }
    Some(format!(
        "{what}: {} added, {} changed, {} removed, {} unchanged",
        report.added.len(),
        report.replaced.len(),
        report.removed.len(),
        report.unchanged.len()
    ))
}

/// Settings a reload cannot change (they shape state that lives on).
fn restart_only(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut check = |same: bool, key: &'static str| {
        if !same {
            v.push(key);
        }
    };
    check(
        old.worker_threads == new.worker_threads,
        "exporter.worker_threads",
    );
    check(old.app_label == new.app_label, "receiver.app_label");
    check(
        old.default_ttl == new.default_ttl,
        "exporter.stale_metric_ttl",
    );
    check(
        old.expiry_interval == new.expiry_interval,
        "exporter.stale_check_interval",
    );
    check(
        old.limits.max_series_per_app == new.limits.max_series_per_app,
        "limits.max_series_per_app",
    );
    check(
        old.limits.max_apps == new.limits.max_apps,
        "limits.max_apps",
    );
    check(
        old.limits.pack_above_series == new.limits.pack_above_series,
        "limits.pack_above_series",
    );
    check(
        old.limits.max_push_bytes == new.limits.max_push_bytes,
        "limits.max_push_bytes",
    );
    check(
        old.push_api == new.push_api
            && old.push_api_ttl == new.push_api_ttl
            && old.gates.push_api_networks == new.gates.push_api_networks,
        "push_api",
    );
    check(
        old.limits.max_inflight_push_bytes == new.limits.max_inflight_push_bytes,
        "limits.max_inflight_push_bytes",
    );
    check(old.sinks == new.sinks, "sinks");
    check(old.persistence == new.persistence, "persistence");
    check(old.poll.register == new.poll.register, "poll.register");
    check(
        old.poll.max_concurrent == new.poll.max_concurrent,
        "poll.max_concurrent_polls",
    );
    check(
        old.providers.as_ref().map(|p| p.max_concurrent)
            == new.providers.as_ref().map(|p| p.max_concurrent),
        "providers.max_concurrent",
    );
    check(
        old.web_config_file == new.web_config_file,
        "exporter.web_config_file",
    );
    v
}

impl Running {
    fn ctx(&self, rc: &ReceiverConfig, config: &Config, stop: &CancellationToken) -> Ctx {
        Ctx {
            listener: Arc::from(rc.name.as_str()),
            format: rc.format,
            store: self.store.clone(),
            limits: config.limits.clone(),
            abort: self.abort.clone(),
            ttl: rc.ttl,
            allowed_networks: config.allowed_networks.clone().map(Arc::new),
            budget: self.budget.clone(),
            stop: stop.clone(),
        }
    }

    fn spawn_receiver(
        &self,
        rc: ReceiverConfig,
        listener: Listener,
        socket: Option<(PathBuf, u64)>,
        config: &Config,
    ) -> RunningReceiver {
        let stop = self.shutdown.child_token();
        let task = self.tracker.spawn(ingest::serve(
            listener,
            self.ctx(&rc, config, &stop),
            rc.max_connections,
            stop.clone(),
            self.tracker.clone(),
        ));
        RunningReceiver {
            config: rc,
            stop,
            task,
            socket,
        }
    }

    fn spawn_rpc(
        &mut self,
        listener: std::net::TcpListener,
        config: &Config,
    ) -> anyhow::Result<()> {
        let Some(rc) = &config.rpc else { return Ok(()) };
        let stop = self.shutdown.child_token();
        let settings = ingest::rpc::RpcSettings {
            max_connections: rc.max_connections,
            limits: config.limits.clone(),
            ttl: rc.ttl,
            allowed_networks: config.allowed_networks.clone().map(Arc::new),
            budget: self.budget.clone(),
        };
        let thread = ingest::rpc::spawn(listener, self.store.clone(), settings, stop.clone())?;
        self.rpc = Some((stop, thread));
        Ok(())
    }

    fn spawn_http(&mut self, listener: TcpListener) {
        let stop = self.shutdown.child_token();
        let limits = crate::http::serve::ServeLimits {
            max_connections: self.config.gates.max_http_connections,
            header_timeout: self.config.limits.read_timeout,
        };
        let task = tokio::spawn(crate::http::serve::serve(
            listener,
            self.router.clone(),
            self.tls.clone(),
            limits,
            stop.clone(),
        ));
        self.http.push((stop, task));
    }

    async fn stop_rpc(&mut self) -> Option<std::net::TcpListener> {
        let (stop, thread) = self.rpc.take()?;
        stop.cancel();
        tokio::task::spawn_blocking(move || thread.join().ok().flatten())
            .await
            .ok()
            .flatten()
    }

    /// Reads the config file again and applies it as a whole, or not at all.
    async fn reload(&mut self) -> Result<String, String> {
        let new = self.load_for_reload()?;
        // 1. Bind every new address first: a failure leaves all as it was.
        let fresh = self.bind_fresh(&new).await?;

        // 2. Apply. Receivers on the same socket keep it (and their
        // connections in progress); changed ones restart their accept loop.
        let mut changes: Vec<String> = Vec::new();
        self.apply_receivers(&new, fresh.receivers, &mut changes)
            .await?;
        self.apply_rpc(&new, fresh.rpc, &mut changes).await?;
        if let Some(l) = fresh.http {
            info!(address = %new.http_listen, "http server moved by reload");
            for (stop, _) in &self.http {
                stop.cancel();
            }
            self.spawn_http(l);
            changes.push(format!("http server on {}", new.http_listen));
        }
        self.apply_jobs(&new, &mut changes).await;
        self.config = new;
        Ok(if changes.is_empty() {
            "configuration reloaded: nothing changed".to_owned()
        } else {
            format!("configuration reloaded: {}", changes.join("; "))
        })
    }

    /// Reads and validates the configuration file, refusing it when it
    /// changes a setting that only a restart can change.
    fn load_for_reload(&self) -> Result<Config, String> {
        let path = self
            .config_path
            .clone()
            .ok_or("no configuration file to reload from")?;
        let loaded = Config::load(&path).map_err(|e| e.to_string())?;
        for w in &loaded.warnings {
            warn!("{w}");
        }
        let new = loaded.config;
        let fixed = restart_only(&self.config, &new);
        if !fixed.is_empty() {
            return Err(format!(
                "these settings only change with a restart: {}; nothing was applied",
                fixed.join(", ")
            ));
        }
        Ok(new)
    }

    /// Binds every address of `new` that is not bound yet. On a failure,
    /// what was bound is released again and nothing changes.
    async fn bind_fresh(&self, new: &Config) -> Result<FreshSockets, String> {
        let mut fresh: Vec<(ReceiverConfig, Listener, Option<SocketFile>)> = Vec::new();
        let mut failure = None;
        for rc in &new.receivers {
            let key = endpoint_key(&rc.endpoint);
            if self
                .receivers
                .iter()
                .any(|r| endpoint_key(&r.config.endpoint) == key)
            {
                continue;
            }
            match bind_receiver(rc, new).await {
                Ok((l, socket)) => fresh.push((rc.clone(), l, socket)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let old_rpc = self.config.rpc.as_ref().map(|r| r.listen);
        let new_rpc = new.rpc.as_ref().map(|r| r.listen);
        let mut fresh_rpc = None;
        if let Some(addr) = new_rpc.filter(|_| failure.is_none() && new_rpc != old_rpc) {
            match std::net::TcpListener::bind(addr).and_then(|l| widen(l, new)) {
                Ok(l) => fresh_rpc = Some(l),
                Err(e) => failure = Some(format!("receiver.rpc: binding {addr}: {e}")),
            }
        }
        let mut fresh_http = None;
        if failure.is_none() && new.http_listen != self.config.http_listen {
            match TcpListener::bind(new.http_listen)
                .await
                .and_then(|l| widen(l, new))
            {
                Ok(l) => fresh_http = Some(l),
                Err(e) => {
                    failure = Some(format!(
                        "exporter.scrape_expose_endpoint: binding {}: {e}",
                        new.http_listen
                    ))
                }
            }
        }
        if let Some(e) = failure {
            for (_, _, socket) in fresh {
                if let Some((p, ino)) = socket {
                    unix::BoundUnix::cleanup(&p, ino);
                }
            }
            return Err(format!("{e}; nothing was applied"));
        }
        Ok(FreshSockets {
            receivers: fresh,
            rpc: fresh_rpc,
            http: fresh_http,
        })
    }

    /// Keeps, restarts, stops and starts receivers so that they match
    /// `new`; `fresh` are the newly bound ones.
    async fn apply_receivers(
        &mut self,
        new: &Config,
        fresh: Vec<(ReceiverConfig, Listener, Option<SocketFile>)>,
        changes: &mut Vec<String>,
    ) -> Result<(), String> {
        let networks_changed = self.config.allowed_networks != new.allowed_networks;
        let limits_changed = self.config.limits != new.limits;
        let mut kept = Vec::new();
        for r in std::mem::take(&mut self.receivers) {
            let key = endpoint_key(&r.config.endpoint);
            match new
                .receivers
                .iter()
                .find(|n| endpoint_key(&n.endpoint) == key)
            {
                Some(n) if *n == r.config && !networks_changed && !limits_changed => kept.push(r),
                Some(n) => {
                    r.stop.cancel();
                    let listener = r
                        .task
                        .await
                        .map_err(|e| format!("receiver `{}`: {e}", r.config.name))?;
                    if let (Endpoint::Unix(u), Endpoint::Unix(old)) =
                        (&n.endpoint, &r.config.endpoint)
                    {
                        if (&u.user, &u.group, u.mode) != (&old.user, &old.group, old.mode) {
                            if let Err(e) = unix::apply_owner_and_mode(u) {
                                warn!(error = %e, "socket owner/mode not changed");
                            }
                        }
                    }
                    changes.push(format!("receiver {} updated", n.name));
                    kept.push(self.spawn_receiver(n.clone(), listener, r.socket, new));
                }
                None => {
                    r.stop.cancel();
                    drop(r.task.await);
                    if let Some((p, ino)) = &r.socket {
                        unix::BoundUnix::cleanup(p, *ino);
                    }
                    changes.push(format!("receiver {} removed", r.config.name));
                    info!(receiver = %r.config.name, "receiver stopped by reload");
                }
            }
        }
        for (rc, listener, socket) in fresh {
            info!(receiver = %rc.name, address = %listener.describe(), "receiver bound by reload");
            changes.push(format!("receiver {} added", rc.name));
            kept.push(self.spawn_receiver(rc, listener, socket, new));
        }
        self.receivers = kept;
        Ok(())
    }

    /// Restarts the RPC receiver when its settings or the allowed networks
    /// changed: on `fresh` when it moved, on its old socket otherwise.
    async fn apply_rpc(
        &mut self,
        new: &Config,
        fresh: Option<std::net::TcpListener>,
        changes: &mut Vec<String>,
    ) -> Result<(), String> {
        let networks_changed = self.config.allowed_networks != new.allowed_networks;
        if self.config.rpc == new.rpc && !networks_changed {
            return Ok(());
        }
        let same_address =
            new.rpc.as_ref().map(|r| r.listen) == self.config.rpc.as_ref().map(|r| r.listen);
        let old_listener = self.stop_rpc().await;
        let listener = match (fresh, same_address) {
            (Some(l), _) => Some(l),
            (None, true) => old_listener,
            (None, false) => None,
        };
        if let Some(l) = listener {
            self.spawn_rpc(l, new)
                .map_err(|e| format!("receiver.rpc: {e}"))?;
        }
        changes.push("rpc receiver updated".to_owned());
        Ok(())
    }

    /// Hands the new poll targets, collectors and provider identifiers to
    /// their schedulers.
    async fn apply_jobs(&self, new: &Config, changes: &mut Vec<String>) {
        let report = self.poller.set_static(new.poll.targets.clone()).await;
        changes.extend(summarize("poll targets", &report));
        let report = self.sd.set(new.poll.sd.clone()).await;
        if !report.added.is_empty() || !report.replaced.is_empty() || !report.removed.is_empty() {
            changes.push(format!(
                "service discovery: {} added, {} changed, {} removed",
                report.added.len(),
                report.replaced.len(),
                report.removed.len()
            ));
        }
        let report = self.collectors.set(new.collectors.clone()).await;
        changes.extend(summarize("collectors", &report));
        let report = self.providers.apply(new.providers.as_ref()).await;
        changes.extend(summarize("provider identifiers", &report));
    }

    async fn reload_and_report(&mut self) -> Result<String, String> {
        let r = self.reload().await;
        match &r {
            Ok(msg) => info!("{msg}"),
            Err(e) => warn!(error = %e, "reload failed; the running configuration stays"),
        }
        self.store.self_metrics().config_reloaded(r.is_ok());
        if r.is_ok() {
            self.ui.set_config(self.config.ui_facts());
        }
        r
    }
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
    store.self_metrics().config_reloaded(true);

    start_background(&config, &store, &shutdown, &tracker)?;
    let jobs = start_jobs(&config, &store, &shutdown, &tracker).await;

    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel::<crate::http::ReloadRequest>(4);
    let ui = crate::http::ui::UiState::new(Some(config.ui_facts()));
    let router = http::router(HttpState {
        store: store.clone(),
        ready: ready.clone(),
        push_api: config.push_api.then(|| {
            Arc::new(crate::http::pushgw::PushApi::with_gates(
                config.push_api_ttl,
                config.gates.push_api_networks.clone(),
                config.limits.read_timeout,
            ))
        }),
        max_push_bytes: config.limits.max_push_bytes,
        registrar: jobs.registrar,
        reload: Some(reload_tx),
        lifecycle: config.gates.lifecycle,
        admin_api: config.gates.admin_api,
        ui: ui.clone(),
        prebuild: Default::default(),
    });
    let router = match &bound.web.basic_auth {
        Some(auth) => crate::http::auth::layer(router, auth.clone()),
        None => router,
    };
    let mut running = Running {
        config_path: bound.config_path.clone(),
        store: store.clone(),
        tracker: tracker.clone(),
        abort: abort.clone(),
        shutdown: shutdown.clone(),
        budget: ingest::budget::ByteBudget::new(
            config.limits.max_inflight_push_bytes,
            config.limits.max_push_bytes,
        ),
        receivers: Vec::new(),
        rpc: None,
        http: Vec::new(),
        router,
        tls: bound.web.tls.as_ref().map(|t| t.server_config.clone()),
        poller: jobs.poller,
        sd: jobs.sd,
        collectors: jobs.collectors,
        providers: jobs.providers,
        config: config.clone(),
        ui,
    };
    running.serve_bound(bound, &config)?;

    ready.store(true, Ordering::Release);
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        warn!(error = %e, "could not notify systemd");
    }
    info!("serving");

    running.until_shutdown(reload_rx).await?;
    running.drain().await;
    info!("stopped");
    Ok(())
}

/// Starts what runs beside the listeners: the snapshot (restored first),
/// the expiry sweeper and the sinks.
fn start_background(
    config: &Config,
    store: &Arc<Store>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<()> {
    // Restore before any receiver runs, so that a restored (older) set can
    // never overwrite a newer push.
    if let Some(p) = &config.persistence {
        crate::persist::restore(store, p);
        tracker.spawn(crate::persist::run(
            store.clone(),
            p.clone(),
            shutdown.clone(),
        ));
    }
    tracker.spawn(expire_loop(
        store.clone(),
        config.expiry_interval,
        shutdown.clone(),
    ));
    for sink in &config.sinks {
        crate::sinks::spawn(sink.clone(), store.clone(), shutdown.clone(), tracker)
            .map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// The outbound jobs and the self-registration endpoint's state.
struct Jobs {
    poller: Arc<Poller>,
    sd: Arc<crate::poll::sd::ServiceDiscovery>,
    collectors: Arc<crate::collect::Collectors>,
    providers: Arc<crate::providers::ProviderSet>,
    registrar: Option<Arc<Registrar>>,
}

/// Starts polling, collectors, providers and self-registration.
async fn start_jobs(
    config: &Config,
    store: &Arc<Store>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Jobs {
    // Polls stop at shutdown at once: nothing to drain.
    let poller = Poller::new(
        store.clone(),
        config.poll.max_concurrent,
        shutdown.child_token(),
    );
    let report = poller.set_static(config.poll.targets.clone()).await;
    if !report.added.is_empty() {
        info!(targets = ?report.added, "polling");
    }
    let sd = crate::poll::sd::ServiceDiscovery::new(
        poller.clone(),
        store.clone(),
        shutdown.child_token(),
    );
    sd.set(config.poll.sd.clone()).await;
    let collectors = Arc::new(crate::collect::Collectors::new(
        store.clone(),
        config.poll.max_concurrent,
        shutdown.child_token(),
    ));
    let report = collectors.set(config.collectors.clone()).await;
    if !report.added.is_empty() {
        info!(collectors = ?report.added, "collecting");
    }
    // Every identifier of the provider file: first collection at once, in
    // the background (never delaying the HTTP server), then every interval.
    let providers = Arc::new(crate::providers::ProviderSet::new(
        store.clone(),
        config.providers.as_ref().map_or(1, |p| p.max_concurrent),
        shutdown.child_token(),
    ));
    let report = providers.apply(config.providers.as_ref()).await;
    if !report.added.is_empty() {
        info!(identifiers = ?report.added, "collecting balances");
    }
    let registrar = match &config.poll.register {
        Some(rc) => {
            let r = Registrar::start(rc.clone(), config.app_label.clone(), poller.clone()).await;
            tracker.spawn(r.clone().run_expiry(shutdown.clone()));
            info!(allowed = ?rc.allowed_networks.iter().map(ToString::to_string).collect::<Vec<_>>(), "self-registration enabled on POST /register");
            Some(r)
        }
        None => None,
    };
    Jobs {
        poller,
        sd,
        collectors,
        providers,
        registrar,
    }
}

/// Start-up and shutdown; reloads are above.
impl Running {
    /// Starts serving on the sockets bound at start-up.
    fn serve_bound(&mut self, bound: Bound, config: &Config) -> anyhow::Result<()> {
        let mut sockets = bound.sockets;
        for (rc, listener) in bound.receivers {
            let socket = match &rc.endpoint {
                Endpoint::Unix(u) => sockets
                    .iter()
                    .position(|(p, _)| *p == u.path)
                    .map(|i| sockets.remove(i)),
                Endpoint::Tcp(_) => None,
            };
            let r = self.spawn_receiver(rc, listener, socket, config);
            self.receivers.push(r);
        }
        if let Some(l) = bound.rpc {
            self.spawn_rpc(l, config)?;
        }
        self.spawn_http(bound.http);
        Ok(())
    }

    /// Reloads on `SIGHUP` and on `POST /-/reload` until shutdown.
    async fn until_shutdown(
        &mut self,
        mut reload_rx: tokio::sync::mpsc::Receiver<crate::http::ReloadRequest>,
    ) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = hangup.recv() => {
                    info!("SIGHUP received: reloading the configuration");
                    let _ = self.reload_and_report().await;
                }
                Some(reply) = reload_rx.recv() => {
                    let _ = reply.send(self.reload_and_report().await);
                }
            }
        }
    }

    /// Stops accepting, drains connections within the grace period (then
    /// aborts them), stops the jobs, writes the final snapshot and removes
    /// the socket files.
    async fn drain(mut self) {
        let config = self.config.clone();
        info!(grace = ?config.shutdown_grace, "shutting down: draining connections");
        // The accept loops hand their listeners back: drop them now so that new
        // connections are refused while the ones in progress drain.
        let mut socket_files = Vec::new();
        for r in std::mem::take(&mut self.receivers) {
            drop(r.task.await);
            socket_files.extend(r.socket);
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        let tracker = self.tracker.clone();
        tracker.close();
        self.sd.stop().await;
        self.poller.stop().await;
        self.collectors.stop().await;
        self.providers.stop().await;
        let http = std::mem::take(&mut self.http);
        let drained = tokio::time::timeout(config.shutdown_grace, async {
            tracker.wait().await;
            for (_, task) in http {
                let _ = task.await;
            }
        })
        .await;
        if drained.is_err() {
            warn!("grace period over: closing remaining connections");
            self.abort.cancel();
            // Aborted handlers still send their error reply; give them a moment.
            let _ = tokio::time::timeout(ABORT_REPLY_TIME, tracker.wait()).await;
        }
        let _ = self.stop_rpc().await;
        if let Some(p) = &config.persistence {
            // The final snapshot, after the last pushes were applied.
            crate::persist::save(&self.store, &p.file).await;
        }
        for (path, inode) in &socket_files {
            unix::BoundUnix::cleanup(path, *inode);
        }
    }
}

/// Removes apps whose TTL ran out, every `period`.
async fn expire_loop(store: Arc<Store>, period: std::time::Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            now = ticker.tick() => {
                for app in store.expire(now) {
                    info!(app = %app, "app expired: no push within its TTL");
                }
            }
        }
    }
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
