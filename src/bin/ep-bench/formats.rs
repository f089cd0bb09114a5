//! The proxy's `/metrics` in OpenMetrics and delimited protobuf, measured
//! like its text body (issue 14: every format keeps the scrape targets).
//!
//! The Pushgateway and nginx serve text only: their text figures are the
//! reference the proxy's other formats are held to. These scrapes run after
//! the text rounds and the memory readings, so that the issue-8 memory
//! figures stay those of a text scraper; the memory with every format's
//! encoding built is reported on its own.

use crate::{
    better_cost, better_rate, latency, median, mib, ms, nonzero, num, opt, ratio, throughput, Args,
    ScaleResult,
};

/// A format the proxy offers besides text 0.0.4, with the `Accept` header
/// Prometheus sends for it.
#[derive(Debug, Clone, Copy)]
pub struct AltFormat {
    pub name: &'static str,
    pub accept: &'static str,
}

/// OpenMetrics (Prometheus' default `Accept`) and protobuf (Prometheus with
/// `--enable-feature=native-histograms`).
pub const ALT_FORMATS: [AltFormat; 2] = [
    AltFormat {
        name: "openmetrics",
        accept: "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    },
    AltFormat {
        name: "protobuf",
        accept: "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.8,application/openmetrics-text;version=1.0.0;q=0.7,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    },
];

/// What was measured on the proxy in one alternative format.
#[derive(Debug, Default)]
pub struct FormatResult {
    pub change: Change,
    pub lat_plain: Vec<f64>,
    pub lat_gzip: Vec<f64>,
    pub size_plain: usize,
    pub size_gzip: usize,
    pub rps_plain: Vec<f64>,
    pub rps_gzip: Vec<f64>,
}

/// Scrapes right after a push (a render), plain and gzip: the full time,
/// the time to the first body byte, and the extra time over a scrape of
/// the same body from the cache right after it (the same transfer).
#[derive(Debug, Default)]
pub struct Change {
    pub plain: [Vec<f64>; 3],
    pub gzip: [Vec<f64>; 3],
}

impl Change {
    /// Records one push-then-scrape (seconds): full time, first byte, and
    /// the full time of the cached scrape that followed.
    pub fn record(&mut self, gzip: bool, full: f64, first_byte: f64, cached: f64) {
        let v = if gzip {
            &mut self.gzip
        } else {
            &mut self.plain
        };
        v[0].push(full);
        v[1].push(first_byte);
        v[2].push(full - cached);
    }

    /// The full times, plain or gzip.
    pub fn full(&self, gzip: bool) -> &[f64] {
        if gzip {
            &self.gzip[0]
        } else {
            &self.plain[0]
        }
    }

    /// (row label, samples) for the report: full, first byte, extra.
    pub fn rows(&self) -> Vec<(String, &[f64])> {
        let mut out = Vec::new();
        for (label, v) in [("plain", &self.plain), ("gzip", &self.gzip)] {
            let n = v[0].len();
            out.push((
                format!("/metrics right after a push, {label}: median ms (n={n})"),
                &v[0][..],
            ));
            out.push((
                format!("/metrics right after a push, {label}: first body byte, median ms"),
                &v[1][..],
            ));
            out.push((
                format!(
                    "/metrics right after a push, {label}: extra over the cached scrape, median ms"
                ),
                &v[2][..],
            ));
        }
        out
    }
}

/// One result per entry of [`ALT_FORMATS`].
pub fn results() -> Vec<FormatResult> {
    ALT_FORMATS
        .iter()
        .map(|_| FormatResult::default())
        .collect()
}

/// One scrape round of the proxy in every other format.
pub async fn scrape_round(
    addr: std::net::SocketAddr,
    results: &mut [FormatResult],
    args: &Args,
    round: usize,
) -> anyhow::Result<()> {
    for (f, fr) in ALT_FORMATS.iter().zip(results) {
        eprintln!("   scrapes, round {}: proxy, {}", round + 1, f.name);
        let accept = Some(f.accept);
        let (l, size) = latency(addr, false, accept, args).await?;
        fr.lat_plain.extend(l);
        fr.size_plain = size;
        let (l, size) = latency(addr, true, accept, args).await?;
        fr.lat_gzip.extend(l);
        fr.size_gzip = size;
        fr.rps_plain
            .push(throughput(addr, false, accept, args).await?);
        fr.rps_gzip
            .push(throughput(addr, true, accept, args).await?);
    }
    Ok(())
}

/// The table of the proxy's formats at one scale, against the Pushgateway's
/// and nginx's text.
pub fn print_scale(connections: usize, r: &ScaleResult) {
    let (g, n) = (&r.pushgateway, &r.nginx);
    println!();
    println!("Proxy `/metrics` by format (the Pushgateway and nginx serve text):");
    println!();
    println!("| measure | format | exporter-proxy | vs Pushgateway | vs nginx |");
    println!("|---|---|---:|---:|---:|");
    println!(
        "| VmRSS after the scrapes in every format (MiB; text only: {}) | all | {} | – | – |",
        opt(mib(r.proxy.rss_kib)),
        opt(mib(r.proxy.rss_formats_kib))
    );
    println!(
        "| VmRSS / VmHWM at the end of the run, after the busy UI too (MiB) | all | {} / {} | – | – |",
        opt(mib(r.proxy.end_kib.0)),
        opt(mib(r.proxy.end_kib.1))
    );
    for (f, p) in ALT_FORMATS.iter().zip(&r.proxy.formats) {
        let row = |what: String, v: String, rg: Option<f64>, rn: Option<f64>| {
            println!(
                "| {what} | {} | {v} | {} | {} |",
                f.name,
                ratio(rg),
                ratio(rn)
            );
        };
        for (label, pl, gl, nl, size) in [
            (
                "plain",
                &p.lat_plain,
                &g.lat_plain,
                &n.lat_plain,
                p.size_plain,
            ),
            ("gzip", &p.lat_gzip, &g.lat_gzip, &n.lat_gzip, p.size_gzip),
        ] {
            row(
                format!("/metrics {label}: size (bytes)"),
                opt(nonzero(size)),
                None,
                None,
            );
            row(
                format!("/metrics {label}: median ms (n={})", pl.len()),
                opt(ms(pl, 0.5)),
                better_cost(ms(pl, 0.5), ms(gl, 0.5)),
                better_cost(ms(pl, 0.5), ms(nl, 0.5)),
            );
        }
        for (label, c) in p.change.rows() {
            row(label, opt(ms(c, 0.5)), None, None);
        }
        for (label, pv, gv, nv) in [
            ("plain", &p.rps_plain, &g.rps_plain, &n.rps_plain),
            ("gzip", &p.rps_gzip, &g.rps_gzip, &n.rps_gzip),
        ] {
            row(
                format!("scrapes/s, {connections} connections, {label}"),
                opt(median(pv)),
                better_rate(median(pv), median(gv)),
                better_rate(median(pv), median(nv)),
            );
        }
    }
}

/// The scrape targets of issue 8, checked for every other format.
pub fn targets(results: &[ScaleResult]) -> Vec<(String, String, Option<bool>)> {
    let mut rows = Vec::new();
    let find = |a, s| {
        results
            .iter()
            .find(|r| r.scale.apps == a && r.scale.series == s)
    };
    if let Some(r) = find(100, 1000) {
        let (g, n) = (&r.pushgateway, &r.nginx);
        for (f, p) in ALT_FORMATS.iter().zip(&r.proxy.formats) {
            let name = f.name;
            let mut check = |what: String, x: Option<f64>, ok: fn(f64) -> bool| {
                rows.push((what, ratio(x), x.map(ok)));
            };
            for (label, pl, gl, nl, pr, nr) in [
                (
                    "plain",
                    &p.lat_plain,
                    &g.lat_plain,
                    &n.lat_plain,
                    &p.rps_plain,
                    &n.rps_plain,
                ),
                (
                    "gzip",
                    &p.lat_gzip,
                    &g.lat_gzip,
                    &n.lat_gzip,
                    &p.rps_gzip,
                    &n.rps_gzip,
                ),
            ] {
                check(
                    format!("100×1000, {name}: cached /metrics median ≥ 25× faster than the Pushgateway ({label})"),
                    better_cost(median(pl), median(gl)),
                    |x| x >= 25.0,
                );
                check(
                    format!("100×1000, {name}: cached /metrics median within 1.5× of nginx, {label} (≥ 0.67×)"),
                    better_cost(median(pl), median(nl)),
                    |x| x >= 1.0 / 1.5,
                );
                check(
                    format!("100×1000, {name}: scrapes/s with 4 connections ≥ 0.7× nginx, {label}"),
                    better_rate(median(pr), median(nr)),
                    |x| x >= 0.7,
                );
            }
        }
    }
    if let Some(big) = find(1000, 1000) {
        for (f, p) in ALT_FORMATS.iter().zip(&big.proxy.formats) {
            let change = median(p.change.full(false));
            rows.push((
                format!(
                    "1000×1000, {}: /metrics right after a push, plain, median < 1 s",
                    f.name
                ),
                change.map_or_else(|| "–".into(), |s| format!("{} s", num(s))),
                change.map(|s| s < 1.0),
            ));
        }
    }
    rows
}
