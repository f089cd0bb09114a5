//! Poll targets from Prometheus service discovery.
//!
//! * `[[poll.file_sd]]`: files in Prometheus' `file_sd` format (JSON or YAML:
//!   a list of groups, each `targets` (host:port) and `labels`), checked every
//!   `refresh_interval` and re-read when one changed (path, size or mtime);
//! * `[[poll.http_sd]]`: an endpoint answering the same list as JSON
//!   (Prometheus' `http_sd`), asked every `refresh_interval`, with bearer or
//!   basic credentials and TLS options.
//!
//! Per group, `__scheme__` (http or https), `__metrics_path__` (default
//! `/metrics`) and `__param_<name>` (query parameters) make the URL; other
//! labels starting with `__` are dropped, the rest label every series of the
//! target, with `instance` set to the address unless given. A discovered
//! target is named `<source>/<host:port><path>` and takes the source's
//! `[poll.*_sd.targets]` settings.
//!
//! Each source is a job on its own [`Scheduler`]. A read that succeeds hands
//! the list to the [`Poller`], which reconciles all its targets the way a
//! reload does: unchanged targets keep their task and phase. A read that
//! fails (unreadable file, bad JSON, a target that makes no URL) keeps the
//! previous list; the source shows as app `sd/<name>` in `/apps` (down, with
//! the error) and in the targets' self-metrics (`target_up`,
//! `target_poll_failures_total`).

mod config;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::{parse_config, SdConfig, SdSource};

use super::target::PollJob;
use super::{lock, Poller};
use crate::outbound::health::fail;
use crate::outbound::scheduler::{Job, Reconciled, RunFuture, Scheduler};
use crate::outbound::Failure;
use crate::poll::config::TargetConfig;
use crate::store::{AppKind, Store};
use crate::telemetry::PollFailure;

/// Largest SD file read (a file beyond is an error, not truncated).
const MAX_SD_FILE_BYTES: u64 = 16 << 20;
/// Most targets one source may list: beyond, the list is refused.
const MAX_SD_TARGETS: usize = 10_000;

/// One group of a `file_sd` file or `http_sd` answer.
#[derive(Debug, Deserialize)]
pub struct Group {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels of every target of the group, `__` ones included.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Parses a list of groups: JSON, or YAML when `yaml`.
pub fn parse_groups(text: &str, yaml: bool) -> Result<Vec<Group>, String> {
    if yaml {
        serde_saphyr::from_str(text).map_err(|e| format!("invalid file_sd YAML: {e}"))
    } else {
        serde_json::from_str(text).map_err(|e| format!("invalid service-discovery JSON: {e}"))
    }
}

/// The targets that `groups` describe for source `sd`.
pub fn targets_from_groups(sd: &SdConfig, groups: Vec<Group>) -> Result<Vec<TargetConfig>, String> {
    let mut out: BTreeMap<String, TargetConfig> = BTreeMap::new();
    for (g, group) in groups.into_iter().enumerate() {
        for address in &group.targets {
            let t = target(sd, address, &group.labels)
                .map_err(|e| format!("group {g}, target {address:?}: {e}"))?;
            match out.get(&t.name) {
                Some(same) if *same == t => {}
                Some(_) => {
                    return Err(format!(
                        "group {g}: target {} is listed twice with different labels",
                        t.name
                    ))
                }
                None => {
                    out.insert(t.name.clone(), t);
                }
            }
            if out.len() > MAX_SD_TARGETS {
                return Err(format!("more than {MAX_SD_TARGETS} targets"));
            }
        }
    }
    Ok(out.into_values().collect())
}

/// One discovered target.
fn target(
    sd: &SdConfig,
    address: &str,
    labels: &BTreeMap<String, String>,
) -> Result<TargetConfig, String> {
    if address.is_empty() || address.contains(['/', '?', '#', '@', ' ', '\t']) {
        return Err("expected host:port".to_owned());
    }
    let scheme = labels.get("__scheme__").map_or("http", String::as_str);
    if scheme != "http" && scheme != "https" {
        return Err(format!("__scheme__ {scheme:?}: expected http or https"));
    }
    let path = labels
        .get("__metrics_path__")
        .map_or("/metrics", String::as_str);
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return Err(format!(
            "__metrics_path__ {path:?}: expected a path starting with /"
        ));
    }
    let mut url = url::Url::parse(&format!("{scheme}://{address}{path}"))
        .map_err(|e| format!("no valid URL: {e}"))?;
    let params: Vec<(&str, &str)> = labels
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("__param_")?, v.as_str())))
        .collect();
    if !params.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    let url = url.to_string();
    // Group labels over the source's, `instance` = the address by default.
    let mut merged: BTreeMap<String, String> = sd.template.labels.iter().cloned().collect();
    merged.insert("instance".to_owned(), address.to_owned());
    for (k, v) in labels {
        if !k.starts_with("__") {
            merged.insert(k.clone(), v.clone());
        }
    }
    let merged: Vec<(String, String)> = merged.into_iter().collect();
    crate::poll::config::check_labels(&merged, None)?;
    let name = format!(
        "{}/{}",
        sd.name,
        url.split_once("://").map_or(url.as_str(), |(_, rest)| rest)
    );
    crate::store::validate_app_name(&name).map_err(|e| e.message)?;
    Ok(TargetConfig {
        name,
        url,
        labels: merged,
        ..sd.template.clone()
    })
}

/// What identifies the state of a set of files: path, size and mtime of each.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// One SD source as a job.
pub struct SdJob {
    sd: SdConfig,
    poller: Arc<Poller>,
    store: Arc<Store>,
    /// `http_sd`: the endpoint as a target, for its client and request.
    endpoint: Option<PollJob>,
    /// `file_sd`: the files as last read successfully.
    read: Mutex<Option<Fingerprint>>,
}

impl PartialEq for SdJob {
    fn eq(&self, other: &Self) -> bool {
        self.sd == other.sd
    }
}

impl SdJob {
    fn new(sd: SdConfig, poller: Arc<Poller>, store: Arc<Store>) -> SdJob {
        let endpoint = match &sd.source {
            SdSource::Http(def) => {
                Some(PollJob::new((**def).clone(), AppKind::Poll, store.clone()))
            }
            SdSource::Files(_) => None,
        };
        SdJob {
            sd,
            poller,
            store,
            endpoint,
            read: Mutex::new(None),
        }
    }

    /// The app name the source shows under in `/apps` and the self-metrics.
    fn app(&self) -> String {
        format!("sd/{}", self.sd.name)
    }

    fn describe(&self) -> String {
        match &self.sd.source {
            SdSource::Files(f) => f
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            SdSource::Http(def) => def.url.clone(),
        }
    }

    async fn refresh(&self) {
        let started = Instant::now();
        let result = match &self.endpoint {
            Some(endpoint) => self.fetch(endpoint).await.map(Some),
            None => self.read_files().await,
        };
        let app = self.app();
        let metrics = self.store.self_metrics();
        match result {
            Ok(None) => {}
            Ok(Some(targets)) => {
                let n = targets.len();
                let report = self.poller.set_discovered(&self.sd.name, targets).await;
                metrics.poll_result(&app, started.elapsed(), Ok(()));
                // An empty set marks the source up in `/apps`.
                if let Ok(p) = self.store.prepare(&app, "") {
                    let _ = self.store.commit(vec![p], AppKind::Poll, &self.describe());
                }
                if !report.added.is_empty()
                    || !report.removed.is_empty()
                    || !report.replaced.is_empty()
                {
                    info!(source = %self.sd.name, targets = n, added = ?report.added, removed = ?report.removed, changed = ?report.replaced, "service discovery");
                }
            }
            Err(f) => {
                metrics.poll_result(&app, started.elapsed(), Err(f.reason));
                let message = format!(
                    "{}: {} (the previous targets are kept)",
                    f.reason.as_str(),
                    f.message
                );
                warn!(source = %self.sd.name, error = %message, "service discovery failed");
                self.store.record_poll_failure(
                    &app,
                    AppKind::Poll,
                    &self.describe(),
                    &message,
                    false,
                );
            }
        }
    }

    async fn fetch(&self, endpoint: &PollJob) -> Result<Vec<TargetConfig>, Failure> {
        let timeout = endpoint.def().timeout;
        let (body, _) = tokio::time::timeout(timeout, endpoint.fetch())
            .await
            .map_err(|_| {
                fail(
                    PollFailure::Timeout,
                    format!("no answer within {}", humantime::format_duration(timeout)),
                )
            })??;
        let groups = parse_groups(&body, false).map_err(|e| fail(PollFailure::InvalidBody, e))?;
        targets_from_groups(&self.sd, groups).map_err(|e| fail(PollFailure::InvalidBody, e))
    }

    /// Reads the files if they changed since the last read (good or bad:
    /// a bad version is reported once, not at every check).
    async fn read_files(&self) -> Result<Option<Vec<TargetConfig>>, Failure> {
        let SdSource::Files(patterns) = &self.sd.source else {
            return Ok(None);
        };
        let patterns = patterns.clone();
        let last = lock(&self.read).clone();
        let read = tokio::task::spawn_blocking(move || read_files(&patterns, last.as_ref()))
            .await
            .map_err(|e| fail(PollFailure::Request, e.to_string()))?
            .map_err(|e| fail(PollFailure::InvalidBody, e))?;
        let Some((fingerprint, groups)) = read else {
            return Ok(None);
        };
        *lock(&self.read) = Some(fingerprint);
        groups
            .and_then(|groups| targets_from_groups(&self.sd, groups))
            .map(Some)
            .map_err(|e| fail(PollFailure::InvalidBody, e))
    }
}

/// The files the patterns match, sorted; `*` and `?` in the file name.
fn expand(patterns: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = BTreeSet::new();
    for p in patterns {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.contains(['*', '?']) {
            files.insert(p.clone());
            continue;
        }
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let known = Path::new(&file)
                .extension()
                .is_some_and(|e| e == "json" || e == "yml" || e == "yaml");
            if known && glob_match(name.as_bytes(), file.as_bytes()) && entry.path().is_file() {
                files.insert(entry.path());
            }
        }
    }
    Ok(files.into_iter().collect())
}

/// `*` (any run) and `?` (one byte) matching.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| glob_match(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && glob_match(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && glob_match(rest, &name[1..]),
    }
}

/// Reads every file when the set differs from `last`: the new fingerprint
/// and all groups (or why they could not be read), or `None` when nothing
/// changed. Fails when the files cannot even be listed.
#[allow(clippy::type_complexity)]
fn read_files(
    patterns: &[PathBuf],
    last: Option<&Fingerprint>,
) -> Result<Option<(Fingerprint, Result<Vec<Group>, String>)>, String> {
    let files = expand(patterns)?;
    let mut fingerprint = Vec::with_capacity(files.len());
    for f in &files {
        let meta = std::fs::metadata(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        fingerprint.push((f.clone(), meta.len(), meta.modified().ok()));
    }
    if last == Some(&fingerprint) {
        return Ok(None);
    }
    let groups = read_groups(&fingerprint);
    Ok(Some((fingerprint, groups)))
}

fn read_groups(files: &Fingerprint) -> Result<Vec<Group>, String> {
    let mut groups = Vec::new();
    for (f, len, _) in files {
        if *len > MAX_SD_FILE_BYTES {
            return Err(format!(
                "{} is {len} bytes: expected at most {MAX_SD_FILE_BYTES}",
                f.display()
            ));
        }
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        let yaml = f.extension().is_some_and(|e| e != "json");
        let more = parse_groups(&text, yaml).map_err(|e| format!("{}: {e}", f.display()))?;
        groups.extend(more);
    }
    Ok(groups)
}

impl Job for SdJob {
    fn id(&self) -> &str {
        &self.sd.name
    }

    fn interval(&self) -> std::time::Duration {
        self.sd.refresh_interval
    }

    fn run(&self) -> RunFuture<'_> {
        Box::pin(self.refresh())
    }
}

/// Every service-discovery source, each a job on its own scheduler.
pub struct ServiceDiscovery {
    scheduler: Scheduler<SdJob>,
    poller: Arc<Poller>,
    store: Arc<Store>,
}

impl ServiceDiscovery {
    /// Sources feeding `poller`, until `shutdown`.
    pub fn new(poller: Arc<Poller>, store: Arc<Store>, shutdown: CancellationToken) -> Arc<Self> {
        // Few sources, each a cheap read: one at a time is enough.
        Arc::new(ServiceDiscovery {
            scheduler: Scheduler::new(4, shutdown),
            poller,
            store,
        })
    }

    /// Makes the sources equal to `sources`, as a reload does: unchanged
    /// ones keep running; a removed one takes its targets with it.
    pub async fn set(&self, sources: Vec<SdConfig>) -> Reconciled {
        let jobs = sources
            .into_iter()
            .map(|sd| SdJob::new(sd, self.poller.clone(), self.store.clone()))
            .collect();
        let report = self.scheduler.reconcile(jobs).await;
        for name in &report.removed {
            self.poller.set_discovered(name, Vec::new()).await;
            let app = format!("sd/{name}");
            self.store.remove_kind(&app, AppKind::Poll);
            self.store.self_metrics().remove_target(&app);
        }
        report
    }

    /// The scheduler (for inspection in tests).
    pub fn scheduler(&self) -> &Scheduler<SdJob> {
        &self.scheduler
    }

    /// Stops every source.
    pub async fn stop(&self) {
        self.scheduler.stop_all().await;
    }
}

impl Poller {
    /// Replaces the targets discovered by source `source` and reconciles
    /// all targets: unchanged ones keep their phase, as in a reload.
    pub async fn set_discovered(&self, source: &str, targets: Vec<TargetConfig>) -> Reconciled {
        {
            let mut discovered = lock(&self.discovered);
            if targets.is_empty() {
                discovered.remove(source);
            } else {
                discovered.insert(source.to_owned(), targets);
            }
        }
        self.reconcile_all().await
    }
}
