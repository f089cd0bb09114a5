//! Busy UI (issue 18): the proxy's `/metrics` latency idle and while UI
//! clients loop over the web pages, in the same round.
//!
//! The pages are built from the store's shared state (a copy of the
//! `/apps` rows taken once per store change, the app's encoded blocks),
//! never from a render of `/metrics`: so a busy UI costs a scrape only the
//! CPU the two share. Each busy phase reads the proxy's own counters before
//! and after (`/status?format=json`: `store.renders_total`, the renders of
//! the `/metrics` body, and `ui.apps_copies_total`, the copies of the
//! `/apps` rows), which must not move while the store does not change.
//!
//! Bounded like the rest: the latency runs by `--latency-samples` and
//! `--scrape-secs`, the UI clients by a stop flag, a deadline and a count.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::client::HttpConn;
use crate::{latency, median, ms, num, opt, ratio, workload, Args, Scale, ScaleResult};

/// Options of the busy-UI measure.
#[derive(clap::Args, Debug)]
pub struct UiArgs {
    /// Concurrent keep-alive UI clients during the busy-UI measure (each
    /// loops over the pages without pause, like many browsers at once).
    #[arg(long, default_value_t = 4)]
    pub ui_clients: usize,
}

/// App pages the clients visit (spread over the store).
const APP_PAGES: usize = 4;

/// Most page views per client and busy phase: guards against a clock that
/// does not move (the phase itself is bounded by time).
const MAX_VIEWS: usize = 10_000_000;

/// The proxy's `/metrics` idle and with a busy UI.
#[derive(Debug, Default)]
pub struct UiResult {
    pub idle_plain: Vec<f64>,
    pub idle_gzip: Vec<f64>,
    pub busy_plain: Vec<f64>,
    pub busy_gzip: Vec<f64>,
    /// Pages served to the UI clients, and the seconds they ran.
    pub pages: usize,
    pub busy_secs: f64,
    /// Latency of each UI page, as its client saw it.
    pub page_lat: Vec<f64>,
    /// Renders of the `/metrics` body and copies of the `/apps` rows
    /// during the busy phases (summed over the rounds).
    pub renders: u64,
    pub copies: u64,
    /// The same over the whole measure (idle and busy).
    pub renders_all: u64,
    pub clients: usize,
}

impl UiResult {
    fn pages_per_sec(&self) -> Option<f64> {
        (self.busy_secs > 0.0).then(|| self.pages as f64 / self.busy_secs)
    }
}

/// One UI request: path, `Accept`, and what the body starts with.
struct View {
    path: String,
    accept: &'static str,
    starts: &'static [u8],
}

/// The pages a user of the UI (and a script on `/apps` JSON) asks for.
fn views(scale: Scale) -> Vec<View> {
    let html = |path: String| View {
        path,
        accept: "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",
        starts: b"<!doctype html>",
    };
    let mut v = vec![
        html("/".into()),
        html("/apps".into()),
        html("/status".into()),
    ];
    let apps = scale.apps.max(1);
    let mut picked: Vec<usize> = (0..APP_PAGES).map(|i| i * apps / APP_PAGES).collect();
    picked.dedup();
    v.extend(
        picked
            .into_iter()
            .map(|a| html(format!("/apps/{}", workload::app_name(a)))),
    );
    v.push(View {
        path: "/apps".into(),
        accept: "application/json",
        starts: b"{",
    });
    v
}

/// `(renders_total, apps_copies_total)` from the status JSON.
async fn counters(conn: &mut HttpConn, buf: &mut Vec<u8>) -> Result<(u64, u64)> {
    let r = conn
        .send(&HttpConn::get("/status?format=json", false), buf)
        .await?;
    if r.status != 200 {
        bail!("/status?format=json answered {}", r.status);
    }
    let v: serde_json::Value = serde_json::from_slice(buf).context("/status?format=json")?;
    let get = |a: &str, b: &str| {
        v[a][b]
            .as_u64()
            .with_context(|| format!("/status?format=json has no {a}.{b}"))
    };
    Ok((
        get("store", "renders_total")?,
        get("ui", "apps_copies_total")?,
    ))
}

/// One UI client: loops over `views` on one keep-alive connection until
/// `stop` (or the deadline); returns the latency of each page served.
async fn ui_client(
    addr: SocketAddr,
    views: Arc<Vec<View>>,
    first: usize,
    stop: Arc<AtomicBool>,
    deadline: Instant,
) -> Result<Vec<f64>> {
    let mut conn = HttpConn::new(addr);
    let mut buf = Vec::new();
    let requests: Vec<Vec<u8>> = views
        .iter()
        .map(|v| HttpConn::get_as(&v.path, false, Some(v.accept)))
        .collect();
    let mut lat = Vec::new();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && lat.len() < MAX_VIEWS {
        let i = (first + lat.len()) % views.len();
        let t = Instant::now();
        let r = conn.send(&requests[i], &mut buf).await?;
        let secs = t.elapsed().as_secs_f64();
        if r.status != 200 || !buf.starts_with(views[i].starts) {
            bail!(
                "UI page {} answered {} with {:?}",
                views[i].path,
                r.status,
                String::from_utf8_lossy(&buf[..buf.len().min(200)])
            );
        }
        lat.push(secs);
    }
    Ok(lat)
}

/// Idle, then busy, `/metrics` latency in each of `args.rounds` rounds.
pub async fn measure(addr: SocketAddr, scale: Scale, args: &Args) -> Result<UiResult> {
    let views = Arc::new(views(scale));
    let clients = args.ui.ui_clients.max(1);
    let mut r = UiResult {
        clients,
        ..UiResult::default()
    };
    let mut conn = HttpConn::new(addr);
    let mut buf = Vec::new();
    // One view first: the rows of this generation are copied once, here.
    conn.send(&HttpConn::get_as("/", false, Some("text/html")), &mut buf)
        .await?;
    let (renders_start, _) = counters(&mut conn, &mut buf).await?;
    for round in 0..args.rounds {
        eprintln!("   busy UI, round {}: proxy idle", round + 1);
        r.idle_plain
            .extend(latency(addr, false, None, args).await?.0);
        r.idle_gzip.extend(latency(addr, true, None, args).await?.0);
        eprintln!(
            "   busy UI, round {}: proxy with {clients} UI clients",
            round + 1
        );
        let (renders, copies) = counters(&mut conn, &mut buf).await?;
        let stop = Arc::new(AtomicBool::new(false));
        // Past the latency runs' own bounds: a safety net, not the end.
        let deadline = Instant::now() + Duration::from_secs_f64(args.scrape_secs * 4.0 + 10.0);
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (views, stop) = (views.clone(), stop.clone());
                tokio::spawn(ui_client(addr, views, c, stop, deadline))
            })
            .collect();
        let busy = async {
            let plain = latency(addr, false, None, args).await?.0;
            let gzip = latency(addr, true, None, args).await?.0;
            Ok::<_, anyhow::Error>((plain, gzip))
        }
        .await;
        stop.store(true, Ordering::Relaxed);
        let mut pages = Vec::new();
        for t in tasks {
            pages.extend(t.await??);
        }
        let (plain, gzip) = busy?;
        r.busy_secs += started.elapsed().as_secs_f64();
        r.pages += pages.len();
        r.page_lat.extend(pages);
        r.busy_plain.extend(plain);
        r.busy_gzip.extend(gzip);
        let (renders_after, copies_after) = counters(&mut conn, &mut buf).await?;
        r.renders += renders_after.saturating_sub(renders);
        r.copies += copies_after.saturating_sub(copies);
    }
    r.renders_all = counters(&mut conn, &mut buf)
        .await?
        .0
        .saturating_sub(renders_start);
    Ok(r)
}

/// Busy over idle: how many times slower `/metrics` is with the UI busy.
fn slowdown(busy: &[f64], idle: &[f64], q: f64) -> Option<f64> {
    Some(ms(busy, q)? / ms(idle, q).filter(|i| *i > 0.0)?)
}

/// The busy-UI rows of one scale (the proxy only).
pub fn print_scale(r: &ScaleResult) {
    let u = &r.proxy.ui;
    if u.idle_plain.is_empty() {
        return;
    }
    println!();
    println!(
        "Proxy `/metrics` idle and with a busy UI ({} keep-alive clients looping over /, /apps, /status, app pages and /apps JSON; in the same rounds):",
        u.clients
    );
    println!();
    println!("| measure | idle | busy UI | busy ÷ idle |");
    println!("|---|---:|---:|---:|");
    for (label, idle, busy) in [
        ("plain", &u.idle_plain, &u.busy_plain),
        ("gzip", &u.idle_gzip, &u.busy_gzip),
    ] {
        for (qname, q) in [("median", 0.5), ("p99", 0.99)] {
            println!(
                "| /metrics {label}: {qname} ms (n={}/{}) | {} | {} | {} |",
                idle.len(),
                busy.len(),
                opt(ms(idle, q)),
                opt(ms(busy, q)),
                ratio(slowdown(busy, idle, q)),
            );
        }
    }
    println!(
        "| UI pages/s during the busy phases | – | {} | – |",
        opt(u.pages_per_sec())
    );
    for (qname, q) in [("median", 0.5), ("p99", 0.99)] {
        println!(
            "| UI page latency, {qname} ms (n={}) | – | {} | – |",
            u.page_lat.len(),
            opt(ms(&u.page_lat, q))
        );
    }
    println!(
        "| renders of /metrics during the busy phases (whole measure: {}) | – | {} | – |",
        u.renders_all, u.renders
    );
    println!(
        "| copies of the /apps rows during the busy phases | – | {} | – |",
        u.copies
    );
}

/// The busy-UI targets at 100×1000. The UI clients saturate the same two
/// cores as the scraper and the proxy, so `/metrics` cannot stay as fast
/// as idle: its writes are interleaved with the pages (and the scraping
/// client shares its threads with the UI clients), which gives it at least
/// half of the CPU, and it may find one page being built ahead of it. The
/// target is no more than that: busy median ≤ 2 × idle median + one UI
/// page's median latency; and no render and no copy of the rows while the
/// store is still (what a page that rendered or copied would break).
pub fn targets(results: &[ScaleResult]) -> Vec<(String, String, Option<bool>)> {
    let Some(r) = results
        .iter()
        .find(|r| r.scale.apps == 100 && r.scale.series == 1000)
    else {
        return Vec::new();
    };
    let u = &r.proxy.ui;
    let mut rows = Vec::new();
    let page = median(&u.page_lat);
    for (label, idle, busy) in [
        ("plain", &u.idle_plain, &u.busy_plain),
        ("gzip", &u.idle_gzip, &u.busy_gzip),
    ] {
        let (b, i) = (median(busy), median(idle));
        let bound = i.zip(page).map(|(i, p)| 2.0 * i + p);
        rows.push((
            format!("100×1000: /metrics median with a busy UI ≤ 2 × idle + one UI page (2 shared cores), {label}"),
            b.zip(bound).map_or_else(
                || "–".into(),
                |(b, bound)| format!("{} ms ≤ {} ms", num(b * 1000.0), num(bound * 1000.0)),
            ),
            b.zip(bound).map(|(b, bound)| b <= bound),
        ));
    }
    let measured = !u.busy_plain.is_empty();
    rows.push((
        "100×1000: a busy UI renders no /metrics body and copies no /apps rows (store unchanged)"
            .into(),
        format!("{} renders, {} copies", u.renders, u.copies),
        measured.then_some(u.renders == 0 && u.copies == 0),
    ));
    rows
}
