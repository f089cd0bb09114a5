//! A fixed-rate job scheduler that can be reconciled with a new job list.
//!
//! Every job runs in its own task on a fixed-rate grid: first at start-up
//! plus a small per-job phase offset (derived from its id, so targets added
//! together do not all fire at once), then every `interval`. A run that takes
//! longer than the interval makes the missed ticks collapse into one (no
//! catch-up burst), and a job is never run twice at once because its task
//! awaits each run before the next tick. A semaphore bounds the runs in
//! flight across all jobs.
//!
//! [`Scheduler::reconcile`] takes the complete new job list: jobs whose
//! definition is unchanged keep their task and therefore their phase, changed
//! jobs are stopped and started again (new phase), missing ones are stopped
//! and told so through [`Job::removed`] (a poll target removes its app).
//! Stopping a job waits for its task to end, so a removed job can never
//! write after its removal.
//!
//! Generic over [`Job`]: polled targets use it, built-in collectors can too.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// The phase offset of a job is spread over at most this long: small enough
/// that "poll at start-up" stays true, large enough to break a herd.
pub const MAX_PHASE_SPREAD: Duration = Duration::from_secs(1);

/// A boxed future returned by [`Job::run`].
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Something run periodically. `PartialEq` compares the whole definition:
/// an unequal job with the same id replaces the old one.
pub trait Job: PartialEq + Send + Sync + 'static {
    /// Stable identity (a target's app name).
    fn id(&self) -> &str;
    /// Time between the starts of two runs.
    fn interval(&self) -> Duration;
    /// One run. Cancelled (dropped) when the job is stopped.
    fn run(&self) -> RunFuture<'_>;
    /// Called once when the job left the schedule for good.
    fn removed(&self) {}
}

struct Entry<J> {
    job: Arc<J>,
    first: Instant,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// What [`Scheduler::reconcile`] did, by job id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// New ids.
    pub added: Vec<String>,
    /// Ids whose definition changed.
    pub replaced: Vec<String>,
    /// Ids kept as they were (phase kept).
    pub unchanged: Vec<String>,
    /// Ids no longer listed.
    pub removed: Vec<String>,
}

/// The outcome of [`Scheduler::upsert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// A new job.
    Added,
    /// A changed job, restarted.
    Replaced,
    /// The same definition: nothing done.
    Unchanged,
}

/// The scheduler. Cheap to share behind an `Arc`.
pub struct Scheduler<J: Job> {
    /// A tokio mutex: reconciling awaits the end of stopped tasks, and two
    /// reconciliations must not interleave.
    jobs: Mutex<BTreeMap<String, Entry<J>>>,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
}

impl<J: Job> std::fmt::Debug for Scheduler<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").finish_non_exhaustive()
    }
}

/// The phase offset of a job: a stable hash of its id, spread over
/// `min(interval / 2, MAX_PHASE_SPREAD)`.
pub fn phase_offset(id: &str, interval: Duration) -> Duration {
    // Whole milliseconds: tokio's timer resolution.
    let spread = (interval / 2).min(MAX_PHASE_SPREAD).as_millis() as u64;
    if spread == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(xxhash_rust::xxh3::xxh3_64(id.as_bytes()) % spread)
}

impl<J: Job> Scheduler<J> {
    /// A scheduler running at most `max_concurrent` jobs at once; every job
    /// stops when `shutdown` is cancelled.
    pub fn new(max_concurrent: usize, shutdown: CancellationToken) -> Self {
        Scheduler {
            jobs: Mutex::new(BTreeMap::new()),
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            shutdown,
        }
    }

    fn spawn(&self, job: Arc<J>) -> Entry<J> {
        let interval = job.interval();
        let first = Instant::now() + phase_offset(job.id(), interval);
        let stop = self.shutdown.child_token();
        let task = tokio::spawn(run_job(
            job.clone(),
            first,
            interval,
            self.permits.clone(),
            stop.clone(),
        ));
        Entry {
            job,
            first,
            stop,
            task,
        }
    }

    /// Adds or replaces one job, keeping it when unchanged.
    pub async fn upsert(&self, job: J) -> Upserted {
        let mut jobs = self.jobs.lock().await;
        self.upsert_locked(&mut jobs, job).await
    }

    async fn upsert_locked(&self, jobs: &mut BTreeMap<String, Entry<J>>, job: J) -> Upserted {
        let outcome = match jobs.get(job.id()) {
            Some(e) if *e.job == job => return Upserted::Unchanged,
            Some(_) => Upserted::Replaced,
            None => Upserted::Added,
        };
        if let Some(old) = jobs.remove(job.id()) {
            stop(old).await;
        }
        let id = job.id().to_owned();
        let entry = self.spawn(Arc::new(job));
        jobs.insert(id, entry);
        outcome
    }

    /// Stops and removes one job; calls [`Job::removed`]. Returns whether it existed.
    pub async fn remove(&self, id: &str) -> bool {
        let entry = self.jobs.lock().await.remove(id);
        match entry {
            Some(e) => {
                let job = e.job.clone();
                stop(e).await;
                job.removed();
                true
            }
            None => false,
        }
    }

    /// Makes the schedule equal to `jobs` (ids must be unique; a later
    /// duplicate wins). Unchanged jobs keep their phase.
    pub async fn reconcile(&self, new: Vec<J>) -> Reconciled {
        let mut jobs = self.jobs.lock().await;
        let mut report = Reconciled::default();
        let wanted: std::collections::BTreeSet<String> =
            new.iter().map(|j| j.id().to_owned()).collect();
        let gone: Vec<String> = jobs
            .keys()
            .filter(|id| !wanted.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(e) = jobs.remove(&id) {
                let job = e.job.clone();
                stop(e).await;
                job.removed();
                report.removed.push(id);
            }
        }
        for job in new {
            let id = job.id().to_owned();
            match self.upsert_locked(&mut jobs, job).await {
                Upserted::Added => report.added.push(id),
                Upserted::Replaced => report.replaced.push(id),
                Upserted::Unchanged => report.unchanged.push(id),
            }
        }
        report
    }

    /// When the job's first run was due: its phase. `None` for unknown ids.
    pub async fn first_run(&self, id: &str) -> Option<Instant> {
        self.jobs.lock().await.get(id).map(|e| e.first)
    }

    /// Applies `f` to the scheduled job `id`.
    pub async fn with_job<T>(&self, id: &str, f: impl FnOnce(&J) -> T) -> Option<T> {
        self.jobs.lock().await.get(id).map(|e| f(&e.job))
    }

    /// The ids scheduled, sorted.
    pub async fn ids(&self) -> Vec<String> {
        self.jobs.lock().await.keys().cloned().collect()
    }

    /// Stops every job (without calling [`Job::removed`]) and waits for them.
    pub async fn stop_all(&self) {
        let mut jobs = self.jobs.lock().await;
        for (_, e) in std::mem::take(&mut *jobs) {
            stop(e).await;
        }
    }
}

async fn stop<J>(e: Entry<J>) {
    e.stop.cancel();
    // The task only awaits inside `select!`s on `stop`: it ends promptly.
    let _ = e.task.await;
}

async fn run_job<J: Job>(
    job: Arc<J>,
    first: Instant,
    interval: Duration,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval_at(first, interval);
    // A run longer than the interval skips the ticks it covered: no burst
    // of catch-up runs, and the grid (the phase) is kept.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let permit = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            () = job.run() => {}
        }
        drop(permit);
    }
}

#[cfg(test)]
mod tests;
