//! Where the bytes are at A apps × S series: loads the `ep-bench` workload
//! into a [`Store`] in process and prints, after each step, the live heap
//! bytes (mimalloc, the proxy's allocator, counted by the `cap` crate) and
//! VmRSS. Issue 19, point 4; the figures are in docs/benchmarks.md.
//!
//! ```sh
//! cargo run --release --example store_memory -- 1000 1000
//! ```

use exporter_proxy::store::{AppKind, Format, Store, StoreOptions};
use exporter_proxy::telemetry::SelfMetrics;

#[path = "../src/bin/ep-bench/workload.rs"]
#[allow(dead_code)]
mod workload;

/// mimalloc (the proxy's allocator), counting the bytes it has handed out
/// and not taken back (the `cap` crate, without a limit).
#[global_allocator]
static ALLOCATOR: cap::Cap<mimalloc::MiMalloc> = cap::Cap::new(mimalloc::MiMalloc, usize::MAX);

fn mib(b: f64) -> String {
    format!("{:7.1}", b / 1048576.0)
}

fn vm(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        * 1024.0
}

struct Report {
    text: f64,
    last: isize,
}

impl Report {
    fn step(&mut self, what: &str) {
        let live = ALLOCATOR.allocated() as isize;
        println!(
            "| {what:<44} | {} | {:+8.1} | {} | {} | {:5.2}× |",
            mib(live as f64),
            (live - self.last) as f64 / 1048576.0,
            mib(vm("VmRSS:")),
            mib(vm("VmHWM:")),
            vm("VmRSS:") / self.text
        );
        self.last = live;
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("APPS SERIES"))
        .collect();
    let (apps, series) = match args[..] {
        [a, s] => (a, s),
        _ => (1000, 1000),
    };
    let texts: usize = (0..apps)
        .map(|a| workload::app_text(a, series, 0).len())
        .sum();
    let mut r = Report {
        text: texts as f64,
        last: 0,
    };
    println!(
        "{apps} apps × {series} series, pushed text {} MiB\n",
        mib(texts as f64).trim()
    );
    println!("| step | live heap MiB | change | VmRSS MiB | VmHWM MiB | RSS ÷ text |");
    println!("|---|---:|---:|---:|---:|---:|");
    r.step("start");
    let store = Store::new(
        StoreOptions {
            max_series_per_app: series.max(100_000),
            max_apps: apps.max(10_000),
            ..StoreOptions::default()
        },
        SelfMetrics::new(),
    );
    for a in 0..apps {
        let text = workload::app_text(a, series, 0);
        store
            .push(&workload::app_name(a), &text, AppKind::Push, "bench")
            .expect("push");
    }
    r.step("after loading every app");
    let page = store.render();
    r.step("render (text chunks)");
    let gz = page.gzip();
    r.step(&format!("gzip body ({} bytes)", gz.len()));
    drop(gz);
    for round in 1..=32u64 {
        let a = (round as usize * 31) % apps;
        let text = workload::app_text(a, series, round);
        store
            .push(&workload::app_name(a), &text, AppKind::Push, "bench")
            .expect("push");
    }
    r.step("32 replace pushes");
    drop(page);
    let page = store.render();
    r.step("render after them (old page dropped)");
    page.gzip();
    r.step("gzip after them");
    for round in 33..=64u64 {
        let a = (round as usize * 31) % apps;
        let text = workload::app_text(a, series, round);
        store
            .push(&workload::app_name(a), &text, AppKind::Push, "bench")
            .expect("push");
        let page = store.render();
        page.gzip();
    }
    drop(page);
    r.step("32 × (push, render, gzip)");
    let page = store.render();
    page.chunks_of(Format::OpenMetrics);
    r.step("OpenMetrics body");
    page.gzip_of(Format::OpenMetrics);
    r.step("OpenMetrics gzip");
    page.chunks_of(Format::Protobuf);
    page.gzip_of(Format::Protobuf);
    r.step("protobuf body and gzip");
    let (n_apps, n_series) = store.counts();
    println!("\n{n_apps} apps, {n_series} series in the store");
}
