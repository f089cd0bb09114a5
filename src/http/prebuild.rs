//! Building the `/metrics` body a regular scraper will ask for just before
//! it comes back.
//!
//! A scrape after changes pays for them: the page is rendered again and
//! every run of its gzip body that holds a changed block is compressed
//! again. Under a steady push load that is a whole scrape interval of
//! pushes, paid while the scraper waits (at 1,000 apps × 100 series, each
//! pushing every 10 s, a scrape every second waited 15-22 ms for it, most
//! of its latency). Prometheus scrapes each target on a fixed interval, so
//! the next scrape's arrival is known in advance: the proxy learns each
//! scraper's interval from its last arrivals (per connection, format and
//! encoding) and, a little before the next one is due, builds the body it
//! will ask for. The scrape then only adds what changed in those last
//! milliseconds.
//!
//! Nothing is served early: a scrape always gets the page as of its
//! arrival (a body built before a later push is built again with it), so
//! this only moves work ahead of the scrape, never changes an answer. A
//! scraper without a steady interval (or one that stops) gets nothing built
//! for it, and the work then happens at the scrape, as before. Scrapers
//! are told apart by their connection, so that two of them on one host
//! (or one asking for two formats) keep their own schedules; one that opens
//! a new connection for every scrape (Prometheus keeps its connections
//! alive) is never seen three times and gets nothing built either.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::{Format, Store};

/// Shortest interval taken for a scraper's (faster ones are served from
/// what they just built).
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest interval followed (Prometheus' scrape intervals stay under it).
const MAX_INTERVAL: Duration = Duration::from_secs(600);
/// How far two intervals in a row may differ and still count as one
/// schedule: a tenth of the interval (scrape jitter is well under it).
const JITTER_DIVISOR: u32 = 10;
/// Least and initial lead: how long before the expected scrape the build
/// starts, beyond twice the builds' recent duration.
const MIN_LEAD: Duration = Duration::from_millis(10);
/// Scrapers followed at once (the oldest is forgotten past this).
const MAX_SCRAPERS: usize = 64;
/// The task wakes at least this often to see whether the server is gone.
const IDLE_WAKE: Duration = Duration::from_secs(30);

/// One scraper: a connection asking for one format and encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Scraper {
    /// The connection's peer, when known.
    pub peer: Option<SocketAddr>,
    pub format: Format,
    pub gzip: bool,
}

/// The last arrivals of one scraper, newest last.
#[derive(Debug, Default)]
struct Arrivals {
    times: Vec<Instant>,
    /// The expected arrival a body was last built ahead of.
    built_for: Option<Instant>,
}

impl Arrivals {
    /// The scraper's interval, if its last three arrivals keep one.
    fn interval(&self) -> Option<Duration> {
        let [a, b, c] = self.times[..] else {
            return None;
        };
        let (first, second) = (b - a, c - b);
        let steady = first.abs_diff(second) <= second / JITTER_DIVISOR;
        (steady && (MIN_INTERVAL..=MAX_INTERVAL).contains(&second)).then_some(second)
    }

    /// When the next arrival is expected, with the interval.
    fn expected(&self) -> Option<(Instant, Duration)> {
        let interval = self.interval()?;
        Some((*self.times.last()? + interval, interval))
    }
}

/// The schedule of every scraper followed (pure: the times are given).
#[derive(Debug, Default)]
struct Clock {
    scrapers: HashMap<Scraper, Arrivals>,
    /// How long the builds ahead took lately (a moving average).
    build: Duration,
    /// When the task wakes next, as it last planned.
    planned: Option<Instant>,
}

impl Clock {
    /// Notes that `who` arrived at `now`; true if that brings a build
    /// ahead of the time the task planned to wake (only then is the task
    /// woken: a cached body served thousands of times a second does not
    /// wake it each time).
    fn arrive_and_check(&mut self, who: Scraper, now: Instant) -> bool {
        self.arrive(who, now);
        match (self.next(now), self.planned) {
            (Some(next), Some(planned)) => next < planned,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Notes that `who` arrived at `now`.
    fn arrive(&mut self, who: Scraper, now: Instant) {
        let a = self.scrapers.entry(who).or_default();
        if a.times.len() == 3 {
            a.times.remove(0);
        }
        a.times.push(now);
        if self.scrapers.len() > MAX_SCRAPERS {
            let oldest = self
                .scrapers
                .iter()
                .min_by_key(|(_, a)| a.times.last().copied())
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.scrapers.remove(&k);
            }
        }
    }

    /// How long before an expected arrival its body is built.
    fn lead(&self, interval: Duration) -> Duration {
        (self.build * 2 + MIN_LEAD).min(interval / 4).max(MIN_LEAD)
    }

    /// When a scraper's body is due to be built, its expected arrival and
    /// the lead, unless it was built already or the scraper is overdue by
    /// half an interval (it stopped, or changed its schedule).
    fn due(&self, a: &Arrivals, now: Instant) -> Option<(Instant, Instant, Duration)> {
        let (expected, interval) = a.expected()?;
        if a.built_for == Some(expected) || now > expected + interval / 2 {
            return None;
        }
        let lead = self.lead(interval);
        Some((expected.checked_sub(lead)?, expected, lead))
    }

    /// The next time a body is due to be built.
    fn next(&self, now: Instant) -> Option<Instant> {
        self.scrapers
            .values()
            .filter_map(|a| self.due(a, now))
            .map(|(at, _, _)| at)
            .min()
    }

    /// The bodies due by `now`, or due within one more lead (scrapers that
    /// come one after the other get their bodies from one render; what
    /// changes in between is added at each scrape), each format and
    /// encoding once, marked as built for their expected arrival.
    fn take_due(&mut self, now: Instant) -> Vec<(Format, bool)> {
        let mut out: Vec<(Format, bool)> = Vec::new();
        let due: Vec<(Scraper, Instant)> = self
            .scrapers
            .iter()
            .filter_map(|(k, a)| match self.due(a, now) {
                Some((at, expected, lead)) if at <= now + lead => Some((*k, expected)),
                _ => None,
            })
            .collect();
        for (k, expected) in due {
            if let Some(a) = self.scrapers.get_mut(&k) {
                a.built_for = Some(expected);
            }
            if !out.contains(&(k.format, k.gzip)) {
                out.push((k.format, k.gzip));
            }
        }
        out
    }

    /// Notes how long a build ahead took.
    fn built(&mut self, took: Duration) {
        self.build = (self.build * 3 + took) / 4;
    }
}

/// Builds bodies ahead of regular scrapers (see the module doc). One per
/// HTTP server; its task starts with the first scrape.
#[derive(Debug, Default)]
pub struct Prebuild {
    clock: Mutex<Clock>,
    wake: tokio::sync::Notify,
    /// Held while a `/metrics` body is built, ahead of a scrape or for
    /// one: a scrape that comes during a build ahead waits for it, then
    /// adds only what changed since.
    pub(crate) building: tokio::sync::Mutex<()>,
    started: AtomicBool,
}

impl Prebuild {
    /// Notes a scrape (before its body is built), starting the task that
    /// builds ahead on the first one.
    pub(crate) fn arrived(self: &Arc<Self>, store: &Arc<Store>, who: Scraper) {
        let sooner = self.lock().arrive_and_check(who, Instant::now());
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(run(Arc::downgrade(self), store.clone()));
        } else if sooner {
            self.wake.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clock> {
        self.clock.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Renders and builds `bodies` unless they are built for the store as it
/// is (the blocking part of a build ahead, and of a scrape's own build).
pub(crate) fn build(store: &Store, bodies: &[(Format, bool)]) -> Arc<crate::store::Rendered> {
    let r = store.render();
    for &(format, gzip) in bodies {
        if gzip {
            r.gzip_chunks_of(format);
        } else {
            r.len_of(format);
        }
    }
    r
}

/// The task: sleeps until the next body is due, builds it, and so on;
/// ends when the server's [`Prebuild`] is gone.
async fn run(me: Weak<Prebuild>, store: Arc<Store>) {
    loop {
        let Some(p) = me.upgrade() else {
            return;
        };
        let now = Instant::now();
        let wake_at = {
            let mut clock = p.lock();
            let at = clock.next(now).unwrap_or(now + IDLE_WAKE);
            clock.planned = Some(at);
            at
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = p.wake.notified() => continue,
        }
        let due = p.lock().take_due(Instant::now());
        if due.is_empty() {
            continue;
        }
        if store
            .cached()
            .is_some_and(|r| due.iter().all(|&(f, g)| r.is_built(f, g)))
        {
            continue;
        }
        let _building = p.building.lock().await;
        let started = Instant::now();
        let s = store.clone();
        let ahead = move || {
            // The changes so far are one batch, cut apart from those that
            // come before the scrape (see `Store::end_batch`).
            s.end_batch();
            drop(build(&s, &due));
        };
        if tokio::task::spawn_blocking(ahead).await.is_err() {
            tracing::warn!("building /metrics ahead of a scrape failed");
        }
        p.lock().built(started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(port: u16) -> Scraper {
        Scraper {
            peer: Some(SocketAddr::from(([127, 0, 0, 1], port))),
            format: Format::OpenMetrics,
            gzip: true,
        }
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_steady_scraper_gets_its_body_built_just_before_it_comes() {
        let t0 = Instant::now();
        let mut c = Clock::default();
        c.arrive(who(1), t0);
        c.arrive(who(1), t0 + 15 * SEC);
        assert_eq!(c.next(t0 + 15 * SEC), None, "two arrivals are no schedule");
        c.arrive(who(1), t0 + 30 * SEC + Duration::from_millis(40));
        let at = c.next(t0 + 30 * SEC).expect("a schedule");
        let expected = t0 + 45 * SEC + Duration::from_millis(80);
        assert_eq!(at, expected - MIN_LEAD);
        // Taken up to one lead early (with another scraper's body).
        let early = at - MIN_LEAD;
        assert!(c.take_due(early - Duration::from_millis(1)).is_empty());
        assert_eq!(c.take_due(early), [(Format::OpenMetrics, true)]);
        // Built once per expected arrival.
        assert!(c.take_due(at + Duration::from_millis(5)).is_empty());
        assert_eq!(c.next(at), None);
        // The next arrival starts the next round.
        c.arrive(who(1), expected);
        let interval = 15 * SEC + Duration::from_millis(40);
        assert_eq!(c.next(expected), Some(expected + interval - MIN_LEAD));
    }

    #[test]
    fn slower_builds_start_earlier_within_a_quarter_of_the_interval() {
        let t0 = Instant::now();
        let mut c = Clock::default();
        for i in 0..3 {
            c.arrive(who(1), t0 + i * SEC);
        }
        for _ in 0..20 {
            c.built(Duration::from_millis(40));
        }
        let lead = (t0 + 3 * SEC) - c.next(t0 + 2 * SEC).unwrap();
        assert!(lead > Duration::from_millis(80), "{lead:?}");
        assert!(lead <= SEC / 4, "{lead:?}");
        for _ in 0..20 {
            c.built(SEC);
        }
        assert_eq!(c.next(t0 + 2 * SEC), Some(t0 + 3 * SEC - SEC / 4));
    }

    #[test]
    fn irregular_or_stopped_scrapers_get_nothing_built() {
        let t0 = Instant::now();
        let mut c = Clock::default();
        for ms in [0, 1000, 1500] {
            c.arrive(who(1), t0 + Duration::from_millis(ms));
        }
        assert_eq!(c.next(t0 + 2 * SEC), None, "1 s then 0.5 s");
        for ms in [0, 20, 40] {
            c.arrive(who(2), t0 + Duration::from_millis(ms));
        }
        assert_eq!(c.next(t0), None, "faster than MIN_INTERVAL");
        for s in [0, 10, 20] {
            c.arrive(who(3), t0 + s * SEC);
        }
        assert!(c.next(t0 + 20 * SEC).is_some());
        // Overdue by half an interval: it stopped.
        assert_eq!(c.next(t0 + 36 * SEC), None);
        assert!(c.take_due(t0 + 36 * SEC).is_empty());
    }

    #[test]
    fn scrapers_are_told_apart_and_each_body_is_built_once() {
        let t0 = Instant::now();
        let mut c = Clock::default();
        for i in 0..3 {
            c.arrive(who(1), t0 + i * SEC);
            // A second connection, the same body, half a second later.
            c.arrive(who(2), t0 + i * SEC + SEC / 2);
            let text = Scraper {
                format: Format::Text,
                gzip: false,
                ..who(3)
            };
            c.arrive(text, t0 + i * SEC + Duration::from_millis(5));
        }
        let at = t0 + 3 * SEC;
        assert_eq!(c.next(t0 + 2 * SEC + SEC / 2), Some(at - MIN_LEAD));
        let mut due = c.take_due(at);
        due.sort_by_key(|&(f, g)| (f as u8, g));
        assert_eq!(due, [(Format::Text, false), (Format::OpenMetrics, true)]);
        assert_eq!(c.next(at), Some(at + SEC / 2 - MIN_LEAD));
        assert_eq!(c.take_due(at + SEC / 2), [(Format::OpenMetrics, true)]);
    }

    #[test]
    fn the_task_is_woken_only_for_a_sooner_build() {
        let t0 = Instant::now();
        let mut c = Clock::default();
        assert!(!c.arrive_and_check(who(1), t0), "no schedule yet");
        assert!(!c.arrive_and_check(who(1), t0 + SEC));
        assert!(c.arrive_and_check(who(1), t0 + 2 * SEC), "a first schedule");
        c.planned = c.next(t0 + 2 * SEC);
        // A fast scraper (served from the cache) has no schedule.
        for ms in 0..50 {
            assert!(!c.arrive_and_check(who(2), t0 + 2 * SEC + Duration::from_millis(ms)));
        }
        // One due sooner than planned wakes the task.
        for ms in [0, 300, 600] {
            c.arrive(who(3), t0 + Duration::from_millis(1400 + ms));
        }
        assert!(c.arrive_and_check(who(3), t0 + Duration::from_millis(2300)));
    }

    #[test]
    fn only_so_many_scrapers_are_followed() {
        let t0 = Instant::now();
        let mut c = Clock::default();
        for port in 0..(MAX_SCRAPERS as u16 + 10) {
            c.arrive(who(port), t0 + Duration::from_millis(u64::from(port)));
        }
        assert_eq!(c.scrapers.len(), MAX_SCRAPERS);
        assert!(!c.scrapers.contains_key(&who(0)), "the oldest went first");
    }
}
