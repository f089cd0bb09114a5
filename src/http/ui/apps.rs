//! The apps page: counts by kind and status, a filter form, a sortable
//! table of every source, and an auto-refresh that can be switched off.
//!
//! Filtering, sorting and the refresh are query parameters, so the page
//! works without scripts; a few lines of script filter while typing.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{age_html, error_html, esc, page, pct, short, AppsSnapshot};
use crate::store::AppInfo;

/// Default seconds between automatic reloads of the page.
pub const DEFAULT_REFRESH: u64 = 10;
/// Characters of an error shown in the table before "show all".
const ERROR_CHARS: usize = 60;
/// Characters of a source shown in the table (the app page has it whole).
const SOURCE_CHARS: usize = 48;

/// The page's query: filters, sort order and refresh.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filter {
    /// Part of the app name (case-insensitive).
    pub q: Option<String>,
    /// Kind (`push`, `poll`, ...); empty: any.
    pub kind: Option<String>,
    /// Status (`ok`, `rejected`, `up`, `down`, ...); empty: any.
    pub status: Option<String>,
    /// Column to sort by (see [`COLUMNS`]).
    pub sort: Option<String>,
    /// `desc` for descending.
    pub dir: Option<String>,
    /// Seconds between reloads; `0` switches the refresh off.
    pub refresh: Option<u64>,
}

/// (sort key, header, CSS class): the table's columns.
pub const COLUMNS: [(&str, &str, &str); 9] = [
    ("name", "App", ""),
    ("kind", "Kind", ""),
    ("status", "Status", ""),
    ("series", "Series", "num"),
    ("updated", "Last update", ""),
    ("ttl", "TTL", "wide"),
    ("left", "Time left", ""),
    ("source", "Source", "wide"),
    ("error", "Last error", ""),
];

/// Whether `a` passes the filter.
pub fn matches(a: &AppInfo, f: &Filter) -> bool {
    let nonempty = |o: &Option<String>| o.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(q) = nonempty(&f.q) {
        if !a.name.to_lowercase().contains(&q.to_lowercase()) {
            return false;
        }
    }
    if let Some(k) = nonempty(&f.kind) {
        if a.kind.as_str() != k {
            return false;
        }
    }
    if let Some(s) = nonempty(&f.status) {
        if a.status() != s {
            return false;
        }
    }
    true
}

fn compare(a: &AppInfo, b: &AppInfo, column: &str, snap: &AppsSnapshot) -> Ordering {
    match column {
        "kind" => a.kind.as_str().cmp(b.kind.as_str()),
        "status" => a.status().cmp(b.status()),
        "series" => a.series.cmp(&b.series),
        "updated" => a.last_update.cmp(&b.last_update),
        "ttl" => a.ttl.describe().cmp(&b.ttl.describe()),
        // Never-expiring apps last.
        "left" => match (snap.expires_in(a), snap.expires_in(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        },
        "source" => a.source.cmp(&b.source),
        "error" => a.last_error.cmp(&b.last_error),
        _ => Ordering::Equal,
    }
    .then_with(|| a.name.cmp(&b.name))
}

/// The query string of `f` with some parameters replaced.
fn link(f: &Filter, sort: Option<(&str, &str)>, refresh: Option<u64>) -> String {
    let mut parts = Vec::new();
    let mut push = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", pct(v)));
        }
    };
    push("q", f.q.as_deref());
    push("kind", f.kind.as_deref());
    push("status", f.status.as_deref());
    let (sort, dir) = match sort {
        Some((s, d)) => (Some(s), Some(d)),
        None => (f.sort.as_deref(), f.dir.as_deref()),
    };
    push("sort", sort);
    push("dir", dir);
    let refresh = refresh.or(f.refresh).map(|r| r.to_string());
    push("refresh", refresh.as_deref());
    if parts.is_empty() {
        "?".to_owned()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Counts of apps by kind and by status, as links that filter.
fn counts(apps: &[AppInfo], f: &Filter) -> String {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for a in apps {
        *kinds.entry(a.kind.as_str()).or_default() += 1;
        *statuses.entry(a.status()).or_default() += 1;
    }
    let chip = |key: &str, value: &str, n: usize| {
        let mut g = f.clone();
        if key == "kind" {
            g.kind = Some(value.to_owned());
        } else {
            g.status = Some(value.to_owned());
        }
        format!(
            "<a class=\"chip\" data-{key}=\"{v}\" href=\"{href}\">{v}<b>{n}</b></a>",
            v = esc(value),
            href = esc(&link(&g, None, None)),
        )
    };
    let mut s = format!(
        "<div class=\"chips\" id=\"counts\"><a class=\"chip\" href=\"?\">all<b>{}</b></a>",
        apps.len()
    );
    for (k, n) in &kinds {
        s.push_str(&chip("kind", k, *n));
    }
    s.push_str("</div>\n<div class=\"chips\">");
    for (st, n) in &statuses {
        s.push_str(&chip("status", st, *n));
    }
    s.push_str("</div>\n");
    s
}

fn select(name: &str, current: Option<&str>, options: &[&str]) -> String {
    let mut s =
        format!("<select name=\"{name}\" id=\"f-{name}\"><option value=\"\">any {name}</option>");
    for o in options {
        let sel = if current == Some(*o) { " selected" } else { "" };
        s.push_str(&format!("<option{sel}>{}</option>", esc(o)));
    }
    s.push_str("</select>");
    s
}

fn filter_form(f: &Filter, refresh: u64) -> String {
    let kinds = [
        "push",
        "pushgateway",
        "poll",
        "registered",
        "collector",
        "provider",
    ];
    let statuses = ["ok", "rejected", "up", "down", "init", "disabled"];
    let toggle = if refresh > 0 {
        format!(
            "auto-refresh every {refresh} s · <a id=\"refresh-off\" href=\"{}\">turn off</a>",
            esc(&link(f, None, Some(0)))
        )
    } else {
        format!(
            "auto-refresh off · <a id=\"refresh-on\" href=\"{}\">turn on</a>",
            esc(&link(f, None, Some(DEFAULT_REFRESH)))
        )
    };
    format!(
        "<form class=\"filter\" method=\"get\"><input type=\"search\" name=\"q\" id=\"f-q\" placeholder=\"filter by name\" value=\"{q}\" autocomplete=\"off\">{kind}{status}<input type=\"hidden\" name=\"refresh\" value=\"{refresh}\"><button>Filter</button> <span class=\"muted\">{toggle}</span></form>\n",
        q = esc(f.q.as_deref().unwrap_or("")),
        kind = select("kind", f.kind.as_deref(), &kinds),
        status = select("status", f.status.as_deref(), &statuses),
    )
}

fn row(a: &AppInfo, snap: &AppsSnapshot, now: DateTime<Utc>, root: &str) -> String {
    let updated = a.last_update.map_or_else(
        || "<span class=\"muted\">never</span>".to_owned(),
        |t| age_html(t, now),
    );
    let left = snap
        .expires_in(a)
        .map_or_else(|| "<span class=\"muted\">never</span>".to_owned(), short);
    let error = match (&a.last_error, a.last_error_time) {
        (Some(e), Some(t)) => format!("{} {}", age_html(t, now), error_html(e, ERROR_CHARS)),
        (Some(e), None) => error_html(e, ERROR_CHARS),
        _ => String::new(),
    };
    let (source, cut) = super::shorten(&super::redact_url(&a.source), SOURCE_CHARS);
    let source_title = if cut {
        format!(" title=\"{}\"", esc(&super::redact_url(&a.source)))
    } else {
        String::new()
    };
    format!(
        "<tr class=\"app\" data-name=\"{name}\" data-kind=\"{kind}\" data-status=\"{status}\"><td class=\"name\"><a href=\"{root}apps/{href}\">{name}</a></td><td>{kind}</td><td><span class=\"badge s-{status}\">{status}</span></td><td class=\"num\">{series}</td><td>{updated}</td><td class=\"wide\">{ttl}</td><td>{left}</td><td class=\"src wide\"{source_title}>{source}</td><td class=\"err\">{error}</td></tr>\n",
        name = esc(&a.name),
        href = pct(&a.name),
        kind = a.kind.as_str(),
        status = a.status(),
        series = a.series,
        ttl = esc(&a.ttl.describe()),
        source = esc(&source),
    )
}

/// Live filtering while typing; the form still works without it.
const SCRIPT: &str = r#"<script>
(function(){
  var q=document.getElementById('f-q'),k=document.getElementById('f-kind'),s=document.getElementById('f-status');
  function apply(){
    var t=q.value.toLowerCase(),kv=k.value,sv=s.value,shown=0;
    document.querySelectorAll('tr.app').forEach(function(r){
      var ok=r.dataset.name.toLowerCase().indexOf(t)>=0&&(!kv||r.dataset.kind===kv)&&(!sv||r.dataset.status===sv);
      r.hidden=!ok;if(ok)shown++;
    });
    document.getElementById('shown').textContent=shown;
  }
  q.addEventListener('input',apply);k.addEventListener('change',apply);s.addEventListener('change',apply);
})();
</script>"#;

/// The whole page for `snap`, filtered and sorted as `f` says.
pub fn render(snap: &AppsSnapshot, now: DateTime<Utc>, f: &Filter, root: &str) -> String {
    let refresh = f.refresh.unwrap_or(DEFAULT_REFRESH);
    let mut apps: Vec<&AppInfo> = snap.apps.iter().filter(|a| matches(a, f)).collect();
    let sort = f
        .sort
        .as_deref()
        .filter(|s| COLUMNS.iter().any(|c| c.0 == *s))
        .unwrap_or("name");
    let desc = f.dir.as_deref() == Some("desc");
    apps.sort_by(|a, b| {
        let o = compare(a, b, sort, snap);
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    let mut body = format!(
        "<h1>Apps</h1>\n{counts}{form}<p class=\"muted\"><span id=\"shown\">{shown}</span> of {total} shown · {now} · <a href=\"{root}apps?format=text\">text</a> · <a href=\"{root}apps?format=json\">JSON</a></p>\n<div class=\"scroll\"><table id=\"apps\">\n<thead><tr>",
        counts = counts(&snap.apps, f),
        form = filter_form(f, refresh),
        shown = apps.len(),
        total = snap.apps.len(),
        now = esc(&now.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
    );
    for (key, title, class) in COLUMNS {
        let (arrow, dir) = match (key == sort, desc) {
            (true, false) => (" ▲", "desc"),
            (true, true) => (" ▼", "asc"),
            (false, _) => ("", "asc"),
        };
        body.push_str(&format!(
            "<th class=\"{class}\"><a href=\"{}\">{title}{arrow}</a></th>",
            esc(&link(f, Some((key, dir)), None))
        ));
    }
    body.push_str("</tr></thead>\n<tbody>\n");
    for a in &apps {
        body.push_str(&row(a, snap, now, root));
    }
    body.push_str("</tbody></table></div>\n");
    if snap.apps.is_empty() {
        body.push_str("<p class=\"muted\">No apps yet: push to a receiver, or configure polled targets.</p>\n");
    }
    body.push_str(SCRIPT);
    page(
        "exporter-proxy: apps",
        root,
        (refresh > 0).then_some(refresh),
        &body,
    )
}
