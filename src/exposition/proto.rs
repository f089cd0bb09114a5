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

#[cfg(test)]
mod tests {
    //! Holds the hand-derived messages to the `metrics.proto` that Debian's
    //! `golang-github-prometheus-client-model-dev` ships (the one Go
    //! clients are built from): every field's number, wire type and
    //! integer encoding, and the enum values.

    use std::collections::BTreeMap;

    use super::*;

    const PROTO: &str = "/usr/share/gocode/src/github.com/prometheus/client_model/io/prometheus/client/metrics.proto";

    /// Message → field number → (type, name).
    type Messages = BTreeMap<String, BTreeMap<u32, (String, String)>>;

    /// The messages and the enum values of the .proto file.
    fn schema() -> (Messages, Vec<(String, i32)>) {
        let text = std::fs::read_to_string(PROTO).unwrap_or_else(|e| {
            panic!("{PROTO}: {e}: install the Debian package golang-github-prometheus-client-model-dev (scripts/test.sh does)")
        });
        let mut messages = BTreeMap::new();
        let mut enum_values = Vec::new();
        let mut current: Option<String> = None;
        let mut in_enum = false;
        for line in text.lines().map(|l| l.split("//").next().unwrap().trim()) {
            let words: Vec<&str> = line
                .split(|c: char| c.is_whitespace() || c == ';' || c == '=')
                .filter(|w| !w.is_empty())
                .collect();
            match words.as_slice() {
                ["message", name, "{"] => current = Some((*name).to_owned()),
                ["enum", _, "{"] => in_enum = true,
                ["}"] => {
                    current = None;
                    in_enum = false;
                }
                [name, number] if in_enum => {
                    enum_values.push(((*name).to_owned(), number.parse().unwrap()))
                }
                ["optional" | "repeated" | "required", typ, name, number] => {
                    let m = current.clone().expect("a field inside a message");
                    messages.entry(m).or_insert_with(BTreeMap::new).insert(
                        number.parse().unwrap(),
                        ((*typ).to_owned(), (*name).to_owned()),
                    );
                }
                _ => {}
            }
        }
        (messages, enum_values)
    }

    /// `field number → (wire type, first varint value)` of an encoding.
    fn wire(mut b: &[u8]) -> BTreeMap<u32, (u64, u64)> {
        let mut out = BTreeMap::new();
        while !b.is_empty() {
            let key = prost::encoding::decode_varint(&mut b).unwrap();
            let (field, wt) = ((key >> 3) as u32, key & 7);
            let raw = match wt {
                0 => prost::encoding::decode_varint(&mut b).unwrap(),
                1 => {
                    b = &b[8..];
                    0
                }
                2 => {
                    let len = prost::encoding::decode_varint(&mut b).unwrap() as usize;
                    b = &b[len..];
                    0
                }
                5 => {
                    b = &b[4..];
                    0
                }
                _ => panic!("wire type {wt}"),
            };
            out.entry(field).or_insert((wt, raw));
        }
        out
    }

    fn label() -> LabelPair {
        LabelPair {
            name: Some("a".into()),
            value: Some("b".into()),
        }
    }

    fn exemplar() -> Exemplar {
        Exemplar {
            label: vec![label()],
            value: Some(1.0),
            timestamp: Some(Timestamp {
                seconds: 1,
                nanos: 1,
            }),
        }
    }

    fn span() -> BucketSpan {
        BucketSpan {
            offset: Some(-1),
            length: Some(1),
        }
    }

    fn bucket() -> Bucket {
        Bucket {
            cumulative_count: Some(1),
            cumulative_count_float: Some(1.0),
            upper_bound: Some(1.0),
            exemplar: Some(exemplar()),
        }
    }

    /// Every message with every field set; signed integers are -1.
    fn full() -> Vec<(&'static str, Vec<u8>)> {
        let histogram = Histogram {
            sample_count: Some(1),
            sample_count_float: Some(1.0),
            sample_sum: Some(1.0),
            bucket: vec![bucket()],
            schema: Some(-1),
            zero_threshold: Some(1.0),
            zero_count: Some(1),
            zero_count_float: Some(1.0),
            negative_span: vec![span()],
            negative_delta: vec![-1],
            negative_count: vec![1.0],
            positive_span: vec![span()],
            positive_delta: vec![-1],
            positive_count: vec![1.0],
        };
        let summary = Summary {
            sample_count: Some(1),
            sample_sum: Some(1.0),
            quantile: vec![Quantile {
                quantile: Some(0.5),
                value: Some(1.0),
            }],
        };
        let metric = Metric {
            label: vec![label()],
            gauge: Some(Gauge { value: Some(1.0) }),
            counter: Some(Counter {
                value: Some(1.0),
                exemplar: Some(exemplar()),
            }),
            summary: Some(summary.clone()),
            untyped: Some(Untyped { value: Some(1.0) }),
            histogram: Some(histogram.clone()),
            timestamp_ms: Some(-1),
        };
        vec![
            ("LabelPair", label().encode_to_vec()),
            ("Gauge", Gauge { value: Some(1.0) }.encode_to_vec()),
            ("Counter", metric.counter.clone().unwrap().encode_to_vec()),
            ("Quantile", summary.quantile[0].encode_to_vec()),
            ("Summary", summary.encode_to_vec()),
            ("Untyped", Untyped { value: Some(1.0) }.encode_to_vec()),
            ("Histogram", histogram.encode_to_vec()),
            ("Bucket", bucket().encode_to_vec()),
            ("BucketSpan", span().encode_to_vec()),
            ("Exemplar", exemplar().encode_to_vec()),
            ("Metric", metric.encode_to_vec()),
            (
                "MetricFamily",
                MetricFamily {
                    name: Some("n".into()),
                    help: Some("h".into()),
                    r#type: Some(MetricType::Gauge as i32),
                    metric: vec![metric],
                }
                .encode_to_vec(),
            ),
        ]
    }

    #[test]
    fn messages_match_client_models_metrics_proto() {
        let (schema, enum_values) = schema();
        let ours = full();
        assert_eq!(
            ours.iter()
                .map(|(n, _)| (*n).to_owned())
                .collect::<std::collections::BTreeSet<_>>(),
            schema.keys().cloned().collect(),
            "the same messages"
        );
        for (message, bytes) in ours {
            let fields = wire(&bytes);
            let declared = &schema[message];
            assert_eq!(
                fields.keys().collect::<Vec<_>>(),
                declared.keys().collect::<Vec<_>>(),
                "field numbers of {message}"
            );
            for (number, (typ, name)) in declared {
                let (wt, raw) = fields[number];
                let expected = match typ.as_str() {
                    "double" => 1,
                    "float" | "fixed32" => 5,
                    "int32" | "int64" | "uint32" | "uint64" | "sint32" | "sint64" | "bool"
                    | "MetricType" => 0,
                    _ => 2,
                };
                assert_eq!(wt, expected, "wire type of {message}.{name} ({typ})");
                match typ.as_str() {
                    "sint32" | "sint64" => assert_eq!(raw, 1, "{message}.{name} is zigzag"),
                    "int32" | "int64" => {
                        assert_eq!(raw, u64::MAX, "{message}.{name} is not zigzag")
                    }
                    _ => {}
                }
            }
        }
        let ours: Vec<(String, i32)> = [
            MetricType::Counter,
            MetricType::Gauge,
            MetricType::Summary,
            MetricType::Untyped,
            MetricType::Histogram,
            MetricType::GaugeHistogram,
        ]
        .into_iter()
        .map(|t| {
            let mut name = String::new();
            for (i, c) in format!("{t:?}").chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            (name, t as i32)
        })
        .collect();
        assert_eq!(ours, enum_values);
    }
}
