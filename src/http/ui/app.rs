//! One app's page: its facts (source, last update, last refusal, TTL), the
//! poll facts of a polled target, collector or provider (URL without
//! credentials, interval, last duration, failures by reason), and its
//! families and series as `/metrics` serves them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::{age_html, error_html, esc, facts_html, page, pct, redact_url, short};
use crate::exposition::EncodedFamily;
use crate::store::{AppInfo, AppKind};
use crate::telemetry::TargetFacts;

/// Series shown on one page at most; the rest are counted (`/metrics` has
/// them all). Bounds the page an app with a million series produces.
pub const MAX_SERIES_SHOWN: usize = 2000;

/// What the configuration says about a polled source.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The URL (credentials removed when shown).
    pub url: Option<String>,
    /// Time between two polls or collections.
    pub interval: Duration,
    /// Time one may take.
    pub timeout: Option<Duration>,
}

/// Everything the page shows.
#[derive(Debug)]
pub struct Context<'a> {
    /// The `/apps` row.
    pub info: &'a AppInfo,
    /// The families, as served.
    pub families: &'a [Arc<EncodedFamily>],
    /// Poll statistics, for polled sources.
    pub facts: Option<&'a TargetFacts>,
    /// What the configuration says, for polled sources.
    pub planned: Option<Planned>,
    /// Whether to show the delete button.
    pub can_delete: bool,
    /// Relative path to the root.
    pub root: &'a str,
}

/// Whether the UI may delete the app: pushed data only (a configured
/// source would come back at its next collection).
pub fn deletable(a: &AppInfo) -> bool {
    matches!(a.kind, AppKind::Push | AppKind::Gateway)
}

fn epoch(secs: f64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt((secs * 1000.0) as i64).single()
}

fn summary(ctx: &Context<'_>, now: DateTime<Utc>) -> String {
    let a = ctx.info;
    let never = || "<span class=\"muted\">never</span>".to_owned();
    let mut rows = vec![
        ("Kind", a.kind.as_str().to_owned()),
        (
            "Status",
            format!("<span class=\"badge s-{0}\">{0}</span>", a.status()),
        ),
        ("Source", esc(&redact_url(&a.source))),
        ("Series", a.series.to_string()),
        ("Families", ctx.families.len().to_string()),
        (
            "Last update",
            a.last_update.map_or_else(never, |t| age_html(t, now)),
        ),
        ("TTL", esc(&a.ttl.describe())),
        ("Time left", a.expires_in.map_or_else(never, short)),
    ];
    let refusal = if a.up.is_some() {
        "Last failure"
    } else {
        "Last refusal"
    };
    match (&a.last_error, a.last_error_time) {
        (Some(e), t) => rows.push((
            refusal,
            format!(
                "{}{}",
                t.map(|t| format!("{} · ", age_html(t, now)))
                    .unwrap_or_default(),
                error_html(e, 200)
            ),
        )),
        (None, _) => rows.push((
            refusal,
            "<span class=\"muted\">none since the last update</span>".to_owned(),
        )),
    }
    facts_html(&rows)
}

fn polling(ctx: &Context<'_>, now: DateTime<Utc>) -> String {
    if ctx.facts.is_none() && ctx.planned.is_none() {
        return String::new();
    }
    let mut rows = Vec::new();
    if let Some(p) = &ctx.planned {
        if let Some(u) = &p.url {
            rows.push(("Target", format!("<code>{}</code>", esc(&redact_url(u)))));
        }
        rows.push(("Interval", short(p.interval)));
        if let Some(t) = p.timeout {
            rows.push(("Timeout", short(t)));
        }
    }
    if let Some(f) = ctx.facts {
        let when = |t: Option<f64>| {
            t.and_then(epoch).map_or_else(
                || "<span class=\"muted\">never</span>".to_owned(),
                |t| age_html(t, now),
            )
        };
        rows.push((
            "Last poll",
            if f.up { "succeeded" } else { "failed" }.to_owned(),
        ));
        rows.push(("Last duration", format!("{:.3} s", f.last_duration)));
        rows.push(("Last success", when(f.last_success)));
        rows.push(("Last failure", when(f.last_failure)));
        let failures = if f.failures.is_empty() {
            "none".to_owned()
        } else {
            f.failures
                .iter()
                .map(|(r, n)| format!("{} {n}", esc(r)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        rows.push(("Failures by reason", failures));
    }
    format!("<h2>Polling</h2>\n{}\n", facts_html(&rows))
}

/// Splits an encoded sample line into series and value (with timestamp).
/// Label values are quoted with backslash escapes and may hold spaces and
/// braces, so the end of the labels is found by scanning.
pub fn split_line(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut end = None;
    if let Some(open) = line.find('{').filter(|o| !line[..*o].contains(' ')) {
        let mut in_quotes = false;
        let mut i = open + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b'}' if !in_quotes => {
                    end = Some(i + 1);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
    let end = end.unwrap_or_else(|| line.find(' ').unwrap_or(line.len()));
    (&line[..end], line[end..].trim())
}

fn families(ctx: &Context<'_>) -> String {
    let mut s = String::from("<h2>Metrics</h2>\n");
    if ctx.families.is_empty() {
        s.push_str("<p class=\"muted\">No series.</p>\n");
        return s;
    }
    let mut shown = 0usize;
    let mut hidden = 0usize;
    for f in ctx.families {
        s.push_str(&format!(
            "<section class=\"family\"><h3 id=\"{id}\">{name} <span class=\"badge\">{typ}</span></h3>\n",
            id = esc(&pct(&f.name)),
            name = esc(&f.name),
            typ = f.typ.as_str(),
        ));
        if let Some(h) = &f.help {
            s.push_str(&format!("<p class=\"help\">{}</p>\n", esc(h)));
        }
        s.push_str("<div class=\"scroll\"><table class=\"series\"><thead><tr><th>Series</th><th class=\"num\">Value</th></tr></thead><tbody>\n");
        let text = f.body.text();
        let text = String::from_utf8_lossy(&text);
        for line in text.lines().filter(|l| !l.is_empty()) {
            if shown >= MAX_SERIES_SHOWN {
                hidden += 1;
                continue;
            }
            shown += 1;
            let (series, value) = split_line(line);
            s.push_str(&format!(
                "<tr><td><code class=\"series\">{}</code></td><td class=\"num\">{}</td></tr>\n",
                esc(series),
                esc(value)
            ));
        }
        s.push_str("</tbody></table></div></section>\n");
    }
    if hidden > 0 {
        s.push_str(&format!(
            "<p class=\"muted\">{hidden} more series not shown: see <a href=\"{}metrics\">/metrics</a>.</p>\n",
            ctx.root
        ));
    }
    s
}

/// The whole page.
pub fn render(ctx: &Context<'_>, now: DateTime<Utc>) -> String {
    let a = ctx.info;
    let mut body = format!(
        "<p><a href=\"{root}apps\">← all apps</a></p>\n<h1>{name}</h1>\n{summary}\n{polling}",
        root = ctx.root,
        name = esc(&a.name),
        summary = summary(ctx, now),
        polling = polling(ctx, now),
    );
    if ctx.can_delete {
        body.push_str(&format!(
            "<form method=\"post\" action=\"{root}apps/{href}\" onsubmit=\"return confirm('Delete this app and all its series?')\"><input type=\"hidden\" name=\"action\" value=\"delete\"><p><button class=\"danger\" id=\"delete\">Delete app</button></p></form>\n",
            root = ctx.root,
            href = pct(&a.name),
        ));
    }
    body.push_str(&families(ctx));
    page(
        &format!("exporter-proxy: {}", a.name),
        ctx.root,
        None,
        &body,
    )
}
