//! The store: application name → its current metric set, and the cached
//! rendering of everything as one valid exposition.
//!
//! A push is parsed, validated and encoded *outside* any lock
//! ([`Store::prepare`]); under the lock only the cross-application checks run
//! (type conflicts, colliding derived names, duplicate series) and the new set
//! is swapped in whole, so a scrape sees either the old set or the new one.
//! The work done under the lock is proportional to the size of the push, not
//! to the size of the store: families and series are indexed globally.
//!
//! Scrapes never take the state lock for long: [`Store::render`] serves a
//! cached body while the generation counter is unchanged, and otherwise
//! clones reference-counted, pre-encoded family blocks under the lock and
//! lays them out (with the family headers) as the chunks of the body
//! outside it, without copying them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::exposition::{self, MetricType, ParseLimits};
use crate::telemetry::{RejectReason, SelfMetrics};

/// Longest accepted application name, in bytes.
pub const MAX_APP_NAME_BYTES: usize = 256;

/// Where an application's metrics come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AppKind {
    /// Pushed over a socket (JSON, Cap'n Proto or RPC).
    Push,
    /// Polled from another exporter.
    Poll,
}

impl AppKind {
    /// Name shown in `/apps`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppKind::Push => "push",
            AppKind::Poll => "poll",
        }
    }
}

/// Why a push was refused. Displayed as the message sent back to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct PushError {
    /// Small closed set, used as a metric label.
    pub reason: RejectReason,
    /// The application concerned (may be empty when the name itself is bad).
    pub app: String,
    /// What was wrong, naming the line, the family or the other application.
    pub message: String,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "app {:?}: {}", self.app, self.message)
    }
}

impl std::error::Error for PushError {}

impl PushError {
    fn new(reason: RejectReason, app: &str, message: impl Into<String>) -> Self {
        PushError {
            reason,
            app: app.to_owned(),
            message: message.into(),
        }
    }
}

/// Store-wide limits.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Series per application.
    pub max_series_per_app: usize,
    /// Distinct applications.
    pub max_apps: usize,
    /// Label injected into every series with the app name.
    pub app_label: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        let l = crate::config::Limits::default();
        StoreOptions {
            max_series_per_app: l.max_series_per_app,
            max_apps: l.max_apps,
            app_label: None,
        }
    }
}

/// One family of one application, encoded once at ingest.
#[derive(Debug)]
struct FamilyBlock {
    name: String,
    typ: MetricType,
    help: Option<String>,
    /// The sample lines, ready to be concatenated into `/metrics`.
    body: Bytes,
    /// Series identities, in the order of the lines of `body`.
    keys: Vec<u64>,
}

/// A push that parsed and validated on its own, not yet applied.
#[derive(Debug)]
pub struct Prepared {
    app: String,
    families: Vec<Arc<FamilyBlock>>,
    series: usize,
}

impl Prepared {
    /// The application this push is for.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Number of series in the push.
    pub fn series(&self) -> usize {
        self.series
    }
}

/// What `/apps` shows about one application.
#[derive(Debug, Clone, PartialEq)]
pub struct AppInfo {
    /// Application name.
    pub name: String,
    /// Push or poll.
    pub kind: AppKind,
    /// Who sent the current set (socket path and peer, or peer address).
    pub source: String,
    /// When the current set was accepted.
    pub last_update: DateTime<Utc>,
    /// Number of series in the current set.
    pub series: usize,
    /// Last refused push, if it came after the last accepted one.
    pub last_error: Option<String>,
    /// When that refusal happened.
    pub last_error_time: Option<DateTime<Utc>>,
}

impl AppInfo {
    /// `ok`, or `rejected` while the last attempt was refused.
    pub fn status(&self) -> &'static str {
        if self.last_error.is_some() {
            "rejected"
        } else {
            "ok"
        }
    }
}

struct AppEntry {
    info: AppInfo,
    /// Sorted by family name.
    families: Vec<Arc<FamilyBlock>>,
}

/// Global index entry of one family name.
struct FamilyIndex {
    typ: MetricType,
    owners: BTreeSet<String>,
}

#[derive(Default)]
struct State {
    apps: BTreeMap<String, AppEntry>,
    families: BTreeMap<String, FamilyIndex>,
    /// Sample name → family that reserves it (e.g. `foo_bucket` → `foo`).
    reserved: HashMap<String, String>,
    /// Series identity → owning application. 64-bit hashes: a false
    /// collision needs ~4·10⁹ series to become likely, far beyond our limits.
    series: HashMap<u64, Arc<str>, SeriesKeyHasher>,
}

/// Hashers for the series index. Its keys are already xxh3 hashes, so
/// running SipHash over them again was wasted work (three lookups per series
/// per push); but xxh3 is unkeyed, so a per-process random seed is folded in
/// with one 64×64→128-bit multiply to keep crafted series from piling into
/// one bucket.
#[derive(Clone)]
struct SeriesKeyHasher(u64);

impl Default for SeriesKeyHasher {
    fn default() -> Self {
        use std::hash::BuildHasher;
        SeriesKeyHasher(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
    }
}

impl std::hash::BuildHasher for SeriesKeyHasher {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(self.0)
    }
}

/// See [`SeriesKeyHasher`].
struct FoldHasher(u64);

impl std::hash::Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; stay correct for anything else.
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        let m = u128::from(x ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A rendered `/metrics` body for one generation of the store.
///
/// The body is kept as the sequence of its chunks: the family headers and
/// the applications' pre-encoded blocks, shared with the store rather than
/// copied. Serving it writes the chunks one after the other; nothing ever
/// concatenates the whole page (at a million series that copy cost 85 MB of
/// memory and a quarter of a second per change).
#[derive(Debug)]
pub struct Rendered {
    /// Store generation this body reflects.
    pub generation: u64,
    /// The exposition text, in order; no chunk is empty.
    chunks: Vec<Bytes>,
    len: usize,
    gzip: OnceLock<Bytes>,
}

impl Rendered {
    /// The chunks of the exposition text, in order.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// Length of the exposition text in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the exposition is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole exposition text as one buffer (a copy; for tests and
    /// small uses, not for serving).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.len);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        Bytes::from(out)
    }

    /// Whether the gzip body was already computed.
    pub fn has_gzip(&self) -> bool {
        self.gzip.get().is_some()
    }

    /// The body compressed with gzip, computed once per generation.
    pub fn gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| {
                // Level 1: metrics text compresses ~10x even at the fastest
                // level, and the body is re-compressed after every change.
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.len / 8),
                    flate2::Compression::fast(),
                );
                for c in &self.chunks {
                    enc.write_all(c).expect("writing to a Vec cannot fail");
                }
                Bytes::from(enc.finish().expect("writing to a Vec cannot fail"))
            })
            .clone()
    }
}

/// The shared store handle.
pub struct Store {
    /// A `Mutex`, not an `RwLock`: writers dominate, and readers (renders)
    /// only clone `Arc`s while holding it. Never held across `.await`.
    state: Mutex<State>,
    generation: Arc<AtomicU64>,
    cache: ArcSwapOption<Rendered>,
    /// Serialises renders so that concurrent scrapes of a changed store
    /// render it once.
    render_lock: Mutex<()>,
    options: StoreOptions,
    metrics: Arc<SelfMetrics>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Validates an application name: non-empty, bounded, no control characters.
pub fn validate_app_name(app: &str) -> Result<(), PushError> {
    if app.is_empty() {
        return Err(PushError::new(
            RejectReason::InvalidAppName,
            app,
            "the application name is empty",
        ));
    }
    if app.len() > MAX_APP_NAME_BYTES {
        return Err(PushError::new(
            RejectReason::InvalidAppName,
            &app[..app.floor_char_boundary(64)],
            format!("the application name is longer than {MAX_APP_NAME_BYTES} bytes"),
        ));
    }
    if let Some(c) = app.chars().find(|c| c.is_control()) {
        return Err(PushError::new(
            RejectReason::InvalidAppName,
            app,
            format!("the application name contains the control character {c:?}"),
        ));
    }
    Ok(())
}

impl Store {
    /// Creates an empty store reporting into `metrics`.
    pub fn new(options: StoreOptions, metrics: Arc<SelfMetrics>) -> Self {
        Store {
            state: Mutex::new(State::default()),
            generation: metrics.generation(),
            cache: ArcSwapOption::empty(),
            render_lock: Mutex::new(()),
            options,
            metrics,
        }
    }

    /// The self-metrics this store reports into.
    pub fn metrics(&self) -> &Arc<SelfMetrics> {
        &self.metrics
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent map (every
        // mutation is a whole-entry swap), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Parses, validates and encodes a push for `app`. Pure CPU work, no lock.
    pub fn prepare(&self, app: &str, text: &str) -> Result<Prepared, PushError> {
        validate_app_name(app)?;
        if text.starts_with('\u{feff}') {
            return Err(PushError::new(
                RejectReason::ParseError,
                app,
                "line 1: unexpected byte order mark; send plain UTF-8",
            ));
        }
        let limits = ParseLimits {
            max_series: self.options.max_series_per_app,
            ..ParseLimits::default()
        };
        let exp = exposition::parse(text, &limits).map_err(|e| {
            let reason = if e.message.starts_with("too many series") {
                RejectReason::TooManySeries
            } else {
                RejectReason::ParseError
            };
            PushError::new(reason, app, e.to_string())
        })?;
        let mut series = 0;
        let mut families = Vec::with_capacity(exp.families.len());
        let extra_owned = self.options.app_label.as_deref().map(|l| (l, app));
        let extra: &[(&str, &str)] = match &extra_owned {
            Some(pair) => std::slice::from_ref(pair),
            None => &[],
        };
        // Lines are encoded into one scratch buffer and copied out at their
        // exact size: blocks live as long as the app's set, and growing a
        // guessed capacity left up to half of every block unused.
        let mut scratch = Vec::with_capacity(text.len().min(1 << 20));
        for fam in exp.families {
            if fam.name.starts_with(crate::telemetry::PREFIX) {
                return Err(PushError::new(
                    RejectReason::Conflict,
                    app,
                    format!(
                        "family {} uses the prefix {} reserved for the proxy's own metrics",
                        fam.name,
                        crate::telemetry::PREFIX
                    ),
                ));
            }
            scratch.clear();
            let mut keys = Vec::with_capacity(fam.samples.len());
            for s in &fam.samples {
                exposition::encode_sample(&mut scratch, s, extra);
                keys.push(exposition::series_key(s, extra));
            }
            series += keys.len();
            families.push(FamilyBlock {
                name: fam.name,
                typ: fam.typ,
                help: fam.help,
                body: Bytes::copy_from_slice(&scratch),
                keys,
            });
        }
        families.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Prepared {
            app: app.to_owned(),
            families: families.into_iter().map(Arc::new).collect(),
            series,
        })
    }

    /// Parses and applies one push. On error nothing changes.
    pub fn push(
        &self,
        app: &str,
        text: &str,
        kind: AppKind,
        source: &str,
    ) -> Result<usize, PushError> {
        let result = self
            .prepare(app, text)
            .and_then(|p| self.commit(vec![p], kind, source));
        if let Err(e) = &result {
            self.record_rejection(e);
        }
        result
    }

    /// Applies several prepared pushes atomically: all of them or none.
    /// Returns the number of series applied.
    pub fn commit(
        &self,
        batch: Vec<Prepared>,
        kind: AppKind,
        source: &str,
    ) -> Result<usize, PushError> {
        let now = Utc::now();
        let mut state = self.lock();
        let mut undo: Vec<(String, Option<AppEntry>)> = Vec::with_capacity(batch.len());
        let mut total = 0;
        for p in batch {
            if let Err(e) = state.check(&p, &self.options) {
                for (app, old) in undo.into_iter().rev() {
                    state.remove_app(&app);
                    if let Some(old) = old {
                        state.insert_app(old);
                    }
                }
                return Err(e);
            }
            total += p.series;
            let app = p.app.clone();
            let old = state.remove_app(&app);
            state.insert_app(AppEntry {
                info: AppInfo {
                    name: p.app,
                    kind,
                    source: source.to_owned(),
                    last_update: now,
                    series: p.series,
                    last_error: None,
                    last_error_time: None,
                },
                families: p.families,
            });
            undo.push((app, old));
        }
        drop(state);
        self.bump();
        Ok(total)
    }

    /// Notes a refused push on the application (if it exists) for `/apps`.
    pub fn record_rejection(&self, e: &PushError) {
        let mut state = self.lock();
        if let Some(entry) = state.apps.get_mut(&e.app) {
            entry.info.last_error = Some(e.message.clone());
            entry.info.last_error_time = Some(Utc::now());
        }
        drop(state);
        self.bump();
    }

    /// Removes an application and its series. Returns whether it existed.
    pub fn remove(&self, app: &str) -> bool {
        let existed = self.lock().remove_app(app).is_some();
        if existed {
            self.bump();
        }
        existed
    }

    /// A copy of every application's `/apps` row, sorted by name.
    pub fn apps(&self) -> Vec<AppInfo> {
        self.lock().apps.values().map(|e| e.info.clone()).collect()
    }

    /// Number of applications and of series.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        (s.apps.len(), s.series.len())
    }

    /// The current generation; changes with every change of the store or
    /// of the self-metrics.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The cached body if it is current, without rendering.
    pub fn cached(&self) -> Option<Arc<Rendered>> {
        let gen = self.generation();
        self.cache.load_full().filter(|r| r.generation == gen)
    }

    /// The `/metrics` body for the current generation, rendered at most once
    /// per generation. CPU-bound: call from a blocking context when large.
    pub fn render(&self) -> Arc<Rendered> {
        if let Some(r) = self.cached() {
            return r;
        }
        let _guard = self.render_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Another scrape may have rendered while we waited.
        if let Some(r) = self.cached() {
            return r;
        }
        let started = Instant::now();
        let gen = self.generation();
        let (families, apps) = {
            let state = self.lock();
            let families: Vec<(String, MetricType, Option<String>, Vec<Bytes>)> = state
                .families
                .iter()
                .map(|(name, idx)| {
                    let mut help = None;
                    let mut bodies = Vec::with_capacity(idx.owners.len());
                    for owner in &idx.owners {
                        let entry = &state.apps[owner];
                        let block = entry
                            .families
                            .binary_search_by(|f| f.name.as_str().cmp(name))
                            .map(|i| &entry.families[i])
                            .expect("index and apps agree");
                        if help.is_none() {
                            help.clone_from(&block.help);
                        }
                        bodies.push(block.body.clone());
                    }
                    (name.clone(), idx.typ, help, bodies)
                })
                .collect();
            let apps: Vec<AppInfo> = state.apps.values().map(|e| e.info.clone()).collect();
            (families, apps)
        };
        // All family headers go into one buffer, sliced into chunks that sit
        // between the (shared) blocks of the apps.
        let mut headers = Vec::with_capacity(families.len() * 128);
        let mut header_ends = Vec::with_capacity(families.len());
        for (name, typ, help, _) in &families {
            exposition::encode_header(&mut headers, name, help.as_deref(), *typ);
            header_ends.push(headers.len());
        }
        let headers = Bytes::from(headers);
        let mut chunks = Vec::with_capacity(
            families.len() + 1 + families.iter().map(|f| f.3.len()).sum::<usize>(),
        );
        let mut start = 0;
        for ((_, _, _, bodies), end) in families.into_iter().zip(header_ends) {
            chunks.push(headers.slice(start..end));
            start = end;
            chunks.extend(bodies.into_iter().filter(|b| !b.is_empty()));
        }
        let mut own = Vec::with_capacity(4096 + apps.len() * 160);
        self.metrics.encode(&mut own, &apps);
        chunks.push(Bytes::from(own));
        chunks.retain(|c| !c.is_empty());
        let len = chunks.iter().map(Bytes::len).sum();
        self.metrics.observe_render(started.elapsed());
        let rendered = Arc::new(Rendered {
            generation: gen,
            chunks,
            len,
            gzip: OnceLock::new(),
        });
        self.cache.store(Some(rendered.clone()));
        rendered
    }
}

impl State {
    /// Checks a prepared push against every other application.
    fn check(&self, p: &Prepared, opts: &StoreOptions) -> Result<(), PushError> {
        let app = p.app.as_str();
        if !self.apps.contains_key(app) && self.apps.len() >= opts.max_apps {
            return Err(PushError::new(
                RejectReason::TooManyApps,
                app,
                format!(
                    "the store already holds the maximum of {} applications",
                    opts.max_apps
                ),
            ));
        }
        let other_owner = |owners: &BTreeSet<String>| owners.iter().find(|o| *o != app).cloned();
        for fam in &p.families {
            if let Some(idx) = self.families.get(&fam.name) {
                if idx.typ != fam.typ {
                    if let Some(other) = other_owner(&idx.owners) {
                        return Err(PushError::new(
                            RejectReason::Conflict,
                            app,
                            format!(
                                "family {} has type {} here but type {} in app {other:?}",
                                fam.name,
                                fam.typ.as_str(),
                                idx.typ.as_str()
                            ),
                        ));
                    }
                }
            }
            for name in fam.typ.reserved_names(&fam.name) {
                let Some(holder) = self.reserved.get(&name) else {
                    continue;
                };
                if *holder == fam.name {
                    continue;
                }
                if let Some(other) = self
                    .families
                    .get(holder)
                    .and_then(|i| other_owner(&i.owners))
                {
                    return Err(PushError::new(
                        RejectReason::Conflict,
                        app,
                        format!(
                            "samples named {name} of family {} would collide with family {holder} of app {other:?}",
                            fam.name
                        ),
                    ));
                }
            }
            for (i, key) in fam.keys.iter().enumerate() {
                if let Some(owner) = self.series.get(key) {
                    if &**owner != app {
                        let line = fam
                            .body
                            .split(|b| *b == b'\n')
                            .nth(i)
                            .map(|l| String::from_utf8_lossy(l).into_owned())
                            .unwrap_or_default();
                        let series = line
                            .rsplit_once(' ')
                            .map_or(line.as_str(), |(s, _)| s)
                            .to_owned();
                        return Err(PushError::new(
                            RejectReason::Conflict,
                            app,
                            format!(
                                "series {series} is already pushed by app {:?}{}",
                                &**owner,
                                if opts.app_label.is_none() {
                                    " (set `receiver.app_label` to tell apps apart)"
                                } else {
                                    ""
                                }
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn remove_app(&mut self, app: &str) -> Option<AppEntry> {
        let entry = self.apps.remove(app)?;
        for fam in &entry.families {
            for key in &fam.keys {
                self.series.remove(key);
            }
            if let Some(idx) = self.families.get_mut(&fam.name) {
                idx.owners.remove(app);
                if idx.owners.is_empty() {
                    let typ = idx.typ;
                    self.families.remove(&fam.name);
                    for n in typ.reserved_names(&fam.name) {
                        if self.reserved.get(&n) == Some(&fam.name) {
                            self.reserved.remove(&n);
                        }
                    }
                }
            }
        }
        Some(entry)
    }

    fn insert_app(&mut self, entry: AppEntry) {
        let app: Arc<str> = Arc::from(entry.info.name.as_str());
        for fam in &entry.families {
            for key in &fam.keys {
                self.series.insert(*key, app.clone());
            }
            let idx = self
                .families
                .entry(fam.name.clone())
                .or_insert_with(|| FamilyIndex {
                    typ: fam.typ,
                    owners: BTreeSet::new(),
                });
            if idx.owners.is_empty() {
                for n in fam.typ.reserved_names(&fam.name) {
                    self.reserved.insert(n, fam.name.clone());
                }
            }
            idx.owners.insert(entry.info.name.clone());
        }
        self.apps.insert(entry.info.name.clone(), entry);
    }
}

#[cfg(test)]
mod tests;
