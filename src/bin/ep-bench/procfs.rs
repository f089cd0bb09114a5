//! Server CPU time and memory from `/proc`, summed over a process and its
//! descendants (nginx's workers are children of its master).

use std::fs;

/// `pid` and all its descendants.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = stat_fields(p).and_then(|f| f.get(1).and_then(|s| s.parse().ok())) {
                parents.push((p, ppid));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// The fields of `/proc/<pid>/stat` after the command name: index 0 is the
/// state (field 3 in proc(5)), so field N is at index N - 3.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux in practice).
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU time of the processes, in clock ticks.
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| {
            let f = stat_fields(*p)?;
            // utime is field 14, stime field 15.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// VmRSS and VmHWM in KiB, summed over the processes.
pub fn memory_kib(pids: &[u32]) -> (u64, u64) {
    let mut rss = 0;
    let mut hwm = 0;
    for p in pids {
        let Ok(s) = fs::read_to_string(format!("/proc/{p}/status")) else {
            continue;
        };
        for line in s.lines() {
            let value = |l: &str| -> u64 {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                rss += value(line);
            } else if line.starts_with("VmHWM:") {
                hwm += value(line);
            }
        }
    }
    (rss, hwm)
}

/// Issue 19's memory target at 1,000 × 1,000: VmRSS at every phase, so the
/// largest reading of the run (the peak over the whole run, VmHWM at its
/// end, with the other formats and the busy UI) against the pushed text.
pub fn peak_target(big: &crate::ScaleResult) -> (String, String, Option<bool>) {
    let p = &big.proxy;
    let text_kib = big.pushed_bytes as f64 / 1024.0;
    let worst = [
        p.rss_loaded_kib,
        p.rss_pushed_kib,
        p.rss_kib,
        p.rss_formats_kib,
        p.end_kib.0,
        p.end_kib.1,
    ]
    .into_iter()
    .max()
    .unwrap_or(0) as f64
        / text_kib;
    (
        "1000×1000: RSS ≤ 1.3× the pushed text at every phase, the peak of the whole run (VmHWM) included"
            .into(),
        format!("{worst:.2}×"),
        Some(worst <= 1.3),
    )
}

/// Memory of each server after each phase, and its peak.
pub fn print_memory_rows(r: &crate::ScaleResult) {
    use crate::{better_cost, mib, opt, row};
    let (p, g, n) = (&r.proxy, &r.pushgateway, &r.nginx);
    row(
        "VmRSS after the initial load (MiB)",
        opt(mib(p.rss_loaded_kib)),
        opt(mib(g.rss_loaded_kib)),
        "–".into(),
        better_cost(mib(p.rss_loaded_kib), mib(g.rss_loaded_kib)),
        None,
    );
    row(
        "VmRSS after the push phases (MiB)",
        opt(mib(p.rss_pushed_kib)),
        opt(mib(g.rss_pushed_kib)),
        "–".into(),
        better_cost(mib(p.rss_pushed_kib), mib(g.rss_pushed_kib)),
        None,
    );
    row(
        "VmRSS at the end, after the scrapes (MiB)",
        opt(mib(p.rss_kib)),
        opt(mib(g.rss_kib)),
        opt(mib(n.rss_kib)),
        better_cost(mib(p.rss_kib), mib(g.rss_kib)),
        None,
    );
    row(
        "VmHWM, peak (MiB)",
        opt(mib(p.hwm_kib)),
        opt(mib(g.hwm_kib)),
        opt(mib(n.hwm_kib)),
        better_cost(mib(p.hwm_kib), mib(g.hwm_kib)),
        None,
    );
}
