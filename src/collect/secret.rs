//! Where a collector's secret is read from: the whole of a file or an
//! environment variable ([`SecretSource`]), or one key of a dotenv-style
//! file (`KEY="value"` lines, as collectington's secret file):
//!
//! ```text
//! # comments and blank lines are ignored
//! API_KEY="abc"          # double quotes: \" \\ \n escapes
//! export API_ID=xyz      # `export` and unquoted values are accepted
//! TOKEN='single quoted'
//! ```
//!
//! Errors name the file, the key and the line, never a value.

use std::path::{Path, PathBuf};

use crate::secret::{Secret, SecretSource};

/// Longest secret file read, so a wrong path (a log file) is refused quickly.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// A secret's location. `Debug` shows where, never what.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSpec {
    /// A whole file (trimmed) or an environment variable.
    Whole(SecretSource),
    /// One key of a `KEY="value"` file.
    Key {
        /// The file.
        file: PathBuf,
        /// The key.
        key: String,
    },
}

impl SecretSpec {
    /// Reads the secret (at every use: files may be rotated).
    pub fn read(&self) -> Result<Secret, String> {
        match self {
            SecretSpec::Whole(s) => s.read(),
            SecretSpec::Key { file, key } => {
                let text = read_bounded(file)?;
                let value = dotenv_value(&text, key)
                    .map_err(|e| format!("secret file {}: {e}", file.display()))?
                    .ok_or_else(|| format!("secret file {} has no key {key}", file.display()))?;
                if value.is_empty() {
                    return Err(format!(
                        "secret file {}: key {key} is empty",
                        file.display()
                    ));
                }
                Ok(Secret::new(value))
            }
        }
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "secret file {} is larger than {MAX_FILE_BYTES} bytes",
            path.display()
        ));
    }
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))
}

/// The value of `key` in a dotenv text (the last one when repeated, as
/// shells do); `Err` for a malformed line, naming its number only.
pub fn dotenv_value(text: &str, key: &str) -> Result<Option<String>, String> {
    let mut found = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let bad = || format!("line {}: expected KEY=value or KEY=\"value\"", i + 1);
        let (k, v) = line.split_once('=').ok_or_else(bad)?;
        let k = k.trim();
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(bad());
        }
        let v = unquote(v.trim()).ok_or_else(bad)?;
        if k == key {
            found = Some(v);
        }
    }
    Ok(found)
}

fn unquote(v: &str) -> Option<String> {
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    c => out.push(c),
                },
                c => out.push(c),
            }
        }
        let tail = chars.as_str().trim();
        (tail.is_empty() || tail.starts_with('#')).then_some(out)
    } else if let Some(rest) = v.strip_prefix('\'') {
        let end = rest.find('\'')?;
        let tail = rest[end + 1..].trim();
        (tail.is_empty() || tail.starts_with('#')).then(|| rest[..end].to_owned())
    } else {
        let v = match v.find(" #") {
            Some(i) => &v[..i],
            None => v,
        };
        Some(v.trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_files_are_read_by_key() {
        let text = "# collectington's splunk file\nAPI_KEY=\"k\\\"ey\"  # quoted\n\nexport API_ID=the-id\nT='a b'\nE=\n";
        assert_eq!(dotenv_value(text, "API_KEY"), Ok(Some("k\"ey".to_owned())));
        assert_eq!(dotenv_value(text, "API_ID"), Ok(Some("the-id".to_owned())));
        assert_eq!(dotenv_value(text, "T"), Ok(Some("a b".to_owned())));
        assert_eq!(dotenv_value(text, "NOPE"), Ok(None));
        let err = dotenv_value("A=1\nsecret-value-without-key\n", "A").unwrap_err();
        assert_eq!(err, "line 2: expected KEY=value or KEY=\"value\"");
        assert!(dotenv_value("A=\"unterminated\n", "A").is_err());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("splunk");
        std::fs::write(&path, text).unwrap();
        let spec = |key: &str| SecretSpec::Key {
            file: path.clone(),
            key: key.to_owned(),
        };
        assert_eq!(spec("API_ID").read().unwrap().expose(), "the-id");
        let err = spec("NOPE").read().unwrap_err();
        assert!(err.ends_with("has no key NOPE"), "{err}");
        let err = spec("E").read().unwrap_err();
        assert!(err.contains("key E is empty"), "{err}");
        // Debug: where, never what.
        let dbg = format!("{:?} {:?}", spec("API_KEY"), spec("API_KEY").read());
        assert!(
            dbg.contains("API_KEY") && !dbg.contains("k\\\"ey") && !dbg.contains("k\"ey"),
            "{dbg}"
        );
    }
}
