//! ep-bench: exporter-proxy against the Pushgateway and nginx, in one run.
//!
//! For each scale (A apps × S series) it starts the targets itself (the
//! proxy release binary, Debian's `prometheus-pushgateway`, and nginx
//! serving a captured copy of the proxy's page), loads them, and measures:
//! replace-push throughput and server CPU per push with C concurrent
//! clients, `/metrics` latency (median, p99; plain and gzip) and size,
//! scrapes/s under concurrent keep-alive load, and server memory. It prints
//! one Markdown table per scale with ratios, and the issue-8 target checks.
//! With `--steady` it runs the steady-state scenario instead ([`steady`]).
//!
//! Every loop is bounded in count and time; everything it starts is stopped
//! when it ends, also on error. See `docs/benchmarks.md`.

mod client;
mod formats;
mod hostile;
mod hostile_load;
mod procfs;
mod servers;
mod steady;
mod ui_load;
#[cfg(test)]
mod wire_tests;
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

use client::{HttpConn, PushAddr};
use exporter_proxy::ingest::codec::encode_capnp;

/// The proxy's allocator (src/main.rs): the hostile mode runs the library's
/// decoders in this process, and their CPU is the proxy's only with the same
/// allocator (glibc's malloc made the 16 MiB collector case about half again
/// as dear, most of it in freeing 700,000 small JSON objects).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Benchmark exporter-proxy against the Pushgateway and nginx in one run")]
struct Args {
    /// Scales as APPSxSERIES, comma-separated.
    #[arg(
        long,
        default_value = "10x100,100x1000,1000x1000",
        value_delimiter = ','
    )]
    scales: Vec<String>,
    /// Concurrent push clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Concurrent keep-alive connections of the scrape load.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Most replace-pushes per target and transport.
    #[arg(long, default_value_t = 2000)]
    max_pushes: usize,
    /// Longest push phase per target and transport, in seconds.
    #[arg(long, default_value_t = 10.0)]
    push_secs: f64,
    /// Most sequential scrapes per latency measurement.
    #[arg(long, default_value_t = 200)]
    latency_samples: usize,
    /// Longest latency measurement or scrape load, in seconds (each).
    #[arg(long, default_value_t = 4.0)]
    scrape_secs: f64,
    /// Scrape rounds; targets take turns in every round to spread noise.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Push-then-scrape measurements of the proxy's render after a change.
    #[arg(long, default_value_t = 10)]
    change_samples: usize,
    /// Longest initial load of one target, in seconds; a target that cannot
    /// load within it is reported as skipped.
    #[arg(long, default_value_t = 180.0)]
    load_secs: f64,
    /// Runtime worker threads of the proxy (its `exporter.worker_threads`).
    #[arg(long, default_value_t = 2)]
    proxy_threads: usize,
    /// nginx worker processes.
    #[arg(long, default_value_t = 2)]
    nginx_workers: usize,
    /// The proxy binary (default: `exporter-proxy` next to this binary).
    #[arg(long)]
    proxy: Option<PathBuf>,
    /// The Pushgateway binary.
    #[arg(long, default_value = "/usr/bin/prometheus-pushgateway")]
    pushgateway: PathBuf,
    /// The nginx binary.
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx: PathBuf,
    /// Skip the Pushgateway at scales above this many series.
    #[arg(long)]
    pushgateway_max_series: Option<usize>,
    /// Instead of the comparison: the hostile mode, the worst inputs for
    /// each decoder at the largest size the limits let in, with the CPU
    /// seconds each takes (docs/hostile-input.md).
    #[arg(long)]
    hostile: bool,
    #[command(flatten)]
    steady: steady::SteadyArgs,
    #[command(flatten)]
    ui: ui_load::UiArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.hostile {
        let proxy = match &args.proxy {
            Some(p) => p.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("no directory for the current executable")?
                .join("exporter-proxy"),
        };
        return hostile::run_all(&proxy);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

#[derive(Debug, Clone, Copy)]
struct Scale {
    apps: usize,
    series: usize,
}

impl Scale {
    fn parse(s: &str) -> Result<Scale> {
        let (a, b) = s
            .split_once('x')
            .with_context(|| format!("scale {s:?}: expected APPSxSERIES"))?;
        Ok(Scale {
            apps: a.trim().parse()?,
            series: b.trim().parse()?,
        })
    }
}

/// How pushes reach a target.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transport {
    UnixJson,
    UnixCapnp,
    TcpJson,
    TcpCapnp,
    HttpPut,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::UnixJson => "unix json",
            Transport::UnixCapnp => "unix capnp",
            Transport::TcpJson => "tcp json",
            Transport::TcpCapnp => "tcp capnp",
            Transport::HttpPut => "http put",
        }
    }
}

/// A push phase's outcome.
#[derive(Debug, Clone)]
struct PushResult {
    transport: Transport,
    pushes: usize,
    secs: f64,
    cpu_secs: f64,
}

impl PushResult {
    fn rate(&self) -> f64 {
        self.pushes as f64 / self.secs
    }
    fn cpu_ms(&self) -> f64 {
        self.cpu_secs * 1000.0 / self.pushes as f64
    }
}

/// What was measured on one target at one scale.
#[derive(Debug, Default)]
struct TargetResult {
    skipped: Option<String>,
    load_secs: Option<f64>,
    pushes: Vec<PushResult>,
    change: formats::Change,
    lat_plain: Vec<f64>,
    lat_gzip: Vec<f64>,
    size_plain: usize,
    size_gzip: usize,
    rps_plain: Vec<f64>,
    rps_gzip: Vec<f64>,
    rss_kib: u64,
    hwm_kib: u64,
    /// VmRSS after the initial load and after the push phases.
    rss_loaded_kib: u64,
    rss_pushed_kib: u64,
    /// The proxy only: its other formats ([`formats::ALT_FORMATS`]).
    formats: Vec<formats::FormatResult>,
    /// The proxy only: VmRSS after the scrapes in the other formats too.
    rss_formats_kib: u64,
    /// The proxy only: VmRSS and VmHWM at the end, after the busy UI too.
    end_kib: (u64, u64),
    /// The proxy only: `/metrics` idle and with a busy UI (issue 18).
    ui: ui_load::UiResult,
}

struct ScaleResult {
    scale: Scale,
    pushed_bytes: usize,
    proxy: TargetResult,
    pushgateway: TargetResult,
    nginx: TargetResult,
}

async fn run(args: Args) -> Result<()> {
    let scales: Vec<Scale> = args
        .scales
        .iter()
        .map(|s| Scale::parse(s))
        .collect::<Result<_>>()?;
    let proxy_bin = match &args.proxy {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory for the current executable")?
            .join("exporter-proxy"),
    };
    for bin in [&proxy_bin, &args.pushgateway, &args.nginx] {
        if !bin.exists() {
            bail!("{} not found (see docs/benchmarks.md)", bin.display());
        }
    }
    if args.steady.steady {
        let (threads, load) = (args.proxy_threads, args.load_secs);
        return steady::run(&args.steady, &proxy_bin, &args.pushgateway, threads, load).await;
    }
    let ticks = procfs::ticks_per_second();
    let started = Instant::now();
    let mut results = Vec::new();
    for scale in scales {
        eprintln!("== {} apps x {} series", scale.apps, scale.series);
        let r = run_scale(&args, &proxy_bin, scale, ticks).await?;
        print_scale(&args, &r);
        results.push(r);
    }
    print_targets(&results);
    eprintln!("ep-bench: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Pre-encoded payloads for the push phases: `pool` apps × 2 rounds, so
/// that consecutive pushes of an app change its values.
struct Payloads {
    texts: Vec<[String; 2]>,
}

impl Payloads {
    fn new(scale: Scale, clients: usize) -> Payloads {
        let pool = scale.apps.min(clients * 8).max(1);
        let texts = (0..pool)
            .map(|a| {
                [
                    workload::app_text(a, scale.series, 1),
                    workload::app_text(a, scale.series, 2),
                ]
            })
            .collect();
        Payloads { texts }
    }

    fn encode(&self, transport: Transport) -> Vec<[Vec<u8>; 2]> {
        self.texts
            .iter()
            .enumerate()
            .map(|(a, t)| t.clone().map(|text| encode_push(transport, a, &text)))
            .collect()
    }
}

fn encode_push(transport: Transport, app: usize, text: &str) -> Vec<u8> {
    let name = workload::app_name(app);
    match transport {
        Transport::UnixJson | Transport::TcpJson => {
            let mut doc = serde_json::Map::new();
            doc.insert(name, serde_json::Value::String(text.to_owned()));
            serde_json::to_vec(&doc).expect("JSON encodes")
        }
        Transport::UnixCapnp | Transport::TcpCapnp => encode_capnp(&name, text),
        Transport::HttpPut => HttpConn::put(&format!("/metrics/job/{name}"), text.as_bytes()),
    }
}

/// Sends one push of an already encoded payload.
#[derive(Clone)]
enum Pusher {
    Proxy {
        unix: PathBuf,
        tcp: SocketAddr,
        http: SocketAddr,
    },
    Gateway(SocketAddr),
}

impl Pusher {
    async fn push(
        &self,
        transport: Transport,
        payload: &[u8],
        conn: &mut Option<HttpConn>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        match (self, transport) {
            (Pusher::Proxy { unix, .. }, Transport::UnixJson | Transport::UnixCapnp) => {
                client::push_stream(&PushAddr::Unix(unix.clone()), payload).await
            }
            (Pusher::Proxy { tcp, .. }, Transport::TcpJson | Transport::TcpCapnp) => {
                client::push_stream(&PushAddr::Tcp(*tcp), payload).await
            }
            (Pusher::Gateway(addr), Transport::HttpPut)
            | (Pusher::Proxy { http: addr, .. }, Transport::HttpPut) => {
                let c = conn.get_or_insert_with(|| HttpConn::new(*addr));
                let r = c.send(payload, buf).await?;
                if r.status / 100 != 2 {
                    bail!(
                        "push refused with status {}: {}",
                        r.status,
                        String::from_utf8_lossy(buf).trim_end()
                    );
                }
                Ok(())
            }
            _ => bail!(
                "transport {} not supported by this target",
                transport.label()
            ),
        }
    }
}

/// Loads every app once (round 0) with `clients` concurrent clients.
/// Returns the time taken and the bytes of exposition text pushed, or
/// `None` when the deadline passed first.
async fn load(
    pusher: &Pusher,
    transport: Transport,
    scale: Scale,
    clients: usize,
    limit: Duration,
) -> Result<(Option<f64>, usize, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + limit;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, done, bytes, pusher) =
            (next.clone(), done.clone(), bytes.clone(), pusher.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = None;
            let mut buf = Vec::new();
            loop {
                let app = next.fetch_add(1, Ordering::Relaxed);
                if app >= scale.apps || Instant::now() > deadline {
                    return Ok::<(), anyhow::Error>(());
                }
                let text = workload::app_text(app, scale.series, 0);
                bytes.fetch_add(text.len(), Ordering::Relaxed);
                let payload = encode_push(transport, app, &text);
                pusher
                    .push(transport, &payload, &mut conn, &mut buf)
                    .await
                    .with_context(|| format!("loading {}", workload::app_name(app)))?;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let loaded = done.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    Ok((
        (loaded == scale.apps).then_some(secs),
        loaded,
        bytes.load(Ordering::Relaxed),
    ))
}

/// Replace-pushes from `clients` concurrent clients, each cycling through
/// its own share of the payload pool, until `max` pushes or `secs` passed.
async fn push_phase(
    pusher: &Pusher,
    transport: Transport,
    payloads: Arc<Vec<[Vec<u8>; 2]>>,
    args: &Args,
    pids: &[u32],
    ticks: f64,
) -> Result<PushResult> {
    let issued = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let max = args.max_pushes;
    let clients = args.clients.min(payloads.len()).max(1);
    let cpu_before = procfs::cpu_ticks(pids);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.push_secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (issued, done, pusher, payloads) = (
            issued.clone(),
            done.clone(),
            pusher.clone(),
            payloads.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = None;
            let mut buf = Vec::new();
            let mine: Vec<usize> = (c..payloads.len()).step_by(clients).collect();
            let mut k = 0usize;
            loop {
                if issued.fetch_add(1, Ordering::Relaxed) >= max || Instant::now() > deadline {
                    return Ok::<(), anyhow::Error>(());
                }
                let app = mine[k % mine.len()];
                let variant = (k / mine.len()) % 2;
                pusher
                    .push(transport, &payloads[app][variant], &mut conn, &mut buf)
                    .await?;
                done.fetch_add(1, Ordering::Relaxed);
                k += 1;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu_secs = procfs::cpu_ticks(pids).saturating_sub(cpu_before) as f64 / ticks;
    Ok(PushResult {
        transport,
        pushes: done.load(Ordering::Relaxed),
        secs,
        cpu_secs,
    })
}

/// One GET of `/metrics`, timed; returns (seconds, body bytes).
async fn scrape_once(conn: &mut HttpConn, gzip: bool, buf: &mut Vec<u8>) -> Result<(f64, usize)> {
    scrape_as(conn, gzip, None, buf).await
}

/// [`scrape_once`] with an `Accept` header.
async fn scrape_as(
    conn: &mut HttpConn,
    gzip: bool,
    accept: Option<&str>,
    buf: &mut Vec<u8>,
) -> Result<(f64, usize)> {
    let (secs, _, size) = scrape_timed(conn, gzip, accept, buf).await?;
    Ok((secs, size))
}

/// [`scrape_as`], also returning the seconds to the first body byte.
async fn scrape_timed(
    conn: &mut HttpConn,
    gzip: bool,
    accept: Option<&str>,
    buf: &mut Vec<u8>,
) -> Result<(f64, f64, usize)> {
    let req = HttpConn::get_as("/metrics", gzip, accept);
    let t = Instant::now();
    let r = conn.send(&req, buf).await?;
    let secs = t.elapsed().as_secs_f64();
    if r.status != 200 {
        bail!("/metrics answered {}", r.status);
    }
    if r.gzip != gzip {
        bail!("/metrics: asked gzip={gzip}, got gzip={}", r.gzip);
    }
    Ok((secs, r.first_byte.as_secs_f64(), buf.len()))
}

/// Sequential scrapes on one keep-alive connection, bounded in count and
/// time; one unmeasured warm-up scrape first.
async fn latency(
    addr: SocketAddr,
    gzip: bool,
    accept: Option<&'static str>,
    args: &Args,
) -> Result<(Vec<f64>, usize)> {
    let mut conn = HttpConn::new(addr);
    let mut buf = Vec::new();
    let (_, size) = scrape_as(&mut conn, gzip, accept, &mut buf).await?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.scrape_secs);
    let mut samples = Vec::new();
    while samples.len() < args.latency_samples && (samples.len() < 3 || Instant::now() < deadline) {
        samples.push(scrape_as(&mut conn, gzip, accept, &mut buf).await?.0);
    }
    Ok((samples, size))
}

/// Scrapes/s from `connections` concurrent keep-alive connections during
/// `scrape_secs`.
async fn throughput(
    addr: SocketAddr,
    gzip: bool,
    accept: Option<&'static str>,
    args: &Args,
) -> Result<f64> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.scrape_secs);
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        tasks.push(tokio::spawn(async move {
            let mut conn = HttpConn::new(addr);
            let mut buf = Vec::new();
            let mut n = 0usize;
            // Bounded by time; the count bound only guards against a clock
            // that does not move.
            while Instant::now() < deadline && n < 10_000_000 {
                scrape_as(&mut conn, gzip, accept, &mut buf).await?;
                n += 1;
            }
            Ok::<usize, anyhow::Error>(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Measures one scale: the proxy's own phases, the Pushgateway's, then
/// scrape rounds over both and over nginx serving the proxy's page.
async fn run_scale(
    args: &Args,
    proxy_bin: &std::path::Path,
    scale: Scale,
    ticks: f64,
) -> Result<ScaleResult> {
    let payloads = Payloads::new(scale, args.clients);
    let ProxyPhase {
        mut proxy,
        result: mut proxy_r,
        pushed_bytes,
        plain,
        gzip,
    } = proxy_phases(args, proxy_bin, scale, ticks, &payloads).await?;
    let (mut gw_r, gateway) = pushgateway_phases(args, scale, ticks, &payloads).await?;

    // --- nginx with the captured page.
    let (mut nginx, nginx_addr) =
        servers::start_nginx(&args.nginx, args.nginx_workers, &plain, &gzip).await?;

    // --- scrapes: targets take turns within each round.
    let mut nginx_r = TargetResult::default();
    let mut targets: Vec<(&str, SocketAddr, &mut TargetResult)> =
        vec![("proxy", proxy.http, &mut proxy_r)];
    if let Some((_, a)) = &gateway {
        targets.push(("pushgateway", *a, &mut gw_r));
    }
    targets.push(("nginx", nginx_addr, &mut nginx_r));
    scrape_rounds(args, &mut targets).await?;
    drop(targets);

    // --- memory, then stop everything (a server that died fails the run).
    let mem = |pids: &[u32]| procfs::memory_kib(pids);
    (proxy_r.rss_kib, proxy_r.hwm_kib) = mem(&proxy.server.pids());
    // The proxy's other formats once the text figures (memory included)
    // are taken: each format scraped keeps its own encoding, which the
    // issue-8 memory targets (text scrapes) must not count.
    for round in 0..args.rounds {
        formats::scrape_round(proxy.http, &mut proxy_r.formats, args, round).await?;
    }
    proxy_r.rss_formats_kib = mem(&proxy.server.pids()).0;
    proxy_r.ui = ui_load::measure(proxy.http, scale, args).await?;
    proxy_r.end_kib = mem(&proxy.server.pids());
    proxy.server.check_alive()?;
    proxy.server.stop()?;
    if let Some((gw, _)) = gateway {
        (gw_r.rss_kib, gw_r.hwm_kib) = mem(&gw.pids());
        gw.stop()?;
    }
    (nginx_r.rss_kib, nginx_r.hwm_kib) = mem(&nginx.pids());
    nginx.check_alive()?;
    nginx.stop()?;
    Ok(ScaleResult {
        scale,
        pushed_bytes,
        proxy: proxy_r,
        pushgateway: gw_r,
        nginx: nginx_r,
    })
}

/// The proxy after its own phases, still running for the scrape rounds.
struct ProxyPhase {
    proxy: servers::Proxy,
    result: TargetResult,
    /// Bytes of exposition text of the initial load.
    pushed_bytes: usize,
    /// The page every later scrape gets from the cache, plain and gzip
    /// (nginx serves these).
    plain: Vec<u8>,
    gzip: Vec<u8>,
}

/// Starts the proxy and measures its load, its push phases (one per
/// transport) and the scrapes right after a change.
async fn proxy_phases(
    args: &Args,
    proxy_bin: &std::path::Path,
    scale: Scale,
    ticks: f64,
    payloads: &Payloads,
) -> Result<ProxyPhase> {
    let load_limit = Duration::from_secs_f64(args.load_secs);
    let mut proxy_r = TargetResult {
        formats: formats::results(),
        ..TargetResult::default()
    };
    let mut proxy =
        servers::start_proxy(proxy_bin, args.proxy_threads, scale.apps, scale.series).await?;
    let pusher = Pusher::Proxy {
        unix: proxy.unix.clone(),
        tcp: proxy.tcp,
        http: proxy.http,
    };
    eprintln!("   proxy: loading");
    let (load_secs, loaded, pushed_bytes) = load(
        &pusher,
        Transport::UnixCapnp,
        scale,
        args.clients,
        load_limit,
    )
    .await?;
    if load_secs.is_none() {
        bail!(
            "the proxy loaded only {loaded} of {} apps within {load_limit:?}",
            scale.apps
        );
    }
    proxy_r.load_secs = load_secs;
    let pids = proxy.server.pids();
    proxy_r.rss_loaded_kib = procfs::memory_kib(&pids).0;
    for t in [
        Transport::UnixJson,
        Transport::UnixCapnp,
        Transport::TcpJson,
        Transport::TcpCapnp,
        Transport::HttpPut,
    ] {
        eprintln!("   proxy: pushing over {}", t.label());
        let p = Arc::new(payloads.encode(t));
        proxy_r
            .pushes
            .push(push_phase(&pusher, t, p, args, &pids, ticks).await?);
        proxy.server.check_alive()?;
    }
    delete_http_groups(proxy.http, payloads.texts.len()).await?;
    proxy_r.rss_pushed_kib = procfs::memory_kib(&pids).0;
    eprintln!("   proxy: scrape after a change");
    let (plain, gzip) =
        scrapes_after_change(&pusher, proxy.http, payloads, args, &mut proxy_r).await?;
    Ok(ProxyPhase {
        proxy,
        result: proxy_r,
        pushed_bytes,
        plain,
        gzip,
    })
}

/// HTTP pushes made groups of their own (`{job="app0000"}`) beside the
/// socket-pushed apps: delete them so that memory figures compare the
/// same store as the Pushgateway's.
async fn delete_http_groups(http: SocketAddr, apps: usize) -> Result<()> {
    let mut conn = HttpConn::new(http);
    let mut buf = Vec::new();
    for a in 0..apps {
        let path = format!("/metrics/job/{}", workload::app_name(a));
        let r = conn.send(&HttpConn::delete(&path), &mut buf).await?;
        if r.status != 202 {
            bail!("DELETE {path} answered {}", r.status);
        }
    }
    Ok(())
}

/// Times scrapes that follow a push (a render, not the cache) into
/// `change` (full, first byte, extra over the cached scrape); returns the cached page afterwards,
/// plain and gzip.
async fn scrapes_after_change(
    pusher: &Pusher,
    http: SocketAddr,
    payloads: &Payloads,
    args: &Args,
    proxy_r: &mut TargetResult,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let change_payload = [
        encode_push(Transport::UnixCapnp, 0, &payloads.texts[0][0]),
        encode_push(Transport::UnixCapnp, 0, &payloads.texts[0][1]),
    ];
    let mut conn = HttpConn::new(http);
    let mut buf = Vec::new();
    let mut change = 0;
    for (f, accept) in std::iter::once((None, None)).chain(
        formats::ALT_FORMATS
            .iter()
            .enumerate()
            .map(|(i, f)| (Some(i), Some(f.accept))),
    ) {
        for _ in 0..args.change_samples {
            for gzip in [false, true] {
                pusher
                    .push(
                        Transport::UnixCapnp,
                        &change_payload[change % 2],
                        &mut None,
                        &mut buf,
                    )
                    .await?;
                change += 1;
                let (secs, first, _) = scrape_timed(&mut conn, gzip, accept, &mut buf).await?;
                // The same body again, from the cache: what the transfer
                // alone costs in this round.
                let (cached, _, _) = scrape_timed(&mut conn, gzip, accept, &mut buf).await?;
                let c = match f {
                    None => &mut proxy_r.change,
                    Some(i) => &mut proxy_r.formats[i].change,
                };
                c.record(gzip, secs, first, cached);
            }
        }
    }
    // Let the last push connection's close land (it bumps the generation),
    // then capture the page that every later scrape gets from the cache.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, _) = scrape_once(&mut conn, false, &mut buf).await?;
    let plain = buf.clone();
    scrape_once(&mut conn, true, &mut buf).await?;
    let gzip = buf.clone();
    Ok((plain, gzip))
}

/// The Pushgateway: load, push phase (memory is read now: it is only alive
/// during its own phase). Returns it still running, unless it was skipped.
async fn pushgateway_phases(
    args: &Args,
    scale: Scale,
    ticks: f64,
    payloads: &Payloads,
) -> Result<(TargetResult, Option<(servers::Server, SocketAddr)>)> {
    let load_limit = Duration::from_secs_f64(args.load_secs);
    let mut gw_r = TargetResult::default();
    if args
        .pushgateway_max_series
        .is_some_and(|m| scale.apps * scale.series > m)
    {
        gw_r.skipped = Some("skipped: above --pushgateway-max-series".to_owned());
        return Ok((gw_r, None));
    }
    let (mut gw, gw_addr) = servers::start_pushgateway(&args.pushgateway).await?;
    let gw_pusher = Pusher::Gateway(gw_addr);
    eprintln!("   pushgateway: loading");
    let (secs, loaded, _) = load(
        &gw_pusher,
        Transport::HttpPut,
        scale,
        args.clients,
        load_limit,
    )
    .await?;
    let Some(secs) = secs else {
        gw_r.skipped = Some(format!(
            "skipped: loaded only {loaded} of {} apps in {:.0} s",
            scale.apps,
            load_limit.as_secs_f64()
        ));
        gw.stop()?;
        return Ok((gw_r, None));
    };
    gw_r.load_secs = Some(secs);
    eprintln!("   pushgateway: pushing over http put");
    let p = Arc::new(payloads.encode(Transport::HttpPut));
    let pids = gw.pids();
    gw_r.rss_loaded_kib = procfs::memory_kib(&pids).0;
    gw_r.pushes
        .push(push_phase(&gw_pusher, Transport::HttpPut, p, args, &pids, ticks).await?);
    gw_r.rss_pushed_kib = procfs::memory_kib(&pids).0;
    gw.check_alive()?;
    Ok((gw_r, Some((gw, gw_addr))))
}

/// Latency and throughput of every target, plain and gzip; the targets
/// take turns within each of `args.rounds` rounds.
async fn scrape_rounds(
    args: &Args,
    targets: &mut [(&str, SocketAddr, &mut TargetResult)],
) -> Result<()> {
    for round in 0..args.rounds {
        for (name, addr, r) in targets.iter_mut() {
            eprintln!("   scrapes, round {}: {name}", round + 1);
            let (l, size) = latency(*addr, false, None, args).await?;
            r.lat_plain.extend(l);
            r.size_plain = size;
            let (l, size) = latency(*addr, true, None, args).await?;
            r.lat_gzip.extend(l);
            r.size_gzip = size;
            r.rps_plain
                .push(throughput(*addr, false, None, args).await?);
            r.rps_gzip.push(throughput(*addr, true, None, args).await?);
        }
    }
    Ok(())
}

// --- reporting -------------------------------------------------------------

fn median(v: &[f64]) -> Option<f64> {
    quantile(v, 0.5)
}

/// Nearest-rank quantile.
fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    Some(s[rank - 1])
}

/// A number with about three significant digits.
fn num(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), num)
}

/// How many times better the proxy is: `other / proxy` for costs.
fn better_cost(proxy: Option<f64>, other: Option<f64>) -> Option<f64> {
    // A zero cost is below the measurement's resolution (one clock tick).
    proxy.filter(|p| *p > 0.0).and_then(|p| Some(other? / p))
}

/// How many times better the proxy is: `proxy / other` for rates.
fn better_rate(proxy: Option<f64>, other: Option<f64>) -> Option<f64> {
    Some(proxy? / other?)
}

fn ratio(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |r| format!("{}×", num(r)))
}

fn ms(v: &[f64], q: f64) -> Option<f64> {
    quantile(v, q).map(|s| s * 1000.0)
}

fn mib(kib: u64) -> Option<f64> {
    (kib > 0).then_some(kib as f64 / 1024.0)
}

fn nonzero(x: usize) -> Option<f64> {
    (x > 0).then_some(x as f64)
}

fn gw_push(r: &ScaleResult) -> Option<&PushResult> {
    r.pushgateway
        .pushes
        .iter()
        .find(|p| p.transport == Transport::HttpPut)
}

/// Prints one scale's results as a Markdown table.
fn print_scale(args: &Args, r: &ScaleResult) {
    let g = &r.pushgateway;
    println!();
    println!(
        "### {} apps × {} series ({} series; pushed text {:.1} MiB)",
        r.scale.apps,
        r.scale.series,
        r.scale.apps * r.scale.series,
        r.pushed_bytes as f64 / (1 << 20) as f64
    );
    println!();
    if let Some(why) = &g.skipped {
        println!("Pushgateway {why}.");
        println!();
    }
    println!("Ratios say how many times better the proxy is (above 1: the proxy is ahead).");
    println!();
    println!(
        "| measure | exporter-proxy | Pushgateway | nginx (file) | vs Pushgateway | vs nginx |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    print_push_rows(args, r);
    print_scrape_rows(args, r);
    procfs::print_memory_rows(r);
    formats::print_scale(args.connections, r);
    ui_load::print_scale(r);
}

/// One row of the table: the three targets' values and the proxy's ratios
/// to the Pushgateway and to nginx.
fn row(name: &str, pv: String, gv: String, nv: String, rg: Option<f64>, rn: Option<f64>) {
    println!(
        "| {name} | {pv} | {gv} | {nv} | {} | {} |",
        ratio(rg),
        ratio(rn)
    );
}

/// The initial load and each push phase: rate and server CPU per push.
fn print_push_rows(args: &Args, r: &ScaleResult) {
    let (p, g) = (&r.proxy, &r.pushgateway);
    row(
        "initial load of all apps (s)",
        opt(p.load_secs),
        opt(g.load_secs),
        "–".into(),
        better_cost(p.load_secs, g.load_secs),
        None,
    );
    let gp = gw_push(r);
    for t in &p.pushes {
        row(
            &format!(
                "push {}: pushes/s (C={})",
                t.transport.label(),
                args.clients
            ),
            num(t.rate()),
            opt(gp.map(PushResult::rate)),
            "–".into(),
            better_rate(Some(t.rate()), gp.map(PushResult::rate)),
            None,
        );
        row(
            &format!("push {}: server CPU ms/push", t.transport.label()),
            num(t.cpu_ms()),
            opt(gp.map(PushResult::cpu_ms)),
            "–".into(),
            better_cost(Some(t.cpu_ms()), gp.map(PushResult::cpu_ms)),
            None,
        );
    }
}

/// `/metrics`: sizes, latencies (cached and right after a push) and
/// throughput.
fn print_scrape_rows(args: &Args, r: &ScaleResult) {
    let (p, g, n) = (&r.proxy, &r.pushgateway, &r.nginx);
    for (label, gz) in [("plain", false), ("gzip", true)] {
        let (pl, gl, nl) = if gz {
            (&p.lat_gzip, &g.lat_gzip, &n.lat_gzip)
        } else {
            (&p.lat_plain, &g.lat_plain, &n.lat_plain)
        };
        let (ps, gs, ns) = if gz {
            (p.size_gzip, g.size_gzip, n.size_gzip)
        } else {
            (p.size_plain, g.size_plain, n.size_plain)
        };
        row(
            &format!("/metrics {label}: size (bytes)"),
            opt(nonzero(ps)),
            opt(nonzero(gs)),
            opt(nonzero(ns)),
            None,
            None,
        );
        for (qname, q) in [("median", 0.5), ("p99", 0.99)] {
            row(
                &format!("/metrics {label}: {qname} ms (n={})", pl.len()),
                opt(ms(pl, q)),
                opt(ms(gl, q)),
                opt(ms(nl, q)),
                better_cost(ms(pl, q), ms(gl, q)),
                better_cost(ms(pl, q), ms(nl, q)),
            );
        }
    }
    for (label, c) in p.change.rows() {
        row(
            &label,
            opt(ms(c, 0.5)),
            "(renders every scrape)".into(),
            "–".into(),
            None,
            None,
        );
    }
    for (label, pv, gv, nv) in [
        ("plain", &p.rps_plain, &g.rps_plain, &n.rps_plain),
        ("gzip", &p.rps_gzip, &g.rps_gzip, &n.rps_gzip),
    ] {
        row(
            &format!(
                "scrapes/s, {} connections, {label} (median of {})",
                args.connections,
                pv.len()
            ),
            opt(median(pv)),
            opt(median(gv)),
            opt(median(nv)),
            better_rate(median(pv), median(gv)),
            better_rate(median(pv), median(nv)),
        );
    }
}

/// The checks of issue 8, for the scales that were run.
fn print_targets(results: &[ScaleResult]) {
    let find = |a, s| {
        results
            .iter()
            .find(|r| r.scale.apps == a && r.scale.series == s)
    };
    let mut rows: Vec<(String, String, Option<bool>)> = Vec::new();
    let worst_cpu = |r: &ScaleResult| {
        r.proxy
            .pushes
            .iter()
            .map(PushResult::cpu_ms)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    };
    if let Some(r) = find(100, 1000) {
        let (p, g, n) = (&r.proxy, &r.pushgateway, &r.nginx);
        let check = |rows: &mut Vec<_>, what: &str, x: Option<f64>, ok: fn(f64) -> bool| {
            rows.push((what.to_owned(), ratio(x), x.map(ok)));
        };
        check(
            &mut rows,
            "100×1000: server CPU per push ≥ 100× lower than the Pushgateway (worst transport)",
            better_cost(worst_cpu(r), gw_push(r).map(PushResult::cpu_ms)),
            |x| x >= 100.0,
        );
        check(
            &mut rows,
            "100×1000: cached /metrics median ≥ 25× faster than the Pushgateway (plain)",
            better_cost(median(&p.lat_plain), median(&g.lat_plain)),
            |x| x >= 25.0,
        );
        check(
            &mut rows,
            "100×1000: cached /metrics median ≥ 25× faster than the Pushgateway (gzip)",
            better_cost(median(&p.lat_gzip), median(&g.lat_gzip)),
            |x| x >= 25.0,
        );
        check(
            &mut rows,
            "100×1000: cached /metrics median within 1.5× of nginx, plain (≥ 0.67×)",
            better_cost(median(&p.lat_plain), median(&n.lat_plain)),
            |x| x >= 1.0 / 1.5,
        );
        check(
            &mut rows,
            "100×1000: cached /metrics median within 1.5× of nginx, gzip (≥ 0.67×)",
            better_cost(median(&p.lat_gzip), median(&n.lat_gzip)),
            |x| x >= 1.0 / 1.5,
        );
        check(
            &mut rows,
            "100×1000: scrapes/s with 4 connections ≥ 0.7× nginx, plain",
            better_rate(median(&p.rps_plain), median(&n.rps_plain)),
            |x| x >= 0.7,
        );
        check(
            &mut rows,
            "100×1000: scrapes/s with 4 connections ≥ 0.7× nginx, gzip",
            better_rate(median(&p.rps_gzip), median(&n.rps_gzip)),
            |x| x >= 0.7,
        );
        check(
            &mut rows,
            "100×1000: RSS ≤ half the Pushgateway's (≥ 2×)",
            better_cost(mib(p.rss_kib), mib(g.rss_kib)),
            |x| x >= 2.0,
        );
    }
    if let Some(big) = find(1000, 1000) {
        let base = find(100, 1000);
        let growth = base.and_then(|b| Some(worst_cpu(big)? / worst_cpu(b)?));
        rows.push((
            "1000×1000: CPU per push of 1,000 series ÷ the same at 100×1000 (≤ 2: in proportion to the push, not the store)".into(),
            opt(growth),
            growth.map(|x| x <= 2.0),
        ));
        let change = median(big.proxy.change.full(false));
        rows.push((
            "1000×1000: /metrics right after a push, plain, median < 1 s".into(),
            change.map_or_else(|| "–".into(), |s| format!("{} s", num(s))),
            change.map(|s| s < 1.0),
        ));
        // Issue 19: a change costs in proportion to the change. The plain
        // body (85 MB) takes longer than that to transfer even from the
        // cache, so its target is the time beyond the cached scrape.
        let extra = median(&big.proxy.change.plain[2]);
        rows.push((
            "1000×1000: /metrics right after a push, plain, median extra over a cached scrape ≤ 10 ms".into(),
            extra.map_or_else(|| "–".into(), |s| format!("{} ms", num(s * 1000.0))),
            extra.map(|s| s <= 0.010),
        ));
        let gz = median(big.proxy.change.full(true));
        rows.push((
            "1000×1000: /metrics right after a push, gzip, median ≤ 20 ms".into(),
            gz.map_or_else(|| "–".into(), |s| format!("{} ms", num(s * 1000.0))),
            gz.map(|s| s <= 0.020),
        ));
        let rss = big.proxy.rss_kib as f64 * 1024.0 / big.pushed_bytes as f64;
        rows.push((
            "1000×1000: RSS < 3× the pushed text".into(),
            format!("{}×", num(rss)),
            Some(rss < 3.0),
        ));
        rows.push(procfs::peak_target(big));
    }
    rows.extend(formats::targets(results));
    rows.extend(ui_load::targets(results));
    if rows.is_empty() {
        return;
    }
    println!();
    println!("### Targets (issues 8, 14, 18 and 19)");
    println!();
    println!("| target | measured | holds |");
    println!("|---|---:|---|");
    for (what, value, ok) in rows {
        let ok = match ok {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        println!("| {what} | {value} | {ok} |");
    }
}
