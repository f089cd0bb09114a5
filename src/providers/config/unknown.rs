//! Keys the schema does not know, sorted before validation.
//!
//! The original ignored unknown keys at the top level, in `service` and
//! under `identifiers` (a provider it does not have), so a file written for
//! it may carry some: those are warnings and are dropped. A key that looks
//! like a misspelling of a known one (`servce`, `user_agent`, `Vulrt`) is
//! an error naming the key it resembles, since ignoring it would silently
//! drop what the user meant. Inside an identifier the original refused any
//! unknown key (its constructor raised), so those stay errors, with the
//! same hint.

use serde_json::Value;

/// Known top-level keys.
const TOP: [&str; 2] = ["service", "identifiers"];
/// Known `service` keys.
const SERVICE: [&str; 3] = ["metric_name", "messages", "user_agents"];
/// Known identifier keys.
const ITEM: [&str; 11] = [
    "identifier",
    "password",
    "password_file",
    "password_env",
    "labels",
    "tls_verify",
    "poll_interval",
    "disabled",
    "base_url",
    "ca_file",
    "command",
];

/// Drops the ignorable unknown keys of `doc` (each one a warning) and
/// reports the misspelled and the refused ones as problems.
pub fn sift(doc: &mut Value, problems: &mut Vec<String>, warnings: &mut Vec<String>) {
    level(doc, "", &TOP, true, problems, warnings);
    if let Some(service) = doc.get_mut("service") {
        level(service, "/service", &SERVICE, true, problems, warnings);
    }
    let providers: Vec<&str> = crate::providers::all().iter().map(|p| p.name()).collect();
    if let Some(ids) = doc.get_mut("identifiers") {
        level(ids, "/identifiers", &providers, true, problems, warnings);
        if let Some(map) = ids.as_object_mut() {
            for (provider, list) in map.iter_mut() {
                let Some(items) = list.as_array_mut() else {
                    continue;
                };
                for (i, item) in items.iter_mut().enumerate() {
                    let path = format!("/identifiers/{provider}/{i}");
                    level(item, &path, &ITEM, false, problems, warnings);
                }
            }
        }
    }
}

/// One mapping: unknown keys are dropped; misspellings, and every unknown
/// key where `ignorable` is false, become problems.
fn level(
    v: &mut Value,
    path: &str,
    known: &[&str],
    ignorable: bool,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let Some(map) = v.as_object_mut() else {
        return;
    };
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        map.remove(&key);
        let at = format!("`{path}/{key}`");
        match resembles(&key, known) {
            Some(k) => problems.push(format!(
                "{at}: unknown key, probably a misspelling of `{k}`: expected `{k}`"
            )),
            None if ignorable => warnings.push(format!(
                "{at}: unknown key ignored (the original ssp-exporter ignored it too)"
            )),
            None => problems.push(format!(
                "{at}: unknown key: expected one of {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The known key `key` is probably a misspelling of, if any: the same
/// letters ignoring case, `_` and `-`; one a prefix of the other (at least
/// four letters); or at most two edits apart (one for short keys).
pub fn resembles<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let k = norm(key);
    known.iter().copied().find(|cand| {
        let c = norm(cand);
        let short = k.chars().count().min(c.chars().count());
        k == c
            || (short >= 4 && (c.starts_with(&k) || k.starts_with(&c)))
            || distance(&k, &c) <= if short >= 5 { 2 } else { 1 }
    })
}

/// Optimal string alignment distance (edits with adjacent transpositions).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}
