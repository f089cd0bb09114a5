//! Who may use the HTTP port's write endpoints, following the Prometheus
//! conventions:
//!
//! | Endpoint | Gate | Default |
//! |---|---|---|
//! | `POST /-/reload` | `[exporter] enable_lifecycle` / `--web.enable-lifecycle` | off: 403 |
//! | `DELETE /metrics/job/...` | `[exporter] enable_admin_api` / `--web.enable-admin-api` | off: 403 |
//! | `PUT`/`POST /metrics/job/...` | `[push_api] allowed_networks` | loopback |
//! | `POST`/`DELETE /register` | `[poll.register] allowed_networks` (and token) | loopback |
//!
//! Basic auth from the web configuration applies on top of all of them.
//! `SIGHUP` always reloads. Pure: the handlers call these checks.

use std::net::IpAddr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::netacl::AllowedNetworks;

/// Default `[exporter] max_http_connections`: far more than the scrapers,
/// pushers and browsers of one proxy, few enough that idle connections
/// cannot exhaust the descriptors (each holds one, plus a task).
pub const DEFAULT_MAX_HTTP_CONNECTIONS: usize = 1024;

/// The gates of the write endpoints and the HTTP connection cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gates {
    /// `POST /-/reload` is served (`[exporter] enable_lifecycle`).
    pub lifecycle: bool,
    /// Deleting data is served (`[exporter] enable_admin_api`).
    pub admin_api: bool,
    /// Peers allowed to push through the push API (`[push_api]
    /// allowed_networks`).
    pub push_api_networks: AllowedNetworks,
    /// Most HTTP connections open at once (`[exporter]
    /// max_http_connections`).
    pub max_http_connections: usize,
}

impl Gates {
    /// `127.0.0.0/8` and `::1/128`: the default of every network gate.
    pub fn loopback() -> AllowedNetworks {
        AllowedNetworks::parse(&["127.0.0.0/8", "::1/128"]).expect("valid networks")
    }
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            lifecycle: false,
            admin_api: false,
            push_api_networks: Gates::loopback(),
            max_http_connections: DEFAULT_MAX_HTTP_CONNECTIONS,
        }
    }
}

/// The 403 of a disabled lifecycle endpoint, naming the setting.
pub fn lifecycle_disabled() -> Response {
    (
        StatusCode::FORBIDDEN,
        "lifecycle APIs are not enabled: set `[exporter] enable_lifecycle = true` or start with --web.enable-lifecycle (SIGHUP always reloads)\n",
    )
        .into_response()
}

/// The 403 of a disabled admin endpoint (deleting data), naming the setting.
pub fn admin_disabled() -> Response {
    (
        StatusCode::FORBIDDEN,
        "admin APIs are not enabled: set `[exporter] enable_admin_api = true` or start with --web.enable-admin-api\n",
    )
        .into_response()
}

/// `Ok` when `peer` may push through the push API; the reason of the 403
/// otherwise. An unknown peer (no connection info: only in router tests)
/// is refused.
pub fn check_push_peer(networks: &AllowedNetworks, peer: Option<IpAddr>) -> Result<(), String> {
    match peer {
        Some(ip) if networks.allows(ip) => Ok(()),
        Some(ip) => Err(format!(
            "pushes from {ip} are not allowed: the peer is outside `[push_api] allowed_networks` ({networks})"
        )),
        None => Err(
            "the peer address is unknown: `[push_api] allowed_networks` cannot be checked"
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_peers_default_to_loopback() {
        let g = Gates::default();
        assert!(check_push_peer(&g.push_api_networks, Some("127.0.0.1".parse().unwrap())).is_ok());
        assert!(check_push_peer(&g.push_api_networks, Some("::1".parse().unwrap())).is_ok());
        let r = check_push_peer(&g.push_api_networks, Some("10.1.2.3".parse().unwrap()));
        assert!(r.unwrap_err().contains("10.1.2.3"));
        assert!(check_push_peer(&g.push_api_networks, None).is_err());
    }
}
