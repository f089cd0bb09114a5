//! The synthetic workload: A applications × S series of realistic families.
//!
//! Every application pushes the same family names (counters, gauges and
//! histograms with 10 buckets, 2 to 4 labels) with its own `app` label, so
//! the merged page has one block per family and no series collide. Values
//! depend on a `round` so that consecutive pushes really change the set.

use std::fmt::Write as _;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A family template: name, type, help and its label names besides `app`
/// (the last one varies per series so that every series is unique).
struct Template {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: &'static [(&'static str, &'static [&'static str])],
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];
const ROUTES: &[&str] = &["/api/v1/items", "/api/v1/users", "/healthz", "/login"];
const CODES: &[&str] = &["200", "201", "404", "500"];
const QUEUES: &[&str] = &["ingest", "email", "billing", "reports"];
const DBS: &[&str] = &["primary", "replica"];
const OPS: &[&str] = &["select", "insert", "update", "delete"];
const AREAS: &[&str] = &["heap", "stack", "mmap", "cache"];
const DIRS: &[&str] = &["in", "out"];
const SHARDS: &[&str] = &["shard"];

/// Family templates, cycled when distributing an app's series budget.
const TEMPLATES: &[Template] = &[
    Template {
        name: "bench_http_requests_total",
        kind: Kind::Counter,
        help: "HTTP requests handled, by method and route.",
        labels: &[("method", METHODS), ("route", ROUTES)],
    },
    Template {
        name: "bench_queue_depth",
        kind: Kind::Gauge,
        help: "Items waiting in each queue.",
        labels: &[("queue", QUEUES)],
    },
    Template {
        name: "bench_request_duration_seconds",
        kind: Kind::Histogram,
        help: "Request latency in seconds.",
        labels: &[("method", METHODS), ("route", ROUTES)],
    },
    Template {
        name: "bench_db_queries_total",
        kind: Kind::Counter,
        help: "Database queries, by database, operation and table.",
        labels: &[("db", DBS), ("op", OPS), ("table", SHARDS)],
    },
    Template {
        name: "bench_memory_bytes",
        kind: Kind::Gauge,
        help: "Memory in use, by area and pool.",
        labels: &[("area", AREAS), ("pool", SHARDS)],
    },
    Template {
        name: "bench_payload_size_bytes",
        kind: Kind::Histogram,
        help: "Payload sizes in bytes, by direction.",
        labels: &[("direction", DIRS)],
    },
    Template {
        name: "bench_responses_total",
        kind: Kind::Counter,
        help: "HTTP responses, by code.",
        labels: &[("code", CODES), ("handler", ROUTES)],
    },
    Template {
        name: "bench_worker_utilisation_ratio",
        kind: Kind::Gauge,
        help: "Busy fraction of each worker.",
        labels: &[("worker", SHARDS)],
    },
];

/// Upper bounds of the 10 histogram buckets (the last is `+Inf`).
const BUCKETS: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
];
/// Lines per histogram series group: the buckets, `_sum` and `_count`.
const HISTOGRAM_LINES: usize = BUCKETS.len() + 2;

/// The name of application `i`.
pub fn app_name(i: usize) -> String {
    format!("app{i:04}")
}

/// How many series groups each template gets for a budget of `series`
/// lines: one group at a time, in template order, until the budget is used.
fn distribute(series: usize) -> Vec<usize> {
    let mut groups = vec![0usize; TEMPLATES.len()];
    let mut left = series;
    'fill: loop {
        let mut progressed = false;
        for (i, t) in TEMPLATES.iter().enumerate() {
            let cost = if t.kind == Kind::Histogram {
                HISTOGRAM_LINES
            } else {
                1
            };
            if left == 0 {
                break 'fill;
            }
            if cost <= left {
                groups[i] += 1;
                left -= cost;
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    groups
}

/// A small deterministic hash for plausible-looking values.
fn mix(a: u64, b: u64, c: u64) -> u64 {
    let mut x = a
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
        .wrapping_add(c.wrapping_mul(0x1656_67b1_9e37_79f9));
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 32)
}

/// The exposition text application `app` pushes in `round`: exactly
/// `series` sample lines (fewer only if `series` cannot be filled).
pub fn app_text(app: usize, series: usize, round: u64) -> String {
    let groups = distribute(series);
    let app_label = app_name(app);
    let mut out = String::with_capacity(series * 110);
    for (t, &n) in TEMPLATES.iter().zip(&groups) {
        if n == 0 {
            continue;
        }
        let typ = match t.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", t.name, t.help);
        let _ = writeln!(out, "# TYPE {} {typ}", t.name);
        for k in 0..n {
            let mut labels = format!("app=\"{app_label}\"");
            let last = t.labels.len() - 1;
            for (j, (lname, values)) in t.labels.iter().enumerate() {
                let v = values[k % values.len()];
                if j == last {
                    // The last label makes the series unique within the family.
                    let _ = write!(labels, ",{lname}=\"{v}{k}\"");
                } else {
                    let _ = write!(labels, ",{lname}=\"{v}\"");
                }
            }
            let h = mix(app as u64, k as u64, round);
            match t.kind {
                Kind::Counter => {
                    let v = (h % 1_000_000) + round * 17;
                    let _ = writeln!(out, "{}{{{labels}}} {v}", t.name);
                }
                Kind::Gauge => {
                    let v = (h % 100_000) as f64 / 8.0;
                    let _ = writeln!(out, "{}{{{labels}}} {v}", t.name);
                }
                Kind::Histogram => {
                    let mut cumulative = 0u64;
                    for (b, le) in BUCKETS.iter().enumerate() {
                        cumulative += mix(h, b as u64, round) % 50;
                        let _ = writeln!(
                            out,
                            "{}_bucket{{{labels},le=\"{le}\"}} {cumulative}",
                            t.name
                        );
                    }
                    let sum = (h % 10_000_000) as f64 / 1000.0;
                    let _ = writeln!(out, "{}_sum{{{labels}}} {sum}", t.name);
                    let _ = writeln!(out, "{}_count{{{labels}}} {cumulative}", t.name);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_budget_exactly() {
        for series in [20, 100, 1000] {
            let text = app_text(3, series, 1);
            let samples = text.lines().filter(|l| !l.starts_with('#')).count();
            assert_eq!(samples, series, "{series}");
        }
    }

    #[test]
    fn parses_and_changes_with_the_round() {
        let limits = exporter_proxy::exposition::ParseLimits::default();
        let a = app_text(1, 1000, 0);
        let b = app_text(1, 1000, 1);
        assert_ne!(a, b);
        exporter_proxy::exposition::parse(&a, &limits).expect("valid exposition");
    }
}
