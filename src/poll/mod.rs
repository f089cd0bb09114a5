//! Polling other exporters: configured targets and self-registered ones.
//!
//! * [`target`]: one target's request, checks and store update.
//! * [`register`]: `POST /register` and the persisted registry.
//! * [`compat`]: the aggregator seed's `POST /api/post`, as registrations.
//! * [`sd`]: targets from Prometheus service discovery (file_sd, http_sd).
//!
//! [`Poller`] ties them together: one scheduler holds every target, keyed by
//! app name; configured and discovered targets are reconciled as a whole,
//! registered ones added and removed one by one.

pub mod compat;
pub mod config;
pub mod register;
pub mod sd;
pub mod target;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::outbound::scheduler::{Reconciled, Scheduler};
use crate::poll::config::TargetConfig;
use crate::store::{AppKind, Store};
use target::PollJob;

/// Every polled target of the proxy.
#[derive(Debug)]
pub struct Poller {
    scheduler: Scheduler<PollJob>,
    store: Arc<Store>,
    /// Names of the configured targets (registrations may not take them).
    statics: Mutex<BTreeSet<String>>,
    /// Names of registered targets.
    registered: Mutex<BTreeSet<String>>,
    /// Where registered targets report that they should be evicted.
    evictions: Mutex<Option<tokio::sync::mpsc::UnboundedSender<String>>>,
    /// The configured targets.
    static_defs: Mutex<Vec<TargetConfig>>,
    /// Targets by service-discovery source (see [`sd`]).
    discovered: Mutex<BTreeMap<String, Vec<TargetConfig>>>,
    /// Held while the whole set is reconciled, so that a reload and a
    /// discovery cannot each reconcile a stale view of the other.
    reconciling: tokio::sync::Mutex<()>,
}

impl Poller {
    /// A poller running at most `max_concurrent` polls at once until `shutdown`.
    pub fn new(
        store: Arc<Store>,
        max_concurrent: usize,
        shutdown: CancellationToken,
    ) -> Arc<Poller> {
        Arc::new(Poller {
            scheduler: Scheduler::new(max_concurrent, shutdown),
            store,
            statics: Mutex::new(BTreeSet::new()),
            registered: Mutex::new(BTreeSet::new()),
            evictions: Mutex::new(None),
            static_defs: Mutex::new(Vec::new()),
            discovered: Mutex::new(BTreeMap::new()),
            reconciling: tokio::sync::Mutex::new(()),
        })
    }

    /// The scheduler (for inspection in tests).
    pub fn scheduler(&self) -> &Scheduler<PollJob> {
        &self.scheduler
    }

    /// Makes the configured targets equal to `targets`: unchanged ones keep
    /// their phase, changed ones restart, missing ones stop and their app
    /// disappears. Registered targets are kept.
    pub async fn set_static(&self, targets: Vec<TargetConfig>) -> Reconciled {
        let names: BTreeSet<String> = targets.iter().map(|t| t.name.clone()).collect();
        *lock(&self.statics) = names;
        *lock(&self.static_defs) = targets;
        self.reconcile_all().await
    }

    /// Reconciles the scheduler with every target: configured, discovered
    /// (unless a configured one has the name) and registered (kept as they
    /// are).
    async fn reconcile_all(&self) -> Reconciled {
        let _one_at_a_time = self.reconciling.lock().await;
        let targets = lock(&self.static_defs).clone();
        let mut names: BTreeSet<String> = targets.iter().map(|t| t.name.clone()).collect();
        let mut jobs: Vec<PollJob> = targets
            .into_iter()
            .map(|t| PollJob::new(t, AppKind::Poll, self.store.clone()))
            .collect();
        let discovered: Vec<TargetConfig> =
            lock(&self.discovered).values().flatten().cloned().collect();
        for t in discovered {
            if names.insert(t.name.clone()) {
                jobs.push(PollJob::new(t, AppKind::Poll, self.store.clone()));
            }
        }
        // A configured or discovered name now wins over a registration of
        // the same name.
        let registered: Vec<String> = lock(&self.registered)
            .iter()
            .filter(|n| !names.contains(*n))
            .cloned()
            .collect();
        // Keep the registered jobs as they are: rebuild equal definitions.
        for name in registered {
            if let Some(def) = self.registered_def(&name).await {
                jobs.push(self.registered_job(def));
            }
        }
        self.scheduler.reconcile(jobs).await
    }

    async fn registered_def(&self, name: &str) -> Option<TargetConfig> {
        self.scheduler.def_of(name).await
    }

    /// Whether `name` is a configured target.
    pub fn is_static(&self, name: &str) -> bool {
        lock(&self.statics).contains(name)
    }

    /// Adds or updates a registered target.
    pub async fn add_registered(&self, def: TargetConfig) -> Result<(), String> {
        if self.is_static(&def.name) {
            return Err(format!("id {:?} is a configured target's name", def.name));
        }
        lock(&self.registered).insert(def.name.clone());
        self.scheduler.upsert(self.registered_job(def)).await;
        Ok(())
    }

    /// Where registered targets send their id when they should be evicted.
    pub fn set_evictions(&self, tx: tokio::sync::mpsc::UnboundedSender<String>) {
        *lock(&self.evictions) = Some(tx);
    }

    fn registered_job(&self, def: TargetConfig) -> PollJob {
        PollJob::new(def, AppKind::Registered, self.store.clone())
            .with_evictions(lock(&self.evictions).clone())
    }

    /// Stops a registered target and removes its app.
    pub async fn remove_registered(&self, name: &str) {
        if lock(&self.registered).remove(name) {
            self.scheduler.remove(name).await;
        }
    }

    /// Updates the registrations gauge.
    pub fn metrics_registrations(&self, n: usize) {
        self.store.self_metrics().set_registrations(n);
    }

    /// Stops every poll and waits for them.
    pub async fn stop(&self) {
        self.scheduler.stop_all().await;
    }
}

impl Scheduler<PollJob> {
    /// The definition of the target `name`, if scheduled.
    pub async fn def_of(&self, name: &str) -> Option<TargetConfig> {
        self.with_job(name, |j| j.def().clone()).await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
