//! The lexical pieces of the 0.0.4 parser: label sets, label values and their
//! escapes, HELP escapes, floats, and the wording of found-text in errors. Pure
//! functions on one line.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

use super::super::{is_label_name_char, is_label_name_start, ParseError};

/// Found-text in error messages is cut to this many characters: enough to recognise the
/// token, while an error about a megabyte-long line stays short.
const MAX_FOUND_CHARS: usize = 40;

/// Up to this many labels a new label name is compared with each earlier
/// one (faster than hashing for the usual handful); beyond, a hash set.
const SCANNED_LABELS: usize = 16;

/// Parses the label set after `{`, appending names and raw (still escaped) values to
/// `labels`; returns the position after `}` and whether a value has an escape sequence.
pub(super) fn parse_labels<'a>(
    no: usize,
    line: &'a str,
    mut pos: usize,
    metric: &str,
    labels: &mut Vec<(&'a str, &'a str)>,
) -> Result<(usize, bool), ParseError> {
    let bytes = line.as_bytes();
    let mut escaped = false;
    // Names seen, once the set is too long to scan for each new label: a
    // line of 100,000 labels stays linear.
    let mut names: Option<std::collections::HashSet<&'a str>> = None;
    loop {
        pos = skip_blanks_at(bytes, pos);
        match bytes.get(pos) {
            Some(b'}') => return Ok((pos + 1, escaped)),
            None => {
                return Err(err(
                    no,
                    format!("unterminated label set of {metric}: expected '}}', found end of line"),
                ))
            }
            Some(_) => {}
        }

        let name_end = bytes[pos..]
            .iter()
            .position(|&b| !is_label_name_char(b))
            .map_or(bytes.len(), |i| pos + i);
        let name = &line[pos..name_end];
        if name.is_empty() || !is_label_name_start(bytes[pos]) {
            let token_end = bytes[pos..]
                .iter()
                .position(|&b| matches!(b, b' ' | b'\t' | b'=' | b',' | b'}'))
                .map_or(bytes.len(), |i| pos + i);
            let token = &line[pos..token_end];
            let what = if token.is_empty() {
                found(&line[pos..])
            } else {
                found(token)
            };
            return Err(err(
                no,
                format!(
                    "invalid label name in {metric}: expected [a-zA-Z_][a-zA-Z0-9_]*, found {what}"
                ),
            ));
        }
        // Go's parser reserves only `__name__`; other `__` names are valid labels.
        if name == "__name__" {
            return Err(err(
                no,
                format!("reserved label name __name__ in {metric}: expected another name"),
            ));
        }

        pos = skip_blanks_at(bytes, name_end);
        if bytes.get(pos) != Some(&b'=') {
            return Err(err(
                no,
                format!(
                    "expected '=' after label name {name} in {metric}, found {}",
                    found(&line[pos..])
                ),
            ));
        }
        pos = skip_blanks_at(bytes, pos + 1);
        if bytes.get(pos) != Some(&b'"') {
            return Err(err(
                no,
                format!(
                    "expected '\"' to open the value of label {name} in {metric}, found {}",
                    found(&line[pos..])
                ),
            ));
        }
        let (value, after, has_escape) = parse_label_value(no, line, pos + 1, metric, name)?;
        escaped |= has_escape;
        let duplicate = if labels.len() < SCANNED_LABELS {
            labels.iter().any(|(n, _)| {
                n.len() == name.len() && n.as_bytes()[0] == name.as_bytes()[0] && *n == name
            })
        } else {
            let set = names.get_or_insert_with(|| labels.iter().map(|(n, _)| *n).collect());
            !set.insert(name)
        };
        if duplicate {
            return Err(err(
                no,
                format!("duplicate label name {name} in {metric}: expected each label once"),
            ));
        }
        labels.push((name, value));

        pos = skip_blanks_at(bytes, after);
        match bytes.get(pos) {
            // A trailing comma before `}` is allowed: the next round sees the `}`.
            Some(b',') => pos += 1,
            Some(b'}') => return Ok((pos + 1, escaped)),
            _ => {
                return Err(err(
                    no,
                    format!(
                    "expected ',' or '}}' after the value of label {name} in {metric}, found {}",
                    found(&line[pos..])
                ),
                ))
            }
        }
    }
}

/// Reads a label value starting after its opening quote, checking its escape
/// sequences; returns its raw text, the position after the closing quote and whether
/// the text has an escape sequence.
pub(super) fn parse_label_value<'a>(
    no: usize,
    line: &'a str,
    start: usize,
    metric: &str,
    label: &str,
) -> Result<(&'a str, usize, bool), ParseError> {
    let bytes = line.as_bytes();
    let mut escaped = false;
    let mut run = start;
    loop {
        let Some(i) = memchr2(b'"', b'\\', &bytes[run..]) else {
            return Err(err(
                no,
                format!("unterminated value of label {label} in {metric}: expected a closing '\"'"),
            ));
        };
        let special = run + i;
        if bytes[special] == b'"' {
            // Both bytes are ASCII, so these slices fall on char boundaries.
            return Ok((&line[start..special], special + 1, escaped));
        }
        escaped = true;
        let next = line[special + 1..].chars().next();
        if !matches!(next, Some('\\' | '"' | 'n')) {
            let seq = next.map_or_else(|| "\\".to_owned(), |c| format!("\\{c}"));
            return Err(err(
                no,
                format!(
                    "invalid escape sequence {} in the value of label {label} in {metric}: \
                     expected \\\\, \\\" or \\n",
                    quote(&seq)
                ),
            ));
        }
        run = special + 2;
    }
}

/// The value of a label from its raw text, whose escape sequences
/// [`parse_label_value`] checked.
pub(super) fn unescape_label_value(raw: &str) -> Cow<'_, str> {
    if memchr(b'\\', raw.as_bytes()).is_none() {
        return Cow::Borrowed(raw);
    }
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        value.push(match c {
            '\\' => match chars.next() {
                Some('n') => '\n',
                Some(other) => other,
                None => '\\',
            },
            c => c,
        });
    }
    Cow::Owned(value)
}

/// Unescapes HELP text, which knows only `\\` and `\n`.
pub(super) fn unescape_help(no: usize, family: &str, text: &str) -> Result<String, ParseError> {
    let bytes = text.as_bytes();
    let mut help = String::with_capacity(text.len());
    let mut run = 0;
    while let Some(i) = memchr(b'\\', &bytes[run..]) {
        let special = run + i;
        help.push_str(&text[run..special]);
        let escaped = text[special + 1..].chars().next();
        help.push(match escaped {
            Some('\\') => '\\',
            Some('n') => '\n',
            _ => {
                let seq = escaped.map_or_else(|| "\\".to_owned(), |c| format!("\\{c}"));
                return Err(err(
                    no,
                    format!(
                        "invalid escape sequence {} in HELP text for {family}: \
                         expected \\\\ or \\n",
                        quote(&seq)
                    ),
                ));
            }
        });
        run = special + 2;
    }
    help.push_str(&text[run..]);
    Ok(help)
}

/// Parses a value as Go's `strconv.ParseFloat` does for decimal input: an optional sign,
/// digits with an optional point and exponent, or `Inf`/`Infinity` (optionally signed)
/// and `NaN` in any case. Hex floats and out-of-range numbers are rejected.
///
/// Returns the value and its canonical text; on failure, the found-text for the error.
/// Without `need_value`, the value returned for a finite number is 0 when knowing that
/// it is finite needed no conversion (a plain decimal without exponent, of fewer than
/// 300 characters, is always finite).
pub(super) fn parse_float(tok: &str, need_value: bool) -> Result<(f64, &str), String> {
    let unsigned = tok.strip_prefix(['+', '-']).unwrap_or(tok);
    let negative = tok.starts_with('-');
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Ok(if negative {
            (f64::NEG_INFINITY, "-Inf")
        } else {
            (f64::INFINITY, "+Inf")
        });
    }
    // Go accepts NaN only without a sign.
    if tok.eq_ignore_ascii_case("nan") {
        return Ok((f64::NAN, "NaN"));
    }
    if !is_decimal_float(unsigned) {
        return Err(found(tok));
    }
    if !need_value && tok.len() < 300 && !tok.contains(['e', 'E']) {
        return Ok((0.0, tok));
    }
    match tok.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok((v, tok)),
        _ => Err(format!("{} (out of range)", found(tok))),
    }
}

/// `digits [. digits] [e [sign] digits]` with at least one mantissa digit, or
/// `. digits [...]`.
pub(in crate::exposition) fn is_decimal_float(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |from: usize| {
        b[from..]
            .iter()
            .position(|c| !c.is_ascii_digit())
            .map_or(b.len(), |i| from + i)
    };
    let int_end = digits(0);
    let mut pos = int_end;
    let mut mantissa_digits = int_end;
    if b.get(pos) == Some(&b'.') {
        let frac_end = digits(pos + 1);
        mantissa_digits += frac_end - (pos + 1);
        pos = frac_end;
    }
    if mantissa_digits == 0 {
        return false;
    }
    if matches!(b.get(pos), Some(b'e' | b'E')) {
        pos += 1;
        if matches!(b.get(pos), Some(b'+' | b'-')) {
            pos += 1;
        }
        let exp_end = digits(pos);
        if exp_end == pos {
            return false;
        }
        pos = exp_end;
    }
    pos == b.len()
}

pub(super) fn err(line: usize, message: String) -> ParseError {
    ParseError {
        line,
        message,
        kind: super::ParseErrorKind::Invalid,
    }
}

/// The found-text of an error: quoted and cut to [`MAX_FOUND_CHARS`], or `end of line`.
pub(super) fn found(s: &str) -> String {
    if s.is_empty() {
        "end of line".to_owned()
    } else {
        quote(s)
    }
}

pub(super) fn quote(s: &str) -> String {
    format!("'{}'", truncate(s, MAX_FOUND_CHARS))
}

pub(super) fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

pub(super) fn skip_blanks(s: &str) -> &str {
    s.trim_start_matches([' ', '\t'])
}

pub(super) fn skip_blanks_at(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    pos
}

/// Splits off the token up to the first blank; the rest starts with that blank.
pub(super) fn split_token(s: &str) -> (&str, &str) {
    let end = s
        .as_bytes()
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(s.len());
    s.split_at(end)
}
