//! The optional snapshot file: pushed apps survive a restart.
//!
//! Layout (version 1), little-endian:
//!
//! ```text
//! magic "EPSNAP\0\n" (8) | version u32 | payload length u64 | CRC-32 of payload u32 | payload
//! ```
//!
//! The payload is JSON: every pushed app (not polled ones, which are
//! fetched again) with its source, push time, TTL and exposition text.
//! Writing is atomic: a temporary file in the same directory, `fsync`,
//! `rename`, then `fsync` of the directory. A failed write is logged and
//! counted and never affects ingestion. At start-up a snapshot that cannot
//! be read (bad magic, unknown version, wrong length or checksum, invalid
//! JSON) is moved aside to `<file>.corrupt-<unix time>` and the proxy starts
//! empty rather than refusing to start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::{AppKind, SavedApp, Store, Ttl};

const MAGIC: &[u8; 8] = b"EPSNAP\0\n";
const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8 + 4;
/// Largest snapshot we agree to read: far above what the store limits allow
/// in practice, low enough that a wrong path cannot exhaust memory.
const MAX_SNAPSHOT_BYTES: u64 = 4 << 30;

/// Snapshot settings (`[persistence]`).
#[derive(Debug, Clone, PartialEq)]
pub struct PersistConfig {
    /// The snapshot file.
    pub file: PathBuf,
    /// Time between two snapshots (one is also written at shutdown).
    pub interval: Duration,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    /// Nanoseconds since the epoch.
    written_at: i64,
    apps: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    kind: String,
    source: String,
    /// Nanoseconds since the epoch.
    pushed_at: i64,
    ttl: String,
    text: String,
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Could not read the file.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The content is not a valid snapshot.
    #[error("{path} is not a valid snapshot: {reason}")]
    Corrupt {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Encodes the pushed apps of the store into a snapshot.
pub fn encode(apps: Vec<SavedApp>) -> Vec<u8> {
    let payload = Payload {
        written_at: nanos(Utc::now()),
        apps: apps
            .into_iter()
            .map(|a| Entry {
                name: a.name,
                kind: a.kind.as_str().to_owned(),
                source: a.source,
                pushed_at: nanos(a.pushed_at),
                ttl: a.ttl.describe(),
                text: a.text,
            })
            .collect(),
    };
    let body = serde_json::to_vec(&payload).expect("snapshot serialises");
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes a snapshot; every check names what failed.
pub fn decode(bytes: &[u8]) -> Result<Vec<SavedApp>, String> {
    if bytes.len() < HEADER {
        return Err(format!(
            "{} bytes is shorter than the {HEADER}-byte header",
            bytes.len()
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err("bad magic: not an exporter-proxy snapshot".to_owned());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!(
            "unsupported version {version} (expected {VERSION})"
        ));
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let body = &bytes[HEADER..];
    if body.len() as u64 != len {
        return Err(format!(
            "payload is {} bytes, the header says {len}",
            body.len()
        ));
    }
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".to_owned());
    }
    let payload: Payload =
        serde_json::from_slice(body).map_err(|e| format!("invalid payload: {e}"))?;
    payload
        .apps
        .into_iter()
        .map(|e| {
            let kind = match e.kind.as_str() {
                "push" => AppKind::Push,
                "pushgateway" => AppKind::Gateway,
                other => return Err(format!("app {:?}: unknown kind {other:?}", e.name)),
            };
            let ttl = Ttl::parse(&e.ttl).map_err(|m| format!("app {:?}: {m}", e.name))?;
            Ok(SavedApp {
                name: e.name,
                kind,
                source: e.source,
                pushed_at: DateTime::from_timestamp_nanos(e.pushed_at),
                ttl,
                text: e.text,
            })
        })
        .collect()
}

pub use crate::fsutil::write_atomically;

/// Reads the snapshot at `path`: `Ok(None)` when there is none.
pub fn read(path: &Path) -> Result<Option<Vec<SavedApp>>, SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if meta.len() > MAX_SNAPSHOT_BYTES {
        return Err(SnapshotError::Corrupt {
            path: path.to_owned(),
            reason: format!("{} bytes is larger than {MAX_SNAPSHOT_BYTES}", meta.len()),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    decode(&bytes)
        .map(Some)
        .map_err(|reason| SnapshotError::Corrupt {
            path: path.to_owned(),
            reason,
        })
}

/// Restores the snapshot into the store at start-up. A corrupt snapshot is
/// moved aside; the proxy then starts empty. Returns the apps restored.
pub fn restore(store: &Store, config: &PersistConfig) -> usize {
    let apps = match read(&config.file) {
        Ok(None) => return 0,
        Ok(Some(apps)) => apps,
        Err(e) => {
            store.self_metrics().count_snapshot_restore_failure();
            match &e {
                SnapshotError::Corrupt { path, .. } => {
                    let aside = PathBuf::from(format!(
                        "{}.corrupt-{}",
                        path.display(),
                        Utc::now().timestamp()
                    ));
                    match std::fs::rename(path, &aside) {
                        Ok(()) => {
                            warn!(error = %e, moved_to = %aside.display(), "snapshot unusable: moved aside, starting empty")
                        }
                        Err(mv) => {
                            warn!(error = %e, move_error = %mv, "snapshot unusable and could not be moved aside, starting empty")
                        }
                    }
                }
                SnapshotError::Io { .. } => {
                    warn!(error = %e, "snapshot unreadable, starting empty")
                }
            }
            return 0;
        }
    };
    let total = apps.len();
    let mut restored = 0;
    for app in apps {
        let name = app.name.clone();
        match store.restore(app) {
            Ok(_) => restored += 1,
            Err(e) => warn!(app = %name, error = %e, "app not restored from the snapshot"),
        }
    }
    info!(restored, total, file = %config.file.display(), "snapshot restored");
    restored
}

/// Writes one snapshot now (CPU and IO on the blocking pool).
pub async fn save(store: &Arc<Store>, file: &Path) -> bool {
    let store2 = store.clone();
    let file2 = file.to_owned();
    let result = tokio::task::spawn_blocking(move || {
        let bytes = encode(store2.saved_apps());
        write_atomically(&file2, &bytes).map(|()| bytes.len())
    })
    .await;
    match result {
        Ok(Ok(bytes)) => {
            store.self_metrics().snapshot_written();
            tracing::debug!(bytes, file = %file.display(), "snapshot written");
            true
        }
        Ok(Err(e)) => {
            store.self_metrics().count_snapshot_failure();
            warn!(error = %e, file = %file.display(), "snapshot not written; ingestion continues");
            false
        }
        Err(_) => false,
    }
}

/// Writes a snapshot every `interval` until `shutdown`.
pub async fn run(store: Arc<Store>, config: PersistConfig, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate: nothing new to save yet
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => { save(&store, &config.file).await; }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> SavedApp {
        SavedApp {
            name: name.to_owned(),
            kind: AppKind::Gateway,
            source: "http 127.0.0.1:1".to_owned(),
            pushed_at: DateTime::from_timestamp(1_700_000_000, 123_000_000).unwrap(),
            ttl: Ttl::After(Duration::from_secs(90)),
            text: "# TYPE x gauge\nx 1\n".to_owned(),
        }
    }

    #[test]
    fn round_trip() {
        let bytes = encode(vec![app("a"), app("b")]);
        assert_eq!(decode(&bytes).unwrap(), vec![app("a"), app("b")]);
    }

    #[test]
    fn every_corruption_is_detected() {
        let good = encode(vec![app("a")]);
        let mut flipped = good.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert_eq!(decode(&flipped).unwrap_err(), "checksum mismatch");
        assert!(decode(&good[..good.len() - 1])
            .unwrap_err()
            .contains("header says"));
        assert!(decode(b"short").unwrap_err().contains("shorter"));
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(decode(&magic).unwrap_err().contains("magic"));
        let mut version = good.clone();
        version[8] = 9;
        assert!(decode(&version).unwrap_err().contains("version 9"));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.bin");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("s.bin")]);
        // An unwritable place is an error, not a panic.
        let blocked = dir.path().join("s.bin").join("below-a-file.bin");
        assert!(write_atomically(&blocked, b"x").is_err());
    }
}
