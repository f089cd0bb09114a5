//! Configuration of polling: static targets, their credentials and TLS
//! options, and self-registration. Validated by `crate::config`, which
//! walks the TOML; the URL and label checks are here because registrations
//! run them too.

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::SecretSource;

/// Polling: static targets, concurrency and self-registration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PollConfig {
    /// Targets from `[poll_external]` (original keys) and `[[poll.targets]]`.
    pub targets: Vec<TargetConfig>,
    /// Most polls running at once, across all targets.
    pub max_concurrent: usize,
    /// `[poll.register]`, when enabled.
    pub register: Option<RegisterConfig>,
    /// `[[poll.file_sd]]` and `[[poll.http_sd]]` (see `poll::sd`).
    pub sd: Vec<crate::poll::sd::SdConfig>,
    /// `[[poll.mappings]]`: JSON bodies to metrics.
    pub mappings: Vec<std::sync::Arc<crate::collect::mapping::JsonMapping>>,
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
    /// A JSON body is turned into metrics by this mapping (`mapping`).
    pub mapping: Option<std::sync::Arc<crate::collect::mapping::JsonMapping>>,
    /// Registered targets: removed after this many failed polls in a row.
    pub evict_after_failures: Option<u32>,
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

/// `[poll.register]`: exporters registering themselves over HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterConfig {
    /// Peers allowed to use `/register`.
    pub allowed_networks: Vec<ipnet::IpNet>,
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
    /// Add `instance = <id>` to every series of a registered target.
    pub instance_label: bool,
    /// Remove a registration after this many failed polls in a row.
    pub evict_after_failures: Option<u32>,
    /// The mappings registrations may name.
    pub mappings: Vec<std::sync::Arc<crate::collect::mapping::JsonMapping>>,
    /// The aggregator seed's registration endpoint, when enabled.
    pub compat: Option<crate::poll::compat::CompatConfig>,
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
