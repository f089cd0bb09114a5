//! Encoding to OpenMetrics 1.0 text, from `Metric` messages.
//!
//! A family is written with its OpenMetrics type and name: `untyped` is
//! `unknown`; a counter named `foo_total` is the counter family `foo` whose
//! samples are `foo_total` (the series Prometheus stores are the same as
//! from 0.0.4 text). A counter whose name does not end in `_total`, or whose
//! name without `_total` is taken by another family, is written as
//! `unknown` under its own name rather than renamed, so that every format
//! yields the same series. Exemplars go on counter samples and histogram
//! buckets, as OpenMetrics allows; native histograms have no OpenMetrics
//! form and are written as their classic part (`+Inf`, `_sum`, `_count` for
//! a native-only histogram). Timestamps are in seconds. The exposition ends
//! with `# EOF` ([`EOF`]).
//!
//! Pure: no IO.

use std::io::Write as _;

use super::proto::{Exemplar, LabelPair, Metric};
use super::{escape_label_value, format_go_float, format_value, MetricType};

/// Content type of OpenMetrics 1.0 text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The last line of an OpenMetrics exposition.
pub const EOF: &[u8] = b"# EOF\n";

/// How a family is written in OpenMetrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OmKind {
    /// A counter family named without `_total`; samples keep the name.
    Counter,
    /// Gauge.
    Gauge,
    /// Summary.
    Summary,
    /// Histogram.
    Histogram,
    /// Untyped, or a counter that cannot be an OpenMetrics counter.
    Unknown,
}

impl OmKind {
    /// The OpenMetrics kind of a family, given whether the name without
    /// `_total` is free (`stem_free`, only asked for counters).
    pub fn of(name: &str, typ: MetricType, stem_free: impl FnOnce(&str) -> bool) -> OmKind {
        match typ {
            MetricType::Counter => match name.strip_suffix("_total") {
                Some(stem) if !stem.is_empty() && stem_free(stem) => OmKind::Counter,
                _ => OmKind::Unknown,
            },
            MetricType::Gauge => OmKind::Gauge,
            MetricType::Summary => OmKind::Summary,
            MetricType::Histogram => OmKind::Histogram,
            MetricType::Untyped => OmKind::Unknown,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            OmKind::Counter => "counter",
            OmKind::Gauge => "gauge",
            OmKind::Summary => "summary",
            OmKind::Histogram => "histogram",
            OmKind::Unknown => "unknown",
        }
    }
}

/// Appends the `# TYPE` and `# HELP` lines of family `name` (its 0.0.4
/// name: the counter stem is derived here).
pub fn encode_header(out: &mut Vec<u8>, name: &str, help: Option<&str>, kind: OmKind) {
    let family = match kind {
        OmKind::Counter => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    out.extend_from_slice(b"# TYPE ");
    out.extend_from_slice(family.as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind.as_str().as_bytes());
    out.push(b'\n');
    if let Some(help) = help {
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(family.as_bytes());
        out.push(b' ');
        // OpenMetrics escapes quotes in HELP too.
        escape_label_value(out, help);
        out.push(b'\n');
    }
}

/// Appends the sample lines of `metrics` of family `name` (0.0.4 name).
/// Exemplars are written only where OpenMetrics allows them.
pub fn encode_metrics(out: &mut Vec<u8>, name: &str, kind: OmKind, metrics: &[Metric]) {
    for m in metrics {
        let ts = m.timestamp_ms;
        match kind {
            OmKind::Counter | OmKind::Gauge | OmKind::Unknown => {
                let (value, exemplar) = if let Some(c) = &m.counter {
                    (c.value, c.exemplar.as_ref())
                } else if let Some(g) = &m.gauge {
                    (g.value, None)
                } else {
                    (m.untyped.as_ref().and_then(|u| u.value), None)
                };
                let exemplar = exemplar.filter(|_| kind == OmKind::Counter);
                line(
                    out,
                    name,
                    &m.label,
                    None,
                    value.unwrap_or(0.0),
                    ts,
                    exemplar,
                );
            }
            OmKind::Summary => {
                let Some(s) = &m.summary else { continue };
                for q in &s.quantile {
                    let bound = format_go_float(q.quantile.unwrap_or(0.0));
                    let extra = Some(("quantile", bound.as_str()));
                    line(out, name, &m.label, extra, q.value.unwrap_or(0.0), ts, None);
                }
                let sum = s.sample_sum.unwrap_or(0.0);
                line(out, &format!("{name}_sum"), &m.label, None, sum, ts, None);
                let count = s.sample_count.unwrap_or(0) as f64;
                line(
                    out,
                    &format!("{name}_count"),
                    &m.label,
                    None,
                    count,
                    ts,
                    None,
                );
            }
            OmKind::Histogram => {
                let Some(h) = &m.histogram else { continue };
                let bucket = format!("{name}_bucket");
                let mut inf = false;
                for b in &h.bucket {
                    let bound = b.upper_bound.unwrap_or(0.0);
                    inf |= bound == f64::INFINITY;
                    let le = format_go_float(bound);
                    let extra = Some(("le", le.as_str()));
                    line(
                        out,
                        &bucket,
                        &m.label,
                        extra,
                        b.count(),
                        ts,
                        b.exemplar.as_ref(),
                    );
                }
                if !inf {
                    let extra = Some(("le", "+Inf"));
                    line(out, &bucket, &m.label, extra, h.count(), ts, None);
                }
                let sum = h.sample_sum.unwrap_or(0.0);
                line(out, &format!("{name}_sum"), &m.label, None, sum, ts, None);
                line(
                    out,
                    &format!("{name}_count"),
                    &m.label,
                    None,
                    h.count(),
                    ts,
                    None,
                );
            }
        }
    }
}

fn labels(out: &mut Vec<u8>, labels: &[LabelPair], extra: Option<(&str, &str)>) {
    let mut open = false;
    let pairs = labels
        .iter()
        .map(|l| {
            (
                l.name.as_deref().unwrap_or_default(),
                l.value.as_deref().unwrap_or_default(),
            )
        })
        .chain(extra);
    for (n, v) in pairs {
        out.push(if open { b',' } else { b'{' });
        open = true;
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_label_value(out, v);
        out.push(b'"');
    }
    if open {
        out.push(b'}');
    }
}

fn line(
    out: &mut Vec<u8>,
    name: &str,
    l: &[LabelPair],
    extra: Option<(&str, &str)>,
    value: f64,
    ts_ms: Option<i64>,
    exemplar: Option<&Exemplar>,
) {
    out.extend_from_slice(name.as_bytes());
    labels(out, l, extra);
    out.push(b' ');
    out.extend_from_slice(format_value(value).as_bytes());
    if let Some(ts) = ts_ms {
        write_seconds(out, ts);
    }
    if let Some(e) = exemplar {
        out.extend_from_slice(b" # ");
        if e.label.is_empty() {
            out.extend_from_slice(b"{}");
        } else {
            labels(out, &e.label, None);
        }
        out.push(b' ');
        out.extend_from_slice(format_value(e.value.unwrap_or(0.0)).as_bytes());
        if let Some(t) = &e.timestamp {
            let secs = t.seconds as f64 + f64::from(t.nanos) / 1e9;
            out.push(b' ');
            out.extend_from_slice(format_value(secs).as_bytes());
        }
    }
    out.push(b'\n');
}

/// Appends ` <seconds>` for a millisecond timestamp, exactly (no float
/// rounding): `1700000000123` → ` 1700000000.123`.
fn write_seconds(out: &mut Vec<u8>, ms: i64) {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    write!(out, " {sign}{}.{:03}", abs / 1000, abs % 1000).expect("writing to a Vec cannot fail");
}
