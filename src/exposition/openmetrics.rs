//! OpenMetrics text 1.0 → text format 0.0.4.
//!
//! Polled exporters may answer in OpenMetrics. The body is parsed and validated
//! here by the rules of the OpenMetrics 1.0 specification (its ABNF and its
//! MUSTs), into an [`Exposition`] that the 0.0.4 encoder writes out; the store
//! then parses that text like any push. Invalid bodies are refused whole, as
//! the specification requires, with the line and the rule broken.
//!
//! What the conversion does:
//!
//! * `# EOF` ends the body (an optional final newline, nothing else, may follow);
//! * `# UNIT` lines are checked and dropped (0.0.4 has no units);
//! * a counter `foo` becomes family `foo_total`; `_created` samples of counters,
//!   histograms and summaries become a gauge family `foo_created`;
//! * `info` families become gauges named `foo_info`, `stateset` families gauges,
//!   `unknown` families untyped; `gaugehistogram` families become untyped
//!   families `foo_bucket`, `foo_gcount` and `foo_gsum` (0.0.4 has no such type);
//! * escapes are decoded (an unknown escape such as `\z` is kept as the two
//!   characters, as the specification's parsers do) and re-encoded for 0.0.4;
//! * exemplars are checked and removed;
//! * timestamps in (fractional) seconds become integer milliseconds; one beyond
//!   the range of 0.0.4's 64-bit milliseconds is left out, the value kept;
//! * a series given several times (MetricPoints with non-decreasing timestamps)
//!   keeps its last point: 0.0.4 output has each series once.
//!
//! Pure: `&str` in, `String` out.

mod lex;
mod rules;

use std::collections::{HashMap, HashSet};

use super::{encode, Exposition, Family, MetricType, ParseError, Sample};
use lex::{parse_labels, parse_number, parse_timestamp, split_sample, unescape};
use rules::{MetricCheck, OmType};

/// Whether a body looks like OpenMetrics: its last non-blank line is `# EOF`.
pub fn looks_like_openmetrics(text: &str) -> bool {
    text.trim_end_matches(['\n', '\r', ' ', '\t'])
        .rsplit('\n')
        .next()
        .is_some_and(|l| l.trim() == "# EOF")
}

/// Converts an OpenMetrics body to 0.0.4 text. Errors name the 1-based line.
pub fn openmetrics_to_text(text: &str) -> Result<String, ParseError> {
    let body = split_eof(text)?;
    let mut parser = OmParser::default();
    if !body.is_empty() {
        // `split_eof` left the body's own final newline on.
        let body = &body[..body.len() - 1];
        for (i, line) in body.split('\n').enumerate() {
            parser.line(i + 1, line)?;
        }
    }
    let exposition = parser.finish()?;
    Ok(encode(&exposition))
}

/// The body before `# EOF`, with its final newline; checks what follows.
fn split_eof(text: &str) -> Result<&str, ParseError> {
    let end = text
        .strip_suffix("# EOF\n")
        .or_else(|| text.strip_suffix("# EOF"));
    if let Some(body) = end.filter(|b| b.is_empty() || b.ends_with('\n')) {
        return Ok(body);
    }
    // Name the first line that breaks the rule.
    for (i, line) in text.split('\n').enumerate() {
        if line == "# EOF" {
            return Err(err(
                i + 2,
                "text after # EOF: expected the end of the body".to_owned(),
            ));
        }
    }
    Err(err(
        text.trim_end_matches('\n').split('\n').count(),
        "missing # EOF: expected the body to end with \"# EOF\"".to_owned(),
    ))
}

/// One family as declared and seen so far.
struct OmFamily {
    name: String,
    typ: OmType,
    typed: bool,
    help_seen: bool,
    help: Option<String>,
    unit: Option<String>,
    has_samples: bool,
    /// The 0.0.4 families this one becomes: the main one, and `_created`.
    main: Option<usize>,
    created: Option<usize>,
    /// For gaugehistograms: `_bucket`, `_gcount`, `_gsum`.
    parts: [Option<usize>; 3],
}

#[derive(Default)]
struct OmParser {
    families: Vec<OmFamily>,
    by_name: HashMap<String, usize>,
    /// Sample name → the family whose samples may carry it.
    reserved: HashMap<String, usize>,
    current: Option<usize>,
    /// The checks of the Metric (label set) at hand in the current family.
    metric: Option<MetricCheck>,
    /// Label sets of the current family already done with.
    done_metrics: HashSet<String>,
    /// Series → (0.0.4 family, sample index, had a timestamp, last timestamp).
    series: HashMap<String, (usize, usize, bool, f64)>,
    out: Vec<Family>,
}

impl OmParser {
    fn line(&mut self, no: usize, line: &str) -> Result<(), ParseError> {
        if line.is_empty() {
            return Err(err(
                no,
                "blank line: expected none in OpenMetrics".to_owned(),
            ));
        }
        if let Some(rest) = line.strip_prefix('#') {
            return self.metadata(no, rest);
        }
        self.sample(no, line)
    }

    /// A `# TYPE`, `# HELP` or `# UNIT` line (the text after `#`).
    fn metadata(&mut self, no: usize, rest: &str) -> Result<(), ParseError> {
        let expected = "expected \"# TYPE\", \"# HELP\", \"# UNIT\" or \"# EOF\"";
        let Some(rest) = rest.strip_prefix(' ') else {
            return Err(err(no, format!("invalid comment: {expected}")));
        };
        let (keyword, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if !matches!(keyword, "TYPE" | "HELP" | "UNIT") {
            if keyword == "EOF" {
                // The body goes on after this line.
                return Err(err(
                    no + 1,
                    "text after # EOF: expected the end of the body".to_owned(),
                ));
            }
            return Err(err(
                no,
                format!("invalid comment {:?}: {expected}", truncate(keyword)),
            ));
        }
        let (name, value) = match rest.split_once(' ') {
            Some(parts) => parts,
            None => {
                return Err(err(
                    no,
                    format!(
                        "# {keyword} line without a value: expected \"# {keyword} name value\""
                    ),
                ))
            }
        };
        if !super::is_valid_metric_name(name) {
            return Err(err(
                no,
                format!(
                    "invalid metric name {:?} in # {keyword}: expected [a-zA-Z_:][a-zA-Z0-9_:]*",
                    truncate(name)
                ),
            ));
        }
        let index = self.family_for_metadata(no, keyword, name)?;
        let family = &mut self.families[index];
        match keyword {
            "TYPE" => {
                if family.typed {
                    return Err(err(no, format!("second # TYPE line for family {name}")));
                }
                let typ = OmType::from_keyword(value).ok_or_else(|| {
                    err(
                        no,
                        format!(
                            "invalid type {:?} for family {name}: expected counter, gauge, \
                             histogram, gaugehistogram, stateset, info, summary or unknown",
                            truncate(value)
                        ),
                    )
                })?;
                let old = std::mem::replace(&mut family.typ, typ);
                family.typed = true;
                check_unit(no, family)?;
                self.unreserve(index, old);
                self.reserve(no, index)?;
            }
            "HELP" => {
                if family.help_seen {
                    return Err(err(no, format!("second # HELP line for family {name}")));
                }
                family.help_seen = true;
                // An empty HELP counts as none (but still as given).
                family.help = (!value.is_empty()).then(|| unescape(value).into_owned());
            }
            _ => {
                if family.unit.is_some() {
                    return Err(err(no, format!("second # UNIT line for family {name}")));
                }
                if let Some(bad) = value.bytes().find(|&b| !super::is_metric_name_char(b)) {
                    return Err(err(
                        no,
                        format!(
                            "invalid unit {:?} for family {name}: unexpected {:?}",
                            truncate(value),
                            char::from(bad)
                        ),
                    ));
                }
                family.unit = Some(value.to_owned());
                check_unit(no, family)?;
            }
        }
        Ok(())
    }

    /// The family a metadata line for `name` is about: the current one if it
    /// has no samples yet, else a new one.
    fn family_for_metadata(
        &mut self,
        no: usize,
        keyword: &str,
        name: &str,
    ) -> Result<usize, ParseError> {
        if let Some(&index) = self.by_name.get(name) {
            let family = &self.families[index];
            if self.current != Some(index) {
                return Err(err(
                    no,
                    format!(
                        "family {name} appears a second time: expected each family's lines together"
                    ),
                ));
            }
            if family.has_samples {
                return Err(err(
                    no,
                    format!("# {keyword} for {name} after its samples: expected metadata first"),
                ));
            }
            return Ok(index);
        }
        self.new_family(no, name)
    }

    fn new_family(&mut self, no: usize, name: &str) -> Result<usize, ParseError> {
        self.close_current()?;
        let index = self.families.len();
        self.families.push(OmFamily {
            name: name.to_owned(),
            typ: OmType::Unknown,
            typed: false,
            help_seen: false,
            help: None,
            unit: None,
            has_samples: false,
            main: None,
            created: None,
            parts: [None; 3],
        });
        self.by_name.insert(name.to_owned(), index);
        self.current = Some(index);
        self.reserve(no, index)?;
        Ok(index)
    }

    /// Records the sample names family `index` may use, refusing a clash with
    /// another family's (a gauge `foo_created` next to a counter `foo`).
    fn reserve(&mut self, no: usize, index: usize) -> Result<(), ParseError> {
        let family = &self.families[index];
        for sample_name in reserved_names(&family.name, family.typ) {
            if let Some(&other) = self.reserved.get(&sample_name) {
                if other != index {
                    return Err(err(
                        no,
                        format!(
                            "family {} and family {} both use the name {sample_name}: \
                             expected distinct names",
                            self.families[other].name, family.name
                        ),
                    ));
                }
            }
            self.reserved.insert(sample_name, index);
        }
        Ok(())
    }

    /// Frees the sample names family `index` reserved under its type `old`
    /// (only these: a scan of the whole map per family would make a body of
    /// many families quadratic).
    fn unreserve(&mut self, index: usize, old: OmType) {
        for sample_name in reserved_names(&self.families[index].name, old) {
            if self.reserved.get(&sample_name) == Some(&index) {
                self.reserved.remove(&sample_name);
            }
        }
    }

    /// Ends the current family: finishes the checks of its last Metric.
    fn close_current(&mut self) -> Result<(), ParseError> {
        if let Some(check) = self.metric.take() {
            check.finish()?;
        }
        self.done_metrics.clear();
        self.current = None;
        Ok(())
    }

    /// The family and suffix of a sample named `name`.
    fn family_of_sample(
        &mut self,
        no: usize,
        name: &str,
    ) -> Result<(usize, &'static str), ParseError> {
        if let Some(index) = self.current {
            let family = &self.families[index];
            if let Some(suffix) = family.typ.suffix_of(&family.name, name) {
                return Ok((index, suffix));
            }
        }
        if let Some(&owner) = self.reserved.get(name) {
            if Some(owner) == self.current {
                let family = &self.families[owner];
                let names: Vec<String> = family
                    .typ
                    .suffixes()
                    .iter()
                    .map(|s| format!("{}{s}", family.name))
                    .collect();
                return Err(err(
                    no,
                    format!(
                        "sample {name} in {} family {}: expected {}",
                        family.typ.as_str(),
                        family.name,
                        names.join(" or ")
                    ),
                ));
            }
            return Err(err(
                no,
                format!(
                    "sample {name} of family {} after other families' lines: \
                     expected each family's lines together",
                    self.families[owner].name
                ),
            ));
        }
        let index = self.new_family(no, name)?;
        Ok((index, ""))
    }

    fn sample(&mut self, no: usize, line: &str) -> Result<(), ParseError> {
        let parts = split_sample(no, line)?;
        let (index, suffix) = self.family_of_sample(no, parts.name)?;
        let labels = parse_labels(no, parts.name, parts.labels)?;
        let value = parse_number(parts.value).ok_or_else(|| {
            err(
                no,
                format!(
                    "invalid value {:?} for {}: expected a number",
                    truncate(parts.value),
                    parts.name
                ),
            )
        })?;
        let timestamp = parts
            .timestamp
            .map(|ts| {
                parse_timestamp(ts).ok_or_else(|| {
                    err(
                        no,
                        format!(
                            "invalid timestamp {:?} for {}: expected a number of seconds",
                            truncate(ts),
                            parts.name
                        ),
                    )
                })
            })
            .transpose()?;
        let family = &mut self.families[index];
        family.has_samples = true;
        let typ = family.typ;
        let family_name = family.name.clone();
        if let Some(exemplar) = parts.exemplar {
            if !typ.allows_exemplar(suffix) {
                return Err(err(
                    no,
                    format!(
                        "exemplar on {}: expected exemplars only on counter _total and \
                         histogram _bucket samples",
                        parts.name
                    ),
                ));
            }
            lex::check_exemplar(no, parts.name, exemplar)?;
        }
        rules::check_sample(no, typ, &family_name, parts.name, suffix, &labels, value)?;

        // The Metric: the label set without `le`/`quantile`, whose lines must be
        // together.
        let key = rules::metric_key(typ, &labels);
        let same = self.metric.as_ref().is_some_and(|m| m.key == key);
        if !same {
            if let Some(check) = self.metric.take() {
                self.done_metrics.insert(check.key.clone());
                check.finish()?;
            }
            if self.done_metrics.contains(&key) {
                return Err(err(
                    no,
                    format!(
                        "sample {} of a metric of family {family_name} after other metrics: \
                         expected each metric's samples together",
                        parts.name
                    ),
                ));
            }
            self.metric = Some(MetricCheck::new(key, typ, &family_name, no));
        }
        let metric = self.metric.as_mut().expect("set above");
        metric.add(no, parts.name, suffix, &labels, value)?;

        self.emit(
            no,
            index,
            suffix,
            parts.name,
            labels,
            value,
            parts.value,
            timestamp,
        )
    }

    /// Files a checked sample into its 0.0.4 family, replacing an earlier point
    /// of the same series.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        no: usize,
        index: usize,
        suffix: &'static str,
        name: &str,
        labels: Vec<(String, String)>,
        value: f64,
        value_text: &str,
        timestamp: Option<f64>,
    ) -> Result<(), ParseError> {
        let out_index = self.out_family(index, suffix);
        let series = series_id(name, &labels);
        let ts = timestamp.unwrap_or(f64::NEG_INFINITY);
        let sample = Sample {
            name: name.to_owned(),
            labels,
            value,
            value_text: if value.is_finite() {
                value_text.to_owned()
            } else {
                super::format_value(value)
            },
            timestamp: timestamp.and_then(seconds_to_millis),
        };
        match self.series.get_mut(&series) {
            None => {
                let samples = &mut self.out[out_index].samples;
                samples.push(sample);
                self.series.insert(
                    series,
                    (out_index, samples.len() - 1, timestamp.is_some(), ts),
                );
            }
            Some((fam, at, had_ts, last)) => {
                if !*had_ts || timestamp.is_none() {
                    return Err(err(
                        no,
                        format!(
                            "series {} given twice: expected each series once, or with \
                             a timestamp on every point",
                            truncate(&series)
                        ),
                    ));
                }
                if ts < *last {
                    return Err(err(
                        no,
                        format!(
                            "timestamp of {} goes back in time: expected non-decreasing \
                             timestamps for a series",
                            truncate(&series)
                        ),
                    ));
                }
                *last = ts;
                self.out[*fam].samples[*at] = sample;
            }
        }
        Ok(())
    }

    /// The 0.0.4 family a sample of OpenMetrics family `index` with `suffix` goes to.
    fn out_family(&mut self, index: usize, suffix: &str) -> usize {
        let family = &self.families[index];
        let (slot, name, typ, help) = match (family.typ, suffix) {
            (OmType::GaugeHistogram, s) => {
                let i = match s {
                    "_bucket" => 0,
                    "_gcount" => 1,
                    _ => 2,
                };
                (
                    Slot::Part(i),
                    format!("{}{s}", family.name),
                    MetricType::Untyped,
                    None,
                )
            }
            (_, "_created") => (
                Slot::Created,
                format!("{}_created", family.name),
                MetricType::Gauge,
                family.help.clone(),
            ),
            (t, _) => {
                let (name, typ) = t.converted(&family.name);
                (Slot::Main, name, typ, family.help.clone())
            }
        };
        let existing = match slot {
            Slot::Main => family.main,
            Slot::Created => family.created,
            Slot::Part(i) => family.parts[i],
        };
        if let Some(out) = existing {
            return out;
        }
        self.out.push(Family {
            name,
            help,
            typ,
            samples: Vec::new(),
        });
        let out = self.out.len() - 1;
        let family = &mut self.families[index];
        match slot {
            Slot::Main => family.main = Some(out),
            Slot::Created => family.created = Some(out),
            Slot::Part(i) => family.parts[i] = Some(out),
        }
        out
    }

    fn finish(mut self) -> Result<Exposition, ParseError> {
        self.close_current()?;
        // Families declared without samples keep their metadata in the output.
        for index in 0..self.families.len() {
            let family = &self.families[index];
            if family.main.is_none() && family.typ != OmType::GaugeHistogram {
                self.out_family(index, "");
            }
        }
        // Output in the order of the input's families.
        let mut order: Vec<usize> = Vec::with_capacity(self.out.len());
        for family in &self.families {
            order.extend(family.main);
            order.extend(family.parts.iter().flatten());
            order.extend(family.created);
        }
        let mut slots: Vec<Option<Family>> = self.out.into_iter().map(Some).collect();
        let families = order.into_iter().filter_map(|i| slots[i].take()).collect();
        Ok(Exposition {
            families,
            dropped: Default::default(),
        })
    }
}

enum Slot {
    Main,
    Created,
    Part(usize),
}

/// Whether the UNIT of a family fits its name and type.
fn check_unit(no: usize, family: &OmFamily) -> Result<(), ParseError> {
    let Some(unit) = family.unit.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(());
    };
    if matches!(family.typ, OmType::Info | OmType::StateSet) {
        return Err(err(
            no,
            format!(
                "unit {unit:?} for {} family {}: expected no unit for info and stateset",
                family.typ.as_str(),
                family.name
            ),
        ));
    }
    if !family.name.ends_with(&format!("_{unit}")) {
        return Err(err(
            no,
            format!(
                "unit {unit:?} is not the suffix of family name {}: expected {}_{unit}",
                family.name, family.name
            ),
        ));
    }
    Ok(())
}

/// A timestamp in seconds as 0.0.4 milliseconds, if it fits.
fn seconds_to_millis(seconds: f64) -> Option<i64> {
    let ms = (seconds * 1000.0).round();
    // i64 holds ±9.22e18; stay clear of the edge, where f64 rounding could overflow.
    (ms.abs() < 9.0e18).then_some(ms as i64)
}

/// A series' identity for repeated points: name and labels in order of name.
fn series_id(name: &str, labels: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort();
    let mut id = name.to_owned();
    for (k, v) in sorted {
        id.push_str(&format!("{{{k}={v:?}}}"));
    }
    id
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

fn err(line: usize, message: String) -> ParseError {
    ParseError {
        line,
        message,
        kind: super::ParseErrorKind::Invalid,
    }
}

/// The sample names a family of type `typ` may use: its name with each of
/// the type's suffixes, and the name itself (taken whatever the type).
fn reserved_names(name: &str, typ: OmType) -> Vec<String> {
    let mut names: Vec<String> = typ
        .suffixes()
        .iter()
        .map(|s| format!("{name}{s}"))
        .collect();
    names.push(name.to_owned());
    names
}

#[cfg(test)]
mod tests;
