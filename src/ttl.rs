//! How long an application's metrics live without a new push. A leaf: the
//! receivers' codec, the config and the store all name it.

use std::time::Duration;

/// How long an application's metrics live without a new push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Kept until replaced or deleted.
    Never,
    /// Removed this long after the last accepted push.
    After(Duration),
}

impl Ttl {
    /// Parses `never` or a duration such as `30s`, `5m`, `1h30m`.
    pub fn parse(s: &str) -> Result<Ttl, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("never") {
            return Ok(Ttl::Never);
        }
        match humantime::parse_duration(s) {
            Ok(d) if d.is_zero() => {
                Err("a TTL of 0 would expire at once; use \"never\" to keep metrics".to_owned())
            }
            Ok(d) => Ok(Ttl::After(d)),
            Err(e) => Err(format!(
                "expected a TTL such as \"5m\" or \"never\", found {s:?} ({e})"
            )),
        }
    }

    /// `never` or the duration in humantime form.
    pub fn describe(self) -> String {
        match self {
            Ttl::Never => "never".to_owned(),
            Ttl::After(d) => humantime::format_duration(d).to_string(),
        }
    }
}
