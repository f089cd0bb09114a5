//! Rendering `/metrics`: the page as a list of shared chunks (family
//! headers, the apps' blocks, the per-app self-metric lines, the rest of
//! the self-metrics), once per generation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{formats, gzip, AppInfo, AppKind, FamilyBlock, Rendered, Store};
use crate::exposition;
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
        let (families, texts, apps) = {
            let state = self.lock();
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
                })
                .collect();
            let mut rows = HashMap::with_capacity_and_hasher(state.apps.len(), Default::default());
            let mut order: Vec<&super::AppEntry> = state.apps.values().collect();
            order.sort_unstable_by_key(|e| e.seq);
            // A family's HELP is still that of the first app in name order
            // that has one (whatever the order of the blocks).
            let mut help_from: Vec<Option<&str>> = vec![None; families.len()];
            // Each family's chunks (the blocks' text and cut marks), taken
            // while the block is at hand: reading every block again when the
            // chunks are laid out missed the cache once more per block (a
            // third of the render's time at 1,000 apps × 100 series).
            let mut texts: Vec<Vec<(Bytes, u64)>> = families
                .iter()
                .map(|f| Vec::with_capacity(f.blocks.capacity()))
                .collect();
            let mut own_texts: Vec<Vec<(Bytes, u64)>> = AppFamily::ALL
                .iter()
                .map(|_| Vec::with_capacity(state.apps.len()))
                .collect();
            for entry in order {
                for block in &entry.families {
                    let at = position[block.name.as_str()];
                    let f = &mut families[at];
                    if block.help.is_some()
                        && help_from[at].is_none_or(|app| entry.info.name.as_str() < app)
                    {
                        f.help.clone_from(&block.help);
                        help_from[at] = Some(&entry.info.name);
                    }
                    f.blocks.push(block.clone());
                    if !block.body.is_empty() {
                        texts[at].push((block.body.clone(), gzip::block_mark(block)));
                    }
                }
                let info = &entry.info;
                let key = (info.kind, info.series, info.last_update);
                let (name, lines) = match memo.rows.remove_entry(info.name.as_str()) {
                    Some((name, (k, lines))) if k == key => (name, lines),
                    _ => (info.name.clone(), own_lines(info)),
                };
                for ((f, t), line) in own_families.iter_mut().zip(&mut own_texts).zip(&lines) {
                    if let Some(b) = line {
                        t.push((b.body.clone(), gzip::block_mark(b)));
                        f.blocks.push(b.clone());
                    }
                }
                rows.insert(name, (key, lines));
            }
            memo.rows = rows;
            families.extend(own_families);
            texts.extend(own_texts);
            (families, texts, state.apps.len())
        };
        let Layout {
            mut chunks,
            mut by_content,
            mut marks,
        } = lay_out(&families, texts);
        let mut own = Vec::with_capacity(4096);
        self.metrics.encode_rest(&mut own, apps);
        let own = Bytes::from(own);
        if !own.is_empty() {
            chunks.push(own.clone());
            by_content.push(false);
            marks.push(0);
        }
        let len = chunks.iter().map(Bytes::len).sum();
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

/// The chunks of a page, with per chunk whether it is a new buffer at
/// every render (the headers, which the gzip runs find again by their
/// bytes) and where a gzip run may end after it.
struct Layout {
    chunks: Vec<Bytes>,
    by_content: Vec<bool>,
    marks: Vec<u64>,
}

/// Each family's header, then its blocks' text (`texts`, with their cut
/// marks, in the family's order). All headers go into one buffer, sliced
/// into chunks that sit between the (shared) blocks of the apps.
fn lay_out(families: &[formats::RenderFamily], texts: Vec<Vec<(Bytes, u64)>>) -> Layout {
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
            out.chunks.push(header);
            out.by_content.push(true);
        }
        start = end;
        for (text, mark) in family {
            out.chunks.push(text);
            out.by_content.push(false);
            out.marks.push(mark);
        }
    }
    out
}

/// What a render keeps for the next one: each app's self-metric lines
/// (one block per [`AppFamily`]), with the row they were written from.
#[derive(Default)]
pub(super) struct RenderMemo {
    rows: HashMap<String, (RowKey, OwnLines), xxhash_rust::xxh3::Xxh3DefaultBuilder>,
}

/// What an app's self-metric lines are made of.
type RowKey = (AppKind, usize, Option<DateTime<Utc>>);
/// An app's line in each [`AppFamily`] (none without data yet).
type OwnLines = [Option<Arc<FamilyBlock>>; 2];

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
            Arc::new(FamilyBlock {
                name: f.name(),
                help: None,
                typ: f.typ(),
                body: Bytes::from(line),
                keys: Vec::new(),
                digest: 0,
                rich: None,
                alt: exposition::AltEncodings::default(),
            })
        })
    })
}
