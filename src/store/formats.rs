//! The other two representations of `/metrics` (OpenMetrics 1.0 text and
//! delimited protobuf), and protobuf pushes.
//!
//! Design: the text body stays what it was (the family headers and the
//! apps' pre-encoded blocks, shared). A render also keeps, per family, the
//! blocks it laid out ([`RenderFamily`]); the OpenMetrics and protobuf
//! bodies are built from them the first time a scrape of that generation
//! asks for one, and kept in the [`super::Rendered`] like its gzip. Each
//! block caches its own encodings ([`exposition::AltEncodings`]), so after a
//! push only the blocks of the app that pushed are encoded again, and the
//! bodies are chunk lists like the text one:
//!
//! * protobuf: per family, one chunk with the length prefix and the
//!   `MetricFamily` header (name, help, type), then each block's metrics as
//!   `metric` fields (repeated fields concatenate);
//! * OpenMetrics: per family, a header chunk, then each block's lines; `# EOF`.
//!
//! A block's metrics come from its "rich" family (a protobuf push with
//! native histograms or exemplars, labels applied) or else from its text
//! lines, read and regrouped as [`exposition::protobuf::text_metrics`] does
//! (`super::lines::metrics_from_lines`; a parse of the block when a line is
//! not in the encoder's form). The self-metrics are written by the text
//! writer, parsed back once per render and converted the same way.

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use super::lines::{metrics_from_lines, text_is_openmetrics};
use super::{gzip, FamilyBlock, PrepareOptions, Prepared, PushError, Rendered, Store};
use crate::exposition::openmetrics_out::{self, OmKind};
use crate::exposition::proto::{self, LabelPair, Metric, MetricFamily};
use crate::exposition::{self, protobuf, Chunk, MetricType, ParseLimits};
use crate::telemetry::RejectReason;

/// Blocks whose encodings are read ahead together when a body's list is
/// built (see `Alternatives::encoded`): about as many as the render's walk
/// reads ahead (`render::WARM_WINDOW` apps of about ten blocks each).
const WARM_BLOCKS: usize = 256;

/// A representation of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Delimited `io.prometheus.client.MetricFamily` messages.
    Protobuf,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => openmetrics_out::CONTENT_TYPE,
            Format::Protobuf => proto::DELIMITED_CONTENT_TYPE,
        }
    }
}

/// One family of a render: what its OpenMetrics and protobuf forms are
/// made of.
#[derive(Debug)]
pub(super) struct RenderFamily {
    pub(super) name: String,
    pub(super) typ: MetricType,
    pub(super) help: Option<String>,
    /// The owners' blocks, in the render's order (as in the text body).
    pub(super) blocks: Vec<Arc<FamilyBlock>>,
    /// Per block, where a gzip run may end after it (in every format).
    pub(super) marks: Vec<u64>,
}

/// A body as a list of shared chunks, with its gzip computed once.
#[derive(Debug)]
pub struct Body {
    chunks: Vec<Chunk>,
    /// Per chunk: whether it is a new buffer at every render (a header;
    /// see [`gzip::build`]).
    by_content: Vec<bool>,
    /// Per chunk: its cut mark (see [`gzip::build`]).
    marks: Vec<u64>,
    len: usize,
    gzip: OnceLock<gzip::Gzipped>,
    /// The compressed runs of the previous render's body in this format.
    seed: Mutex<Option<gzip::Seed>>,
}

impl Body {
    /// A body of `chunks`, each with whether it is a new buffer at every
    /// render (`true` for headers) and its cut mark.
    fn new(marked: Vec<(Chunk, bool, u64)>, seed: Option<gzip::Seed>) -> Body {
        let mut chunks = Vec::with_capacity(marked.len());
        let mut by_content = Vec::with_capacity(marked.len());
        let mut marks = Vec::with_capacity(marked.len());
        for (c, content, mark) in marked.into_iter().filter(|(c, _, _)| !c.is_empty()) {
            chunks.push(c);
            by_content.push(content);
            marks.push(mark);
        }
        let len = chunks.iter().map(Chunk::len).sum();
        Body {
            chunks,
            by_content,
            marks,
            len,
            gzip: OnceLock::new(),
            seed: Mutex::new(seed),
        }
    }

    /// The runs a later body may reuse (see `Rendered::gzip_runs`).
    fn gzip_runs(&self) -> Option<gzip::Seed> {
        gzip::hand_on(self.gzip.get(), lock(&self.seed).as_ref())
    }

    /// The chunks, in order; none is empty.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the gzip form was computed.
    pub fn has_gzip(&self) -> bool {
        self.gzip.get().is_some()
    }

    /// The body compressed with gzip, as one buffer (a copy of
    /// [`Body::gzip_chunks`]; for tests).
    pub fn gzip(&self) -> Bytes {
        self.gzipped(|| None).body()
    }

    /// The gzip body as chunks and its length, computed once, reusing the
    /// runs of the previous body that did not change (the store's `gzip` module).
    pub fn gzip_chunks(&self) -> (&[Bytes], usize) {
        self.gzip_chunks_with(|| None)
    }

    /// [`Body::gzip_chunks`], also reusing the runs of `also` (another
    /// format's, asked for only if the body is compressed now).
    fn gzip_chunks_with(&self, also: impl FnOnce() -> Option<gzip::Seed>) -> (&[Bytes], usize) {
        let g = self.gzipped(also);
        (&g.chunks, g.len)
    }

    fn gzipped(&self, also: impl FnOnce() -> Option<gzip::Seed>) -> &gzip::Gzipped {
        self.gzip.get_or_init(|| {
            gzip::build(
                &self.chunks,
                &self.by_content,
                &self.marks,
                lock(&self.seed).take().as_ref(),
                also().as_ref(),
            )
        })
    }

    /// The whole body as one buffer (a copy; for tests).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.len);
        for c in &self.chunks {
            c.write_to(&mut out);
        }
        Bytes::from(out)
    }
}

/// A lock that only guards a cache: a panic elsewhere leaves it usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The gzip runs of the previous render's OpenMetrics and protobuf bodies.
#[derive(Debug, Default)]
pub(super) struct Seeds {
    pub(super) openmetrics: Option<gzip::Seed>,
    protobuf: Option<gzip::Seed>,
}

/// The sources of the other bodies of a render, and the bodies once built.
#[derive(Debug)]
pub(super) struct Alternatives {
    families: Vec<RenderFamily>,
    /// The self-metrics, in text.
    own: Bytes,
    /// The self-metrics read back as families, once for both bodies.
    own_families: OnceLock<Vec<(exposition::Family, Vec<Metric>)>>,
    openmetrics: OnceLock<Body>,
    protobuf: OnceLock<Body>,
    /// Handed to the bodies when they are built.
    seeds: Mutex<Seeds>,
}

impl Alternatives {
    pub(super) fn new(families: Vec<RenderFamily>, own: Bytes, seeds: Seeds) -> Self {
        Alternatives {
            families,
            own,
            own_families: OnceLock::new(),
            openmetrics: OnceLock::new(),
            protobuf: OnceLock::new(),
            seeds: Mutex::new(seeds),
        }
    }

    /// The gzip runs a later render may reuse, per format.
    pub(super) fn gzip_runs(&self) -> Seeds {
        let seeds = lock(&self.seeds);
        Seeds {
            openmetrics: match self.openmetrics.get() {
                Some(b) => b.gzip_runs(),
                None => gzip::hand_on(None, seeds.openmetrics.as_ref()),
            },
            protobuf: match self.protobuf.get() {
                Some(b) => b.gzip_runs(),
                None => gzip::hand_on(None, seeds.protobuf.as_ref()),
            },
        }
    }

    fn body(&self, f: Format) -> Option<&Body> {
        match f {
            Format::Text => None,
            Format::OpenMetrics => Some(self.openmetrics.get_or_init(|| self.render_om())),
            Format::Protobuf => Some(self.protobuf.get_or_init(|| self.render_protobuf())),
        }
    }

    fn own_families(&self) -> &[(exposition::Family, Vec<Metric>)] {
        self.own_families.get_or_init(|| text_families(&self.own))
    }

    fn built(&self, f: Format) -> Option<&Body> {
        match f {
            Format::Text => None,
            Format::OpenMetrics => self.openmetrics.get(),
            Format::Protobuf => self.protobuf.get(),
        }
    }

    /// A header and the blocks of every family: the chunks of a body in
    /// another format, but for the self-metrics. Reserved up front: grown
    /// one push at a time, the list was copied a dozen times per build
    /// (at 100,000 series, a fifth of the page faults of a steady load,
    /// each new buffer touched afresh).
    fn chunk_count(&self) -> usize {
        self.families.iter().map(|f| f.blocks.len() + 1).sum()
    }

    /// Each block's encoding (`encode`) of `blocks` in order (lazily), read a window
    /// at a time: each window's cached encodings (`len` of each) are first
    /// read in a loop of independent loads, as the render's walk does
    /// (`render::warm_up`), so that the misses on blocks spread over the
    /// heap overlap instead of coming one per step of the build. A window
    /// rather than the whole page: read all ahead, the first blocks were
    /// evicted again before the build reached them.
    fn encoded<'b, T>(
        blocks: &'b [Arc<FamilyBlock>],
        len: impl Fn(&FamilyBlock) -> usize + 'b,
        encode: impl Fn(&Arc<FamilyBlock>) -> T + Copy + 'b,
    ) -> impl Iterator<Item = T> + 'b {
        blocks.chunks(WARM_BLOCKS).flat_map(move |window| {
            let sum = window
                .iter()
                .fold(0usize, |sum, b| sum.wrapping_add(len(b)));
            std::hint::black_box(sum);
            window.iter().map(encode)
        })
    }

    fn render_protobuf(&self) -> Body {
        let mut chunks = Vec::with_capacity(self.chunk_count() + 1);
        for f in &self.families {
            let parts: Vec<Chunk> = Self::encoded(
                &f.blocks,
                |b| b.alt.protobuf.get().map_or(0, Chunk::len),
                |b| block_protobuf(b),
            )
            .collect();
            let header = protobuf::encode_family_header(&f.name, f.help.as_deref(), f.typ);
            let total = header.len() + parts.iter().map(Chunk::len).sum::<usize>();
            let mut head = Vec::with_capacity(header.len() + 10);
            proto::encode_varint(&mut head, total as u64);
            head.extend_from_slice(&header);
            chunks.push((
                Chunk::from(head),
                true,
                xxhash_rust::xxh3::xxh3_64(f.name.as_bytes()),
            ));
            chunks.extend(parts.into_iter().zip(&f.marks).map(|(p, &m)| (p, false, m)));
        }
        let mut own = Vec::with_capacity(self.own.len());
        for (fam, metrics) in self.own_families() {
            let mut body = protobuf::encode_family_header(&fam.name, fam.help.as_deref(), fam.typ);
            protobuf::encode_metric_fields(&mut body, metrics);
            proto::encode_varint(&mut own, body.len() as u64);
            own.extend_from_slice(&body);
        }
        chunks.push((Chunk::from(own), false, 0));
        Body::new(chunks, lock(&self.seeds).protobuf.take())
    }

    fn render_om(&self) -> Body {
        // Every name a family takes (its own and its samples'): a `_total`
        // counter is an OpenMetrics counter only if its stem and the stem's
        // `_created` are free.
        let taken: std::collections::HashSet<String> = self
            .families
            .iter()
            .flat_map(|f| std::iter::once(f.name.clone()).chain(f.typ.reserved_names(&f.name)))
            .collect();
        let mut chunks = Vec::with_capacity(self.chunk_count() + 1);
        for f in &self.families {
            let kind = OmKind::of(&f.name, f.typ, |stem| {
                !taken.contains(stem) && !taken.contains(&format!("{stem}_created"))
            });
            let mut head = Vec::with_capacity(128);
            openmetrics_out::encode_header(&mut head, &f.name, f.help.as_deref(), kind);
            let mark = gzip::text_mark(&head);
            chunks.push((Chunk::from(head), true, mark));
            let parts = Self::encoded(
                &f.blocks,
                |b| b.alt.openmetrics.get().map_or(0, |(_, c)| c.len()),
                move |b| block_om(b, kind),
            );
            chunks.extend(parts.zip(&f.marks).map(|(p, &m)| (p, false, m)));
        }
        let mut own = Vec::with_capacity(self.own.len() + 1024);
        for (fam, metrics) in self.own_families() {
            // Our own families never clash: counters are `_total`-named.
            let kind = OmKind::of(&fam.name, fam.typ, |_| true);
            openmetrics_out::encode_header(&mut own, &fam.name, fam.help.as_deref(), kind);
            openmetrics_out::encode_metrics(&mut own, &fam.name, kind, metrics);
        }
        own.extend_from_slice(openmetrics_out::EOF);
        chunks.push((Chunk::from(own), false, 0));
        Body::new(chunks, lock(&self.seeds).openmetrics.take())
    }
}

/// Parses text we wrote ourselves and regroups each family as `Metric`s.
fn text_families(text: &[u8]) -> Vec<(exposition::Family, Vec<Metric>)> {
    let parsed = std::str::from_utf8(text)
        .ok()
        .and_then(|t| exposition::parse(t, &ParseLimits::default()).ok());
    parsed
        .map(|exp| {
            exp.families
                .into_iter()
                .map(|f| {
                    let metrics = protobuf::text_metrics(&f.name, f.typ, &f.samples);
                    (f, metrics)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A block's metrics: its rich family's, or its text lines regrouped.
fn block_metrics(b: &FamilyBlock) -> Vec<Metric> {
    if let Some(rich) = &b.rich {
        return rich.metric.clone();
    }
    metrics_from_lines(b).unwrap_or_else(|| block_metrics_by_parse(b))
}

/// A block's metrics from a parse of its text (the reference
/// [`metrics_from_lines`] is tested against, and its fallback).
fn block_metrics_by_parse(b: &FamilyBlock) -> Vec<Metric> {
    let mut text = Vec::with_capacity(b.body.len() + 64);
    exposition::encode_header(&mut text, &b.name, None, b.typ);
    b.body.write_to(&mut text);
    text_families(&text)
        .into_iter()
        .find(|(f, _)| f.name == b.name)
        .map(|(_, m)| m)
        .unwrap_or_default()
}

fn block_protobuf(b: &FamilyBlock) -> Chunk {
    b.alt
        .protobuf
        .get_or_init(|| {
            let mut out = Vec::with_capacity(b.body.len());
            protobuf::encode_metric_fields(&mut out, &block_metrics(b));
            // Kept as long as the block: at its exact size (protobuf is about
            // a third of the text, so the guess above left two thirds unused:
            // 55 MB at a million series).
            out.shrink_to_fit();
            kept_like(b, out)
        })
        .clone()
}

fn block_om(b: &FamilyBlock, kind: OmKind) -> Chunk {
    let encode = || {
        if b.rich.is_none() && text_is_openmetrics(b) {
            // The text lines are already valid OpenMetrics: share them.
            return b.body.clone();
        }
        let mut out = Vec::with_capacity(b.body.len() + 64);
        openmetrics_out::encode_metrics(&mut out, &b.name, kind, &block_metrics(b));
        out.shrink_to_fit();
        kept_like(b, out)
    };
    let (cached_kind, lines) = b.alt.openmetrics.get_or_init(|| (kind, encode()));
    if *cached_kind == kind {
        lines.clone()
    } else {
        // Another family took this counter's stem since the block was
        // first encoded (rare): encode it for this render only.
        encode()
    }
}

/// Another encoding of block `b`, kept as long as the block: packed when
/// its text is.
fn kept_like(b: &FamilyBlock, encoded: Vec<u8>) -> Chunk {
    let encoded = Bytes::from(encoded);
    if b.body.is_packed() {
        Chunk::pack(&encoded)
    } else {
        Chunk::plain(encoded)
    }
}

#[cfg(test)]
/// [`text_is_openmetrics`] by a full parse of the block: the reference the
/// line scan is tested against: no timestamps (seconds in
/// OpenMetrics), and each histogram's or summary's series contiguous, a
/// histogram's buckets first, in increasing order, up to `+Inf`.
fn text_is_openmetrics_by_parse(b: &FamilyBlock) -> bool {
    let mut text = Vec::with_capacity(b.body.len() + 64);
    exposition::encode_header(&mut text, &b.name, None, b.typ);
    b.body.write_to(&mut text);
    let Some(exp) = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| exposition::parse(t, &ParseLimits::default()).ok())
    else {
        return false;
    };
    let Some(fam) = exp.families.into_iter().find(|f| f.name == b.name) else {
        return false;
    };
    if fam.samples.iter().any(|s| s.timestamp.is_some()) {
        return false;
    }
    let histogram = match b.typ {
        MetricType::Histogram => true,
        MetricType::Summary => false,
        _ => return true,
    };
    let skip = if histogram { "le" } else { "quantile" };
    let mut seen = std::collections::HashSet::new();
    let mut current: Option<Vec<(&str, &str)>> = None;
    let (mut in_buckets, mut last, mut inf) = (true, f64::NEG_INFINITY, false);
    for s in &fam.samples {
        let mut key: Vec<(&str, &str)> = s
            .labels
            .iter()
            .filter(|(k, _)| k != skip)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        key.sort_unstable();
        if current.as_ref() != Some(&key) {
            if histogram && current.is_some() && !inf {
                return false;
            }
            if !seen.insert(key.clone()) {
                return false;
            }
            current = Some(key);
            (in_buckets, last, inf) = (true, f64::NEG_INFINITY, false);
        }
        if !histogram {
            continue;
        }
        match s.name.strip_prefix(b.name.as_str()) {
            Some("_bucket") => {
                let le = s
                    .labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .and_then(|(_, v)| v.parse::<f64>().ok());
                match le {
                    Some(le) if in_buckets && le > last => {
                        last = le;
                        inf |= le == f64::INFINITY;
                    }
                    _ => return false,
                }
            }
            Some("_sum" | "_count") if inf => in_buckets = false,
            _ => return false,
        }
    }
    !histogram || current.is_none() || inf
}

impl Rendered {
    /// The chunks of the body in format `f` (built on first use).
    pub fn chunks_of(&self, f: Format) -> &[Chunk] {
        match self.alt.body(f) {
            Some(b) => b.chunks(),
            None => self.chunks(),
        }
    }

    /// Length of the body in format `f` (built on first use).
    pub fn len_of(&self, f: Format) -> usize {
        self.alt.body(f).map_or(self.len(), Body::len)
    }

    /// The gzip of the body in format `f` as one buffer (built on first
    /// use; a copy of [`Rendered::gzip_chunks_of`], for tests).
    pub fn gzip_of(&self, f: Format) -> Bytes {
        let (chunks, len) = self.gzip_chunks_of(f);
        let mut out = Vec::with_capacity(len);
        for c in chunks {
            out.extend_from_slice(c);
        }
        Bytes::from(out)
    }

    /// The gzip of the body in format `f` as the chunks to write, and its
    /// length (built on first use). The OpenMetrics body reuses the runs
    /// of the text's (built or handed on) that are made of the same
    /// blocks, and the text's those of the OpenMetrics body.
    pub fn gzip_chunks_of(&self, f: Format) -> (&[Bytes], usize) {
        match (f, self.alt.body(f)) {
            (Format::OpenMetrics, Some(b)) => b.gzip_chunks_with(|| self.gzip_runs()),
            (_, Some(b)) => b.gzip_chunks(),
            (_, None) => self.gzip_chunks(),
        }
    }

    /// The body in format `f` as one buffer (a copy; for tests).
    pub fn bytes_of(&self, f: Format) -> Bytes {
        self.alt
            .body(f)
            .map_or_else(|| self.to_bytes(), Body::to_bytes)
    }

    /// Whether the body in format `f` (and its gzip, if `gzip`) is built,
    /// so that serving it costs no CPU.
    pub fn is_built(&self, f: Format, gzip: bool) -> bool {
        match f {
            Format::Text => !gzip || self.has_gzip(),
            _ => self.alt.built(f).is_some_and(|b| !gzip || b.has_gzip()),
        }
    }
}

impl Store {
    /// [`Store::prepare_with`] for a protobuf push: the families are
    /// converted to text and take the text path (same checks, same
    /// refusals); those with native histograms or exemplars are attached
    /// to their blocks, with the same labels set.
    pub fn prepare_protobuf(
        &self,
        app: &str,
        families: Vec<MetricFamily>,
        opts: &PrepareOptions<'_>,
    ) -> Result<Prepared, PushError> {
        super::validate_app_name(app)?;
        let push = protobuf::push_to_text(families)
            .map_err(|e| PushError::new(RejectReason::ParseError, app, format!("protobuf: {e}")))?;
        let mut prepared = self.prepare_with(app, &push.text, opts).map_err(|mut e| {
            if e.message.starts_with("line ") {
                e.message = format!("{} (in the text form of the protobuf body)", e.message);
            }
            e
        })?;
        if push.rich.is_empty() {
            return Ok(prepared);
        }
        let mut extra: Vec<(&str, &str)> = Vec::new();
        if let Some(l) = self.options.app_label.as_deref() {
            extra.push((l, app));
        }
        for (k, v) in opts
            .set
            .iter()
            .copied()
            .chain(opts.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            if !extra.iter().any(|(n, _)| *n == k) {
                extra.push((k, v));
            }
        }
        for mut fam in push.rich {
            for m in &mut fam.metric {
                set_labels(&mut m.label, &extra, opts.default);
            }
            let name = fam.name.clone().unwrap_or_default();
            if let Ok(i) = prepared
                .families
                .binary_search_by(|f| f.name.as_str().cmp(&name))
            {
                if let Some(block) = Arc::get_mut(&mut prepared.families[i]) {
                    block.rich = Some(Arc::new(fam));
                }
            }
        }
        Ok(prepared)
    }
}

/// Sets `extra` (replacing), adds `default` where missing, sorts by name:
/// the labels the text path gives the same series.
fn set_labels(labels: &mut Vec<LabelPair>, extra: &[(&str, &str)], default: &[(&str, &str)]) {
    labels.retain(|l| !extra.iter().any(|(k, _)| Some(*k) == l.name.as_deref()));
    let pair = |k: &str, v: &str| LabelPair {
        name: Some(k.to_owned()),
        value: Some(v.to_owned()),
    };
    labels.extend(extra.iter().map(|(k, v)| pair(k, v)));
    for (k, v) in default {
        if !labels.iter().any(|l| l.name.as_deref() == Some(*k)) {
            labels.push(pair(k, v));
        }
    }
    labels.sort_by(|a, b| a.name.cmp(&b.name));
}

#[cfg(test)]
#[path = "formats_tests.rs"]
mod tests;
