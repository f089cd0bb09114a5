//! Configuration: TOML text → validated [`Config`].
//!
//! Two levels, as in ripgrep's flags: the TOML document is walked key by key
//! (so that *every* problem is collected and reported at once, each naming
//! its key), producing the validated domain types below. Parsing is a pure
//! function of a string ([`Config::parse`]); [`Config::load`] only adds the
//! file path to the errors.
//!
//! Both layouts of the original exporter-proxy are accepted unchanged:
//!
//! * master: `[receiver] format`, `receive_on_unix_socket`,
//!   `receiver_unix_socket`, `unix_socket_user`, `unix_socket_group`,
//!   `receive_on_tcp_socket`, `receiver_tcp_socket`;
//! * per-format (branch `granular_locks`): `[receiver.capnp]` and
//!   `[receiver.json]` tables, each with optional `receiver_unix_socket`,
//!   `unix_socket_user`, `unix_socket_group`, `receiver_tcp_socket`.
//!
//! New settings are documented in the committed `config.toml`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Table;

use crate::ingest::config::{Limits, ReceiverConfig, RpcConfig};
use crate::poll::config::PollConfig;
use crate::providers::ProvidersConfig;
use crate::store::{StoreOptions, Ttl};
use walk::{Diagnostics, Section};

mod outputs;
mod poll;
mod receivers;
mod ui_facts;
mod walk;

/// Default time granted to in-flight connections after SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The original's default and documented maximum for `concurrent_requests`.
pub const DEFAULT_CONCURRENT_REQUESTS: u64 = 2048;
const MAX_CONCURRENT_REQUESTS: u64 = 65_534;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `0` = single-threaded runtime (as in the original); `N` = N workers.
    pub worker_threads: usize,
    /// Address of the HTTP server (`/metrics`, `/apps`, ...).
    pub http_listen: SocketAddr,
    /// Push receivers (Unix and TCP stream listeners).
    pub receivers: Vec<ReceiverConfig>,
    /// Optional Cap'n Proto RPC listener.
    pub rpc: Option<RpcConfig>,
    /// When set, every pushed series gets this label with the app name.
    pub app_label: Option<String>,
    /// Resource limits of the receivers and the store.
    pub limits: Limits,
    /// Grace period for draining connections on shutdown.
    pub shutdown_grace: Duration,
    /// TTL of pushed apps unless the listener or the push says otherwise
    /// (`[exporter] stale_metric_ttl`).
    pub default_ttl: Ttl,
    /// Period of the expiry sweeper (`[exporter] stale_check_interval`).
    pub expiry_interval: Duration,
    /// TTL of pushes through the HTTP push API (`None`: the default).
    pub push_api_ttl: Option<Ttl>,
    /// Whether the Pushgateway-compatible push API is served.
    pub push_api: bool,
    /// Forwarding to time-series databases.
    pub sinks: Vec<crate::sinks::SinkConfig>,
    /// The snapshot file (`[persistence]`), when enabled.
    pub persistence: Option<crate::persist::PersistConfig>,
    /// Polled targets (`[poll_external]` and `[[poll.targets]]`) and
    /// self-registration (`[poll.register]`).
    pub poll: PollConfig,
    /// `exporter.web_config_file`: TLS and basic auth of the HTTP port
    /// (Prometheus web configuration format; see [`crate::http::web`]). The
    /// `--web.config.file` flag overrides it.
    pub web_config_file: Option<PathBuf>,
    /// `receiver.allowed_networks`: peers of the TCP receivers (stream and
    /// RPC) must be in one of these networks; `None` allows any peer.
    pub allowed_networks: Option<crate::netacl::AllowedNetworks>,
    /// Config-driven API collectors (`[[collectors]]`, `collectors_file`).
    pub collectors: Vec<crate::collect::CollectorConfig>,
    /// `[providers]`: self-service-portal balance collectors, when set.
    pub providers: Option<ProvidersConfig>,
    /// Who may use the HTTP port's write endpoints, and its connection cap.
    pub gates: crate::http::gates::Gates,
}

/// Every problem found in a configuration, reported at once.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// File the problems were found in, when loaded from a file.
    pub path: Option<PathBuf>,
    /// One message per problem, each naming its key.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "invalid configuration {}:", p.display())?,
            None => write!(f, "invalid configuration:")?,
        }
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A successfully parsed config plus non-fatal remarks (deprecated keys).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Warnings to log once logging is set up.
    pub warnings: Vec<String>,
}

impl Config {
    /// The store options this configuration asks for.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            max_series_per_app: self.limits.max_series_per_app,
            max_apps: self.limits.max_apps,
            app_label: self.app_label.clone(),
            default_ttl: self.default_ttl,
            pack_above_series: self.limits.pack_above_series,
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: Some(path.to_owned()),
            problems: vec![format!("cannot read file: {e}")],
        })?;
        let dir = path.parent().unwrap_or(Path::new(""));
        Config::parse_in(&text, dir).map_err(|mut e| {
            e.path = Some(path.to_owned());
            e
        })
    }

    /// Parses and validates config text; a relative `providers.config_file`
    /// is read relative to the current directory.
    pub fn parse(text: &str) -> Result<Loaded, ConfigError> {
        Config::parse_in(text, Path::new(""))
    }

    /// [`Config::parse`] with relative file names taken relative to `dir`.
    /// The provider file, when set, is read and validated here too.
    pub fn parse_in(text: &str, dir: &Path) -> Result<Loaded, ConfigError> {
        let root: Table = toml::from_str(text).map_err(|e| ConfigError {
            path: None,
            problems: vec![format!("not valid TOML: {}", e.to_string().trim_end())],
        })?;
        let mut cx = Diagnostics {
            dir: dir.to_owned(),
            ..Diagnostics::default()
        };
        let config = build(&root, &mut cx);
        if cx.problems.is_empty() {
            Ok(Loaded {
                config: config.expect("no problems means a config was built"),
                warnings: cx.warnings,
            })
        } else {
            Err(ConfigError {
                path: None,
                problems: cx.problems,
            })
        }
    }
}

/// Walks the whole document, section by section in a fixed order (so that
/// problems are listed in the order of the sections), and assembles the
/// subsystems' configurations.
fn build(root: &Table, cx: &mut Diagnostics) -> Option<Config> {
    let mut top = Section::root(root);
    let exporter = build_exporter(&mut top, cx);
    let receivers = receivers::build_receivers(
        &mut top,
        exporter.concurrent_requests,
        exporter.http_listen,
        cx,
    );
    let limits = build_limits(&mut top, cx);
    let (push_api, push_api_ttl, push_api_networks) = build_push_api(&mut top, cx);
    let gates = crate::http::gates::Gates {
        lifecycle: exporter.enable_lifecycle,
        admin_api: exporter.enable_admin_api,
        push_api_networks: push_api_networks.unwrap_or_else(crate::http::gates::Gates::loopback),
        max_http_connections: exporter
            .max_http_connections
            .unwrap_or(crate::http::gates::DEFAULT_MAX_HTTP_CONNECTIONS),
    };
    let sinks = outputs::build_sinks(&mut top, cx);
    let persistence = build_persistence(&mut top, cx);
    let poll = poll::build_poll(
        &mut top,
        receivers.app_label.as_deref(),
        limits.max_push_bytes,
        cx,
    );
    let collectors = build_collectors(&mut top, &poll, cx);
    let providers = outputs::build_providers(&mut top, cx);
    top.finish(cx);

    Some(Config {
        worker_threads: exporter.worker_threads,
        http_listen: exporter.http_listen,
        receivers: receivers.receivers,
        rpc: receivers.rpc,
        app_label: receivers.app_label,
        limits,
        shutdown_grace: exporter.shutdown_grace,
        default_ttl: exporter.default_ttl,
        expiry_interval: exporter.expiry_interval,
        push_api_ttl,
        poll,
        collectors,
        push_api,
        sinks,
        persistence,
        web_config_file: exporter.web_config_file,
        allowed_networks: receivers.allowed_networks,
        providers,
        gates,
    })
}

/// What `[exporter]` configures: the process and its HTTP port.
struct Exporter {
    worker_threads: usize,
    /// Connections each receiver accepts at once.
    concurrent_requests: usize,
    http_listen: SocketAddr,
    shutdown_grace: Duration,
    default_ttl: Ttl,
    expiry_interval: Duration,
    web_config_file: Option<PathBuf>,
    enable_lifecycle: bool,
    enable_admin_api: bool,
    max_http_connections: Option<usize>,
}

fn build_exporter(top: &mut Section<'_>, cx: &mut Diagnostics) -> Exporter {
    let mut exporter = top.sub("exporter", cx);
    let worker_threads = exporter.int("worker_threads", cx, 0, 1024).unwrap_or(0) as usize;
    let concurrent_requests = exporter
        .int("concurrent_requests", cx, 1, MAX_CONCURRENT_REQUESTS)
        .unwrap_or(DEFAULT_CONCURRENT_REQUESTS) as usize;
    let http_listen = exporter
        .addr("scrape_expose_endpoint", cx)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 6555)));
    let shutdown_grace = exporter
        .duration("shutdown_grace_period", cx, true)
        .unwrap_or(DEFAULT_SHUTDOWN_GRACE);
    // Names from the original's per-format branch, implemented here.
    let default_ttl = exporter.ttl("stale_metric_ttl", cx).unwrap_or(Ttl::Never);
    let expiry_interval = exporter
        .duration("stale_check_interval", cx, false)
        .unwrap_or(Duration::from_secs(1));
    let web_config_file = exporter.string("web_config_file", cx).map(PathBuf::from);
    let enable_lifecycle = exporter.bool("enable_lifecycle", cx).unwrap_or(false);
    let enable_admin_api = exporter.bool("enable_admin_api", cx).unwrap_or(false);
    let max_http_connections = exporter
        .int("max_http_connections", cx, 1, 1 << 20)
        .map(|n| n as usize);
    exporter.finish(cx);
    Exporter {
        worker_threads,
        concurrent_requests,
        http_listen,
        shutdown_grace,
        default_ttl,
        expiry_interval,
        web_config_file,
        enable_lifecycle,
        enable_admin_api,
        max_http_connections,
    }
}

/// `[limits]`, each absent key keeping its default.
fn build_limits(top: &mut Section<'_>, cx: &mut Diagnostics) -> Limits {
    let mut lim = top.sub("limits", cx);
    let defaults = Limits::default();
    let max_push_bytes = lim
        .size("max_push_bytes", cx)
        .map_or(defaults.max_push_bytes, |n| n as usize);
    let limits = Limits {
        max_push_bytes,
        max_series_per_app: lim
            .int("max_series_per_app", cx, 1, u32::MAX as u64)
            .map_or(defaults.max_series_per_app, |n| n as usize),
        max_apps: lim
            .int("max_apps", cx, 1, u32::MAX as u64)
            .map_or(defaults.max_apps, |n| n as usize),
        read_timeout: lim
            .duration("read_timeout", cx, false)
            .unwrap_or(defaults.read_timeout),
        idle_timeout: lim
            .duration("idle_timeout", cx, false)
            .unwrap_or(defaults.idle_timeout),
        stream_idle_timeout: match lim.ttl("stream_idle_timeout", cx) {
            Some(Ttl::Never) => None,
            Some(Ttl::After(d)) => Some(d),
            None => defaults.stream_idle_timeout,
        },
        max_inflight_push_bytes: lim.size("max_inflight_push_bytes", cx).map_or(
            // At least one full-size push, whatever `max_push_bytes` says.
            defaults.max_inflight_push_bytes.max(max_push_bytes),
            |n| n as usize,
        ),
        max_queued_connections: lim
            .int("max_queued_connections", cx, 0, 1 << 20)
            .map_or(defaults.max_queued_connections, |n| n as usize),
        listen_backlog: lim
            .int("listen_backlog", cx, 1, 65535)
            .map_or(defaults.listen_backlog, |n| n as u32),
        pack_above_series: lim
            .int("pack_above_series", cx, 0, u32::MAX as u64)
            .map_or(defaults.pack_above_series, |n| n as usize),
    };
    lim.finish(cx);
    if limits.max_inflight_push_bytes < limits.max_push_bytes {
        cx.problems.push(format!(
            "`limits.max_inflight_push_bytes`: {} is below `limits.max_push_bytes` ({}): a full-size push could never be received",
            limits.max_inflight_push_bytes, limits.max_push_bytes
        ));
    }
    limits
}

/// `[push_api]`: whether the push API is served, its TTL, and who may push.
fn build_push_api(
    top: &mut Section<'_>,
    cx: &mut Diagnostics,
) -> (bool, Option<Ttl>, Option<crate::netacl::AllowedNetworks>) {
    let mut push = top.sub("push_api", cx);
    let enabled = push.bool("enabled", cx).unwrap_or(true);
    let ttl = push.ttl("ttl", cx);
    let networks = push.get("allowed_networks", cx, walk::networks);
    push.finish(cx);
    (enabled, ttl, networks)
}

/// `[persistence]`: the snapshot file, when the table is present.
fn build_persistence(
    top: &mut Section<'_>,
    cx: &mut Diagnostics,
) -> Option<crate::persist::PersistConfig> {
    let mut pers = top.sub("persistence", cx);
    let persistence = if pers.present() {
        let file = pers.string("file", cx);
        if file.is_none() && !pers.has("file") {
            cx.problems
                .push("`persistence.file`: required in `[persistence]`".to_owned());
        }
        let interval = pers
            .duration("interval", cx, false)
            .unwrap_or(Duration::from_secs(60));
        file.map(|f| crate::persist::PersistConfig {
            file: PathBuf::from(f),
            interval,
        })
    } else {
        None
    };
    pers.finish(cx);
    persistence
}

/// `[[collectors]]` and `collectors_file`, walked by `collect::spec` (also
/// for YAML/JSON files); app names are unique across polled targets and
/// collectors.
fn build_collectors(
    top: &mut Section<'_>,
    poll: &PollConfig,
    cx: &mut Diagnostics,
) -> Vec<crate::collect::CollectorConfig> {
    let collectors = crate::collect::spec::from_config(
        top.raw("collectors"),
        top.raw("collectors_file"),
        &mut cx.problems,
    );
    for c in &collectors {
        if poll.targets.iter().any(|t| t.name == c.name) {
            cx.problems.push(format!(
                "collector {:?}: `name`: a polled target has this name: expected unique names",
                c.name
            ));
        }
    }
    collectors
}

#[cfg(test)]
mod tests;
