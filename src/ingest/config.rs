//! Configuration of the push receivers: listeners, wire formats and the
//! limits applied to every push. Validated by `crate::config`, which walks
//! the TOML; this module only defines what the receivers are given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::store::Ttl;

/// Default per-push byte limit: large enough for a 100k-series application,
/// small enough that a hostile client cannot make us allocate gigabytes.
pub const DEFAULT_MAX_PUSH_BYTES: u64 = 16 * 1024 * 1024;
/// Default total time a client may take to send one push connection.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a client may stay silent before we give up on it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default silence allowed between two Cap'n Proto messages on one
/// connection: the original kept such connections forever, and clients
/// push every 10-60 s on one connection.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default budget of bytes held by pushes in progress: 16 full-size pushes
/// at once, a few hundred MiB, whatever the number of slow senders.
pub const DEFAULT_MAX_INFLIGHT_PUSH_BYTES: u64 = 256 * 1024 * 1024;
/// Default number of connections waiting for a slot per listener: a burst
/// of cron jobs starting on the same minute; each holds one descriptor.
pub const DEFAULT_MAX_QUEUED_CONNECTIONS: u64 = 4096;
/// Default listen backlog of every socket we bind: a burst of a thousand
/// connections on the same second fits; the kernel caps it at
/// `net.core.somaxconn` (4,096 by default since Linux 5.4).
pub const DEFAULT_LISTEN_BACKLOG: u64 = 4096;

/// Wire format accepted by a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// One JSON document per connection.
    Json,
    /// Cap'n Proto stream framing, many messages per connection.
    Capnp,
    /// Detected per connection from its first byte.
    Auto,
}

impl WireFormat {
    /// The name used in the config and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            WireFormat::Json => "json",
            WireFormat::Capnp => "capnp",
            WireFormat::Auto => "auto",
        }
    }
}

/// One stream listener receiving pushes.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    /// Short name used in logs and metric labels, e.g. `unix` or `json_tcp`.
    pub name: String,
    /// Where it listens.
    pub endpoint: Endpoint,
    /// What it accepts.
    pub format: WireFormat,
    /// Maximum concurrent connections (`concurrent_requests`).
    pub max_connections: usize,
    /// TTL of pushes through this listener (`None`: the default).
    pub ttl: Option<Ttl>,
}

/// A listening address.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket with its ownership and permissions.
    Unix(UnixSocketConfig),
}

/// A Unix socket path with owner, group and mode.
#[derive(Debug, Clone, PartialEq)]
pub struct UnixSocketConfig {
    /// Socket path.
    pub path: PathBuf,
    /// Owner by name; `None` = the current user.
    pub user: Option<String>,
    /// Group by name; `None` = the current user's primary group.
    pub group: Option<String>,
    /// Permission bits applied after binding.
    pub mode: u32,
}

/// The Cap'n Proto RPC listener.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcConfig {
    /// TCP address to listen on.
    pub listen: SocketAddr,
    /// Maximum concurrent connections.
    pub max_connections: usize,
    /// TTL of pushes through RPC (`None`: the default).
    pub ttl: Option<Ttl>,
}

/// Limits applied to every push, whatever its ingress.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Bytes per push (per connection for JSON, per message for Cap'n Proto).
    pub max_push_bytes: usize,
    /// Series (sample lines) per application.
    pub max_series_per_app: usize,
    /// Number of distinct applications.
    pub max_apps: usize,
    /// Total time to receive one connection's data.
    pub read_timeout: Duration,
    /// Maximum silence between two reads.
    pub idle_timeout: Duration,
    /// Maximum silence between two complete Cap'n Proto messages of a
    /// stream or RPC connection (`None`: never closed for idleness).
    pub stream_idle_timeout: Option<Duration>,
    /// Bytes held by all pushes being received at once, across listeners.
    pub max_inflight_push_bytes: usize,
    /// Connections waiting for a slot over `concurrent_requests`, per
    /// listener; beyond this they are refused at once.
    pub max_queued_connections: usize,
    /// Listen backlog of every socket bound (receivers, RPC, HTTP): the
    /// connections the kernel queues before they are accepted.
    pub listen_backlog: u32,
    /// Series in the store above which its text is kept packed (0: always).
    pub pack_above_series: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_push_bytes: DEFAULT_MAX_PUSH_BYTES as usize,
            max_series_per_app: crate::store::DEFAULT_MAX_SERIES_PER_APP,
            max_apps: crate::store::DEFAULT_MAX_APPS,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            stream_idle_timeout: Some(DEFAULT_STREAM_IDLE_TIMEOUT),
            max_inflight_push_bytes: DEFAULT_MAX_INFLIGHT_PUSH_BYTES as usize,
            max_queued_connections: DEFAULT_MAX_QUEUED_CONNECTIONS as usize,
            listen_backlog: DEFAULT_LISTEN_BACKLOG as u32,
            pack_above_series: crate::store::DEFAULT_PACK_ABOVE_SERIES,
        }
    }
}
