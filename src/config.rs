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

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

/// Default per-push byte limit: large enough for a 100k-series application,
/// small enough that a hostile client cannot make us allocate gigabytes.
pub const DEFAULT_MAX_PUSH_BYTES: u64 = 16 * 1024 * 1024;
/// Default series limit per application (Pushgateway users report trouble
/// around a few hundred thousand series in total; one app rarely needs more).
pub const DEFAULT_MAX_SERIES_PER_APP: u64 = 100_000;
/// Default limit on distinct applications in the store.
pub const DEFAULT_MAX_APPS: u64 = 10_000;
/// Default total time a client may take to send one push connection.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a client may stay silent before we give up on it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
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
    /// `[poll_external]`, parsed and validated (used by the poller).
    pub poll: Option<PollConfig>,
    /// Whether the Pushgateway-compatible push API is served.
    pub push_api: bool,
    /// Forwarding to time-series databases.
    pub sinks: Vec<crate::sinks::SinkConfig>,
    /// `exporter.web_config_file`: TLS and basic auth of the HTTP port
    /// (Prometheus web configuration format; see [`crate::web`]). The
    /// `--web.config.file` flag overrides it.
    pub web_config_file: Option<PathBuf>,
    /// `receiver.allowed_networks`: peers of the TCP receivers (stream and
    /// RPC) must be in one of these networks; `None` allows any peer.
    pub allowed_networks: Option<crate::netacl::AllowedNetworks>,
}

/// Where a secret comes from; read at start-up, never logged.
#[derive(Clone, PartialEq)]
pub enum Secret {
    /// The contents of a file (trailing newline removed).
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Where it comes from is not secret; the value never gets here.
        match self {
            Secret::File(p) => write!(f, "File({})", p.display()),
            Secret::Env(n) => write!(f, "Env({n})"),
        }
    }
}

impl Secret {
    /// Reads the secret.
    pub fn read(&self) -> Result<String, String> {
        match self {
            Secret::File(p) => std::fs::read_to_string(p)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| format!("cannot read {}: {e}", p.display())),
            Secret::Env(n) => {
                std::env::var(n).map_err(|_| format!("environment variable {n} is not set"))
            }
        }
    }
}

/// Wire format accepted by a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// One JSON document per connection.
    Json,
    /// Cap'n Proto stream framing, many messages per connection.
    Capnp,
    /// Detected per connection from its first byte.
    Auto,
}

impl WireFormat {
    /// The name used in the config and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            WireFormat::Json => "json",
            WireFormat::Capnp => "capnp",
            WireFormat::Auto => "auto",
        }
    }
}

/// One stream listener receiving pushes.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    /// Short name used in logs and metric labels, e.g. `unix` or `json_tcp`.
    pub name: String,
    /// Where it listens.
    pub endpoint: Endpoint,
    /// What it accepts.
    pub format: WireFormat,
    /// Maximum concurrent connections (`concurrent_requests`).
    pub max_connections: usize,
}

/// A listening address.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket with its ownership and permissions.
    Unix(UnixSocketConfig),
}

/// A Unix socket path with owner, group and mode.
#[derive(Debug, Clone, PartialEq)]
pub struct UnixSocketConfig {
    /// Socket path.
    pub path: PathBuf,
    /// Owner by name; `None` = the current user.
    pub user: Option<String>,
    /// Group by name; `None` = the current user's primary group.
    pub group: Option<String>,
    /// Permission bits applied after binding.
    pub mode: u32,
}

/// The Cap'n Proto RPC listener.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcConfig {
    /// TCP address to listen on.
    pub listen: SocketAddr,
    /// Maximum concurrent connections.
    pub max_connections: usize,
}

/// Limits applied to every push, whatever its ingress.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Bytes per push (per connection for JSON, per message for Cap'n Proto).
    pub max_push_bytes: usize,
    /// Series (sample lines) per application.
    pub max_series_per_app: usize,
    /// Number of distinct applications.
    pub max_apps: usize,
    /// Total time to receive one connection's data.
    pub read_timeout: Duration,
    /// Maximum silence between two reads.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_push_bytes: DEFAULT_MAX_PUSH_BYTES as usize,
            max_series_per_app: DEFAULT_MAX_SERIES_PER_APP as usize,
            max_apps: DEFAULT_MAX_APPS as usize,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// The original `[poll_external]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct PollConfig {
    /// Whether polling is enabled.
    pub enabled: bool,
    /// URLs to GET.
    pub endpoints: Vec<String>,
    /// Skip TLS verification (the original sample had this on; ours defaults off).
    pub allow_invalid_certs: bool,
    /// Time between polls.
    pub interval: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
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
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: Some(path.to_owned()),
            problems: vec![format!("cannot read file: {e}")],
        })?;
        Config::parse(&text).map_err(|mut e| {
            e.path = Some(path.to_owned());
            e
        })
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Loaded, ConfigError> {
        let root: Table = toml::from_str(text).map_err(|e| ConfigError {
            path: None,
            problems: vec![format!("not valid TOML: {}", e.to_string().trim_end())],
        })?;
        let mut cx = Cx::default();
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

/// Collected problems and warnings.
#[derive(Default)]
struct Cx {
    problems: Vec<String>,
    warnings: Vec<String>,
}

/// A TOML table being consumed key by key; the keys never asked for are
/// reported as unknown by [`Section::finish`].
struct Section<'t> {
    path: String,
    table: Option<&'t Table>,
    used: BTreeSet<&'static str>,
}

impl<'t> Section<'t> {
    fn root(table: &'t Table) -> Self {
        Section {
            path: String::new(),
            table: Some(table),
            used: BTreeSet::new(),
        }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn present(&self) -> bool {
        self.table.is_some()
    }

    fn has(&self, key: &str) -> bool {
        self.table.is_some_and(|t| t.contains_key(key))
    }

    fn raw(&mut self, key: &'static str) -> Option<&'t Value> {
        self.used.insert(key);
        self.table.and_then(|t| t.get(key))
    }

    fn sub(&mut self, key: &'static str, cx: &mut Cx) -> Section<'t> {
        let path = self.key_path(key);
        let table = match self.raw(key) {
            None => None,
            Some(Value::Table(t)) => Some(t),
            Some(other) => {
                cx.problems.push(format!(
                    "`{path}`: expected a table, found {}",
                    other.type_str()
                ));
                None
            }
        };
        Section {
            path,
            table,
            used: BTreeSet::new(),
        }
    }

    fn get<T>(
        &mut self,
        key: &'static str,
        cx: &mut Cx,
        conv: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.raw(key)?;
        match conv(v) {
            Ok(t) => Some(t),
            Err(msg) => {
                cx.problems.push(format!("`{}`: {msg}", self.key_path(key)));
                None
            }
        }
    }

    fn bool(&mut self, key: &'static str, cx: &mut Cx) -> Option<bool> {
        self.get(key, cx, |v| {
            v.as_bool().ok_or_else(|| expected("a boolean", v))
        })
    }

    fn string(&mut self, key: &'static str, cx: &mut Cx) -> Option<String> {
        self.get(key, cx, |v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| expected("a string", v))
        })
    }

    fn int(&mut self, key: &'static str, cx: &mut Cx, min: u64, max: u64) -> Option<u64> {
        self.get(key, cx, |v| {
            let n = v.as_integer().ok_or_else(|| expected("an integer", v))?;
            u64::try_from(n)
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("expected an integer from {min} to {max}, found {n}"))
        })
    }

    fn addr(&mut self, key: &'static str, cx: &mut Cx) -> Option<SocketAddr> {
        self.get(key, cx, |v| {
            let s = v.as_str().ok_or_else(|| expected("an address string", v))?;
            s.parse::<SocketAddr>().map_err(|_| {
                format!("expected an IP address and port such as \"127.0.0.1:6554\" or \"[::1]:6554\", found {s:?}")
            })
        })
    }

    /// A duration: integer seconds (as the original) or a string such as
    /// `"500ms"`, `"30s"`, `"1h30m"`.
    fn duration(&mut self, key: &'static str, cx: &mut Cx, allow_zero: bool) -> Option<Duration> {
        self.get(key, cx, |v| {
            let d = match v {
                Value::Integer(n) if *n >= 0 => Duration::from_secs(*n as u64),
                Value::String(s) => humantime::parse_duration(s).map_err(|e| {
                    format!("expected a duration such as \"30s\" or \"1m30s\", found {s:?} ({e})")
                })?,
                other => {
                    return Err(expected(
                        "seconds or a duration string such as \"30s\"",
                        other,
                    ))
                }
            };
            if d.is_zero() && !allow_zero {
                return Err("must be greater than zero".to_owned());
            }
            Ok(d)
        })
    }

    fn size(&mut self, key: &'static str, cx: &mut Cx) -> Option<u64> {
        self.get(key, cx, |v| {
            let n = match v {
                Value::Integer(n) if *n > 0 => *n as u64,
                Value::String(s) => parse_size(s)?,
                other => {
                    return Err(expected(
                        "a positive byte count or a size such as \"16MiB\"",
                        other,
                    ))
                }
            };
            if n == 0 {
                return Err("must be greater than zero".to_owned());
            }
            Ok(n)
        })
    }

    fn mode(&mut self, key: &'static str, cx: &mut Cx) -> Option<u32> {
        self.get(key, cx, |v| {
            let n = match v {
                Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
                    .map_err(|_| format!("expected an octal mode such as \"0660\", found {s:?}"))?,
                Value::Integer(n) => u32::try_from(*n).map_err(|_| format!("invalid mode {n}"))?,
                other => return Err(expected("an octal mode string such as \"0660\"", other)),
            };
            if n > 0o777 {
                return Err(format!("mode {n:o} has bits beyond 0777"));
            }
            Ok(n)
        })
    }

    /// Reports every key that no one asked for.
    fn finish(self, cx: &mut Cx) {
        let Some(t) = self.table else { return };
        for key in t.keys() {
            if !self.used.contains(key.as_str()) {
                cx.problems
                    .push(format!("`{}`: unknown key", self.key_path(key)));
            }
        }
    }
}

fn expected(what: &str, v: &Value) -> String {
    format!("expected {what}, found {}", v.type_str())
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: u64 = num
        .parse()
        .map_err(|_| format!("expected a size such as \"16MiB\", found {s:?}"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB or GiB)"
            ))
        }
    };
    num.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
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
    let web_config_file = exporter.string("web_config_file", cx).map(PathBuf::from);
    for key in ["stale_check_interval", "stale_metric_ttl"] {
        if exporter.raw(key).is_some() {
            cx.warnings.push(format!(
                "`exporter.{key}` (from the original's unmerged branch) is accepted but has no effect"
            ));
        }
    }
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
            });
        }
        if let Some(addr) = t.addr("receiver_tcp_socket", cx) {
            receivers.push(ReceiverConfig {
                name: format!("{key}_tcp"),
                endpoint: Endpoint::Tcp(addr),
                format: fmt,
                max_connections: concurrent,
            });
        }
        t.finish(cx);
    }

    let mut rpc_t = receiver.sub("rpc", cx);
    let rpc = if rpc_t.present() {
        let listen = rpc_t.addr("receiver_tcp_socket", cx);
        if listen.is_none() && !rpc_t.has("receiver_tcp_socket") {
            cx.problems.push(
                "`receiver.rpc.receiver_tcp_socket`: required in `[receiver.rpc]`".to_owned(),
            );
        }
        rpc_t.finish(cx);
        listen.map(|listen| RpcConfig {
            listen,
            max_connections: concurrent,
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
    push.finish(cx);

    let sinks = build_sinks(&mut top, cx);
    let poll = build_poll(&mut top, cx);
    top.finish(cx);

    Some(Config {
        worker_threads,
        http_listen,
        receivers,
        rpc,
        app_label,
        limits,
        shutdown_grace,
        poll,
        push_api,
        sinks,
        web_config_file,
        allowed_networks,
    })
}

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

/// `[[sinks.remote_write]]` and `[[sinks.influxdb]]`.
fn build_sinks(top: &mut Section<'_>, cx: &mut Cx) -> Vec<crate::sinks::SinkConfig> {
    use crate::sinks::{influx::Api, SinkConfig, SinkKind};
    let mut sinks_t = top.sub("sinks", cx);
    let mut out = Vec::new();
    for kind in ["remote_write", "influxdb"] {
        let tables: Vec<&Table> = match sinks_t.raw(kind) {
            None => continue,
            Some(Value::Array(a)) => {
                let mut v = Vec::new();
                for (i, t) in a.iter().enumerate() {
                    match t {
                        Value::Table(t) => v.push(t),
                        other => cx.problems.push(format!(
                            "`sinks.{kind}[{i}]`: {}",
                            expected("a table ([[sinks.{kind}]])", other)
                        )),
                    }
                }
                v
            }
            Some(other) => {
                cx.problems.push(format!(
                    "`sinks.{kind}`: {}",
                    expected("an array of tables ([[sinks.{kind}]])", other)
                ));
                continue;
            }
        };
        for (i, t) in tables.into_iter().enumerate() {
            let mut sec = Section {
                path: format!("sinks.{kind}[{i}]"),
                table: Some(t),
                used: BTreeSet::new(),
            };
            let name = sec
                .string("name", cx)
                .unwrap_or_else(|| format!("{kind}_{i}"));
            let url = sec.get("url", cx, |v| {
                let s = v.as_str().ok_or_else(|| expected("a URL string", v))?;
                if s.starts_with("http://") || s.starts_with("https://") {
                    Ok(s.to_owned())
                } else {
                    Err(format!("expected an http:// or https:// URL, found {s:?}"))
                }
            });
            if url.is_none() && !sec.has("url") {
                cx.problems
                    .push(format!("`{}`: required", sec.key_path("url")));
            }
            let secret =
                |sec: &mut Section<'_>, cx: &mut Cx, file: &'static str, env: &'static str| {
                    let f = sec.string(file, cx).map(|p| Secret::File(PathBuf::from(p)));
                    let e = sec.string(env, cx).map(Secret::Env);
                    if f.is_some() && e.is_some() {
                        cx.problems.push(format!(
                            "`{}`: set either {file} or {env}, not both",
                            sec.path
                        ));
                    }
                    f.or(e)
                };
            let kind_cfg = if kind == "remote_write" {
                let token = secret(&mut sec, cx, "bearer_token_file", "bearer_token_env");
                url.map(|url| SinkKind::RemoteWrite {
                    url,
                    bearer_token: token,
                })
            } else {
                let api = sec.string("api", cx).unwrap_or_else(|| "v1".to_owned());
                let database = sec.string("database", cx);
                let org = sec.string("org", cx);
                let bucket = sec.string("bucket", cx);
                let token = secret(&mut sec, cx, "token_file", "token_env");
                let api = match (api.as_str(), database, org, bucket) {
                    ("v1", Some(database), _, _) => Some(Api::V1 { database }),
                    ("v1", None, _, _) => {
                        cx.problems.push(format!(
                            "`{}`: required with api = \"v1\"",
                            sec.key_path("database")
                        ));
                        None
                    }
                    ("v2", _, Some(org), Some(bucket)) => Some(Api::V2 { org, bucket }),
                    ("v2", _, _, _) => {
                        cx.problems.push(format!(
                            "`{}`: org and bucket are required with api = \"v2\"",
                            sec.path
                        ));
                        None
                    }
                    (other, ..) => {
                        cx.problems.push(format!(
                            "`{}`: expected \"v1\" or \"v2\", found {other:?}",
                            sec.key_path("api")
                        ));
                        None
                    }
                };
                match (url, api) {
                    (Some(url), Some(api)) => Some(SinkKind::Influx { url, api, token }),
                    _ => None,
                }
            };
            let interval = sec
                .duration("interval", cx, false)
                .unwrap_or(std::time::Duration::from_secs(15));
            let timeout = sec
                .duration("timeout", cx, false)
                .unwrap_or(std::time::Duration::from_secs(10));
            let queue_capacity = sec.int("queue_capacity", cx, 1, 100_000).unwrap_or(16) as usize;
            let max_retries = sec.int("max_retries", cx, 0, 100).unwrap_or(5) as u32;
            let max_samples = sec
                .int("max_samples_per_request", cx, 1, 10_000_000)
                .unwrap_or(5000) as usize;
            let app_label = sec
                .string("app_label", cx)
                .unwrap_or_else(|| "app".to_owned());
            if !crate::exposition::is_valid_label_name(&app_label) || app_label.starts_with("__") {
                cx.problems.push(format!(
                    "`{}`: {app_label:?} is not a valid label name",
                    sec.key_path("app_label")
                ));
            }
            sec.finish(cx);
            if out.iter().any(|s: &SinkConfig| s.name == name) {
                cx.problems.push(format!(
                    "`{}`: another sink is already named {name:?}",
                    sec_path(kind, i)
                ));
            }
            if let Some(kind) = kind_cfg {
                out.push(SinkConfig {
                    name,
                    kind,
                    interval,
                    timeout,
                    queue_capacity,
                    max_retries,
                    max_samples_per_request: max_samples,
                    app_label,
                });
            }
        }
    }
    sinks_t.finish(cx);
    out
}

fn sec_path(kind: &str, i: usize) -> String {
    format!("sinks.{kind}[{i}].name")
}

fn build_poll(top: &mut Section<'_>, cx: &mut Cx) -> Option<PollConfig> {
    let mut p = top.sub("poll_external", cx);
    if !p.present() {
        return None;
    }
    // master: explicit switch; per-format branch: presence of the table enables it.
    let enabled = p.bool("poll_other_scrape_endpoints", cx).unwrap_or(true);
    let endpoints: Vec<String> = p
        .get("other_scrape_endpoints", cx, |v| {
            let arr = v
                .as_array()
                .ok_or_else(|| expected("an array of URLs", v))?;
            arr.iter()
                .enumerate()
                .map(|(i, u)| {
                    let s = u
                        .as_str()
                        .ok_or_else(|| format!("element {i}: {}", expected("a URL string", u)))?;
                    if s.starts_with("http://") || s.starts_with("https://") {
                        Ok(s.to_owned())
                    } else {
                        Err(format!(
                            "element {i}: expected an http:// or https:// URL, found {s:?}"
                        ))
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let allow_invalid_certs = p.bool("allow_invalid_certs", cx).unwrap_or(false);
    let interval = p
        .duration("poll_interval", cx, false)
        .unwrap_or(Duration::from_secs(15));
    let timeout = p
        .duration("client_timeout", cx, false)
        .unwrap_or(Duration::from_secs(10));
    p.finish(cx);
    if enabled {
        cx.warnings.push(
            "`poll_external`: polling other exporters is not implemented in this version yet; \
             the targets are validated but not polled"
                .to_owned(),
        );
    }
    Some(PollConfig {
        enabled,
        endpoints,
        allow_invalid_certs,
        interval,
        timeout,
    })
}

#[cfg(test)]
mod tests;
