//! Value paths into a JSON response.
//!
//! Two spellings are accepted:
//!
//! * a JSON pointer (RFC 6901), starting with `/`: `/account/balance`,
//!   `/items/0/value` (`~1` is `/`, `~0` is `~`);
//! * a small dotted syntax: `account.balance`, `items[0].value`,
//!   `["key.with.dots"]`, and the wildcard `[*]` (every element of an array,
//!   or every value of an object): `teams[*].open`. A leading `$` means the
//!   root of the response (`$.total`), which matters for label paths, which
//!   are otherwise relative to the element matched by the value path's last
//!   wildcard.
//!
//! Paths are parsed once, when the configuration is loaded; evaluating one
//! that does not match is an error naming the path and where it broke.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
    /// Every element of an array (or value of an object).
    Wildcard,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    text: String,
    /// Starts at the root (`$`) even when evaluated relative to an element.
    pub rooted: bool,
    segments: Vec<Segment>,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Path {
    /// Parses a JSON pointer or a dotted path.
    pub fn parse(s: &str) -> Result<Path, String> {
        let segments = if s.is_empty() {
            Vec::new()
        } else if let Some(rest) = s.strip_prefix('/') {
            rest.split('/')
                .map(|p| {
                    let p = p.replace("~1", "/").replace("~0", "~");
                    match p.parse::<usize>() {
                        Ok(i) if p == i.to_string() => Segment::Index(i),
                        _ => Segment::Key(p),
                    }
                })
                .collect()
        } else {
            return parse_dotted(s).map(|(rooted, segments)| Path {
                text: s.to_owned(),
                rooted,
                segments,
            });
        };
        Ok(Path {
            text: s.to_owned(),
            rooted: false,
            segments,
        })
    }

    /// The text as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the path has a wildcard.
    pub fn has_wildcard(&self) -> bool {
        self.segments.contains(&Segment::Wildcard)
    }

    /// Every value the path selects. Zero values only when a wildcard met an
    /// empty array; a missing key, an index out of range or a step into a
    /// scalar is an error.
    pub fn select<'v>(&self, root: &'v Value) -> Result<Vec<&'v Value>, String> {
        self.select_at(root, "")
            .map(|v| v.into_iter().map(|(_, x)| x).collect())
            .map_err(|e| e.message)
    }

    /// Like [`Path::select`], each value with its concrete location (array
    /// indices filled in), `base` being the location of `root` (empty: the
    /// response's root). The error says whether the value is missing (a
    /// key absent, an index out of range, a `null` on the way) or of the
    /// wrong type, and names the exact location.
    pub fn select_at<'v>(
        &self,
        root: &'v Value,
        base: &str,
    ) -> Result<Vec<(String, &'v Value)>, PathError> {
        let mut cur = vec![(base.to_owned(), root)];
        for seg in &self.segments {
            let mut next = Vec::with_capacity(cur.len());
            for (loc, v) in cur {
                let at = || {
                    if loc.is_empty() {
                        "the root".to_owned()
                    } else {
                        format!("`{loc}`")
                    }
                };
                let missing = |message: String| PathError {
                    missing: true,
                    message,
                };
                match (seg, v) {
                    (Segment::Key(k), Value::Object(m)) => match m.get(k) {
                        Some(x) => next.push((join_key(&loc, k), x)),
                        None => {
                            return Err(missing(format!(
                                "path `{self}`: no key {k:?} at {}",
                                at()
                            )));
                        }
                    },
                    (Segment::Index(n), Value::Array(a)) => match a.get(*n) {
                        Some(x) => next.push((format!("{loc}[{n}]"), x)),
                        None => {
                            return Err(missing(format!(
                                "path `{self}`: index {n} is out of range at {} (length {})",
                                at(),
                                a.len()
                            )));
                        }
                    },
                    (Segment::Wildcard, Value::Array(a)) => next.extend(
                        a.iter()
                            .enumerate()
                            .map(|(i, x)| (format!("{loc}[{i}]"), x)),
                    ),
                    (Segment::Wildcard, Value::Object(m)) => {
                        next.extend(m.iter().map(|(k, x)| (join_key(&loc, k), x)))
                    }
                    (_, other) => {
                        let message = format!(
                            "path `{self}`: expected {} at {}, found {}",
                            match seg {
                                Segment::Key(_) => "an object",
                                Segment::Index(_) => "an array",
                                Segment::Wildcard => "an array or object",
                            },
                            at(),
                            type_name(other)
                        );
                        return Err(PathError {
                            missing: other.is_null(),
                            message,
                        });
                    }
                }
            }
            cur = next;
        }
        Ok(cur)
    }

    /// The single value selected by a path without wildcard.
    pub fn one<'v>(&self, root: &'v Value) -> Result<&'v Value, String> {
        self.one_at(root, "").map(|(_, v)| v).map_err(|e| e.message)
    }

    /// [`Path::one_at`] without the location, which only the error builds:
    /// a path without wildcard is walked by reference (no location strings,
    /// no vectors per element of a large response).
    pub fn value_at<'v>(&self, root: &'v Value, base: &str) -> Result<&'v Value, PathError> {
        let mut v = root;
        for seg in &self.segments {
            let next = match (seg, v) {
                (Segment::Key(k), Value::Object(m)) => m.get(k),
                (Segment::Index(n), Value::Array(a)) => a.get(*n),
                _ => None,
            };
            match next {
                Some(x) => v = x,
                // The slow path names what is wrong, and where.
                None => return self.one_at(root, base).map(|(_, v)| v),
            }
        }
        Ok(v)
    }

    /// Where a path without wildcard leads from `base` (as [`Path::one_at`]
    /// names it), built in one string.
    pub fn location(&self, base: &str) -> String {
        let mut loc = base.to_owned();
        for seg in &self.segments {
            loc = match seg {
                Segment::Key(k) => join_key(&loc, k),
                Segment::Index(n) => format!("{loc}[{n}]"),
                Segment::Wildcard => format!("{loc}[*]"),
            };
        }
        loc
    }

    /// [`Path::one`] with the location, relative to `base`.
    pub fn one_at<'v>(
        &self,
        root: &'v Value,
        base: &str,
    ) -> Result<(String, &'v Value), PathError> {
        let mut all = self.select_at(root, base)?;
        match all.len() {
            1 => Ok(all.remove(0)),
            n => Err(PathError {
                missing: n == 0,
                message: format!("path `{self}`: expected one value, found {n}"),
            }),
        }
    }

    /// Splits at the last wildcard: the path of the elements (ending with
    /// the wildcard) and the path of the value inside each element. `None`
    /// when there is no wildcard.
    pub fn split_last_wildcard(&self) -> Option<(Path, Path)> {
        let i = self
            .segments
            .iter()
            .rposition(|s| *s == Segment::Wildcard)?;
        let head = Path {
            text: self.text.clone(),
            rooted: self.rooted,
            segments: self.segments[..=i].to_vec(),
        };
        let tail = Path {
            text: self.text.clone(),
            rooted: false,
            segments: self.segments[i + 1..].to_vec(),
        };
        Some((head, tail))
    }
}

/// A path that does not match.
#[derive(Debug, Clone, PartialEq)]
pub struct PathError {
    /// The value is missing (rather than of the wrong type).
    pub missing: bool,
    /// What happened, naming the path and the exact location.
    pub message: String,
}

/// `loc.key`, or `loc["key"]` when the key is not a plain name.
fn join_key(loc: &str, k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && k != "*";
    match (plain, loc.is_empty()) {
        (true, true) => k.to_owned(),
        (true, false) => format!("{loc}.{k}"),
        (false, _) => format!("{loc}[{k:?}]"),
    }
}

/// The JSON type of a value, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_dotted(s: &str) -> Result<(bool, Vec<Segment>), String> {
    let err = |pos: usize, what: &str| format!("invalid path {s:?} at byte {pos}: {what}");
    let b = s.as_bytes();
    let mut i = 0;
    let mut rooted = false;
    if b.first() == Some(&b'$') {
        rooted = true;
        i = 1;
        if i < b.len() && b[i] == b'.' {
            i += 1;
        }
    }
    let mut out = Vec::new();
    // Whether a `.` is needed before the next name.
    let mut need_dot = false;
    while i < b.len() {
        match b[i] {
            b'[' => {
                let close = s[i..]
                    .find(']')
                    .map(|j| i + j)
                    .ok_or_else(|| err(i, "`[` without `]`"))?;
                let inner = &s[i + 1..close];
                if inner == "*" {
                    out.push(Segment::Wildcard);
                } else if let Some(q) = inner
                    .strip_prefix('"')
                    .and_then(|r| r.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
                {
                    out.push(Segment::Key(q.to_owned()));
                } else if let Ok(n) = inner.parse::<usize>() {
                    out.push(Segment::Index(n));
                } else {
                    return Err(err(
                        i,
                        "expected [*], [<index>] or [\"key\"] between brackets",
                    ));
                }
                i = close + 1;
                need_dot = true;
            }
            b'.' if need_dot => {
                i += 1;
                need_dot = false;
                if i >= b.len() || b[i] == b'.' {
                    return Err(err(i, "empty key"));
                }
            }
            b'.' => return Err(err(i, "empty key")),
            _ if need_dot => return Err(err(i, "expected `.` or `[`")),
            _ => {
                let end = s[i..]
                    .find(['.', '[', ']', '"', '\''])
                    .map_or(s.len(), |j| i + j);
                if end == i {
                    return Err(err(i, "unexpected character"));
                }
                let name = &s[i..end];
                if name == "*" {
                    out.push(Segment::Wildcard);
                } else {
                    out.push(Segment::Key(name.to_owned()));
                }
                i = end;
                need_dot = true;
            }
        }
    }
    Ok((rooted, out))
}
