//! The TOML walker: a table consumed key by key, every problem collected
//! with its dotted key path, keys never asked for reported as unknown.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::{Table, Value};

use crate::store::Ttl;

/// What walking a configuration found: every problem (each naming its key)
/// and every warning, collected rather than returned so that all of them are
/// reported at once. Passed as `cx` to each builder.
#[derive(Default)]
pub(super) struct Diagnostics {
    /// Fatal problems: the configuration is refused when there is one.
    pub(super) problems: Vec<String>,
    /// Non-fatal remarks (deprecated keys, risky settings), logged.
    pub(super) warnings: Vec<String>,
    /// Directory relative file names are taken from.
    pub(super) dir: PathBuf,
}

/// A TOML table being consumed key by key; the keys never asked for are
/// reported as unknown by [`Section::finish`].
pub(super) struct Section<'t> {
    pub(super) path: String,
    pub(super) table: Option<&'t Table>,
    pub(super) used: BTreeSet<&'static str>,
}

impl<'t> Section<'t> {
    pub(super) fn root(table: &'t Table) -> Self {
        Section {
            path: String::new(),
            table: Some(table),
            used: BTreeSet::new(),
        }
    }

    pub(super) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn present(&self) -> bool {
        self.table.is_some()
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.table.is_some_and(|t| t.contains_key(key))
    }

    pub(super) fn raw(&mut self, key: &'static str) -> Option<&'t Value> {
        self.used.insert(key);
        self.table.and_then(|t| t.get(key))
    }

    pub(super) fn sub(&mut self, key: &'static str, cx: &mut Diagnostics) -> Section<'t> {
        let path = self.key_path(key);
        let table = match self.raw(key) {
            None => None,
            Some(Value::Table(t)) => Some(t),
            Some(other) => {
                cx.problems.push(format!(
                    "`{path}`: expected a table, found {}",
                    other.type_str()
                ));
                None
            }
        };
        Section {
            path,
            table,
            used: BTreeSet::new(),
        }
    }

    pub(super) fn get<T>(
        &mut self,
        key: &'static str,
        cx: &mut Diagnostics,
        conv: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.raw(key)?;
        match conv(v) {
            Ok(t) => Some(t),
            Err(msg) => {
                cx.problems.push(format!("`{}`: {msg}", self.key_path(key)));
                None
            }
        }
    }

    pub(super) fn bool(&mut self, key: &'static str, cx: &mut Diagnostics) -> Option<bool> {
        self.get(key, cx, |v| {
            v.as_bool().ok_or_else(|| expected("a boolean", v))
        })
    }

    pub(super) fn string(&mut self, key: &'static str, cx: &mut Diagnostics) -> Option<String> {
        self.get(key, cx, |v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| expected("a string", v))
        })
    }

    pub(super) fn int(
        &mut self,
        key: &'static str,
        cx: &mut Diagnostics,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        self.get(key, cx, |v| {
            let n = v.as_integer().ok_or_else(|| expected("an integer", v))?;
            u64::try_from(n)
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("expected an integer from {min} to {max}, found {n}"))
        })
    }

    pub(super) fn addr(&mut self, key: &'static str, cx: &mut Diagnostics) -> Option<SocketAddr> {
        self.get(key, cx, |v| {
            let s = v.as_str().ok_or_else(|| expected("an address string", v))?;
            s.parse::<SocketAddr>().map_err(|_| {
                format!("expected an IP address and port such as \"127.0.0.1:6554\" or \"[::1]:6554\", found {s:?}")
            })
        })
    }

    /// A duration: integer seconds (as the original) or a string such as
    /// `"500ms"`, `"30s"`, `"1h30m"`.
    pub(super) fn duration(
        &mut self,
        key: &'static str,
        cx: &mut Diagnostics,
        allow_zero: bool,
    ) -> Option<Duration> {
        self.get(key, cx, |v| {
            let d = match v {
                Value::Integer(n) if *n >= 0 => Duration::from_secs(*n as u64),
                Value::String(s) => humantime::parse_duration(s).map_err(|e| {
                    format!("expected a duration such as \"30s\" or \"1m30s\", found {s:?} ({e})")
                })?,
                other => {
                    return Err(expected(
                        "seconds or a duration string such as \"30s\"",
                        other,
                    ))
                }
            };
            if d.is_zero() && !allow_zero {
                return Err("must be greater than zero".to_owned());
            }
            Ok(d)
        })
    }

    /// A TTL: `"never"`, integer seconds (> 0) or a duration string.
    pub(super) fn ttl(&mut self, key: &'static str, cx: &mut Diagnostics) -> Option<Ttl> {
        self.get(key, cx, |v| match v {
            Value::Integer(n) if *n > 0 => Ok(Ttl::After(Duration::from_secs(*n as u64))),
            Value::Integer(_) => {
                Err("expected a positive number of seconds, or \"never\"".to_owned())
            }
            Value::String(s) => Ttl::parse(s),
            other => Err(expected(
                "\"never\", seconds or a duration string such as \"5m\"",
                other,
            )),
        })
    }

    pub(super) fn size(&mut self, key: &'static str, cx: &mut Diagnostics) -> Option<u64> {
        self.get(key, cx, |v| {
            let n = match v {
                Value::Integer(n) if *n > 0 => *n as u64,
                Value::String(s) => parse_size(s)?,
                other => {
                    return Err(expected(
                        "a positive byte count or a size such as \"16MiB\"",
                        other,
                    ))
                }
            };
            if n == 0 {
                return Err("must be greater than zero".to_owned());
            }
            Ok(n)
        })
    }

    pub(super) fn mode(&mut self, key: &'static str, cx: &mut Diagnostics) -> Option<u32> {
        self.get(key, cx, |v| {
            let n = match v {
                Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
                    .map_err(|_| format!("expected an octal mode such as \"0660\", found {s:?}"))?,
                Value::Integer(n) => u32::try_from(*n).map_err(|_| format!("invalid mode {n}"))?,
                other => return Err(expected("an octal mode string such as \"0660\"", other)),
            };
            if n > 0o777 {
                return Err(format!("mode {n:o} has bits beyond 0777"));
            }
            Ok(n)
        })
    }

    /// Reports every key that no one asked for.
    pub(super) fn finish(self, cx: &mut Diagnostics) {
        let Some(t) = self.table else { return };
        for key in t.keys() {
            if !self.used.contains(key.as_str()) {
                cx.problems
                    .push(format!("`{}`: unknown key", self.key_path(key)));
            }
        }
    }
}

pub(super) fn expected(what: &str, v: &Value) -> String {
    format!("expected {what}, found {}", v.type_str())
}

pub(super) use crate::units::parse_size;

/// A list of CIDR networks (the `allowed_networks` keys).
pub(super) fn networks(v: &Value) -> Result<crate::netacl::AllowedNetworks, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| expected("an array of networks such as [\"127.0.0.0/8\"]", v))?;
    let entries = arr
        .iter()
        .enumerate()
        .map(|(i, e)| {
            e.as_str()
                .ok_or_else(|| format!("element {i}: {}", expected("a string", e)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    crate::netacl::AllowedNetworks::parse(&entries)
}
