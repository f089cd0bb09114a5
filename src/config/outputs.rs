//! `[[sinks.*]]` and `[providers]`: where the proxy forwards or collects
//! beyond its own port.

use std::collections::BTreeSet;
use std::path::PathBuf;

use toml::{Table, Value};

use super::walk::{expected, Diagnostics, Section};
use crate::providers::{ProvidersConfig, DEFAULT_PROVIDER_CONCURRENCY, DEFAULT_PROVIDER_TIMEOUT};
use crate::secret::SecretSource;

/// `[[sinks.remote_write]]` and `[[sinks.influxdb]]`.
pub(super) fn build_sinks(
    top: &mut Section<'_>,
    cx: &mut Diagnostics,
) -> Vec<crate::sinks::SinkConfig> {
    use crate::sinks::{influx::Api, SinkConfig, SinkKind};
    let mut sinks_t = top.sub("sinks", cx);
    let mut out = Vec::new();
    for kind in ["remote_write", "influxdb"] {
        let Some(tables) = sink_tables(&mut sinks_t, kind, cx) else {
            continue;
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
            let kind_cfg = if kind == "remote_write" {
                let token = secret_source(&mut sec, cx, "bearer_token_file", "bearer_token_env");
                url.map(|url| SinkKind::RemoteWrite {
                    url,
                    bearer_token: token,
                })
            } else {
                let api = sec.string("api", cx).unwrap_or_else(|| "v1".to_owned());
                let database = sec.string("database", cx);
                let org = sec.string("org", cx);
                let bucket = sec.string("bucket", cx);
                let token = secret_source(&mut sec, cx, "token_file", "token_env");
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

/// The tables of `[[sinks.<kind>]]`, problems reported for every element
/// that is not a table; `None` when the key is absent or not an array.
fn sink_tables<'t>(
    sinks_t: &mut Section<'t>,
    kind: &'static str,
    cx: &mut Diagnostics,
) -> Option<Vec<&'t Table>> {
    match sinks_t.raw(kind)? {
        Value::Array(a) => {
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
            Some(v)
        }
        other => {
            cx.problems.push(format!(
                "`sinks.{kind}`: {}",
                expected("an array of tables ([[sinks.{kind}]])", other)
            ));
            None
        }
    }
}

/// A sink's token: the file key or the environment key, not both.
fn secret_source(
    sec: &mut Section<'_>,
    cx: &mut Diagnostics,
    file: &'static str,
    env: &'static str,
) -> Option<SecretSource> {
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
}

pub(super) fn sec_path(kind: &str, i: usize) -> String {
    format!("sinks.{kind}[{i}].name")
}

/// `[providers]`: reads and validates the provider file it names.
pub(super) fn build_providers(
    top: &mut Section<'_>,
    cx: &mut Diagnostics,
) -> Option<ProvidersConfig> {
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
        Ok(ssp) => {
            for w in &ssp.warnings {
                cx.warnings
                    .push(format!("`providers.config_file` ({}): {w}", file.display()));
            }
            Some(ProvidersConfig {
                file,
                timeout,
                max_concurrent,
                ssp,
            })
        }
        Err(problems) => {
            for p in problems {
                cx.problems
                    .push(format!("`providers.config_file` ({}): {p}", file.display()));
            }
            None
        }
    }
}
