//! Load on loopback: 1,000 concurrent pushing connections and concurrent
//! scrapes. It checks correctness only, never timings: no acknowledged push
//! is lost and no scrape ever shows a torn push.
//!
//! Every app pushes `ROUNDS` sets one after the other, each on a new
//! connection; all apps push at the same time, half over TCP and half over
//! the Unix socket, in JSON and in Cap'n Proto. In the first round every
//! connection is held open (data sent, not yet half-closed) until the server
//! counts all 1,000 as open at once. A set's values encode the app and the
//! sequence number of the push, in a family shared by all apps and in one
//! of the app's own.
//!
//! Meanwhile scrapers read `/metrics` in a loop and check every body: it is
//! a valid exposition (our own parser accepts it); each app's series all come
//! from one push (one sequence number: nothing torn); the sequence is at
//! least the one acknowledged before the scrape started (nothing lost), at
//! most the last one sent, and never goes back between two scrapes.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use exporter_proxy::exposition::{parse, ParseLimits};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::support::*;

/// Concurrent pushing connections, one app each.
const APPS: usize = 1000;
/// Pushes per app, one after the other.
const ROUNDS: u64 = 3;
/// Series per push in the family all apps share.
const SHARED_SERIES: usize = 4;
/// Series per push: the shared ones plus one in the app's own family.
const SERIES: usize = SHARED_SERIES + 1;
/// Concurrent scrape loops.
const SCRAPERS: usize = 4;
/// Values are `app * VALUE_BASE + sequence`.
const VALUE_BASE: u64 = 1_000_000;
/// File descriptors the test needs: both ends of every push connection plus
/// scrapes, listeners and what the other tests in this binary hold.
const FDS_NEEDED: u64 = 4 * APPS as u64;

fn app_name(i: usize) -> String {
    format!("load{i:04}")
}

/// The set app `i` pushes as its `seq`-th push.
fn push_text(i: usize, seq: u64) -> String {
    let name = app_name(i);
    let value = i as u64 * VALUE_BASE + seq;
    let mut text = String::from(
        "# HELP load_value Pushed by the load test: app * 1e6 + sequence.\n# TYPE load_value gauge\n",
    );
    for k in 0..SHARED_SERIES {
        text.push_str(&format!("load_value{{app=\"{name}\",k=\"{k}\"}} {value}\n"));
    }
    text.push_str(&format!("# TYPE {name}_last gauge\n{name}_last {value}\n"));
    text
}

/// What every app has pushed, as the pushers and scrapers see it.
struct Progress {
    /// Highest sequence whose push was started (sent or being sent).
    started: Vec<AtomicU64>,
    /// Highest sequence whose push was acknowledged with `ok: true`.
    acked: Vec<AtomicU64>,
    /// Set once every pusher has finished.
    done: AtomicBool,
    /// Scrapes checked, over all scrapers.
    scrapes: AtomicUsize,
}

impl Progress {
    fn snapshot(v: &[AtomicU64]) -> Vec<u64> {
        v.iter().map(|a| a.load(Ordering::SeqCst)).collect()
    }
}

/// Raises the soft limit of open files when it is too low for the test.
fn ensure_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < FDS_NEEDED {
        assert!(
            hard >= FDS_NEEDED,
            "the hard limit of open files ({hard}) is below the {FDS_NEEDED} this test needs"
        );
        setrlimit(Resource::RLIMIT_NOFILE, FDS_NEEDED, hard).expect("setrlimit");
    }
}

/// Per app, the sequence number of the set a scrape shows (0 when absent),
/// after checking that each app's series all carry the same one.
fn sequences(body: &str) -> Vec<u64> {
    let exp = parse(body, &ParseLimits::default())
        .unwrap_or_else(|e| panic!("/metrics is not a valid exposition under load: {e}"));
    let mut seen: Vec<Option<(u64, usize)>> = vec![None; APPS];
    for family in &exp.families {
        let own = family.name.starts_with("load") && family.name.ends_with("_last");
        if family.name != "load_value" && !own {
            continue;
        }
        for s in &family.samples {
            let app = if own {
                s.name.trim_end_matches("_last")
            } else {
                s.labels
                    .iter()
                    .find(|(k, _)| k == "app")
                    .map(|(_, v)| v.as_str())
                    .expect("load_value has an app label")
            };
            let i: usize = app["load".len()..].parse().expect("app index");
            let value = s.value as u64;
            assert_eq!(
                value / VALUE_BASE,
                i as u64,
                "{app} shows a value of another app: {value}"
            );
            let seq = value % VALUE_BASE;
            match &mut seen[i] {
                None => seen[i] = Some((seq, 1)),
                Some((first, n)) => {
                    assert_eq!(
                        *first, seq,
                        "torn push: {app} shows sequences {first} and {seq}"
                    );
                    *n += 1;
                }
            }
        }
    }
    seen.iter()
        .enumerate()
        .map(|(i, s)| match s {
            None => 0,
            Some((seq, n)) => {
                assert_eq!(
                    *n,
                    SERIES,
                    "torn push: {} shows {n} of {SERIES} series",
                    app_name(i)
                );
                *seq
            }
        })
        .collect()
}

async fn scraper(app_http: std::net::SocketAddr, progress: Arc<Progress>) {
    let mut last = vec![0u64; APPS];
    loop {
        let finished = progress.done.load(Ordering::SeqCst);
        let acked = Progress::snapshot(&progress.acked);
        let r = get(app_http, "/metrics").await;
        assert_eq!(r.status, 200);
        let started = Progress::snapshot(&progress.started);
        let seen = sequences(&r.body_string());
        for i in 0..APPS {
            let name = app_name(i);
            assert!(
                seen[i] >= acked[i],
                "lost push: {name} shows sequence {} after {} was acknowledged",
                seen[i],
                acked[i]
            );
            assert!(
                seen[i] <= started[i],
                "{name} shows sequence {} but only {} were sent",
                seen[i],
                started[i]
            );
            assert!(
                seen[i] >= last[i],
                "{name} went back from sequence {} to {}",
                last[i],
                seen[i]
            );
        }
        last = seen;
        progress.scrapes.fetch_add(1, Ordering::SeqCst);
        if finished {
            return;
        }
    }
}

/// A connection to one of the two push receivers.
enum Push {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Push {
    async fn open(app: &TestApp, unix: bool) -> Push {
        let connect = async {
            if unix {
                Push::Unix(UnixStream::connect(&app.socket).await.unwrap())
            } else {
                Push::Tcp(TcpStream::connect(app.tcp).await.unwrap())
            }
        };
        tokio::time::timeout(STEP, connect).await.expect("connect")
    }

    async fn send(&mut self, bytes: &[u8]) {
        match self {
            Push::Tcp(s) => s.write_all(bytes).await.unwrap(),
            Push::Unix(s) => s.write_all(bytes).await.unwrap(),
        }
    }

    /// Half-closes and returns the reply line.
    async fn finish(self) -> String {
        match self {
            Push::Tcp(mut s) => {
                s.shutdown().await.unwrap();
                read_reply(&mut s).await
            }
            Push::Unix(mut s) => {
                s.shutdown().await.unwrap();
                read_reply(&mut s).await
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_pushes_are_never_lost_or_torn() {
    ensure_fd_limit();
    // Every connection of the first round is open at once, all on one
    // listener in the worst case: the limit must not refuse any of them.
    // Generous read timeouts: the first round waits for all connections.
    let app = Arc::new(
        TestApp::with_all(
            &format!("concurrent_requests = {}", 2 * APPS),
            "",
            "[limits]\nidle_timeout = \"60s\"\nread_timeout = \"120s\"\n",
        )
        .await,
    );
    let progress = Arc::new(Progress {
        started: (0..APPS).map(|_| AtomicU64::new(0)).collect(),
        acked: (0..APPS).map(|_| AtomicU64::new(0)).collect(),
        done: AtomicBool::new(false),
        scrapes: AtomicUsize::new(0),
    });

    let mut scrapers = JoinSet::new();
    for _ in 0..SCRAPERS {
        scrapers.spawn(scraper(app.http, progress.clone()));
    }

    // Pushers wait at `sent` with their first push written, and at
    // `release` until the server has counted every connection as open.
    let sent = Arc::new(Barrier::new(APPS + 1));
    let release = Arc::new(Barrier::new(APPS + 1));
    let mut pushers = JoinSet::new();
    for i in 0..APPS {
        let (app, progress) = (app.clone(), progress.clone());
        let (sent, release) = (sent.clone(), release.clone());
        pushers.spawn(async move {
            let name = app_name(i);
            let unix = i % 2 == 1;
            let capnp = i % 4 >= 2;
            for seq in 1..=ROUNDS {
                let text = push_text(i, seq);
                let bytes = if capnp {
                    capnp_push(&name, &text)
                } else {
                    json_push(&name, &text)
                };
                progress.started[i].store(seq, Ordering::SeqCst);
                let mut conn = Push::open(&app, unix).await;
                conn.send(&bytes).await;
                if seq == 1 {
                    sent.wait().await;
                    release.wait().await;
                }
                let r = reply(&conn.finish().await);
                assert_eq!(r["ok"], true, "{name} push {seq}: {r}");
                assert_eq!(r["accepted"], serde_json::json!([name]), "{r}");
                assert_eq!(r["series"], SERIES, "{r}");
                progress.acked[i].store(seq, Ordering::SeqCst);
            }
        });
    }

    tokio::time::timeout(STEP, sent.wait())
        .await
        .expect("every pusher connected and sent its first push");
    // All first pushes are in flight: the server holds every connection.
    eventually(|| async {
        let body = app.metrics().await;
        let open = |listener| {
            metric("exporter_proxy_open_connections")
                .label("listener", listener)
                .get(&body)
                .unwrap_or(0.0)
        };
        open("tcp") + open("unix") == APPS as f64
    })
    .await;
    release.wait().await;

    while let Some(r) = pushers.join_next().await {
        r.expect("pusher");
    }
    progress.done.store(true, Ordering::SeqCst);
    while let Some(r) = scrapers.join_next().await {
        r.expect("scraper");
    }
    assert!(progress.scrapes.load(Ordering::SeqCst) >= SCRAPERS);

    // The end state: every app shows its last acknowledged push.
    let seen = sequences(&app.metrics().await);
    assert_eq!(seen, vec![ROUNDS; APPS]);
    assert_eq!(app.store.apps().len(), APPS);
    assert_eq!(app.store.counts().1, APPS * SERIES);

    Arc::into_inner(app)
        .expect("every task is done with the app")
        .stop()
        .await;
}
