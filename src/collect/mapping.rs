//! JSON mappings for polled and registered targets: an exporter that
//! serves JSON rather than Prometheus text (the aggregator seed's
//! `{"cpu": 3.5, "throughput": {"bytes_sent": 800}, ...}`) is turned into
//! metrics with the collector metric syntax (`path`, `expr`, `labels`,
//! types, `missing`), declared once as `[[poll.mappings]]` and named by a
//! target's `mapping`.
//!
//! The state that outlives one poll (delta counters, observations) belongs
//! to the target ([`MappingState`]), never to the shared mapping.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::metrics::{evaluate, Inputs, State};
use super::spec::MetricSpec;

/// A named mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonMapping {
    /// Its name (`mapping = "..."`).
    pub name: String,
    /// The metrics read from the body.
    pub metrics: Vec<MetricSpec>,
}

/// One target's evaluation state.
#[derive(Debug, Default)]
pub struct MappingState(std::sync::Mutex<State>);

impl JsonMapping {
    /// Turns a JSON body into exposition text; the state is kept only when
    /// the whole body evaluated.
    pub fn render(&self, body: &str, state: &MappingState) -> Result<String, String> {
        let json: Value = serde_json::from_str(body)
            .map_err(|e| format!("mapping {}: the body is not JSON: {e}", self.name))?;
        let vars = HashMap::new();
        let mut st = state.0.lock().unwrap_or_else(|e| e.into_inner());
        let out = evaluate(
            &self.metrics,
            &st,
            &Inputs {
                json: &[Some(json)],
                vars: &vars,
            },
        )
        .map_err(|e| format!("mapping {}: {e}", self.name))?;
        *st = out.state;
        Ok(out.text)
    }
}

/// Parses `poll.mappings`: a list of `{ name, metrics = [...] }`.
pub fn from_config(v: Option<&toml::Value>, problems: &mut Vec<String>) -> Vec<Arc<JsonMapping>> {
    let Some(v) = v else { return Vec::new() };
    let json = match serde_json::to_value(v) {
        Ok(j) => j,
        Err(e) => {
            problems.push(format!("`poll.mappings`: {e}"));
            return Vec::new();
        }
    };
    let Some(list) = json.as_array() else {
        problems.push("`poll.mappings`: expected a list of tables ([[poll.mappings]])".to_owned());
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, m) in list.iter().enumerate() {
        if let Some((name, metrics)) = super::spec::mapping(m, i, problems) {
            if !seen.insert(name.clone()) {
                problems.push(format!(
                    "mapping {name:?}: `name`: two mappings have this name"
                ));
            }
            out.push(Arc::new(JsonMapping { name, metrics }));
        }
    }
    out
}

/// Finds a mapping by name; the error lists the names there are.
pub fn find(mappings: &[Arc<JsonMapping>], name: &str) -> Result<Arc<JsonMapping>, String> {
    mappings
        .iter()
        .find(|m| m.name == name)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = mappings.iter().map(|m| m.name.as_str()).collect();
            format!(
                "no mapping is named {name:?} (defined in [[poll.mappings]]: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        })
}
