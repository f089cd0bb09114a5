//! The lexical rules of OpenMetrics text: one sample line cut into its parts,
//! label sets, numbers, timestamps, escapes and exemplars, as the ABNF of the
//! specification has them (single spaces, no trailing commas, no blanks inside
//! label sets).

use std::borrow::Cow;

use super::{err, truncate};
use crate::exposition::{
    is_label_name_char, is_label_name_start, is_metric_name_char, is_metric_name_start, ParseError,
};

/// Longest exemplar label set, in code points of its names and values.
const MAX_EXEMPLAR_CHARS: usize = 128;

/// A sample line cut into its parts, still as text.
pub(super) struct SampleParts<'a> {
    pub name: &'a str,
    /// The text between `{` and `}`, when there are braces.
    pub labels: Option<&'a str>,
    pub value: &'a str,
    pub timestamp: Option<&'a str>,
    /// The exemplar after ` # `.
    pub exemplar: Option<&'a str>,
}

/// Cuts `name[{labels}] value [timestamp] [# exemplar]`.
pub(super) fn split_sample(no: usize, line: &str) -> Result<SampleParts<'_>, ParseError> {
    let bytes = line.as_bytes();
    let name_end = bytes
        .iter()
        .position(|&b| !is_metric_name_char(b))
        .unwrap_or(bytes.len());
    let name = &line[..name_end];
    if name.is_empty()
        || !is_metric_name_start(bytes[0])
        || !matches!(bytes.get(name_end), Some(b'{' | b' '))
    {
        let token = line.split([' ', '{']).next().unwrap_or("");
        return Err(err(
            no,
            format!(
                "invalid metric name {:?}: expected [a-zA-Z_:][a-zA-Z0-9_:]* then '{{' or a space",
                truncate(token)
            ),
        ));
    }
    let mut pos = name_end;
    let mut labels = None;
    if bytes[pos] == b'{' {
        let close = closing_brace(line, pos).ok_or_else(|| {
            err(
                no,
                format!("unterminated label set of {name}: expected '}}'"),
            )
        })?;
        labels = Some(&line[pos + 1..close]);
        pos = close + 1;
    }
    let rest = &line[pos..];
    let Some(rest) = rest.strip_prefix(' ') else {
        return Err(err(
            no,
            format!(
                "expected one space and the value after {name}, found {:?}",
                truncate(rest)
            ),
        ));
    };
    let (value, rest) = rest
        .split_once(' ')
        .map_or((rest, None), |(v, r)| (v, Some(r)));
    if value.is_empty() {
        return Err(err(
            no,
            format!("missing value for {name}: expected one space then a number"),
        ));
    }
    let mut parts = SampleParts {
        name,
        labels,
        value,
        timestamp: None,
        exemplar: None,
    };
    let Some(rest) = rest else {
        return Ok(parts);
    };
    let bad_tail = |found: &str| {
        err(
            no,
            format!(
                "unexpected {:?} after the value of {name}: expected a timestamp, \" # \" and an exemplar, or the end of the line",
                truncate(found)
            ),
        )
    };
    if let Some(exemplar) = rest.strip_prefix("# ") {
        parts.exemplar = Some(exemplar);
        return Ok(parts);
    }
    let (ts, rest) = rest
        .split_once(' ')
        .map_or((rest, None), |(t, r)| (t, Some(r)));
    if ts.is_empty() || ts.starts_with('#') {
        return Err(bad_tail(ts));
    }
    parts.timestamp = Some(ts);
    match rest {
        None => Ok(parts),
        Some(r) => match r.strip_prefix("# ") {
            Some(exemplar) => {
                parts.exemplar = Some(exemplar);
                Ok(parts)
            }
            None => Err(bad_tail(r)),
        },
    }
}

/// The position of the `}` closing the label set opened at `open`, skipping
/// quoted values and their escapes.
fn closing_brace(line: &str, open: usize) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(open + 1) {
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
            return Some(i);
        }
    }
    None
}

/// Parses `name="value",...` (the text between the braces), decoding values.
pub(super) fn parse_labels(
    no: usize,
    metric: &str,
    text: Option<&str>,
) -> Result<Vec<(String, String)>, ParseError> {
    let mut labels: Vec<(String, String)> = Vec::new();
    let Some(text) = text else {
        return Ok(labels);
    };
    let bytes = text.as_bytes();
    let mut pos = 0;
    while pos < bytes.len() {
        let name_end = bytes[pos..]
            .iter()
            .position(|&b| !is_label_name_char(b))
            .map_or(bytes.len(), |i| pos + i);
        let name = &text[pos..name_end];
        if name.is_empty() || !is_label_name_start(bytes[pos]) {
            return Err(err(
                no,
                format!(
                    "invalid label name in {metric} at {:?}: expected [a-zA-Z_][a-zA-Z0-9_]*",
                    truncate(&text[pos..])
                ),
            ));
        }
        if bytes.get(name_end) != Some(&b'=') || bytes.get(name_end + 1) != Some(&b'"') {
            return Err(err(
                no,
                format!("expected =\" after label name {name} in {metric}"),
            ));
        }
        let start = name_end + 2;
        let mut i = start;
        let end = loop {
            match bytes.get(i) {
                None => {
                    return Err(err(
                        no,
                        format!("unterminated value of label {name} in {metric}: expected '\"'"),
                    ))
                }
                Some(b'\\') => i += 2,
                Some(b'"') => break i,
                Some(_) => i += 1,
            }
        };
        if labels.iter().any(|(n, _)| n == name) {
            return Err(err(
                no,
                format!("duplicate label name {name} in {metric}: expected each label once"),
            ));
        }
        labels.push((name.to_owned(), unescape(&text[start..end]).into_owned()));
        pos = end + 1;
        match bytes.get(pos) {
            None => break,
            Some(b',') if pos + 1 < bytes.len() => pos += 1,
            Some(_) => {
                return Err(err(
                    no,
                    format!(
                        "expected ',' and another label or '}}' after label {name} in {metric}, found {:?}",
                        truncate(&text[pos..])
                    ),
                ))
            }
        }
    }
    Ok(labels)
}

/// Decodes `\\`, `\"` and `\n`; another backslash is kept with what follows
/// it, as the specification's own parsers read it.
pub(super) fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// A number: a decimal real number, `[+-]Inf`/`Infinity` or `NaN` (the words
/// in any case). Hex, octal, binary and `_` separators are refused.
pub(super) fn parse_number(s: &str) -> Option<f64> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if s.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if s.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    parse_timestamp(s)
}

/// A real number (no Inf or NaN), finite: timestamps, bucket bounds, quantiles.
pub(super) fn parse_timestamp(s: &str) -> Option<f64> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    // The same decimal syntax as the text format's.
    if !crate::exposition::parse::is_decimal_float(unsigned) {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Checks an exemplar: `{labels} value [timestamp]`, its label set at most
/// 128 code points of names and values.
pub(super) fn check_exemplar(no: usize, metric: &str, text: &str) -> Result<(), ParseError> {
    let bad = |why: &str| err(no, format!("invalid exemplar of {metric}: {why}"));
    if !text.starts_with('{') {
        return Err(bad("expected '{' after \" # \""));
    }
    let close = closing_brace(text, 0).ok_or_else(|| bad("unterminated label set"))?;
    let labels = parse_labels(no, metric, Some(&text[1..close]))?;
    let chars: usize = labels
        .iter()
        .map(|(k, v)| k.chars().count() + v.chars().count())
        .sum();
    if chars > MAX_EXEMPLAR_CHARS {
        return Err(bad(&format!(
            "its labels have {chars} characters: expected at most {MAX_EXEMPLAR_CHARS}"
        )));
    }
    let Some(rest) = text[close + 1..].strip_prefix(' ') else {
        return Err(bad("expected a space and a value after the label set"));
    };
    let (value, ts) = rest
        .split_once(' ')
        .map_or((rest, None), |(v, t)| (v, Some(t)));
    if parse_number(value).is_none() {
        return Err(bad(&format!("invalid value {:?}", truncate(value))));
    }
    if let Some(ts) = ts {
        if parse_timestamp(ts).is_none() {
            return Err(bad(&format!("invalid timestamp {:?}", truncate(ts))));
        }
    }
    Ok(())
}
