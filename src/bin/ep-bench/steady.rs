//! The steady-state scenario (`--steady`): what users run. N apps each push
//! on their own period (phases spread evenly), while a scraper asks for
//! `/metrics` every `--steady-scrape-period` seconds in each format, gzip
//! as Prometheus sends it, for a fixed time; so nearly every scrape comes
//! right after a change. The schedule runs for one push period (settling,
//! reported apart) before the measured window. The proxy and the Pushgateway run the same
//! schedule one after the other (each alone on the machine) in one run.
//!
//! Reported per target: server CPU as % of one core, push latency p50/p99,
//! scrape latency p50/p99 per mode, RSS over time and its peak, and the
//! refused or lost pushes (a push that failed, or was still due when the
//! run ended), which must be 0.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::client::HttpConn;
use crate::{encode_push, load, procfs, quantile, servers, workload, Pusher, Scale, Transport};

/// Options of the steady-state scenario.
#[derive(clap::Args, Debug)]
pub struct SteadyArgs {
    /// Run the steady-state scenario instead of the phase benchmark.
    #[arg(long)]
    pub steady: bool,
    /// Apps pushing in the steady scenario.
    #[arg(long, default_value_t = 1000)]
    pub steady_apps: usize,
    /// Series per app in the steady scenario.
    #[arg(long, default_value_t = 100)]
    pub steady_series: usize,
    /// Seconds between two pushes of one app.
    #[arg(long, default_value_t = 10.0)]
    pub steady_push_period: f64,
    /// Seconds between two scrapes (of each mode).
    #[arg(long, default_value_t = 1.0)]
    pub steady_scrape_period: f64,
    /// Length of the measured steady run per target, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub steady_secs: f64,
    /// Seconds of pushes and scrapes on the schedule before the measured
    /// run (default: one push period). The initial load pushes every app
    /// at once in name order; the first period of the schedule moves each
    /// app to its place in the push order (the proxy lays the apps out in
    /// the order of their last push) and the scrapers' schedules become
    /// known: a transition, reported apart, not the steady state.
    #[arg(long)]
    pub steady_settle_secs: Option<f64>,
    /// Concurrent push connections (pushes due at once wait for one).
    #[arg(long, default_value_t = 16)]
    pub steady_push_conns: usize,
    /// Give app i the phase i/N of the period, in name order, so that the
    /// apps pushing in any one second are neighbours on the page (their
    /// blocks in one stretch of each family). By default the phases are a
    /// fixed shuffle of the names, as independent apps have: a second's
    /// pushes land all over the page.
    #[arg(long)]
    pub steady_phases_in_name_order: bool,
    /// The ways of scraping, each every `--steady-scrape-period`: any of
    /// prometheus (the Accept header of Prometheus 2, gzip), text,
    /// text-gzip, openmetrics-gzip, protobuf-gzip. `prometheus` alone is
    /// the load of one Prometheus server; the default adds the other four
    /// to measure every format under the same pushes.
    #[arg(long, value_delimiter = ',', default_value = "prometheus,text,text-gzip,openmetrics-gzip,protobuf-gzip", value_parser = mode_key)]
    pub steady_modes: Vec<&'static Mode>,
    /// No scraper at all (replaces `--steady-modes`): what the pushes alone
    /// cost each server, the floor under the CPU of every scrape mode.
    #[arg(long, conflicts_with = "steady_modes")]
    pub steady_pushes_only: bool,
}

impl SteadyArgs {
    /// The ways of scraping this run uses (none with `--steady-pushes-only`).
    fn modes(&self) -> &[&'static Mode] {
        if self.steady_pushes_only {
            &[]
        } else {
            &self.steady_modes
        }
    }
}

/// The mode named `key` on the command line.
fn mode_key(key: &str) -> Result<&'static Mode, String> {
    MODES.iter().find(|m| m.key == key).ok_or_else(|| {
        let keys: Vec<&str> = MODES.iter().map(|m| m.key).collect();
        format!("unknown scrape mode {key:?}; one of {}", keys.join(", "))
    })
}

/// The slot (of N in a period) of app `a`: `a` itself in name order, else
/// `a × k mod N` with `k` coprime to N near 0.618·N (a fixed shuffle that
/// puts apps pushing one after the other far apart in name order).
fn phase_slot(a: usize, n: usize, in_name_order: bool) -> usize {
    if in_name_order || n < 3 {
        return a;
    }
    let gcd = |mut x: usize, mut y: usize| {
        while y != 0 {
            (x, y) = (y, x % y);
        }
        x
    };
    let k = (n * 618 / 1000..n).find(|&k| gcd(k, n) == 1).unwrap_or(1);
    a * k % n
}

/// One way of scraping `/metrics`.
#[derive(Debug)]
pub struct Mode {
    key: &'static str,
    label: &'static str,
    gzip: bool,
    accept: Option<&'static str>,
}

/// What Prometheus 2.x sends (OpenMetrics first), then the single formats.
const MODES: [Mode; 5] = [
    Mode {
        key: "prometheus",
        label: "as Prometheus (Accept of Prometheus 2, gzip)",
        gzip: true,
        accept: Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        ),
    },
    Mode {
        key: "text",
        label: "text, plain",
        gzip: false,
        accept: Some("text/plain;version=0.0.4"),
    },
    Mode {
        key: "text-gzip",
        label: "text, gzip",
        gzip: true,
        accept: Some("text/plain;version=0.0.4"),
    },
    Mode {
        key: "openmetrics-gzip",
        label: "OpenMetrics, gzip",
        gzip: true,
        accept: Some("application/openmetrics-text;version=1.0.0"),
    },
    Mode {
        key: "protobuf-gzip",
        label: "protobuf, gzip",
        gzip: true,
        accept: Some(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
        ),
    },
];

/// The length of `text` compressed by the `gzip` program at `-6` (the
/// reference of issue 19's wire-size target).
pub fn gzip6_len(text: &[u8]) -> usize {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("gzip")
        .args(["-6", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the gzip program is installed");
    let mut stdin = child.stdin.take().expect("piped");
    let input = text.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("gzip runs");
    writer
        .join()
        .expect("the writer does not panic")
        .expect("gzip reads its input");
    assert!(out.status.success(), "gzip -6 failed");
    out.stdout.len()
}

/// The first gzip mode's body against `gzip -6` of the same page, once
/// the pushes are over (the page fetched plain, then gzip, until both are
/// of one generation): (gzip body, `gzip -6`) in bytes.
async fn wire_sizes(http: SocketAddr, modes: &[&Mode]) -> Option<(usize, usize)> {
    let mode = modes.iter().find(|m| m.gzip)?;
    let mut conn = HttpConn::new(http);
    let (mut plain, mut gz) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let req = HttpConn::get_as("/metrics", false, mode.accept);
        conn.send(&req, &mut plain).await.ok()?;
        let req = HttpConn::get_as("/metrics", true, mode.accept);
        conn.send(&req, &mut gz).await.ok()?;
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut decoded)
            .ok()?;
        if decoded == plain {
            return Some((gz.len(), gzip6_len(&plain)));
        }
    }
    None
}

/// The outcome of one target's steady run.
#[derive(Default)]
struct Outcome {
    secs: f64,
    cpu_secs: f64,
    pushed_bytes: usize,
    pushes_due: usize,
    pushes_ok: usize,
    push_errors: usize,
    first_error: Option<String>,
    push_lat: Vec<f64>,
    /// How late each push started against its schedule.
    push_late: Vec<f64>,
    /// Per mode: latencies, body bytes of the last scrape, errors.
    scrapes: Vec<(Vec<f64>, usize, usize)>,
    /// Per mode: the latencies of the scrapes while settling (before the
    /// measured window; not in the figures above).
    settling: Vec<Vec<f64>>,
    /// Per mode: the latency of the warm-up scrape right after the load
    /// (`None` if it failed), not part of the steady figures.
    cold: Vec<Option<f64>>,
    /// The gzip body and `gzip -6` of the same page at the end.
    wire: Option<(usize, usize)>,
    /// (seconds since start, VmRSS KiB), every second.
    rss: Vec<(f64, u64)>,
    hwm_kib: u64,
}

/// Runs the scenario on the proxy, then on the Pushgateway, and prints
/// both side by side with the issue-19 target checks.
pub async fn run(
    s: &SteadyArgs,
    proxy_bin: &Path,
    gateway_bin: &Path,
    proxy_threads: usize,
    load_secs: f64,
) -> Result<()> {
    let ticks = procfs::ticks_per_second();
    let scale = Scale {
        apps: s.steady_apps,
        series: s.steady_series,
    };
    eprintln!("== steady: {}", scenario(s, scale));
    let mut proxy =
        servers::start_proxy(proxy_bin, proxy_threads, scale.apps, scale.series).await?;
    let pusher = Pusher::Proxy {
        unix: proxy.unix.clone(),
        tcp: proxy.tcp,
        http: proxy.http,
    };
    let p = run_target(
        s,
        &pusher,
        proxy.http,
        &proxy.server.pids(),
        scale,
        ticks,
        load_secs,
    )
    .await
    .context("steady run on the proxy")?;
    progress("exporter-proxy", &p);
    proxy.server.check_alive()?;
    proxy.server.stop()?;
    let (mut gw, gw_addr) = servers::start_pushgateway(gateway_bin).await?;
    let g = run_target(
        s,
        &Pusher::Gateway(gw_addr),
        gw_addr,
        &gw.pids(),
        scale,
        ticks,
        load_secs,
    )
    .await
    .context("steady run on the Pushgateway")?;
    progress("the Pushgateway", &g);
    gw.check_alive()?;
    gw.stop()?;
    print(s, scale, &p, &g);
    // The figures are printed either way; a lost push or a failed scrape
    // fails the run (the CI smoke run relies on it).
    for (name, o) in [("exporter-proxy", &p), ("the Pushgateway", &g)] {
        let failed: usize = o.scrapes.iter().map(|m| m.2).sum::<usize>()
            + o.cold.iter().filter(|c| c.is_none()).count();
        if o.lost() > 0 || failed > 0 {
            anyhow::bail!(
                "{name}: {} pushes refused or lost, {failed} scrapes failed",
                o.lost()
            );
        }
    }
    Ok(())
}

/// One line on stderr as each target's run ends (the table comes after
/// both): its CPU and pushes, so that a run can be followed as it goes.
fn progress(name: &str, o: &Outcome) {
    let first = o.scrapes.first().map_or(&[][..], |m| &m.0[..]);
    eprintln!(
        "== steady on {name}: server CPU {:.2}% of one core, pushes {} due / {} done, first mode's scrape p99 {}",
        o.cpu_pct(),
        o.pushes_due,
        o.pushes_ok,
        ms(first, 0.99),
    );
}

/// Loads every app, then runs the steady schedule on one target.
async fn run_target(
    s: &SteadyArgs,
    pusher: &Pusher,
    http: SocketAddr,
    pids: &[u32],
    scale: Scale,
    ticks: f64,
    load_secs: f64,
) -> Result<Outcome> {
    let clients = s.steady_push_conns.max(1);
    let (loaded, _, pushed_bytes) = load(
        pusher,
        Transport::HttpPut,
        scale,
        clients,
        Duration::from_secs_f64(load_secs),
    )
    .await?;
    loaded.context("the initial load did not finish in --load-secs")?;
    let cold = warm_up(http, s.modes()).await;
    let out = Arc::new(Mutex::new(Outcome {
        pushed_bytes,
        scrapes: s.modes().iter().map(|_| (Vec::new(), 0, 0)).collect(),
        settling: s.modes().iter().map(|_| Vec::new()).collect(),
        cold,
        ..Outcome::default()
    }));
    let period = Duration::from_secs_f64(s.steady_push_period);
    let settle = s.steady_settle_secs.map_or(period, Duration::from_secs_f64);
    let started = Instant::now();
    // The measured window: from `measured` to `deadline`.
    let measured = started + settle;
    let deadline = measured + Duration::from_secs_f64(s.steady_secs);

    // Pushes: a dispatcher hands each due push to one of `clients` workers.
    let (tx, rx) = tokio::sync::mpsc::channel::<(usize, u64, Instant)>(scale.apps.max(1));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let due = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (rx, out, pusher) = (rx.clone(), out.clone(), pusher.clone());
            tokio::spawn(push_worker(
                rx,
                out,
                pusher,
                scale.series,
                (measured, deadline),
            ))
        })
        .collect();
    let in_name_order = s.steady_phases_in_name_order;
    let dispatcher = {
        let due = due.clone();
        tokio::spawn(async move {
            // App a pushes at slot(a)/N of the period, then every period;
            // in the order of their first push, which stays the order.
            let n = scale.apps.max(1);
            let mut next: Vec<(Instant, usize, u64)> = (0..scale.apps)
                .map(|a| {
                    let slot = phase_slot(a, n, in_name_order) as u32;
                    (started + period * slot / n as u32, a, 1)
                })
                .collect();
            next.sort_unstable();
            let mut i = 0;
            while !next.is_empty() {
                let (at, app, round) = next[i];
                if at >= deadline {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                due.fetch_add(1, Ordering::Relaxed);
                // A target that falls behind fills the queue: what is not
                // handed to a worker by the end of the run is lost (still
                // counted as due), and the run ends on time.
                match tokio::time::timeout_at(deadline.into(), tx.send((app, round, at))).await {
                    Ok(Ok(())) | Err(_) => {}
                    Ok(Err(_)) => break,
                }
                next[i] = (at + period, app, round + 1);
                i = (i + 1) % next.len();
            }
        })
    };

    let every = Duration::from_secs_f64(s.steady_scrape_period);
    let scraper = tokio::spawn(scrape_loop(
        http,
        s.modes().to_vec(),
        (started, measured),
        deadline,
        every,
        out.clone(),
    ));

    // Memory every second, until the end; the CPU of the measured window.
    let mut rss = Vec::new();
    let mut cpu_before = None;
    while Instant::now() < deadline {
        if cpu_before.is_none() && Instant::now() >= measured {
            cpu_before = Some((procfs::cpu_ticks(pids), Instant::now()));
        }
        rss.push((started.elapsed().as_secs_f64(), procfs::memory_kib(pids).0));
        let next = (Instant::now() + Duration::from_secs(1)).min(deadline);
        let next = if cpu_before.is_none() {
            next.min(measured)
        } else {
            next
        };
        tokio::time::sleep_until(next.into()).await;
    }
    dispatcher.await?;
    scraper.await?;
    // The workers finish what was dispatched; bounded by one push period.
    let drain = tokio::time::timeout(period + Duration::from_secs(30), async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    let (cpu_from, window_start) = cpu_before.unwrap_or((procfs::cpu_ticks(pids), measured));
    let secs = window_start.elapsed().as_secs_f64();
    let cpu_secs = procfs::cpu_ticks(pids).saturating_sub(cpu_from) as f64 / ticks;
    let (last, hwm) = procfs::memory_kib(pids);
    rss.push((started.elapsed().as_secs_f64(), last));
    let wire = wire_sizes(http, s.modes()).await;
    let mut o = std::mem::take(&mut *out.lock().expect("not poisoned"));
    o.wire = wire;
    o.secs = secs;
    o.cpu_secs = cpu_secs;
    o.pushes_due = due.load(Ordering::Relaxed);
    o.rss = rss;
    o.hwm_kib = hwm;
    if drain.is_err() {
        o.first_error
            .get_or_insert_with(|| "pushes still running after the run".to_owned());
    }
    Ok(o)
}

/// A push connection: sends the pushes handed to it until the channel
/// closes; pushes still queued at `deadline` are not sent (lost).
async fn push_worker(
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(usize, u64, Instant)>>>,
    out: Arc<Mutex<Outcome>>,
    pusher: Pusher,
    series: usize,
    (measured, deadline): (Instant, Instant),
) {
    let mut conn = None;
    let mut buf = Vec::new();
    loop {
        let Some((app, round, at)) = rx.lock().await.recv().await else {
            return;
        };
        if Instant::now() >= deadline {
            // Queued but not sent within the run: lost.
            continue;
        }
        let late = at.elapsed().as_secs_f64();
        let text = workload::app_text(app, series, round);
        let payload = encode_push(Transport::HttpPut, app, &text);
        let t = Instant::now();
        let r = pusher
            .push(Transport::HttpPut, &payload, &mut conn, &mut buf)
            .await;
        let secs = t.elapsed().as_secs_f64();
        let mut o = out.lock().expect("not poisoned");
        match r {
            // Every push counts; the latencies of the measured window only.
            Ok(()) if t < measured => o.pushes_ok += 1,
            Ok(()) => {
                o.pushes_ok += 1;
                o.push_lat.push(secs);
                o.push_late.push(late);
            }
            Err(e) => {
                o.push_errors += 1;
                o.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
}

/// One scrape in every mode before the steady run: a server that is
/// scraped all the time has built every format once already, which a
/// first scrape after the load has to do from nothing (that one scrape
/// was the p99 of a 60-scrape run). Its latency is reported apart.
async fn warm_up(http: SocketAddr, modes: &[&Mode]) -> Vec<Option<f64>> {
    let mut conns: Vec<HttpConn> = modes.iter().map(|_| HttpConn::new(http)).collect();
    let mut buf = Vec::new();
    scrape_round(modes, &mut conns, &mut buf)
        .await
        .into_iter()
        .map(|r| r.map(|(secs, _)| secs))
        .collect()
}

/// Scrapes every mode once, one after the other, each on its own
/// connection: per mode the latency and body length, or `None` if the
/// scrape failed (not 200, or not gzip-encoded as asked).
async fn scrape_round(
    modes: &[&Mode],
    conns: &mut [HttpConn],
    buf: &mut Vec<u8>,
) -> Vec<Option<(f64, usize)>> {
    let mut out = Vec::with_capacity(modes.len());
    for (mode, conn) in modes.iter().zip(conns.iter_mut()) {
        let req = HttpConn::get_as("/metrics", mode.gzip, mode.accept);
        let t = Instant::now();
        let r = conn.send(&req, buf).await;
        let secs = t.elapsed().as_secs_f64();
        out.push(match r {
            Ok(r) if r.status == 200 && r.gzip == mode.gzip => Some((secs, buf.len())),
            _ => None,
        });
    }
    out
}

/// Scrapes every mode once per period, each on its own connection, from
/// `started` until `deadline`; the scrapes before `measured` are counted
/// apart (settling).
async fn scrape_loop(
    http: SocketAddr,
    modes: Vec<&'static Mode>,
    (started, measured): (Instant, Instant),
    deadline: Instant,
    every: Duration,
    out: Arc<Mutex<Outcome>>,
) {
    let mut conns: Vec<HttpConn> = modes.iter().map(|_| HttpConn::new(http)).collect();
    let mut buf = Vec::new();
    let mut tick = started;
    while tick < deadline {
        tokio::time::sleep_until(tick.into()).await;
        let round = scrape_round(&modes, &mut conns, &mut buf).await;
        let mut o = out.lock().expect("not poisoned");
        for (m, r) in round.into_iter().enumerate() {
            match r {
                Some((secs, _)) if tick < measured => o.settling[m].push(secs),
                Some((secs, len)) => {
                    o.scrapes[m].0.push(secs);
                    o.scrapes[m].1 = len;
                }
                None => o.scrapes[m].2 += 1,
            }
        }
        drop(o);
        tick += every;
    }
}

impl Outcome {
    fn cpu_pct(&self) -> f64 {
        self.cpu_secs / self.secs * 100.0
    }
    fn lost(&self) -> usize {
        self.pushes_due - self.pushes_ok
    }
}

/// The scenario in one line (the progress heading and the table's title).
fn scenario(s: &SteadyArgs, scale: Scale) -> String {
    let scrapes = if s.steady_pushes_only {
        "no scrapes (pushes only)".to_owned()
    } else {
        format!(
            "scrapes every {} s ({})",
            s.steady_scrape_period,
            s.modes()
                .iter()
                .map(|m| m.key)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "{} apps × {} series, a push per app every {} s, {scrapes}, {} s measured after {} s settling, phases {}",
        scale.apps,
        scale.series,
        s.steady_push_period,
        s.steady_secs,
        s.steady_settle_secs.unwrap_or(s.steady_push_period),
        phases(s)
    )
}

fn phases(s: &SteadyArgs) -> &'static str {
    if s.steady_phases_in_name_order {
        "in name order"
    } else {
        "shuffled"
    }
}

fn ms(v: &[f64], q: f64) -> String {
    quantile(v, q).map_or_else(|| "–".into(), |s| format!("{:.2} ms", s * 1000.0))
}

fn rss_line(o: &Outcome) -> String {
    let mib = |k: u64| k as f64 / 1024.0;
    let step = (o.rss.len() / 8).max(1);
    let points: Vec<String> = o
        .rss
        .iter()
        .step_by(step)
        .map(|(t, k)| format!("{:.0}s {:.0}", t, mib(*k)))
        .collect();
    format!("{} MiB", points.join(", "))
}

fn print(s: &SteadyArgs, scale: Scale, p: &Outcome, g: &Outcome) {
    println!();
    println!("### Steady state: {}", scenario(s, scale));
    println!();
    println!("| | exporter-proxy | Pushgateway | Pushgateway ÷ proxy |");
    println!("|---|---:|---:|---:|");
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => format!("{:.1}×", b / a),
        _ => "–".into(),
    };
    println!(
        "| server CPU, % of one core | {:.2} % | {:.2} % | {} |",
        p.cpu_pct(),
        g.cpu_pct(),
        ratio(Some(p.cpu_pct()), Some(g.cpu_pct()))
    );
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        println!(
            "| push latency {name} | {} | {} | {} |",
            ms(&p.push_lat, q),
            ms(&g.push_lat, q),
            ratio(quantile(&p.push_lat, q), quantile(&g.push_lat, q))
        );
    }
    println!(
        "| push start behind schedule, p99 | {} | {} | |",
        ms(&p.push_late, 0.99),
        ms(&g.push_late, 0.99)
    );
    for (m, mode) in s.modes().iter().enumerate() {
        let (pl, gl) = (&p.scrapes[m].0, &g.scrapes[m].0);
        for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
            println!(
                "| scrape {}, {name} | {} | {} | {} |",
                mode.label,
                ms(pl, q),
                ms(gl, q),
                ratio(quantile(pl, q), quantile(gl, q))
            );
        }
        let (ps, gs) = (&p.settling[m], &g.settling[m]);
        println!(
            "| scrape {}, p50 / p99 while settling ({} scrapes, not in the figures) | {} / {} | {} / {} | {} at p99 |",
            mode.label,
            ps.len(),
            ms(ps, 0.5),
            ms(ps, 0.99),
            ms(gs, 0.5),
            ms(gs, 0.99),
            ratio(quantile(ps, 0.99), quantile(gs, 0.99))
        );
        println!(
            "| scrape {}, body bytes / failed scrapes | {} / {} | {} / {} | |",
            mode.label, p.scrapes[m].1, p.scrapes[m].2, g.scrapes[m].1, g.scrapes[m].2
        );
    }
    let cold = |o: &Outcome| {
        o.cold
            .iter()
            .map(|c| c.map_or_else(|| "failed".into(), |s| format!("{:.0}", s * 1000.0)))
            .collect::<Vec<String>>()
            .join(" / ")
    };
    if !s.modes().is_empty() {
        println!(
            "| first scrape after the load, per mode in the order above (warm-up, not in the figures) | {} ms | {} ms | |",
            cold(p),
            cold(g)
        );
    }
    println!(
        "| pushes due / done / refused or lost | {} / {} / {} | {} / {} / {} | |",
        p.pushes_due,
        p.pushes_ok,
        p.lost(),
        g.pushes_due,
        g.pushes_ok,
        g.lost()
    );
    let wire = |o: &Outcome| {
        o.wire.map_or_else(
            || "–".into(),
            |(gz, six)| {
                format!(
                    "{gz} / {six} ({:+.1}%)",
                    (gz as f64 / six as f64 - 1.0) * 100.0
                )
            },
        )
    };
    println!(
        "| gzip body / gzip -6 of the same page, after the run ({}) | {} | {} | |",
        s.modes()
            .iter()
            .find(|m| m.gzip)
            .map_or("no gzip mode", |m| m.label),
        wire(p),
        wire(g)
    );
    println!("| RSS over time | {} | {} | |", rss_line(p), rss_line(g));
    let text_mib = p.pushed_bytes as f64 / 1_048_576.0;
    println!(
        "| peak RSS (VmHWM) | {:.1} MiB = {:.2}× the pushed text ({:.1} MiB) | {:.1} MiB | |",
        p.hwm_kib as f64 / 1024.0,
        p.hwm_kib as f64 * 1024.0 / p.pushed_bytes.max(1) as f64,
        text_mib,
        g.hwm_kib as f64 / 1024.0
    );
    for (name, o) in [("exporter-proxy", p), ("Pushgateway", g)] {
        if let Some(e) = &o.first_error {
            println!();
            println!("{name}: first push error: {e}");
        }
    }
    // The p99 target is on the scrape as Prometheus sends it ("–", not
    // held, when that mode was not run).
    let prom_mode = s.modes().iter().position(|m| m.key == "prometheus");
    let prom = |o: &Outcome| prom_mode.and_then(|m| quantile(&o.scrapes[m].0, 0.99));
    let rows = [
        (
            "server CPU ≤ 1/50 of the Pushgateway's",
            ratio(Some(p.cpu_pct()), Some(g.cpu_pct())),
            p.cpu_pct() * 50.0 <= g.cpu_pct(),
        ),
        (
            "p99 scrape (as Prometheus) ≤ 1/20 of the Pushgateway's",
            ratio(prom(p), prom(g)),
            matches!((prom(p), prom(g)), (Some(a), Some(b)) if a * 20.0 <= b),
        ),
        (
            "refused or lost pushes = 0 (both)",
            format!("{} / {}", p.lost(), g.lost()),
            p.lost() == 0 && g.lost() == 0,
        ),
    ];
    println!();
    println!("### Targets (issue 19, steady state)");
    println!();
    println!("| target | measured | holds |");
    println!("|---|---:|---|");
    for (what, value, ok) in rows {
        println!(
            "| {what} | {value} | {} |",
            if ok { "yes" } else { "**no**" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::phase_slot;

    #[test]
    fn shuffled_phases_are_a_permutation_that_parts_neighbours() {
        for n in [1, 2, 3, 5, 10, 100, 1000, 1024] {
            let mut slots: Vec<usize> = (0..n).map(|a| phase_slot(a, n, false)).collect();
            if n >= 10 {
                // Apps next to each other in name order push far apart.
                let gap = slots[1].abs_diff(slots[0]);
                assert!(gap > n / 4, "n {n}: gap {gap}");
            }
            slots.sort_unstable();
            assert_eq!(slots, (0..n).collect::<Vec<_>>(), "n {n}");
            assert_eq!(phase_slot(7 % n, n, true), 7 % n);
        }
    }
}
