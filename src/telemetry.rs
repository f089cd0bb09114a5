//! Self-metrics and logging set-up.
//!
//! Self-metrics are plain atomics rendered by our own 0.0.4 writer (the
//! `prometheus-client` crate only speaks OpenMetrics, which mixes badly into
//! a 0.0.4 stream). Labels are small closed sets: error texts go to the log
//! and to `/apps`, never into a label.
//!
//! Every update bumps the shared generation counter so that the cached
//! `/metrics` body is re-rendered; self-metrics change only with events
//! (pushes, connections), never per scrape, so a quiet store is served from
//! cache.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::exposition::{self, MetricType};

/// Prefix of every self-metric; pushed families may not use it.
pub const PREFIX: &str = "exporter_proxy_";

/// One application as the self-metrics show it (`app_series`,
/// `app_last_push_timestamp_seconds`): what [`AppFamily::encode_line`] needs
/// of the store's view, so that telemetry does not depend on the store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppRow<'a> {
    /// Application name (the `app` label).
    pub name: &'a str,
    /// How its data arrives (the `kind` label: `push`, `poll`, ...).
    pub kind: &'static str,
    /// Number of series in its current set.
    pub series: usize,
    /// When its current set was accepted; `None`: no data yet (no
    /// timestamp series is written).
    pub last_update: Option<DateTime<Utc>>,
}

/// Why a push or a connection was refused: a closed set, used as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// Malformed exposition text.
    ParseError,
    /// Malformed JSON or Cap'n Proto envelope, or invalid UTF-8.
    InvalidEnvelope,
    /// Type conflict, colliding names or duplicate series with another app.
    Conflict,
    /// Push larger than `max_push_bytes`.
    TooLarge,
    /// More series than `max_series_per_app`.
    TooManySeries,
    /// The store is full.
    TooManyApps,
    /// Empty or malformed application name.
    InvalidAppName,
    /// The client was too slow (read or idle timeout).
    Timeout,
    /// The listener's connection limit was reached.
    TooManyConnections,
    /// The connection failed while reading.
    IoError,
    /// The peer is outside `receiver.allowed_networks`.
    NetworkNotAllowed,
}

impl RejectReason {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::ParseError => "parse_error",
            RejectReason::InvalidEnvelope => "invalid_envelope",
            RejectReason::Conflict => "conflict",
            RejectReason::TooLarge => "too_large",
            RejectReason::TooManySeries => "too_many_series",
            RejectReason::TooManyApps => "too_many_apps",
            RejectReason::InvalidAppName => "invalid_app_name",
            RejectReason::Timeout => "timeout",
            RejectReason::TooManyConnections => "too_many_connections",
            RejectReason::IoError => "io_error",
            RejectReason::NetworkNotAllowed => "network_not_allowed",
        }
    }
}

/// Why a poll failed: a closed set, used as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PollFailure {
    /// The connection could not be established (refused, DNS, TLS handshake).
    Connect,
    /// The request did not complete within the target's timeout.
    Timeout,
    /// The answer's status was not 2xx.
    HttpStatus,
    /// The body was larger than the target's `max_body_size`.
    TooLarge,
    /// The body was not valid UTF-8 or not a valid exposition.
    InvalidBody,
    /// The store refused the data (conflict with another app, limits).
    Rejected,
    /// The credentials file or variable could not be read.
    Credentials,
    /// Any other error while sending the request or reading the answer.
    Request,
}

impl PollFailure {
    /// Every reason, in label order.
    pub const ALL: [PollFailure; 8] = [
        PollFailure::Connect,
        PollFailure::Credentials,
        PollFailure::HttpStatus,
        PollFailure::InvalidBody,
        PollFailure::Rejected,
        PollFailure::Request,
        PollFailure::Timeout,
        PollFailure::TooLarge,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PollFailure::Connect => "connect_error",
            PollFailure::Timeout => "timeout",
            PollFailure::HttpStatus => "http_status",
            PollFailure::TooLarge => "too_large",
            PollFailure::InvalidBody => "invalid_body",
            PollFailure::Rejected => "rejected",
            PollFailure::Credentials => "credentials",
            PollFailure::Request => "request_error",
        }
    }
}

/// What the self-metrics know about one polled target.
#[derive(Debug, Default, Clone)]
struct TargetStats {
    up: bool,
    last_success: Option<f64>,
    last_failure: Option<f64>,
    duration: f64,
    failures: BTreeMap<PollFailure, u64>,
}

/// A read-only copy of one polled target's statistics (times in seconds
/// since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetFacts {
    /// Whether the last poll succeeded.
    pub up: bool,
    /// Time of the last successful poll.
    pub last_success: Option<f64>,
    /// Time of the last failed poll.
    pub last_failure: Option<f64>,
    /// Duration of the last poll, in seconds.
    pub last_duration: f64,
    /// Failed polls by reason label.
    pub failures: Vec<(&'static str, u64)>,
}

/// A read-only copy of the process-wide counters the status page shows
/// (times in seconds since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusFacts {
    /// Whether the last reload (or the start) succeeded.
    pub reload_ok: bool,
    /// Time of the last successful reload or start.
    pub reload_success: Option<f64>,
    /// Time of the last snapshot written.
    pub snapshot_last_success: Option<f64>,
    /// Snapshots that could not be written.
    pub snapshot_failures: u64,
    /// Snapshots that could not be restored at start-up.
    pub snapshot_restore_failures: u64,
    /// Apps removed because their TTL ran out.
    pub expired: u64,
    /// (sink, outcome, samples).
    pub sinks: Vec<(String, &'static str, u64)>,
    /// (sink, bodies waiting in its queue).
    pub sink_queues: Vec<(String, usize)>,
    /// Open connections by listener.
    pub open_connections: Vec<(String, i64)>,
    /// Refusals by reason label.
    pub rejections: Vec<(&'static str, u64)>,
}

/// Counters and gauges about the proxy itself.
#[derive(Debug, Default)]
pub struct SelfMetrics {
    generation: Arc<AtomicU64>,
    /// (listener, format, result) → pushes. A `Mutex<BTreeMap>` because the
    /// key set is small and dynamic; held for an increment only.
    pushes: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    rejections: Mutex<BTreeMap<RejectReason, u64>>,
    /// Samples left out of accepted pushes, by reason (`exposition::DropReason`).
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    open_connections: Mutex<BTreeMap<String, i64>>,
    render_nanos: AtomicU64,
    /// Bodies rendered (once per generation that was scraped).
    renders: AtomicU64,
    expired: AtomicU64,
    snapshot_failures: AtomicU64,
    /// 1 when the last reload (or the start) succeeded.
    reload_ok: AtomicU64,
    /// Milliseconds since the epoch of the last successful reload or start.
    reload_success_ms: AtomicU64,
    snapshot_restore_failures: AtomicU64,
    /// Milliseconds since the epoch of the last snapshot written (0: none).
    snapshot_last_success_ms: AtomicU64,
    /// (sink, outcome) → samples.
    sinks: Mutex<BTreeMap<(String, SinkOutcome), u64>>,
    /// Polled targets by name (static and registered).
    targets: Mutex<BTreeMap<String, TargetStats>>,
    /// Bodies waiting in each sink's queue (for the status page only: not
    /// a self-metric, so changes do not bump the generation).
    sink_queues: Mutex<BTreeMap<String, usize>>,
    registrations: AtomicU64,
}

/// What happened to samples handed to a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SinkOutcome {
    /// Accepted by the remote end.
    Sent,
    /// Refused by the remote end, or retries exhausted.
    Failed,
    /// Never sent: the queue was full, or the value cannot be represented.
    Dropped,
}

impl SinkOutcome {
    /// Short name (`sent`, `failed`, `dropped`).
    pub fn as_str(self) -> &'static str {
        match self {
            SinkOutcome::Sent => "sent",
            SinkOutcome::Failed => "failed",
            SinkOutcome::Dropped => "dropped",
        }
    }

    fn metric(self) -> &'static str {
        match self {
            SinkOutcome::Sent => "sink_samples_sent_total",
            SinkOutcome::Failed => "sink_samples_failed_total",
            SinkOutcome::Dropped => "sink_samples_dropped_total",
        }
    }
}

impl SelfMetrics {
    /// New, zeroed metrics.
    pub fn new() -> Arc<Self> {
        Arc::new(SelfMetrics::default())
    }

    /// The generation counter shared with the store.
    pub fn generation(&self) -> Arc<AtomicU64> {
        self.generation.clone()
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Counts one push (one app in one message) by listener and format.
    pub fn count_push(&self, listener: &str, format: &'static str, accepted: bool) {
        let result = if accepted { "accepted" } else { "rejected" };
        *lock(&self.pushes)
            .entry((listener.to_owned(), format, result))
            .or_default() += 1;
        self.bump();
    }

    /// Counts `n` samples left out of an accepted push for `reason`.
    pub fn count_dropped(&self, reason: &'static str, n: u64) {
        *lock(&self.dropped).entry(reason).or_default() += n;
        self.bump();
    }

    /// Samples left out of accepted pushes for `reason` so far.
    pub fn dropped(&self, reason: &str) -> u64 {
        lock(&self.dropped).get(reason).copied().unwrap_or(0)
    }

    /// Counts one rejection by reason.
    pub fn count_rejection(&self, reason: RejectReason) {
        *lock(&self.rejections).entry(reason).or_default() += 1;
        self.bump();
    }

    /// Tracks a connection being opened (`+1`) or closed (`-1`).
    pub fn connection(&self, listener: &str, delta: i64) {
        *lock(&self.open_connections)
            .entry(listener.to_owned())
            .or_default() += delta;
        self.bump();
    }

    /// Records the duration of the last render (shown from the next one on).
    pub fn observe_render(&self, d: Duration) {
        self.render_nanos
            .store(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        // Like the duration, no bump: the count is part of the next render.
        self.renders.fetch_add(1, Ordering::Relaxed);
    }

    /// Bodies of `/metrics` rendered so far (scrapes of an unchanged store,
    /// and every UI page, are served without one).
    pub fn renders(&self) -> u64 {
        self.renders.load(Ordering::Relaxed)
    }

    /// Counts apps removed because their TTL ran out.
    pub fn count_expired(&self, n: u64) {
        self.expired.fetch_add(n, Ordering::Relaxed);
        self.bump();
    }

    /// Records the outcome of a reload (and the start, as a success).
    pub fn config_reloaded(&self, ok: bool) {
        self.reload_ok.store(u64::from(ok), Ordering::Relaxed);
        if ok {
            let ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
            self.reload_success_ms.store(ms, Ordering::Relaxed);
        }
        self.bump();
    }

    /// Counts a snapshot that could not be written.
    pub fn count_snapshot_failure(&self) {
        self.snapshot_failures.fetch_add(1, Ordering::Relaxed);
        self.bump();
    }

    /// Counts a snapshot that could not be restored at start-up.
    pub fn count_snapshot_restore_failure(&self) {
        self.snapshot_restore_failures
            .fetch_add(1, Ordering::Relaxed);
        self.bump();
    }

    /// Records a snapshot written now.
    pub fn snapshot_written(&self) {
        let ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        self.snapshot_last_success_ms.store(ms, Ordering::Relaxed);
        self.bump();
    }

    /// Counts samples of a sink by outcome.
    pub fn count_sink(&self, sink: &str, outcome: SinkOutcome, n: u64) {
        *lock(&self.sinks)
            .entry((sink.to_owned(), outcome))
            .or_default() += n;
        self.bump();
    }

    /// Records the number of bodies waiting in a sink's queue.
    pub fn set_sink_queue(&self, sink: &str, bodies: usize) {
        lock(&self.sink_queues).insert(sink.to_owned(), bodies);
    }

    /// Samples counted for a sink and outcome so far.
    pub fn sink_count(&self, sink: &str, outcome: SinkOutcome) -> u64 {
        lock(&self.sinks)
            .get(&(sink.to_owned(), outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Records the outcome of one poll of `target`.
    pub fn poll_result(&self, target: &str, duration: Duration, result: Result<(), PollFailure>) {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let mut targets = lock(&self.targets);
        let t = targets.entry(target.to_owned()).or_default();
        t.duration = duration.as_secs_f64();
        match result {
            Ok(()) => {
                t.up = true;
                t.last_success = Some(now);
            }
            Err(reason) => {
                t.up = false;
                t.last_failure = Some(now);
                *t.failures.entry(reason).or_default() += 1;
            }
        }
        drop(targets);
        self.bump();
    }

    /// Forgets a target that is no longer polled.
    pub fn remove_target(&self, target: &str) {
        if lock(&self.targets).remove(target).is_some() {
            self.bump();
        }
    }

    /// Number of failed polls of `target` for `reason` so far.
    pub fn poll_failures(&self, target: &str, reason: PollFailure) -> u64 {
        lock(&self.targets)
            .get(target)
            .and_then(|t| t.failures.get(&reason).copied())
            .unwrap_or(0)
    }

    /// Sets the number of live registrations.
    pub fn set_registrations(&self, n: usize) {
        self.registrations.store(n as u64, Ordering::Relaxed);
        self.bump();
    }

    /// Number of rejections for `reason` so far.
    pub fn rejections(&self, reason: RejectReason) -> u64 {
        lock(&self.rejections).get(&reason).copied().unwrap_or(0)
    }

    /// What the self-metrics know about one polled target (static,
    /// registered or collector), for the web UI; `None` before its first poll.
    pub fn target_facts(&self, target: &str) -> Option<TargetFacts> {
        lock(&self.targets).get(target).map(|t| TargetFacts {
            up: t.up,
            last_success: t.last_success,
            last_failure: t.last_failure,
            last_duration: t.duration,
            failures: t.failures.iter().map(|(r, n)| (r.as_str(), *n)).collect(),
        })
    }

    /// Reload, snapshot and sink counters, for the web UI's status page.
    pub fn status_facts(&self) -> StatusFacts {
        let ms = |a: &AtomicU64| match a.load(Ordering::Relaxed) {
            0 => None,
            v => Some(v as f64 / 1000.0),
        };
        StatusFacts {
            reload_ok: self.reload_ok.load(Ordering::Relaxed) == 1,
            reload_success: ms(&self.reload_success_ms),
            snapshot_last_success: ms(&self.snapshot_last_success_ms),
            snapshot_failures: self.snapshot_failures.load(Ordering::Relaxed),
            snapshot_restore_failures: self.snapshot_restore_failures.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            sinks: lock(&self.sinks)
                .iter()
                .map(|((sink, outcome), n)| (sink.clone(), outcome.as_str(), *n))
                .collect(),
            sink_queues: lock(&self.sink_queues)
                .iter()
                .map(|(s, n)| (s.clone(), *n))
                .collect(),
            open_connections: lock(&self.open_connections)
                .iter()
                .map(|(l, n)| (l.clone(), *n))
                .collect(),
            rejections: lock(&self.rejections)
                .iter()
                .map(|(r, n)| (r.as_str(), *n))
                .collect(),
        }
    }

    /// The self-metrics after the per-application families
    /// ([`AppFamily`], which the store writes app by app, keeping each
    /// app's lines until it changes): the number of applications, then
    /// the process, status, sink and target families.
    pub fn encode_rest(&self, out: &mut Vec<u8>, apps: usize) {
        use std::io::Write;
        header(
            out,
            "apps",
            "Number of applications in the store.",
            MetricType::Gauge,
        );
        let _ = writeln!(out, "{PREFIX}apps {apps}");
        self.encode_process(out);
        self.encode_status(out);
        self.encode_sinks(out);
        self.encode_targets(out);
    }

    /// Build information and the counters of pushes, connections,
    /// registrations and rendering.
    fn encode_process(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let p = PREFIX;
        header(
            out,
            "build_info",
            "Build information; the value is always 1.",
            MetricType::Gauge,
        );
        let _ = writeln!(
            out,
            "{p}build_info{{revision=\"{}\",version=\"{}\"}} 1",
            env!("EXPORTER_PROXY_REVISION"),
            env!("CARGO_PKG_VERSION")
        );
        header(
            out,
            "expired_apps_total",
            "Applications removed because no push came within their TTL.",
            MetricType::Counter,
        );
        let _ = writeln!(
            out,
            "{p}expired_apps_total {}",
            self.expired.load(Ordering::Relaxed)
        );
        header(
            out,
            "open_connections",
            "Push connections currently open, by listener.",
            MetricType::Gauge,
        );
        for (listener, n) in lock(&self.open_connections).iter() {
            out.extend_from_slice(format!("{p}open_connections{{listener=\"").as_bytes());
            exposition::escape_label_value(out, listener);
            let _ = writeln!(out, "\"}} {n}");
        }
        header(
            out,
            "push_rejections_total",
            "Pushes and connections refused, by reason.",
            MetricType::Counter,
        );
        for (reason, n) in lock(&self.rejections).iter() {
            let _ = writeln!(
                out,
                "{p}push_rejections_total{{reason=\"{}\"}} {n}",
                reason.as_str()
            );
        }
        header(
            out,
            "dropped_samples_total",
            "Samples left out of accepted pushes, by reason.",
            MetricType::Counter,
        );
        for (reason, n) in lock(&self.dropped).iter() {
            let _ = writeln!(out, "{p}dropped_samples_total{{reason=\"{reason}\"}} {n}");
        }
        header(
            out,
            "pushes_total",
            "Application pushes received, by listener, format and result.",
            MetricType::Counter,
        );
        for ((listener, format, result), n) in lock(&self.pushes).iter() {
            out.extend_from_slice(
                format!("{p}pushes_total{{format=\"{format}\",listener=\"").as_bytes(),
            );
            exposition::escape_label_value(out, listener);
            let _ = writeln!(out, "\",result=\"{result}\"}} {n}");
        }
        header(
            out,
            "registrations",
            "Exporters currently registered through POST /register.",
            MetricType::Gauge,
        );
        let _ = writeln!(
            out,
            "{p}registrations {}",
            self.registrations.load(Ordering::Relaxed)
        );
        header(
            out,
            "render_duration_seconds",
            "Time taken by the previous rendering of /metrics.",
            MetricType::Gauge,
        );
        let secs = self.render_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{p}render_duration_seconds {secs}");
        header(
            out,
            "renders_total",
            "Renderings of /metrics completed before this one (once per change of the store).",
            MetricType::Counter,
        );
        let _ = writeln!(out, "{p}renders_total {}", self.renders());
    }

    /// The outcome of the last configuration load and of the snapshots:
    /// one unlabelled series each.
    fn encode_status(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let p = PREFIX;
        for (name, help, typ, value) in [
            (
                "config_last_reload_success_timestamp_seconds",
                "Time of the last successful configuration load (start or reload).",
                MetricType::Gauge,
                self.reload_success_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            ),
            (
                "config_last_reload_successful",
                "Whether the last configuration reload succeeded (1) or not (0).",
                MetricType::Gauge,
                self.reload_ok.load(Ordering::Relaxed) as f64,
            ),
            (
                "snapshot_failures_total",
                "Snapshots that could not be written (ingestion is unaffected).",
                MetricType::Counter,
                self.snapshot_failures.load(Ordering::Relaxed) as f64,
            ),
            (
                "snapshot_last_success_timestamp_seconds",
                "Time the last snapshot was written (0: never).",
                MetricType::Gauge,
                self.snapshot_last_success_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            ),
            (
                "snapshot_restore_failures_total",
                "Snapshots found unusable at start-up (moved aside).",
                MetricType::Counter,
                self.snapshot_restore_failures.load(Ordering::Relaxed) as f64,
            ),
        ] {
            header(out, name, help, typ);
            let _ = writeln!(out, "{p}{name} {value}");
        }
    }

    /// Samples of each sink, one family per outcome.
    fn encode_sinks(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let p = PREFIX;
        let sinks = lock(&self.sinks);
        for (outcome, help) in [
            (
                SinkOutcome::Dropped,
                "Samples a sink never sent: queue full or value not representable.",
            ),
            (
                SinkOutcome::Failed,
                "Samples a sink could not deliver: refused, or retries exhausted.",
            ),
            (SinkOutcome::Sent, "Samples a sink delivered."),
        ] {
            header(out, outcome.metric(), help, MetricType::Counter);
            for ((sink, _), n) in sinks.iter().filter(|((_, o), _)| *o == outcome) {
                out.extend_from_slice(format!("{p}{}{{sink=\"", outcome.metric()).as_bytes());
                exposition::escape_label_value(out, sink);
                let _ = writeln!(out, "\"}} {n}");
            }
        }
    }

    fn encode_targets(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let p = PREFIX;
        let targets = lock(&self.targets);
        let series = |out: &mut Vec<u8>, name: &str, target: &str| {
            out.extend_from_slice(format!("{p}{name}{{target=\"").as_bytes());
            exposition::escape_label_value(out, target);
            out.push(b'"');
        };
        type Gauge = (&'static str, &'static str, fn(&TargetStats) -> Option<f64>);
        let gauges: [Gauge; 4] = [
            (
                "target_last_failure_timestamp_seconds",
                "Time of the last failed poll of each target.",
                |t| t.last_failure,
            ),
            (
                "target_last_success_timestamp_seconds",
                "Time of the last successful poll of each target.",
                |t| t.last_success,
            ),
            (
                "target_poll_duration_seconds",
                "Duration of the last poll of each target.",
                |t| Some(t.duration),
            ),
            (
                "target_up",
                "Whether the last poll of each target succeeded (1) or failed (0).",
                |t| Some(if t.up { 1.0 } else { 0.0 }),
            ),
        ];
        for (i, (name, help, get)) in gauges.iter().enumerate() {
            if i == 3 {
                // `target_poll_failures_total` sorts before `target_up`.
                self.encode_failures(out, &targets);
            }
            exposition::encode_header(out, &format!("{p}{name}"), Some(help), MetricType::Gauge);
            for (target, t) in targets.iter() {
                if let Some(v) = get(t) {
                    series(out, name, target);
                    let _ = writeln!(out, "}} {}", exposition::format_value(v));
                }
            }
        }
    }

    fn encode_failures(&self, out: &mut Vec<u8>, targets: &BTreeMap<String, TargetStats>) {
        use std::io::Write;
        let p = PREFIX;
        exposition::encode_header(
            out,
            &format!("{p}target_poll_failures_total"),
            Some("Failed polls of each target, by reason."),
            MetricType::Counter,
        );
        for (target, t) in targets {
            // Every reason is listed, zeros included, so that rate() sees the
            // first failure of a kind.
            for reason in PollFailure::ALL {
                let n = t.failures.get(&reason).copied().unwrap_or(0);
                out.extend_from_slice(
                    format!(
                        "{p}target_poll_failures_total{{reason=\"{}\",target=\"",
                        reason.as_str()
                    )
                    .as_bytes(),
                );
                exposition::escape_label_value(out, target);
                let _ = writeln!(out, "\"}} {n}");
            }
        }
    }
}

/// The applications' families: last update, series, and their number.
/// The self-metric families with a series per application, in the order
/// they are written (first in the self-metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppFamily {
    /// `exporter_proxy_app_last_push_timestamp_seconds`.
    LastPush,
    /// `exporter_proxy_app_series`.
    Series,
}

impl AppFamily {
    /// Both, in order.
    pub const ALL: [AppFamily; 2] = [AppFamily::LastPush, AppFamily::Series];

    /// The family name, prefix included.
    pub fn name(self) -> String {
        format!("{PREFIX}{}", self.short_name())
    }

    fn short_name(self) -> &'static str {
        match self {
            AppFamily::LastPush => "app_last_push_timestamp_seconds",
            AppFamily::Series => "app_series",
        }
    }

    /// The HELP text.
    pub fn help(self) -> &'static str {
        match self {
            AppFamily::LastPush => "Time of the last accepted push or poll of each application.",
            AppFamily::Series => "Number of series each application currently exposes.",
        }
    }

    /// Both families are gauges.
    pub fn typ(self) -> MetricType {
        MetricType::Gauge
    }

    /// The `# HELP` and `# TYPE` lines.
    pub fn encode_header(self, out: &mut Vec<u8>) {
        header(out, self.short_name(), self.help(), self.typ());
    }

    /// The line of application `a` (none in [`AppFamily::LastPush`] for an
    /// app without data yet). The same line is valid OpenMetrics.
    pub fn encode_line(self, out: &mut Vec<u8>, a: &AppRow<'_>) {
        use std::io::Write;
        let value = match self {
            AppFamily::LastPush => match a.last_update {
                Some(last) => format!("{}", last.timestamp_millis() as f64 / 1000.0),
                None => return,
            },
            AppFamily::Series => a.series.to_string(),
        };
        let _ = write!(out, "{PREFIX}{}{{app=\"", self.short_name());
        exposition::escape_label_value(out, a.name);
        let _ = writeln!(out, "\",kind=\"{}\"}} {value}", a.kind);
    }
}

/// The `# HELP` and `# TYPE` lines of the self-metric `PREFIX` + `name`.
fn header(out: &mut Vec<u8>, name: &str, help: &str, typ: MetricType) {
    exposition::encode_header(out, &format!("{PREFIX}{name}"), Some(help), typ);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters stay meaningful after a panic elsewhere: ignore poisoning.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the global tracing subscriber. `RUST_LOG` wins over `level`.
pub fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
