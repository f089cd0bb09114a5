//! Time placeholders in requests: `${now}`, `${now-1m}`, `${now+1h}`, with
//! a format after `|`: `rfc3339` (the default, UTC, whole seconds:
//! `2021-11-02T10:00:00Z`), `unix` (seconds) or `unix_ms` (milliseconds).
//! `${now-1m|rfc3339}` is collectington's `startedAfter` ("one minute ago").
//!
//! The time is taken when the request is built, at every cycle.

use chrono::{DateTime, SecondsFormat, Utc};

/// How a time is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// RFC 3339 in UTC, whole seconds.
    Rfc3339,
    /// Unix seconds.
    Unix,
    /// Unix milliseconds.
    UnixMs,
}

/// Now, moved by an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRef {
    /// Milliseconds added to now (negative: in the past).
    pub offset_ms: i64,
    /// Output format.
    pub format: TimeFormat,
}

/// Longest offset: a century is surely a typo already.
const MAX_OFFSET_MS: i64 = 100 * 366 * 24 * 3600 * 1000;

impl TimeRef {
    /// Parses the inside of `${...}` when it starts with `now`; `None`
    /// when it does not.
    pub fn parse(inner: &str) -> Option<Result<TimeRef, String>> {
        let rest = inner.strip_prefix("now")?;
        if !(rest.is_empty() || rest.starts_with(['+', '-', '|'])) {
            return None;
        }
        Some(Self::parse_rest(rest))
    }

    fn parse_rest(rest: &str) -> Result<TimeRef, String> {
        let (offset, format) = rest.split_once('|').unwrap_or((rest, ""));
        let format = match format {
            "" | "rfc3339" => TimeFormat::Rfc3339,
            "unix" => TimeFormat::Unix,
            "unix_ms" => TimeFormat::UnixMs,
            other => {
                return Err(format!(
                    "unknown time format {other:?}: expected rfc3339, unix or unix_ms"
                ))
            }
        };
        let offset_ms = if offset.is_empty() {
            0
        } else {
            let (sign, d) = offset.split_at(1);
            let d = humantime::parse_duration(d.trim()).map_err(|e| {
                format!("expected a duration such as now-1m or now+30s, found now{offset} ({e})")
            })?;
            let ms = i64::try_from(d.as_millis())
                .ok()
                .filter(|ms| *ms <= MAX_OFFSET_MS)
                .ok_or_else(|| format!("the offset {offset} is too large"))?;
            if sign == "-" {
                -ms
            } else {
                ms
            }
        };
        Ok(TimeRef { offset_ms, format })
    }

    /// The time as text, relative to `now`.
    pub fn render(&self, now: DateTime<Utc>) -> String {
        let t = now + chrono::Duration::milliseconds(self.offset_ms);
        match self.format {
            TimeFormat::Rfc3339 => t.to_rfc3339_opts(SecondsFormat::Secs, true),
            TimeFormat::Unix => t.timestamp().to_string(),
            TimeFormat::UnixMs => t.timestamp_millis().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_relative_times() {
        let now = DateTime::parse_from_rfc3339("2021-11-02T10:00:30.250Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = |s: &str| TimeRef::parse(s).unwrap().map(|t| t.render(now));
        assert_eq!(r("now"), Ok("2021-11-02T10:00:30Z".to_owned()));
        assert_eq!(r("now-1m"), Ok("2021-11-02T09:59:30Z".to_owned()));
        assert_eq!(r("now+1h|rfc3339"), Ok("2021-11-02T11:00:30Z".to_owned()));
        assert_eq!(r("now-90s|unix"), Ok("1635847140".to_owned()));
        assert_eq!(r("now|unix_ms"), Ok("1635847230250".to_owned()));
        assert!(r("now-1x").unwrap_err().contains("now-1m"));
        assert!(r("now|iso").unwrap_err().contains("unix_ms"));
        assert!(TimeRef::parse("nowhere").is_none());
        assert!(TimeRef::parse("secret.x").is_none());
    }
}
