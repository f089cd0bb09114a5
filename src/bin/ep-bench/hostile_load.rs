//! `ep-bench --hostile`, second part: the load cases at full size against
//! the proxy release binary over loopback (the integration tests run them
//! scaled down): a burst of 1,000 pushers against `concurrent_requests =
//! 64`, 2,000 slow senders of 16 MiB each, and 15,000 idle HTTP
//! connections. Each reports what the clients got, the proxy's CPU seconds
//! and its peak memory.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::procfs;
use crate::servers::{free_addrs, Server, TempDir};

/// One load case's figures.
pub struct LoadCase {
    pub name: String,
    pub outcome: String,
    pub cpu_secs: f64,
    pub peak_mib: f64,
    pub secs: f64,
}

/// The proxy with a config for the case.
async fn start(
    binary: &Path,
    exporter: &str,
    limits: &str,
) -> Result<(Server, SocketAddr, SocketAddr)> {
    let dir = TempDir::new("hostile")?;
    let [http, tcp] = free_addrs(2)?[..] else {
        unreachable!("two addresses")
    };
    let config = format!(
        "[exporter]\nworker_threads = 2\nscrape_expose_endpoint = \"{http}\"\nshutdown_grace_period = \"2s\"\n{exporter}\n\
         [receiver]\nformat = \"auto\"\nreceive_on_tcp_socket = true\nreceiver_tcp_socket = \"{tcp}\"\n\
         [limits]\n{limits}\n"
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config)?;
    let mut cmd = std::process::Command::new(binary);
    cmd.arg("-c").arg(&path);
    let mut server = Server::spawn("exporter-proxy", cmd, dir)?;
    server.wait_ready(http, "/-/ready").await?;
    Ok((server, http, tcp))
}

fn figures(server: &Server, tick: f64, cpu0: u64, started: Instant) -> (f64, f64, f64) {
    let pids = server.pids();
    let cpu = (procfs::cpu_ticks(&pids) - cpu0) as f64 / tick;
    let (_, hwm) = procfs::memory_kib(&pids);
    (cpu, hwm as f64 / 1024.0, started.elapsed().as_secs_f64())
}

/// 1,000 pushers connect at once against 64 slots; all must land.
/// `backlog`: `limits.listen_backlog` (`None`: the default).
async fn burst(binary: &Path, tick: f64, backlog: Option<u32>) -> Result<LoadCase> {
    const PUSHERS: usize = 1000;
    let limits = backlog.map_or(String::new(), |b| format!("listen_backlog = {b}"));
    let (server, _, tcp) = start(binary, "concurrent_requests = 64", &limits).await?;
    let cpu0 = procfs::cpu_ticks(&server.pids());
    let started = Instant::now();
    let barrier = Arc::new(Barrier::new(PUSHERS));
    let mut set = JoinSet::new();
    for i in 0..PUSHERS {
        let barrier = barrier.clone();
        set.spawn(async move {
            let mut s = TcpStream::connect(tcp).await?;
            barrier.wait().await;
            let doc = format!("{{\"burst{i}\": \"burst_up{{i=\\\"{i}\\\"}} 1\\n\"}}");
            s.write_all(doc.as_bytes()).await?;
            s.shutdown().await?;
            let mut reply = String::new();
            s.read_to_string(&mut reply).await?;
            anyhow::Ok(reply.starts_with("{\"ok\":true"))
        });
    }
    let (mut ok, mut failed, mut example) = (0, 0, String::new());
    while let Some(r) = set.join_next().await {
        match r? {
            Ok(true) => ok += 1,
            Ok(false) => failed += 1,
            Err(e) => {
                failed += 1;
                if example.is_empty() {
                    example = e.to_string();
                }
            }
        }
    }
    let (cpu_secs, peak_mib, secs) = figures(&server, tick, cpu0, started);
    server.stop()?;
    Ok(LoadCase {
        name: match backlog {
            None => format!("{PUSHERS} pushers at once, concurrent_requests = 64"),
            Some(b) => {
                format!("{PUSHERS} pushers at once, concurrent_requests = 64, listen_backlog = {b}")
            }
        },
        outcome: if failed == 0 {
            format!("{ok} of {PUSHERS} accepted")
        } else {
            format!("{ok} of {PUSHERS} accepted, {failed} failed (e.g. {example})")
        },
        cpu_secs,
        peak_mib,
        secs,
    })
}

/// 2,000 clients each send a 16 MiB document slowly (64 KiB every 50 ms);
/// memory must stay near the bytes budget.
async fn slow_senders(binary: &Path, tick: f64) -> Result<LoadCase> {
    const SENDERS: usize = 2000;
    let (server, _, tcp) = start(binary, "concurrent_requests = 2048", "").await?;
    let cpu0 = procfs::cpu_ticks(&server.pids());
    let started = Instant::now();
    // One shared document, `{"slowN": "# xxxx...\n# xxxx...\n..."}`: just
    // under 16 MiB of comment lines of 1 KiB (a valid push once received).
    let line = format!("# {}\\n", "x".repeat(1020));
    let body = Arc::new(format!("{}\"}}", line.repeat(16 * 1024 - 1)).into_bytes());
    let mut set = JoinSet::new();
    for i in 0..SENDERS {
        let body = body.clone();
        set.spawn(async move {
            let mut s = TcpStream::connect(tcp).await?;
            s.write_all(format!("{{\"slow{i}\": \"").as_bytes()).await?;
            for chunk in body.chunks(64 * 1024) {
                if s.write_all(chunk).await.is_err() {
                    break; // refused: the proxy closed
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = s.shutdown().await;
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply).await;
            anyhow::Ok(reply)
        });
    }
    let (mut ok, mut budget, mut other) = (0, 0, 0);
    let mut example = String::new();
    while let Some(r) = set.join_next().await {
        let reply = r??;
        if reply.starts_with("{\"ok\":true") {
            ok += 1;
        } else if reply.contains("max_inflight_push_bytes") {
            budget += 1;
        } else {
            other += 1;
            if example.is_empty() {
                example = if reply.is_empty() {
                    "no reply (reset)".to_owned()
                } else {
                    reply.trim_end().chars().take(100).collect()
                };
            }
        }
    }
    let (cpu_secs, peak_mib, secs) = figures(&server, tick, cpu0, started);
    server.stop()?;
    Ok(LoadCase {
        name: format!("{SENDERS} slow senders of 16 MiB, default budget (256 MiB)"),
        outcome: if other == 0 {
            format!("{ok} accepted, {budget} told the budget is full, none reset or unanswered")
        } else {
            format!(
                "{ok} accepted, {budget} told the budget is full, {other} other (e.g. {example})"
            )
        },
        cpu_secs,
        peak_mib,
        secs,
    })
}

/// 15,000 idle HTTP connections, then a scrape once they are gone.
async fn idle_http(binary: &Path, tick: f64) -> Result<LoadCase> {
    const CONNECTIONS: usize = 15_000;
    let (server, http, _) = start(binary, "", "").await?;
    let cpu0 = procfs::cpu_ticks(&server.pids());
    let started = Instant::now();
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        conns.push(TcpStream::connect(http).await.context("connecting")?);
    }
    // Each over the cap got a 503 and was closed; the others are idle.
    let mut refused = 0;
    for c in &mut conns {
        let mut buf = [0u8; 16];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), c.read(&mut buf)).await {
            if buf[..n].starts_with(b"HTTP/1.1 503") {
                refused += 1;
            }
        }
    }
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(60);
    let scraped = loop {
        let mut s = TcpStream::connect(http).await?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply).await;
        if reply.starts_with(b"HTTP/1.1 200") || Instant::now() > deadline {
            break reply.starts_with(b"HTTP/1.1 200");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (cpu_secs, peak_mib, secs) = figures(&server, tick, cpu0, started);
    server.stop()?;
    Ok(LoadCase {
        name: format!("{CONNECTIONS} idle HTTP connections, max_http_connections = 1024"),
        outcome: format!(
            "{refused} answered 503 at once (at least); scrape afterwards: {}",
            if scraped { "200" } else { "failed" }
        ),
        cpu_secs,
        peak_mib,
        secs,
    })
}

/// Runs the load cases (`only`: a comma-separated subset of `burst`,
/// `burst1024`, `slow`, `idle`).
pub async fn run(binary: &Path, only: Option<&str>) -> Result<Vec<LoadCase>> {
    let tick = procfs::ticks_per_second();
    let mut out = Vec::new();
    // `burst1024`: the burst with the listen backlog tokio's `bind` used
    // before `limits.listen_backlog`, for comparison.
    let cases = ["burst", "burst1024", "slow", "idle"];
    let selected = cases
        .into_iter()
        .filter(|c| only.is_none_or(|o| o.split(',').any(|x| x.trim() == *c)));
    for case in selected {
        eprintln!("hostile load: {case}...");
        let r = match case {
            "burst" => burst(binary, tick, None).await,
            "burst1024" => burst(binary, tick, Some(1024)).await,
            "slow" => slow_senders(binary, tick).await,
            _ => idle_http(binary, tick).await,
        };
        out.push(r.with_context(|| format!("load case {case}"))?);
    }
    Ok(out)
}
