//! YAML as the original ssp-exporter read it: PyYAML's `full_load`, whose
//! plain scalars follow YAML 1.1 (`0123` is octal 83, `0891` a string,
//! `yes`/`off` booleans, `1_000` and `30:00` integers, `1e5` a string),
//! while keeping the exact text of every scalar.
//!
//! A provider file is loaded into a [`Node`] tree; [`Node::to_value`] gives
//! the document typed as PyYAML would (what the schema checks and what the
//! original sent in JSON bodies) and [`Node::scalars`] the text as written
//! (what logins, labels and form fields use). Pure: no IO.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use granit_parser::{Event, Parser, ScalarStyle};
use regex::Regex;
use serde_json::{Map, Number, Value};

/// Most nodes a document may expand to (aliases copy their anchor's
/// node): a provider file has a few hundred; this stops alias bombs.
const MAX_NODES: usize = 100_000;

/// How a scalar was written: its text and whether it was plain (unquoted,
/// untagged), i.e. typed by the YAML 1.1 rules.
#[derive(Clone, PartialEq, Eq)]
pub struct Written {
    /// The scalar's text after YAML escape processing.
    pub text: String,
    /// Plain: typed by [`resolve`]; otherwise a string.
    pub plain: bool,
}

impl std::fmt::Debug for Written {
    /// The text may be a password: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Written")
            .field("plain", &self.plain)
            .finish_non_exhaustive()
    }
}

impl Written {
    /// The value PyYAML would have given this scalar.
    pub fn typed(&self) -> Typed {
        if self.plain {
            resolve(&self.text)
        } else {
            Typed::Str(self.text.clone())
        }
    }
}

/// A scalar typed as PyYAML types it.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    /// `~`, `null`, empty.
    Null,
    /// `yes`, `No`, `on`, `OFF`, `true`, `False`...
    Bool(bool),
    /// An integer of any size, in canonical decimal (`-83`).
    Int(String),
    /// A float (`.5`, `1.0e+3`, `1:30.5`, `.inf`).
    Float(f64),
    /// Anything else, including dates (the original could not send those
    /// in JSON at all).
    Str(String),
}

impl Typed {
    /// As a JSON value; an integer beyond 64 bits and a non-finite float,
    /// which JSON values cannot hold, are approximated or kept as text.
    pub fn to_value(&self) -> Value {
        match self {
            Typed::Null => Value::Null,
            Typed::Bool(b) => Value::Bool(*b),
            Typed::Int(d) => d
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| d.parse::<u64>().map(Value::from))
                .unwrap_or_else(|_| {
                    d.parse::<f64>()
                        .ok()
                        .and_then(Number::from_f64)
                        .map_or_else(|| Value::String(d.clone()), Value::Number)
                }),
            Typed::Float(f) => {
                Number::from_f64(*f).map_or_else(|| Value::String(float_repr(*f)), Value::Number)
            }
            Typed::Str(s) => Value::String(s.clone()),
        }
    }
}

/// A YAML node with the text of its scalars.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A scalar.
    Scalar(Written),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with string keys, in file order.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The document typed as PyYAML would have typed it.
    pub fn to_value(&self) -> Value {
        match self {
            Node::Scalar(w) => w.typed().to_value(),
            Node::Seq(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }

    /// Every scalar by its JSON pointer (`/identifiers/Vultr/0/password`).
    pub fn scalars(&self) -> BTreeMap<String, Written> {
        let mut out = BTreeMap::new();
        collect(self, &mut String::new(), &mut out);
        out
    }
}

fn collect(node: &Node, path: &mut String, out: &mut BTreeMap<String, Written>) {
    let len = path.len();
    match node {
        Node::Scalar(w) => {
            out.insert(path.clone(), w.clone());
        }
        Node::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push_str(&format!("/{i}"));
                collect(item, path, out);
                path.truncate(len);
            }
        }
        Node::Map(entries) => {
            for (k, v) in entries {
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                collect(v, path, out);
                path.truncate(len);
            }
        }
    }
}

/// A collection being built.
enum Frame {
    Seq(Vec<Node>, usize),
    /// Entries, the key waiting for its value (and its line), the anchor.
    Map(Vec<(String, Node)>, Option<(String, usize)>, usize),
}

/// Parses a single-document YAML text. Errors name the line.
pub fn load(text: &str) -> Result<Node, String> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: BTreeMap<usize, Node> = BTreeMap::new();
    let mut root: Option<Node> = None;
    let mut nodes = 0usize;
    let mut docs = 0usize;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| e.to_string())?;
        let line = span.start.line();
        let (node, anchor) = match ev {
            Event::DocumentStart(..) => {
                docs += 1;
                if docs > 1 {
                    return Err(format!(
                        "line {line}: a second YAML document: expected exactly one"
                    ));
                }
                continue;
            }
            Event::Scalar(value, style, anchor, tag) => {
                let tagged = tag.as_ref().map(|t| t.suffix().to_owned());
                let plain =
                    style == ScalarStyle::Plain && tagged.as_deref().is_none_or(|t| t != "str");
                (
                    Node::Scalar(Written {
                        text: value.into_owned(),
                        plain,
                    }),
                    anchor,
                )
            }
            Event::SequenceStart(_, anchor, _) => {
                stack.push(Frame::Seq(Vec::new(), anchor));
                continue;
            }
            Event::MappingStart(_, anchor, _) => {
                stack.push(Frame::Map(Vec::new(), None, anchor));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => (Node::Seq(items), anchor),
                _ => return Err(format!("line {line}: unbalanced sequence")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(entries, _, anchor)) => (Node::Map(merge(entries)?), anchor),
                _ => return Err(format!("line {line}: unbalanced mapping")),
            },
            Event::Alias(id) => match anchors.get(&id) {
                Some(n) => {
                    nodes += count(n);
                    (n.clone(), 0)
                }
                None => return Err(format!("line {line}: an alias to an unknown anchor")),
            },
            _ => continue,
        };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(format!(
                "line {line}: more than {MAX_NODES} nodes (aliases included)"
            ));
        }
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        place(&mut stack, &mut root, node, line)?;
    }
    Ok(root.unwrap_or(Node::Scalar(Written {
        text: String::new(),
        plain: true,
    })))
}

/// Puts a finished node into its parent (or makes it the root).
fn place(
    stack: &mut [Frame],
    root: &mut Option<Node>,
    node: Node,
    line: usize,
) -> Result<(), String> {
    match stack.last_mut() {
        None => *root = Some(node),
        Some(Frame::Seq(items, _)) => items.push(node),
        Some(Frame::Map(entries, pending, _)) => match pending.take() {
            None => match node {
                Node::Scalar(w) => *pending = Some((w.text, line)),
                _ => return Err(format!("line {line}: a mapping key must be a scalar")),
            },
            Some((key, key_line)) => {
                if key != "<<" && entries.iter().any(|(k, _)| *k == key) {
                    return Err(format!(
                        "line {key_line}: key `{key}` is written twice in one mapping"
                    ));
                }
                entries.push((key, node));
            }
        },
    }
    Ok(())
}

/// Applies `<<` merge keys: the merged mappings' entries come first and
/// the mapping's own entries win, as in PyYAML.
fn merge(entries: Vec<(String, Node)>) -> Result<Vec<(String, Node)>, String> {
    if !entries.iter().any(|(k, _)| k == "<<") {
        return Ok(entries);
    }
    let mut own = Vec::new();
    let mut merged: Vec<(String, Node)> = Vec::new();
    for (k, v) in entries {
        if k != "<<" {
            own.push((k, v));
            continue;
        }
        let sources = match v {
            Node::Map(m) => vec![m],
            Node::Seq(items) => items
                .into_iter()
                .map(|i| match i {
                    Node::Map(m) => Ok(m),
                    _ => Err("`<<` merges mappings only".to_owned()),
                })
                .collect::<Result<_, _>>()?,
            Node::Scalar(_) => return Err("`<<` merges mappings only".to_owned()),
        };
        for src in sources {
            for (k, v) in src {
                if !merged.iter().any(|(m, _)| *m == k) {
                    merged.push((k, v));
                }
            }
        }
    }
    merged.retain(|(k, _)| !own.iter().any(|(o, _)| o == k));
    merged.extend(own);
    Ok(merged)
}

fn count(n: &Node) -> usize {
    match n {
        Node::Scalar(_) => 1,
        Node::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Node::Map(entries) => 1 + entries.iter().map(|(_, v)| count(v)).sum::<usize>(),
    }
}

// PyYAML's implicit resolvers (resolver.py), anchored like its `match`.
static BOOL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
        .expect("valid")
});
static INT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    )
    .expect("valid")
});
static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    )
    .expect("valid")
});
static NULL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:~|null|Null|NULL|)$").expect("valid"));

/// A plain scalar typed as PyYAML 1.1 types it (bool, float, int, null,
/// else string; a value PyYAML would fail to construct stays a string).
pub fn resolve(text: &str) -> Typed {
    if BOOL.is_match(text) {
        let t = text.to_ascii_lowercase();
        return Typed::Bool(matches!(t.as_str(), "yes" | "true" | "on"));
    }
    if FLOAT.is_match(text) {
        if let Some(f) = float(text) {
            return Typed::Float(f);
        }
    }
    if INT.is_match(text) {
        if let Some(i) = int(text) {
            return Typed::Int(i);
        }
    }
    if NULL.is_match(text) {
        return Typed::Null;
    }
    Typed::Str(text.to_owned())
}

/// PyYAML's `construct_yaml_int`, as canonical decimal text.
fn int(text: &str) -> Option<String> {
    let v = text.replace('_', "");
    let (neg, v) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v.as_str()),
    };
    let magnitude: String = if v == "0" {
        "0".to_owned()
    } else if let Some(b) = v.strip_prefix("0b") {
        u128::from_str_radix(b, 2).ok()?.to_string()
    } else if let Some(h) = v.strip_prefix("0x") {
        u128::from_str_radix(h, 16).ok()?.to_string()
    } else if v.starts_with('0') {
        u128::from_str_radix(v, 8).ok()?.to_string()
    } else if v.contains(':') {
        let mut total: u128 = 0;
        for part in v.split(':') {
            total = total
                .checked_mul(60)?
                .checked_add(part.parse::<u128>().ok()?)?;
        }
        total.to_string()
    } else {
        // Decimal: any length, kept digit for digit.
        v.to_owned()
    };
    Some(if neg && magnitude != "0" {
        format!("-{magnitude}")
    } else {
        magnitude
    })
}

/// PyYAML's `construct_yaml_float`.
fn float(text: &str) -> Option<f64> {
    let v = text.replace('_', "").to_ascii_lowercase();
    let (sign, v) = match v.as_bytes().first() {
        Some(b'-') => (-1.0, &v[1..]),
        Some(b'+') => (1.0, &v[1..]),
        _ => (1.0, v.as_str()),
    };
    if v == ".inf" {
        return Some(sign * f64::INFINITY);
    }
    if v == ".nan" {
        return Some(f64::NAN);
    }
    let num = |s: &str| -> Option<f64> {
        // Python's float() takes "1." and "1.e+5"; so does this.
        let s = s.replace(".e", ".0e");
        let s = if s.ends_with('.') { format!("{s}0") } else { s };
        s.parse::<f64>().ok()
    };
    if v.contains(':') {
        let mut total = 0.0;
        for part in v.split(':') {
            total = total * 60.0 + num(part)?;
        }
        return Some(sign * total);
    }
    Some(sign * num(v)?)
}

/// Python's `repr` of a float (`891.0`, `1e+16`, `1.5e-05`, `Infinity`
/// as `json.dumps` writes the non-finite ones).
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // The shortest round-trip digits and the decimal exponent.
    let e = format!("{:e}", f.abs());
    let (mantissa, exp) = e.split_once('e').expect("LowerExp has an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let text = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{text}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests;
