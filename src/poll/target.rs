//! One polled target: the HTTP request, the body checks, and what a result
//! does to the store and the self-metrics.
//!
//! A polled body goes through the same [`Store::prepare_with`] /
//! [`Store::commit`] path as a push. A failed poll records its reason (a
//! closed set, [`PollFailure`]) in the self-metrics and its message in
//! `/apps`; the last good data stays until `stale_after` has passed since
//! the last success, then the failed poll drops it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::exposition;
use crate::outbound::health::{fail, JobRef};
use crate::outbound::scheduler::{Job, RunFuture};
use crate::outbound::{self, ClientOptions, Failure, Health, Outcome};
use crate::poll::config::{Auth, TargetConfig};
use crate::store::{AppKind, PrepareOptions, Store};
use crate::telemetry::{PollFailure, RejectReason};

/// What we accept, best first: 0.0.4 text needs no conversion, OpenMetrics
/// is converted, anything else is tried as text.
pub const ACCEPT_HEADER: &str = "text/plain;version=0.0.4;q=1.0,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.7,*/*;q=0.1";

/// Bodies larger than this are parsed on the blocking pool so that one big
/// target cannot stall the I/O workers.
const BLOCKING_PARSE_BYTES: usize = 256 * 1024;

/// A target as a scheduler job.
pub struct PollJob {
    def: TargetConfig,
    kind: AppKind,
    store: Arc<Store>,
    client: OnceLock<Result<reqwest::Client, String>>,
    health: Health,
    /// State of the JSON mapping (delta counters, observations).
    mapped: Arc<crate::collect::mapping::MappingState>,
    /// Where to ask for eviction (registered targets).
    evictions: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl std::fmt::Debug for PollJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollJob")
            .field("def", &self.def)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl PartialEq for PollJob {
    fn eq(&self, other: &Self) -> bool {
        self.def == other.def && self.kind == other.kind
    }
}

impl Job for PollJob {
    fn id(&self) -> &str {
        &self.def.name
    }

    fn interval(&self) -> Duration {
        self.def.interval
    }

    fn run(&self) -> RunFuture<'_> {
        Box::pin(self.poll())
    }

    fn removed(&self) {
        // Only this target's own entry: a push app of the same name is not ours.
        self.store.remove_kind(&self.def.name, self.kind);
        self.store.self_metrics().remove_target(&self.def.name);
        info!(target_name = %self.def.name, "target removed");
    }
}

impl PollJob {
    /// A job polling `def` into `store` as an app of `kind`.
    pub fn new(def: TargetConfig, kind: AppKind, store: Arc<Store>) -> PollJob {
        PollJob {
            def,
            kind,
            store,
            client: OnceLock::new(),
            health: Health::default(),
            mapped: Default::default(),
            evictions: None,
        }
    }

    /// Asks `tx` for eviction after `evict_after_failures` failed polls.
    pub fn with_evictions(
        mut self,
        tx: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    ) -> PollJob {
        self.evictions = tx;
        self
    }

    /// The target's definition.
    pub fn def(&self) -> &TargetConfig {
        &self.def
    }

    fn client(&self) -> Result<&reqwest::Client, Failure> {
        self.client
            .get_or_init(|| build_client(&self.def))
            .as_ref()
            .map_err(|e| fail(PollFailure::Request, e.clone()))
    }

    /// One poll: fetch, ingest, record.
    pub async fn poll(&self) {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.def.timeout, self.fetch()).await {
            Ok(r) => r,
            Err(_) => Err(fail(
                PollFailure::Timeout,
                format!(
                    "no complete answer within the timeout of {}",
                    humantime::format_duration(self.def.timeout)
                ),
            )),
        };
        let result = match result {
            Ok((body, om)) => self.ingest(body, om).await,
            Err(e) => Err(e),
        };
        let job = JobRef {
            name: &self.def.name,
            kind: self.kind,
            source: &self.def.url,
            stale_after: self.def.stale_after,
        };
        let name = &self.def.name;
        match (
            self.health.record(
                &self.store,
                job,
                started.elapsed(),
                result.as_ref().map(|_| ()),
            ),
            &result,
        ) {
            (Outcome::CameUp, Ok(series)) => {
                info!(target_name = %name, url = %self.def.url, series, "target is up")
            }
            (Outcome::WentDown, Err(f)) => {
                warn!(target_name = %name, url = %self.def.url, reason = f.reason.as_str(), error = %f.message, "poll failed")
            }
            (Outcome::StillDown, Err(f)) => {
                debug!(target_name = %name, reason = f.reason.as_str(), error = %f.message, "poll failed again")
            }
            _ => {}
        }
        if result.is_err() {
            self.ask_eviction();
        }
    }

    /// At `evict_after_failures` failed polls in a row (counted by the
    /// health record), asks for the registration's eviction (once: the
    /// count passes the limit only once per run of failures).
    fn ask_eviction(&self) {
        if let (Some(limit), Some(tx)) = (self.def.evict_after_failures, &self.evictions) {
            if self.health.failures_in_row() == limit {
                let _ = tx.send(self.def.name.clone());
            }
        }
    }

    /// GETs the target: the body as text and whether it is OpenMetrics.
    pub(super) async fn fetch(&self) -> Result<(String, bool), Failure> {
        let client = self.client()?;
        let mut req = client
            .get(&self.def.url)
            .header(ACCEPT, HeaderValue::from_static(ACCEPT_HEADER));
        for (k, v) in &self.def.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match &self.def.auth {
            None => {}
            Some(Auth::Bearer(src)) => {
                let token = src.read().map_err(|e| fail(PollFailure::Credentials, e))?;
                req = req.bearer_auth(token.expose());
            }
            Some(Auth::Basic { username, password }) => {
                let pw = password
                    .read()
                    .map_err(|e| fail(PollFailure::Credentials, e))?;
                req = req.basic_auth(username, Some(pw.expose()));
            }
        }
        let mut resp = req.send().await.map_err(Failure::transport)?;
        outbound::check_status(resp.status()).map_err(Failure::status)?;
        let om = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/openmetrics-text"));
        let body = outbound::read_bounded(&mut resp, self.def.max_body_bytes)
            .await
            .map_err(|e| Failure::body(e, "max_body_size"))?;
        let text = String::from_utf8(body).map_err(|e| {
            fail(
                PollFailure::InvalidBody,
                format!("body is not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
            )
        })?;
        let om = om || exposition::looks_like_openmetrics(&text);
        Ok((text, om))
    }

    /// Parses, validates and commits a body; returns the number of series.
    async fn ingest(&self, body: String, openmetrics: bool) -> Result<usize, Failure> {
        let body = match self.def.mapping.clone() {
            // On the blocking pool: a mapping may run jq expressions.
            Some(m) => {
                let state = self.mapped.clone();
                tokio::task::spawn_blocking(move || m.render(&body, &state))
                    .await
                    .map_err(|e| fail(PollFailure::InvalidBody, format!("mapping failed: {e}")))?
                    .map_err(|e| fail(PollFailure::InvalidBody, e))?
            }
            None => body,
        };
        let store = self.store.clone();
        let name = self.def.name.clone();
        let labels = self.def.labels.clone();
        let prepare = move || {
            store.prepare_with(
                &name,
                &body,
                &PrepareOptions {
                    openmetrics,
                    labels: &labels,
                    ..PrepareOptions::default()
                },
            )
        };
        let prepared = if self.def.max_body_bytes > BLOCKING_PARSE_BYTES {
            match tokio::task::spawn_blocking(prepare).await {
                Ok(r) => r,
                Err(e) => {
                    return Err(fail(
                        PollFailure::InvalidBody,
                        format!("parsing failed: {e}"),
                    ))
                }
            }
        } else {
            prepare()
        };
        let to_failure = |e: crate::store::PushError| {
            let reason = match e.reason {
                RejectReason::ParseError | RejectReason::TooManySeries => PollFailure::InvalidBody,
                _ => PollFailure::Rejected,
            };
            fail(reason, e.message)
        };
        let prepared = prepared.map_err(to_failure)?;
        self.store
            .commit(vec![prepared], self.kind, &self.def.url)
            .map_err(to_failure)
    }
}

/// One client per target: TLS options differ between targets.
fn build_client(def: &TargetConfig) -> Result<reqwest::Client, String> {
    outbound::build_client(&ClientOptions {
        ca_file: def.ca_file.as_deref().map(|p| (p, "tls.ca_file")),
        insecure_skip_verify: def.insecure_skip_verify,
        // One target, one connection: no need for a pool.
        max_idle_per_host: Some(1),
        ..ClientOptions::default()
    })
}
