//! The `io.prometheus.client` protobuf messages (client_model's
//! `metrics.proto`, proto2, with native histograms and exemplars) and the
//! delimited framing used by pushes and scrapes.
//!
//! The messages are derived by hand with `prost` (no `protoc` at build time),
//! field for field; a unit test holds every field number and type to the
//! `metrics.proto` shipped by Debian's `golang-github-prometheus-client-model-dev`.
//! proto2 `optional` fields are `Option`s so that "absent" survives a round
//! trip, and repeated numbers are unpacked as proto2 declares them.

use prost::Message;

/// Content type of the delimited protobuf format (pushes and scrapes).
pub const DELIMITED_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// `io.prometheus.client.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// `counter`.
    Counter = 0,
    /// `gauge`.
    Gauge = 1,
    /// `summary`.
    Summary = 2,
    /// `untyped`.
    Untyped = 3,
    /// `histogram` (classic and/or native).
    Histogram = 4,
    /// `gaugehistogram`.
    GaugeHistogram = 5,
}

/// `LabelPair`.
#[derive(Clone, PartialEq, Message)]
pub struct LabelPair {
    /// Label name.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Label value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// `Gauge`.
#[derive(Clone, PartialEq, Message)]
pub struct Gauge {
    /// Value.
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

/// `Counter`.
#[derive(Clone, PartialEq, Message)]
pub struct Counter {
    /// Value.
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
    /// Exemplar of the last increment.
    #[prost(message, optional, tag = "2")]
    pub exemplar: Option<Exemplar>,
}

/// `Quantile`.
#[derive(Clone, PartialEq, Message)]
pub struct Quantile {
    /// The quantile, 0..=1.
    #[prost(double, optional, tag = "1")]
    pub quantile: Option<f64>,
    /// Its value.
    #[prost(double, optional, tag = "2")]
    pub value: Option<f64>,
}

/// `Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    /// Observations.
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    /// Their sum.
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    /// Quantiles.
    #[prost(message, repeated, tag = "3")]
    pub quantile: Vec<Quantile>,
}

/// `Untyped`.
#[derive(Clone, PartialEq, Message)]
pub struct Untyped {
    /// Value.
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

/// `Histogram`: classic buckets and/or a native (sparse) histogram.
#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    /// Observations.
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    /// Overrides `sample_count` if > 0.
    #[prost(double, optional, tag = "4")]
    pub sample_count_float: Option<f64>,
    /// Sum of observations.
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    /// Classic buckets, increasing upper bounds, `+Inf` optional.
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    /// Native: the bucket schema, -4..=8.
    #[prost(sint32, optional, tag = "5")]
    pub schema: Option<i32>,
    /// Native: breadth of the zero bucket.
    #[prost(double, optional, tag = "6")]
    pub zero_threshold: Option<f64>,
    /// Native: count in the zero bucket.
    #[prost(uint64, optional, tag = "7")]
    pub zero_count: Option<u64>,
    /// Native: overrides `zero_count` if > 0.
    #[prost(double, optional, tag = "8")]
    pub zero_count_float: Option<f64>,
    /// Native: negative bucket spans.
    #[prost(message, repeated, tag = "9")]
    pub negative_span: Vec<BucketSpan>,
    /// Native: negative bucket count deltas.
    #[prost(sint64, repeated, packed = "false", tag = "10")]
    pub negative_delta: Vec<i64>,
    /// Native: negative bucket absolute (float) counts.
    #[prost(double, repeated, packed = "false", tag = "11")]
    pub negative_count: Vec<f64>,
    /// Native: positive bucket spans.
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    /// Native: positive bucket count deltas.
    #[prost(sint64, repeated, packed = "false", tag = "13")]
    pub positive_delta: Vec<i64>,
    /// Native: positive bucket absolute (float) counts.
    #[prost(double, repeated, packed = "false", tag = "14")]
    pub positive_count: Vec<f64>,
}

impl Histogram {
    /// Whether this histogram carries a native histogram (a schema, or
    /// native buckets, or a zero bucket).
    pub fn is_native(&self) -> bool {
        self.schema.is_some()
            || self.zero_threshold.is_some()
            || !self.positive_span.is_empty()
            || !self.negative_span.is_empty()
    }

    /// The observation count (the float one when set).
    pub fn count(&self) -> f64 {
        match self.sample_count_float {
            Some(f) if f > 0.0 => f,
            _ => self.sample_count.unwrap_or(0) as f64,
        }
    }
}

/// `Bucket` of a classic histogram.
#[derive(Clone, PartialEq, Message)]
pub struct Bucket {
    /// Cumulative count.
    #[prost(uint64, optional, tag = "1")]
    pub cumulative_count: Option<u64>,
    /// Overrides `cumulative_count` if > 0.
    #[prost(double, optional, tag = "4")]
    pub cumulative_count_float: Option<f64>,
    /// Inclusive upper bound.
    #[prost(double, optional, tag = "2")]
    pub upper_bound: Option<f64>,
    /// Exemplar of an observation in this bucket.
    #[prost(message, optional, tag = "3")]
    pub exemplar: Option<Exemplar>,
}

impl Bucket {
    /// The cumulative count (the float one when set).
    pub fn count(&self) -> f64 {
        match self.cumulative_count_float {
            Some(f) if f > 0.0 => f,
            _ => self.cumulative_count.unwrap_or(0) as f64,
        }
    }
}

/// `BucketSpan` of a native histogram.
#[derive(Clone, PartialEq, Message)]
pub struct BucketSpan {
    /// Gap to the previous span (or the first index).
    #[prost(sint32, optional, tag = "1")]
    pub offset: Option<i32>,
    /// Number of consecutive buckets.
    #[prost(uint32, optional, tag = "2")]
    pub length: Option<u32>,
}

/// `Exemplar`.
#[derive(Clone, PartialEq, Message)]
pub struct Exemplar {
    /// Labels (e.g. a trace id).
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    /// The observed value.
    #[prost(double, optional, tag = "2")]
    pub value: Option<f64>,
    /// When it was observed.
    #[prost(message, optional, tag = "3")]
    pub timestamp: Option<Timestamp>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, Message)]
pub struct Timestamp {
    /// Seconds since the epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds, 0..1e9.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `Metric`: one series (or one histogram/summary) of a family.
#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    /// Labels.
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    /// Set in gauge families.
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Gauge>,
    /// Set in counter families.
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    /// Set in summary families.
    #[prost(message, optional, tag = "4")]
    pub summary: Option<Summary>,
    /// Set in untyped families.
    #[prost(message, optional, tag = "5")]
    pub untyped: Option<Untyped>,
    /// Set in histogram families.
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
    /// Milliseconds since the epoch.
    #[prost(int64, optional, tag = "6")]
    pub timestamp_ms: Option<i64>,
}

/// `MetricFamily`.
#[derive(Clone, PartialEq, Message)]
pub struct MetricFamily {
    /// Family name.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// HELP text.
    #[prost(string, optional, tag = "2")]
    pub help: Option<String>,
    /// Type.
    #[prost(enumeration = "MetricType", optional, tag = "3")]
    pub r#type: Option<i32>,
    /// Its metrics.
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
}

/// Tag of `MetricFamily.metric` as a length-delimited field (field 4, wire type 2).
pub const METRIC_FIELD_KEY: u8 = (4 << 3) | 2;

/// Decodes a stream of varint-length-prefixed `MetricFamily` messages.
/// Errors name the byte offset of the message at fault.
pub fn decode_delimited(mut body: &[u8]) -> Result<Vec<MetricFamily>, String> {
    let total = body.len();
    let mut out = Vec::new();
    while !body.is_empty() {
        let offset = total - body.len();
        let len = prost::encoding::decode_varint(&mut body).map_err(|_| {
            format!("byte offset {offset}: invalid length prefix of a MetricFamily message")
        })?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > body.len() {
            return Err(format!(
                "byte offset {offset}: the MetricFamily message claims {len} bytes but only {} remain",
                body.len()
            ));
        }
        let (msg, rest) = body.split_at(len);
        let family = MetricFamily::decode(msg)
            .map_err(|e| format!("byte offset {offset}: invalid MetricFamily message: {e}"))?;
        out.push(family);
        body = rest;
    }
    Ok(out)
}

/// Appends `family` with its varint length prefix.
pub fn encode_delimited(out: &mut Vec<u8>, family: &MetricFamily) {
    family
        .encode_length_delimited(out)
        .expect("a Vec grows as needed");
}

/// Appends a varint.
pub fn encode_varint(out: &mut Vec<u8>, v: u64) {
    prost::encoding::encode_varint(v, out);
}
