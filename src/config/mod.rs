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

use crate::ingest::config::{
    Endpoint, Limits, ReceiverConfig, RpcConfig, UnixSocketConfig, WireFormat,
};
use crate::poll::config::PollConfig;
use crate::providers::ProvidersConfig;
use crate::store::{StoreOptions, Ttl};
use walk::{expected, Cx, Section};

mod outputs;
mod poll;
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
        let mut cx = Cx {
            dir: dir.to_owned(),
            ..Cx::default()
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

fn build(root: &Table, cx: &mut Cx) -> Option<Config> {
    let mut top = Section::root(root);

    let mut exporter = top.sub("exporter", cx);
    let worker_threads = exporter.int("worker_threads", cx, 0, 1024).unwrap_or(0) as usize;
    let concurrent = exporter
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
    exporter.finish(cx);

    let mut receiver = top.sub("receiver", cx);
    let mut receivers = Vec::new();
    let app_label = receiver.string("app_label", cx);
    if let Some(l) = &app_label {
        if l == "le" || l == "quantile" {
            cx.problems.push(format!(
                "`receiver.app_label`: {l:?} is reserved for histogram buckets and summary quantiles"
            ));
        } else if !crate::exposition::is_valid_label_name(l) || l.starts_with("__") {
            cx.problems.push(format!(
                "`receiver.app_label`: {l:?} is not a valid label name (expected [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
            ));
        }
    }
    let default_mode = receiver.mode("unix_socket_mode", cx).unwrap_or(0o660);
    let allowed_networks = receiver.get("allowed_networks", cx, |v| {
        let arr = v
            .as_array()
            .ok_or_else(|| expected("an array of networks such as [\"127.0.0.0/8\"]", v))?;
        let entries = arr
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.as_str()
                    .ok_or_else(|| format!("element {i}: {}", expected("a string", e)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        crate::netacl::AllowedNetworks::parse(&entries)
    });

    // master layout: one format for the flat listeners.
    let format = receiver.get("format", cx, |v| match v.as_str() {
        Some("json") => Ok(WireFormat::Json),
        Some("capnp") => Ok(WireFormat::Capnp),
        Some("auto") => Ok(WireFormat::Auto),
        Some(s) => Err(format!(
            "expected \"json\", \"capnp\" or \"auto\", found {s:?}"
        )),
        None => Err(expected("a string", v)),
    });
    let format = format.unwrap_or(WireFormat::Auto);
    let unix_on = receiver.bool("receive_on_unix_socket", cx);
    let unix_path = receiver.string("receiver_unix_socket", cx);
    let unix_user = receiver.string("unix_socket_user", cx);
    let unix_group = receiver.string("unix_socket_group", cx);
    let tcp_on = receiver.bool("receive_on_tcp_socket", cx);
    let tcp_addr = receiver.addr("receiver_tcp_socket", cx);
    let unix_ttl = receiver.ttl("unix_socket_ttl", cx);
    let tcp_ttl = receiver.ttl("tcp_socket_ttl", cx);
    if unix_on.unwrap_or(unix_path.is_some()) {
        match unix_path {
            Some(path) => receivers.push(ReceiverConfig {
                name: "unix".to_owned(),
                endpoint: Endpoint::Unix(UnixSocketConfig {
                    path: PathBuf::from(path),
                    user: owner(unix_user, "current_user"),
                    group: owner(unix_group, "current_group"),
                    mode: default_mode,
                }),
                format,
                max_connections: concurrent,
                ttl: unix_ttl,
            }),
            // A present but invalid value was already reported.
            None if receiver.has("receiver_unix_socket") => {}
            None => cx.problems.push(
                "`receiver.receiver_unix_socket`: required when `receive_on_unix_socket = true`"
                    .to_owned(),
            ),
        }
    }
    if tcp_on.unwrap_or(tcp_addr.is_some()) {
        match tcp_addr {
            Some(addr) => receivers.push(ReceiverConfig {
                name: "tcp".to_owned(),
                endpoint: Endpoint::Tcp(addr),
                format,
                max_connections: concurrent,
                ttl: tcp_ttl,
            }),
            None if receiver.has("receiver_tcp_socket") => {}
            None => cx.problems.push(
                "`receiver.receiver_tcp_socket`: required when `receive_on_tcp_socket = true`"
                    .to_owned(),
            ),
        }
    }

    // per-format layout: `[receiver.capnp]` and `[receiver.json]`.
    for (key, fmt) in [("capnp", WireFormat::Capnp), ("json", WireFormat::Json)] {
        let mut t = receiver.sub(key, cx);
        if !t.present() {
            continue;
        }
        let path = t.string("receiver_unix_socket", cx);
        let user = t.string("unix_socket_user", cx);
        let group = t.string("unix_socket_group", cx);
        let mode = t.mode("unix_socket_mode", cx).unwrap_or(default_mode);
        let ttl = t.ttl("ttl", cx);
        if let Some(path) = path {
            receivers.push(ReceiverConfig {
                name: format!("{key}_unix"),
                endpoint: Endpoint::Unix(UnixSocketConfig {
                    path: PathBuf::from(path),
                    user: owner(user, "current_user"),
                    group: owner(group, "current_group"),
                    mode,
                }),
                format: fmt,
                max_connections: concurrent,
                ttl,
            });
        }
        if let Some(addr) = t.addr("receiver_tcp_socket", cx) {
            receivers.push(ReceiverConfig {
                name: format!("{key}_tcp"),
                endpoint: Endpoint::Tcp(addr),
                format: fmt,
                max_connections: concurrent,
                ttl,
            });
        }
        t.finish(cx);
    }

    let mut rpc_t = receiver.sub("rpc", cx);
    let rpc = if rpc_t.present() {
        let listen = rpc_t.addr("receiver_tcp_socket", cx);
        let ttl = rpc_t.ttl("ttl", cx);
        if listen.is_none() && !rpc_t.has("receiver_tcp_socket") {
            cx.problems.push(
                "`receiver.rpc.receiver_tcp_socket`: required in `[receiver.rpc]`".to_owned(),
            );
        }
        rpc_t.finish(cx);
        listen.map(|listen| RpcConfig {
            listen,
            max_connections: concurrent,
            ttl,
        })
    } else {
        None
    };
    receiver.finish(cx);

    check_duplicate_endpoints(&receivers, rpc.as_ref(), http_listen, cx);
    if allowed_networks.is_none() {
        let tcp = receivers.iter().filter_map(|r| match &r.endpoint {
            Endpoint::Tcp(a) => Some(*a),
            Endpoint::Unix(_) => None,
        });
        for a in tcp.chain(rpc.as_ref().map(|r| r.listen)) {
            if !a.ip().is_loopback() {
                cx.warnings.push(format!(
                    "a TCP receiver listens on {a} and accepts pushes from any peer: \
                     set `receiver.allowed_networks` to restrict it"
                ));
            }
        }
    }

    let mut lim = top.sub("limits", cx);
    let defaults = Limits::default();
    let limits = Limits {
        max_push_bytes: lim
            .size("max_push_bytes", cx)
            .map_or(defaults.max_push_bytes, |n| n as usize),
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
    };
    lim.finish(cx);

    let mut push = top.sub("push_api", cx);
    let push_api = push.bool("enabled", cx).unwrap_or(true);
    let push_api_ttl = push.ttl("ttl", cx);
    push.finish(cx);

    let sinks = outputs::build_sinks(&mut top, cx);
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
    let poll = poll::build_poll(&mut top, app_label.as_deref(), limits.max_push_bytes, cx);
    // Walked by `collect::spec` (also for YAML/JSON files); app names are
    // unique across polled targets and collectors.
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
    let providers = outputs::build_providers(&mut top, cx);
    top.finish(cx);

    Some(Config {
        worker_threads,
        http_listen,
        receivers,
        rpc,
        app_label,
        limits,
        shutdown_grace,
        default_ttl,
        expiry_interval,
        push_api_ttl,
        poll,
        collectors,
        push_api,
        sinks,
        persistence,
        web_config_file,
        allowed_networks,
        providers,
    })
}

#[cfg(test)]
mod tests;
/// `current_user` / `current_group` (and absence) mean "the process's own".
fn owner(v: Option<String>, magic: &str) -> Option<String> {
    v.filter(|s| s != magic)
}

fn check_duplicate_endpoints(
    receivers: &[ReceiverConfig],
    rpc: Option<&RpcConfig>,
    http: SocketAddr,
    cx: &mut Cx,
) {
    // Port 0 asks the kernel for a free port: never a clash.
    let tcp = |a: &SocketAddr| (a.port() != 0).then(|| a.to_string());
    let mut seen: Vec<(String, String)> = Vec::new();
    if let Some(a) = tcp(&http) {
        seen.push((a, "exporter.scrape_expose_endpoint".into()));
    }
    if let Some(a) = rpc.and_then(|r| tcp(&r.listen)) {
        seen.push((a, "receiver.rpc.receiver_tcp_socket".into()));
    }
    for r in receivers {
        // The key the receiver came from: `unix`/`tcp` are the master
        // layout's flat keys, `json_tcp` etc. the per-format tables.
        let table = match r.name.split_once('_') {
            Some((format, _)) => format!("receiver.{format}"),
            None => "receiver".to_owned(),
        };
        let (addr, key) = match &r.endpoint {
            Endpoint::Tcp(a) => match tcp(a) {
                Some(a) => (a, format!("{table}.receiver_tcp_socket")),
                None => continue,
            },
            Endpoint::Unix(u) => (
                u.path.display().to_string(),
                format!("{table}.receiver_unix_socket"),
            ),
        };
        seen.push((addr, key));
    }
    for (i, (a, key)) in seen.iter().enumerate() {
        if let Some((_, other)) = seen[..i].iter().find(|(b, _)| b == a) {
            cx.problems
                .push(format!("`{key}`: address {a} is already used by `{other}`"));
        }
    }
}
