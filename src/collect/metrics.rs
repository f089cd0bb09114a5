//! From responses to exposition text: the metric mappings and the state
//! that outlives one cycle (delta counters, observation counts).
//!
//! Semantics, per type:
//!
//! * `gauge`: the value, one series per element matched by the path.
//! * `counter`: the upstream value as it is (it must be an upstream
//!   counter), or with `delta = true` an upstream running total turned into
//!   a counter of ours: it starts at the first value seen, grows by every
//!   increase, and when the total goes down (the upstream reset it) grows by
//!   the new total, as Prometheus' `rate` does. It never goes down.
//! * `summary` and `histogram` with `observe = "per_poll"`: every value
//!   (one, for a single path or a mean computed by `expr`) is observed at
//!   every poll, as collectington does: `_count` counts polls.
//! * `summary` and `histogram` per element (the default for a `[*]` path):
//!   the path (or `expr`) selects an array of observations
//!   (`incidents[*].ack_seconds`); each is counted once: an observation is
//!   identified by its `id` path (or, without one, by its whole element) and
//!   counted the first time it is seen; the collector remembers the
//!   identities present in the last response, so an element that stays in
//!   a sliding window, or a response reused from the cache, is not counted
//!   again. A `null` value is "not yet observed" (an incident not yet
//!   acknowledged): it is counted when it gets a value. `_count` and `_sum`
//!   (and `_bucket`) are cumulative since start-up; no quantiles.
//!
//! Elements come from a path (its last wildcard) or from the outputs of a
//! jq expression (a value, or an object with `value` and label keys).
//! A missing value (absent key, index out of range, `null`) follows the
//! metric's `missing`: fail (naming the exact place, array indices
//! included), skip the sample, or use a default; a value of the wrong type
//! always fails.
//!
//! Evaluation is all or nothing: any error fails the cycle and leaves the
//! state as it was.
//!
//! The state is bounded whatever the responses: a delta counter whose
//! labels disappear from the response is dropped (it restarts, as a counter
//! reset, if they come back); observation counts of label sets that left
//! the response are kept until a metric has more than
//! [`MAX_OBSERVED_LABEL_SETS`] of them, then only the current ones stay.

use std::borrow::Cow;
use std::collections::hash_map::{Entry, RandomState};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;

use serde_json::Value;

use super::path::type_name;
use super::spec::{Kind, LabelFrom, MetricSpec, Missing, Observe, Source};
use crate::exposition::{escape_help, escape_label_value, format_go_float};

type Labels = Vec<(String, String)>;

/// Label sets of one observation metric kept beyond those of the last
/// response: plenty for teams, queues or hosts, a bound for responses with
/// ever-new labels (a request id as a label).
pub const MAX_OBSERVED_LABEL_SETS: usize = 1024;

/// State carried from cycle to cycle, one entry per metric.
#[derive(Debug, Default, Clone)]
pub struct State {
    metrics: Vec<MetricState>,
}

#[derive(Debug, Default, Clone)]
struct MetricState {
    /// Delta counters: upstream value last seen and our total.
    delta: BTreeMap<Labels, (f64, f64)>,
    /// Observations: count, sum, bucket counts (not cumulative).
    obs: BTreeMap<Labels, Obs>,
    /// Identities of the observations in the last response.
    seen: HashSet<u64>,
}

#[derive(Debug, Default, Clone)]
struct Obs {
    count: u64,
    sum: f64,
    buckets: Vec<u64>,
}

/// What a cycle produced: the text and the state to keep if it is stored.
#[derive(Debug)]
pub struct Evaluated {
    /// Exposition text.
    pub text: String,
    /// The new state.
    pub state: State,
}

/// The responses of one cycle.
pub struct Inputs<'a> {
    /// Parsed JSON per step (`None`: not JSON or not needed).
    pub json: &'a [Option<Value>],
    /// Extracted variables.
    pub vars: &'a HashMap<String, String>,
}

/// Evaluates every metric.
pub fn evaluate(
    specs: &[MetricSpec],
    old: &State,
    input: &Inputs<'_>,
) -> Result<Evaluated, String> {
    let mut state = old.clone();
    state.metrics.resize_with(specs.len(), MetricState::default);
    let mut out = Vec::new();
    for (spec, st) in specs.iter().zip(state.metrics.iter_mut()) {
        one(spec, st, input, &mut out).map_err(|e| format!("metric {}: {e}", spec.name))?;
    }
    Ok(Evaluated {
        text: String::from_utf8(out).expect("encoded from strings"),
        state,
    })
}

/// One element of a response: where it is, the node its labels are read
/// from, and its value (`Err`: missing, with the message naming where).
struct Element<'v> {
    loc: String,
    /// Where the value is (for messages).
    value_loc: String,
    node: Cow<'v, Value>,
    value: Result<Cow<'v, Value>, String>,
}

/// The elements of a path or an expression. Missing values stay in the
/// elements (the caller applies `missing`); a missing array under a
/// wildcard gives no elements unless `missing` is `fail`.
fn elements<'v>(spec: &MetricSpec, source_root: &'v Value) -> Result<Vec<Element<'v>>, String> {
    let root = source_root;
    match &spec.source {
        Source::Path { path, .. } => match path.split_last_wildcard() {
            None => Ok(vec![match path.one_at(root, "") {
                Ok((loc, v)) => Element {
                    loc: String::new(),
                    value_loc: loc,
                    node: Cow::Borrowed(root),
                    value: Ok(Cow::Borrowed(v)),
                },
                Err(e) if e.missing => Element {
                    loc: String::new(),
                    value_loc: String::new(),
                    node: Cow::Borrowed(root),
                    value: Err(e.message),
                },
                Err(e) => return Err(e.message),
            }]),
            Some((head, tail)) => {
                let nodes = match head.select_at(root, "") {
                    Ok(n) => n,
                    Err(e) if e.missing && spec.missing != Missing::Fail => Vec::new(),
                    Err(e) => return Err(e.message),
                };
                nodes
                    .into_iter()
                    .map(|(loc, node)| {
                        // The element's own location is copied only when
                        // its value is missing (700,000 copies of a 16 MiB
                        // response otherwise).
                        let (value_loc, value) = match tail.value_at(node, &loc) {
                            Ok(v) => (tail.location(&loc), Ok(Cow::Borrowed(v))),
                            Err(e) if e.missing => (loc.clone(), Err(e.message)),
                            Err(e) => return Err(e.message),
                        };
                        Ok(Element {
                            loc,
                            value_loc,
                            node: Cow::Borrowed(node),
                            value,
                        })
                    })
                    .collect()
            }
        },
        Source::Expr { expr, .. } => Ok(expr
            .eval(root)?
            .into_iter()
            .enumerate()
            .map(|(i, out)| {
                let loc = format!("output {i} of `{expr}`");
                let value = match &out {
                    Value::Object(m) => match m.get("value") {
                        Some(v) => Ok(Cow::Owned(v.clone())),
                        None => Err(format!("{loc}: an object without a `value` key")),
                    },
                    other => Ok(Cow::Owned(other.clone())),
                };
                Element {
                    value_loc: loc.clone(),
                    loc,
                    node: Cow::Owned(out),
                    value,
                }
            })
            .collect()),
        Source::Var(_) => Ok(Vec::new()),
    }
}

/// The labels of an element; `None`: a label is missing and `missing` is
/// `skip`.
fn labels_of(spec: &MetricSpec, root: &Value, e: &Element<'_>) -> Result<Option<Labels>, String> {
    let mut out = Vec::with_capacity(spec.labels.len() + spec.static_labels.len());
    for (name, from) in &spec.labels {
        let v: Result<Cow<'_, Value>, String> = match from {
            LabelFrom::Path(p) => {
                let r = if p.rooted {
                    p.value_at(root, "")
                } else {
                    p.value_at(&e.node, &e.loc)
                };
                match r {
                    Ok(v) if !v.is_null() => Ok(Cow::Borrowed(v)),
                    Ok(_) => Err(format!("path `{p}`: null")),
                    Err(err) if err.missing => Err(err.message),
                    Err(err) => return Err(format!("label {name}: {}", err.message)),
                }
            }
            LabelFrom::Expr(x) => match x.eval(&e.node)?.into_iter().next() {
                Some(v) if !v.is_null() => Ok(Cow::Owned(v)),
                _ => Err(format!("expression `{x}` gave no value")),
            },
        };
        let v = match v {
            Ok(v) => v,
            Err(_) if spec.missing == Missing::Skip => return Ok(None),
            Err(m) => return Err(format!("label {name} is missing: {m}")),
        };
        let s = match v.as_ref() {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(format!(
                    "label {name}: expected a string, number or boolean at {}, found {}",
                    at(&e.loc),
                    type_name(other)
                ))
            }
        };
        out.push((name.clone(), s));
    }
    out.extend(spec.static_labels.iter().cloned());
    Ok(Some(out))
}

/// (labels, value, identity) of every sample or observation; a `None`
/// value is an observation not yet made (`null`).
type Samples = Vec<(Labels, Option<f64>, u64)>;

fn samples(spec: &MetricSpec, input: &Inputs<'_>) -> Result<Samples, String> {
    let mut values = Samples::new();
    let observation = matches!(spec.kind, Kind::Summary | Kind::Histogram(_));
    let step = match &spec.source {
        Source::Var(v) => {
            let s = input
                .vars
                .get(v)
                .ok_or_else(|| format!("variable {v:?} was not extracted"))?;
            let n = spec
                .format
                .convert_str(s)
                .map_err(|e| format!("variable {v}: {e}"))?;
            values.push((spec.static_labels.clone(), Some(n), 0));
            return Ok(values);
        }
        Source::Path { step, .. } | Source::Expr { step, .. } => *step,
    };
    let root = input
        .json
        .get(step)
        .and_then(Option::as_ref)
        .ok_or("the response is not JSON")?;
    for e in elements(spec, root)? {
        let Some(labels) = labels_of(spec, root, &e)? else {
            continue;
        };
        let value =
            match &e.value {
                Ok(v) if v.is_null() && observation => None,
                Ok(v) if !v.is_null() => Some(spec.format.convert(v).map_err(|err| {
                    format!("{}: at {}: {err}", source_text(spec), at(&e.value_loc))
                })?),
                other => {
                    let why = match other {
                        Err(m) => m.clone(),
                        Ok(_) => format!("{}: null at {}", source_text(spec), at(&e.value_loc)),
                    };
                    match spec.missing {
                        Missing::Fail => return Err(format!("missing value: {why}")),
                        Missing::Skip => continue,
                        Missing::Default(d) => Some(d),
                    }
                }
            };
        let id = match &spec.id {
            Some(p) if observation => {
                let v = p.value_at(&e.node, &e.loc).map_err(|err| err.message)?;
                xxhash_rust::xxh3::xxh3_64(v.to_string().as_bytes())
            }
            // Identities are for observations only: serialising every
            // element of a gauge's response would double its cost.
            _ if observation => xxhash_rust::xxh3::xxh3_64(e.node.to_string().as_bytes()),
            _ => 0,
        };
        values.push((labels, value, id));
    }
    Ok(values)
}

/// A location for messages.
fn at(loc: &str) -> String {
    if loc.is_empty() {
        "the root".to_owned()
    } else if loc.starts_with("output ") {
        loc.to_owned()
    } else {
        format!("`{loc}`")
    }
}

fn source_text(spec: &MetricSpec) -> String {
    match &spec.source {
        Source::Path { path, .. } => format!("path `{path}`"),
        Source::Expr { expr, .. } => format!("expression `{expr}`"),
        Source::Var(v) => format!("variable {v}"),
    }
}

fn one(
    spec: &MetricSpec,
    st: &mut MetricState,
    input: &Inputs<'_>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let values = samples(spec, input)?;
    header(out, spec);
    match &spec.kind {
        Kind::Gauge | Kind::Counter => {
            // Each label set once, indexed by a keyed hash: no copy of the
            // labels per element (a response may have 700,000).
            let keys = RandomState::new();
            let mut seen: HashMap<u64, usize> = HashMap::with_capacity(values.len());
            for i in 0..values.len() {
                let labels = &values[i].0;
                let twice = match seen.entry(keys.hash_one(labels)) {
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                        false
                    }
                    // Same hash: the same labels, or (rarely) a collision.
                    Entry::Occupied(first) => {
                        values[*first.get()].0 == *labels
                            || values[..i].iter().any(|v| v.0 == *labels)
                    }
                };
                if twice {
                    return Err(format!(
                        "two values have the labels {}: add a label that tells them apart",
                        label_text(labels)
                    ));
                }
                let mut v = values[i].1.unwrap_or(f64::NAN);
                if spec.delta {
                    let (last, total) = st.delta.get(labels).copied().unwrap_or((v, v));
                    let total = if v >= last {
                        total + (v - last)
                    } else {
                        total + v
                    };
                    st.delta.insert(labels.clone(), (v, total));
                    v = total;
                }
                sample(out, &spec.name, "", labels, None, v);
            }
            // State only for the label sets of this response: a response
            // cannot grow it without bound (a key that comes back restarts).
            if spec.delta {
                st.delta.retain(|l, _| seen.contains_key(&keys.hash_one(l)));
            }
        }
        Kind::Summary | Kind::Histogram(_) => observe(spec, st, values, out),
    }
    Ok(())
}

fn observe(spec: &MetricSpec, st: &mut MetricState, values: Samples, out: &mut Vec<u8>) {
    let bounds: &[f64] = match &spec.kind {
        Kind::Histogram(b) => b,
        _ => &[],
    };
    let per_poll = spec.observe == Observe::PerPoll;
    let mut now_seen = HashSet::new();
    if spec.labels.is_empty() {
        st.obs.entry(spec.static_labels.clone()).or_default();
    }
    let mut present: HashSet<Labels> = HashSet::new();
    for (labels, value, id) in values {
        present.insert(labels.clone());
        let Some(v) = value else { continue };
        if !per_poll {
            now_seen.insert(id);
            if st.seen.contains(&id) {
                continue;
            }
        }
        let o = st.obs.entry(labels).or_default();
        o.buckets.resize(bounds.len(), 0);
        o.count += 1;
        o.sum += v;
        if let Some(i) = bounds.iter().position(|b| v <= *b) {
            o.buckets[i] += 1;
        }
    }
    st.seen = now_seen;
    // Counts of label sets that left the response are kept (they are
    // cumulative) until there are too many: then only the label sets of
    // this response stay.
    if st.obs.len() > MAX_OBSERVED_LABEL_SETS {
        st.obs.retain(|l, _| present.contains(l));
    }
    for (labels, o) in &st.obs {
        if !bounds.is_empty() {
            let mut cum = 0;
            for (i, b) in bounds.iter().enumerate() {
                cum += o.buckets.get(i).copied().unwrap_or(0);
                let le = format_go_float(*b);
                sample(out, &spec.name, "_bucket", labels, Some(&le), cum as f64);
            }
            sample(
                out,
                &spec.name,
                "_bucket",
                labels,
                Some("+Inf"),
                o.count as f64,
            );
        }
        sample(out, &spec.name, "_sum", labels, None, o.sum);
        sample(out, &spec.name, "_count", labels, None, o.count as f64);
    }
}

fn header(out: &mut Vec<u8>, spec: &MetricSpec) {
    if !spec.help.is_empty() {
        out.extend_from_slice(format!("# HELP {} ", spec.name).as_bytes());
        escape_help(out, &spec.help);
        out.push(b'\n');
    }
    out.extend_from_slice(format!("# TYPE {} {}\n", spec.name, spec.kind.as_str()).as_bytes());
}

fn sample(out: &mut Vec<u8>, name: &str, suffix: &str, labels: &Labels, le: Option<&str>, v: f64) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    let all = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(le.map(|l| ("le", l)));
    let mut first = true;
    for (k, val) in all {
        out.push(if first { b'{' } else { b',' });
        first = false;
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_label_value(out, val);
        out.push(b'"');
    }
    if !first {
        out.push(b'}');
    }
    out.push(b' ');
    out.extend_from_slice(format_go_float(v).as_bytes());
    out.push(b'\n');
}

fn label_text(labels: &Labels) -> String {
    let mut out = Vec::new();
    sample(&mut out, "", "", labels, None, 0.0);
    let s = String::from_utf8(out).unwrap_or_default();
    s.trim_end().trim_end_matches(" 0").to_owned()
}
