//! `ep-bench --hostile`: the worst inputs we can construct for each decoder,
//! at the largest size the default limits let in, fed to the library's own
//! functions in this process; prints the CPU seconds of each (a release
//! build must stay under 1 s per case, see docs/hostile-input.md).
//!
//! Every input is built before its clock starts; each case runs once (the
//! point is the order of growth, not a precise figure). A case reports
//! whether the input was accepted or refused, and the first words of why.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, Result};
use exporter_proxy::config::Config;
use exporter_proxy::exposition::openmetrics_to_text;
use exporter_proxy::http::pushgw::parse_grouping_path;
use exporter_proxy::ingest::codec::{decode_capnp, decode_json, decode_json_limited, encode_capnp};
use exporter_proxy::store::{AppKind, PrepareOptions, Store, StoreOptions};
use exporter_proxy::telemetry::SelfMetrics;

use crate::procfs;

/// The default `limits.max_push_bytes`.
const MAX_PUSH: usize = 16 * 1024 * 1024;
/// The parser's longest line (`ParseLimits::default`).
const MAX_LINE: usize = 1 << 20;
/// The default `limits.max_series_per_app`.
const MAX_SERIES: usize = 100_000;
/// The default `limits.max_apps`.
const MAX_APPS: usize = 10_000;

/// One measured case.
struct Case {
    name: &'static str,
    bytes: usize,
    cpu_secs: f64,
    outcome: String,
}

fn cpu_now(tick: f64) -> f64 {
    procfs::cpu_ticks(&[std::process::id()]) as f64 / tick
}

fn outcome<T, E: std::fmt::Display>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => "accepted".to_owned(),
        Err(e) => {
            let e = e.to_string();
            let short: String = e.chars().take(70).collect();
            format!("refused: {short}")
        }
    }
}

fn store() -> Store {
    Store::new(StoreOptions::default(), SelfMetrics::new())
}

/// A store push: parse, validate, commit.
fn push(text: &str) -> Result<usize, String> {
    let s = store();
    let p = s.prepare("hostile", text).map_err(|e| e.to_string())?;
    s.commit(vec![p], AppKind::Push, "bench")
        .map_err(|e| e.to_string())
}

/// Fills `out` with `line(i)` for i = 0.. until `max` bytes.
fn repeat(max: usize, mut line: impl FnMut(usize) -> String) -> String {
    let mut out = String::with_capacity(max);
    for i in 0.. {
        let l = line(i);
        if out.len() + l.len() > max {
            break;
        }
        out.push_str(&l);
    }
    out
}

/// A line of `n` labels `l0=""`, `l1=""`, ... within `max` bytes.
fn many_labels(max: usize) -> String {
    let mut s = String::from("wide{");
    for i in 0.. {
        let l = format!("l{i}=\"\",");
        if s.len() + l.len() + 4 > max {
            break;
        }
        s.push_str(&l);
    }
    s.push_str("} 1\n");
    s
}

/// A case's work, run once its clock started.
type Run = Box<dyn FnOnce() -> String>;

/// The inputs, built up front: (name, bytes, run).
type Cases = Vec<(&'static str, usize, Run)>;

fn cases() -> Result<Cases> {
    let mut v: Cases = Vec::new();
    envelopes(&mut v);
    text(&mut v);
    others(&mut v)?;
    Ok(v)
}

/// JSON and Cap'n Proto envelopes.
fn envelopes(v: &mut Cases) {
    // JSON envelopes.
    let keys = format!(
        "{{{}\"end\": \"\"}}",
        repeat(MAX_PUSH - 64, |i| format!("\"a{i}\": \"\","))
    );
    let k = keys.clone();
    v.push((
        "json: 16 MiB of app keys, max_apps 10,000",
        keys.len(),
        Box::new(move || outcome(decode_json_limited(k.as_bytes(), MAX_APPS))),
    ));
    let mut dup = keys.clone();
    dup.insert_str(dup.len() - 1, ", \"a0\": \"\"");
    v.push((
        "json: 16 MiB of app keys, no app limit, duplicate last",
        dup.len(),
        Box::new(move || outcome(decode_json(dup.as_bytes()))),
    ));
    let lines = format!(
        "{{\"a\": [{}\"\"]}}",
        repeat(MAX_PUSH - 64, |_| "\"\",".to_owned())
    );
    v.push((
        "json: one app, 16 MiB array of empty lines",
        lines.len(),
        Box::new(move || outcome(decode_json(lines.as_bytes()))),
    ));
    let deep = format!("{{\"a\": {}", "[".repeat(MAX_PUSH - 16));
    v.push((
        "json: 16 MiB of nested arrays",
        deep.len(),
        Box::new(move || outcome(decode_json(deep.as_bytes()))),
    ));
    let escapes = format!(
        "{{\"a\": \"{}\"}}",
        "\\u00e9\\n".repeat((MAX_PUSH - 32) / 8)
    );
    v.push((
        "json: 16 MiB of escape sequences",
        escapes.len(),
        Box::new(move || outcome(decode_json(escapes.as_bytes()))),
    ));

    // Cap'n Proto.
    let text = repeat(MAX_PUSH - 4096, |i| format!("m{{i=\"{i}\"}} 1\n"));
    let msg = encode_capnp("hostile", &text);
    v.push((
        "capnp: 16 MiB message",
        msg.len(),
        Box::new(move || outcome(decode_capnp(&msg))),
    ));
}

/// Exposition text and OpenMetrics.
fn text(v: &mut Cases) {
    // Exposition text (the push path: parse, validate, encode, commit).
    let wide = many_labels(MAX_LINE);
    v.push((
        "text: one line of 1 MiB of labels (~110,000)",
        wide.len(),
        Box::new(move || outcome(push(&wide))),
    ));
    let mut wide_dup = many_labels(MAX_LINE - 16);
    wide_dup.insert_str(wide_dup.len() - 4, "l0=\"\"");
    v.push((
        "text: 1 MiB of labels, duplicate last",
        wide_dup.len(),
        Box::new(move || outcome(push(&wide_dup))),
    ));
    let long_name = format!("{} 1\n", "n".repeat(MAX_LINE - 8));
    v.push((
        "text: a 1 MiB metric name",
        long_name.len(),
        Box::new(move || outcome(push(&long_name))),
    ));
    let series = {
        let mut s = String::from("# TYPE s gauge\n");
        // One short of the limit: the duplicate below is the last series.
        for i in 0..MAX_SERIES - 1 {
            s.push_str(&format!(
                "s{{a=\"{i}\",b=\"x\",c=\"x\",d=\"x\",e=\"x\",f=\"x\",g=\"x\",h=\"x\"}} 1\n"
            ));
        }
        s
    };
    let mut series_dup = series.clone();
    v.push((
        "text: 99,999 series of one family, 8 labels",
        series.len(),
        Box::new(move || outcome(push(&series))),
    ));
    series_dup.push_str("s{a=\"0\",b=\"x\",c=\"x\",d=\"x\",e=\"x\",f=\"x\",g=\"x\",h=\"x\"} 2\n");
    v.push((
        "text: 99,999 series, then a duplicate",
        series_dup.len(),
        Box::new(move || outcome(push(&series_dup))),
    ));
    let families = {
        let mut s = String::new();
        for i in 0..MAX_SERIES {
            s.push_str(&format!(
                "# HELP f{i} h\n# TYPE f{i} counter\nf{i}_total 1\n"
            ));
        }
        s
    };
    v.push((
        "text: 100,000 families",
        families.len(),
        Box::new(move || outcome(push(&families))),
    ));
    let buckets = {
        let mut s = String::from("# TYPE h histogram\n");
        for i in 0..MAX_SERIES - 3 {
            s.push_str(&format!("h_bucket{{le=\"{i}\"}} {i}\n"));
        }
        s.push_str("h_bucket{le=\"+Inf\"} 99997\nh_sum 1\nh_count 99997\n");
        s
    };
    v.push((
        "text: a histogram of 100,000 buckets",
        buckets.len(),
        Box::new(move || outcome(push(&buckets))),
    ));
    let escaped = repeat(MAX_PUSH - 1024, |i| {
        format!("e{{v=\"\\\\\\n\\\"{i}\\\\\\n\\\"\"}} 1\n")
    });
    let escaped: String = escaped
        .lines()
        .take(MAX_SERIES)
        .map(|l| format!("{l}\n"))
        .collect();
    v.push((
        "text: 100,000 series with escaped label values",
        escaped.len(),
        Box::new(move || outcome(push(&escaped))),
    ));
    let comments = repeat(MAX_PUSH, |i| format!("# comment {i}\n"));
    v.push((
        "text: 16 MiB of comments",
        comments.len(),
        Box::new(move || outcome(push(&comments))),
    ));

    // OpenMetrics conversion (polled targets).
    let om = {
        let mut s = String::new();
        for i in 0..MAX_SERIES / 2 {
            s.push_str(&format!(
                "# TYPE c{i} counter\n# HELP c{i} h\nc{i}_total 1\nc{i}_created 1.5\n"
            ));
        }
        s.push_str("# EOF\n");
        s
    };
    v.push((
        "openmetrics: 50,000 counters with _created",
        om.len(),
        Box::new(move || outcome(openmetrics_to_text(&om))),
    ));
}

/// The push API, collectors, providers and `/register`.
fn others(v: &mut Cases) -> Result<()> {
    // The push API: the grouping key, and a body under 64 grouping labels.
    let path = {
        let mut p = "job/j".to_owned();
        while p.len() < 400_000 {
            p.push_str(&format!("/l{}/v", p.len()));
        }
        p
    };
    v.push((
        "push API: a 400 KB grouping path",
        path.len(),
        Box::new(move || outcome(parse_grouping_path(&path))),
    ));
    // 64 labels of 64 bytes, on as many lines as the push API's
    // amplification bound (4 x max_push_bytes added) lets in.
    let gw_labels: Vec<(String, String)> =
        (0..64).map(|i| (format!("g{i}"), "v".repeat(64))).collect();
    let key_bytes: usize = gw_labels.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let gw_body: String = (0..4 * MAX_PUSH / key_bytes - 1)
        .map(|i| format!("g{{i=\"{i}\"}} 1\n"))
        .collect();
    v.push((
        "push API: 64 grouping labels of 64 bytes, ~14,500 series",
        gw_body.len(),
        Box::new(move || {
            let set: Vec<(&str, &str)> = gw_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let s = store();
            outcome(
                s.prepare_with(
                    "gw",
                    &gw_body,
                    &PrepareOptions {
                        set: &set,
                        ..PrepareOptions::default()
                    },
                )
                .map(|_| ())
                .map_err(|e| e.to_string()),
            )
        }),
    ));

    // A collector response: 16 MiB of array elements with labels.
    let config = Config::parse(
        r#"
[[collectors]]
name = "c"
[[collectors.steps]]
url = "http://127.0.0.1:1/x"
[[collectors.metrics]]
name = "items"
type = "gauge"
path = "items[*].n"
labels = { k = "k" }
"#,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
    .context("the collector example")?
    .config;
    let specs = config.collectors[0].metrics.clone();
    let response = format!(
        "{{\"items\": [{}{{\"k\": \"end\", \"n\": 0}}]}}",
        repeat(MAX_PUSH - 64, |i| format!(
            "{{\"k\": \"{i}\", \"n\": {i}}},"
        ))
    );
    v.push((
        "collector: 16 MiB response, ~700,000 elements",
        response.len(),
        Box::new(move || {
            let json: serde_json::Value = match serde_json::from_str(&response) {
                Ok(j) => j,
                Err(e) => return format!("refused: {e}"),
            };
            let vars = HashMap::new();
            let input = exporter_proxy::collect::metrics::Inputs {
                json: &[Some(json)],
                vars: &vars,
            };
            outcome(exporter_proxy::collect::metrics::evaluate(
                &specs,
                &Default::default(),
                &input,
            ))
        }),
    ));
    // A portal's balance text, and a `/register` document at its limit.
    let amount = format!("{}1,5 руб.", "1 234 ".repeat(MAX_PUSH / 6 - 4));
    v.push((
        "provider: a 16 MiB amount with separators",
        amount.len(),
        Box::new(
            move || match exporter_proxy::providers::parse_amount(&amount) {
                Some(_) => "accepted".to_owned(),
                None => "refused: not a number".to_owned(),
            },
        ),
    ));
    let register = Config::parse("[poll.register]\nenabled = true\n")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .config
        .poll
        .register
        .context("registration enabled")?;
    let labels: Vec<String> = (0..1300).map(|i| format!("\"l{i}\": \"v\"")).collect();
    let doc = format!(
        "{{\"id\": \"x\", \"url\": \"http://127.0.0.1:9/metrics\", \"labels\": {{{}}}}}",
        labels.join(", ")
    );
    v.push((
        "register: a 16 KiB document of 1,300 labels",
        doc.len(),
        Box::new(move || {
            outcome(
                exporter_proxy::poll::register::validate(doc.as_bytes(), &register, None)
                    .map_err(|r| format!("{r:?}")),
            )
        }),
    ));
    Ok(())
}

/// Runs every case and prints the table; returns the cases that took 1 s
/// of CPU or more.
pub fn run() -> Result<Vec<&'static str>> {
    let tick = procfs::ticks_per_second();
    eprintln!("building the hostile inputs...");
    let cases = cases()?;
    let mut results = Vec::new();
    for (name, bytes, run) in cases {
        let (cpu0, wall0) = (cpu_now(tick), Instant::now());
        let outcome = run();
        let cpu_secs = cpu_now(tick) - cpu0;
        eprintln!(
            "{name}: {cpu_secs:.2} s CPU, {:.2} s wall",
            wall0.elapsed().as_secs_f64()
        );
        results.push(Case {
            name,
            bytes,
            cpu_secs,
            outcome,
        });
    }
    println!("| Hostile input | Bytes | CPU s | Outcome |");
    println!("|---|---:|---:|---|");
    for c in &results {
        println!(
            "| {} | {} | {:.2} | {} |",
            c.name,
            c.bytes,
            c.cpu_secs,
            c.outcome.replace('|', "\\|")
        );
    }
    Ok(results
        .iter()
        .filter(|c| c.cpu_secs >= 1.0)
        .map(|c| c.name)
        .collect())
}

/// The decoder cases, then the load cases against the proxy `binary`.
pub fn run_all(binary: &std::path::Path) -> Result<()> {
    // `EP_BENCH_HOSTILE_CASES=burst,slow` runs only those load cases and
    // skips the decoders (for investigating one case).
    let only = std::env::var("EP_BENCH_HOSTILE_CASES").ok();
    let slow = if only.is_some() { Vec::new() } else { run()? };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let load = runtime.block_on(crate::hostile_load::run(binary, only.as_deref()))?;
    println!();
    println!(
        "| Hostile load | What the clients got | Proxy CPU s | Proxy peak RSS MiB | Seconds |"
    );
    println!("|---|---|---:|---:|---:|");
    for c in &load {
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.1} |",
            c.name, c.outcome, c.cpu_secs, c.peak_mib, c.secs
        );
    }
    anyhow::ensure!(slow.is_empty(), "cases over 1 s of CPU: {slow:?}");
    Ok(())
}
