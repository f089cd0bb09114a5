//! Packing the store's text: above `pack_above_series` series the blocks
//! are kept LZ4-packed ([`exposition::Chunk`]), about a fifth of their
//! size. A push prepared while the store packs is packed before it is
//! committed (outside the lock); the commit that turns packing on packs
//! the blocks already stored.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{FamilyBlock, State, Store};
use crate::exposition;

impl Store {
    /// Whether pushes prepared now keep their text packed: from the commit
    /// that takes the store above `pack_above_series` series until one
    /// leaves it under half that (not back and forth around one size).
    pub(super) fn packs(&self) -> bool {
        self.packing.load(Ordering::Relaxed)
    }

    /// Turns packing on or off after a commit left `state` at its size.
    /// When it turns on, returns the apps holding plain blocks, to pack
    /// (see [`Store::repack`]).
    pub(super) fn note_size(&self, state: &State) -> Option<Vec<(String, Vec<Arc<FamilyBlock>>)>> {
        let series = state.series.len();
        let limit = self.options.pack_above_series;
        if self.packs() {
            if series < limit / 2 {
                self.packing.store(false, Ordering::Relaxed);
                tracing::info!(
                    series,
                    series_above = limit,
                    "the store keeps new pushes plain from now on (the packed ones stay packed until pushed again)"
                );
            }
            return None;
        }
        if series <= limit {
            return None;
        }
        self.packing.store(true, Ordering::Relaxed);
        let plain = state
            .app_blocks()
            .filter(|(_, blocks)| blocks.iter().any(|f| !f.body.is_packed()))
            .collect();
        Some(plain)
    }

    /// Packs the blocks of `apps` taken as they were (by [`Store::note_size`]),
    /// one app at a time outside the lock, and puts each app's packed blocks
    /// in place of those unless it pushed since. Once per turn to packing,
    /// in proportion to what is stored (its time is logged).
    pub(super) fn repack(&self, apps: Vec<(String, Vec<Arc<FamilyBlock>>)>) {
        let started = std::time::Instant::now();
        let mut packed_apps = 0;
        for (app, plain) in apps {
            let packed: Vec<Arc<FamilyBlock>> = plain.iter().map(packed_block).collect();
            let mut state = self.lock();
            let Some(entry) = state.apps.get_mut(&app) else {
                continue;
            };
            let unchanged = entry.families.len() == plain.len()
                && entry
                    .families
                    .iter()
                    .zip(&plain)
                    .all(|(a, b)| Arc::ptr_eq(a, b));
            if unchanged {
                entry.families = packed;
                packed_apps += 1;
            }
        }
        tracing::info!(
            apps = packed_apps,
            elapsed_ms = started.elapsed().as_millis() as u64,
            series_above = self.options.pack_above_series,
            "the store keeps its text packed from now on"
        );
        self.bump();
    }
}

/// `b` with its text packed (the other encodings are made again, packed,
/// when a scrape asks for them).
fn packed_block(b: &Arc<FamilyBlock>) -> Arc<FamilyBlock> {
    if b.body.is_packed() {
        return b.clone();
    }
    Arc::new(FamilyBlock {
        name: b.name.clone(),
        help: b.help.clone(),
        typ: b.typ,
        body: b.body.packed(),
        keys: b.keys.clone(),
        digest: b.digest,
        rich: b.rich.clone(),
        alt: exposition::AltEncodings::default(),
    })
}
