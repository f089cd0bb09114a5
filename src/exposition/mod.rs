//! The Prometheus text exposition format 0.0.4: parsing, validation and encoding.
//!
//! Applications push text in this format; [`parse()`] turns it into an [`Exposition`] once,
//! checking everything a scraper built on Go's `expfmt` parser would later choke on
//! (duplicate HELP/TYPE lines, TYPE after samples, duplicate series, clashes between a
//! family's derived sample names and another family). Samples of one family need not be
//! contiguous in the input: they are regrouped, so the encoder can emit every family
//! exactly once.
//!
//! The encoder ([`encode_header`], [`encode_sample`], [`encode()`]) escapes label values
//! and HELP text itself and can inject extra labels (such as `app="x"`) while writing.
//!
//! Pushes take a shortcut through both: [`parse_encoded`] checks the text exactly as
//! [`parse()`] does but writes each family's sample lines as the encoder would, in one
//! pass, with the series keys the store indexes ([`EncodedFamily`]).
//!
//! Polled exporters may answer in OpenMetrics: [`openmetrics_to_text`] rewrites such a
//! body into 0.0.4 text first, which then goes through the same parser.
//!
//! The other formats of Prometheus: [`proto`] holds the `io.prometheus.client`
//! protobuf messages (native histograms, exemplars) and the delimited framing;
//! [`protobuf`] converts protobuf pushes to text (keeping aside what text cannot
//! carry) and text families to protobuf `Metric`s; [`openmetrics_out`] writes
//! OpenMetrics 1.0 from those `Metric`s.
//!
//! This module does no IO and knows nothing of the async runtime: it works on `&str`,
//! `Vec<u8>` and `Bytes` only, so the push path and tests drive the same pure functions.

#![forbid(unsafe_code)]

mod chunk;
mod encode;
mod openmetrics;
pub mod openmetrics_out;
mod parse;
pub mod proto;
pub mod protobuf;
#[cfg(test)]
mod tests;

use std::fmt;

pub use chunk::Chunk;
pub use encode::{
    encode, encode_header, encode_sample, escape_help, escape_label_value, format_go_float,
    format_value, series_key,
};
pub use openmetrics::{looks_like_openmetrics, openmetrics_to_text};
pub use parse::{label_value, parse, parse_encoded, sample_value};

/// The type of a metric family, as declared by its `# TYPE` line.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MetricType {
    /// A monotonically increasing value.
    Counter,
    /// A value that can go up and down.
    Gauge,
    /// Buckets (`_bucket` with `le`), `_sum` and `_count`.
    Histogram,
    /// Quantiles (the bare name with `quantile`), `_sum` and `_count`.
    Summary,
    /// No TYPE line, or `# TYPE name untyped`.
    Untyped,
}

impl MetricType {
    /// The keyword used for this type in a `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
        }
    }

    /// Sample names a family of this type reserves: histogram `foo` reserves `foo_bucket`,
    /// `foo_sum` and `foo_count`; summary `foo` reserves `foo`, `foo_sum` and `foo_count`;
    /// every other type reserves just `foo`.
    ///
    /// Two families whose reserved names overlap cannot share one exposition: a scraper
    /// would attribute the shared sample name to the wrong family.
    pub fn reserved_names(self, family: &str) -> Vec<String> {
        self.suffixes()
            .iter()
            .map(|suffix| format!("{family}{suffix}"))
            .collect()
    }

    /// Suffixes appended to the family name to form the sample names it reserves.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            MetricType::Histogram => &["_bucket", "_sum", "_count"],
            MetricType::Summary => &["", "_sum", "_count"],
            MetricType::Counter | MetricType::Gauge | MetricType::Untyped => &[""],
        }
    }

    /// Parses a `# TYPE` keyword; only the lowercase spellings are accepted.
    fn from_keyword(s: &str) -> Option<MetricType> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" => MetricType::Untyped,
            _ => return None,
        })
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed, validated exposition: families in order of first appearance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exposition {
    /// Every family once, each holding all of its samples.
    pub families: Vec<Family>,
    /// Samples left out, by reason (see [`DropReason`]).
    pub dropped: std::collections::BTreeMap<DropReason, u64>,
}

/// Why [`parse()`] left a sample out instead of refusing the whole input: samples
/// that Go's `expfmt` parser also ignores, and that would make the output invalid.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum DropReason {
    /// A histogram bucket (`foo_bucket`, or `foo` itself) without an `le` label.
    BucketWithoutLe,
    /// A summary sample named like its family without a `quantile` label.
    QuantileWithoutQuantile,
}

impl DropReason {
    /// The reason as a label value, lowercase with underscores.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::BucketWithoutLe => "bucket_without_le",
            DropReason::QuantileWithoutQuantile => "quantile_without_quantile_label",
        }
    }
}

/// One metric family: its metadata and all of its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family name, as written in HELP/TYPE lines (without derived suffixes).
    pub name: String,
    /// The HELP text, unescaped; `None` when the input had no HELP line for it.
    pub help: Option<String>,
    /// The declared type; [`MetricType::Untyped`] without a TYPE line.
    pub typ: MetricType,
    /// The family's samples in input order (possibly empty).
    pub samples: Vec<Sample>,
}

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The full sample name, e.g. `foo_bucket` for histogram `foo`.
    pub name: String,
    /// Labels with unescaped values, in input order; names are unique.
    pub labels: Vec<(String, String)>,
    /// The parsed value.
    pub value: f64,
    /// Canonical text to re-emit: the input token when it was a plain finite number
    /// (so `123.0` stays `123.0`), else `+Inf`, `-Inf` or `NaN`.
    pub value_text: String,
    /// The timestamp in milliseconds, passed through as given.
    pub timestamp: Option<i64>,
}

/// Samples compare equal when they would encode the same: a NaN value equals NaN, so
/// that an exposition containing `NaN` compares equal to its own re-parse.
impl PartialEq for Sample {
    fn eq(&self, other: &Sample) -> bool {
        let same_value = self.value == other.value || (self.value.is_nan() && other.value.is_nan());
        same_value
            && self.name == other.name
            && self.labels == other.labels
            && self.value_text == other.value_text
            && self.timestamp == other.timestamp
    }
}

/// How [`parse_encoded`] writes the sample lines of an exposition.
#[derive(Debug, Clone, Copy, Default)]
pub struct EncodeOptions<'a> {
    /// Labels written first on every line, replacing a sample label of the same name
    /// (as the `extra` of [`encode_sample`]).
    pub extra: &'a [(&'a str, &'a str)],
    /// Labels added to samples that lack a label of that name.
    pub default: &'a [(&'a str, &'a str)],
    /// Write the `le` of histogram buckets and the `quantile` of summaries in Go's
    /// float format ([`format_go_float`]: `le="1.0"` becomes `le="1"`).
    pub go_float_bounds: bool,
}

/// One family as [`parse_encoded`] returns it: its metadata and its sample lines,
/// encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedFamily {
    /// The family name.
    pub name: String,
    /// The HELP text, unescaped.
    pub help: Option<String>,
    /// The declared type.
    pub typ: MetricType,
    /// The family's sample lines as [`encode_sample`] writes them, in input
    /// order; packed when the store keeps its text packed.
    pub body: Chunk,
    /// The [`series_key`] of each line of `body`, in order. The store empties
    /// it once the block is indexed (the keys can be computed again from
    /// `body`; at a million series they were 8 MB).
    pub keys: Vec<u64>,
    /// [`key_digest`] of the keys: tells whether two blocks hold the same
    /// series, in the same order, after `keys` was emptied.
    pub digest: u64,
    /// The family as pushed in protobuf, labels applied, when it has what
    /// text cannot carry (native histograms, exemplars): the source of its
    /// protobuf and OpenMetrics encodings. `None` for text pushes.
    pub rich: Option<std::sync::Arc<proto::MetricFamily>>,
    /// The family's protobuf and OpenMetrics encodings, computed at the
    /// first scrape that asks for them and kept as long as the block.
    pub alt: AltEncodings,
}

/// A 64-bit digest of a block's series keys in order (their number
/// included), for [`EncodedFamily::digest`].
pub fn key_digest(keys: &[u64]) -> u64 {
    let mut bytes = Vec::with_capacity(keys.len() * 8);
    for k in keys {
        bytes.extend_from_slice(&k.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// The other encodings of an [`EncodedFamily`], computed lazily once.
/// Caches: they never take part in comparisons.
#[derive(Debug, Clone, Default)]
pub struct AltEncodings {
    /// The family's metrics as `MetricFamily.metric` fields.
    /// Packed when the block's text is.
    pub protobuf: std::sync::OnceLock<Chunk>,
    /// The family's OpenMetrics sample lines, and the kind they were
    /// written as. Packed when the block's text is.
    pub openmetrics: std::sync::OnceLock<(openmetrics_out::OmKind, Chunk)>,
}

impl PartialEq for AltEncodings {
    fn eq(&self, _: &AltEncodings) -> bool {
        true
    }
}

/// Hashers for maps keyed by series keys. The keys are already xxh3 hashes, so
/// running SipHash over them again is wasted work; but xxh3 is unkeyed, so a
/// per-map random seed is folded in with one 64×64→128-bit multiply to keep
/// crafted series from piling into one bucket.
#[derive(Clone)]
pub struct SeriesKeyHasher(u64);

impl Default for SeriesKeyHasher {
    fn default() -> Self {
        use std::hash::BuildHasher;
        SeriesKeyHasher(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
    }
}

impl std::hash::BuildHasher for SeriesKeyHasher {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(self.0)
    }
}

/// See [`SeriesKeyHasher`].
pub struct FoldHasher(u64);

impl std::hash::Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; stay correct for anything else.
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        let m = u128::from(x ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Why a text exposition was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based number of the offending line.
    pub line: usize,
    /// What was expected and what was found, lowercase, without the line number.
    pub message: String,
    /// What kind of problem, for callers that branch on it.
    pub kind: ParseErrorKind,
}

/// The kinds of [`ParseError`] a caller may treat differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParseErrorKind {
    /// Not valid exposition text, or against a rule of ours.
    #[default]
    Invalid,
    /// More series than [`ParseLimits::max_series`].
    TooManySeries,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Bounds applied while parsing, so one push cannot make the parser use unbounded memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseLimits {
    /// The maximum number of samples (series) in one exposition; 0 means unlimited.
    pub max_series: usize,
    /// The maximum length of one line in bytes, without its line ending; 0 means unlimited.
    pub max_line_bytes: usize,
}

impl Default for ParseLimits {
    /// No series limit (the caller knows its per-app budget) and 1 MiB per line, far more
    /// than any sane sample line yet small enough to stop a runaway label value early.
    fn default() -> ParseLimits {
        ParseLimits {
            max_series: 0,
            max_line_bytes: 1 << 20,
        }
    }
}

/// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    match name.as_bytes().split_first() {
        Some((&first, rest)) => {
            is_metric_name_start(first) && rest.iter().all(|&b| is_metric_name_char(b))
        }
        None => false,
    }
}

/// Whether `name` is a syntactically valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
///
/// Of the names starting with `__`, which Prometheus reserves for its own use,
/// [`parse()`] refuses only `__name__` in samples, as Go's parser does.
pub fn is_valid_label_name(name: &str) -> bool {
    match name.as_bytes().split_first() {
        Some((&first, rest)) => {
            is_label_name_start(first) && rest.iter().all(|&b| is_label_name_char(b))
        }
        None => false,
    }
}

/// Character classes of name bytes, one lookup per byte in the parser's hot loops.
const METRIC_START: u8 = 1;
const METRIC_CHAR: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CHAR: u8 = 8;

static NAME_CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let alpha = c.is_ascii_alphabetic() || c == b'_';
        let digit = c.is_ascii_digit();
        let mut class = 0;
        if alpha || c == b':' {
            class |= METRIC_START | METRIC_CHAR;
        }
        if digit {
            class |= METRIC_CHAR | LABEL_CHAR;
        }
        if alpha {
            class |= LABEL_START | LABEL_CHAR;
        }
        t[b] = class;
        b += 1;
    }
    t
};

fn is_metric_name_start(b: u8) -> bool {
    NAME_CLASSES[usize::from(b)] & METRIC_START != 0
}

fn is_metric_name_char(b: u8) -> bool {
    NAME_CLASSES[usize::from(b)] & METRIC_CHAR != 0
}

fn is_label_name_start(b: u8) -> bool {
    NAME_CLASSES[usize::from(b)] & LABEL_START != 0
}

fn is_label_name_char(b: u8) -> bool {
    NAME_CLASSES[usize::from(b)] & LABEL_CHAR != 0
}
