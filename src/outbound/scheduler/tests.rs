//! Scheduler tests on paused tokio time: runs are recorded with their
//! (virtual) start time, so phases and grids are checked exactly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;

#[derive(Default)]
struct Log {
    runs: Mutex<Vec<(String, Duration)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    removed: Mutex<Vec<String>>,
}

struct TestJob {
    id: String,
    interval: Duration,
    /// How long one run takes.
    busy: Duration,
    /// Part of the definition: changing it changes the job.
    version: u32,
    log: Arc<Log>,
    origin: Instant,
}

impl PartialEq for TestJob {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id
            && self.interval == o.interval
            && self.busy == o.busy
            && self.version == o.version
    }
}

impl Job for TestJob {
    fn id(&self) -> &str {
        &self.id
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn run(&self) -> RunFuture<'_> {
        Box::pin(async move {
            let now = Instant::now() - self.origin;
            self.log.runs.lock().unwrap().push((self.id.clone(), now));
            let n = self.log.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.log.max_in_flight.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(self.busy).await;
            self.log.in_flight.fetch_sub(1, Ordering::SeqCst);
        })
    }
    fn removed(&self) {
        self.log.removed.lock().unwrap().push(self.id.clone());
    }
}

struct Fixture {
    log: Arc<Log>,
    origin: Instant,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            log: Arc::default(),
            origin: Instant::now(),
        }
    }
    fn job(&self, id: &str, secs: u64, busy_secs: u64, version: u32) -> TestJob {
        TestJob {
            id: id.to_owned(),
            interval: Duration::from_secs(secs),
            busy: Duration::from_secs(busy_secs),
            version,
            log: self.log.clone(),
            origin: self.origin,
        }
    }
    fn runs_of(&self, id: &str) -> Vec<Duration> {
        self.log
            .runs
            .lock()
            .unwrap()
            .iter()
            .filter(|(j, _)| j == id)
            .map(|(_, t)| *t)
            .collect()
    }
}

/// Lets virtual time pass: paused time jumps from timer to timer, so every
/// run starts at its exact instant.
async fn advance(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

#[test]
fn phase_offset_is_stable_small_and_spread() {
    let i = Duration::from_secs(15);
    assert_eq!(phase_offset("a", i), phase_offset("a", i));
    assert!(phase_offset("a", i) < MAX_PHASE_SPREAD);
    assert!(phase_offset("x", Duration::from_millis(100)) < Duration::from_millis(50));
    let distinct: std::collections::BTreeSet<Duration> = (0..20)
        .map(|n| phase_offset(&format!("target-{n}"), i))
        .collect();
    assert!(distinct.len() > 15, "offsets are spread: {distinct:?}");
}

#[tokio::test(start_paused = true)]
async fn runs_at_start_up_then_on_a_fixed_grid() {
    let f = Fixture::new();
    let s = Scheduler::new(4, CancellationToken::new());
    s.upsert(f.job("a", 10, 0, 1)).await;
    advance(35).await;
    let off = phase_offset("a", Duration::from_secs(10));
    let expected: Vec<Duration> = (0..4).map(|k| off + Duration::from_secs(10 * k)).collect();
    assert_eq!(f.runs_of("a"), expected);
    s.stop_all().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_job_never_overlaps_itself_and_keeps_its_grid() {
    let f = Fixture::new();
    let s = Scheduler::new(4, CancellationToken::new());
    // Runs take 25 s with a 10 s interval: the ticks missed during a run
    // collapse into one run when it ends, then the grid goes on.
    s.upsert(f.job("slow", 10, 25, 1)).await;
    advance(65).await;
    let off = phase_offset("slow", Duration::from_secs(10));
    let runs = f.runs_of("slow");
    assert_eq!(
        runs,
        vec![
            off,
            off + Duration::from_secs(25),
            off + Duration::from_secs(50)
        ]
    );
    assert_eq!(f.log.max_in_flight.load(Ordering::SeqCst), 1);
    s.stop_all().await;
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_across_jobs() {
    let f = Fixture::new();
    let s = Scheduler::new(2, CancellationToken::new());
    for n in 0..6 {
        s.upsert(f.job(&format!("j{n}"), 10, 5, 1)).await;
    }
    advance(40).await;
    assert_eq!(f.log.max_in_flight.load(Ordering::SeqCst), 2);
    // Every job still ran.
    for n in 0..6 {
        assert!(!f.runs_of(&format!("j{n}")).is_empty(), "j{n} ran");
    }
    s.stop_all().await;
}

#[tokio::test(start_paused = true)]
async fn reconcile_keeps_unchanged_phases_reschedules_changed_and_removes_missing() {
    let f = Fixture::new();
    let s = Scheduler::new(8, CancellationToken::new());
    let r = s
        .reconcile(vec![
            f.job("same", 10, 0, 1),
            f.job("changed", 10, 0, 1),
            f.job("gone", 10, 0, 1),
        ])
        .await;
    assert_eq!(r.added, ["same", "changed", "gone"]);
    let same_first = s.first_run("same").await.unwrap();
    let changed_first = s.first_run("changed").await.unwrap();

    // Reconcile between two ticks (not on anyone's grid).
    advance(23).await;
    let at = Instant::now() - f.origin;
    let r = s
        .reconcile(vec![
            f.job("same", 10, 0, 1),
            f.job("changed", 10, 0, 2),
            f.job("new", 10, 0, 1),
        ])
        .await;
    assert_eq!(r.unchanged, ["same"]);
    assert_eq!(r.replaced, ["changed"]);
    assert_eq!(r.added, ["new"]);
    assert_eq!(r.removed, ["gone"]);
    assert_eq!(*f.log.removed.lock().unwrap(), ["gone"]);
    assert_eq!(s.first_run("same").await, Some(same_first), "phase kept");
    assert_ne!(s.first_run("changed").await, Some(changed_first));
    assert_eq!(s.ids().await, ["changed", "new", "same"]);

    advance(30).await;
    let off = |id: &str| phase_offset(id, Duration::from_secs(10));
    // `same` never left its grid.
    let same: Vec<Duration> = (0..6)
        .map(|k| off("same") + Duration::from_secs(10 * k))
        .collect();
    assert_eq!(f.runs_of("same"), same);
    // `changed` restarted at the reconcile: a new grid from there.
    let changed = f.runs_of("changed");
    let after: Vec<Duration> = changed.into_iter().filter(|t| *t >= at).collect();
    let expected: Vec<Duration> = (0..3)
        .map(|k| at + off("changed") + Duration::from_secs(10 * k))
        .collect();
    assert_eq!(after, expected);
    // `gone` ran before its removal and never after.
    assert!(f.runs_of("gone").iter().all(|t| *t < at));
    s.stop_all().await;
}

#[tokio::test(start_paused = true)]
async fn remove_stops_a_running_job_and_shutdown_stops_all() {
    let f = Fixture::new();
    let shutdown = CancellationToken::new();
    let s = Scheduler::new(8, shutdown.clone());
    s.upsert(f.job("a", 10, 100, 1)).await;
    s.upsert(f.job("b", 10, 0, 1)).await;
    assert_eq!(s.upsert(f.job("b", 10, 0, 1)).await, Upserted::Unchanged);
    advance(5).await;
    assert_eq!(f.log.in_flight.load(Ordering::SeqCst), 1, "a is running");
    assert!(s.remove("a").await);
    assert!(!s.remove("a").await);
    assert_eq!(*f.log.removed.lock().unwrap(), ["a"]);
    shutdown.cancel();
    let before = f.runs_of("b").len();
    advance(30).await;
    assert_eq!(f.runs_of("b").len(), before, "no run after shutdown");
}
