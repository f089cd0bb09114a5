//! The ssp-exporter provider file (YAML or JSON, by extension) → validated
//! [`SspConfig`].
//!
//! The document is first checked against the JSON Schema shipped in
//! `schema/ssp-exporter.schema.json` (every violation is reported with its
//! path), then converted to domain types; the checks a schema cannot make
//! (duplicate identifiers, a label named like a built-in one) follow. Pure:
//! only [`load`] reads a file.
//!
//! YAML is read as the original read it (PyYAML, YAML 1.1: see [`yaml11`]),
//! so every key is typed as there (`tls_verify: no` is false, `0123` is
//! octal), but an identifier, a password and a label value keep the exact
//! text written in the file (`password: 0891` is `0891`, `team: n` is `n`);
//! JSON bodies send them with the type the original gave them
//! ([`Identifier::raw_identifier`], [`Password::Plain`]). Unknown keys the
//! original ignored are warnings ([`unknown`]).

pub mod unknown;
pub mod yaml11;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::secret::{Secret, SecretSource};
use yaml11::{Typed, Written};

/// The schema every provider file is validated against.
pub const SCHEMA: &str = include_str!("../../schema/ssp-exporter.schema.json");

/// Default family name (the original's sample).
pub const DEFAULT_METRIC_NAME: &str = "ssp_balance";

/// The original's default poll interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(3600);

/// Labels every `ssp_balance` series has; custom labels may not use them.
pub const BUILTIN_LABELS: [&str; 3] = ["identifier", "provider", "poll_interval"];

/// The sentinel codes of the original, used when `service.messages` lacks one.
pub const DEFAULT_MESSAGES: [(&str, i64); 8] = [
    ("init", -1_000_000),
    ("disabled", -1_000_001),
    ("no_answer", -1_000_002),
    ("captcha", -1_000_003),
    ("cannot_proceed", -1_000_004),
    ("rate_limit", -1_000_005),
    ("parsing_error", -1_000_006),
    ("connection_error", -1_000_007),
];

/// The validated provider file.
#[derive(Debug, Clone, PartialEq)]
pub struct SspConfig {
    /// `service.metric_name`.
    pub metric_name: String,
    /// `service.messages`, completed with [`DEFAULT_MESSAGES`].
    pub messages: BTreeMap<String, i64>,
    /// `service.user_agents` (may be empty: then our own).
    pub user_agents: Vec<String>,
    /// Every identifier of every provider, in file order.
    pub identifiers: Vec<Identifier>,
    /// What was ignored (unknown keys the original ignored too), each
    /// naming its path; logged when the file is loaded.
    pub warnings: Vec<String>,
}

/// Where a portal password comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Password {
    /// Written in the file as a string (`password: "0123"`, a JSON
    /// string). `Debug` shows no secret.
    Inline(Secret),
    /// Written as a plain YAML scalar or a JSON number (`password: 123456`):
    /// the exact text, which JSON bodies send typed as the original's
    /// PyYAML typed it ([`yaml11::resolve`]). `Debug` shows no secret.
    Plain(Secret),
    /// `password_file` or `password_env`, read at every collection.
    Source(SecretSource),
    /// None given (only the `Exec` provider allows this).
    None,
}

impl Password {
    /// The password now.
    pub fn read(&self) -> Result<Secret, String> {
        match self {
            Password::Inline(s) | Password::Plain(s) => Ok(s.clone()),
            Password::Source(src) => src.read(),
            Password::None => Ok(Secret::new(String::new())),
        }
    }
}

/// One account of one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Identifier {
    /// Provider name, a key of `identifiers`.
    pub provider: String,
    /// `identifier` exactly as written (the label, the login, form fields).
    pub identifier: String,
    /// `identifier` typed as the original typed it, for JSON bodies.
    pub raw_identifier: Typed,
    /// The password or API key.
    pub password: Password,
    /// Custom labels, stringified, sorted by name.
    pub labels: Vec<(String, String)>,
    /// Verify the portal's certificate (default true, unlike the original).
    pub tls_verify: bool,
    /// Time between two collections.
    pub poll_interval: Duration,
    /// Shown with the `disabled` code, never collected.
    pub disabled: bool,
    /// Replaces the portal's scheme and host (mirrors, tests).
    pub base_url: Option<String>,
    /// Extra CA certificates (PEM) trusted for this portal.
    pub ca_file: Option<PathBuf>,
    /// `Exec`: the command and its arguments.
    pub command: Vec<String>,
}

/// Largest provider file read: a few hundred identifiers fit in a tenth.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Reads and validates a provider file; YAML unless it ends in `.json`.
/// Every problem is returned, each naming its path in the document.
pub fn load(path: &Path) -> Result<SspConfig, Vec<String>> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(vec![format!(
            "{}: larger than {MAX_FILE_BYTES} bytes",
            path.display()
        )]);
    }
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse(&text, json, path.parent().unwrap_or(Path::new(".")))
}

/// Parses and validates provider-file text (`json`: JSON, else YAML).
/// Relative `password_file` and `ca_file` paths are taken relative to `base`.
pub fn parse(text: &str, json: bool, base: &Path) -> Result<SspConfig, Vec<String>> {
    let (mut doc, scalars) = if json {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| vec![format!("not valid JSON: {e}")])?;
        (doc, BTreeMap::new())
    } else {
        let node = yaml11::load(text).map_err(|e| vec![format!("not valid YAML: {e}")])?;
        (node.to_value(), node.scalars())
    };
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    unknown::sift(&mut doc, &mut problems, &mut warnings);
    let schema: Value = serde_json::from_str(SCHEMA).expect("the shipped schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the shipped schema is valid");
    problems.extend(validator.iter_errors(&doc).map(|e| {
        let path = e.instance_path().to_string();
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        format!("`{path}`: {e}")
    }));
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut cfg = convert(&doc, &scalars, base, &mut problems);
    cfg.warnings = warnings;
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(problems)
    }
}

/// How the scalar at `pointer` was written: from the YAML text, or from a
/// JSON value (a string is text; a number or boolean its JSON text, plain).
fn written(scalars: &BTreeMap<String, Written>, pointer: &str, v: &Value) -> Written {
    scalars.get(pointer).cloned().unwrap_or_else(|| match v {
        Value::String(s) => Written {
            text: s.clone(),
            plain: false,
        },
        other => Written {
            text: other.to_string(),
            plain: true,
        },
    })
}

/// Builds the domain types from a schema-valid document.
fn convert(
    doc: &Value,
    scalars: &BTreeMap<String, Written>,
    base: &Path,
    problems: &mut Vec<String>,
) -> SspConfig {
    let service = &doc["service"];
    let metric_name = service["metric_name"]
        .as_str()
        .unwrap_or(DEFAULT_METRIC_NAME)
        .to_owned();
    let mut messages: BTreeMap<String, i64> = DEFAULT_MESSAGES
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    if let Some(m) = service["messages"].as_object() {
        for (k, v) in m {
            if let Some(n) = v.as_i64() {
                messages.insert(k.clone(), n);
            }
        }
    }
    let user_agents = service["user_agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut identifiers = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    if let Some(map) = doc["identifiers"].as_object() {
        for (provider, list) in map {
            let Some(items) = list.as_array() else {
                continue; // null: no identifiers
            };
            for (i, item) in items.iter().enumerate() {
                let path = format!("/identifiers/{provider}/{i}");
                let id = written(scalars, &format!("{path}/identifier"), &item["identifier"]);
                let raw_identifier = id.typed();
                let identifier = id.text;
                if !seen.insert((provider.clone(), identifier.clone())) {
                    problems.push(format!(
                        "`{path}/identifier`: {identifier:?} is listed twice for {provider}: expected unique identifiers per provider"
                    ));
                }
                let rel = |s: &str| {
                    let p = PathBuf::from(s);
                    if p.is_relative() {
                        base.join(p)
                    } else {
                        p
                    }
                };
                let password = match (
                    &item["password"],
                    item["password_file"].as_str(),
                    item["password_env"].as_str(),
                ) {
                    (v @ (Value::String(_) | Value::Number(_)), None, None) => {
                        let w = written(scalars, &format!("{path}/password"), v);
                        if w.plain {
                            Password::Plain(Secret::new(w.text))
                        } else {
                            Password::Inline(Secret::new(w.text))
                        }
                    }
                    (Value::Null, Some(f), None) => Password::Source(SecretSource::File(rel(f))),
                    (Value::Null, None, Some(e)) => {
                        Password::Source(SecretSource::Env(e.to_owned()))
                    }
                    (Value::Null, None, None) => Password::None,
                    _ => {
                        problems.push(format!(
                            "`{path}`: set only one of `password`, `password_file` and `password_env`"
                        ));
                        Password::None
                    }
                };
                let mut labels: Vec<(String, String)> = Vec::new();
                if let Some(l) = item["labels"].as_object() {
                    for (k, v) in l {
                        if BUILTIN_LABELS.contains(&k.as_str()) {
                            problems.push(format!(
                                "`{path}/labels/{k}`: `{k}` is set by the exporter itself: choose another label name"
                            ));
                            continue;
                        }
                        let pointer = format!("{path}/labels/{}", k.replace('~', "~0"));
                        labels.push((k.clone(), written(scalars, &pointer, v).text));
                    }
                }
                labels.sort();
                let command = item["command"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                identifiers.push(Identifier {
                    provider: provider.clone(),
                    identifier,
                    raw_identifier,
                    password,
                    labels,
                    tls_verify: item["tls_verify"].as_bool().unwrap_or(true),
                    poll_interval: item["poll_interval"]
                        .as_u64()
                        .map(Duration::from_secs)
                        .unwrap_or(DEFAULT_POLL_INTERVAL),
                    disabled: item["disabled"].as_bool().unwrap_or(false),
                    base_url: item["base_url"]
                        .as_str()
                        .map(|s| s.trim_end_matches('/').to_owned()),
                    ca_file: item["ca_file"].as_str().map(rel),
                    command,
                });
            }
        }
    }
    SspConfig {
        metric_name,
        messages,
        user_agents,
        identifiers,
        warnings: Vec::new(),
    }
}

/// The original's human form of a poll interval, without its quirk: units
/// `w d h m s`, zero parts skipped, at most the first two non-zero parts
/// (`1800` → `30m`, `5400` → `1h30m`, `90061` → `1d1h`, `61` → `1m1s`).
pub fn human_interval(d: Duration) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3_600),
        ("m", 60),
        ("s", 1),
    ];
    let mut left = d.as_secs();
    let mut out = String::new();
    let mut parts = 0;
    for (unit, secs) in UNITS {
        let n = left / secs;
        left %= secs;
        if n > 0 && parts < 2 {
            out.push_str(&format!("{n}{unit}"));
            parts += 1;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

#[cfg(test)]
mod tests;
