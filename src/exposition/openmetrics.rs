//! OpenMetrics text (1.0 and 0.0.1) → text format 0.0.4.
//!
//! Polled exporters may answer in OpenMetrics. Rather than teaching the 0.0.4
//! parser a second dialect, the body is rewritten line by line into 0.0.4 text
//! that [`parse()`](super::parse) then validates like any push:
//!
//! * `# EOF` ends the body (anything but blank lines after it is an error);
//! * `# UNIT` lines are dropped (0.0.4 has no units);
//! * a counter declared as `foo` becomes family `foo_total` (its samples are
//!   `foo_total`); `_created` samples of counters, histograms and summaries
//!   become a gauge family `foo_created`;
//! * `info` families become gauges named `foo_info`, `stateset` families gauges,
//!   `unknown` families untyped; `gaugehistogram` families lose their TYPE and
//!   HELP (their `_bucket`, `_gsum`, `_gcount` samples become untyped families);
//! * exemplars (` # {...} value [ts]` after a sample) are removed;
//! * timestamps in (fractional) seconds become integer milliseconds;
//! * HELP's `\"` escape, which 0.0.4 lacks, becomes a plain `"`.
//!
//! Pure: `&str` in, `String` out.

use std::collections::{HashMap, HashSet};

use super::ParseError;

/// Whether a body looks like OpenMetrics: its last non-blank line is `# EOF`.
pub fn looks_like_openmetrics(text: &str) -> bool {
    text.trim_end_matches(['\n', '\r', ' ', '\t'])
        .rsplit('\n')
        .next()
        .is_some_and(|l| l.trim() == "# EOF")
}

/// The OpenMetrics type of a family, as declared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum OmType {
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
    fn from_keyword(s: &str) -> Option<OmType> {
        Some(match s {
            "counter" => OmType::Counter,
            "gauge" => OmType::Gauge,
            "histogram" => OmType::Histogram,
            "gaugehistogram" => OmType::GaugeHistogram,
            "summary" => OmType::Summary,
            "info" => OmType::Info,
            "stateset" => OmType::StateSet,
            "unknown" | "untyped" => OmType::Unknown,
            _ => return None,
        })
    }

    /// Whether `_created` samples belong to this type.
    fn has_created(self) -> bool {
        matches!(
            self,
            OmType::Counter | OmType::Histogram | OmType::Summary | OmType::GaugeHistogram
        )
    }
}

/// Converts an OpenMetrics body to 0.0.4 text. Errors name the 1-based line.
pub fn openmetrics_to_text(text: &str) -> Result<String, ParseError> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();

    // Pass 1: declared types, and which families have `_created` samples.
    let mut types: HashMap<&str, OmType> = HashMap::new();
    let mut sample_names: HashSet<&str> = HashSet::new();
    let mut eof_at = None;
    for (i, line) in lines.iter().enumerate() {
        if eof_at.is_some() {
            if !line.trim().is_empty() {
                return Err(err(i + 1, "text after # EOF: expected the end of the body"));
            }
            continue;
        }
        if line.trim() == "# EOF" {
            eof_at = Some(i);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(name), Some(typ)) = (it.next(), it.next()) {
                let t = OmType::from_keyword(typ).ok_or_else(|| {
                    err(
                        i + 1,
                        &format!("invalid OpenMetrics type '{typ}' for family {name}"),
                    )
                })?;
                types.insert(name, t);
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            sample_names.insert(sample_name(line));
        }
    }
    let created_family = |name: &str| -> bool {
        types.get(name).is_some_and(|t| t.has_created())
            && sample_names.contains(format!("{name}_created").as_str())
    };

    let mut out = String::with_capacity(text.len());
    for (i, line) in lines.iter().enumerate() {
        if eof_at.is_some_and(|e| i >= e) {
            break;
        }
        let no = i + 1;
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            let (keyword, after) = rest.split_once(' ').unwrap_or((rest, ""));
            match keyword {
                "UNIT" => {}
                "TYPE" => {
                    let mut it = after.split_whitespace();
                    let name = it.next().unwrap_or("");
                    let Some(&t) = types.get(name) else {
                        // Malformed: let the 0.0.4 parser report it.
                        out.push_str(line);
                        out.push('\n');
                        continue;
                    };
                    let (out_name, out_type) = renamed(name, t);
                    if let Some(out_type) = out_type {
                        push_line(&mut out, &["# TYPE ", &out_name, " ", out_type]);
                    }
                    if created_family(name) {
                        push_line(&mut out, &["# TYPE ", name, "_created gauge"]);
                    }
                }
                "HELP" => {
                    let (name, help) = after.split_once(' ').unwrap_or((after, ""));
                    let help = help.replace("\\\"", "\"");
                    match types.get(name) {
                        Some(OmType::GaugeHistogram) => {}
                        Some(&t) => {
                            let (out_name, _) = renamed(name, t);
                            push_line(&mut out, &["# HELP ", &out_name, " ", &help]);
                            if created_family(name) {
                                push_line(&mut out, &["# HELP ", name, "_created ", &help]);
                            }
                        }
                        None => push_line(&mut out, &["# HELP ", name, " ", &help]),
                    }
                }
                // Other comments are dropped: OpenMetrics has none, and 0.0.4 ignores them.
                _ => {}
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        convert_sample(no, line, &mut out)?;
    }
    Ok(out)
}

/// The 0.0.4 family name and type keyword of an OpenMetrics family (`None`: no TYPE).
fn renamed(name: &str, t: OmType) -> (String, Option<&'static str>) {
    match t {
        OmType::Counter if name.ends_with("_total") => (name.to_owned(), Some("counter")),
        OmType::Counter => (format!("{name}_total"), Some("counter")),
        OmType::Gauge => (name.to_owned(), Some("gauge")),
        OmType::Histogram => (name.to_owned(), Some("histogram")),
        OmType::Summary => (name.to_owned(), Some("summary")),
        OmType::Info => (format!("{name}_info"), Some("gauge")),
        OmType::StateSet => (name.to_owned(), Some("gauge")),
        OmType::Unknown => (name.to_owned(), Some("untyped")),
        OmType::GaugeHistogram => (name.to_owned(), None),
    }
}

fn push_line(out: &mut String, parts: &[&str]) {
    for p in parts {
        out.push_str(p);
    }
    out.push('\n');
}

/// The metric name at the start of a sample line.
fn sample_name(line: &str) -> &str {
    let line = line.trim_start();
    let end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    &line[..end]
}

/// Copies a sample line without its exemplar, with the timestamp in milliseconds.
fn convert_sample(no: usize, line: &str, out: &mut String) -> Result<(), ParseError> {
    let line = line.trim_start();
    let bytes = line.as_bytes();
    let mut pos = sample_name(line).len();
    if bytes.get(pos) == Some(&b'{') {
        // Skip the label set, honouring quoted values and their escapes.
        let mut in_quotes = false;
        let mut escaped = false;
        pos += 1;
        loop {
            let Some(&b) = bytes.get(pos) else {
                return Err(err(no, "unterminated label set: expected '}'"));
            };
            pos += 1;
            if escaped {
                escaped = false;
            } else if in_quotes {
                match b {
                    b'\\' => escaped = true,
                    b'"' => in_quotes = false,
                    _ => {}
                }
            } else if b == b'"' {
                in_quotes = true;
            } else if b == b'}' {
                break;
            }
        }
    }
    let (series, rest) = line.split_at(pos);
    let mut tokens = rest.split_whitespace();
    let value = tokens.next().unwrap_or("");
    out.push_str(series);
    out.push(' ');
    out.push_str(value);
    match tokens.next() {
        None | Some("#") => {}
        Some(ts) => {
            let secs: f64 = ts.parse().map_err(|_| {
                err(
                    no,
                    &format!("invalid OpenMetrics timestamp '{ts}': expected seconds"),
                )
            })?;
            let ms = (secs * 1000.0).round();
            if !ms.is_finite() || ms.abs() > 9.0e15 {
                return Err(err(no, &format!("timestamp '{ts}' is out of range")));
            }
            out.push(' ');
            out.push_str(&(ms as i64).to_string());
            match tokens.next() {
                None | Some("#") => {}
                Some(other) => {
                    return Err(err(
                        no,
                        &format!("unexpected '{other}' after the timestamp: expected an exemplar or the end of the line"),
                    ))
                }
            }
        }
    }
    out.push('\n');
    Ok(())
}

fn err(line: usize, message: &str) -> ParseError {
    ParseError {
        line,
        message: message.to_owned(),
        kind: super::ParseErrorKind::Invalid,
    }
}
