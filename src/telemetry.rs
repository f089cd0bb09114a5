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

use crate::exposition::{self, MetricType};
use crate::store::AppInfo;

/// Prefix of every self-metric; pushed families may not use it.
pub const PREFIX: &str = "exporter_proxy_";

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

/// Counters and gauges about the proxy itself.
#[derive(Debug, Default)]
pub struct SelfMetrics {
    generation: Arc<AtomicU64>,
    /// (listener, format, result) → pushes. A `Mutex<BTreeMap>` because the
    /// key set is small and dynamic; held for an increment only.
    pushes: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    rejections: Mutex<BTreeMap<RejectReason, u64>>,
    open_connections: Mutex<BTreeMap<String, i64>>,
    render_nanos: AtomicU64,
    /// (sink, outcome) → samples.
    sinks: Mutex<BTreeMap<(String, SinkOutcome), u64>>,
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
    }

    /// Counts samples of a sink by outcome.
    pub fn count_sink(&self, sink: &str, outcome: SinkOutcome, n: u64) {
        *lock(&self.sinks)
            .entry((sink.to_owned(), outcome))
            .or_default() += n;
        self.bump();
    }

    /// Samples counted for a sink and outcome so far.
    pub fn sink_count(&self, sink: &str, outcome: SinkOutcome) -> u64 {
        lock(&self.sinks)
            .get(&(sink.to_owned(), outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Number of rejections for `reason` so far.
    pub fn rejections(&self, reason: RejectReason) -> u64 {
        lock(&self.rejections).get(&reason).copied().unwrap_or(0)
    }

    /// Appends the self-metrics to a `/metrics` body.
    pub fn encode(&self, out: &mut Vec<u8>, apps: &[AppInfo]) {
        use std::io::Write;
        let p = PREFIX;
        let header = |out: &mut Vec<u8>, name: &str, help: &str, typ: MetricType| {
            exposition::encode_header(out, &format!("{p}{name}"), Some(help), typ);
        };
        let label = |out: &mut Vec<u8>, v: &str| exposition::escape_label_value(out, v);

        header(
            out,
            "app_last_push_timestamp_seconds",
            "Time of the last accepted push or poll of each application.",
            MetricType::Gauge,
        );
        for a in apps {
            out.extend_from_slice(format!("{p}app_last_push_timestamp_seconds{{app=\"").as_bytes());
            label(out, &a.name);
            let ts = a.last_update.timestamp_millis() as f64 / 1000.0;
            let _ = writeln!(out, "\",kind=\"{}\"}} {ts}", a.kind.as_str());
        }
        header(
            out,
            "app_series",
            "Number of series each application currently exposes.",
            MetricType::Gauge,
        );
        for a in apps {
            out.extend_from_slice(format!("{p}app_series{{app=\"").as_bytes());
            label(out, &a.name);
            let _ = writeln!(out, "\",kind=\"{}\"}} {}", a.kind.as_str(), a.series);
        }
        header(
            out,
            "apps",
            "Number of applications in the store.",
            MetricType::Gauge,
        );
        let _ = writeln!(out, "{p}apps {}", apps.len());
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
            "open_connections",
            "Push connections currently open, by listener.",
            MetricType::Gauge,
        );
        for (listener, n) in lock(&self.open_connections).iter() {
            out.extend_from_slice(format!("{p}open_connections{{listener=\"").as_bytes());
            label(out, listener);
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
            "pushes_total",
            "Application pushes received, by listener, format and result.",
            MetricType::Counter,
        );
        for ((listener, format, result), n) in lock(&self.pushes).iter() {
            out.extend_from_slice(
                format!("{p}pushes_total{{format=\"{format}\",listener=\"").as_bytes(),
            );
            label(out, listener);
            let _ = writeln!(out, "\",result=\"{result}\"}} {n}");
        }
        header(
            out,
            "render_duration_seconds",
            "Time taken by the previous rendering of /metrics.",
            MetricType::Gauge,
        );
        let secs = self.render_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{p}render_duration_seconds {secs}");
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
                label(out, sink);
                let _ = writeln!(out, "\"}} {n}");
            }
        }
    }
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
