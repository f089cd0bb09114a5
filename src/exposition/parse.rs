//! Parsing and validation of the text exposition format 0.0.4.
//!
//! The rules follow Go's `expfmt.TextParser`, which promtool, Prometheus and the
//! Pushgateway use, so anything accepted here is accepted downstream once re-encoded.
//! Where this parser differs it is stricter (derived-name collisions, duplicate series)
//! or more forgiving about transport details (CRLF line endings, a missing final
//! newline, trailing blanks). What Go accepts is accepted: `__` label names other than
//! `__name__`, TYPE keywords in any case, empty HELP and TYPE lines (which set
//! nothing), HELP for a derived name of a histogram or summary. Histogram and summary
//! samples that Go silently ignores (a bucket without `le`, a summary sample without
//! `quantile`) are dropped and counted in [`Exposition::dropped`]; a histogram sample
//! named like its family with an `le` label, which Go reads as a bucket, becomes one.
//!
//! The input is scanned once, line by line with `memchr`; family names are looked up as
//! slices of the input, so only the data that ends up in the [`Exposition`] is copied.
//!
//! The same scanner drives two outputs: [`parse()`] builds owned [`Sample`]s, for callers
//! that inspect values; [`parse_encoded`] is the push path and writes each sample line
//! straight into its family's encoded block, hashing its series on the way, without a
//! string per name, label or value. Both share every check, so they accept the same input
//! with the same errors; the push path hands the few inputs it does not handle (escapes
//! in label values, repeated series) to [`parse()`].

mod lex;
pub(super) use lex::is_decimal_float;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::ops::Range;

use bytes::Bytes;
use memchr::memchr;

use lex::{
    err, found, parse_float, parse_labels, quote, skip_blanks, skip_blanks_at, split_token,
    truncate, unescape_help, unescape_label_value,
};

use super::encode::{escape_label_value, format_go_float, hash_sorted, series_hash};
use super::DropReason;
use super::{
    is_metric_name_char, is_metric_name_start, is_valid_metric_name, AltEncodings, EncodeOptions,
    EncodedFamily, Exposition, Family, MetricType, ParseError, ParseErrorKind, ParseLimits, Sample,
    SeriesKeyHasher,
};

/// Sample names remembered by the parser beside the last one: a histogram's
/// `_bucket`, `_sum` and `_count`, and one more.
const RECENT_NAMES: usize = 4;

/// A series is named in a duplicate-series error up to this many characters.
const MAX_SERIES_CHARS: usize = 120;

/// A sample's value as [`parse`] reads it (Go's `strconv.ParseFloat` on
/// decimals, `Inf` and `NaN`), or None when `tok` is not one.
pub fn sample_value(tok: &str) -> Option<f64> {
    parse_float(tok, true).ok().map(|(v, _)| v)
}

/// A label's value from its text between the quotes of a line [`parse`]
/// accepted (escape sequences undone).
pub fn label_value(raw: &str) -> std::borrow::Cow<'_, str> {
    lex::unescape_label_value(raw)
}

/// Parses and validates a text exposition (format 0.0.4).
///
/// Families come out in order of first appearance (a HELP, TYPE or sample line), each
/// with all of its samples in input order, even when the input interleaved families.
/// The first problem found is returned with its 1-based line number.
pub fn parse(text: &str, limits: &ParseLimits) -> Result<Exposition, ParseError> {
    let mut parser = Parser::new(limits, None);
    match parser.run(text) {
        Ok(()) => {}
        Err(Stop::Invalid(e)) => return Err(e),
        // Only the encoding path falls back, and this parser has no sink.
        Err(Stop::Fallback) => unreachable!("a parser without a sink never falls back"),
    }
    let dropped = std::mem::take(&mut parser.dropped);
    let (families, _) = parser.finish()?;
    Ok(Exposition { families, dropped })
}

/// Parses and validates like [`parse()`], but writes every sample line straight into
/// its family's encoded block, as [`encode_sample`](super::encode_sample) would write
/// it with the options' labels, and computes its [`series_key`](super::series_key) on
/// the way. No [`Sample`] is built: names and label values are copied from the input
/// into the block, never into strings of their own, which makes this the push path's
/// parser.
///
/// Series are unique in the result *after* the options applied (labels set, bounds
/// rewritten). Accepts and refuses exactly what [`parse()`] does, with the same
/// errors, except that it returns `Ok(None)` for input it leaves to [`parse()`]: a
/// label value with an escape sequence, a sample with more than 16 labels, a
/// series that repeats (whose error only the full parser words), or a sample that
/// [`parse()`] drops or renames (see [`DropReason`]).
pub fn parse_encoded(
    text: &str,
    limits: &ParseLimits,
    options: &EncodeOptions<'_>,
) -> Result<Option<Vec<EncodedFamily>>, ParseError> {
    // Sample lines are rarely shorter than this; a low guess costs a regrowth.
    let lines = text.len() / 40 + 1;
    let per_line: usize = options
        .extra
        .iter()
        .chain(options.default)
        .map(|(k, v)| k.len() + v.len() + 4)
        .sum();
    let sink = BlockSink {
        options,
        buf: Vec::with_capacity(text.len() + lines * per_line),
        segments: Vec::new(),
        keys: Vec::new(),
        seen: HashSet::with_capacity_and_hasher(lines, SeriesKeyHasher::default()),
        open: None,
        hash_buf: Vec::new(),
    };
    let mut parser = Parser::new(limits, Some(sink));
    match parser.run(text) {
        Ok(()) => {}
        Err(Stop::Invalid(e)) => return Err(e),
        Err(Stop::Fallback) => return Ok(None),
    }
    let (families, sink) = parser.finish()?;
    Ok(sink.map(|sink| sink.into_families(families)))
}

/// Why a parser stopped before the end of its input.
enum Stop {
    /// The input is invalid.
    Invalid(ParseError),
    /// The encoding path met input it leaves to the full parser.
    Fallback,
}

impl From<ParseError> for Stop {
    fn from(e: ParseError) -> Stop {
        Stop::Invalid(e)
    }
}

/// Bookkeeping for one family that does not belong in the output.
struct Meta {
    /// The line where the family was first seen.
    first_line: usize,
    /// The line of its TYPE line if any, else `first_line`: where its reserved names
    /// were decided, so where a collision involving it becomes visible.
    decl_line: usize,
    /// Whether a TYPE line was seen; an implicit untyped family may still get one.
    typed: bool,
    /// Number of samples accepted into the family so far.
    samples: usize,
}

/// Where an already accepted series lives, to detect and report duplicates.
#[derive(Clone, Copy)]
struct SeenSeries {
    family: usize,
    sample: usize,
    line: usize,
}

/// Most labels a sample line may have (options' labels included) on the encoding
/// path; beyond that it falls back to the full parser.
const MAX_ENCODED_LABELS: usize = 16;

/// Where [`parse_encoded`] writes sample lines.
///
/// All lines go into one buffer, as a run per family: input that keeps each family's
/// samples together (nearly all input) gives one run per family, and each family's
/// block is then a slice of the one buffer, shared rather than copied.
struct BlockSink<'o> {
    options: &'o EncodeOptions<'o>,
    buf: Vec<u8>,
    /// Per family: the ranges of `buf` holding its lines, in order.
    segments: Vec<Vec<Range<usize>>>,
    /// Per family: the series key of each line.
    keys: Vec<Vec<u64>>,
    /// Every key so far, to find repeated series.
    seen: HashSet<u64, SeriesKeyHasher>,
    /// The family whose last range ends at the end of `buf`.
    open: Option<usize>,
    hash_buf: Vec<u8>,
}

/// One parsed sample line, borrowing the input; its labels are in `Parser::labels`.
struct Line<'a> {
    /// The whole line, without leading blanks and line ending.
    text: &'a str,
    name: &'a str,
    /// Whether a label value has an escape sequence (its raw text differs from its
    /// value).
    escaped: bool,
    value: f64,
    value_text: &'a str,
    timestamp: Option<i64>,
    /// The text between the braces when it is exactly what the encoder writes for
    /// the sample's labels (`a="1",b="2"`: no blanks, no trailing comma).
    labels_text: Option<&'a str>,
    /// The text after the name and labels when it is exactly what the encoder
    /// writes for the value and timestamp (` 1.5` or ` 1.5 1700000000000`).
    tail: Option<&'a str>,
}

struct Parser<'a, 'l> {
    limits: &'l ParseLimits,
    families: Vec<Family>,
    meta: Vec<Meta>,
    /// Family index by exact name; keys borrow the input so lookups never allocate.
    by_name: HashMap<&'a str, usize>,
    /// The last sample name and its family: consecutive samples usually share a family,
    /// and this skips the name lookup for them. Cleared by HELP/TYPE lines, which can
    /// change how a name resolves.
    last: Option<(&'a str, usize)>,
    /// The last few sample names that needed a lookup, and their families: a
    /// histogram's lines cycle through `_bucket`, `_sum` and `_count`, and
    /// each change of name would otherwise hash it (twice for a derived
    /// name). Cleared with `last`.
    recent: [Option<(&'a str, usize)>; RECENT_NAMES],
    recent_next: usize,
    /// Series by `series_hash`. The map folds a per-map random seed into the keys
    /// ([`super::SeriesKeyHasher`], as the encoding path's set does) so that crafted
    /// input cannot force hash-table collisions, without running SipHash over keys
    /// that are hashes already (a tenth of a conversion's parse).
    seen: HashMap<u64, SeenSeries, super::SeriesKeyHasher>,
    /// Series whose 64-bit hash equals that of a different series in `seen`. Practically
    /// never used, but it keeps duplicate detection exact.
    hash_collisions: Vec<(u64, SeenSeries)>,
    series: usize,
    hash_buf: Vec<u8>,
    hash_order: Vec<usize>,
    /// Names and raw (still escaped) values of the labels of the sample line at hand;
    /// kept between lines to reuse the allocation.
    labels: Vec<(&'a str, &'a str)>,
    /// Set by [`parse_encoded`]: samples are encoded here instead of collected.
    sink: Option<BlockSink<'l>>,
    /// Samples dropped, by reason.
    dropped: BTreeMap<DropReason, u64>,
}

impl<'a, 'l> Parser<'a, 'l> {
    fn new(limits: &'l ParseLimits, sink: Option<BlockSink<'l>>) -> Parser<'a, 'l> {
        Parser {
            limits,
            families: Vec::new(),
            meta: Vec::new(),
            by_name: HashMap::new(),
            last: None,
            recent: [None; RECENT_NAMES],
            recent_next: 0,
            seen: HashMap::default(),
            hash_collisions: Vec::new(),
            series: 0,
            hash_buf: Vec::new(),
            hash_order: Vec::new(),
            labels: Vec::new(),
            sink,
            dropped: BTreeMap::new(),
        }
    }

    /// Feeds every line of `text`.
    fn run(&mut self, text: &'a str) -> Result<(), Stop> {
        let mut start = 0;
        let mut line_no = 0;
        while start < text.len() {
            let end = memchr(b'\n', &text.as_bytes()[start..]).map_or(text.len(), |i| start + i);
            line_no += 1;
            // '\n' is ASCII, so `start` and `end` are char boundaries.
            self.line(line_no, &text[start..end])?;
            start = end + 1;
        }
        Ok(())
    }

    /// Handles one line, given without its `\n`.
    fn line(&mut self, no: usize, raw: &'a str) -> Result<(), Stop> {
        if self.limits.max_line_bytes != 0 && raw.len() > self.limits.max_line_bytes {
            return Err(err(
                no,
                format!(
                    "line is {} bytes long: expected at most {} bytes",
                    raw.len(),
                    self.limits.max_line_bytes
                ),
            )
            .into());
        }
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line = skip_blanks(line);
        match line.as_bytes().first() {
            None => Ok(()),
            Some(b'#') => Ok(self.comment(no, &line[1..])?),
            Some(_) => self.sample(no, line),
        }
    }

    /// Handles the text after a `#`: HELP and TYPE lines; everything else is a comment.
    fn comment(&mut self, no: usize, rest: &'a str) -> Result<(), ParseError> {
        let (keyword, rest) = split_token(skip_blanks(rest));
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(());
        }
        let rest = skip_blanks(rest);
        if rest.is_empty() {
            // `# HELP` with nothing after it names no family; Go's parser also reads
            // it as a plain comment.
            return Ok(());
        }
        let (name, rest) = split_token(rest);
        if !is_valid_metric_name(name) {
            return Err(err(
                no,
                format!(
                    "invalid metric name {} in {keyword} line: expected [a-zA-Z_:][a-zA-Z0-9_:]*",
                    quote(name)
                ),
            ));
        }
        let mut rest = skip_blanks(rest);
        if keyword == "HELP" {
            // The text format has no escape for a carriage return, and a raw one at the
            // end of the text would be read back as part of a CRLF line ending: drop
            // such debris (`\r\r\n` from line endings converted twice) so that the
            // text we store is the text our output says.
            rest = rest.trim_end_matches('\r');
        }
        if rest.is_empty() {
            // An empty HELP or a TYPE without a type: Go's parser sets nothing, so a
            // later HELP or TYPE line for the family is its first.
            return Ok(());
        }
        // A declaration may change how later sample names resolve.
        self.last = None;
        self.recent = [None; RECENT_NAMES];
        // Like Go's parser, a HELP or TYPE line for a derived name of a declared
        // histogram or summary (`foo_bucket`, `foo_sum`) is about that family.
        let index = match self.by_name.get(name) {
            Some(&index) => index,
            None => match self.derived_family(name) {
                Some(index) => index,
                None => self.family_index(no, name),
            },
        };
        let given = name;
        let name = self.families[index].name.clone();
        let as_given = if given == name {
            String::new()
        } else {
            format!(" (as {given})")
        };
        if keyword == "HELP" {
            let family = &mut self.families[index];
            if family.help.is_some() {
                return Err(err(
                    no,
                    format!("second HELP line for family {name}{as_given}"),
                ));
            }
            family.help = Some(unescape_help(no, &name, rest)?);
        } else {
            // Go compares the keyword in upper case: `Counter` and `COUNTER` are
            // counters. Trailing blanks, which Go refuses, are ignored.
            let typ_text = rest.trim_end_matches([' ', '\t']);
            let typ =
                MetricType::from_keyword(&typ_text.to_ascii_lowercase()).ok_or_else(|| {
                    err(
                        no,
                        format!(
                            "invalid type {} for family {name}: \
                         expected counter, gauge, histogram, summary or untyped",
                            quote(typ_text)
                        ),
                    )
                })?;
            let (family, meta) = (&mut self.families[index], &mut self.meta[index]);
            if meta.typed {
                return Err(err(
                    no,
                    format!("second TYPE line for family {name}{as_given}"),
                ));
            }
            if meta.samples != 0 {
                return Err(err(
                    no,
                    format!(
                        "TYPE for {name} after its samples (first on line {}): \
                         expected TYPE before the family's first sample",
                        meta.first_line
                    ),
                ));
            }
            family.typ = typ;
            meta.typed = true;
            meta.decl_line = no;
        }
        Ok(())
    }

    /// The index of the family named exactly `name`, created untyped if new.
    fn family_index(&mut self, no: usize, name: &'a str) -> usize {
        *self.by_name.entry(name).or_insert_with(|| {
            self.families.push(Family {
                name: name.to_owned(),
                help: None,
                typ: MetricType::Untyped,
                samples: Vec::new(),
            });
            self.meta.push(Meta {
                first_line: no,
                decl_line: no,
                typed: false,
                samples: 0,
            });
            self.families.len() - 1
        })
    }

    /// The family a sample named `name` belongs to, from the declarations seen so far:
    /// the family with exactly that name, else the histogram or summary it is a derived
    /// name of, else a new untyped family.
    fn resolve(&mut self, no: usize, name: &'a str) -> usize {
        if let Some((last_name, index)) = self.last {
            if last_name == name {
                return index;
            }
        }
        if let Some((_, index)) = self.recent.iter().flatten().find(|(n, _)| *n == name) {
            let index = *index;
            self.last = Some((name, index));
            return index;
        }
        let index = match self.by_name.get(name) {
            Some(&index) => index,
            None => self.derived_family(name).unwrap_or_else(|| {
                // Count the new family as seen at its first sample.
                self.family_index(no, name)
            }),
        };
        self.last = Some((name, index));
        // Only a HELP or TYPE line changes how a name resolves (a sample
        // creates a family only for a name that resolved to none), and
        // those clear this list.
        self.recent[self.recent_next] = Some((name, index));
        self.recent_next = (self.recent_next + 1) % RECENT_NAMES;
        index
    }

    fn derived_family(&self, name: &str) -> Option<usize> {
        let (base, histogram_only) = if let Some(base) = name.strip_suffix("_bucket") {
            (base, true)
        } else if let Some(base) = name
            .strip_suffix("_sum")
            .or_else(|| name.strip_suffix("_count"))
        {
            (base, false)
        } else {
            return None;
        };
        let &index = self.by_name.get(base)?;
        match self.families[index].typ {
            MetricType::Histogram => Some(index),
            MetricType::Summary if !histogram_only => Some(index),
            _ => None,
        }
    }

    /// Parses a sample line (leading blanks already skipped) and files the sample.
    fn sample(&mut self, no: usize, line: &'a str) -> Result<(), Stop> {
        let mut labels = std::mem::take(&mut self.labels);
        labels.clear();
        let result = self
            .scan_sample(no, line, &mut labels)
            .map_err(Stop::from)
            .and_then(|parsed| self.file_sample(no, parsed, &labels));
        self.labels = labels;
        result
    }

    /// Parses a sample line into `labels` and the returned [`Line`], checking
    /// everything that needs only the line itself.
    fn scan_sample(
        &self,
        no: usize,
        line: &'a str,
        labels: &mut Vec<(&'a str, &'a str)>,
    ) -> Result<Line<'a>, ParseError> {
        let bytes = line.as_bytes();
        // Consecutive samples mostly share their name: the last one is known valid.
        let name_end = match self.last {
            Some((last, _))
                if bytes.starts_with(last.as_bytes())
                    && !bytes
                        .get(last.len())
                        .copied()
                        .is_some_and(is_metric_name_char) =>
            {
                last.len()
            }
            _ => bytes
                .iter()
                .position(|&b| !is_metric_name_char(b))
                .unwrap_or(bytes.len()),
        };
        let name = &line[..name_end];
        let name_ok = !name.is_empty()
            && is_metric_name_start(bytes[0])
            && matches!(bytes.get(name_end), None | Some(b' ' | b'\t' | b'{'));
        if !name_ok {
            let token_end = bytes
                .iter()
                .position(|&b| matches!(b, b' ' | b'\t' | b'{'))
                .unwrap_or(bytes.len());
            let message = if token_end == 0 {
                format!(
                    "missing metric name: expected [a-zA-Z_:][a-zA-Z0-9_:]*, found {}",
                    found(line)
                )
            } else {
                format!(
                    "invalid metric name {}: expected [a-zA-Z_:][a-zA-Z0-9_:]*",
                    found(&line[..token_end])
                )
            };
            return Err(err(no, message));
        }

        let mut pos = skip_blanks_at(bytes, name_end);
        let mut escaped = false;
        let mut labels_text = None;
        if bytes.get(pos) == Some(&b'{') {
            let open = pos;
            // Like Go's parser, allow the value to follow `}` without a blank.
            (pos, escaped) = parse_labels(no, line, pos + 1, name, labels)?;
            // The shortest text of these labels is the encoder's, and the only
            // text of that length.
            let shortest = labels
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>()
                .saturating_sub(1);
            if open == name_end && !labels.is_empty() && pos - open - 2 == shortest {
                labels_text = Some(&line[open + 1..pos - 1]);
            }
        }
        let tail_start = pos;
        pos = skip_blanks_at(bytes, pos);
        let single_blank = pos == tail_start + 1 && bytes[tail_start] == b' ';

        let (value_tok, after_value) = split_token(&line[pos..]);
        if value_tok.is_empty() {
            return Err(err(
                no,
                format!("missing value for {name}: expected a float value, found end of line"),
            ));
        }
        let (value, value_text) = parse_float(value_tok, self.sink.is_none()).map_err(|why| {
            err(
                no,
                format!("invalid value for {name}: expected a float value, found {why}"),
            )
        })?;

        let (ts_tok, rest) = split_token(skip_blanks(after_value));
        let timestamp = if ts_tok.is_empty() {
            None
        } else {
            Some(ts_tok.parse::<i64>().map_err(|_| {
                err(
                    no,
                    format!(
                        "invalid timestamp for {name}: expected an integer of milliseconds, \
                         found {}",
                        found(ts_tok)
                    ),
                )
            })?)
        };
        let after = skip_blanks(rest);
        if !after.is_empty() {
            return Err(err(
                no,
                format!(
                    "unexpected text after the timestamp of {name}: expected end of line, found {}",
                    found(after)
                ),
            ));
        }
        // The tail is the encoder's when it has single blanks, nothing after the
        // value or timestamp, the value's canonical text and a timestamp as an
        // integer prints.
        let tail_canonical = single_blank
            && value_text == value_tok
            && match timestamp {
                None => after_value.is_empty(),
                Some(ts) => {
                    after_value.len() == ts_tok.len() + 1
                        && after_value.starts_with(' ')
                        && is_integer_text(ts_tok)
                        && (ts != 0 || ts_tok == "0")
                }
            };
        Ok(Line {
            text: line,
            name,
            escaped,
            value,
            value_text,
            timestamp,
            labels_text,
            tail: tail_canonical.then(|| &line[tail_start..]),
        })
    }

    /// Counts a scanned sample, checks it against its family and files it.
    fn file_sample(
        &mut self,
        no: usize,
        line: Line<'a>,
        labels: &[(&'a str, &'a str)],
    ) -> Result<(), Stop> {
        let name = line.name;
        self.series += 1;
        if self.limits.max_series != 0 && self.series > self.limits.max_series {
            return Err(ParseError {
                line: no,
                message: format!("too many series: more than {}", self.limits.max_series),
                kind: ParseErrorKind::TooManySeries,
            }
            .into());
        }

        let index = self.resolve(no, name);
        let renamed = match check_type(no, &self.families[index], name, labels)? {
            Verdict::Keep => None,
            // The encoding path leaves what it would not write as given to `parse`.
            _ if self.sink.is_some() => return Err(Stop::Fallback),
            Verdict::Rename(to) => Some(to),
            Verdict::Drop(reason) => {
                *self.dropped.entry(reason).or_default() += 1;
                self.meta[index].samples += 1;
                return Ok(());
            }
        };
        if let Some(sink) = &mut self.sink {
            sink.encode(index, &self.families[index], &line, labels)?;
        } else {
            let sample = Sample {
                name: renamed.unwrap_or_else(|| name.to_owned()),
                labels: labels
                    .iter()
                    .map(|&(n, v)| (n.to_owned(), unescape_label_value(v).into_owned()))
                    .collect(),
                value: line.value,
                value_text: line.value_text.to_owned(),
                timestamp: line.timestamp,
            };
            self.check_duplicate(no, index, &sample)?;
            self.families[index].samples.push(sample);
        }
        self.meta[index].samples += 1;
        Ok(())
    }

    /// Records the series of `sample` (about to be pushed to family `index`) and fails
    /// if the same series was already seen.
    fn check_duplicate(
        &mut self,
        no: usize,
        index: usize,
        sample: &Sample,
    ) -> Result<(), ParseError> {
        let key = series_hash(
            &mut self.hash_buf,
            &mut self.hash_order,
            &sample.name,
            &sample.labels,
        );
        let here = SeenSeries {
            family: index,
            sample: self.families[index].samples.len(),
            line: no,
        };
        let first = match self.seen.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(here);
                return Ok(());
            }
            Entry::Occupied(slot) => *slot.get(),
        };
        let families = &self.families;
        let earlier = std::iter::once(first)
            .chain(
                self.hash_collisions
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|&(_, seen)| seen),
            )
            .find(|seen| same_series(&families[seen.family].samples[seen.sample], sample));
        match earlier {
            Some(seen) => Err(err(
                no,
                format!(
                    "duplicate series {} (first on line {}): expected each name and label set once",
                    describe_series(sample),
                    seen.line
                ),
            )),
            None => {
                self.hash_collisions.push((key, here));
                Ok(())
            }
        }
    }

    /// Checks what can only be checked once all declarations are known, and hands out
    /// the result.
    fn finish(self) -> Result<(Vec<Family>, Option<BlockSink<'l>>), ParseError> {
        // Reserved sample name -> the family that reserves it.
        let mut owners: HashMap<String, usize> = HashMap::new();
        for (index, family) in self.families.iter().enumerate() {
            for reserved in family.typ.reserved_names(&family.name) {
                match owners.entry(reserved) {
                    Entry::Vacant(slot) => {
                        slot.insert(index);
                    }
                    Entry::Occupied(slot) => {
                        let other = &self.families[*slot.get()];
                        let line = self.meta[index]
                            .decl_line
                            .max(self.meta[*slot.get()].decl_line);
                        return Err(err(
                            line,
                            format!(
                                "{} family {} and {} family {} both use the sample name {}: \
                                 expected distinct names",
                                other.typ,
                                other.name,
                                family.typ,
                                family.name,
                                slot.key()
                            ),
                        ));
                    }
                }
            }
        }
        Ok((self.families, self.sink))
    }
}

impl BlockSink<'_> {
    /// Writes one sample line into the block of family `index`.
    fn encode(
        &mut self,
        index: usize,
        family: &Family,
        line: &Line<'_>,
        labels: &[(&str, &str)],
    ) -> Result<(), Stop> {
        if line.escaped {
            // Values are written and hashed as they appear in the input, which is
            // only right while the input's text is the value.
            return Err(Stop::Fallback);
        }
        let options = self.options;
        let name = line.name;

        // A bucket bound or quantile rewritten in Go's float format.
        let bound = match family.typ {
            _ if !options.go_float_bounds => None,
            MetricType::Histogram if name.strip_suffix("_bucket") == Some(&family.name) => {
                Some("le")
            }
            MetricType::Summary if name == family.name => Some("quantile"),
            _ => None,
        };
        let mut rewritten = (usize::MAX, String::new());
        if let Some(i) = bound.and_then(|b| labels.iter().position(|(n, _)| *n == b)) {
            let v = labels[i].1;
            if !is_go_float(v) {
                if let Ok(f) = v.parse::<f64>() {
                    rewritten = (i, format_go_float(f));
                }
            }
        }

        // The labels in the order they are written: the options' own first, then
        // the sample's, then the defaults it lacks.
        let mut all = [("", ""); MAX_ENCODED_LABELS];
        let mut n = 0;
        let set = |k: &str| options.extra.iter().any(|&(e, _)| e == k);
        for &label in options.extra {
            put(&mut all, &mut n, label)?;
        }
        let mut own_kept = true;
        for (i, &(k, v)) in labels.iter().enumerate() {
            if set(k) {
                own_kept = false;
            } else {
                let v = if i == rewritten.0 { &rewritten.1 } else { v };
                put(&mut all, &mut n, (k, v))?;
            }
        }
        let own_end = n;
        for (j, &(k, v)) in options.default.iter().enumerate() {
            let present = labels.iter().any(|&(l, _)| l == k)
                || options.default[..j].iter().any(|&(d, _)| d == k);
            if !present && !set(k) {
                put(&mut all, &mut n, (k, v))?;
            }
        }
        let all = &mut all[..n];
        // The sample's labels as the input spelled them, when that is how they
        // are written: one copy instead of one per piece.
        let own_text = line
            .labels_text
            .filter(|_| own_kept && rewritten.0 == usize::MAX);

        if self.segments.len() <= index {
            self.segments.resize_with(index + 1, Vec::new);
            self.keys.resize_with(index + 1, Vec::new);
        }
        let start = self.buf.len();
        if self.open != Some(index) {
            self.segments[index].push(start..start);
            self.open = Some(index);
        }
        let out = &mut self.buf;
        match (own_text, line.tail) {
            // The whole line is already what the encoder writes.
            (Some(_), Some(_)) if n == labels.len() => out.extend_from_slice(line.text.as_bytes()),
            _ => {
                out.extend_from_slice(name.as_bytes());
                let extra_end = options.extra.len();
                let label = |out: &mut Vec<u8>, i: usize, (k, v): (&str, &str)| {
                    out.push(if i == 0 { b'{' } else { b',' });
                    out.extend_from_slice(k.as_bytes());
                    out.extend_from_slice(b"=\"");
                    escape_label_value(out, v);
                    out.push(b'"');
                };
                for (i, &l) in all[..extra_end].iter().enumerate() {
                    label(out, i, l);
                }
                match own_text {
                    Some(own) => {
                        out.push(if extra_end == 0 { b'{' } else { b',' });
                        out.extend_from_slice(own.as_bytes());
                    }
                    None => {
                        for (i, &l) in all[extra_end..own_end].iter().enumerate() {
                            label(out, extra_end + i, l);
                        }
                    }
                }
                for (i, &l) in all[own_end..].iter().enumerate() {
                    label(out, own_end + i, l);
                }
                if !all.is_empty() {
                    out.push(b'}');
                }
                match line.tail {
                    Some(tail) => out.extend_from_slice(tail.as_bytes()),
                    None => {
                        out.push(b' ');
                        out.extend_from_slice(line.value_text.as_bytes());
                        if let Some(ts) = line.timestamp {
                            write!(out, " {ts}").expect("writing to a Vec<u8> cannot fail");
                        }
                    }
                }
            }
        }
        out.push(b'\n');
        let end = out.len();
        if let Some(last) = self.segments[index].last_mut() {
            last.end = end;
        }

        // Label names are short and mostly differ in their first byte: compare
        // that inline before calling out to a full comparison.
        if !all.is_sorted_by(|a, b| by_name(a, b).is_le()) {
            all.sort_unstable_by(by_name);
        }
        let key = hash_sorted(&mut self.hash_buf, name, all.iter().copied());
        if !self.seen.insert(key) {
            // A repeated series, or (practically never) two series with one hash:
            // the full parser tells which, and words the error.
            return Err(Stop::Fallback);
        }
        self.keys[index].push(key);
        Ok(())
    }

    /// Cuts the buffer into one block per family (`families` in order of first
    /// appearance).
    fn into_families(self, families: Vec<Family>) -> Vec<EncodedFamily> {
        let mut buf = self.buf;
        // HELP and TYPE lines are not copied, and the labels' room was a guess.
        if buf.capacity() - buf.len() > buf.len() / 8 {
            buf.shrink_to_fit();
        }
        let all = Bytes::from(buf);
        let mut segments = self.segments.into_iter();
        let mut keys = self.keys.into_iter();
        families
            .into_iter()
            .map(|family| {
                let ranges = segments.next().unwrap_or_default();
                let body = match ranges.as_slice() {
                    [] => Bytes::new(),
                    [one] => all.slice(one.clone()),
                    many => {
                        let mut body = Vec::with_capacity(many.iter().map(|r| r.len()).sum());
                        for r in many {
                            body.extend_from_slice(&all[r.clone()]);
                        }
                        Bytes::from(body)
                    }
                };
                let mut keys = keys.next().unwrap_or_default();
                if keys.capacity() - keys.len() > keys.len() / 8 {
                    keys.shrink_to_fit();
                }
                EncodedFamily {
                    name: family.name,
                    help: family.help,
                    typ: family.typ,
                    body: body.into(),
                    digest: super::key_digest(&keys),
                    keys,
                    rich: None,
                    alt: AltEncodings::default(),
                }
            })
            .collect()
    }
}

/// Orders labels by name.
fn by_name(a: &(&str, &str), b: &(&str, &str)) -> std::cmp::Ordering {
    let first = |s: &str| s.as_bytes().first().copied();
    first(a.0).cmp(&first(b.0)).then_with(|| a.0.cmp(b.0))
}

/// Whether `s` is an integer as Rust and Go print one: an optional `-`, then `0` or
/// digits without a leading zero.
fn is_integer_text(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

/// Appends a label to the `n` labels of `all`, falling back when it is full.
fn put<'s>(
    all: &mut [(&'s str, &'s str)],
    n: &mut usize,
    label: (&'s str, &'s str),
) -> Result<(), Stop> {
    let slot = all.get_mut(*n).ok_or(Stop::Fallback)?;
    *slot = label;
    *n += 1;
    Ok(())
}

/// Whether `v` is already what [`format_go_float`] writes for its value, decided without
/// formatting it: `+Inf`, `-Inf`, `NaN`, or a plain decimal without superfluous zeros,
/// with at most 15 significant digits (so that it is the shortest text of its value)
/// and a decimal exponent in -4..6 (where Go writes no exponent).
pub(super) fn is_go_float(v: &str) -> bool {
    if matches!(v, "+Inf" | "-Inf" | "NaN") {
        return true;
    }
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) {
        return false;
    }
    if let Some(frac) = frac {
        if !all_digits(frac) || frac.ends_with('0') {
            return false;
        }
    }
    match frac {
        _ if int != "0" => {
            !int.starts_with('0') && int.len() <= 6 && int.len() + frac.map_or(0, str::len) <= 15
        }
        None => true,
        Some(frac) => {
            let zeros = frac.len() - frac.trim_start_matches('0').len();
            zeros <= 3 && frac.len() - zeros <= 15
        }
    }
}

/// What becomes of a sample in its family.
enum Verdict {
    /// Kept as it is.
    Keep,
    /// Kept under another name: a histogram sample named like its family with an
    /// `le` label, which Go's parser reads as a bucket, becomes `foo_bucket`.
    Rename(String),
    /// Dropped for the reason given (a [`DropReason`]), as Go's parser drops it: a
    /// bucket without `le`, a summary quantile without `quantile`.
    Drop(DropReason),
}

/// Checks that a sample fits the type of the family it resolved to.
fn check_type(
    no: usize,
    family: &Family,
    name: &str,
    labels: &[(&str, &str)],
) -> Result<Verdict, ParseError> {
    let label = |wanted: &str| {
        labels
            .iter()
            .find(|(n, _)| *n == wanted)
            .map(|(_, v)| unescape_label_value(v))
    };
    // `Ok(false)`: the label is missing.
    let float_label = |wanted: &str| -> Result<bool, ParseError> {
        let Some(value) = label(wanted) else {
            return Ok(false);
        };
        parse_float(&value, false).map(|_| true).map_err(|why| {
            err(
                no,
                format!("invalid {wanted} label of {name}: expected a float value, found {why}"),
            )
        })
    };
    let is_bucket = name == family.name || name.ends_with("_bucket");
    Ok(match family.typ {
        MetricType::Histogram if is_bucket => match float_label("le")? {
            false => Verdict::Drop(DropReason::BucketWithoutLe),
            true if name == family.name => Verdict::Rename(format!("{name}_bucket")),
            true => Verdict::Keep,
        },
        MetricType::Summary if name == family.name => match float_label("quantile")? {
            false => Verdict::Drop(DropReason::QuantileWithoutQuantile),
            true => Verdict::Keep,
        },
        _ => Verdict::Keep,
    })
}

/// Whether two samples are the same series: same name and the same label set.
fn same_series(a: &Sample, b: &Sample) -> bool {
    // Label names are unique within a sample, so equal length plus inclusion is equality.
    a.name == b.name
        && a.labels.len() == b.labels.len()
        && a.labels.iter().all(|l| b.labels.contains(l))
}

/// The series as it would be encoded (name and labels), cut for an error message.
fn describe_series(sample: &Sample) -> String {
    let mut out = sample.name.as_bytes().to_vec();
    for (i, (name, value)) in sample.labels.iter().enumerate() {
        out.push(if i == 0 { b'{' } else { b',' });
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_label_value(&mut out, value);
        out.push(b'"');
    }
    if !sample.labels.is_empty() {
        out.push(b'}');
    }
    truncate(&String::from_utf8_lossy(&out), MAX_SERIES_CHARS)
}
