//! An identifier as a scheduler job, and the set of them.
//!
//! Every run renders the identifier's whole set (balance or sentinel, up,
//! last success, duration, status) and commits it through
//! [`Store::prepare_with`] / [`Store::commit`] like any other app, so the
//! store's checks and merging apply: `ssp_balance` is one family with one
//! HELP/TYPE however many identifiers there are. A failure also marks the
//! app down with its message for `/apps`.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::config::{human_interval, Identifier, SspConfig};
use super::ProvidersConfig;
use super::{fail, Code, Failure, Provider, Session};
use crate::exposition::{escape_label_value, format_value};
use crate::outbound::scheduler::{Job, Reconciled, RunFuture, Scheduler};
use crate::store::{AppKind, PrepareOptions, Store};

/// Used when `service.user_agents` is empty.
pub const DEFAULT_USER_AGENT: &str = concat!("exporter-proxy/", env!("CARGO_PKG_VERSION"));

/// A rate-limited identifier skips at most this many runs in a row: enough
/// to let a portal's lock-out expire, few enough to notice recovery.
const MAX_BACKOFF_RUNS: u32 = 8;

/// Settings every identifier shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Shared {
    /// `service.metric_name`.
    pub metric_name: String,
    /// Sentinel codes by name.
    pub messages: std::collections::BTreeMap<String, i64>,
    /// Custom label names of every identifier (each series gets them all,
    /// empty when its identifier has no such label).
    pub label_names: BTreeSet<String>,
    /// Time limit of one collection.
    pub timeout: Duration,
}

/// The name of an identifier's app.
pub fn app_name(provider: &str, identifier: &str) -> String {
    format!("ssp/{provider}/{identifier}")
}

/// Where a collection stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Status {
    /// Not collected yet.
    Init,
    /// `disabled: true`.
    Disabled,
    /// The last collection read a balance.
    Ok,
    /// The last collection failed.
    Failed(Code),
}

impl Status {
    /// The `status` label value and the `messages` key.
    pub fn key(self) -> &'static str {
        match self {
            Status::Init => "init",
            Status::Disabled => "disabled",
            Status::Ok => "ok",
            Status::Failed(c) => c.key(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Unix time of the last success.
    last_success: Option<f64>,
    balance: Option<f64>,
    failed: Option<Code>,
    /// Extra exposition text of the last success (`Exec`).
    extra: Option<String>,
    /// Runs still to skip (rate-limit back-off), and the current streak.
    skip: u32,
    backoff: u32,
}

/// One identifier of one provider.
pub struct ProviderJob {
    app: String,
    source: String,
    def: Identifier,
    provider: &'static dyn Provider,
    shared: Arc<Shared>,
    user_agent: String,
    store: Arc<Store>,
    state: Mutex<State>,
}

impl std::fmt::Debug for ProviderJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderJob")
            .field("app", &self.app)
            .field("def", &self.def)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ProviderJob {
    /// The user agent is chosen at random: not part of the definition.
    fn eq(&self, other: &Self) -> bool {
        self.def == other.def && self.shared == other.shared
    }
}

impl Job for ProviderJob {
    fn id(&self) -> &str {
        &self.app
    }

    fn interval(&self) -> Duration {
        self.def.poll_interval
    }

    fn run(&self) -> RunFuture<'_> {
        Box::pin(self.collect())
    }

    fn removed(&self) {
        if self
            .store
            .apps()
            .iter()
            .any(|a| a.name == self.app && a.kind == AppKind::Provider)
        {
            self.store.remove(&self.app);
        }
        info!(app = %self.app, "identifier removed");
    }
}

impl ProviderJob {
    /// A job for `def`, which must name a known provider.
    pub fn new(
        def: Identifier,
        shared: Arc<Shared>,
        user_agents: &[String],
        store: Arc<Store>,
    ) -> Option<ProviderJob> {
        let provider = super::lookup(&def.provider)?;
        Some(ProviderJob::with_provider(
            def,
            provider,
            shared,
            user_agents,
            store,
        ))
    }

    /// A job for `def` run by `provider` (whatever `def.provider` says).
    pub fn with_provider(
        def: Identifier,
        provider: &'static dyn Provider,
        shared: Arc<Shared>,
        user_agents: &[String],
        store: Arc<Store>,
    ) -> ProviderJob {
        ProviderJob {
            app: app_name(&def.provider, &def.identifier),
            source: format!("provider:{}", def.provider),
            user_agent: pick(user_agents, &def),
            provider,
            def,
            shared,
            store,
            state: Mutex::new(State::default()),
        }
    }

    /// The app name.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The user agent this identifier sends.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// Publishes the state before any collection: `init`, or `disabled`.
    pub fn publish_initial(&self) {
        {
            let st = lock(&self.state);
            if st.balance.is_some() || st.failed.is_some() {
                return; // the first run was quicker
            }
        }
        let status = if self.def.disabled {
            Status::Disabled
        } else {
            Status::Init
        };
        self.publish(status, None, 0.0);
    }

    /// One collection, never longer than the timeout, never panicking out.
    pub async fn collect(&self) {
        if self.def.disabled {
            self.publish(Status::Disabled, None, 0.0);
            return;
        }
        {
            let mut st = lock(&self.state);
            if st.skip > 0 {
                st.skip -= 1;
                debug!(app = %self.app, left = st.skip, "rate limited: skipping this run");
                return;
            }
        }
        let started = Instant::now();
        let timeout = self.shared.timeout;
        let run = tokio::time::timeout(timeout, self.collect_once());
        let result = match AssertUnwindSafe(run).catch_unwind().await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(fail(
                Code::NoAnswer,
                format!(
                    "no result within the timeout of {}",
                    humantime::format_duration(timeout)
                ),
            )),
            Err(_) => Err(fail(Code::CannotProceed, "the provider panicked")),
        };
        let elapsed = started.elapsed().as_secs_f64();
        match result {
            Ok((balance, extra)) => {
                let was_failed = {
                    let mut st = lock(&self.state);
                    st.last_success = Some(unix_now());
                    st.balance = Some(balance);
                    st.extra = extra;
                    st.backoff = 0;
                    st.failed.take().is_some()
                };
                self.publish(Status::Ok, None, elapsed);
                if was_failed {
                    info!(app = %self.app, "collection works again");
                }
            }
            Err(f) => {
                let repeated = {
                    let mut st = lock(&self.state);
                    st.extra = None;
                    if f.code == Code::RateLimit {
                        st.backoff = (st.backoff + 1).min(4);
                        st.skip = ((1u32 << st.backoff) - 1).min(MAX_BACKOFF_RUNS);
                    }
                    st.failed.replace(f.code) == Some(f.code)
                };
                if repeated {
                    debug!(app = %self.app, code = f.code.key(), error = %f.message, "collection failed again");
                } else {
                    warn!(app = %self.app, code = f.code.key(), error = %f.message, "collection failed");
                }
                self.publish(Status::Failed(f.code), Some(&f), elapsed);
            }
        }
    }

    async fn collect_once(&self) -> Result<(f64, Option<String>), Failure> {
        let password = self.def.password.read().map_err(|e| {
            fail(
                Code::CannotProceed,
                format!("cannot read the password: {e}"),
            )
        })?;
        let jar = std::sync::Arc::new(super::cookies::SessionJar::default());
        let session = Session {
            client: self.client(jar.clone())?,
            base: self
                .def
                .base_url
                .clone()
                .unwrap_or_else(|| self.provider.default_base().to_owned()),
            identifier: self.def.identifier.clone(),
            raw_identifier: self.def.raw_identifier.clone(),
            password_plain: matches!(self.def.password, super::config::Password::Plain(_)),
            password,
            jar,
            user_agent: self.user_agent.clone(),
            command: self.def.command.clone(),
            timeout: self.shared.timeout,
            metric_name: self.shared.metric_name.clone(),
            extra: std::sync::Mutex::new(None),
        };
        let balance = self.provider.collect(&session).await?;
        let extra = lock(&session.extra).take();
        Ok((balance, extra))
    }

    /// A new client per collection: a fresh cookie jar, as the portals
    /// expect a full login (and no session outlives its collection).
    fn client(&self, jar: Arc<super::cookies::SessionJar>) -> Result<reqwest::Client, Failure> {
        let t = self.shared.timeout;
        crate::outbound::build_client(&crate::outbound::ClientOptions {
            user_agent: Some(&self.user_agent),
            ca_file: self.def.ca_file.as_deref().map(|p| (p, "ca_file")),
            insecure_skip_verify: !self.def.tls_verify,
            timeout: Some(t),
            connect_timeout: Some(t.min(Duration::from_secs(10))),
            max_redirects: 10,
            cookies: crate::outbound::Cookies::Provider(jar),
            ..crate::outbound::ClientOptions::default()
        })
        .map_err(|e| fail(Code::ConnectionError, e))
    }

    /// Renders and commits the identifier's series; a failure also marks
    /// the app down with its message.
    fn publish(&self, status: Status, failure: Option<&Failure>, duration: f64) {
        let (balance, last_success, extra) = {
            let st = lock(&self.state);
            (st.balance, st.last_success, st.extra.clone())
        };
        let text = self.render(status, balance, last_success, duration);
        let commit = |text: &str| {
            self.store
                .prepare_with(&self.app, text, &PrepareOptions::default())
                .and_then(|p| self.store.commit(vec![p], AppKind::Provider, &self.source))
        };
        let result = match extra.filter(|_| status == Status::Ok) {
            // A command's own series must not cost the balance.
            Some(extra) => commit(&format!("{text}{extra}")).or_else(|e| {
                warn!(app = %self.app, error = %e.message, "the command's series were refused; the balance alone is stored");
                commit(&text)
            }),
            None => commit(&text),
        };
        if let Err(e) = result {
            warn!(app = %self.app, error = %e.message, "cannot store the balance");
            return;
        }
        let note = match (status, failure) {
            (_, Some(f)) => Some(format!("{}: {}", f.code.key(), f.message)),
            (Status::Init, _) => Some("init: waiting for the first collection".to_owned()),
            (Status::Disabled, _) => {
                Some("disabled: `disabled: true` in the provider file".to_owned())
            }
            _ => None,
        };
        if let Some(note) = note {
            self.store.record_poll_failure(
                &self.app,
                AppKind::Provider,
                &self.source,
                &note,
                false,
            );
        }
    }

    /// The exposition text of this identifier.
    pub fn render(
        &self,
        status: Status,
        balance: Option<f64>,
        last_success: Option<f64>,
        duration: f64,
    ) -> String {
        let sh = &self.shared;
        let value = match (status, balance) {
            (Status::Ok, Some(b)) => b,
            _ => sh.messages.get(status.key()).copied().unwrap_or(0) as f64,
        };
        let mut labels: Vec<(&str, &str)> = vec![
            ("identifier", &self.def.identifier),
            ("provider", &self.def.provider),
        ];
        let base = labels.clone();
        let interval = human_interval(self.def.poll_interval);
        labels.push(("poll_interval", &interval));
        for name in &sh.label_names {
            let v = self
                .def
                .labels
                .iter()
                .find(|(k, _)| k == name)
                .map_or("", |(_, v)| v.as_str());
            labels.push((name, v));
        }
        labels.sort();
        let mut out = Vec::new();
        let m = &sh.metric_name;
        family(&mut out, m, "Balance of a self-service portal account; while there is none, the negative sentinel code of service.messages.");
        sample(&mut out, m, &labels, value);
        family(
            &mut out,
            "ssp_up",
            "Whether the last collection of a self-service portal account succeeded.",
        );
        sample(
            &mut out,
            "ssp_up",
            &base,
            if status == Status::Ok { 1.0 } else { 0.0 },
        );
        family(
            &mut out,
            "ssp_last_success_timestamp_seconds",
            "Unix time of the last successful collection of a self-service portal account (0: never).",
        );
        sample(
            &mut out,
            "ssp_last_success_timestamp_seconds",
            &base,
            last_success.unwrap_or(0.0),
        );
        family(
            &mut out,
            "ssp_collection_duration_seconds",
            "Duration of the last collection of a self-service portal account.",
        );
        sample(&mut out, "ssp_collection_duration_seconds", &base, duration);
        family(
            &mut out,
            "ssp_status",
            "Status of a self-service portal account: 1 for the current status.",
        );
        let mut keys: BTreeSet<&str> = sh.messages.keys().map(String::as_str).collect();
        keys.insert("ok");
        for k in keys {
            let mut l = base.clone();
            l.push(("status", k));
            sample(
                &mut out,
                "ssp_status",
                &l,
                if k == status.key() { 1.0 } else { 0.0 },
            );
        }
        String::from_utf8(out).expect("built from strings")
    }
}

#[cfg(test)]
mod tests;

fn family(out: &mut Vec<u8>, name: &str, help: &str) {
    out.extend_from_slice(format!("# HELP {name} {help}\n# TYPE {name} gauge\n").as_bytes());
}

fn sample(out: &mut Vec<u8>, name: &str, labels: &[(&str, &str)], v: f64) {
    out.extend_from_slice(name.as_bytes());
    out.push(b'{');
    for (i, (k, val)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_label_value(out, val);
        out.push(b'"');
    }
    out.extend_from_slice(format!("}} {}\n", format_value(v)).as_bytes());
}

/// One user agent per identifier, "at random": a hash of the identifier
/// and the start time, so identifiers differ and restarts vary.
fn pick(user_agents: &[String], def: &Identifier) -> String {
    if user_agents.is_empty() {
        return DEFAULT_USER_AGENT.to_owned();
    }
    let seed = format!(
        "{}/{}/{}",
        def.provider,
        def.identifier,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let i = xxhash_rust::xxh3::xxh3_64(seed.as_bytes()) % user_agents.len() as u64;
    user_agents[i as usize].clone()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every identifier of the provider file, on one scheduler.
#[derive(Debug)]
pub struct ProviderSet {
    scheduler: Scheduler<ProviderJob>,
    store: Arc<Store>,
}

impl ProviderSet {
    /// A set running at most `max_concurrent` collections at once.
    pub fn new(store: Arc<Store>, max_concurrent: usize, shutdown: CancellationToken) -> Self {
        ProviderSet {
            scheduler: Scheduler::new(max_concurrent, shutdown),
            store,
        }
    }

    /// Makes the running identifiers those of `cfg` (none when `None`);
    /// new and changed ones show `init` (or `disabled`) at once.
    pub async fn apply(&self, cfg: Option<&ProvidersConfig>) -> Reconciled {
        let jobs = cfg.map(|c| self.jobs(c, &c.ssp)).unwrap_or_default();
        let report = self.scheduler.reconcile(jobs).await;
        for id in report.added.iter().chain(&report.replaced) {
            self.scheduler.with_job(id, |j| j.publish_initial()).await;
        }
        report
    }

    fn jobs(&self, c: &ProvidersConfig, ssp: &SspConfig) -> Vec<ProviderJob> {
        let shared = Arc::new(Shared {
            metric_name: ssp.metric_name.clone(),
            messages: ssp.messages.clone(),
            label_names: ssp
                .identifiers
                .iter()
                .flat_map(|i| i.labels.iter().map(|(k, _)| k.clone()))
                .collect(),
            timeout: c.timeout,
        });
        ssp.identifiers
            .iter()
            .filter_map(|i| {
                ProviderJob::new(
                    i.clone(),
                    shared.clone(),
                    &ssp.user_agents,
                    self.store.clone(),
                )
            })
            .collect()
    }

    /// The scheduler (for inspection in tests).
    pub fn scheduler(&self) -> &Scheduler<ProviderJob> {
        &self.scheduler
    }

    /// Stops every collection.
    pub async fn stop(&self) {
        self.scheduler.stop_all().await;
    }
}
