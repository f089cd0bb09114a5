//! Turning a JSON value (or an extracted string) into a sample value.
//!
//! In order: the value map (`map = { active = 1, suspended = 0 }`, matched
//! against the string form of the value), then numbers as they are,
//! booleans as 1 and 0, strings parsed as numbers, then `scale`.
//!
//! Strings: surrounding text that is not part of a number is ignored
//! (`"12,50 EUR"`, `"$ 1,234.50"`); the decimal separator is `.` unless
//! `decimal = ","`; the other of `.` and `,`, spaces and `'` are accepted as
//! thousands separators only between groups of three digits, so `"1,5"`
//! with `decimal = "."` is an error (set `decimal = ","`), never 15.

use serde_json::Value;

use super::path::type_name;

/// How a value becomes a number.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberFormat {
    /// `,` instead of `.` as decimal separator.
    pub decimal_comma: bool,
    /// String value → number, tried first.
    pub map: Vec<(String, f64)>,
    /// Multiplier applied last.
    pub scale: f64,
}

impl Default for NumberFormat {
    fn default() -> Self {
        NumberFormat {
            decimal_comma: false,
            map: Vec::new(),
            scale: 1.0,
        }
    }
}

impl NumberFormat {
    /// Converts a JSON value.
    pub fn convert(&self, v: &Value) -> Result<f64, String> {
        let key = match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        if let Some(k) = key {
            if let Some((_, n)) = self.map.iter().find(|(m, _)| *m == k) {
                return Ok(n * self.scale);
            }
        }
        let n = match v {
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| format!("{n} is not representable as a float"))?,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::String(s) => self.parse_text(s)?,
            other => {
                return Err(format!(
                    "expected a number, a numeric string or a boolean, found {}",
                    type_name(other)
                ))
            }
        };
        Ok(n * self.scale)
    }

    /// Converts an extracted string.
    pub fn convert_str(&self, s: &str) -> Result<f64, String> {
        self.convert(&Value::String(s.to_owned()))
    }

    fn parse_text(&self, s: &str) -> Result<f64, String> {
        let fail = || {
            if self.map.is_empty() {
                format!("{s:?} is not a number")
            } else {
                format!("{s:?} is not a number nor a key of `map`")
            }
        };
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "true" => return Ok(1.0),
            "false" => return Ok(0.0),
            _ => {}
        }
        let (dec, thousands) = if self.decimal_comma {
            (',', '.')
        } else {
            ('.', ',')
        };
        let numeric = |c: char| c.is_ascii_digit() || c == '.' || c == ',';
        let start = t.find(|c: char| c.is_ascii_digit()).ok_or_else(fail)?;
        let end = t.rfind(|c: char| c.is_ascii_digit()).ok_or_else(fail)? + 1;
        let body = &t[start..end];
        // A sign right before the digits (possibly after a currency sign).
        let negative = t[..start].trim_end().ends_with('-');
        if t[..start].chars().any(numeric) {
            return Err(fail());
        }
        let (int_part, frac) = match body.rfind(dec) {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        if frac.is_some_and(|f| !f.chars().all(|c| c.is_ascii_digit())) {
            return Err(fail());
        }
        let groups: Vec<&str> = int_part.split([thousands, ' ', '\'', '\u{a0}']).collect();
        let digits = |g: &str| !g.is_empty() && g.chars().all(|c| c.is_ascii_digit());
        let grouped = groups.len() > 1;
        if !groups.iter().all(|g| digits(g))
            || (grouped && (groups[0].len() > 3 || groups[1..].iter().any(|g| g.len() != 3)))
        {
            return Err(if grouped && !self.decimal_comma {
                format!("{s:?} is not a number with `.` as decimal separator (set decimal = \",\" for comma decimals)")
            } else {
                fail()
            });
        }
        let mut text = String::with_capacity(body.len() + 1);
        if negative {
            text.push('-');
        }
        text.push_str(&groups.concat());
        if let Some(f) = frac {
            text.push('.');
            text.push_str(f);
        }
        text.parse::<f64>().map_err(|_| fail())
    }
}
