//! Collector definitions: the `[[collectors]]` tables of `config.toml`, or a
//! TOML, JSON or YAML file named by `collectors_file`, validated key by key.
//! Every problem is collected (naming the collector and the key) so that
//! they are all reported at once, like the rest of the configuration.
//!
//! The documents are converted to `serde_json::Value` first, so the three
//! formats share one walker.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::expr::Expr;
use super::path::{type_name, Path};
pub use super::secret::SecretSpec;
use super::timeref::TimeRef;
use super::value::NumberFormat;
use crate::secret::SecretSource;

mod metric;

/// Default time between two cycles.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default time a whole cycle (every step) may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest response body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// `stale_after` defaults to this many intervals.
pub const DEFAULT_STALE_INTERVALS: u32 = 5;

/// One collector. Compared whole by the scheduler: any change restarts it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// App name in `/metrics` and `/apps`.
    pub name: String,
    /// Time between the starts of two cycles.
    pub interval: Duration,
    /// Time one cycle (all its steps) may take.
    pub timeout: Duration,
    /// How long a response may be reused for the same request; zero: only
    /// within one cycle.
    pub cache_ttl: Duration,
    /// How long the last good values are served while cycles fail.
    pub stale_after: Duration,
    /// Largest response body, after decompression.
    pub max_body_bytes: usize,
    /// Skip TLS certificate verification.
    pub insecure_skip_verify: bool,
    /// Named secrets for `${secret.NAME}`: only where they are read from.
    pub secrets: Vec<(String, SecretSpec)>,
    /// The HTTP requests, in order.
    pub steps: Vec<Step>,
    /// What becomes a metric.
    pub metrics: Vec<MetricSpec>,
}

impl CollectorConfig {
    /// What `/apps` shows as the source: the last step's URL as written
    /// (placeholders unexpanded, so no secret).
    pub fn source(&self) -> String {
        self.steps
            .last()
            .map(|s| s.url.text.clone())
            .unwrap_or_default()
    }
}

/// Text with `${secret.NAME}`, `${var.NAME}` and time (`${now-1m}`, see
/// [`TimeRef`]) placeholders (`$$` is `$`).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// As written.
    pub text: String,
    /// Literal text and placeholders.
    pub parts: Vec<Part>,
}

/// A piece of a [`Template`].
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Literal text.
    Lit(String),
    /// A secret by name.
    Secret(String),
    /// A variable extracted by an earlier step.
    Var(String),
    /// The time of the request, moved and formatted.
    Now(TimeRef),
}

impl Template {
    /// Parses the placeholders.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            rest = &rest[i..];
            if let Some(r) = rest.strip_prefix("$$") {
                lit.push('$');
                rest = r;
            } else if let Some(r) = rest.strip_prefix("${") {
                let end = r
                    .find('}')
                    .ok_or_else(|| format!("{s:?}: `${{` without `}}`"))?;
                let inner = &r[..end];
                let part = if let Some(t) = TimeRef::parse(inner) {
                    Part::Now(t.map_err(|e| format!("{s:?}: `${{{inner}}}`: {e}"))?)
                } else {
                    match inner.split_once('.') {
                        Some(("secret", n)) if valid_name(n) => Part::Secret(n.to_owned()),
                        Some(("var", n)) if valid_name(n) => Part::Var(n.to_owned()),
                        _ => {
                            return Err(format!(
                                "{s:?}: unknown placeholder `${{{inner}}}`: expected ${{secret.NAME}}, ${{var.NAME}} or ${{now}}, ${{now-1m}}, ${{now+1h|unix}}"
                            ))
                        }
                    }
                };
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(part);
                rest = &r[end + 1..];
            } else {
                lit.push('$');
                rest = &rest[1..];
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template {
            text: s.to_owned(),
            parts,
        })
    }

    /// The secrets and variables it uses.
    pub fn names(&self) -> impl Iterator<Item = &Part> {
        self.parts.iter().filter(|p| !matches!(p, Part::Lit(_)))
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// No body.
    None,
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, Template)>),
    /// `application/json`: placeholders are expanded inside strings.
    Json(Value),
}

/// One HTTP request of a collector.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// For messages and `metrics[].step`.
    pub name: String,
    /// GET, POST, ...
    pub method: String,
    /// The URL.
    pub url: Template,
    /// Query parameters appended to the URL.
    pub query: Vec<(String, Template)>,
    /// Request headers.
    pub headers: Vec<(String, Template)>,
    /// Request body.
    pub body: Body,
    /// Variables taken from the response for later steps.
    pub extract: Vec<Extract>,
}

/// A variable taken from a response.
#[derive(Debug, Clone, PartialEq)]
pub struct Extract {
    /// The variable's name (`${var.NAME}`).
    pub var: String,
    /// Where from.
    pub from: ExtractFrom,
}

/// Where an extracted variable comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtractFrom {
    /// A JSON value (a string or a number) at a path.
    Json(Path),
    /// A response header.
    Header(String),
    /// A cookie set by the response (or already in the jar).
    Cookie(String),
    /// The first HTML element matching a CSS selector: an attribute, or its text.
    Css {
        /// The selector, checked at load.
        selector: String,
        /// The attribute; `None`: the element's text.
        attr: Option<String>,
    },
    /// A regular expression over the body: the first capture group, or the
    /// whole match without groups.
    Regex(Re),
}

/// A compiled regex compared by its text.
#[derive(Debug, Clone)]
pub struct Re(pub regex::Regex);

impl PartialEq for Re {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// Metric types.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// The value as it is.
    Gauge,
    /// An upstream counter, or with `delta` an upstream running total.
    Counter,
    /// `_count` and `_sum` of the observations.
    Summary,
    /// Cumulative buckets with these upper bounds (`+Inf` added).
    Histogram(Vec<f64>),
}

impl Kind {
    /// The exposition type name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Summary => "summary",
            Kind::Histogram(_) => "histogram",
        }
    }
}

/// Where a metric's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A path into the JSON response of a step.
    Path {
        /// Index into `steps`.
        step: usize,
        /// The value path.
        path: Path,
    },
    /// A variable extracted by a step (HTML pages, headers).
    Var(String),
    /// A jq expression over the JSON response of a step: each output is
    /// an element (a value, or an object with `value` and label keys).
    Expr {
        /// Index into `steps`.
        step: usize,
        /// The expression.
        expr: Expr,
    },
}

/// Where a label's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelFrom {
    /// A path, relative to the element unless it starts with `$`.
    Path(Path),
    /// A jq expression over the element: its first output.
    Expr(Expr),
}

/// When a summary or histogram observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observe {
    /// Each element (of a wildcard path or an expression) once, when it is
    /// first seen.
    PerElement,
    /// Every value, every poll (collectington's meaning: `_count` counts
    /// polls).
    PerPoll,
}

/// What a missing value (or label) does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Missing {
    /// The cycle fails (all or nothing).
    Fail,
    /// The sample is left out.
    Skip,
    /// The value is this number (a missing label still fails).
    Default(f64),
}

/// The default buckets of the Prometheus client libraries.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One metric family of a collector.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    /// Family name.
    pub name: String,
    /// HELP text.
    pub help: String,
    /// Type.
    pub kind: Kind,
    /// Values.
    pub source: Source,
    /// Labels from paths or expressions (relative to the element: of the
    /// value path's last wildcard, or an expression's output).
    pub labels: Vec<(String, LabelFrom)>,
    /// Fixed labels.
    pub static_labels: Vec<(String, String)>,
    /// Number parsing and scaling.
    pub format: NumberFormat,
    /// Counter from an upstream running total.
    pub delta: bool,
    /// Summaries and histograms: the identity of an observation (relative
    /// to its element), so that it is counted once.
    pub id: Option<Path>,
    /// Summaries and histograms: per element or per poll.
    pub observe: Observe,
    /// What a missing value does.
    pub missing: Missing,
}

/// Builds the collectors from the config's `collectors` and
/// `collectors_file` values; problems are appended to `problems`.
pub fn from_config(
    inline: Option<&toml::Value>,
    file: Option<&toml::Value>,
    problems: &mut Vec<String>,
) -> Vec<CollectorConfig> {
    let mut out = Vec::new();
    if let Some(v) = inline {
        match serde_json::to_value(v) {
            Ok(j) => collectors(&j, "collectors", &mut out, problems),
            Err(e) => problems.push(format!("`collectors`: {e}")),
        }
    }
    match file {
        None => {}
        Some(toml::Value::String(p)) => match load_file(&PathBuf::from(p)) {
            Ok(doc) => {
                let where_ = format!("collectors_file {p}");
                match doc.get("collectors") {
                    Some(list) if doc.as_object().is_some_and(|m| m.len() == 1) => {
                        collectors(list, &where_, &mut out, problems)
                    }
                    _ => problems.push(format!(
                        "`collectors_file`: {p}: expected a document with one key, `collectors`, a list of collectors"
                    )),
                }
            }
            Err(e) => problems.push(format!("`collectors_file`: {e}")),
        },
        Some(other) => problems.push(format!(
            "`collectors_file`: expected a path string, found {}",
            other.type_str()
        )),
    }
    let mut seen = BTreeSet::new();
    for c in &out {
        if !seen.insert(c.name.clone()) {
            problems.push(format!(
                "collector {:?}: `name`: two collectors have this name: expected unique names",
                c.name
            ));
        }
    }
    out
}

/// Reads a collectors file: `.toml`, `.json`, `.yaml` or `.yml`.
pub fn load_file(path: &std::path::Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "toml" => toml::from_str::<toml::Value>(&text)
            .map_err(|e| {
                format!(
                    "{}: not valid TOML: {}",
                    path.display(),
                    e.to_string().trim()
                )
            })
            .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string())),
        "json" => serde_json::from_str(&text)
            .map_err(|e| format!("{}: not valid JSON: {e}", path.display())),
        "yaml" | "yml" => serde_saphyr::from_str::<Value>(&text)
            .map_err(|e| format!("{}: not valid YAML: {e}", path.display())),
        _ => Err(format!(
            "{}: expected a .toml, .json, .yaml or .yml file",
            path.display()
        )),
    }
}

fn collectors(v: &Value, where_: &str, out: &mut Vec<CollectorConfig>, problems: &mut Vec<String>) {
    let Some(arr) = v.as_array() else {
        problems.push(format!(
            "`{where_}`: expected a list of tables ([[collectors]]), found {}",
            type_name(v)
        ));
        return;
    };
    for (i, c) in arr.iter().enumerate() {
        let label = match c.get("name").and_then(Value::as_str) {
            Some(n) => format!("collector {n:?}"),
            None => format!("{where_}[{i}]"),
        };
        let mut cx = Cx {
            label,
            problems: Vec::new(),
        };
        match c.as_object() {
            Some(m) => {
                let mut o = Obj::new("", m);
                let built = collector(&mut o, &mut cx);
                o.finish(&mut cx);
                if cx.problems.is_empty() {
                    out.extend(built);
                }
            }
            None => cx.err("", format!("expected a table, found {}", type_name(c))),
        }
        problems.append(&mut cx.problems);
    }
}

struct Cx {
    label: String,
    problems: Vec<String>,
}

impl Cx {
    fn err(&mut self, key: &str, msg: impl std::fmt::Display) {
        if key.is_empty() {
            self.problems.push(format!("{}: {msg}", self.label));
        } else {
            self.problems
                .push(format!("{}: `{key}`: {msg}", self.label));
        }
    }
}

/// A table consumed key by key; keys never asked for are unknown.
struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
    used: BTreeSet<&'static str>,
}

impl<'a> Obj<'a> {
    fn new(path: &str, map: &'a Map<String, Value>) -> Self {
        Obj {
            path: path.to_owned(),
            map,
            used: BTreeSet::new(),
        }
    }

    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_owned()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    fn raw(&mut self, k: &'static str) -> Option<&'a Value> {
        self.used.insert(k);
        self.map.get(k)
    }

    fn get<T>(
        &mut self,
        k: &'static str,
        cx: &mut Cx,
        conv: impl FnOnce(&'a Value) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.raw(k)?;
        match conv(v) {
            Ok(t) => Some(t),
            Err(e) => {
                cx.err(&self.key(k), e);
                None
            }
        }
    }

    fn required<T>(
        &mut self,
        k: &'static str,
        cx: &mut Cx,
        conv: impl FnOnce(&'a Value) -> Result<T, String>,
    ) -> Option<T> {
        if !self.map.contains_key(k) {
            self.used.insert(k);
            cx.err(&self.key(k), "required");
            return None;
        }
        self.get(k, cx, conv)
    }

    fn string(&mut self, k: &'static str, cx: &mut Cx) -> Option<String> {
        self.get(k, cx, string)
    }

    fn duration(&mut self, k: &'static str, cx: &mut Cx, zero_ok: bool) -> Option<Duration> {
        self.get(k, cx, |v| {
            let d = match v {
                Value::Number(n) if n.as_u64().is_some() => {
                    Duration::from_secs(n.as_u64().unwrap_or_default())
                }
                Value::String(s) => humantime::parse_duration(s).map_err(|e| {
                    format!("expected a duration such as \"30s\", found {s:?} ({e})")
                })?,
                other => {
                    return Err(format!(
                        "expected seconds or a duration such as \"30s\", found {}",
                        type_name(other)
                    ))
                }
            };
            if d.is_zero() && !zero_ok {
                return Err("must be greater than zero".to_owned());
            }
            Ok(d)
        })
    }

    /// A table of strings, in document order.
    fn string_map(&mut self, k: &'static str, cx: &mut Cx) -> Vec<(String, String)> {
        self.get(k, cx, |v| {
            let m = v
                .as_object()
                .ok_or_else(|| format!("expected a table, found {}", type_name(v)))?;
            m.iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Number(n) => Ok((k.clone(), n.to_string())),
                    Value::Bool(b) => Ok((k.clone(), b.to_string())),
                    other => Err(format!(
                        "`{k}`: expected a string, found {}",
                        type_name(other)
                    )),
                })
                .collect()
        })
        .unwrap_or_default()
    }

    fn finish(self, cx: &mut Cx) {
        for k in self.map.keys() {
            if !self.used.contains(k.as_str()) {
                cx.err(&self.key(k), "unknown key");
            }
        }
    }
}

fn string(v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("expected a string, found {}", type_name(v)))
}

fn tables<'a>(
    o: &mut Obj<'a>,
    k: &'static str,
    cx: &mut Cx,
) -> Vec<(String, &'a Map<String, Value>)> {
    let Some(v) = o.raw(k) else { return Vec::new() };
    let key = o.key(k);
    let Some(arr) = v.as_array() else {
        cx.err(
            &key,
            format!("expected a list of tables, found {}", type_name(v)),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, t) in arr.iter().enumerate() {
        match t.as_object() {
            Some(m) => out.push((format!("{key}[{i}]"), m)),
            None => cx.err(
                &format!("{key}[{i}]"),
                format!("expected a table, found {}", type_name(t)),
            ),
        }
    }
    out
}

fn collector(o: &mut Obj<'_>, cx: &mut Cx) -> Option<CollectorConfig> {
    let name = o.required("name", cx, |v| {
        let s = string(v)?;
        crate::store::validate_app_name(&s)
            .map(|()| s)
            .map_err(|e| e.message)
    });
    let interval = o
        .duration("interval", cx, false)
        .unwrap_or(DEFAULT_INTERVAL);
    let timeout = o
        .duration("timeout", cx, false)
        .unwrap_or(DEFAULT_TIMEOUT.min(interval));
    if timeout > interval {
        cx.err(
            "timeout",
            format!(
                "{} is longer than `interval` ({}): expected at most the interval",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ),
        );
    }
    let cache_ttl = o.duration("cache_ttl", cx, true).unwrap_or(Duration::ZERO);
    let stale_after = o
        .duration("stale_after", cx, false)
        .unwrap_or(interval * DEFAULT_STALE_INTERVALS);
    if stale_after < interval {
        cx.err("stale_after", "expected at least `interval`");
    }
    let max_body_bytes = o
        .get("max_body_bytes", cx, |v| {
            v.as_u64()
                .filter(|n| *n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| "expected a positive number of bytes".to_owned())
        })
        .unwrap_or(DEFAULT_MAX_BODY_BYTES);
    let insecure_skip_verify = o
        .get("insecure_skip_verify", cx, |v| {
            v.as_bool().ok_or_else(|| "expected a boolean".to_owned())
        })
        .unwrap_or(false);
    let secrets = secrets(o, cx);
    let step_tables = tables(o, "steps", cx);
    if step_tables.is_empty() && !o.map.contains_key("steps") {
        cx.err("steps", "required: at least one step");
    }
    let mut steps = Vec::new();
    // Variables defined so far (by earlier steps).
    let mut vars: BTreeSet<String> = BTreeSet::new();
    let secret_names: BTreeSet<&str> = secrets.iter().map(|(n, _)| n.as_str()).collect();
    for (i, (path, t)) in step_tables.iter().enumerate() {
        let mut so = Obj::new(path, t);
        if let Some(s) = step(&mut so, i, &secret_names, &vars, cx) {
            for e in &s.extract {
                vars.insert(e.var.clone());
            }
            steps.push(s);
        }
        so.finish(cx);
    }
    let metric_tables = tables(o, "metrics", cx);
    if metric_tables.is_empty() && !o.map.contains_key("metrics") {
        cx.err("metrics", "required: at least one metric");
    }
    let mut metrics = Vec::new();
    let mut names = BTreeSet::new();
    for (path, t) in &metric_tables {
        let mut mo = Obj::new(path, t);
        if let Some(m) = metric::metric(&mut mo, &steps, &vars, cx) {
            if !names.insert(m.name.clone()) {
                cx.err(&mo.key("name"), format!("{:?} is defined twice", m.name));
            }
            metrics.push(m);
        }
        mo.finish(cx);
    }
    Some(CollectorConfig {
        name: name?,
        interval,
        timeout,
        cache_ttl,
        stale_after,
        max_body_bytes,
        insecure_skip_verify,
        secrets,
        steps,
        metrics,
    })
}

fn secrets(o: &mut Obj<'_>, cx: &mut Cx) -> Vec<(String, SecretSpec)> {
    let Some(v) = o.raw("secrets") else {
        return Vec::new();
    };
    let Some(m) = v.as_object() else {
        cx.err(
            "secrets",
            format!("expected a table, found {}", type_name(v)),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, s) in m {
        let key = format!("secrets.{name}");
        if !valid_name(name) {
            cx.err(&key, "expected a name of letters, digits and _");
            continue;
        }
        let Some(t) = s.as_object() else {
            cx.err(
                &key,
                "expected a table such as { env = \"VAR\" }, { file = \"/path\" } or { file = \"/path\", key = \"API_KEY\" }",
            );
            continue;
        };
        let mut so = Obj::new(&key, t);
        let file = so.string("file", cx);
        let env = so.string("env", cx);
        let k = so.string("key", cx);
        so.finish(cx);
        match (file, env, k) {
            (Some(f), None, None) => out.push((
                name.clone(),
                SecretSpec::Whole(SecretSource::File(PathBuf::from(f))),
            )),
            (Some(f), None, Some(k)) => out.push((
                name.clone(),
                SecretSpec::Key {
                    file: PathBuf::from(f),
                    key: k,
                },
            )),
            (None, Some(e), None) => {
                out.push((name.clone(), SecretSpec::Whole(SecretSource::Env(e))))
            }
            (None, Some(_), Some(_)) => cx.err(&format!("{key}.key"), "only with `file`"),
            _ => cx.err(&key, "expected exactly one of `file` or `env`"),
        }
    }
    out
}

fn template(
    s: &str,
    key: &str,
    secrets: &BTreeSet<&str>,
    vars: &BTreeSet<String>,
    cx: &mut Cx,
) -> Option<Template> {
    match Template::parse(s) {
        Ok(t) => {
            let mut ok = true;
            for p in t.names() {
                match p {
                    Part::Secret(n) if !secrets.contains(n.as_str()) => {
                        cx.err(
                            key,
                            format!("`${{secret.{n}}}` is not defined in `secrets`"),
                        );
                        ok = false;
                    }
                    Part::Var(n) if !vars.contains(n) => {
                        cx.err(
                            key,
                            format!("`${{var.{n}}}` is not extracted by an earlier step"),
                        );
                        ok = false;
                    }
                    _ => {}
                }
            }
            ok.then_some(t)
        }
        Err(e) => {
            cx.err(key, e);
            None
        }
    }
}

fn templates(
    o: &mut Obj<'_>,
    k: &'static str,
    secrets: &BTreeSet<&str>,
    vars: &BTreeSet<String>,
    cx: &mut Cx,
) -> Vec<(String, Template)> {
    let key = o.key(k);
    o.string_map(k, cx)
        .into_iter()
        .filter_map(|(name, v)| {
            template(&v, &format!("{key}.{name}"), secrets, vars, cx).map(|t| (name, t))
        })
        .collect()
}

fn check_json_templates(
    v: &Value,
    key: &str,
    secrets: &BTreeSet<&str>,
    vars: &BTreeSet<String>,
    cx: &mut Cx,
) {
    match v {
        Value::String(s) => {
            template(s, key, secrets, vars, cx);
        }
        Value::Array(a) => a
            .iter()
            .for_each(|x| check_json_templates(x, key, secrets, vars, cx)),
        Value::Object(m) => m
            .values()
            .for_each(|x| check_json_templates(x, key, secrets, vars, cx)),
        _ => {}
    }
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

fn step(
    o: &mut Obj<'_>,
    index: usize,
    secrets: &BTreeSet<&str>,
    vars: &BTreeSet<String>,
    cx: &mut Cx,
) -> Option<Step> {
    let name = o
        .string("name", cx)
        .unwrap_or_else(|| format!("step{index}"));
    let method = o
        .get("method", cx, |v| {
            let m = string(v)?.to_ascii_uppercase();
            if METHODS.contains(&m.as_str()) {
                Ok(m)
            } else {
                Err(format!(
                    "expected one of {}, found {m:?}",
                    METHODS.join(", ")
                ))
            }
        })
        .unwrap_or_else(|| "GET".to_owned());
    let url_key = o.key("url");
    let url = o
        .required("url", cx, string)
        .and_then(|s| template(&s, &url_key, secrets, vars, cx));
    if let Some(u) = &url {
        // The scheme and host must be literal, so that a secret can never
        // choose where it is sent.
        let head: String = match u.parts.first() {
            Some(Part::Lit(l)) => l.clone(),
            _ => String::new(),
        };
        let ok = (head.starts_with("http://") || head.starts_with("https://"))
            && head.splitn(4, '/').count() >= 3
            && url::Url::parse(&head).is_ok_and(|p| p.host_str().is_some());
        if !ok {
            cx.err(
                &url_key,
                format!(
                    "expected an http:// or https:// URL with a literal host, found {:?}",
                    u.text
                ),
            );
        }
    }
    let query = templates(o, "query", secrets, vars, cx);
    let headers = templates(o, "headers", secrets, vars, cx);
    for (h, _) in &headers {
        if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            cx.err(
                &o.key("headers"),
                format!("{h:?} is not a valid header name"),
            );
        }
    }
    let form = o.map.contains_key("form");
    let json = o.raw("json");
    let body = if form {
        let f = templates(o, "form", secrets, vars, cx);
        if json.is_some() {
            cx.err(&o.key("json"), "set `form` or `json`, not both");
        }
        Body::Form(f)
    } else if let Some(j) = json {
        check_json_templates(j, &o.key("json"), secrets, vars, cx);
        Body::Json(j.clone())
    } else {
        Body::None
    };
    let mut extract = Vec::new();
    for (path, t) in tables(o, "extract", cx) {
        let mut eo = Obj::new(&path, t);
        if let Some(e) = extraction(&mut eo, cx) {
            extract.push(e);
        }
        eo.finish(cx);
    }
    Some(Step {
        name,
        method,
        url: url?,
        query,
        headers,
        body,
        extract,
    })
}

fn extraction(o: &mut Obj<'_>, cx: &mut Cx) -> Option<Extract> {
    let var_key = o.key("var");
    let var = o.required("var", cx, string)?;
    if !valid_name(&var) {
        cx.err(&var_key, "expected a name of letters, digits and _");
    }
    let mut found = Vec::new();
    if let Some(p) = o.get("json", cx, |v| Path::parse(&string(v)?)) {
        found.push(ExtractFrom::Json(p));
    }
    if let Some(h) = o.string("header", cx) {
        found.push(ExtractFrom::Header(h));
    }
    if let Some(c) = o.string("cookie", cx) {
        found.push(ExtractFrom::Cookie(c));
    }
    let attr = o.string("attr", cx);
    if let Some(sel) = o.get("css", cx, |v| {
        let s = string(v)?;
        scraper::Selector::parse(&s)
            .map(|_| s.clone())
            .map_err(|e| format!("invalid CSS selector {s:?}: {e}"))
    }) {
        found.push(ExtractFrom::Css {
            selector: sel,
            attr: attr.clone(),
        });
    } else if attr.is_some() && !o.map.contains_key("css") {
        cx.err(&o.key("attr"), "only with `css`");
    }
    if let Some(re) = o.get("regex", cx, |v| {
        let s = string(v)?;
        regex::Regex::new(&s).map_err(|e| format!("invalid regex: {e}"))
    }) {
        found.push(ExtractFrom::Regex(Re(re)));
    }
    let sources = ["json", "header", "cookie", "css", "regex"];
    let given = sources.iter().filter(|k| o.map.contains_key(**k)).count();
    if given != 1 {
        cx.err(
            &o.path,
            "expected exactly one of `json`, `header`, `cookie`, `css` or `regex`",
        );
        return None;
    }
    Some(Extract {
        var,
        from: found.pop()?,
    })
}

/// The metrics of one `[[poll.mappings]]` table (`name`, `metrics`): the
/// collector metric syntax over a polled target's JSON body (no steps, no
/// variables). Problems name `poll.mappings[i]` and the key.
pub(super) fn mapping(
    v: &Value,
    index: usize,
    problems: &mut Vec<String>,
) -> Option<(String, Vec<MetricSpec>)> {
    let mut cx = Cx {
        label: match v.get("name").and_then(Value::as_str) {
            Some(n) => format!("mapping {n:?}"),
            None => format!("poll.mappings[{index}]"),
        },
        problems: Vec::new(),
    };
    let Some(m) = v.as_object() else {
        cx.err("", format!("expected a table, found {}", type_name(v)));
        problems.append(&mut cx.problems);
        return None;
    };
    let mut o = Obj::new("", m);
    let name = o.required("name", &mut cx, |v| {
        let s = string(v)?;
        valid_name(&s)
            .then_some(s)
            .ok_or_else(|| "expected a name of letters, digits and _".to_owned())
    });
    // The body stands in for a step's response.
    let body = Step {
        name: "body".to_owned(),
        method: "GET".to_owned(),
        url: Template::parse("http://target/").expect("literal"),
        query: Vec::new(),
        headers: Vec::new(),
        body: Body::None,
        extract: Vec::new(),
    };
    let tables = tables(&mut o, "metrics", &mut cx);
    if tables.is_empty() && !m.contains_key("metrics") {
        cx.err("metrics", "required: at least one metric");
    }
    let mut metrics = Vec::new();
    let mut names = BTreeSet::new();
    for (path, t) in &tables {
        let mut mo = Obj::new(path, t);
        if let Some(spec) = metric::metric(
            &mut mo,
            std::slice::from_ref(&body),
            &BTreeSet::new(),
            &mut cx,
        ) {
            if !names.insert(spec.name.clone()) {
                cx.err(&mo.key("name"), format!("{:?} is defined twice", spec.name));
            }
            metrics.push(spec);
        }
        mo.finish(&mut cx);
    }
    o.finish(&mut cx);
    let ok = cx.problems.is_empty();
    problems.append(&mut cx.problems);
    ok.then_some((name?, metrics))
}
