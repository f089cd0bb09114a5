//! The global series index: series key → the application that owns it.
//!
//! At a million series this is the store's largest structure after the
//! blocks themselves, so it is laid out for size (issue 19, point 4): an
//! open-addressing table of two parallel arrays, the 64-bit keys and a
//! 32-bit owner slot each (12 bytes a series), probed linearly, with a
//! capacity that grows by half rather than doubling (a `HashMap<u64,
//! Arc<str>>` took 24 bytes a bucket plus a control byte, at twice as many
//! buckets as series: about 50 MB at 1,000,000 series; this takes 15-23 MB).
//! Owners are slots of a small name table, reused when an app goes.
//!
//! Deletion shifts the following entries back (no tombstones), so lookups
//! stay short however many replace pushes come and go.

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::sync::Arc;

use super::FamilyBlock;
use crate::exposition::{self, ParseLimits};

/// The empty slot. A real key of 0 is kept aside in [`SeriesIndex::zero`].
const EMPTY: u64 = 0;
/// Smallest table.
const MIN_CAPACITY: usize = 16;

/// Series key → owner, see the module.
pub(super) struct SeriesIndex {
    keys: Vec<u64>,
    owners: Vec<u32>,
    /// Entries in the table (not counting `zero`).
    len: usize,
    /// The owner of the key 0, which cannot live in the table.
    zero: Option<u32>,
    /// Scatters keys over slots; random per index so that crafted series
    /// cannot pile up in one run of slots.
    seed: u64,
    /// Owner slot → application name; `None` when free.
    names: Vec<Option<Arc<str>>>,
    free: Vec<u32>,
}

impl Default for SeriesIndex {
    fn default() -> Self {
        use std::hash::BuildHasher;
        SeriesIndex {
            keys: Vec::new(),
            owners: Vec::new(),
            len: 0,
            zero: None,
            seed: RandomState::new().hash_one(0x5eed_u64) | 1,
            names: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl SeriesIndex {
    /// Number of series indexed.
    pub(super) fn len(&self) -> usize {
        self.len + usize::from(self.zero.is_some())
    }

    /// A slot for the owner `app`, to pass to [`Self::insert`].
    pub(super) fn add_owner(&mut self, app: &str) -> u32 {
        let name = Some(Arc::from(app));
        match self.free.pop() {
            Some(slot) => {
                self.names[slot as usize] = name;
                slot
            }
            None => {
                self.names.push(name);
                u32::try_from(self.names.len() - 1).expect("fewer than 2^32 apps")
            }
        }
    }

    /// Frees an owner slot; its series must have been removed.
    pub(super) fn remove_owner(&mut self, owner: u32) {
        if let Some(name) = self.names.get_mut(owner as usize) {
            if name.take().is_some() {
                self.free.push(owner);
            }
        }
    }

    /// The application of an owner slot.
    pub(super) fn owner_name(&self, owner: u32) -> &str {
        self.names
            .get(owner as usize)
            .and_then(|n| n.as_deref())
            .unwrap_or("")
    }

    /// The owner of `key`, if indexed.
    pub(super) fn get(&self, key: u64) -> Option<u32> {
        if key == EMPTY {
            return self.zero;
        }
        self.find(key).map(|i| self.owners[i])
    }

    /// Indexes `key` as owned by `owner` (replacing any previous owner).
    pub(super) fn insert(&mut self, key: u64, owner: u32) {
        if key == EMPTY {
            self.zero = Some(owner);
            return;
        }
        // Keep the load at most 4/5: past it, linear probing slows down.
        if (self.len + 1) * 5 > self.keys.len() * 4 {
            self.grow();
        }
        let mut i = self.home(key);
        loop {
            match self.keys[i] {
                EMPTY => {
                    self.keys[i] = key;
                    self.owners[i] = owner;
                    self.len += 1;
                    return;
                }
                k if k == key => {
                    self.owners[i] = owner;
                    return;
                }
                _ => i = self.next(i),
            }
        }
    }

    /// Removes `key`; returns whether it was indexed.
    pub(super) fn remove(&mut self, key: u64) -> bool {
        if key == EMPTY {
            return self.zero.take().is_some();
        }
        let Some(mut hole) = self.find(key) else {
            return false;
        };
        self.len -= 1;
        // Backward-shift deletion: move up every following entry of the run
        // that may live in the hole (its home is not strictly between the
        // hole and it, cyclically).
        let mut i = self.next(hole);
        while self.keys[i] != EMPTY {
            let home = self.home(self.keys[i]);
            let stays = if hole <= i {
                hole < home && home <= i
            } else {
                hole < home || home <= i
            };
            if !stays {
                self.keys[hole] = self.keys[i];
                self.owners[hole] = self.owners[i];
                hole = i;
            }
            i = self.next(i);
        }
        self.keys[hole] = EMPTY;
        // Shrink when mostly empty (a store that lost most of its apps).
        if self.keys.len() > MIN_CAPACITY && self.len * 5 < self.keys.len() {
            self.resize(self.len * 2);
        }
        true
    }

    /// Bytes held by the table and the name slots (not the names).
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        self.keys.capacity() * 8
            + self.owners.capacity() * 4
            + self.names.capacity() * std::mem::size_of::<Option<Arc<str>>>()
            + self.free.capacity() * 4
    }

    fn find(&self, key: u64) -> Option<usize> {
        if self.keys.is_empty() {
            return None;
        }
        let mut i = self.home(key);
        loop {
            match self.keys[i] {
                EMPTY => return None,
                k if k == key => return Some(i),
                _ => i = self.next(i),
            }
        }
    }

    /// The first slot to probe for `key`: a seeded multiply, then the high
    /// bits scaled to the capacity (which need not be a power of two).
    fn home(&self, key: u64) -> usize {
        let mixed = (u128::from(key) * u128::from(self.seed)) as u64
            ^ ((u128::from(key) * u128::from(self.seed)) >> 64) as u64;
        ((u128::from(mixed) * self.keys.len() as u128) >> 64) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.keys.len() {
            0
        } else {
            i + 1
        }
    }

    fn grow(&mut self) {
        let cap = self.keys.len();
        self.resize((cap + cap / 2).max(MIN_CAPACITY));
    }

    /// Rebuilds the table with `capacity` slots (at least the minimum and
    /// room for every entry).
    fn resize(&mut self, capacity: usize) {
        let capacity = capacity.max(MIN_CAPACITY).max(self.len * 5 / 4 + 1);
        let keys = std::mem::replace(&mut self.keys, vec![EMPTY; capacity]);
        let owners = std::mem::replace(&mut self.owners, vec![0; capacity]);
        self.len = 0;
        for (k, o) in keys.into_iter().zip(owners) {
            if k != EMPTY {
                let mut i = self.home(k);
                while self.keys[i] != EMPTY {
                    i = self.next(i);
                }
                self.keys[i] = k;
                self.owners[i] = o;
                self.len += 1;
            }
        }
    }
}

/// Number of series in a block: its lines (one series each).
pub(super) fn count(b: &Arc<FamilyBlock>) -> usize {
    if b.keys.is_empty() {
        memchr::memchr_iter(b'\n', &b.body.text()).count()
    } else {
        b.keys.len()
    }
}

/// The series keys of a block: kept until it is indexed, then computed
/// again from its text when needed (to take it out of the index), in
/// proportion to the block.
pub(super) fn keys_of(b: &FamilyBlock) -> Cow<'_, [u64]> {
    if b.keys.is_empty() && !b.body.is_empty() {
        Cow::Owned(recompute(b))
    } else {
        Cow::Borrowed(&b.keys)
    }
}

/// Empties the key lists of indexed blocks that nothing else shares yet
/// (a fresh push's): the index holds the keys, and [`keys_of`] can compute
/// them again. In test builds, checks that it computes the same ones.
pub(super) fn drop_keys(families: &mut [Arc<FamilyBlock>]) {
    for f in families {
        if f.keys.is_empty() {
            continue;
        }
        if let Some(b) = Arc::get_mut(f) {
            #[cfg(test)]
            {
                let mut again = recompute(b);
                let mut kept = b.keys.clone();
                again.sort_unstable();
                kept.sort_unstable();
                assert_eq!(
                    again, kept,
                    "keys of block {} computed from its text",
                    b.name
                );
            }
            b.keys = Vec::new();
        }
    }
}

/// The keys of a block's lines, from its text: the lines are our encoder's,
/// with every label the push added, so the parser (under the family's TYPE
/// line) reads them back as the series they were hashed from.
fn recompute(b: &FamilyBlock) -> Vec<u64> {
    let mut text = Vec::with_capacity(b.body.len() + b.name.len() + 32);
    exposition::encode_header(&mut text, &b.name, None, b.typ);
    b.body.write_to(&mut text);
    let parsed = std::str::from_utf8(&text)
        .map_err(|e| e.to_string())
        .and_then(|t| exposition::parse(t, &ParseLimits::default()).map_err(|e| e.to_string()));
    match parsed {
        Ok(exp) => exp
            .families
            .iter()
            .flat_map(|f| &f.samples)
            .map(|s| exposition::series_key(s, &[]))
            .collect(),
        Err(e) => {
            // Our own encoder wrote the lines: this is a bug, not bad input.
            debug_assert!(false, "block {} does not parse back: {e}", b.name);
            tracing::error!(family = %b.name, error = %e, "a stored block does not parse back");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A small deterministic generator (splitmix64).
    fn rng(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn agrees_with_a_hash_map_under_random_inserts_and_removes() {
        let mut index = SeriesIndex::default();
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut state = 7;
        // Few distinct keys (so removes hit), some of them 0, and crowded
        // low values so that runs wrap around and shift back.
        for round in 0..200_000u32 {
            let r = rng(&mut state);
            let key = match r % 7 {
                0 => 0,
                1 => r >> 60,
                _ => (r >> 8) % 5_000,
            };
            match rng(&mut state) % 3 {
                0 | 1 => {
                    index.insert(key, round);
                    model.insert(key, round);
                }
                _ => assert_eq!(index.remove(key), model.remove(&key).is_some()),
            }
            if round % 997 == 0 {
                assert_eq!(index.len(), model.len());
                for k in 0..5_000 {
                    assert_eq!(index.get(k), model.get(&k).copied(), "key {k}");
                }
            }
        }
        for (k, o) in &model {
            assert_eq!(index.get(*k), Some(*o));
        }
        let keys: Vec<u64> = model.keys().copied().collect();
        for k in keys {
            assert!(index.remove(k));
        }
        assert_eq!(index.len(), 0);
        assert!(index.keys.len() <= 2 * MIN_CAPACITY, "{}", index.keys.len());
    }

    #[test]
    fn grows_by_half_and_keeps_every_key() {
        let mut index = SeriesIndex::default();
        let mut state = 1;
        let keys: Vec<u64> = (0..100_000).map(|_| rng(&mut state)).collect();
        for (i, k) in keys.iter().enumerate() {
            index.insert(*k, i as u32);
        }
        assert_eq!(index.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(index.get(*k), Some(i as u32));
        }
        assert_eq!(index.get(12345), None);
        // At most 4/5 full, at least about half full: 12 bytes a slot.
        let cap = index.keys.len();
        assert!(
            cap * 4 >= keys.len() * 5 && cap * 8 <= keys.len() * 17,
            "{cap}"
        );
        assert!(
            index.heap_bytes() <= keys.len() * 26,
            "{}",
            index.heap_bytes()
        );
    }

    #[test]
    fn owner_slots_are_reused() {
        let mut index = SeriesIndex::default();
        let a = index.add_owner("a");
        let b = index.add_owner("b");
        assert_ne!(a, b);
        assert_eq!(index.owner_name(b), "b");
        index.remove_owner(a);
        index.remove_owner(a);
        let c = index.add_owner("c");
        assert_eq!(c, a);
        assert_eq!(index.owner_name(c), "c");
        let d = index.add_owner("d");
        assert_ne!(d, a);
        assert_ne!(d, b);
    }

    /// Through the store: apps push random sets of series from a small
    /// universe, are removed and come back (so owner slots are reused);
    /// every push is accepted exactly when no other app holds one of its
    /// series, and a refusal names the app that does.
    #[test]
    fn duplicate_series_are_refused_exactly_across_apps() {
        use std::collections::BTreeMap;

        use crate::store::{AppKind, Store, StoreOptions};
        use crate::telemetry::SelfMetrics;

        let store = Store::new(StoreOptions::default(), SelfMetrics::new());
        // App → its series (indexes into the universe of `m{s="i"}`).
        let mut model: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut state = 3;
        for round in 0..600 {
            let app = format!("app{}", rng(&mut state) % 12);
            if rng(&mut state).is_multiple_of(5) {
                assert_eq!(store.remove(&app), model.remove(&app).is_some());
                continue;
            }
            let mut set: Vec<u32> = (0..1 + rng(&mut state) % 6)
                .map(|_| (rng(&mut state) % 40) as u32)
                .collect();
            set.sort_unstable();
            set.dedup();
            let mut text = String::from("# TYPE m gauge\n");
            for s in &set {
                text.push_str(&format!("m{{s=\"{s}\"}} {round}\n"));
            }
            let holder = set.iter().find_map(|s| {
                model
                    .iter()
                    .find(|(a, held)| **a != app && held.contains(s))
                    .map(|(a, _)| (a.clone(), *s))
            });
            match (store.push(&app, &text, AppKind::Push, "test"), holder) {
                (Ok(n), None) => {
                    assert_eq!(n, set.len());
                    model.insert(app, set);
                }
                (Err(e), Some(_)) => {
                    assert!(
                        model.iter().any(|(a, held)| *a != app
                            && held.iter().any(|s| e.message
                                == format!(
                                    "series m{{s=\"{s}\"}} is already pushed by app {a:?} \
                                     (set `receiver.app_label` to tell apps apart)"
                                ))),
                        "round {round}: {e}"
                    );
                }
                (got, want) => {
                    panic!("round {round}: app {app} pushed {set:?}: {got:?}, held by {want:?}")
                }
            }
            assert_eq!(
                store.counts(),
                (model.len(), model.values().map(Vec::len).sum())
            );
        }
    }

    /// What the store keeps per series: no key list in the stored blocks
    /// (same-series replaces, changed series, merges, removals), and an
    /// index of about 12 bytes a slot; the keys computed again from the
    /// text take the series out exactly (another app may then push them).
    #[test]
    fn stored_blocks_keep_no_keys_and_the_index_stays_small() {
        use crate::store::{AppKind, Store, StoreOptions};
        use crate::telemetry::SelfMetrics;

        let text = |app: usize, round: usize, extra: usize| {
            let mut t = String::from("# TYPE h histogram\n");
            for i in 0..20 {
                for le in ["0.1", "1", "+Inf"] {
                    t.push_str(&format!(
                        "h_bucket{{a=\"{app}\",i=\"{i}\",le=\"{le}\"}} {round}\n"
                    ));
                }
                t.push_str(&format!("h_sum{{a=\"{app}\",i=\"{i}\"}} {round}\nh_count{{a=\"{app}\",i=\"{i}\"}} {round}\n"));
            }
            t.push_str("# TYPE g gauge\n");
            for i in 0..50 + extra {
                t.push_str(&format!("g{{a=\"{app}\",i=\"{i}\"}} {round}\n"));
            }
            t
        };
        let store = Store::new(StoreOptions::default(), SelfMetrics::new());
        for app in 0..40 {
            store
                .push(&format!("app{app}"), &text(app, 0, 0), AppKind::Push, "t")
                .unwrap();
        }
        // Same series, new values; then more series; then a merge.
        store
            .push("app0", &text(0, 1, 0), AppKind::Push, "t")
            .unwrap();
        store
            .push("app1", &text(1, 1, 5), AppKind::Push, "t")
            .unwrap();
        let p = store
            .prepare("app2", "# TYPE z counter\nz_total 1\n")
            .unwrap();
        store.commit_merge(p, AppKind::Push, "t").unwrap();
        let per_app = 20 * 5 + 50;
        let total = 40 * per_app + 5 + 1;
        assert_eq!(store.counts(), (40, total));
        {
            let state = store.lock();
            for (name, e) in &state.apps {
                assert!(e.families.iter().all(|f| f.keys.is_empty()), "{name}");
            }
            assert_eq!(state.series.len(), total);
            assert!(
                state.series.heap_bytes() <= total * 24,
                "{}",
                state.series.heap_bytes()
            );
        }
        // Taking app1 out frees exactly its series; app3 takes them over
        // and frees its own, which app4 may then push.
        assert!(store.remove("app1"));
        assert_eq!(store.counts(), (39, total - per_app - 5));
        let err = store
            .push("app4", &text(3, 2, 0), AppKind::Push, "t")
            .unwrap_err();
        assert!(
            err.message.contains("already pushed by app \"app3\""),
            "{err}"
        );
        let err = store
            .push("app4", &text(0, 2, 0), AppKind::Push, "t")
            .unwrap_err();
        assert!(
            err.message.contains("already pushed by app \"app0\""),
            "{err}"
        );
        store
            .push("app3", &text(1, 3, 5), AppKind::Push, "t")
            .unwrap();
        store
            .push("app4", &text(3, 2, 0), AppKind::Push, "t")
            .unwrap();
        assert_eq!(store.counts(), (39, total - per_app));
    }
}
