//! Secrets: where one comes from, and the value itself.
//!
//! A [`SecretSource`] (a file or an environment variable) is what the
//! configuration keeps; [`SecretSource::read`] reads the secret when it is
//! used, so a rotated token file takes effect at the next use. A [`Secret`]
//! never shows its value in `Debug`. Leaf module: no other module of the
//! crate is imported.

use std::fmt;
use std::path::PathBuf;

/// Where a secret is read from. Only the location is kept in the config,
/// so `Debug` shows no secret.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    /// A file; surrounding whitespace is trimmed.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// A secret value: never printed, `Debug` shows `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Secret {
    /// Wraps a secret read from elsewhere (a provider file).
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The secret itself, for use (never for logging).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Longest secret file read, so a wrong path (a log file) is refused quickly.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

impl SecretSource {
    /// Reads the secret. The error names the file or variable, never the value.
    pub fn read(&self) -> Result<Secret, String> {
        match self {
            SecretSource::File(path) => {
                let meta = std::fs::metadata(path)
                    .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
                if meta.len() > MAX_SECRET_BYTES {
                    return Err(format!(
                        "secret file {} is larger than {MAX_SECRET_BYTES} bytes",
                        path.display()
                    ));
                }
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
                let t = text.trim();
                if t.is_empty() {
                    return Err(format!("secret file {} is empty", path.display()));
                }
                Ok(Secret(t.to_owned()))
            }
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim().to_owned())),
                Ok(_) => Err(format!("environment variable {var} is empty")),
                Err(_) => Err(format!("environment variable {var} is not set")),
            },
        }
    }
}
