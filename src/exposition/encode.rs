//! Encoding to the text exposition format 0.0.4, and series identity.
//!
//! Everything appends to a caller-owned `Vec<u8>` so that a scrape can render all
//! sources into one buffer without intermediate strings.

use std::io::Write as _;

use memchr::{memchr2, memchr3};
use xxhash_rust::xxh3::xxh3_64;

use super::{Exposition, MetricType, Sample};

/// Appends `v` escaped for use inside a double-quoted label value:
/// `\` becomes `\\`, `"` becomes `\"` and a newline becomes `\n`.
pub fn escape_label_value(out: &mut Vec<u8>, v: &str) {
    let mut rest = v.as_bytes();
    // Most values need no escaping at all: copy whole runs between special bytes.
    while let Some(i) = memchr3(b'\\', b'"', b'\n', rest) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(match rest[i] {
            b'\\' => b"\\\\",
            b'"' => b"\\\"",
            _ => b"\\n",
        });
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// Appends `v` escaped for use as HELP text: `\` becomes `\\` and a newline becomes `\n`.
/// Quotes stay as they are, as the format specifies for HELP.
pub fn escape_help(out: &mut Vec<u8>, v: &str) {
    let mut rest = v.as_bytes();
    while let Some(i) = memchr2(b'\\', b'\n', rest) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(if rest[i] == b'\\' { b"\\\\" } else { b"\\n" });
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// Appends `# HELP name text\n` (only when `help` is `Some`) and then `# TYPE name type\n`
/// (always, also for untyped, so that every family in our output is explicitly typed).
pub fn encode_header(out: &mut Vec<u8>, name: &str, help: Option<&str>, typ: MetricType) {
    if let Some(help) = help {
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        escape_help(out, help);
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(typ.as_str().as_bytes());
    out.push(b'\n');
}

/// Appends one sample line: `name{l1="v1",l2="v2"} value_text[ timestamp]\n`, without
/// braces when there are no labels.
///
/// `extra` labels come first and replace any same-named label of the sample; this is how
/// a source label such as `app="x"` is injected without ever producing a duplicate label.
/// When `value_text` is empty (a sample built by hand) the value is formatted with
/// [`format_value`].
pub fn encode_sample(out: &mut Vec<u8>, s: &Sample, extra: &[(&str, &str)]) {
    out.extend_from_slice(s.name.as_bytes());
    let mut open = false;
    let mut label = |out: &mut Vec<u8>, name: &str, value: &str| {
        out.push(if open { b',' } else { b'{' });
        open = true;
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_label_value(out, value);
        out.push(b'"');
    };
    for &(name, value) in extra {
        label(out, name, value);
    }
    for (name, value) in &s.labels {
        if !extra.iter().any(|&(n, _)| n == name) {
            label(out, name, value);
        }
    }
    if open {
        out.push(b'}');
    }
    out.push(b' ');
    if s.value_text.is_empty() {
        out.extend_from_slice(format_value(s.value).as_bytes());
    } else {
        out.extend_from_slice(s.value_text.as_bytes());
    }
    if let Some(ts) = s.timestamp {
        write!(out, " {ts}").expect("writing to a Vec<u8> cannot fail");
    }
    out.push(b'\n');
}

/// The canonical exposition text of a value: `+Inf`, `-Inf`, `NaN`, or the shortest
/// decimal that parses back to exactly `v` (e.g. `1.0`, `0.5`, `1e300`).
///
/// Use it for [`Sample::value_text`] when building samples by hand.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        // `Debug` is the shortest round-tripping form and switches to exponent notation
        // for very large or small magnitudes, where `Display` would print hundreds of
        // digits. It writes integers as `1.0`, which Prometheus parses the same.
        format!("{v:?}")
    }
}

/// The identity of a series for duplicate detection: a 64-bit hash of the sample name
/// and its label set sorted by label name, so label order does not matter. `extra`
/// labels are applied first, exactly as [`encode_sample`] applies them.
pub fn series_key(s: &Sample, extra: &[(&str, &str)]) -> u64 {
    // Merging happens for every sample of every scrape, so avoid the heap for the
    // usual handful of labels.
    const INLINE: usize = 16;
    let merged = extra.iter().copied().chain(
        s.labels
            .iter()
            .filter(|(name, _)| !extra.iter().any(|&(n, _)| n == name))
            .map(|(n, v)| (n.as_str(), v.as_str())),
    );
    if extra.len() + s.labels.len() <= INLINE {
        let mut inline = [("", ""); INLINE];
        let mut len = 0;
        for (slot, label) in inline.iter_mut().zip(merged) {
            *slot = label;
            len += 1;
        }
        let labels = &mut inline[..len];
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        hash_sorted(&mut Vec::new(), &s.name, labels.iter().copied())
    } else {
        let mut labels: Vec<(&str, &str)> = merged.collect();
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        hash_sorted(&mut Vec::new(), &s.name, labels.iter().copied())
    }
}

/// [`series_key`] without extra labels, reusing the caller's scratch buffers so the
/// parser hashes every sample without allocating. Returns the same value as
/// `series_key(s, &[])`.
pub(super) fn series_hash(
    buf: &mut Vec<u8>,
    order: &mut Vec<usize>,
    name: &str,
    labels: &[(String, String)],
) -> u64 {
    fn pair((n, v): &(String, String)) -> (&str, &str) {
        (n, v)
    }
    // Clients usually emit labels already sorted (the Python client always does), so
    // only sort an index when needed.
    if labels.windows(2).all(|w| w[0].0 <= w[1].0) {
        hash_sorted(buf, name, labels.iter().map(pair))
    } else {
        order.clear();
        order.extend(0..labels.len());
        order.sort_unstable_by(|&a, &b| labels[a].0.cmp(&labels[b].0));
        hash_sorted(buf, name, order.iter().map(|&i| pair(&labels[i])))
    }
}

/// Hashes a name and labels already sorted by name.
///
/// The hashed bytes are the name, then per label 0xFF, name, 0xFE, value. Those two
/// bytes never occur in UTF-8, so this is an unambiguous encoding of the series. Short
/// series (nearly all) are laid out on the stack; longer ones in `buf`.
pub(super) fn hash_sorted<'a, I>(buf: &mut Vec<u8>, name: &str, labels: I) -> u64
where
    I: Iterator<Item = (&'a str, &'a str)> + Clone,
{
    const STACK_BYTES: usize = 256;
    let len = name.len()
        + labels
            .clone()
            .map(|(n, v)| 2 + n.len() + v.len())
            .sum::<usize>();
    if len <= STACK_BYTES {
        let mut stack = [0u8; STACK_BYTES];
        fill_series(&mut stack[..len], name, labels);
        xxh3_64(&stack[..len])
    } else {
        buf.clear();
        buf.resize(len, 0);
        fill_series(buf, name, labels);
        xxh3_64(buf)
    }
}

/// Writes the bytes [`hash_sorted`] hashes into `out`, which has exactly their length.
fn fill_series<'a>(out: &mut [u8], name: &str, labels: impl Iterator<Item = (&'a str, &'a str)>) {
    let mut pos = 0;
    let mut put = |bytes: &[u8]| {
        out[pos..pos + bytes.len()].copy_from_slice(bytes);
        pos += bytes.len();
    };
    put(name.as_bytes());
    for (n, v) in labels {
        put(&[0xFF]);
        put(n.as_bytes());
        put(&[0xFE]);
        put(v.as_bytes());
    }
}

/// Encodes a whole exposition: for each family its header, then its samples.
pub fn encode(exp: &Exposition) -> String {
    let mut out = Vec::new();
    for family in &exp.families {
        encode_header(&mut out, &family.name, family.help.as_deref(), family.typ);
        for sample in &family.samples {
            encode_sample(&mut out, sample, &[]);
        }
    }
    String::from_utf8(out).expect("the encoder only writes UTF-8 strings and ASCII")
}

/// Formats a float as Go's `strconv.FormatFloat(v, 'g', -1, 64)` does: the
/// shortest representation that reads back exactly, in exponent form when
/// the decimal exponent is below -4 or at least 6 (`1e+06`, `1e-05`), and
/// `+Inf`, `-Inf`, `NaN` for the special values.
///
/// Prometheus' Go tooling (the Pushgateway, and Prometheus itself when it
/// normalises classic histograms) prints `le` and `quantile` values this
/// way, so `le="1.0"` from a Python client and `le="1"` from a Go client
/// denote the same bucket; we emit the Go form for both.
pub fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("LowerExp has an exponent");
    let exp: i32 = exp.parse().expect("LowerExp exponent is an integer");
    if (-4..6).contains(&exp) {
        format!("{v}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}
