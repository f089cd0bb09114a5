//! Between the protobuf model ([`super::proto`]) and our text model.
//!
//! * Pushes: [`push_to_text`] turns decoded `MetricFamily` messages into
//!   0.0.4 text, which then takes the same parser and the same checks as a
//!   text push, and keeps aside (as "rich" families) the families whose
//!   native histograms or exemplars have no 0.0.4 form. A histogram is
//!   written in text as the Pushgateway writes it for text scrapes: its
//!   classic buckets, a `+Inf` bucket (the count) when absent, `_sum` and
//!   `_count`; a native-only histogram is therefore just `+Inf`, `_sum`,
//!   `_count`.
//! * Scrapes: [`text_metrics`] regroups a family's text samples into
//!   `Metric` messages (a histogram's or summary's lines become one message
//!   per label set), and [`encode_metric_fields`] / [`encode_family_header`]
//!   write them so that a family's message is its header followed by the
//!   pre-encoded metrics of each app, concatenated (repeated fields
//!   concatenate in protobuf).
//!
//! Pure: no IO.

use std::collections::HashMap;

use prost::Message;

use super::proto::{self, LabelPair, Metric, MetricFamily};
use super::{encode_header, encode_sample, format_go_float, format_value, MetricType, Sample};

/// Longest exemplar label set, in characters of names and values, as
/// OpenMetrics limits it.
pub const MAX_EXEMPLAR_LABEL_CHARS: usize = 128;

/// A protobuf push as text plus the side parts text cannot carry.
#[derive(Debug, Default)]
pub struct ProtoPush {
    /// The push in the text format 0.0.4.
    pub text: String,
    /// Families with native histograms or exemplars, whole (type normalised
    /// to one of ours), to attach to their encoded blocks.
    pub rich: Vec<MetricFamily>,
}

/// Our type of a protobuf family type (a gauge histogram is kept as a
/// histogram).
pub fn our_type(t: Option<i32>) -> Result<MetricType, String> {
    Ok(
        match proto::MetricType::try_from(t.unwrap_or(proto::MetricType::Untyped as i32)) {
            Ok(proto::MetricType::Counter) => MetricType::Counter,
            Ok(proto::MetricType::Gauge) => MetricType::Gauge,
            Ok(proto::MetricType::Summary) => MetricType::Summary,
            Ok(proto::MetricType::Untyped) => MetricType::Untyped,
            Ok(proto::MetricType::Histogram | proto::MetricType::GaugeHistogram) => {
                MetricType::Histogram
            }
            Err(_) => return Err(format!("unknown metric type {}", t.unwrap_or_default())),
        },
    )
}

/// The protobuf type of one of our types.
pub fn proto_type(t: MetricType) -> proto::MetricType {
    match t {
        MetricType::Counter => proto::MetricType::Counter,
        MetricType::Gauge => proto::MetricType::Gauge,
        MetricType::Summary => proto::MetricType::Summary,
        MetricType::Untyped => proto::MetricType::Untyped,
        MetricType::Histogram => proto::MetricType::Histogram,
    }
}

/// Converts a decoded protobuf push to text, checking what the text form
/// cannot express: a metric without the value its family's type needs,
/// invalid native histograms, invalid exemplars. Errors name the family
/// (and the metric's position in it).
pub fn push_to_text(families: Vec<MetricFamily>) -> Result<ProtoPush, String> {
    let mut out = ProtoPush::default();
    let mut text = Vec::with_capacity(families.len() * 256);
    let mut seen = std::collections::HashSet::with_capacity(families.len());
    for (fi, mut fam) in families.into_iter().enumerate() {
        let name = fam.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(format!("metric family #{} has no name", fi + 1));
        }
        if !super::is_valid_metric_name(&name) {
            return Err(format!("family {name:?}: invalid metric name"));
        }
        if !seen.insert(name.clone()) {
            return Err(format!(
                "family {name} appears twice in the body; expected each family once"
            ));
        }
        let typ = our_type(fam.r#type).map_err(|e| format!("family {name}: {e}"))?;
        encode_header(&mut text, &name, fam.help.as_deref(), typ);
        let mut rich = false;
        for (mi, m) in fam.metric.iter().enumerate() {
            let at = || format!("family {name}, metric #{}", mi + 1);
            check_labels(&m.label).map_err(|e| format!("{}: {e}", at()))?;
            rich |= write_metric(&mut text, &name, typ, m).map_err(|e| format!("{}: {e}", at()))?;
        }
        if rich {
            fam.r#type = Some(proto_type(typ) as i32);
            out.rich.push(fam);
        }
    }
    out.text = String::from_utf8(text).expect("the encoder writes UTF-8");
    Ok(out)
}

fn check_labels(labels: &[LabelPair]) -> Result<(), String> {
    for l in labels {
        let n = l.name.as_deref().unwrap_or_default();
        if !super::is_valid_label_name(n) || n.starts_with("__") {
            return Err(format!("invalid label name {n:?}"));
        }
    }
    Ok(())
}

fn labels_of(m: &Metric) -> Vec<(String, String)> {
    m.label
        .iter()
        .map(|l| {
            (
                l.name.clone().unwrap_or_default(),
                l.value.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn sample(name: String, labels: Vec<(String, String)>, value: f64, ts: Option<i64>) -> Sample {
    Sample {
        name,
        labels,
        value,
        value_text: format_value(value),
        timestamp: ts,
    }
}

/// Writes the text lines of one metric; returns whether it has a part text
/// cannot carry (a native histogram or an exemplar).
fn write_metric(
    out: &mut Vec<u8>,
    name: &str,
    typ: MetricType,
    m: &Metric,
) -> Result<bool, String> {
    let labels = labels_of(m);
    let ts = m.timestamp_ms;
    let mut put = |n: String, l: Vec<(String, String)>, v: f64| {
        encode_sample(out, &sample(n, l, v, ts), &[]);
    };
    let missing = |what: &str| format!("a {} family needs the {what} field", typ.as_str());
    match typ {
        MetricType::Counter => {
            let c = m.counter.as_ref().ok_or_else(|| missing("counter"))?;
            if let Some(e) = &c.exemplar {
                check_exemplar(e)?;
            }
            put(name.to_owned(), labels, c.value.unwrap_or(0.0));
            Ok(c.exemplar.is_some())
        }
        MetricType::Gauge => {
            let g = m.gauge.as_ref().ok_or_else(|| missing("gauge"))?;
            put(name.to_owned(), labels, g.value.unwrap_or(0.0));
            Ok(false)
        }
        MetricType::Untyped => {
            let u = m.untyped.as_ref().ok_or_else(|| missing("untyped"))?;
            put(name.to_owned(), labels, u.value.unwrap_or(0.0));
            Ok(false)
        }
        MetricType::Summary => {
            let s = m.summary.as_ref().ok_or_else(|| missing("summary"))?;
            for q in &s.quantile {
                let mut l = labels.clone();
                l.push((
                    "quantile".to_owned(),
                    format_go_float(q.quantile.unwrap_or(0.0)),
                ));
                put(name.to_owned(), l, q.value.unwrap_or(0.0));
            }
            put(
                format!("{name}_sum"),
                labels.clone(),
                s.sample_sum.unwrap_or(0.0),
            );
            put(
                format!("{name}_count"),
                labels,
                s.sample_count.unwrap_or(0) as f64,
            );
            Ok(false)
        }
        MetricType::Histogram => {
            let h = m.histogram.as_ref().ok_or_else(|| missing("histogram"))?;
            let native = h.is_native();
            if native {
                check_native(h)?;
            }
            let mut exemplars = false;
            let mut inf = false;
            let mut last = f64::NEG_INFINITY;
            for b in &h.bucket {
                let bound = b.upper_bound.unwrap_or(0.0);
                if bound.is_nan() || bound <= last {
                    return Err(format!(
                        "bucket bound {} is not above the previous one; expected increasing bounds",
                        format_go_float(bound)
                    ));
                }
                last = bound;
                inf |= bound == f64::INFINITY;
                if let Some(e) = &b.exemplar {
                    check_exemplar(e)?;
                    exemplars = true;
                }
                let mut l = labels.clone();
                l.push(("le".to_owned(), format_go_float(bound)));
                put(format!("{name}_bucket"), l, b.count());
            }
            if !inf {
                let mut l = labels.clone();
                l.push(("le".to_owned(), "+Inf".to_owned()));
                put(format!("{name}_bucket"), l, h.count());
            }
            put(
                format!("{name}_sum"),
                labels.clone(),
                h.sample_sum.unwrap_or(0.0),
            );
            put(format!("{name}_count"), labels, h.count());
            Ok(native || exemplars)
        }
    }
}

/// Checks an exemplar as OpenMetrics and Prometheus would take it.
fn check_exemplar(e: &proto::Exemplar) -> Result<(), String> {
    let mut chars = 0;
    for l in &e.label {
        let n = l.name.as_deref().unwrap_or_default();
        if !super::is_valid_label_name(n) {
            return Err(format!("exemplar label name {n:?} is invalid"));
        }
        chars += n.chars().count() + l.value.as_deref().unwrap_or_default().chars().count();
    }
    if chars > MAX_EXEMPLAR_LABEL_CHARS {
        return Err(format!(
            "exemplar labels have {chars} characters; at most {MAX_EXEMPLAR_LABEL_CHARS} are allowed"
        ));
    }
    if let Some(t) = &e.timestamp {
        if !(0..1_000_000_000).contains(&t.nanos) {
            return Err(format!("exemplar timestamp has {} nanoseconds", t.nanos));
        }
    }
    Ok(())
}

/// Checks a native histogram's schema, zero bucket and spans against its
/// bucket counts.
fn check_native(h: &proto::Histogram) -> Result<(), String> {
    let schema = h.schema.unwrap_or(0);
    if !(-4..=8).contains(&schema) {
        return Err(format!(
            "native histogram schema {schema} is out of range; expected -4 to 8"
        ));
    }
    let zt = h.zero_threshold.unwrap_or(0.0);
    if !(zt >= 0.0 && zt.is_finite()) {
        return Err(format!(
            "native histogram zero threshold {zt} is invalid; expected a finite value >= 0"
        ));
    }
    let sides = [
        (
            "negative",
            &h.negative_span,
            h.negative_delta.len(),
            h.negative_count.len(),
        ),
        (
            "positive",
            &h.positive_span,
            h.positive_delta.len(),
            h.positive_count.len(),
        ),
    ];
    for (side, spans, deltas, counts) in sides {
        if deltas > 0 && counts > 0 {
            return Err(format!(
                "native histogram has both {side} deltas and {side} counts; expected one of them"
            ));
        }
        let mut total: u64 = 0;
        for (i, s) in spans.iter().enumerate() {
            if i > 0 && s.offset.unwrap_or(0) < 0 {
                return Err(format!(
                    "native histogram {side} span #{} has a negative offset",
                    i + 1
                ));
            }
            total += u64::from(s.length.unwrap_or(0));
        }
        let buckets = (deltas + counts) as u64;
        if total != buckets {
            return Err(format!(
                "native histogram {side} spans cover {total} buckets but {buckets} bucket counts are given"
            ));
        }
    }
    Ok(())
}

/// Regroups the samples of one text family into `Metric` messages, labels
/// sorted by name. Histogram and summary lines with the same labels (besides
/// `le`/`quantile`) become one message; a histogram's `+Inf` bucket gives
/// its count when `_count` is missing, and is left out of the buckets as
/// Go clients do.
pub fn text_metrics(name: &str, typ: MetricType, samples: &[Sample]) -> Vec<Metric> {
    let pairs = |labels: &[(String, String)], skip: &str| -> Vec<LabelPair> {
        let mut v: Vec<LabelPair> = labels
            .iter()
            .filter(|(k, _)| k != skip)
            .map(|(k, v)| LabelPair {
                name: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    };
    match typ {
        MetricType::Counter | MetricType::Gauge | MetricType::Untyped => samples
            .iter()
            .map(|s| scalar_metric(typ, pairs(&s.labels, ""), s.value, s.timestamp))
            .collect(),
        MetricType::Summary | MetricType::Histogram => grouped(name, typ, samples, pairs),
    }
}

/// The `Metric` of one counter, gauge or untyped sample.
pub fn scalar_metric(
    typ: MetricType,
    label: Vec<LabelPair>,
    value: f64,
    timestamp_ms: Option<i64>,
) -> Metric {
    let mut m = Metric {
        label,
        timestamp_ms,
        ..Metric::default()
    };
    let v = Some(value);
    match typ {
        MetricType::Counter => {
            m.counter = Some(proto::Counter {
                value: v,
                exemplar: None,
            });
        }
        MetricType::Gauge => m.gauge = Some(proto::Gauge { value: v }),
        _ => m.untyped = Some(proto::Untyped { value: v }),
    }
    m
}

/// The label that tells a histogram's or summary's lines of one series
/// apart (`le`, `quantile`).
pub fn group_bound_label(typ: MetricType) -> &'static str {
    if typ == MetricType::Histogram {
        "le"
    } else {
        "quantile"
    }
}

/// The empty `Metric` of a histogram's or summary's series, which
/// [`add_grouped`] fills line by line.
pub fn grouped_metric(typ: MetricType, label: Vec<LabelPair>, timestamp_ms: Option<i64>) -> Metric {
    let histogram = typ == MetricType::Histogram;
    Metric {
        label,
        timestamp_ms,
        summary: (!histogram).then(proto::Summary::default),
        histogram: histogram.then(proto::Histogram::default),
        ..Metric::default()
    }
}

/// Adds one line of a histogram's or summary's series to its `Metric`:
/// `suffix` is what follows the family name in the sample's name, `bound`
/// gives its `le` or `quantile` as a number, `inf` keeps the `+Inf`
/// bucket's count for [`finish_grouped`].
pub fn add_grouped(
    m: &mut Metric,
    inf: &mut Option<f64>,
    suffix: &str,
    bound: impl FnOnce() -> Option<f64>,
    value: f64,
) {
    match (suffix, m.histogram.as_mut(), m.summary.as_mut()) {
        ("_sum", Some(h), _) => h.sample_sum = Some(value),
        ("_sum", _, Some(q)) => q.sample_sum = Some(value),
        ("_count", Some(h), _) => set_count(&mut h.sample_count, &mut h.sample_count_float, value),
        ("_count", _, Some(q)) => q.sample_count = Some(value.max(0.0) as u64),
        ("_bucket", Some(h), _) => match bound() {
            Some(b) if b == f64::INFINITY => *inf = Some(value),
            Some(b) => {
                let mut bucket = proto::Bucket {
                    upper_bound: Some(b),
                    ..proto::Bucket::default()
                };
                set_count(
                    &mut bucket.cumulative_count,
                    &mut bucket.cumulative_count_float,
                    value,
                );
                h.bucket.push(bucket);
            }
            None => {}
        },
        ("", _, Some(q)) => q.quantile.push(proto::Quantile {
            quantile: bound(),
            value: Some(value),
        }),
        _ => {}
    }
}

/// Gives each histogram without a `_count` line the count of its `+Inf`
/// bucket (`counts`, one per metric, from [`add_grouped`]).
pub fn finish_grouped(metrics: &mut [Metric], counts: Vec<Option<f64>>) {
    for (m, inf) in metrics.iter_mut().zip(counts) {
        if let (Some(h), Some(inf)) = (m.histogram.as_mut(), inf) {
            if h.sample_count.is_none() && h.sample_count_float.is_none() {
                set_count(&mut h.sample_count, &mut h.sample_count_float, inf);
            }
        }
    }
}

fn grouped(
    name: &str,
    typ: MetricType,
    samples: &[Sample],
    pairs: impl Fn(&[(String, String)], &str) -> Vec<LabelPair>,
) -> Vec<Metric> {
    let skip = group_bound_label(typ);
    let mut metrics: Vec<Metric> = Vec::new();
    let mut counts: Vec<Option<f64>> = Vec::new();
    let mut index: HashMap<Vec<(String, String)>, usize> = HashMap::new();
    for s in samples {
        let mut key: Vec<(String, String)> = s
            .labels
            .iter()
            .filter(|(k, _)| k != skip)
            .cloned()
            .collect();
        key.sort();
        let i = *index.entry(key).or_insert_with(|| {
            metrics.push(grouped_metric(typ, pairs(&s.labels, skip), s.timestamp));
            counts.push(None);
            metrics.len() - 1
        });
        let bound = || {
            s.labels
                .iter()
                .find(|(k, _)| k == skip)
                .and_then(|(_, v)| v.parse::<f64>().ok())
        };
        let suffix = s.name.strip_prefix(name).unwrap_or_default();
        add_grouped(&mut metrics[i], &mut counts[i], suffix, bound, s.value);
    }
    finish_grouped(&mut metrics, counts);
    metrics
}

/// A count as protobuf carries it: an integer, or the float field when the
/// value is not a non-negative integer.
fn set_count(int: &mut Option<u64>, float: &mut Option<f64>, v: f64) {
    if v >= 0.0 && v.fract() == 0.0 && v < u64::MAX as f64 {
        *int = Some(v as u64);
    } else {
        *float = Some(v);
    }
}

/// Appends each metric as a `MetricFamily.metric` field (tag and length
/// prefix included), so that blocks of several apps concatenate.
pub fn encode_metric_fields(out: &mut Vec<u8>, metrics: &[Metric]) {
    for m in metrics {
        out.push(proto::METRIC_FIELD_KEY);
        proto::encode_varint(out, m.encoded_len() as u64);
        m.encode(out).expect("a Vec grows as needed");
    }
}

/// The `MetricFamily` fields before its metrics: name, help, type.
pub fn encode_family_header(name: &str, help: Option<&str>, typ: MetricType) -> Vec<u8> {
    let header = MetricFamily {
        name: Some(name.to_owned()),
        help: help.map(str::to_owned),
        r#type: Some(proto_type(typ) as i32),
        metric: Vec::new(),
    };
    header.encode_to_vec()
}
