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
//! * `summary` and `histogram`: the path selects an array of observations
//!   (`incidents[*].ack_seconds`); each is counted once: an observation is
//!   identified by its `id` path (or, without one, by its whole element) and
//!   counted the first time it is seen; the collector remembers the
//!   identities present in the last response, so an element that stays in
//!   a sliding window, or a response reused from the cache, is not counted
//!   again. A `null` value is "not yet observed" (an incident not yet
//!   acknowledged): it is counted when it gets a value. `_count` and `_sum`
//!   (and `_bucket`) are cumulative since start-up; no quantiles.
//!
//! Evaluation is all or nothing: any error fails the cycle and leaves the
//! state as it was.
//!
//! The state is bounded whatever the responses: a delta counter whose
//! labels disappear from the response is dropped (it restarts, as a counter
//! reset, if they come back); observation counts of label sets that left
//! the response are kept until a metric has more than
//! [`MAX_OBSERVED_LABEL_SETS`] of them, then only the current ones stay.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;

use serde_json::Value;

use super::path::{type_name, Path};
use super::spec::{Kind, MetricSpec, Source};
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

/// One element of a response: the node labels are read from, and the value.
struct Element<'v> {
    node: &'v Value,
    value: &'v Value,
}

fn elements<'v>(path: &Path, root: &'v Value) -> Result<Vec<Element<'v>>, String> {
    match path.split_last_wildcard() {
        None => Ok(vec![Element {
            node: root,
            value: path.one(root)?,
        }]),
        Some((head, tail)) => head
            .select(root)?
            .into_iter()
            .map(|node| {
                Ok(Element {
                    node,
                    value: tail.one(node)?,
                })
            })
            .collect(),
    }
}

fn labels_of(spec: &MetricSpec, root: &Value, node: &Value) -> Result<Labels, String> {
    let mut out = Vec::with_capacity(spec.labels.len() + spec.static_labels.len());
    for (name, p) in &spec.labels {
        let v = p.one(if p.rooted { root } else { node })?;
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(format!(
                    "label {name}: path `{p}`: expected a string, number or boolean, found {}",
                    type_name(other)
                ))
            }
        };
        out.push((name.clone(), s));
    }
    out.extend(spec.static_labels.iter().cloned());
    Ok(out)
}

fn one(
    spec: &MetricSpec,
    st: &mut MetricState,
    input: &Inputs<'_>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // (labels, value) for gauges and counters; (labels, value, id) for observations.
    let mut values: Vec<(Labels, Option<f64>, u64)> = Vec::new();
    match &spec.source {
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
        }
        Source::Path { step, path } => {
            let root = input
                .json
                .get(*step)
                .and_then(Option::as_ref)
                .ok_or("the response is not JSON")?;
            for e in elements(path, root)? {
                let labels = labels_of(spec, root, e.node)?;
                let observation = matches!(spec.kind, Kind::Summary | Kind::Histogram(_));
                let value = if observation && e.value.is_null() {
                    None
                } else {
                    Some(
                        spec.format
                            .convert(e.value)
                            .map_err(|err| format!("path `{path}`: {err}"))?,
                    )
                };
                // Identities are for observations only: serialising every
                // element of a gauge's response would double its cost.
                let id = match &spec.id {
                    Some(p) if observation => {
                        let v = p.one(e.node)?;
                        xxhash_rust::xxh3::xxh3_64(v.to_string().as_bytes())
                    }
                    _ if observation => xxhash_rust::xxh3::xxh3_64(e.node.to_string().as_bytes()),
                    _ => 0,
                };
                values.push((labels, value, id));
            }
        }
    }
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
        Kind::Summary | Kind::Histogram(_) => {
            let bounds: &[f64] = match &spec.kind {
                Kind::Histogram(b) => b,
                _ => &[],
            };
            let mut now_seen = HashSet::new();
            if spec.labels.is_empty() {
                st.obs.entry(spec.static_labels.clone()).or_default();
            }
            let mut present: HashSet<Labels> = HashSet::new();
            for (labels, value, id) in values {
                present.insert(labels.clone());
                let Some(v) = value else { continue };
                now_seen.insert(id);
                if st.seen.contains(&id) {
                    continue;
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
            // Counts of label sets that left the response are kept (they
            // are cumulative) until there are too many: then only the
            // label sets of this response stay.
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
    }
    Ok(())
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
