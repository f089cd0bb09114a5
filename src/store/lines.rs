//! Reading the lines of a stored block as the store wrote them
//! ([`exposition::encode_sample`]), without parsing the block again: whether
//! they are OpenMetrics as they are, and their metrics for the protobuf body.

use std::collections::{HashMap, HashSet};

use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use super::FamilyBlock;
use crate::exposition::proto::{LabelPair, Metric};
use crate::exposition::{self, protobuf, MetricType};

/// Whether a text block's lines are valid OpenMetrics lines as they are
/// (the usual case, which then costs no memory): no timestamps (seconds in
/// OpenMetrics), and each histogram's or summary's series contiguous, a
/// histogram's buckets first, in increasing order, up to `+Inf`. Read from
/// the lines as [`exposition::encode_sample`] wrote them, without parsing
/// the block again (the parse was a fifth of the proxy's CPU under a
/// steady push load); a stored block never holds a series twice (the
/// store refuses duplicates).
pub(super) fn text_is_openmetrics(b: &FamilyBlock) -> bool {
    let histogram = match b.typ {
        MetricType::Histogram => true,
        MetricType::Summary => false,
        _ => return !lines_have_timestamps(&b.body.text()),
    };
    let skip = protobuf::group_bound_label(b.typ).as_bytes();
    let mut seen: HashSet<Vec<Label<'_>>, Xxh3DefaultBuilder> = HashSet::default();
    let mut current: Option<Vec<(&[u8], &[u8])>> = None;
    let (mut in_buckets, mut last, mut inf) = (true, f64::NEG_INFINITY, false);
    // Buffers reused from line to line (two allocations a line were most
    // of this scan's time).
    let (mut labels, mut key) = (Vec::new(), Vec::new());
    let text = b.body.text();
    for line in lines(&text) {
        let Some(sample) = EncodedLine::read(line, std::mem::take(&mut labels)) else {
            return false;
        };
        if sample.timestamp {
            return false;
        }
        key.clear();
        key.extend(sample.labels.iter().copied().filter(|(k, _)| *k != skip));
        key.sort_unstable();
        if current.as_ref() != Some(&key) {
            if histogram && current.is_some() && !inf {
                return false;
            }
            if !seen.insert(key.clone()) {
                return false;
            }
            // The new key becomes current; the old one's buffer is reused.
            if let Some(mut old) = current.replace(std::mem::take(&mut key)) {
                old.clear();
                key = old;
            }
            (in_buckets, last, inf) = (true, f64::NEG_INFINITY, false);
        }
        if !histogram {
            continue;
        }
        match sample.name.strip_prefix(b.name.as_bytes()) {
            Some(b"_bucket") => {
                let le = sample
                    .labels
                    .iter()
                    .find(|(k, _)| *k == skip)
                    .and_then(|(_, v)| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse::<f64>().ok());
                match le {
                    Some(le) if in_buckets && le > last => {
                        last = le;
                        inf |= le == f64::INFINITY;
                    }
                    _ => return false,
                }
            }
            Some(b"_sum" | b"_count") if inf => in_buckets = false,
            _ => return false,
        }
        labels = sample.labels;
    }
    !histogram || current.is_none() || inf
}

/// The non-empty lines of `body` (found with `memchr`: splitting on a
/// byte compared one at a time was most of [`lines_have_timestamps`]).
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', body)
        .chain(std::iter::once(body.len()))
        .filter_map(move |end| {
            let line = body.get(start..end)?;
            start = end + 1;
            (!line.is_empty()).then_some(line)
        })
}

/// A sample line as [`exposition::encode_sample`] writes it: the name,
/// the labels (values still escaped), and whether a timestamp follows the
/// value.
struct EncodedLine<'a> {
    name: &'a [u8],
    labels: Vec<(&'a [u8], &'a [u8])>,
    timestamp: bool,
    /// What follows the series: ` value` or ` value timestamp`.
    tail: &'a [u8],
}

impl<'a> EncodedLine<'a> {
    /// Reads `line`, its labels into `labels` (emptied first: a buffer
    /// handed back from the line before).
    fn read(line: &'a [u8], mut labels: Vec<(&'a [u8], &'a [u8])>) -> Option<EncodedLine<'a>> {
        let name_end = line.iter().position(|&c| c == b'{' || c == b' ')?;
        let name = &line[..name_end];
        labels.clear();
        let mut at = name_end;
        if line[at] == b'{' {
            at += 1;
            loop {
                let eq = at + line[at..].iter().position(|&c| c == b'=')?;
                let label = &line[at..eq];
                if line.get(eq + 1) != Some(&b'"') {
                    return None;
                }
                let start = eq + 2;
                let mut end = start;
                loop {
                    match line.get(end)? {
                        b'\\' => end += 2,
                        b'"' => break,
                        _ => end += 1,
                    }
                }
                labels.push((label, line.get(start..end)?));
                match line.get(end + 1)? {
                    b',' => at = end + 2,
                    b'}' => {
                        at = end + 2;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        // ` value` or ` value timestamp` after the series.
        let rest = line.get(at..)?;
        let timestamp = rest.iter().filter(|&&c| c == b' ').count() > 1;
        Some(EncodedLine {
            name,
            labels,
            timestamp,
            tail: rest,
        })
    }
}

impl<'a> EncodedLine<'a> {
    /// The value and the timestamp after the series, as [`exposition::parse`]
    /// reads them; None unless the tail is the encoder's (single blanks).
    fn value_and_timestamp(&self) -> Option<(f64, Option<i64>)> {
        let rest = std::str::from_utf8(self.tail.strip_prefix(b" ")?).ok()?;
        let (value, timestamp) = match rest.split_once(' ') {
            Some((value, ts)) => (value, Some(ts.parse::<i64>().ok()?)),
            None => (rest, None),
        };
        Some((exposition::sample_value(value)?, timestamp))
    }

    /// The labels as protobuf pairs, sorted by name, without `skip`.
    fn pairs(&self, skip: &[u8]) -> Option<Vec<LabelPair>> {
        let mut pairs = Vec::with_capacity(self.labels.len());
        for &(name, value) in &self.labels {
            if name != skip {
                pairs.push(LabelPair {
                    name: Some(std::str::from_utf8(name).ok()?.to_owned()),
                    value: Some(label_value(value)?.into_owned()),
                });
            }
        }
        pairs.sort_by(|a, b| a.name.cmp(&b.name));
        Some(pairs)
    }
}

/// A label as read from a line: its name and its value, still escaped.
type Label<'a> = (&'a [u8], &'a [u8]);

/// A label's value from its escaped bytes in a line.
fn label_value(raw: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    Some(exposition::label_value(std::str::from_utf8(raw).ok()?))
}

/// A block's metrics read straight from its lines as the store wrote them
/// ([`exposition::encode_sample`]): the metrics
/// [`protobuf::text_metrics`] makes of a parse of the block's text, without
/// that parse (which, with the regrouping, allocated several strings a
/// line and was a twelfth of the proxy's CPU under a steady push load:
/// every pushed block is read again for the protobuf body). None when a
/// line is not in the encoder's form; the caller parses then.
pub(super) fn metrics_from_lines(b: &FamilyBlock) -> Option<Vec<Metric>> {
    let text = b.body.text();
    let grouped = matches!(b.typ, MetricType::Histogram | MetricType::Summary);
    let skip = protobuf::group_bound_label(b.typ).as_bytes();
    let mut metrics = Vec::new();
    let mut counts: Vec<Option<f64>> = Vec::new();
    // A histogram's or summary's series by their labels but `skip`
    // (sorted; escaped as written, which the encoder makes one text per
    // value), with where the series' metric is.
    let mut index: HashMap<Vec<Label<'_>>, usize, Xxh3DefaultBuilder> = HashMap::default();
    let (mut labels, mut key) = (Vec::new(), Vec::new());
    for line in lines(&text) {
        let sample = EncodedLine::read(line, std::mem::take(&mut labels))?;
        let (value, timestamp) = sample.value_and_timestamp()?;
        if !grouped {
            metrics.push(protobuf::scalar_metric(
                b.typ,
                sample.pairs(b"")?,
                value,
                timestamp,
            ));
            labels = sample.labels;
            continue;
        }
        key.clear();
        key.extend(sample.labels.iter().copied().filter(|(k, _)| *k != skip));
        key.sort_unstable();
        let i = match index.get(&key) {
            Some(&i) => i,
            None => {
                metrics.push(protobuf::grouped_metric(
                    b.typ,
                    sample.pairs(skip)?,
                    timestamp,
                ));
                counts.push(None);
                index.insert(key.clone(), metrics.len() - 1);
                metrics.len() - 1
            }
        };
        let bound = || {
            let (_, v) = sample.labels.iter().find(|(k, _)| *k == skip)?;
            label_value(v)?.parse::<f64>().ok()
        };
        let suffix = sample
            .name
            .strip_prefix(b.name.as_bytes())
            .unwrap_or_default();
        let suffix = std::str::from_utf8(suffix).ok()?;
        protobuf::add_grouped(&mut metrics[i], &mut counts[i], suffix, bound, value);
        labels = sample.labels;
    }
    protobuf::finish_grouped(&mut metrics, counts);
    Some(metrics)
}

/// Whether any of the sample lines, as [`exposition::encode_sample`]
/// writes them, ends with a timestamp: `series value timestamp`. The
/// series ends at the last `}` of the line when it has labels (neither a
/// value nor a timestamp holds one), else at its first blank.
pub(super) fn lines_have_timestamps(body: &[u8]) -> bool {
    lines(body).any(|line| {
        let after_series = match memchr::memrchr(b'}', line) {
            Some(end) => &line[end + 1..],
            None => memchr::memchr(b' ', line).map_or(&[][..], |at| &line[at..]),
        };
        // ` value` or ` value timestamp`.
        after_series.iter().filter(|&&c| c == b' ').count() > 1
    })
}
