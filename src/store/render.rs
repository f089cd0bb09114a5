//! Rendering `/metrics`: the page as a list of shared chunks (family
//! headers, the apps' blocks, the per-app self-metric lines, the rest of
//! the self-metrics), once per generation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{formats, gzip, AppInfo, AppKind, FamilyBlock, Rendered, Store};
use crate::exposition::{self, Chunk};
use crate::telemetry::AppFamily;

impl Store {
    /// The `/metrics` body for the current generation, rendered at most once
    /// per generation. CPU-bound: call from a blocking context when large.
    pub fn render(&self) -> Arc<Rendered> {
        if let Some(r) = self.cached() {
            return r;
        }
        let mut memo = self.render_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Another scrape may have rendered while we waited.
        if let Some(r) = self.cached() {
            return r;
        }
        let started = Instant::now();
        let gen = self.generation();
        let (families, texts, apps) = walk(&self.lock(), &mut memo);
        let Layout {
            mut chunks,
            mut by_content,
            mut marks,
        } = lay_out(&families, texts);
        let mut own = Vec::with_capacity(4096);
        self.metrics.encode_rest(&mut own, apps);
        let own = Bytes::from(own);
        if !own.is_empty() {
            chunks.push(own.clone().into());
            by_content.push(false);
            marks.push(0);
        }
        let len = chunks.iter().map(Chunk::len).sum();
        self.metrics.observe_render(started.elapsed());
        let old = self.cache.load_full();
        let gzip_seed = old.as_ref().and_then(|old| old.gzip_runs());
        let seeds = old.map(|old| old.alt.gzip_runs()).unwrap_or_default();
        let rendered = Arc::new(Rendered {
            generation: gen,
            chunks,
            by_content,
            marks,
            len,
            gzip: OnceLock::new(),
            gzip_seed: Mutex::new(gzip_seed),
            alt: formats::Alternatives::new(families, own, seeds),
        });
        self.cache.store(Some(rendered.clone()));
        rendered
    }
}

/// The page's families with their blocks, and each family's chunks (text,
/// cut mark, batch), from one pass over the apps in the order their blocks
/// last changed; with the number of apps.
#[allow(clippy::type_complexity)]
fn walk(
    state: &super::State,
    memo: &mut RenderMemo,
) -> (
    Vec<formats::RenderFamily>,
    Vec<Vec<(Chunk, u64, u32)>>,
    usize,
) {
    // One pass over the apps hands each block to its family's list:
    // looking every owner up by name per family (8,000 map lookups at
    // 1,000 apps) was a fifth of the proxy's CPU under a steady push
    // load.
    //
    // The apps go in the order their blocks last changed (`seq`), so
    // in every family the apps that pushed since the last scrape are
    // together at the end, and those that push next (periodic
    // pushers, the oldest) together at the start: the gzip runs that
    // change are those two edges, not one run per pusher all over
    // the page (with apps in name order, 100 pushes a second among
    // 1,000 apps made 80% of the runs new at every scrape).
    let mut families: Vec<formats::RenderFamily> = state
        .families
        .iter()
        .map(|(name, idx)| formats::RenderFamily {
            name: name.clone(),
            typ: idx.typ,
            help: None,
            blocks: Vec::with_capacity(idx.owners.len()),
            marks: Vec::with_capacity(idx.owners.len()),
        })
        .collect();
    let position: HashMap<&str, usize, xxhash_rust::xxh3::Xxh3DefaultBuilder> = state
        .families
        .keys()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    // The per-app self-metric families ride along as families of
    // their own (after the pushed ones, as the self-metrics always
    // were), each app's lines a block kept from the last render while
    // its row is the same: only the apps that changed cost a line,
    // an OpenMetrics and protobuf form, and a gzip run again.
    let mut own_families: Vec<formats::RenderFamily> = AppFamily::ALL
        .iter()
        .map(|f| formats::RenderFamily {
            name: f.name(),
            typ: f.typ(),
            help: Some(f.help().to_owned()),
            blocks: Vec::with_capacity(state.apps.len()),
            marks: Vec::with_capacity(state.apps.len()),
        })
        .collect();
    memo.epoch = memo.epoch.wrapping_add(1);
    let epoch = memo.epoch;
    let mut order: Vec<&super::AppEntry> = state.apps.values().collect();
    order.sort_unstable_by_key(|e| e.seq);
    // A family's HELP is still that of the first app in name order
    // that has one (whatever the order of the blocks).
    let mut help_from: Vec<Option<&str>> = vec![None; families.len()];
    // Each family's chunks (the blocks' text and cut marks), taken
    // while the block is at hand: reading every block again when the
    // chunks are laid out missed the cache once more per block (a
    // third of the render's time at 1,000 apps × 100 series).
    let mut texts: Vec<Vec<(Chunk, u64, u32)>> = families
        .iter()
        .map(|f| Vec::with_capacity(f.blocks.capacity()))
        .collect();
    let mut own_texts: Vec<Vec<(Chunk, u64, u32)>> = AppFamily::ALL
        .iter()
        .map(|_| Vec::with_capacity(state.apps.len()))
        .collect();
    // Each block's batch, for the cuts between batches.
    let mut batches: Vec<Vec<u32>> = families
        .iter()
        .map(|f| Vec::with_capacity(f.blocks.capacity()))
        .collect();
    let mut own_batches: Vec<Vec<u32>> = AppFamily::ALL.iter().map(|_| Vec::new()).collect();
    for (i, entry) in order.iter().enumerate() {
        if i % WARM_WINDOW == 0 {
            warm_up(&order[i..order.len().min(i + WARM_WINDOW)]);
        }
        let batch = memo.batch_of(entry.seq);
        for block in &entry.families {
            let at = position[block.name.as_str()];
            let f = &mut families[at];
            if block.help.is_some()
                && help_from[at].is_none_or(|app| entry.info.name.as_str() < app)
            {
                f.help.clone_from(&block.help);
                help_from[at] = Some(&entry.info.name);
            }
            let mark = gzip::block_mark(block);
            f.blocks.push(block.clone());
            f.marks.push(mark);
            batches[at].push(batch);
            if !block.body.is_empty() {
                texts[at].push((block.body.clone(), mark, batch));
            }
        }
        let info = &entry.info;
        let key = (info.kind, info.series, info.last_update);
        // Each app's row is kept, and written again only when it changed
        // (rebuilding the map, and finding the lines' marks again, was a
        // twentieth of the proxy's CPU under a steady push load).
        let row = match memo.rows.get_mut(info.name.as_str()) {
            Some(row) => {
                if row.key != key {
                    *row = Row::of(info, key, epoch);
                }
                row
            }
            None => memo
                .rows
                .entry(info.name.clone())
                .or_insert_with(|| Row::of(info, key, epoch)),
        };
        row.epoch = epoch;
        let own = own_families
            .iter_mut()
            .zip(&mut own_texts)
            .zip(&mut own_batches);
        for (((f, t), batches), line) in own.zip(&row.lines) {
            if let Some((b, mark)) = line {
                t.push((b.body.clone(), *mark, batch));
                f.blocks.push(b.clone());
                f.marks.push(*mark);
                batches.push(batch);
            }
        }
    }
    // Every app has its row: more rows than apps are those of apps gone.
    if memo.rows.len() > state.apps.len() {
        memo.rows.retain(|_, row| row.epoch == epoch);
    }
    families.extend(own_families);
    texts.extend(own_texts);
    batches.extend(own_batches);
    for ((f, t), b) in families.iter_mut().zip(&mut texts).zip(&batches) {
        end_runs_between_batches(f.marks.iter_mut().zip(b));
        end_runs_between_batches(t.iter_mut().map(|(_, mark, batch)| (mark, &*batch)));
    }
    (families, texts, state.apps.len())
}

/// Apps whose blocks are read ahead together (see [`warm_up`]): a few
/// hundred blocks, whose lines stay in the cache until the walk reaches
/// them. Reading all of them ahead of the walk (at 1,000 apps × 100
/// series, 10,000 blocks) left them evicted by then: the walk missed the
/// cache a second time on the first read of each app's block, a quarter
/// of the render's own time under the steady benchmark.
const WARM_WINDOW: usize = 32;

/// Reads what the walk reads of every block (its counts, fields and name)
/// in a loop of independent loads, so that the cache misses on blocks
/// spread over the heap overlap. The walk's many steps per block left one
/// miss in flight at a time: the first read of each app's block was half
/// of the render's own time at 1,000 apps × 100 series.
fn warm_up(order: &[&super::AppEntry]) {
    let mut sum = 0usize;
    for entry in order {
        for b in &entry.families {
            sum = sum
                .wrapping_add(Arc::strong_count(b))
                .wrapping_add(b.digest as usize)
                .wrapping_add(b.body.len())
                .wrapping_add(b.name.as_bytes().first().copied().unwrap_or(0).into());
        }
    }
    std::hint::black_box(sum);
}

/// The chunks of a page, with per chunk whether it is a new buffer at
/// every render (the headers, which the gzip runs find again by their
/// bytes) and where a gzip run may end after it.
struct Layout {
    chunks: Vec<Chunk>,
    by_content: Vec<bool>,
    marks: Vec<u64>,
}

/// Each family's header, then its blocks' text (`texts`, with their cut
/// marks, in the family's order). All headers go into one buffer, sliced
/// into chunks that sit between the (shared) blocks of the apps.
fn lay_out(families: &[formats::RenderFamily], texts: Vec<Vec<(Chunk, u64, u32)>>) -> Layout {
    let mut headers = Vec::with_capacity(families.len() * 128);
    let mut header_ends = Vec::with_capacity(families.len());
    for f in families {
        exposition::encode_header(&mut headers, &f.name, f.help.as_deref(), f.typ);
        header_ends.push(headers.len());
    }
    let headers = Bytes::from(headers);
    let n = families.len() + 1 + texts.iter().map(Vec::len).sum::<usize>();
    let mut out = Layout {
        chunks: Vec::with_capacity(n),
        by_content: Vec::with_capacity(n),
        marks: Vec::with_capacity(n),
    };
    let mut start = 0;
    for (family, end) in texts.into_iter().zip(header_ends) {
        if end > start {
            let header = headers.slice(start..end);
            out.marks.push(gzip::text_mark(&header));
            out.chunks.push(header.into());
            out.by_content.push(true);
        }
        start = end;
        for (text, mark, _) in family {
            out.chunks.push(text);
            out.by_content.push(false);
            out.marks.push(mark);
        }
    }
    out
}

/// What a render keeps for the next one: each app's self-metric lines
/// (one block per [`AppFamily`]), with the row they were written from,
/// and the batches' bounds.
#[derive(Default)]
pub(super) struct RenderMemo {
    rows: HashMap<String, Row, xxhash_rust::xxh3::Xxh3DefaultBuilder>,
    /// The number of the last render (what each row was last seen by).
    epoch: u64,
    /// The last `seq` of each batch but the newest, oldest first (see
    /// [`Store::end_batch`]).
    batch_ends: std::collections::VecDeque<u64>,
}

/// Batches remembered: the oldest two merge past this (a cut fewer).
/// Under a steady push load each batch holds a scrape interval's pushes,
/// so this covers apps pushing up to 64 scrape intervals apart.
const MAX_BATCHES: usize = 64;

impl RenderMemo {
    /// The batch of an app whose blocks last changed at `seq`.
    fn batch_of(&self, seq: u64) -> u32 {
        self.batch_ends.partition_point(|&end| end < seq) as u32
    }
}

/// Makes a gzip run end after every block followed by one of another
/// batch (mark 0 ends a run; see `gzip::cut`). Takes each block's mark
/// and batch, in the family's order.
fn end_runs_between_batches<'a>(blocks: impl Iterator<Item = (&'a mut u64, &'a u32)>) {
    let mut last: Option<(&mut u64, u32)> = None;
    for (mark, &batch) in blocks {
        if let Some((prev, prev_batch)) = last.take() {
            if prev_batch != batch {
                *prev = 0;
            }
        }
        last = Some((mark, batch));
    }
}

impl Store {
    /// Ends the current batch of changes: the blocks changed since the
    /// last batch ended are cut from the later ones into gzip runs of
    /// their own. Called by a build ahead of a scrape (http::prebuild):
    /// the apps that push next are the ones that pushed a scrape interval
    /// ago, so they leave the front of each family a batch at a time, and
    /// those that push between the build ahead and the scrape join the
    /// end of the family after the built runs, which then all stay as
    /// they are (without the cut, the run at each family's end was
    /// compressed again at every scrape).
    pub fn end_batch(&self) {
        let mut memo = self.render_lock.lock().unwrap_or_else(|e| e.into_inner());
        let seq = self.lock().seq;
        if memo.batch_ends.back().is_some_and(|&end| end >= seq) {
            return;
        }
        memo.batch_ends.push_back(seq);
        if memo.batch_ends.len() > MAX_BATCHES {
            memo.batch_ends.pop_front();
        }
    }
}

/// What an app's self-metric lines are made of.
type RowKey = (AppKind, usize, Option<DateTime<Utc>>);
/// An app's line in each [`AppFamily`] (none without data yet), with its
/// cut mark.
type OwnLines = [Option<(Arc<FamilyBlock>, u64)>; 2];

/// An app's self-metric lines, what they were written from, and the last
/// render that saw the app.
struct Row {
    key: RowKey,
    lines: OwnLines,
    epoch: u64,
}

impl Row {
    fn of(info: &AppInfo, key: RowKey, epoch: u64) -> Row {
        Row {
            key,
            lines: own_lines(info),
            epoch,
        }
    }
}

/// The self-metric lines of one app, one block per [`AppFamily`].
fn own_lines(info: &AppInfo) -> OwnLines {
    let row = crate::telemetry::AppRow {
        name: &info.name,
        kind: info.kind.as_str(),
        series: info.series,
        last_update: info.last_update,
    };
    AppFamily::ALL.map(|f| {
        let mut line = Vec::with_capacity(64 + info.name.len());
        f.encode_line(&mut line, &row);
        (!line.is_empty()).then(|| {
            let block = Arc::new(FamilyBlock {
                name: f.name(),
                help: None,
                typ: f.typ(),
                body: Bytes::from(line).into(),
                keys: Vec::new(),
                digest: 0,
                rich: None,
                alt: exposition::AltEncodings::default(),
            });
            let mark = gzip::block_mark(&block);
            (block, mark)
        })
    })
}
