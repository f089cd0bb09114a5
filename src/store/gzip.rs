//! The gzip form of the `/metrics` text, compressed in proportion to the
//! change rather than to the page.
//!
//! Design: the page is cut into *runs* of consecutive chunks (family
//! headers and the apps' shared blocks), each run compressed on its own as
//! raw deflate (at level 5: [`LEVEL`]) and ended with a sync flush,
//! so that it stops on a byte boundary. A run is compressed with the last
//! 2 KiB of the text before it as a preset dictionary ([`DICT`]): its
//! matches may reach back into that text, as they would in one stream, and
//! it is valid after that text only, so it is reused only where the same
//! chunks come before it. Such runs
//! concatenate into one valid deflate stream; the body is one ordinary
//! single-member gzip file: a fixed header, the runs, an empty final block,
//! and the CRC-32 of the whole text (combined from the runs' CRCs, not
//! recomputed) with its length. Every gzip reader decodes it, including
//! those that stop after the first member. The runs are copied into one
//! buffer per generation (served in one piece) and the cached runs point
//! into it.
//!
//! A render keeps its runs ([`Index`]); the next render reuses every run
//! whose chunks are the same (the same shared buffers, or equal bytes for
//! small chunks such as headers), so after one app's push only the runs
//! that its blocks left and joined are compressed again, plus the
//! self-metrics, which change at every render.
//!
//! Where runs are cut is decided by each chunk alone (content-defined
//! chunking): a chunk ends a run when its cut mark modulo [`MEAN_RUN`] is
//! below its length, so runs hold [`MEAN_RUN`] bytes on average whatever
//! the chunks' sizes. The render gives the marks ([`block_mark`]: an app's
//! block by the digest of its series, in every format; [`text_mark`]: a
//! header by its first line; mark 0, which always cuts, after the last
//! block of a batch, see `Store::end_batch`). A block pushed again with
//! new values keeps its mark, so the cuts stay where they were. No cut depends on the one
//! before it (no minimum length counted from the last cut), so taking
//! blocks out or putting them in moves no cut elsewhere: after the blocks
//! of the apps that pushed move to the end of each family (see `render`),
//! the runs that held only them are dropped, the runs at the edges are
//! compressed again, and the runs in between are found again.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::exposition::Chunk;

/// Mean length of a run: half a deflate window (16 KiB). A change
/// compresses the runs that hold it again, so shorter runs make it cheaper;
/// on metrics pages runs this long still come out within a few percent of
/// `gzip -6` of the whole page (`gzip_tests`, `ep-bench`'s `wire_tests`).
const MEAN_RUN: u64 = 24 * 1024;
/// Largest run: bounds the work a change can cause (a run this long is
/// cut whatever its chunks say; with [`MEAN_RUN`] that is e^-32 rare).
const MAX_RUN: usize = 512 * 1024;
/// Chunks marked as new buffers (family headers: rebuilt at every render
/// but usually the same text) are identified by their bytes up to this
/// size; every other chunk by its buffer, which the store shares between
/// renders. (Identifying every chunk up to this size by its bytes hashed
/// and compared most of a page of small blocks at every render: a tenth of
/// the proxy's CPU under a steady push load at 1,000 apps × 100 series.)
const SMALL_CHUNK: usize = 1024;
/// Compression level. With 4 KiB of the text before each run as its
/// dictionary ([`DICT`]), zlib-rs at level 5 made runs of 24 KiB about 4%
/// smaller than `gzip -6` of the whole page, in two thirds of the time of
/// its level 6 (which was 1% smaller still); level 4 came out 2.5% larger
/// than `gzip -6` and level 3 11% (the page of 100 apps × 100 series of
/// the steady benchmark, in process).
const LEVEL: u32 = 5;
/// Bytes of the text before a run given to its compressor as a preset
/// dictionary. In one deflate stream a run may refer back to the text
/// before it, as `gzip -6` of the whole page does; a run compressed from
/// nothing finds no matches until its own text has built some up. On the
/// page of the steady benchmark at 100 apps × 100 series (in process,
/// level 5; `gzip -6` of the page makes 77,067 bytes), runs of 24 KiB came
/// to 80,401 bytes without a dictionary, 73,961 with 2 KiB and 73,850 with
/// 4 KiB; runs of 3.2 KiB (one second's pushes in one family there, which
/// the batch cuts make runs of their own) to 123,614, 83,185 and 81,843.
/// 2 KiB rather than 4: a run's dictionary then comes from fewer of the
/// blocks before it, so a change less often makes the next run new as
/// well. Under that steady load the proxy used 1.42-1.43% of a core with
/// 2 KiB, 1.62-1.83% with 4 KiB and 1.60-1.65% with none.
const DICT: usize = 2 * 1024;

/// gzip member header: magic, deflate, no flags, no mtime, no extra
/// flags, OS unknown (RFC 1952 §2.3).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty final deflate block with fixed codes: BFINAL=1, BTYPE=01 and
/// the end-of-block code, padded to a byte.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// One compressed run.
struct Run {
    /// The chunks the run was compressed from (held so that their buffers
    /// cannot be freed and reused for other text while the run is cached).
    /// Shared by the bodies that reuse the run: one reference count per
    /// run, not one per chunk (a build touched every block's count once
    /// more, and dropping the body once more).
    chunks: std::sync::Arc<[Chunk]>,
    /// The chunks whose text comes right before the run's and holds its
    /// dictionary (see [`DICT`], [`dict_start`]), oldest first: the run is
    /// only valid after the same text, so it is reused only after the same
    /// chunks.
    before: std::sync::Arc<[Chunk]>,
    /// Raw deflate, ending with a sync flush.
    deflated: Bytes,
    /// CRC-32 of the chunks' text, and its length.
    crc: u32,
    len: u64,
}

/// The runs of one gzip body, by the key of their chunks.
#[derive(Default)]
pub(super) struct Index {
    runs: HashMap<u64, Vec<Run>, BuildHasherDefault<KeyHasher>>,
}

/// Hashes a run key, which is already a hash of its chunks, by taking it
/// as it is (SipHash on these keys was a tenth of the work of a render
/// under steady pushes).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; fold anything else in all the same.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("runs", &self.runs.values().map(Vec::len).sum::<usize>())
            .finish()
    }
}

impl Index {
    /// The cached run of `part`: made of exactly its chunks, after exactly
    /// the chunks its dictionary comes from.
    fn find(&self, part: &Part<'_>) -> Option<&Run> {
        let all_same = |cached: &[Chunk], chunks: &[Chunk], by_content: &[bool]| {
            cached.len() == chunks.len()
                && cached
                    .iter()
                    .zip(chunks)
                    .zip(by_content)
                    .all(|((a, b), &content)| same(a, b, content))
        };
        self.runs.get(&part.key)?.iter().find(|r| {
            all_same(&r.chunks, part.chunks, part.by_content)
                && all_same(&r.before, part.before, part.before_by_content)
        })
    }
}

/// How many renders that do not build a gzip body may hand on an older
/// render's runs. The runs hold the chunks they were made from, so a seed
/// kept forever (a proxy scraped only without gzip) would keep every
/// replaced block alive; past this age it is dropped and the next gzip body
/// is compressed whole. A scraper asking for several formats renders a few
/// times between two gzip scrapes of one format, well under this.
const MAX_SEED_AGE: u32 = 8;

/// Runs of an earlier render, handed to the next one.
#[derive(Debug, Clone)]
pub(super) struct Seed {
    index: std::sync::Arc<Index>,
    /// Renders it went through unused.
    age: u32,
}

/// The seed a render hands on: its own runs if it built its gzip body
/// (`built`), else the seed it was given (`pending`), one render older.
pub(super) fn hand_on(built: Option<&Gzipped>, pending: Option<&Seed>) -> Option<Seed> {
    match built {
        Some(g) => Some(Seed {
            index: g.index.clone(),
            age: 0,
        }),
        None => pending.filter(|s| s.age < MAX_SEED_AGE).map(|s| Seed {
            index: s.index.clone(),
            age: s.age + 1,
        }),
    }
}

impl Index {
    /// The runs of `self` not taken from `older` (the same compressed
    /// bytes), and the bytes of text they hold: what building `self` had
    /// to compress.
    #[cfg(test)]
    pub(super) fn fresh_since(&self, older: &Index) -> (usize, u64) {
        let mut n = 0;
        let mut bytes = 0;
        for r in self.runs.values().flatten() {
            // Reused runs were copied into the new body: compare by content.
            let reused = older
                .runs
                .values()
                .flatten()
                .any(|o| o.deflated == r.deflated && o.len == r.len && o.crc == r.crc);
            if !reused {
                n += 1;
                bytes += r.len;
            }
        }
        (n, bytes)
    }
}

/// A gzip body and the runs it is made of.
#[derive(Debug)]
pub(super) struct Gzipped {
    /// The body, as one chunk: written as many small chunks (one per run)
    /// it was served at half nginx's rate (a write per run), so the runs
    /// are copied into one buffer once per generation and point into it.
    pub(super) chunks: Vec<Bytes>,
    pub(super) len: usize,
    pub(super) index: std::sync::Arc<Index>,
    /// Bytes of text compressed for this body (the rest was found in the
    /// runs of earlier bodies); for tests.
    #[cfg(test)]
    pub(super) fresh_bytes: u64,
}

impl Gzipped {
    /// The whole body as one buffer (a copy; for tests and small uses).
    pub(super) fn body(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.len);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        Bytes::from(out)
    }
}

/// Whether two chunks hold the same text, by the test their identity uses
/// (`content`: `b` is identified by its bytes). The same buffer is the
/// same text: cached runs hold their chunks, so a buffer cannot be freed
/// and reused for other text while a run made of it is cached.
fn same(a: &Chunk, b: &Chunk, content: bool) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.same_buffer(b) || (content && a.len() <= SMALL_CHUNK && a == b)
}

/// A hash of a chunk's identity (see [`same`]); stable between renders for
/// an unchanged chunk.
fn identity(c: &Chunk, content: bool) -> u64 {
    let len = c.len() as u64;
    if content && c.len() <= SMALL_CHUNK {
        xxh3_64_with_seed(&c.text(), len)
    } else {
        xxh3_64_with_seed(&c.buffer_id().to_le_bytes(), len)
    }
}

/// Most bytes of a chunk's first line that decide whether a run may end
/// after it.
const MARK_BYTES: usize = 256;

/// What decides whether a run ends after a chunk of text: a hash of its
/// first line up to its last blank (an app's block: the name and labels
/// of its first series, which a push with new values does not change),
/// not of the chunk's identity, so that a block replaced by the same series
/// with new values keeps the cuts around it and only its own run is
/// compressed again (with the identity, half of the changes moved a cut
/// and made two runs new).
pub(super) fn text_mark(c: &[u8]) -> u64 {
    let head = &c[..c.len().min(MARK_BYTES)];
    let line = memchr::memchr(b'\n', head).map_or(head, |end| &head[..end]);
    let series = memchr::memrchr(b' ', line).map_or(line, |end| &line[..end]);
    xxh3_64(series)
}

/// The cut mark of an app's block in every format: the digest of its
/// series (the same for new values, different for every block of a page),
/// or the mark of its text for a block without series keys (self-metric
/// lines). A format whose bytes say nothing of the series (protobuf: every
/// block starts with the same field tags) cuts where the text does.
pub(super) fn block_mark(b: &super::FamilyBlock) -> u64 {
    if b.digest != 0 {
        xxh3_64(&b.digest.to_le_bytes())
    } else {
        text_mark(&b.body.text())
    }
}

/// Where the chunks that hold the dictionary of a run starting at chunk
/// `start` begin: the fewest chunks right before it that hold [`DICT`]
/// bytes, or all of them near the start of the page. Depending on these
/// chunks alone (not on the whole run before) keeps a change from making
/// the next run new unless it is in the last [`DICT`] bytes before it.
fn dict_start(chunks: &[Chunk], start: usize) -> usize {
    let mut held = 0;
    let mut at = start;
    while at > 0 && held < DICT {
        at -= 1;
        held += chunks[at].len();
    }
    at
}

/// Where the runs of `chunks` end (exclusive indexes, increasing, the last
/// one `chunks.len()`), and the key of each run, given each chunk's cut
/// mark. The last chunk always stands alone: it is the self-metrics, new
/// at every render.
fn cut(chunks: &[Chunk], by_content: &[bool], marks: &[u64]) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    let mut run_len = 0;
    let mut key = 0u64;
    let body = chunks.len().saturating_sub(1);
    for (i, ((c, &content), &mark)) in chunks.iter().zip(by_content).zip(marks).enumerate() {
        key = key.rotate_left(5) ^ identity(c, content);
        run_len += c.len();
        let last_of_body = i + 1 == body;
        let end = i + 1 == chunks.len()
            || last_of_body
            || run_len >= MAX_RUN
            || mark % MEAN_RUN < c.len() as u64;
        if end {
            out.push((i + 1, key));
            run_len = 0;
            key = 0;
        }
    }
    out
}

/// Compressors kept between runs, at most one per thread compressing at
/// once. A new one allocates and zeroes about 300 KiB of window and hash
/// tables for a run of 24 KiB on average; a reset clears only the hash
/// heads (in process, a second of the steady load's gzip work went from
/// 6.4-7.7 to 5.5-6.8 ms).
static COMPRESSORS: std::sync::Mutex<Vec<Compress>> = std::sync::Mutex::new(Vec::new());
/// Most compressors kept (each holds about 300 KiB).
const KEPT_COMPRESSORS: usize = 4;

/// A compressor at [`LEVEL`], fresh or reset.
fn take_compressor() -> Compress {
    let kept = COMPRESSORS.lock().unwrap_or_else(|e| e.into_inner()).pop();
    match kept {
        Some(mut c) => {
            c.reset();
            c
        }
        None => Compress::new(Compression::new(LEVEL), false),
    }
}

/// Keeps `c` for a later run, unless enough are kept.
fn give_back(c: Compress) {
    let mut kept = COMPRESSORS.lock().unwrap_or_else(|e| e.into_inner());
    if kept.len() < KEPT_COMPRESSORS {
        kept.push(c);
    }
}

/// The last [`DICT`] bytes of the text of `before` (all of it if shorter).
fn dictionary(before: &[Chunk]) -> Vec<u8> {
    let total: usize = before.iter().map(Chunk::len).sum();
    let mut skip = total.saturating_sub(DICT);
    let mut out = Vec::with_capacity(total - skip);
    for chunk in before {
        if skip >= chunk.len() {
            skip -= chunk.len();
            continue;
        }
        out.extend_from_slice(&chunk.text()[skip..]);
        skip = 0;
    }
    out
}

/// `chunks` as raw deflate at [`LEVEL`] after the text of `before` (see
/// [`DICT`]), ended by a sync flush, with the CRC-32 of their text.
fn deflate(chunks: &[Chunk], before: &[Chunk]) -> (Vec<u8>, crc32fast::Hasher) {
    let mut c = take_compressor();
    let out = deflate_with(&mut c, chunks, &dictionary(before));
    give_back(c);
    out
}

/// `chunks` as raw deflate by `c` (new or reset) with the preset
/// dictionary `dict`, ended by a sync flush, with the CRC-32 of their text
/// (a packed chunk is unpacked once, here).
fn deflate_with(c: &mut Compress, chunks: &[Chunk], dict: &[u8]) -> (Vec<u8>, crc32fast::Hasher) {
    if !dict.is_empty() {
        c.set_dictionary(dict)
            .expect("a compressor new or just reset takes a dictionary");
    }
    let mut crc = crc32fast::Hasher::new();
    let total: usize = chunks.iter().map(Chunk::len).sum();
    let mut out = Vec::with_capacity(total / 4 + 256);
    let ensure_room = |out: &mut Vec<u8>| {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(8192));
        }
    };
    for chunk in chunks {
        let text = chunk.text();
        crc.update(&text);
        let mut input = &text[..];
        while !input.is_empty() {
            ensure_room(&mut out);
            let before = c.total_in();
            c.compress_vec(input, &mut out, FlushCompress::None)
                .expect("deflating into a vector cannot fail");
            let used = usize::try_from(c.total_in() - before).expect("bounded by the input");
            input = &input[used..];
        }
    }
    // The flush is complete once a call leaves output room unused.
    loop {
        ensure_room(&mut out);
        c.compress_vec(&[], &mut out, FlushCompress::Sync)
            .expect("deflating into a vector cannot fail");
        if out.len() < out.capacity() {
            break;
        }
    }
    // The room above was a guess (metrics text deflates about 14:1): a
    // first page has all its runs in memory at once before they are copied
    // into the body, so do not let them hold four times what they need.
    out.shrink_to_fit();
    (out, crc)
}

/// A freshly compressed run of `part`.
fn compress(part: &Part<'_>) -> Run {
    let (deflated, crc) = deflate(part.chunks, part.before);
    let len = crc.total_len();
    Run {
        chunks: part.chunks.into(),
        before: part.before.into(),
        // Replaced by a slice of the body it is copied into (`build`).
        deflated: Bytes::from(deflated),
        crc: crc.finalize(),
        len,
    }
}

impl Run {
    /// Another handle on the same run (buffers shared).
    fn shared(&self) -> Run {
        Run {
            chunks: self.chunks.clone(),
            before: self.before.clone(),
            deflated: self.deflated.clone(),
            crc: self.crc,
            len: self.len,
        }
    }
}

/// A run to build: its chunks, with their key (see [`cut`]) and which
/// are identified by their bytes, and the chunks before it that hold its
/// dictionary (see [`dict_start`]).
struct Part<'a> {
    key: u64,
    chunks: &'a [Chunk],
    by_content: &'a [bool],
    before: &'a [Chunk],
    before_by_content: &'a [bool],
}

/// Above this much text to compress, the runs are compressed on all
/// cores. After one app's push at 1,000 × 1,000 that is its runs (about
/// half a megabyte, a few milliseconds of work each side), where two
/// threads halve the wait; below it a thread costs more than it saves.
const PARALLEL_BYTES: usize = 256 << 10;

/// Compresses the runs that were not found, on several threads when there
/// is a lot to do.
fn compress_missing(parts: &[Part<'_>], runs: &mut [Option<Run>]) {
    let todo: usize = parts
        .iter()
        .zip(runs.iter())
        .filter(|(_, r)| r.is_none())
        .map(|(p, _)| p.chunks.iter().map(Chunk::len).sum::<usize>())
        .sum();
    let missing = runs.iter().filter(|r| r.is_none()).count();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(missing);
    if todo < PARALLEL_BYTES || threads < 2 {
        for (part, run) in parts.iter().zip(runs.iter_mut()) {
            if run.is_none() {
                *run = Some(compress(part));
            }
        }
        return;
    }
    // Interleaved shares: runs are of similar size, so each thread gets
    // about the same work.
    let mut shares: Vec<Vec<(&Part<'_>, &mut Option<Run>)>> =
        (0..threads).map(|_| Vec::new()).collect();
    let pending = parts
        .iter()
        .zip(runs.iter_mut())
        .filter(|(_, run)| run.is_none());
    for (i, (part, run)) in pending.enumerate() {
        shares[i % threads].push((part, run));
    }
    std::thread::scope(|scope| {
        for share in shares {
            scope.spawn(move || {
                for (part, run) in share {
                    *run = Some(compress(part));
                }
            });
        }
    });
}

/// The gzip body of the text `chunks`, reusing the runs of `seed` (the
/// previous render's) that are unchanged, and those of `also` (another
/// format's body: OpenMetrics shares most blocks with the text, and runs
/// made of the same blocks are the same runs). `by_content` (one per chunk)
/// marks the chunks that are new buffers at every render (headers), found
/// again by their bytes; the others are found by their buffer.
pub(super) fn build(
    chunks: &[Chunk],
    by_content: &[bool],
    marks: &[u64],
    seed: Option<&Seed>,
    also: Option<&Seed>,
) -> Gzipped {
    assert_eq!(chunks.len(), by_content.len(), "one flag per chunk");
    assert_eq!(chunks.len(), marks.len(), "one mark per chunk");
    let seed = seed.map(|s| &*s.index);
    let also = also.map(|s| &*s.index);
    let mut parts = Vec::new();
    let mut start = 0;
    for (end, key) in cut(chunks, by_content, marks) {
        let from = dict_start(chunks, start);
        parts.push(Part {
            key,
            chunks: &chunks[start..end],
            by_content: &by_content[start..end],
            before: &chunks[from..start],
            before_by_content: &by_content[from..start],
        });
        start = end;
    }
    let mut runs: Vec<Option<Run>> = parts
        .iter()
        .map(|part| {
            seed.and_then(|s| s.find(part))
                .or_else(|| also.and_then(|s| s.find(part)))
                .map(Run::shared)
        })
        .collect();
    #[cfg(test)]
    let found: Vec<bool> = runs.iter().map(Option::is_some).collect();
    compress_missing(&parts, &mut runs);
    let runs: Vec<(u64, Run)> = parts
        .iter()
        .zip(runs)
        .map(|(part, r)| (part.key, r.expect("every run compressed")))
        .collect();
    #[cfg(test)]
    let fresh_bytes = runs
        .iter()
        .zip(&found)
        .filter(|(_, found)| !**found)
        .map(|((_, r), _)| r.len)
        .sum();
    let size = HEADER.len()
        + runs.iter().map(|(_, r)| r.deflated.len()).sum::<usize>()
        + FINAL_BLOCK.len()
        + 8;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(&HEADER);
    let mut crc = crc32fast::Hasher::new();
    let mut offsets = Vec::with_capacity(runs.len());
    for (_, r) in &runs {
        offsets.push(body.len());
        body.extend_from_slice(&r.deflated);
        crc.combine(&crc32fast::Hasher::new_with_initial_len(r.crc, r.len));
    }
    body.extend_from_slice(&FINAL_BLOCK);
    // ISIZE is the length modulo 2^32 (RFC 1952 §2.3.1).
    let isize = (crc.total_len() & 0xffff_ffff) as u32;
    body.extend_from_slice(&crc.finalize().to_le_bytes());
    body.extend_from_slice(&isize.to_le_bytes());
    let body = Bytes::from(body);
    // The cached runs point into the new body: one copy of the compressed
    // page in memory, not two.
    let mut index = Index::default();
    for ((key, mut r), at) in runs.into_iter().zip(offsets) {
        r.deflated = body.slice(at..at + r.deflated.len());
        index.runs.entry(key).or_default().push(r);
    }
    Gzipped {
        len: body.len(),
        chunks: vec![body],
        index: std::sync::Arc::new(index),
        #[cfg(test)]
        fresh_bytes,
    }
}

impl super::Rendered {
    /// Whether the gzip body was already computed.
    pub fn has_gzip(&self) -> bool {
        self.gzip.get().is_some()
    }

    /// The body compressed with gzip, as one buffer (a copy of
    /// [`Self::gzip_chunks`]; for tests and small uses).
    pub fn gzip(&self) -> Bytes {
        self.gzipped().body()
    }

    /// The gzip body as the chunks to write, computed once per generation
    /// from the runs of the previous one that did not change (see the
    /// module), and its length.
    pub fn gzip_chunks(&self) -> (&[Bytes], usize) {
        let g = self.gzipped();
        (&g.chunks, g.len)
    }

    fn gzipped(&self) -> &Gzipped {
        self.gzip.get_or_init(|| {
            let seed = self
                .gzip_seed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            // The OpenMetrics body's runs, built or handed on: after a
            // scrape in OpenMetrics most of the text's runs are there.
            let also = self.alt.gzip_runs().openmetrics;
            build(
                &self.chunks,
                &self.by_content,
                &self.marks,
                seed.as_ref(),
                also.as_ref(),
            )
        })
    }

    /// The runs a later render may reuse: this render's if its gzip was
    /// built, else the ones it was given.
    pub(super) fn gzip_runs(&self) -> Option<Seed> {
        let pending = self.gzip_seed.lock().unwrap_or_else(|e| e.into_inner());
        hand_on(self.gzip.get(), pending.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gunzip(body: &[u8]) -> Vec<u8> {
        // A single-member reader: the body must be one member.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    fn concat(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    /// The headers (`# ` lines) are new buffers at every render.
    fn marks(chunks: &[Bytes]) -> Vec<bool> {
        chunks.iter().map(|c| c.starts_with(b"# ")).collect()
    }

    fn build_marked(chunks: &[Bytes], seed: Option<&Seed>) -> Gzipped {
        let cuts: Vec<u64> = chunks.iter().map(|c| text_mark(c)).collect();
        let shared: Vec<Chunk> = chunks.iter().cloned().map(Chunk::from).collect();
        build(&shared, &marks(chunks), &cuts, seed, None)
    }

    /// Runs of `second` compressed anew: a reused run keeps the chunks
    /// (the very buffers) of the run it was taken from.
    fn new_runs(second: &Gzipped, first: &Gzipped) -> usize {
        let same_buffers = |a: &Run, b: &Run| {
            a.chunks.len() == b.chunks.len()
                && a.chunks
                    .iter()
                    .zip(b.chunks.iter())
                    .all(|(x, y)| x.same_buffer(y))
        };
        second
            .index
            .runs
            .values()
            .flatten()
            .filter(|r| {
                !first
                    .index
                    .runs
                    .values()
                    .flatten()
                    .any(|o| same_buffers(o, r))
            })
            .count()
    }

    /// Text like a metrics page: lines that repeat with small changes.
    fn block(app: usize, family: usize, lines: usize) -> Bytes {
        let mut s = String::new();
        for i in 0..lines {
            s.push_str(&format!(
                "fam_{family}_total{{app=\"app{app}\",route=\"/r/{i}\"}} {}\n",
                app * 31 + i
            ));
        }
        Bytes::from(s)
    }

    #[test]
    fn empty_and_tiny_pages_decode() {
        assert_eq!(gunzip(&build_marked(&[], None).body()), b"");
        let one = [Bytes::from_static(b"x 1\n")];
        assert_eq!(gunzip(&build_marked(&one, None).body()), b"x 1\n");
    }

    /// Four families of 200 apps' blocks of `lines` lines each, with their
    /// headers, then the self-metrics.
    fn page(lines: usize) -> Vec<Bytes> {
        page_of(200, lines)
    }

    /// [`page`] with `apps` apps.
    fn page_of(apps: usize, lines: usize) -> Vec<Bytes> {
        let mut chunks: Vec<Bytes> = Vec::new();
        for f in 0..4 {
            chunks.push(Bytes::from(format!("# TYPE fam_{f}_total counter\n")));
            for a in 0..apps {
                chunks.push(block(a, f, lines));
            }
        }
        chunks.push(Bytes::from_static(b"own 1\n"));
        chunks
    }

    #[test]
    fn reuses_unchanged_runs_and_decodes_to_the_text() {
        let chunks = page(20);
        let first = build_marked(&chunks, None);
        assert_eq!(gunzip(&first.body()), concat(&chunks));
        let runs = first.index.runs.values().map(Vec::len).sum::<usize>();
        assert!(runs > 8, "the page is cut into runs: {runs}");

        // One app changes one block, headers are rebuilt with the same text
        // and the self-metrics change.
        let mut next: Vec<Bytes> = chunks
            .iter()
            .map(|c| {
                if c.starts_with(b"# ") {
                    Bytes::copy_from_slice(c)
                } else {
                    c.clone()
                }
            })
            .collect();
        next[1 + 57] = block(57, 0, 21);
        let last = next.len() - 1;
        next[last] = Bytes::from_static(b"own 2\n");
        let second = build_marked(&next, hand_on(Some(&first), None).as_ref());
        assert_eq!(gunzip(&second.body()), concat(&next));
        let new = new_runs(&second, &first);
        assert!(new <= 3, "only the changed runs are new: {new}");
    }

    #[test]
    fn blocks_that_move_to_the_end_of_their_family_leave_the_runs_between_alone() {
        // What the render does after 20 periodic pushers pushed again: in
        // every family their blocks leave the start and join the end.
        let chunks = page_of(1000, 10);
        let first = build_marked(&chunks, None);
        let runs = first.index.runs.values().map(Vec::len).sum::<usize>();
        let mut next = Vec::new();
        for family in chunks[..chunks.len() - 1].chunks(1001) {
            next.push(Bytes::copy_from_slice(&family[0]));
            next.extend(family[21..].iter().cloned());
            let f = family_of(&family[0]);
            next.extend((0..20).map(|a| block(a, f, 10)));
        }
        next.push(Bytes::from_static(b"own 2\n"));
        let second = build_marked(&next, hand_on(Some(&first), None).as_ref());
        assert_eq!(gunzip(&second.body()), concat(&next));
        // Per family: the run at its start (what is left of the run the
        // blocks left) and the runs of the blocks at its end; the runs in
        // between, most of the page, are found again. A cut that depended
        // on where the run before it started (a minimum length) moved
        // every cut after the first change of a family.
        let new = new_runs(&second, &first);
        let fresh_text: u64 = second.fresh_bytes;
        let page_text = concat(&next).len() as u64;
        assert!(
            fresh_text * 4 < page_text,
            "{fresh_text} of {page_text} bytes compressed again ({new} of {runs} runs)"
        );
    }

    /// The family number of a `# TYPE fam_N_total` header.
    fn family_of(header: &[u8]) -> usize {
        let text = std::str::from_utf8(header).unwrap();
        let n = text.trim_start_matches("# TYPE fam_");
        n[..n.find('_').unwrap()].parse().unwrap()
    }

    #[test]
    fn small_blocks_are_found_by_their_buffer_and_headers_by_their_text() {
        let chunks = page(5);
        assert!(chunks.iter().all(|c| c.len() <= SMALL_CHUNK));
        let first = build_marked(&chunks, None);
        // The same text in new buffers: blocks are not looked at byte by
        // byte, so every run holding a copied block is new; copied headers
        // are found.
        let copied: Vec<Bytes> = chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect();
        let all_new = build_marked(&copied, hand_on(Some(&first), None).as_ref());
        assert_eq!(gunzip(&all_new.body()), concat(&chunks));
        let runs = first.index.runs.values().map(Vec::len).sum::<usize>();
        assert_eq!(new_runs(&all_new, &first), runs);
        // The first block replaced by other text of the same length in a
        // new buffer: its run is new and the body decodes to the new text.
        let mut next: Vec<Bytes> = chunks.clone();
        let mut other = chunks[1].to_vec();
        other[0] = b'g';
        next[1] = Bytes::from(other);
        for (i, c) in next.iter_mut().enumerate() {
            if c.starts_with(b"# ") {
                *c = Bytes::copy_from_slice(&chunks[i]);
            }
        }
        let second = build_marked(&next, hand_on(Some(&first), None).as_ref());
        assert_eq!(gunzip(&second.body()), concat(&next));
        let new = new_runs(&second, &first);
        assert!(
            (1..=3).contains(&new),
            "only the changed runs are new: {new}"
        );
    }

    #[test]
    fn a_large_first_page_is_compressed_in_parallel_and_decodes() {
        let mut chunks: Vec<Bytes> = (0..500).map(|a| block(a, 0, 250)).collect();
        chunks.push(Bytes::from_static(b"own\n"));
        let text = concat(&chunks);
        assert!(text.len() > PARALLEL_BYTES, "{}", text.len());
        let first = build_marked(&chunks, None);
        assert_eq!(gunzip(&first.body()), text);
    }

    #[test]
    fn a_kept_compressor_compresses_as_a_new_one() {
        // Deflate's output depends on its state: a compressor reset after
        // other text must write exactly what a new one writes, with a
        // dictionary as without.
        let (a, b) = ([block(1, 0, 400)], [block(2, 0, 200)]);
        let (ca, cb) = ([Chunk::from(a[0].clone())], [Chunk::from(b[0].clone())]);
        let new = || Compress::new(Compression::new(LEVEL), false);
        let dict = dictionary(&cb);
        assert_eq!(dict, b[0][b[0].len() - DICT..]);
        let mut kept = new();
        let other = deflate_with(&mut kept, &cb, b"").0;
        kept.reset();
        let again = deflate_with(&mut kept, &ca, b"").0;
        assert_eq!(again, deflate_with(&mut new(), &ca, b"").0);
        assert_ne!(again, other);
        kept.reset();
        let after_b = deflate_with(&mut kept, &ca, &dict).0;
        assert_eq!(after_b, deflate_with(&mut new(), &ca, &dict).0);
        assert_ne!(after_b, again, "the dictionary is used");
        // Through the pool: b, then a after b, ended by a final block,
        // decode to both texts.
        let mut pooled = [deflate(&cb, &[]).0, deflate(&ca, &cb).0].concat();
        pooled.extend_from_slice(&FINAL_BLOCK);
        let mut raw = Vec::new();
        flate2::read::DeflateDecoder::new(&pooled[..])
            .read_to_end(&mut raw)
            .expect("valid deflate");
        assert_eq!(raw, [concat(&b), concat(&a)].concat());
    }

    #[test]
    fn a_run_is_reused_only_after_the_same_text() {
        // Three runs (mark 0 cuts after every chunk): the second repeats
        // the first's text, so its matches reach into the first (its
        // dictionary) and it is valid only after that text.
        let a = block(1, 0, 300);
        let b = Bytes::from(a.to_vec());
        let own = |n: u8| Bytes::from(vec![b'o', n, b'\n']);
        let build3 = |chunks: &[Bytes], seed: Option<&Gzipped>| {
            let shared: Vec<Chunk> = chunks.iter().cloned().map(Chunk::from).collect();
            let seed = seed.and_then(|g| hand_on(Some(g), None));
            build(&shared, &[false; 3], &[0; 3], seed.as_ref(), None)
        };
        let first = build3(&[a.clone(), b.clone(), own(1)], None);
        assert_eq!(gunzip(&first.body()), [&a[..], &b[..], b"o\x01\n"].concat());
        // The text before the second run is the same: only the last run
        // is compressed again.
        let same = build3(&[a.clone(), b.clone(), own(2)], Some(&first));
        assert_eq!(same.fresh_bytes, 3);
        assert_eq!(gunzip(&same.body()), [&a[..], &b[..], b"o\x02\n"].concat());
        // Other text before it: the second run (the same chunk) is
        // compressed again, and the body decodes right.
        let other = block(2, 0, 300);
        let moved = build3(&[other.clone(), b.clone(), own(3)], Some(&first));
        assert_eq!(moved.fresh_bytes, (other.len() + b.len() + 3) as u64);
        assert_eq!(
            gunzip(&moved.body()),
            [&other[..], &b[..], b"o\x03\n"].concat()
        );
    }

    #[test]
    fn a_reused_run_needs_the_same_buffers() {
        // Large chunks with equal text but different buffers are not
        // assumed equal by pointer: the result still decodes right.
        let a = Bytes::from("a 1\n".repeat(2000));
        let chunks = vec![a.clone(), Bytes::from_static(b"own\n")];
        let first = build_marked(&chunks, None);
        let other = Bytes::from("b 2\n".repeat(2000));
        let next = vec![other, Bytes::from_static(b"own\n")];
        let second = build_marked(&next, hand_on(Some(&first), None).as_ref());
        assert_eq!(gunzip(&second.body()), concat(&next));
    }
}
