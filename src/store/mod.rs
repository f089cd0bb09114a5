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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::exposition::{self, MetricType, ParseLimits};
use crate::telemetry::{RejectReason, SelfMetrics};

mod formats;
mod gzip;
mod lines;
mod pack;
mod prepare;
mod render;
mod series;
pub use formats::{Body, Format};
use prepare::{encode_block, normalise_bounds, nth_series};

/// Longest accepted application name, in bytes.
pub const MAX_APP_NAME_BYTES: usize = 256;

/// Where an application's metrics come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AppKind {
    /// Pushed over a socket (JSON, Cap'n Proto or RPC).
    Push,
    /// Polled from another exporter listed in the config.
    Poll,
    /// Pushed through the Pushgateway-compatible HTTP API.
    Gateway,
    /// Polled from an exporter that registered itself (`POST /register`).
    Registered,
    /// A config-driven API collector (`[[collectors]]`).
    Collector,
    /// A built-in balance collector's identifier (`[providers]`).
    Provider,
}

impl AppKind {
    /// Name shown in `/apps`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppKind::Push => "push",
            AppKind::Poll => "poll",
            AppKind::Gateway => "pushgateway",
            AppKind::Registered => "registered",
            AppKind::Collector => "collector",
            AppKind::Provider => "provider",
        }
    }
}

pub use crate::ttl::Ttl;

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

/// How to ingest one body besides the store-wide options.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrepareOptions<'a> {
    /// The body is OpenMetrics text: convert it to 0.0.4 first.
    pub openmetrics: bool,
    /// Labels added to every series (a polled target's `labels`). A sample's
    /// own label of the same name is kept as `exported_<name>`, as Prometheus
    /// does, so that series stay distinct.
    pub labels: &'a [(String, String)],
    /// Labels set on every series, replacing a pushed label of the same
    /// name (a Pushgateway grouping key).
    pub set: &'a [(&'a str, &'a str)],
    /// Labels added to series that lack a label of that name.
    pub default: &'a [(&'a str, &'a str)],
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
    /// TTL of pushes that do not set one.
    pub default_ttl: Ttl,
    /// Above this many series in the store, blocks are kept packed (see
    /// [`exposition::Chunk`]); 0 packs them always.
    pub pack_above_series: usize,
}

/// Default series limit per application (Pushgateway users report trouble
/// around a few hundred thousand series in total; one app rarely needs more).
pub const DEFAULT_MAX_SERIES_PER_APP: usize = 100_000;
/// Default limit on distinct applications in the store.
pub const DEFAULT_MAX_APPS: usize = 10_000;
/// Default number of series above which the store keeps its text packed:
/// about 25 MB of text. Below it a plain scrape is a copy at memory speed;
/// above it the text is most of the proxy's memory (at a million series
/// packing took VmRSS from 1.6× to under 1× the pushed text) and Prometheus
/// scrapes with gzip, which packing leaves as fast (docs/benchmarks.md).
pub const DEFAULT_PACK_ABOVE_SERIES: usize = 300_000;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_series_per_app: DEFAULT_MAX_SERIES_PER_APP,
            max_apps: DEFAULT_MAX_APPS,
            app_label: None,
            default_ttl: Ttl::Never,
            pack_above_series: DEFAULT_PACK_ABOVE_SERIES,
        }
    }
}

/// One family of one application, encoded once at ingest: its sample lines,
/// ready to be concatenated into `/metrics`, and their series keys in order.
type FamilyBlock = exposition::EncodedFamily;

/// A push that parsed and validated on its own, not yet applied.
#[derive(Debug, PartialEq)]
pub struct Prepared {
    app: String,
    families: Vec<Arc<FamilyBlock>>,
    series: usize,
    /// `None`: the store's default for the kind of push.
    ttl: Option<Ttl>,
    /// When the push happened, if not now (a restored snapshot).
    pushed_at: Option<DateTime<Utc>>,
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

    /// Sets the TTL of this push (`None`: the store's default).
    pub fn set_ttl(&mut self, ttl: Option<Ttl>) {
        self.ttl = ttl;
    }

    /// Sets when the push happened (restoring a snapshot keeps push times,
    /// so TTLs keep running across restarts).
    pub fn set_pushed_at(&mut self, at: DateTime<Utc>) {
        self.pushed_at = Some(at);
    }
}

/// A pushed app as stored in the snapshot file.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedApp {
    /// Name.
    pub name: String,
    /// Push or pushgateway.
    pub kind: AppKind,
    /// Who pushed it.
    pub source: String,
    /// When, so that its TTL keeps running across restarts.
    pub pushed_at: DateTime<Utc>,
    /// Its TTL.
    pub ttl: Ttl,
    /// Its metrics, as exposition text (labels already applied).
    pub text: String,
}

/// What `/apps` shows about one application.
#[derive(Debug, Clone, PartialEq)]
pub struct AppInfo {
    /// Application name.
    pub name: String,
    /// Push, poll or registered.
    pub kind: AppKind,
    /// Who sent the current set (socket path and peer, or peer address; the
    /// URL of a polled target).
    pub source: String,
    /// When the current set was accepted; `None` for a polled target that
    /// never answered.
    pub last_update: Option<DateTime<Utc>>,
    /// Polled targets: whether the last poll succeeded. `None` for pushes.
    pub up: Option<bool>,
    /// Number of series in the current set.
    pub series: usize,
    /// Last refused push, if it came after the last accepted one.
    pub last_error: Option<String>,
    /// When that refusal happened.
    pub last_error_time: Option<DateTime<Utc>>,
    /// How long the app lives without a new push.
    pub ttl: Ttl,
    /// Time left before expiry (`None` when the TTL is never).
    pub expires_in: Option<Duration>,
}

impl AppInfo {
    /// Pushes: `ok`, or `rejected` while the last attempt was refused.
    /// Polled targets: `up`, or `down` while the last poll failed (the last
    /// good data is still served until `stale_after`).
    pub fn status(&self) -> &'static str {
        // A provider identifier before its first collection, or disabled,
        // is not down: `providers::job` notes why it has no balance.
        if self.kind == AppKind::Provider && self.up == Some(false) {
            match self.last_error.as_deref() {
                Some(e) if e.starts_with("init:") => return "init",
                Some(e) if e.starts_with("disabled:") => return "disabled",
                _ => {}
            }
        }
        match (self.up, &self.last_error) {
            (Some(true), _) => "up",
            (Some(false), _) => "down",
            (None, Some(_)) => "rejected",
            (None, None) => "ok",
        }
    }
}

struct AppEntry {
    info: AppInfo,
    /// Sorted by family name.
    families: Vec<Arc<FamilyBlock>>,
    /// When the app expires; a tokio `Instant` so that tests can pause time.
    deadline: Option<tokio::time::Instant>,
    /// Its owner slot in the series index (set by `State::insert_app`).
    owner: u32,
    /// When its blocks last changed, in the order of the store's changes
    /// (0: not yet placed; `State::insert_app` gives it the next one). The
    /// render lays the apps' blocks out in this order (see `render`).
    seq: u64,
}

/// How to take back one application of a batch that failed part-way.
enum Undo {
    /// The entry replaced one of the same series in place; the indexes did
    /// not change.
    Swapped(String, AppEntry),
    /// The indexes were updated: remove the new entry, put back the old one.
    Indexed(String, Option<AppEntry>),
}

/// Whether two sets of families hold the same series under the same family
/// names and types (values may differ).
fn same_families(old: &[Arc<FamilyBlock>], new: &[Arc<FamilyBlock>]) -> bool {
    old.len() == new.len()
        && old
            .iter()
            .zip(new)
            .all(|(o, n)| o.name == n.name && o.typ == n.typ && o.digest == n.digest)
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
    series: series::SeriesIndex,
    /// The last `AppEntry::seq` given.
    seq: u64,
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
    chunks: Vec<exposition::Chunk>,
    /// Per chunk: whether it is a new buffer at every render (see
    /// [`gzip::build`]).
    by_content: Vec<bool>,
    /// Per chunk: its cut mark (see [`gzip::build`]).
    marks: Vec<u64>,
    len: usize,
    gzip: OnceLock<gzip::Gzipped>,
    /// The compressed runs of an earlier render, reused by [`Self::gzip`]
    /// (taken when it runs; see [`gzip`]).
    gzip_seed: Mutex<Option<gzip::Seed>>,
    /// What the OpenMetrics and protobuf bodies are made from, and those
    /// bodies once a scrape asked for them ([`formats`]).
    alt: formats::Alternatives,
}

impl Rendered {
    /// The chunks of the exposition text, in order.
    pub fn chunks(&self) -> &[exposition::Chunk] {
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
            c.write_to(&mut out);
        }
        Bytes::from(out)
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
    /// Held while rendering; keeps the self-metric lines of each app
    /// from one render to the next.
    render_lock: Mutex<render::RenderMemo>,
    options: StoreOptions,
    metrics: Arc<SelfMetrics>,
    /// Whether new blocks are packed (see [`Store::packs`]).
    packing: std::sync::atomic::AtomicBool,
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
            render_lock: Mutex::new(render::RenderMemo::default()),
            packing: std::sync::atomic::AtomicBool::new(options.pack_above_series == 0),
            options,
            metrics,
        }
    }

    /// The self-metrics this store reports into.
    pub fn self_metrics(&self) -> &Arc<SelfMetrics> {
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

    /// Replaces the one-sample gauge family `name` of an existing app with
    /// a new value (used for `push_failure_time_seconds`). Returns whether
    /// the app had that family.
    pub fn update_gauge(&self, app: &str, name: &str, labels: &[(&str, &str)], value: f64) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.apps.get_mut(app) else {
            return false;
        };
        let Ok(i) = entry
            .families
            .binary_search_by(|f| f.name.as_str().cmp(name))
        else {
            return false;
        };
        let old = &entry.families[i];
        let block = encode_block(
            old.name.clone(),
            old.typ,
            old.help.clone(),
            &[gauge_sample(name, labels, value)],
            &[],
        );
        if block.digest != old.digest {
            return false;
        }
        entry.families[i] = Arc::new(block);
        drop(state);
        self.bump();
        true
    }

    /// Parses and applies one push. On error nothing changes.
    pub fn push(
        &self,
        app: &str,
        text: &str,
        kind: AppKind,
        source: &str,
    ) -> Result<usize, PushError> {
        self.push_with_ttl(app, text, kind, source, None)
    }

    /// [`Store::push`] with a TTL (`None`: the default for `kind`).
    pub fn push_with_ttl(
        &self,
        app: &str,
        text: &str,
        kind: AppKind,
        source: &str,
        ttl: Option<Ttl>,
    ) -> Result<usize, PushError> {
        let result = self.prepare(app, text).and_then(|mut p| {
            p.set_ttl(ttl);
            self.commit(vec![p], kind, source)
        });
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
        self.commit_inner(batch, kind, source, false)
    }

    /// Like [`Store::commit`] for one push, but keeps the app's families
    /// that the push does not contain (Pushgateway `POST` semantics).
    pub fn commit_merge(
        &self,
        p: Prepared,
        kind: AppKind,
        source: &str,
    ) -> Result<usize, PushError> {
        self.commit_inner(vec![p], kind, source, true)
    }

    fn commit_inner(
        &self,
        batch: Vec<Prepared>,
        kind: AppKind,
        source: &str,
        merge: bool,
    ) -> Result<usize, PushError> {
        let now = Utc::now();
        let mut state = self.lock();
        let batch: Vec<Prepared> = if merge {
            batch
                .into_iter()
                .map(|mut p| {
                    if let Some(old) = state.apps.get(&p.app) {
                        // Both lists are sorted by name; search the new ones
                        // only (the vector grows while we loop).
                        let fresh = p.families.len();
                        for f in &old.families {
                            if p.families[..fresh]
                                .binary_search_by(|n| n.name.cmp(&f.name))
                                .is_err()
                            {
                                p.series += series::count(f);
                                p.families.push(f.clone());
                            }
                        }
                        p.families.sort_by(|a, b| a.name.cmp(&b.name));
                    }
                    p
                })
                .collect()
        } else {
            batch
        };
        if merge {
            for p in &batch {
                check_own_names(&p.app, &p.families)?;
            }
        }
        let mut undo: Vec<Undo> = Vec::with_capacity(batch.len());
        let mut total = 0;
        for mut p in batch {
            // A replace push of the same series (the usual case: new values)
            // leaves the global indexes as they are: they depend only on the
            // app's family names, types and series, which were checked when
            // they came.
            let same = |state: &State, p: &Prepared| {
                state.apps.get(&p.app).is_some_and(|old| {
                    old.info.kind == kind && same_families(&old.families, &p.families)
                })
            };
            let mut same_series = same(&state, &p);
            if !same_series {
                // Untyped families joining typed ones (see `join`).
                if let Err(e) = state.join(&mut p, kind, &mut undo) {
                    state.roll_back(undo);
                    return Err(e);
                }
                same_series = same(&state, &p);
            }
            if !same_series {
                if let Err(e) = state.check(&p, kind, &self.options) {
                    state.roll_back(undo);
                    return Err(e);
                }
            }
            total += p.series;
            let app = p.app.clone();
            let pushed_at = p.pushed_at.unwrap_or(now);
            let ttl = p.ttl.unwrap_or(match kind {
                AppKind::Push | AppKind::Gateway => self.options.default_ttl,
                // Polled apps have their own staleness handling.
                _ => Ttl::Never,
            });
            let deadline = match ttl {
                Ttl::Never => None,
                Ttl::After(d) => {
                    // Age of the push (non-zero only for restored snapshots).
                    let age = (now - pushed_at).to_std().unwrap_or_default();
                    Some(tokio::time::Instant::now() + d.saturating_sub(age))
                }
            };
            let entry = AppEntry {
                info: AppInfo {
                    name: p.app,
                    kind,
                    source: source.to_owned(),
                    last_update: Some(pushed_at),
                    up: matches!(
                        kind,
                        AppKind::Poll
                            | AppKind::Registered
                            | AppKind::Collector
                            | AppKind::Provider
                    )
                    .then_some(true),
                    series: p.series,
                    last_error: None,
                    last_error_time: None,
                    ttl,
                    expires_in: None,
                },
                families: p.families,
                deadline,
                owner: 0,
                seq: state.next_seq(),
            };
            match state.apps.get_mut(&app) {
                Some(slot) if same_series => {
                    let mut entry = AppEntry {
                        owner: slot.owner,
                        ..entry
                    };
                    series::drop_keys(&mut entry.families);
                    let old = std::mem::replace(slot, entry);
                    undo.push(Undo::Swapped(app, old));
                }
                _ => {
                    let old = state.remove_app(&app);
                    state.insert_app(entry);
                    undo.push(Undo::Indexed(app, old));
                }
            }
        }
        let repack = self.note_size(&state);
        drop(state);
        // `undo` holds the replaced sets: they are freed here, outside the lock.
        drop(undo);
        self.bump();
        if let Some(apps) = repack {
            self.repack(apps);
        }
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

    /// Records a failed poll of a polled application: marks it down with
    /// `message`, creating an empty entry when it has none yet (so `/apps`
    /// lists targets that never answered), and drops its series when `drop`
    /// (its last good data is older than `stale_after`). An application of
    /// another kind with the same name is left alone.
    pub fn record_poll_failure(
        &self,
        app: &str,
        kind: AppKind,
        source: &str,
        message: &str,
        drop: bool,
    ) {
        let now = Utc::now();
        let mut state = self.lock();
        let existing = state.apps.get(app).map(|e| e.info.kind);
        match existing {
            Some(k) if k != kind => return,
            Some(_) => {
                if drop {
                    let mut entry = state.remove_app(app).expect("checked above");
                    entry.families.clear();
                    entry.info.series = 0;
                    state.insert_app(entry);
                }
                let info = &mut state.apps.get_mut(app).expect("checked above").info;
                info.up = Some(false);
                info.source = source.to_owned();
                info.last_error = Some(message.to_owned());
                info.last_error_time = Some(now);
            }
            None => {
                if state.apps.len() >= self.options.max_apps {
                    return;
                }
                state.insert_app(AppEntry {
                    info: AppInfo {
                        name: app.to_owned(),
                        kind,
                        source: source.to_owned(),
                        last_update: None,
                        up: Some(false),
                        series: 0,
                        last_error: Some(message.to_owned()),
                        last_error_time: Some(now),
                        ttl: Ttl::Never,
                        expires_in: None,
                    },
                    families: Vec::new(),
                    deadline: None,
                    owner: 0,
                    seq: 0,
                });
            }
        }
        std::mem::drop(state);
        self.bump();
    }

    /// Removes an application only if it is of `kind` (a job removing its
    /// own app must not remove a push app that took the same name).
    pub fn remove_kind(&self, app: &str, kind: AppKind) -> bool {
        let mut state = self.lock();
        if state.apps.get(app).is_none_or(|e| e.info.kind != kind) {
            return false;
        }
        state.remove_app(app);
        drop(state);
        self.bump();
        true
    }

    /// Removes an application and its series. Returns whether it existed.
    pub fn remove(&self, app: &str) -> bool {
        let existed = self.lock().remove_app(app).is_some();
        if existed {
            self.bump();
        }
        existed
    }

    /// Every pushed app (not polled ones) as exposition text with its
    /// metadata, for the snapshot file. Blocks are cloned under the lock,
    /// the text is built outside it.
    pub fn saved_apps(&self) -> Vec<SavedApp> {
        let apps: Vec<(AppInfo, Vec<Arc<FamilyBlock>>)> = self
            .lock()
            .apps
            .values()
            .filter(|e| matches!(e.info.kind, AppKind::Push | AppKind::Gateway))
            .map(|e| (e.info.clone(), e.families.clone()))
            .collect();
        apps.into_iter()
            .map(|(info, families)| {
                let mut text = Vec::new();
                for f in &families {
                    exposition::encode_header(&mut text, &f.name, f.help.as_deref(), f.typ);
                    f.body.write_to(&mut text);
                }
                SavedApp {
                    name: info.name,
                    kind: info.kind,
                    source: info.source,
                    pushed_at: info.last_update.unwrap_or_else(Utc::now),
                    ttl: info.ttl,
                    text: String::from_utf8(text).expect("encoded text is UTF-8"),
                }
            })
            .collect()
    }

    /// Puts a saved app back with its original push time.
    pub fn restore(&self, app: SavedApp) -> Result<usize, PushError> {
        let mut p = self.prepare(&app.name, &app.text)?;
        p.set_ttl(Some(app.ttl));
        p.set_pushed_at(app.pushed_at);
        self.commit(vec![p], app.kind, &app.source)
    }

    /// Every current series, per application, for the sinks. The blocks are
    /// taken under the lock (reference counts only) and parsed outside it.
    pub fn series_snapshot(&self) -> Vec<(String, Vec<exposition::Sample>)> {
        let blocks: Vec<(String, Vec<Arc<FamilyBlock>>)> = self.lock().app_blocks().collect();
        blocks
            .into_iter()
            .map(|(app, families)| {
                let mut samples = Vec::new();
                for f in families {
                    // Our own encoder wrote these lines: they always parse.
                    let text = f.body.text();
                    let parsed = std::str::from_utf8(&text)
                        .ok()
                        .and_then(|t| exposition::parse(t, &ParseLimits::default()).ok());
                    if let Some(exp) = parsed {
                        samples.extend(exp.families.into_iter().flat_map(|f| f.samples));
                    }
                }
                (app, samples)
            })
            .collect()
    }

    /// A copy of every application's `/apps` row, sorted by name.
    pub fn apps(&self) -> Vec<AppInfo> {
        let now = tokio::time::Instant::now();
        self.lock()
            .apps
            .values()
            .map(|e| {
                let mut info = e.info.clone();
                info.expires_in = e.deadline.map(|d| d.saturating_duration_since(now));
                info
            })
            .collect()
    }

    /// One application's `/apps` row and its families as served (shared
    /// blocks: reference counts only under the lock), for the web UI.
    pub fn app_detail(&self, app: &str) -> Option<(AppInfo, Vec<Arc<exposition::EncodedFamily>>)> {
        let now = tokio::time::Instant::now();
        let state = self.lock();
        let e = state.apps.get(app)?;
        let mut info = e.info.clone();
        info.expires_in = e.deadline.map(|d| d.saturating_duration_since(now));
        Some((info, e.families.clone()))
    }

    /// Removes every app whose TTL ran out by `now`; returns their names.
    pub fn expire(&self, now: tokio::time::Instant) -> Vec<String> {
        let mut state = self.lock();
        let due: Vec<String> = state
            .apps
            .iter()
            .filter(|(_, e)| e.deadline.is_some_and(|d| d <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for app in &due {
            state.remove_app(app);
        }
        drop(state);
        if !due.is_empty() {
            self.metrics.count_expired(due.len() as u64);
            self.bump();
        }
        due
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
}

/// Reserved-name collisions inside one app's set of families (needed when
/// a merge combines families that were never parsed together).
fn check_own_names(app: &str, families: &[Arc<FamilyBlock>]) -> Result<(), PushError> {
    let mut owner: HashMap<String, &str> = HashMap::new();
    for f in families {
        for n in f.typ.reserved_names(&f.name) {
            if let Some(other) = owner.insert(n.clone(), &f.name) {
                return Err(PushError::new(
                    RejectReason::Conflict,
                    app,
                    format!(
                        "samples named {n} of family {} would collide with family {other} of this app",
                        f.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn gauge_sample(name: &str, labels: &[(&str, &str)], value: f64) -> exposition::Sample {
    exposition::Sample {
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        value,
        value_text: exposition::format_value(value),
        timestamp: None,
    }
}

impl Prepared {
    /// Adds a one-sample gauge family maintained by the proxy (e.g.
    /// `push_time_seconds`). Fails if the push already has that family.
    pub fn add_gauge(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Result<(), PushError> {
        if self.families.iter().any(|f| f.name == name) {
            return Err(PushError::new(
                RejectReason::Conflict,
                &self.app,
                format!("family {name} is maintained by the proxy and cannot be pushed"),
            ));
        }
        let block = encode_block(
            name.to_owned(),
            MetricType::Gauge,
            Some(help.to_owned()),
            &[gauge_sample(name, labels, value)],
            &[],
        );
        self.series += 1;
        let at = self
            .families
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .unwrap_or_else(|i| i);
        self.families.insert(at, Arc::new(block));
        Ok(())
    }

    /// Names of the families in this push.
    pub fn family_names(&self) -> impl Iterator<Item = &str> {
        self.families.iter().map(|f| f.name.as_str())
    }
}

impl State {
    /// Each app's name and blocks (reference counts only), for work done
    /// on them outside the lock.
    fn app_blocks(&self) -> impl Iterator<Item = (String, Vec<Arc<FamilyBlock>>)> + '_ {
        self.apps
            .iter()
            .map(|(name, e)| (name.clone(), e.families.clone()))
    }

    /// Checks a prepared push against every other application.
    fn check(&self, p: &Prepared, kind: AppKind, opts: &StoreOptions) -> Result<(), PushError> {
        let app = p.app.as_str();
        if let Some(existing) = self.apps.get(app) {
            if existing.info.kind != kind {
                return Err(PushError::new(
                    RejectReason::Conflict,
                    app,
                    format!(
                        "the name {app:?} is already used by a {} source",
                        existing.info.kind.as_str()
                    ),
                ));
            }
        }
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
                if let Some(owner) = self.series.get(*key) {
                    let owner = self.series.owner_name(owner);
                    if owner != app {
                        let series = nth_series(&fam.body.text(), i);
                        return Err(PushError::new(
                            RejectReason::Conflict,
                            app,
                            format!(
                                "series {series} is already pushed by app {owner:?}{}",
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

    /// Takes back the applications of a batch, last first.
    fn roll_back(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Swapped(app, old) => {
                    if let Some(slot) = self.apps.get_mut(&app) {
                        *slot = old;
                    }
                }
                Undo::Indexed(app, old) => {
                    self.remove_app(&app);
                    if let Some(old) = old {
                        self.insert_app(old);
                    }
                }
            }
        }
    }

    fn remove_app(&mut self, app: &str) -> Option<AppEntry> {
        let entry = self.apps.remove(app)?;
        for fam in &entry.families {
            for key in series::keys_of(fam).iter() {
                self.series.remove(*key);
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
        self.series.remove_owner(entry.owner);
        Some(entry)
    }

    /// The next `AppEntry::seq`.
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Indexes `entry` and adds it; an entry put back (by a roll-back)
    /// keeps its place in the page.
    fn insert_app(&mut self, mut entry: AppEntry) {
        if entry.seq == 0 {
            entry.seq = self.next_seq();
        }
        entry.owner = self.series.add_owner(&entry.info.name);
        for fam in &entry.families {
            for key in series::keys_of(fam).iter() {
                self.series.insert(*key, entry.owner);
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
        series::drop_keys(&mut entry.families);
        self.apps.insert(entry.info.name.clone(), entry);
    }
}

#[cfg(test)]
mod gzip_tests;
mod join;
#[cfg(test)]
mod pack_tests;
#[cfg(test)]
mod tests;
