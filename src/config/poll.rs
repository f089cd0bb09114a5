//! `[poll_external]`, `[poll]`, `[[poll.targets]]` and `[poll.register]`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::walk::{expected, Diagnostics, Section};
use crate::poll::config::{
    check_labels, check_url, Auth, PollConfig, RegisterConfig, TargetConfig,
    DEFAULT_MAX_CONCURRENT_POLLS, DEFAULT_POLL_INTERVAL, DEFAULT_POLL_TIMEOUT,
    DEFAULT_STALE_INTERVALS,
};
use crate::secret::SecretSource;

pub(super) fn build_poll(
    top: &mut Section<'_>,
    app_label: Option<&str>,
    max_push_bytes: usize,
    cx: &mut Diagnostics,
) -> PollConfig {
    let mut targets = legacy_targets(top, max_push_bytes, cx);

    let mut p = top.sub("poll", cx);
    let mappings = crate::collect::mapping::from_config(p.raw("mappings"), &mut cx.problems);
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
                            if let Some(mut t) = target(&mut sec, app_label, max_push_bytes, cx) {
                                t.mapping = sec.get("mapping", cx, |v| {
                                    let n =
                                        v.as_str().ok_or_else(|| expected("a mapping name", v))?;
                                    crate::collect::mapping::find(&mappings, n)
                                });
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
    let register = build_register(&mut p, max_push_bytes, &mappings, cx);
    let (file_sd, http_sd) = (p.raw("file_sd"), p.raw("http_sd"));
    let sd = crate::poll::sd::parse_config(
        file_sd,
        http_sd,
        app_label,
        max_push_bytes,
        &mut cx.problems,
    );
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
        mappings,
        sd,
    }
}

/// The original's `[poll_external]`, as targets.
pub(super) fn legacy_targets(
    top: &mut Section<'_>,
    max_push_bytes: usize,
    cx: &mut Diagnostics,
) -> Vec<TargetConfig> {
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
            mapping: None,
            evict_after_failures: None,
        })
        .collect()
}

/// A string → string table (headers, labels).
pub(super) fn string_map(
    sec: &mut Section<'_>,
    key: &'static str,
    cx: &mut Diagnostics,
) -> Vec<(String, String)> {
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

pub(super) fn secret(
    sec: &mut Section<'_>,
    file_key: &'static str,
    env_key: &'static str,
    cx: &mut Diagnostics,
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

pub(super) fn target(
    sec: &mut Section<'_>,
    app_label: Option<&str>,
    max_push_bytes: usize,
    cx: &mut Diagnostics,
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
        mapping: None,
        evict_after_failures: None,
    })
}

pub(super) fn build_register(
    p: &mut Section<'_>,
    max_push_bytes: usize,
    mappings: &[std::sync::Arc<crate::collect::mapping::JsonMapping>],
    cx: &mut Diagnostics,
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
                    crate::netacl::parse_network(s).map_err(|e| format!("element {i}: {e}"))
                })
                .collect()
        })
        .unwrap_or_else(|| {
            vec![
                crate::netacl::parse_network("127.0.0.0/8").expect("valid"),
                crate::netacl::parse_network("::1/128").expect("valid"),
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
    let instance_label = r.bool("instance_label", cx).unwrap_or(true);
    let evict_after_failures = r
        .int("evict_after_failures", cx, 1, 1_000_000)
        .map(|n| n as u32);
    let compat =
        crate::poll::compat::CompatConfig::from_config(r.raw("compat"), mappings, &mut cx.problems);
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
        instance_label,
        evict_after_failures,
        mappings: mappings.to_vec(),
        compat,
    })
}
