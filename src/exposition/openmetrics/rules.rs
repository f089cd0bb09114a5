//! The typed rules of OpenMetrics: which sample names each type has, which
//! values and labels its samples may have, and the checks over one Metric
//! (the samples sharing a label set): bucket order, the `+Inf` bucket,
//! `_count` against it, `_sum` with negative buckets.

use std::collections::HashSet;

use super::lex::parse_timestamp;
use super::{err, series_id};
use crate::exposition::{MetricType, ParseError};

/// The OpenMetrics type of a family, as declared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum OmType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl OmType {
    /// The type of a `# TYPE` keyword; exact lowercase, `untyped` is not one.
    pub fn from_keyword(s: &str) -> Option<OmType> {
        Some(match s {
            "counter" => OmType::Counter,
            "gauge" => OmType::Gauge,
            "histogram" => OmType::Histogram,
            "gaugehistogram" => OmType::GaugeHistogram,
            "summary" => OmType::Summary,
            "info" => OmType::Info,
            "stateset" => OmType::StateSet,
            "unknown" => OmType::Unknown,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OmType::Counter => "counter",
            OmType::Gauge => "gauge",
            OmType::Histogram => "histogram",
            OmType::GaugeHistogram => "gaugehistogram",
            OmType::Summary => "summary",
            OmType::Info => "info",
            OmType::StateSet => "stateset",
            OmType::Unknown => "unknown",
        }
    }

    /// The suffixes of the sample names of a family of this type.
    pub fn suffixes(self) -> &'static [&'static str] {
        match self {
            OmType::Counter => &["_total", "_created"],
            OmType::Gauge | OmType::StateSet | OmType::Unknown => &[""],
            OmType::Histogram => &["_bucket", "_count", "_sum", "_created"],
            OmType::GaugeHistogram => &["_bucket", "_gcount", "_gsum"],
            OmType::Summary => &["", "_count", "_sum", "_created"],
            OmType::Info => &["_info"],
        }
    }

    /// The suffix that makes `sample` a sample name of family `family`.
    pub fn suffix_of(self, family: &str, sample: &str) -> Option<&'static str> {
        let rest = sample.strip_prefix(family)?;
        self.suffixes().iter().copied().find(|s| *s == rest)
    }

    /// Whether samples with this suffix may carry an exemplar.
    pub fn allows_exemplar(self, suffix: &str) -> bool {
        matches!(
            (self, suffix),
            (OmType::Counter, "_total") | (OmType::Histogram | OmType::GaugeHistogram, "_bucket")
        )
    }

    /// The 0.0.4 family of the main samples: name and type.
    pub fn converted(self, name: &str) -> (String, MetricType) {
        match self {
            OmType::Counter => (format!("{name}_total"), MetricType::Counter),
            OmType::Gauge | OmType::StateSet => (name.to_owned(), MetricType::Gauge),
            OmType::Histogram => (name.to_owned(), MetricType::Histogram),
            OmType::Summary => (name.to_owned(), MetricType::Summary),
            OmType::Info => (format!("{name}_info"), MetricType::Gauge),
            OmType::Unknown | OmType::GaugeHistogram => (name.to_owned(), MetricType::Untyped),
        }
    }
}

/// The label that a type keeps per sample rather than per Metric.
fn point_label(typ: OmType) -> Option<&'static str> {
    match typ {
        OmType::Histogram | OmType::GaugeHistogram => Some("le"),
        OmType::Summary => Some("quantile"),
        _ => None,
    }
}

/// The identity of the Metric a sample belongs to: its labels without the
/// type's per-sample label, in order of name.
pub(super) fn metric_key(typ: OmType, labels: &[(String, String)]) -> String {
    let skip = point_label(typ);
    let rest: Vec<(String, String)> = labels
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .cloned()
        .collect();
    series_id("", &rest)
}

/// Checks one sample's value and labels against its type.
pub(super) fn check_sample(
    no: usize,
    typ: OmType,
    family: &str,
    name: &str,
    suffix: &str,
    labels: &[(String, String)],
    value: f64,
) -> Result<(), ParseError> {
    let label = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let fail = |what: String| Err(err(no, what));
    let counter_like = |what: &str| -> Result<(), ParseError> {
        if value.is_nan() || value < 0.0 {
            return fail(format!(
                "{what} {name} is {value}: expected a number not NaN and not negative"
            ));
        }
        Ok(())
    };
    let integer = |what: &str| -> Result<(), ParseError> {
        if value.is_finite() && value.fract() != 0.0 {
            return fail(format!("{what} {name} is {value}: expected an integer"));
        }
        Ok(())
    };
    if let Some(point) = point_label(typ) {
        let is_point = match typ {
            OmType::Summary => suffix.is_empty(),
            _ => suffix == "_bucket",
        };
        if !is_point && label(point).is_some() {
            return fail(format!(
                "{point} label on {name}: expected it only on the {} samples of {family}",
                if point == "le" { "_bucket" } else { "quantile" }
            ));
        }
    }
    match (typ, suffix) {
        (OmType::Counter, "_total") => counter_like("counter"),
        (OmType::Histogram | OmType::GaugeHistogram, "_bucket") => {
            let Some(le) = label("le") else {
                return fail(format!(
                    "bucket {name} has no le label: expected le=\"<number>\""
                ));
            };
            if le != "+Inf" && parse_timestamp(le).is_none() {
                return fail(format!(
                    "invalid le {le:?} of {name}: expected a number or \"+Inf\""
                ));
            }
            counter_like("bucket")?;
            integer("bucket")
        }
        (OmType::Histogram, "_count") | (OmType::GaugeHistogram, "_gcount") => {
            counter_like("count")?;
            integer("count")
        }
        (OmType::Histogram | OmType::Summary, "_sum") | (OmType::Summary, "_count") => {
            counter_like("value")
        }
        (OmType::GaugeHistogram, "_gsum") if value.is_nan() => {
            fail(format!("{name} is NaN: expected a number"))
        }
        (OmType::Summary, "") => {
            let Some(q) = label("quantile") else {
                return fail(format!(
                    "summary sample {name} has no quantile label: expected quantile=\"<0..1>\""
                ));
            };
            match parse_timestamp(q) {
                Some(v) if (0.0..=1.0).contains(&v) => {}
                _ => {
                    return fail(format!(
                        "invalid quantile {q:?} of {name}: expected a number from 0 to 1"
                    ))
                }
            }
            if value < 0.0 {
                return fail(format!(
                    "quantile value {value} of {name}: expected not negative"
                ));
            }
            Ok(())
        }
        (OmType::Info, _) if value != 1.0 => fail(format!("info {name} is {value}: expected 1")),
        (OmType::StateSet, _) => {
            if value != 0.0 && value != 1.0 {
                return fail(format!("stateset {name} is {value}: expected 0 or 1"));
            }
            if label(family).is_none() {
                return fail(format!(
                    "stateset sample {name} has no label {family}: expected the state in it"
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The checks over one Metric of a histogram or gauge histogram, one
/// MetricPoint at a time.
pub(super) struct MetricCheck {
    pub key: String,
    typ: OmType,
    family: String,
    last_line: usize,
    /// Series seen in the point at hand: one seen again starts the next point.
    seen: HashSet<String>,
    last_bucket: Option<(f64, f64)>,
    inf: Option<f64>,
    negative_le: bool,
    count: Option<f64>,
    sum: Option<f64>,
    any: bool,
}

impl MetricCheck {
    pub fn new(key: String, typ: OmType, family: &str, line: usize) -> MetricCheck {
        MetricCheck {
            key,
            typ,
            family: family.to_owned(),
            last_line: line,
            seen: HashSet::new(),
            last_bucket: None,
            inf: None,
            negative_le: false,
            count: None,
            sum: None,
            any: false,
        }
    }

    pub fn add(
        &mut self,
        no: usize,
        name: &str,
        suffix: &str,
        labels: &[(String, String)],
        value: f64,
    ) -> Result<(), ParseError> {
        if !matches!(self.typ, OmType::Histogram | OmType::GaugeHistogram) {
            return Ok(());
        }
        if !self.seen.insert(series_id(name, labels)) {
            // The next MetricPoint of the same Metric.
            self.finish_point()?;
            self.seen.insert(series_id(name, labels));
        }
        self.last_line = no;
        match suffix {
            "_bucket" => {
                let le_text = labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .map_or("", |(_, v)| v.as_str());
                let le = if le_text == "+Inf" {
                    f64::INFINITY
                } else {
                    parse_timestamp(le_text).unwrap_or(f64::NAN)
                };
                if let Some((last_le, last_value)) = self.last_bucket {
                    if le <= last_le {
                        return Err(err(
                            no,
                            format!(
                                "bucket le={le_text:?} of {name} after le={}: expected buckets in increasing le",
                                super::super::format_go_float(last_le)
                            ),
                        ));
                    }
                    if value < last_value {
                        return Err(err(
                            no,
                            format!(
                                "bucket le={le_text:?} of {name} counts {value}, less than the bucket before: expected cumulative counts"
                            ),
                        ));
                    }
                }
                self.last_bucket = Some((le, value));
                self.negative_le |= le < 0.0;
                if le == f64::INFINITY {
                    self.inf = Some(value);
                }
                self.any = true;
            }
            "_count" | "_gcount" => {
                self.count = Some(value);
                self.any = true;
            }
            "_sum" | "_gsum" => {
                self.sum = Some(value);
                self.any = true;
            }
            _ => {}
        }
        Ok(())
    }

    /// The checks at the end of a MetricPoint.
    fn finish_point(&mut self) -> Result<(), ParseError> {
        let no = self.last_line;
        let family = &self.family;
        let (count, sum) = match self.typ {
            OmType::Histogram => ("_count", "_sum"),
            _ => ("_gcount", "_gsum"),
        };
        if self.any {
            let Some(inf) = self.inf else {
                return Err(err(
                    no,
                    format!(
                        "{} {family} has no le=\"+Inf\" bucket: expected one",
                        self.typ.as_str()
                    ),
                ));
            };
            if self.count.is_some() != self.sum.is_some() {
                return Err(err(
                    no,
                    format!("{family} has only one of {count} and {sum}: expected both or neither"),
                ));
            }
            if let Some(c) = self.count {
                if c != inf {
                    return Err(err(
                        no,
                        format!(
                            "{family}{count} is {c} but the +Inf bucket {inf}: expected them equal"
                        ),
                    ));
                }
            }
            match (self.typ, self.sum) {
                (OmType::Histogram, Some(_)) if self.negative_le => {
                    return Err(err(
                        no,
                        format!(
                            "histogram {family} has negative bucket bounds and a {sum}: expected no {sum} then"
                        ),
                    ))
                }
                (OmType::GaugeHistogram, Some(s)) if s < 0.0 && !self.negative_le => {
                    return Err(err(
                        no,
                        format!(
                            "{family}{sum} is {s} without negative buckets: expected not negative"
                        ),
                    ))
                }
                _ => {}
            }
        }
        self.seen.clear();
        self.last_bucket = None;
        self.inf = None;
        self.negative_le = false;
        self.count = None;
        self.sum = None;
        self.any = false;
        Ok(())
    }

    /// Ends the Metric.
    pub fn finish(mut self) -> Result<(), ParseError> {
        self.finish_point()
    }
}
