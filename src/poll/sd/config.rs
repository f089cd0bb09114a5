//! `[[poll.file_sd]]` and `[[poll.http_sd]]`: raw TOML → [`SdConfig`].
//!
//! Each table is deserialized whole (`deny_unknown_fields`) and then checked;
//! every problem is reported with its key path, like the rest of the config.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::poll::config::{Auth, TargetConfig};
use crate::secret::SecretSource;

/// How often SD files are checked for changes by default (a `stat` each).
pub const DEFAULT_FILE_REFRESH: Duration = Duration::from_secs(5);
/// How often an SD endpoint is asked by default (Prometheus' default).
pub const DEFAULT_HTTP_REFRESH: Duration = Duration::from_secs(60);
/// Default poll interval of discovered targets.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Default poll timeout of discovered targets and of SD endpoints.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest SD answer by default: tens of thousands of targets fit.
const DEFAULT_SD_BODY_BYTES: usize = 4 << 20;
/// Stale data is dropped after this many intervals by default.
const DEFAULT_STALE_INTERVALS: u32 = 5;

/// One service-discovery source.
#[derive(Debug, Clone, PartialEq)]
pub struct SdConfig {
    /// Unique name; discovered targets are named `<name>/<host:port><path>`.
    pub name: String,
    /// Where the target groups come from.
    pub source: SdSource,
    /// How often files are checked, or the endpoint asked.
    pub refresh_interval: Duration,
    /// Settings of every discovered target (`name` and `url` are unused).
    pub template: TargetConfig,
}

/// Where target groups come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SdSource {
    /// `file_sd`: files (JSON or YAML by extension); `*` and `?` allowed in
    /// the file-name part.
    Files(Vec<PathBuf>),
    /// `http_sd`: the endpoint, with its credentials, TLS, timeout and body
    /// limit (`name` is the source name).
    Http(Box<TargetConfig>),
}

/// A byte count: an integer, or a size such as "16MiB".
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBasic {
    username: String,
    password_file: Option<String>,
    password_env: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<String>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

/// How to reach something over HTTP: the SD endpoint, or the discovered targets.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    interval: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    bearer_token_file: Option<String>,
    bearer_token_env: Option<String>,
    basic_auth: Option<RawBasic>,
    tls: Option<RawTls>,
    max_body_size: Option<RawSize>,
    stale_after: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSd {
    name: String,
    files: Option<Vec<String>>,
    url: Option<String>,
    refresh_interval: Option<String>,
    // The endpoint's own access (http_sd).
    timeout: Option<String>,
    bearer_token_file: Option<String>,
    bearer_token_env: Option<String>,
    basic_auth: Option<RawBasic>,
    tls: Option<RawTls>,
    max_body_size: Option<RawSize>,
    /// Settings of the discovered targets.
    #[serde(default)]
    targets: RawAccess,
}

/// Parses `poll.file_sd` and `poll.http_sd` (arrays of tables); problems are
/// appended to `problems`, each naming its key.
pub fn parse_config(
    file_sd: Option<&toml::Value>,
    http_sd: Option<&toml::Value>,
    app_label: Option<&str>,
    max_push_bytes: usize,
    problems: &mut Vec<String>,
) -> Vec<SdConfig> {
    let mut out = Vec::new();
    for (key, value, http) in [("file_sd", file_sd, false), ("http_sd", http_sd, true)] {
        let Some(value) = value else { continue };
        let Some(array) = value.as_array() else {
            problems.push(format!(
                "`poll.{key}`: expected an array of tables ([[poll.{key}]]), found {}",
                value.type_str()
            ));
            continue;
        };
        for (i, table) in array.iter().enumerate() {
            let path = format!("poll.{key}[{i}]");
            match table.clone().try_into::<RawSd>() {
                Ok(raw) => {
                    if let Some(sd) =
                        validate(raw, http, &path, app_label, max_push_bytes, problems)
                    {
                        out.push(sd);
                    }
                }
                Err(e) => problems.push(format!("`{path}`: {}", e.message())),
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for sd in &out {
        if !seen.insert(sd.name.as_str()) {
            problems.push(format!(
                "`poll`: two service-discovery sources are named {:?}: expected unique names",
                sd.name
            ));
        }
    }
    out
}

fn validate(
    raw: RawSd,
    http: bool,
    path: &str,
    app_label: Option<&str>,
    max_push_bytes: usize,
    problems: &mut Vec<String>,
) -> Option<SdConfig> {
    let before = problems.len();
    let valid_name = !raw.name.is_empty()
        && raw.name.len() <= 64
        && raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid_name {
        problems.push(format!(
            "`{path}.name`: {:?} is not a valid name: expected 1 to 64 of [a-zA-Z0-9_.-]",
            raw.name
        ));
    }
    let default_refresh = if http {
        DEFAULT_HTTP_REFRESH
    } else {
        DEFAULT_FILE_REFRESH
    };
    let refresh_interval = duration(&raw.refresh_interval, path, "refresh_interval", problems)
        .unwrap_or(default_refresh);
    let template = access(
        raw.targets,
        &format!("{path}.targets"),
        app_label,
        max_push_bytes,
        problems,
    );
    let source = if http {
        if raw.files.is_some() {
            problems.push(format!("`{path}.files`: only for [[poll.file_sd]]"));
        }
        let Some(url) = raw.url else {
            problems.push(format!("`{path}.url`: required"));
            return None;
        };
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url::Url::parse(&url).is_err()
        {
            problems.push(format!(
                "`{path}.url`: {url:?} is not an http:// or https:// URL"
            ));
        }
        let endpoint = access(
            RawAccess {
                timeout: raw.timeout,
                bearer_token_file: raw.bearer_token_file,
                bearer_token_env: raw.bearer_token_env,
                basic_auth: raw.basic_auth,
                tls: raw.tls,
                max_body_size: Some(
                    raw.max_body_size
                        .unwrap_or(RawSize::Bytes(DEFAULT_SD_BODY_BYTES as u64)),
                ),
                interval: Some(humantime::format_duration(refresh_interval).to_string()),
                ..RawAccess::default()
            },
            path,
            app_label,
            max_push_bytes,
            problems,
        );
        SdSource::Http(Box::new(TargetConfig {
            name: format!("sd/{}", raw.name),
            url,
            ..endpoint
        }))
    } else {
        let only_http = [
            ("url", raw.url.is_some()),
            ("timeout", raw.timeout.is_some()),
            ("bearer_token_file", raw.bearer_token_file.is_some()),
            ("bearer_token_env", raw.bearer_token_env.is_some()),
            ("basic_auth", raw.basic_auth.is_some()),
            ("tls", raw.tls.is_some()),
            ("max_body_size", raw.max_body_size.is_some()),
        ];
        for (key, set) in only_http {
            if set {
                problems.push(format!(
                    "`{path}.{key}`: only for [[poll.http_sd]] (set target settings in `{path}.targets`)"
                ));
            }
        }
        let files = raw.files.unwrap_or_default();
        if files.is_empty() {
            problems.push(format!("`{path}.files`: expected at least one file"));
        }
        for f in &files {
            let p = std::path::Path::new(f);
            let dir_glob = p
                .parent()
                .is_some_and(|d| d.to_string_lossy().contains(['*', '?']));
            let ext_ok = match p.extension().and_then(|e| e.to_str()) {
                Some("json" | "yml" | "yaml") => true,
                // A pattern's matches are filtered by extension when read.
                Some(e) => e.contains(['*', '?']),
                None => false,
            };
            if dir_glob || !ext_ok {
                problems.push(format!(
                    "`{path}.files`: {f:?}: expected a .json, .yml or .yaml file, `*` and `?` only in the file name"
                ));
            }
        }
        SdSource::Files(files.into_iter().map(PathBuf::from).collect())
    };
    (problems.len() == before).then_some(SdConfig {
        name: raw.name,
        source,
        refresh_interval,
        template,
    })
}

fn duration(
    value: &Option<String>,
    path: &str,
    key: &str,
    problems: &mut Vec<String>,
) -> Option<Duration> {
    let v = value.as_deref()?;
    match humantime::parse_duration(v) {
        Ok(d) if !d.is_zero() => Some(d),
        _ => {
            problems.push(format!(
                "`{path}.{key}`: {v:?} is not a duration such as \"15s\" (greater than 0)"
            ));
            None
        }
    }
}

/// Target settings from their raw form (`name` and `url` left empty).
fn access(
    raw: RawAccess,
    path: &str,
    app_label: Option<&str>,
    max_push_bytes: usize,
    problems: &mut Vec<String>,
) -> TargetConfig {
    let interval = duration(&raw.interval, path, "interval", problems).unwrap_or(DEFAULT_INTERVAL);
    let timeout =
        duration(&raw.timeout, path, "timeout", problems).unwrap_or(DEFAULT_TIMEOUT.min(interval));
    if timeout > interval {
        problems.push(format!(
            "`{path}.timeout`: longer than the interval ({}): expected at most the interval",
            humantime::format_duration(interval)
        ));
    }
    let stale_after = duration(&raw.stale_after, path, "stale_after", problems)
        .unwrap_or(interval * DEFAULT_STALE_INTERVALS);
    let headers: Vec<(String, String)> = raw.headers.into_iter().collect();
    for (k, v) in &headers {
        let bad_name = axum::http::HeaderName::from_bytes(k.as_bytes()).is_err()
            || ["authorization", "host", "accept"].contains(&k.to_ascii_lowercase().as_str());
        if bad_name || axum::http::HeaderValue::from_str(v).is_err() {
            problems.push(format!(
                "`{path}.headers`: {k:?}: expected a valid header the proxy does not set itself \
                 (credentials go in bearer_token_file/env or basic_auth)"
            ));
        }
    }
    let labels: Vec<(String, String)> = raw.labels.into_iter().collect();
    if let Err(e) = crate::poll::config::check_labels(&labels, app_label) {
        problems.push(format!("`{path}.labels`: {e}"));
    }
    let secret = |file: Option<String>,
                  env: Option<String>,
                  what: &str,
                  problems: &mut Vec<String>| match (file, env) {
        (Some(_), Some(_)) => {
            problems.push(format!(
                "`{path}`: set either {what}_file or {what}_env, not both"
            ));
            None
        }
        (Some(f), None) => Some(SecretSource::File(PathBuf::from(f))),
        (None, Some(e)) => Some(SecretSource::Env(e)),
        (None, None) => None,
    };
    let bearer = secret(
        raw.bearer_token_file,
        raw.bearer_token_env,
        "bearer_token",
        problems,
    );
    let basic = raw.basic_auth.and_then(|b| {
        let password = secret(b.password_file, b.password_env, "password", problems);
        if password.is_none() {
            problems.push(format!(
                "`{path}.basic_auth`: `password_file` or `password_env` is required"
            ));
        }
        password.map(|password| Auth::Basic {
            username: b.username,
            password,
        })
    });
    let auth = match (bearer, basic) {
        (Some(_), Some(_)) => {
            problems.push(format!(
                "`{path}`: set a bearer token or `basic_auth`, not both"
            ));
            None
        }
        (Some(b), None) => Some(Auth::Bearer(b)),
        (None, basic) => basic,
    };
    let tls = raw.tls.unwrap_or_default();
    TargetConfig {
        name: String::new(),
        url: String::new(),
        interval,
        timeout,
        headers,
        auth,
        ca_file: tls.ca_file.map(PathBuf::from),
        insecure_skip_verify: tls.insecure_skip_verify,
        labels,
        max_body_bytes: match raw.max_body_size {
            None => max_push_bytes,
            Some(size) => {
                let n = match size {
                    RawSize::Bytes(n) => Ok(n),
                    RawSize::Text(t) => crate::units::parse_size(&t),
                };
                match n {
                    Ok(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
                    Ok(_) | Err(_) => {
                        problems.push(format!(
                            "`{path}.max_body_size`: expected a positive byte count or a size such as \"16MiB\""
                        ));
                        max_push_bytes
                    }
                }
            }
        },
        stale_after,
        mapping: None,
        evict_after_failures: None,
    }
}
