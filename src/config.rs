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

use crate::secret::SecretSource;

use crate::store::Ttl;

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
/// Default silence allowed between two Cap'n Proto messages on one
/// connection: the original kept such connections forever, and clients
/// push every 10-60 s on one connection.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default budget of bytes held by pushes in progress: 16 full-size pushes
/// at once, a few hundred MiB, whatever the number of slow senders.
pub const DEFAULT_MAX_INFLIGHT_PUSH_BYTES: u64 = 256 * 1024 * 1024;
/// Default number of connections waiting for a slot per listener: a burst
/// of cron jobs starting on the same minute; each holds one descriptor.
pub const DEFAULT_MAX_QUEUED_CONNECTIONS: u64 = 4096;
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

/// `[providers]`: the ssp-exporter provider file and how it is run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvidersConfig {
    /// The ssp-exporter YAML or JSON file (`config_file`).
    pub file: PathBuf,
    /// Time limit of one collection (every request and the whole flow).
    pub timeout: Duration,
    /// Most collections running at once.
    pub max_concurrent: usize,
    /// The file's content, validated.
    pub ssp: crate::providers::SspConfig,
}

/// Default `providers.timeout`: portals are slow, but a login flow that
/// takes longer than this is hung.
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `providers.max_concurrent`: a few logins at once, so one slow
/// portal never delays the others, without hammering anyone.
pub const DEFAULT_PROVIDER_CONCURRENCY: u64 = 4;

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
    /// TTL of pushes through this listener (`None`: the default).
    pub ttl: Option<Ttl>,
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
    /// TTL of pushes through RPC (`None`: the default).
    pub ttl: Option<Ttl>,
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
    /// Maximum silence between two complete Cap'n Proto messages of a
    /// stream or RPC connection (`None`: never closed for idleness).
    pub stream_idle_timeout: Option<Duration>,
    /// Bytes held by all pushes being received at once, across listeners.
    pub max_inflight_push_bytes: usize,
    /// Connections waiting for a slot over `concurrent_requests`, per
    /// listener; beyond this they are refused at once.
    pub max_queued_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_push_bytes: DEFAULT_MAX_PUSH_BYTES as usize,
            max_series_per_app: DEFAULT_MAX_SERIES_PER_APP as usize,
            max_apps: DEFAULT_MAX_APPS as usize,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            stream_idle_timeout: Some(DEFAULT_STREAM_IDLE_TIMEOUT),
            max_inflight_push_bytes: DEFAULT_MAX_INFLIGHT_PUSH_BYTES as usize,
            max_queued_connections: DEFAULT_MAX_QUEUED_CONNECTIONS as usize,
        }
    }
}

/// Polling: static targets, concurrency and self-registration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PollConfig {
    /// Targets from `[poll_external]` (original keys) and `[[poll.targets]]`.
    pub targets: Vec<TargetConfig>,
    /// Most polls running at once, across all targets.
    pub max_concurrent: usize,
    /// `[poll.register]`, when enabled.
    pub register: Option<RegisterConfig>,
}

/// One target to poll. Compared whole by the scheduler's reconciliation:
/// any change reschedules the target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// The app name its metrics are stored under (never the resolved IP).
    pub name: String,
    /// The `http://` or `https://` URL to GET.
    pub url: String,
    /// Time between two polls.
    pub interval: Duration,
    /// Whole-request timeout (connect, headers, body); at most `interval`.
    pub timeout: Duration,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Credentials, read from a file or the environment at every poll.
    pub auth: Option<Auth>,
    /// PEM file with the CA certificates to trust (instead of the system's).
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification.
    pub insecure_skip_verify: bool,
    /// Labels added to every series of the target.
    pub labels: Vec<(String, String)>,
    /// Largest accepted body, after decompression.
    pub max_body_bytes: usize,
    /// How long the last good data is served while polls fail.
    pub stale_after: Duration,
}

/// Credentials of a polled target.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(SecretSource),
    /// `Authorization: Basic ...`.
    Basic {
        /// User name (not secret).
        username: String,
        /// The password.
        password: SecretSource,
    },
}

/// An IP network such as `127.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `addr/prefix` or a single address.
    pub fn parse(s: &str) -> Result<IpNet, String> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: std::net::IpAddr = a
            .parse()
            .map_err(|_| format!("expected a network such as \"127.0.0.0/8\", found {s:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("invalid prefix length in {s:?}: expected 0 to {max}"))?
        };
        Ok(IpNet { addr, prefix })
    }

    /// Whether `ip` is inside this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let bits = |a: IpAddr| -> (u128, u32) {
            match a.to_canonical() {
                IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let (net, width) = bits(self.addr);
        let (ip, ip_width) = bits(ip);
        if width != ip_width {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        shift >= 128 || (net >> shift) == (ip >> shift)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `[poll.register]`: exporters registering themselves over HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterConfig {
    /// Peers allowed to use `/register`.
    pub allowed_networks: Vec<IpNet>,
    /// Optional token required as `Authorization: Bearer <token>`.
    pub token: Option<SecretSource>,
    /// Most registrations held at once.
    pub max_registrations: usize,
    /// Shortest interval a registration may ask for.
    pub min_interval: Duration,
    /// Interval when a registration names none.
    pub default_interval: Duration,
    /// TTL when a registration names none.
    pub default_ttl: Duration,
    /// Longest TTL a registration may ask for.
    pub max_ttl: Duration,
    /// Poll timeout of registered targets (capped at their interval).
    pub timeout: Duration,
    /// Largest body accepted from a registered target.
    pub max_body_bytes: usize,
    /// Where registrations are kept across restarts; `None`: in memory only.
    pub registry_file: Option<PathBuf>,
}

/// Default for `poll.max_concurrent_polls`: enough to keep a few dozen
/// targets on time, few enough that start-up does not open hundreds of
/// connections at once.
pub const DEFAULT_MAX_CONCURRENT_POLLS: u64 = 16;
/// Default poll interval (Prometheus' default scrape interval is 15-60 s).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(15);
/// Default poll timeout.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(10);
/// `stale_after` defaults to this many intervals.
pub const DEFAULT_STALE_INTERVALS: u32 = 5;

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

/// Collected problems and warnings.
#[derive(Default)]
struct Cx {
    problems: Vec<String>,
    warnings: Vec<String>,
    /// Directory relative file names are taken from.
    dir: PathBuf,
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

    /// A TTL: `"never"`, integer seconds (> 0) or a duration string.
    fn ttl(&mut self, key: &'static str, cx: &mut Cx) -> Option<Ttl> {
        self.get(key, cx, |v| match v {
            Value::Integer(n) if *n > 0 => Ok(Ttl::After(Duration::from_secs(*n as u64))),
            Value::Integer(_) => {
                Err("expected a positive number of seconds, or \"never\"".to_owned())
            }
            Value::String(s) => Ttl::parse(s),
            other => Err(expected(
                "\"never\", seconds or a duration string such as \"5m\"",
                other,
            )),
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

/// A list of CIDR networks (`allowed_networks` keys).
fn networks(v: &Value) -> Result<crate::netacl::AllowedNetworks, String> {
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
    // Names from the original's per-format branch, implemented here.
    let default_ttl = exporter.ttl("stale_metric_ttl", cx).unwrap_or(Ttl::Never);
    let expiry_interval = exporter
        .duration("stale_check_interval", cx, false)
        .unwrap_or(Duration::from_secs(1));
    let web_config_file = exporter.string("web_config_file", cx).map(PathBuf::from);
    let enable_lifecycle = exporter.bool("enable_lifecycle", cx);
    let enable_admin_api = exporter.bool("enable_admin_api", cx);
    let max_http_connections = exporter
        .int("max_http_connections", cx, 1, 1 << 20)
        .map(|n| n as usize);
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
    let allowed_networks = receiver.get("allowed_networks", cx, networks);

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
    };
    lim.finish(cx);
    if limits.max_inflight_push_bytes < limits.max_push_bytes {
        cx.problems.push(format!(
            "`limits.max_inflight_push_bytes`: {} is below `limits.max_push_bytes` ({}): a full-size push could never be received",
            limits.max_inflight_push_bytes, limits.max_push_bytes
        ));
    }

    let mut push = top.sub("push_api", cx);
    let push_api = push.bool("enabled", cx).unwrap_or(true);
    let push_api_ttl = push.ttl("ttl", cx);
    let push_api_networks = push.get("allowed_networks", cx, networks);
    push.finish(cx);
    let gates = crate::http::gates::Gates {
        lifecycle: enable_lifecycle.unwrap_or(false),
        admin_api: enable_admin_api.unwrap_or(false),
        push_api_networks: push_api_networks.unwrap_or_else(crate::http::gates::Gates::loopback),
        max_http_connections: max_http_connections
            .unwrap_or(crate::http::gates::DEFAULT_MAX_HTTP_CONNECTIONS),
    };

    let sinks = build_sinks(&mut top, cx);
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
    let poll = build_poll(&mut top, app_label.as_deref(), limits.max_push_bytes, cx);
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
    let providers = build_providers(&mut top, cx);
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
        gates,
    })
}

/// `[providers]`: reads and validates the provider file it names.
fn build_providers(top: &mut Section<'_>, cx: &mut Cx) -> Option<ProvidersConfig> {
    let mut sec = top.sub("providers", cx);
    if !sec.present() {
        return None;
    }
    let file = sec.string("config_file", cx);
    let timeout = sec
        .duration("timeout", cx, false)
        .unwrap_or(DEFAULT_PROVIDER_TIMEOUT);
    let max_concurrent = sec
        .int("max_concurrent", cx, 1, 1024)
        .unwrap_or(DEFAULT_PROVIDER_CONCURRENCY) as usize;
    sec.finish(cx);
    let Some(file) = file else {
        cx.problems.push(
            "`providers.config_file`: missing: expected the ssp-exporter YAML or JSON file"
                .to_owned(),
        );
        return None;
    };
    let file = cx.dir.join(file);
    match crate::providers::config::load(&file) {
        Ok(ssp) => Some(ProvidersConfig {
            file,
            timeout,
            max_concurrent,
            ssp,
        }),
        Err(problems) => {
            for p in problems {
                cx.problems
                    .push(format!("`providers.config_file` ({}): {p}", file.display()));
            }
            None
        }
    }
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
                    let f = sec
                        .string(file, cx)
                        .map(|p| SecretSource::File(PathBuf::from(p)));
                    let e = sec.string(env, cx).map(SecretSource::Env);
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

fn build_poll(
    top: &mut Section<'_>,
    app_label: Option<&str>,
    max_push_bytes: usize,
    cx: &mut Cx,
) -> PollConfig {
    let mut targets = legacy_targets(top, max_push_bytes, cx);

    let mut p = top.sub("poll", cx);
    let max_concurrent = p
        .int("max_concurrent_polls", cx, 1, 10_000)
        .unwrap_or(DEFAULT_MAX_CONCURRENT_POLLS) as usize;
    if let Some(v) = p.raw("targets") {
        match v.as_array() {
            Some(arr) => {
                for (i, t) in arr.iter().enumerate() {
                    let path = format!("poll.targets[{i}]");
                    match t.as_table() {
                        Some(table) => {
                            let mut sec = Section {
                                path,
                                table: Some(table),
                                used: BTreeSet::new(),
                            };
                            if let Some(t) = target(&mut sec, app_label, max_push_bytes, cx) {
                                targets.push(t);
                            }
                            sec.finish(cx);
                        }
                        None => cx.problems.push(format!(
                            "`{path}`: {}",
                            expected("a table ([[poll.targets]])", t)
                        )),
                    }
                }
            }
            None => cx.problems.push(format!(
                "`poll.targets`: {}",
                expected("an array of tables ([[poll.targets]])", v)
            )),
        }
    }
    let register = build_register(&mut p, max_push_bytes, cx);
    p.finish(cx);

    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for t in &targets {
        if !seen.insert(t.name.as_str()) {
            cx.problems.push(format!(
                "`poll`: two targets are named {:?}: expected unique names (set `name`)",
                t.name
            ));
        }
    }
    PollConfig {
        targets,
        max_concurrent,
        register,
    }
}

/// The original's `[poll_external]`, as targets.
fn legacy_targets(top: &mut Section<'_>, max_push_bytes: usize, cx: &mut Cx) -> Vec<TargetConfig> {
    let mut p = top.sub("poll_external", cx);
    if !p.present() {
        return Vec::new();
    }
    // master: explicit switch; per-format branch: presence of the table enables it.
    let enabled = p.bool("poll_other_scrape_endpoints", cx).unwrap_or(true);
    let urls: Vec<(String, String)> = p
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
                    let name = check_url(s).map_err(|e| format!("element {i}: {e}"))?;
                    Ok((s.to_owned(), name))
                })
                .collect()
        })
        .unwrap_or_default();
    let allow_invalid_certs = p.bool("allow_invalid_certs", cx).unwrap_or(false);
    let interval = p
        .duration("poll_interval", cx, false)
        .unwrap_or(DEFAULT_POLL_INTERVAL);
    let timeout = p
        .duration("client_timeout", cx, false)
        .unwrap_or(DEFAULT_POLL_TIMEOUT.min(interval));
    if timeout > interval {
        cx.problems.push(format!(
            "`poll_external.client_timeout`: {} is longer than `poll_interval` ({}): expected at most the interval",
            humantime::format_duration(timeout),
            humantime::format_duration(interval)
        ));
    }
    p.finish(cx);
    if !enabled {
        return Vec::new();
    }
    urls.into_iter()
        .map(|(url, name)| TargetConfig {
            name,
            url,
            interval,
            timeout,
            headers: Vec::new(),
            auth: None,
            ca_file: None,
            insecure_skip_verify: allow_invalid_certs,
            labels: Vec::new(),
            max_body_bytes: max_push_bytes,
            stale_after: interval * DEFAULT_STALE_INTERVALS,
        })
        .collect()
}

/// Checks a target URL; returns the app name derived from it: host, port
/// when given, and path (`127.0.0.1:9100/metrics`), never a resolved IP.
pub fn check_url(s: &str) -> Result<String, String> {
    let u = url::Url::parse(s).map_err(|e| format!("invalid URL {s:?}: {e}"))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(format!("expected an http:// or https:// URL, found {s:?}"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(
            "credentials in the URL would show in logs and /apps: use basic_auth".to_owned(),
        );
    }
    let host = u
        .host_str()
        .ok_or_else(|| format!("URL {s:?} has no host"))?;
    let mut name = host.to_owned();
    if let Some(port) = u.port() {
        name.push_str(&format!(":{port}"));
    }
    if u.path() != "/" {
        name.push_str(u.path());
    }
    Ok(name)
}

/// A string → string table (headers, labels).
fn string_map(sec: &mut Section<'_>, key: &'static str, cx: &mut Cx) -> Vec<(String, String)> {
    sec.get(key, cx, |v| {
        let t = v
            .as_table()
            .ok_or_else(|| expected("a table of strings", v))?;
        t.iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_owned()))
                    .ok_or_else(|| format!("`{k}`: {}", expected("a string", v)))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Checks target labels: valid names, not reserved, not the app label.
pub fn check_labels(labels: &[(String, String)], app_label: Option<&str>) -> Result<(), String> {
    /// More labels than this is a mistake, not a use case.
    const MAX_LABELS: usize = 32;
    if labels.len() > MAX_LABELS {
        return Err(format!("more than {MAX_LABELS} labels"));
    }
    for (k, v) in labels {
        if !crate::exposition::is_valid_label_name(k) || k.starts_with("__") {
            return Err(format!(
                "{k:?} is not a valid label name (expected [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
            ));
        }
        if Some(k.as_str()) == app_label {
            return Err(format!(
                "label {k:?} is `receiver.app_label`, which the proxy sets itself"
            ));
        }
        if v.len() > 1024 {
            return Err(format!(
                "the value of label {k:?} is longer than 1024 bytes"
            ));
        }
    }
    Ok(())
}

fn secret(
    sec: &mut Section<'_>,
    file_key: &'static str,
    env_key: &'static str,
    cx: &mut Cx,
) -> Option<SecretSource> {
    let file = sec.string(file_key, cx);
    let env = sec.string(env_key, cx);
    match (file, env) {
        (Some(_), Some(_)) => {
            cx.problems.push(format!(
                "`{}`: set either `{file_key}` or `{env_key}`, not both",
                sec.key_path(file_key)
            ));
            None
        }
        (Some(f), None) => Some(SecretSource::File(PathBuf::from(f))),
        (None, Some(e)) => Some(SecretSource::Env(e)),
        (None, None) => None,
    }
}

fn target(
    sec: &mut Section<'_>,
    app_label: Option<&str>,
    max_push_bytes: usize,
    cx: &mut Cx,
) -> Option<TargetConfig> {
    let url = sec.get("url", cx, |v| {
        let s = v.as_str().ok_or_else(|| expected("a URL string", v))?;
        check_url(s).map(|name| (s.to_owned(), name))
    });
    if url.is_none() && !sec.has("url") {
        cx.problems
            .push(format!("`{}`: required", sec.key_path("url")));
    }
    let name = sec.get("name", cx, |v| {
        let s = v.as_str().ok_or_else(|| expected("a string", v))?;
        crate::store::validate_app_name(s)
            .map(|()| s.to_owned())
            .map_err(|e| e.message)
    });
    let interval = sec
        .duration("interval", cx, false)
        .unwrap_or(DEFAULT_POLL_INTERVAL);
    let timeout = sec
        .duration("timeout", cx, false)
        .unwrap_or(DEFAULT_POLL_TIMEOUT.min(interval));
    if timeout > interval {
        cx.problems.push(format!(
            "`{}`: {} is longer than `interval` ({}): expected at most the interval",
            sec.key_path("timeout"),
            humantime::format_duration(timeout),
            humantime::format_duration(interval)
        ));
    }
    let headers = string_map(sec, "headers", cx);
    for (k, v) in &headers {
        let path = sec.key_path("headers");
        if axum::http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            cx.problems
                .push(format!("`{path}`: {k:?} is not a valid header name"));
        } else if k.eq_ignore_ascii_case("authorization") {
            cx.problems.push(format!(
                "`{path}`: put credentials in `bearer_token_file`/`bearer_token_env` or `basic_auth`, not in headers"
            ));
        } else if k.eq_ignore_ascii_case("host") || k.eq_ignore_ascii_case("accept") {
            cx.problems
                .push(format!("`{path}`: the proxy sets {k:?} itself"));
        }
        if axum::http::HeaderValue::from_str(v).is_err() {
            cx.problems.push(format!(
                "`{path}`: the value of {k:?} is not a valid header value"
            ));
        }
    }
    let bearer = secret(sec, "bearer_token_file", "bearer_token_env", cx);
    let mut basic_sec = sec.sub("basic_auth", cx);
    let basic = if basic_sec.present() {
        let username = basic_sec.string("username", cx);
        let password = secret(&mut basic_sec, "password_file", "password_env", cx);
        if username.is_none() && !basic_sec.has("username") {
            cx.problems
                .push(format!("`{}`: required", basic_sec.key_path("username")));
        }
        if password.is_none() && !basic_sec.has("password_file") && !basic_sec.has("password_env") {
            cx.problems.push(format!(
                "`{}`: `password_file` or `password_env` is required",
                basic_sec.path
            ));
        }
        basic_sec.finish(cx);
        username
            .zip(password)
            .map(|(username, password)| Auth::Basic { username, password })
    } else {
        None
    };
    let auth = match (bearer, basic) {
        (Some(_), Some(_)) => {
            cx.problems.push(format!(
                "`{}`: set a bearer token or `basic_auth`, not both",
                sec.path
            ));
            None
        }
        (Some(b), None) => Some(Auth::Bearer(b)),
        (None, basic) => basic,
    };
    let mut tls = sec.sub("tls", cx);
    let ca_file = tls.string("ca_file", cx).map(PathBuf::from);
    let insecure_skip_verify = tls.bool("insecure_skip_verify", cx).unwrap_or(false);
    if ca_file.is_some() && insecure_skip_verify {
        cx.problems.push(format!(
            "`{}`: `ca_file` has no effect with `insecure_skip_verify = true`",
            tls.path
        ));
    }
    tls.finish(cx);
    let labels = string_map(sec, "labels", cx);
    if let Err(e) = check_labels(&labels, app_label) {
        cx.problems
            .push(format!("`{}`: {e}", sec.key_path("labels")));
    }
    let max_body_bytes = sec
        .size("max_body_size", cx)
        .map_or(max_push_bytes, |n| n as usize);
    let stale_after = sec
        .duration("stale_after", cx, false)
        .unwrap_or(interval * DEFAULT_STALE_INTERVALS);
    if stale_after < interval {
        cx.problems.push(format!(
            "`{}`: expected at least `interval` ({})",
            sec.key_path("stale_after"),
            humantime::format_duration(interval)
        ));
    }
    let (url, derived) = url?;
    Some(TargetConfig {
        name: name.unwrap_or(derived),
        url,
        interval,
        timeout,
        headers,
        auth,
        ca_file,
        insecure_skip_verify,
        labels,
        max_body_bytes,
        stale_after,
    })
}

fn build_register(
    p: &mut Section<'_>,
    max_push_bytes: usize,
    cx: &mut Cx,
) -> Option<RegisterConfig> {
    let mut r = p.sub("register", cx);
    if !r.present() {
        return None;
    }
    let enabled = r.bool("enabled", cx).unwrap_or(true);
    let allowed_networks = r
        .get("allowed_networks", cx, |v| {
            let arr = v
                .as_array()
                .ok_or_else(|| expected("an array of networks", v))?;
            arr.iter()
                .enumerate()
                .map(|(i, n)| {
                    let s = n
                        .as_str()
                        .ok_or_else(|| format!("element {i}: {}", expected("a string", n)))?;
                    IpNet::parse(s).map_err(|e| format!("element {i}: {e}"))
                })
                .collect()
        })
        .unwrap_or_else(|| {
            vec![
                IpNet::parse("127.0.0.0/8").expect("valid"),
                IpNet::parse("::1/128").expect("valid"),
            ]
        });
    let token = secret(&mut r, "token_file", "token_env", cx);
    let max_registrations = r.int("max_registrations", cx, 1, 100_000).unwrap_or(1000) as usize;
    let min_interval = r
        .duration("min_interval", cx, false)
        .unwrap_or(Duration::from_secs(5));
    let default_interval = r
        .duration("default_interval", cx, false)
        .unwrap_or(Duration::from_secs(30).max(min_interval));
    let default_ttl = r
        .duration("default_ttl", cx, false)
        .unwrap_or(Duration::from_secs(300).max(default_interval));
    let max_ttl = r
        .duration("max_ttl", cx, false)
        .unwrap_or(Duration::from_secs(3600).max(default_ttl));
    let timeout = r
        .duration("timeout", cx, false)
        .unwrap_or(DEFAULT_POLL_TIMEOUT);
    let max_body_bytes = r
        .size("max_body_size", cx)
        .map_or(max_push_bytes, |n| n as usize);
    let registry_file = r.string("registry_file", cx).map(PathBuf::from);
    if default_interval < min_interval {
        cx.problems
            .push("`poll.register.default_interval`: expected at least `min_interval`".to_owned());
    }
    if default_ttl > max_ttl {
        cx.problems
            .push("`poll.register.default_ttl`: expected at most `max_ttl`".to_owned());
    }
    r.finish(cx);
    enabled.then_some(RegisterConfig {
        allowed_networks,
        token,
        max_registrations,
        min_interval,
        default_interval,
        default_ttl,
        max_ttl,
        timeout,
        max_body_bytes,
        registry_file,
    })
}

#[cfg(test)]
mod tests;
