//! Forwarding to time-series databases: Prometheus remote write 1.0 and
//! InfluxDB line protocol (v1 and v2 write APIs).
//!
//! Each sink runs two tasks that never touch the ingest or scrape paths:
//!
//! * a **producer** that, every `interval`, takes a snapshot of every
//!   current series ([`Store::series_snapshot`]), encodes it into request
//!   bodies of at most `max_samples_per_request` samples, and queues them;
//! * a **sender** that posts queued bodies, retrying retryable failures
//!   (connection errors, 5xx, 429) with exponential back-off up to
//!   `max_retries` times.
//!
//! The queue is bounded (`queue_capacity` bodies): when the remote end is
//! slower than we produce, the oldest body is dropped and its samples are
//! counted as dropped. Every sample ends up counted as sent, failed or
//! dropped in `exporter_proxy_sink_samples_*_total{sink}`.

pub mod influx;
pub mod remote_write;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::exposition::Sample;
use crate::secret::SecretSource;
use crate::store::Store;
use crate::telemetry::SinkOutcome;

/// Longest wait between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Configuration of one sink.
#[derive(Clone, PartialEq)]
pub struct SinkConfig {
    /// Name in logs and the `sink` label.
    pub name: String,
    /// What to send and where.
    pub kind: SinkKind,
    /// Time between snapshots.
    pub interval: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Bodies waiting to be sent, at most.
    pub queue_capacity: usize,
    /// Retries of one body after its first failure.
    pub max_retries: u32,
    /// Samples per request body, at most.
    pub max_samples_per_request: usize,
    /// Label carrying the app name (added unless the series has it).
    pub app_label: String,
}

impl std::fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The destination.
#[derive(Clone, PartialEq)]
pub enum SinkKind {
    /// Prometheus remote write 1.0 (protobuf + snappy).
    RemoteWrite {
        /// Write endpoint, e.g. `http://prometheus:9090/api/v1/write`.
        url: String,
        /// Optional bearer token (from a file or the environment).
        bearer_token: Option<SecretSource>,
    },
    /// InfluxDB line protocol.
    Influx {
        /// Base URL, e.g. `http://influxdb:8086`.
        url: String,
        /// v1 (`/write?db=`) or v2 (`/api/v2/write?org=&bucket=`).
        api: influx::Api,
        /// Token, sent as `Authorization: Token ...` (from a file or the environment).
        token: Option<SecretSource>,
    },
}

impl std::fmt::Debug for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens never appear in Debug output.
        match self {
            SinkKind::RemoteWrite { url, bearer_token } => f
                .debug_struct("RemoteWrite")
                .field("url", url)
                .field("bearer_token", bearer_token)
                .finish(),
            SinkKind::Influx { url, api, token } => f
                .debug_struct("Influx")
                .field("url", url)
                .field("api", api)
                .field("token", token)
                .finish(),
        }
    }
}

/// One application's series at snapshot time.
pub struct Snapshot {
    /// Milliseconds since the epoch, used for samples without a timestamp.
    pub now_ms: i64,
    /// (app, series).
    pub apps: Vec<(String, Vec<Sample>)>,
}

/// An encoded request body and how many samples it carries.
#[derive(Debug, Clone)]
pub struct Body {
    /// The bytes to POST.
    pub bytes: bytes::Bytes,
    /// Samples inside, for the counters.
    pub samples: u64,
}

/// Turns snapshots into request bodies and knows how to post them.
pub trait Encoder: Send + Sync + 'static {
    /// Encodes a snapshot into bodies; returns them and the number of
    /// samples that cannot be represented (counted as dropped).
    fn encode(&self, snap: &Snapshot, max_samples: usize, app_label: &str) -> (Vec<Body>, u64);
    /// Builds the request for one body; credentials are read here, at each
    /// request, so a rotated token file takes effect at the next send.
    fn request(
        &self,
        client: &reqwest::Client,
        body: bytes::Bytes,
    ) -> Result<reqwest::RequestBuilder, String>;
}

/// The labels of a series as sent to a sink: the app label (unless the
/// series has one of that name already), then the series' labels; sorted.
pub fn labels_with_app<'a>(
    s: &'a Sample,
    app_label: &'a str,
    app: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut labels: Vec<(&str, &str)> = s
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if !labels.iter().any(|(k, _)| *k == app_label) {
        labels.push((app_label, app));
    }
    labels.sort_unstable();
    labels
}

/// Most bytes of an error answer read for its message.
const ERROR_BODY_BYTES: usize = 64 * 1024;

/// Why a send failed, and whether to try again.
#[derive(Debug)]
struct SendError {
    message: String,
    retryable: bool,
}

struct Queue {
    bodies: Mutex<VecDeque<Body>>,
    ready: Notify,
}

/// Starts the sink's tasks on `tracker`; they stop with `shutdown`.
pub fn spawn(
    config: SinkConfig,
    store: Arc<Store>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), String> {
    let encoder: Arc<dyn Encoder> = match &config.kind {
        SinkKind::RemoteWrite { url, bearer_token } => Arc::new(remote_write::RemoteWrite {
            url: url.clone(),
            bearer_token: bearer_token.clone(),
        }),
        SinkKind::Influx { url, api, token } => Arc::new(influx::Influx {
            write_url: influx::Influx::write_url(url, api)
                .map_err(|e| format!("sink {}: {e}", config.name))?,
            token: token.clone(),
        }),
    };
    let client = crate::outbound::build_client(&crate::outbound::ClientOptions {
        timeout: Some(config.timeout),
        max_redirects: 10,
        ..crate::outbound::ClientOptions::default()
    })
    .map_err(|e| format!("sink {}: {e}", config.name))?;
    let queue = Arc::new(Queue {
        bodies: Mutex::new(VecDeque::with_capacity(config.queue_capacity)),
        ready: Notify::new(),
    });
    let config = Arc::new(config);
    info!(sink = %config.name, kind = ?config.kind, "sink started");
    tracker.spawn(produce(
        config.clone(),
        encoder.clone(),
        store.clone(),
        queue.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(send_loop(config, encoder, client, store, queue, shutdown));
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn produce(
    config: Arc<SinkConfig>,
    encoder: Arc<dyn Encoder>,
    store: Arc<Store>,
    queue: Arc<Queue>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let (store2, enc, cfg) = (store.clone(), encoder.clone(), config.clone());
        // Snapshot parsing and encoding are CPU work: off the I/O threads.
        let encoded = tokio::task::spawn_blocking(move || {
            let snap = Snapshot {
                now_ms: chrono::Utc::now().timestamp_millis(),
                apps: store2.series_snapshot(),
            };
            enc.encode(&snap, cfg.max_samples_per_request, &cfg.app_label)
        })
        .await;
        let Ok((bodies, unrepresentable)) = encoded else {
            continue;
        };
        let m = store.self_metrics();
        if unrepresentable > 0 {
            m.count_sink(&config.name, SinkOutcome::Dropped, unrepresentable);
        }
        let mut dropped = 0;
        {
            let mut q = lock(&queue.bodies);
            for b in bodies {
                if q.len() >= config.queue_capacity {
                    if let Some(old) = q.pop_front() {
                        dropped += old.samples;
                    }
                }
                q.push_back(b);
            }
            m.set_sink_queue(&config.name, q.len());
        }
        if dropped > 0 {
            warn!(sink = %config.name, samples = dropped, "sink queue full: dropped the oldest samples");
            m.count_sink(&config.name, SinkOutcome::Dropped, dropped);
        }
        queue.ready.notify_one();
    }
}

async fn send_loop(
    config: Arc<SinkConfig>,
    encoder: Arc<dyn Encoder>,
    client: reqwest::Client,
    store: Arc<Store>,
    queue: Arc<Queue>,
    shutdown: CancellationToken,
) {
    loop {
        let next = {
            let mut q = lock(&queue.bodies);
            let next = q.pop_front();
            store.self_metrics().set_sink_queue(&config.name, q.len());
            next
        };
        let Some(body) = next else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = queue.ready.notified() => continue,
            }
        };
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        let outcome = loop {
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = send(&*encoder, &client, body.bytes.clone()) => r,
            };
            match result {
                Ok(()) => break SinkOutcome::Sent,
                Err(e) if e.retryable && attempt < config.max_retries => {
                    attempt += 1;
                    debug!(sink = %config.name, attempt, error = %e.message, "sink send failed, retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    warn!(sink = %config.name, samples = body.samples, attempts = attempt + 1, error = %e.message, "sink send failed");
                    break SinkOutcome::Failed;
                }
            }
        };
        store
            .self_metrics()
            .count_sink(&config.name, outcome, body.samples);
    }
}

async fn send(
    encoder: &dyn Encoder,
    client: &reqwest::Client,
    body: bytes::Bytes,
) -> Result<(), SendError> {
    let request = encoder.request(client, body).map_err(|message| SendError {
        // A missing or unreadable token: it may be fixed before the retry.
        message,
        retryable: true,
    })?;
    let mut resp = request.send().await.map_err(|e| SendError {
        message: crate::outbound::error_chain(e),
        retryable: true,
    })?;
    let Err(crate::outbound::BadStatus(status)) = crate::outbound::check_status(resp.status())
    else {
        return Ok(());
    };
    // The start of the answer names the cause; the rest is not read.
    let text = match crate::outbound::read_bounded(&mut resp, ERROR_BODY_BYTES).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let text: String = text.chars().take(200).collect();
    Err(SendError {
        message: format!("HTTP {status}: {}", text.trim()),
        retryable: status.is_server_error() || status.as_u16() == 429,
    })
}
