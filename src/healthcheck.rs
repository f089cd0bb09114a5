//! The `healthcheck` subcommand: `GET /-/healthy` on a running proxy, exit
//! 0 when it answers 200 and 1 otherwise. Meant for container health checks
//! (distroless images have no shell or curl).
//!
//! Without `--url` the URL is derived from the config: the HTTP address
//! (a wildcard address becomes loopback), `https` when the web config
//! enables TLS. In that derived case the server certificate is not
//! verified (it names a host, not `127.0.0.1`, and the check only asks
//! whether this process answers); with an explicit `https` URL it is
//! verified against `--ca-file` or the system roots unless `--insecure`.
//! `/-/healthy` needs no basic auth credentials, so none are sent.

use std::path::Path;
use std::time::Duration;

/// How a health check connects.
#[derive(Debug, Clone)]
pub struct Check<'a> {
    /// The full URL to GET.
    pub url: String,
    /// PEM CA bundle to verify the server with (replaces the system roots).
    pub ca_file: Option<&'a Path>,
    /// Skip certificate verification.
    pub insecure: bool,
    /// Whole-request timeout.
    pub timeout: Duration,
}

/// Runs the check: `Ok(message)` on 200, `Err(message)` otherwise.
pub fn run(check: &Check<'_>) -> Result<String, String> {
    let client = crate::outbound::build_client(&crate::outbound::ClientOptions {
        ca_file: check.ca_file.map(|p| (p, "--ca-file")),
        insecure_skip_verify: check.insecure,
        timeout: Some(check.timeout),
        ..crate::outbound::ClientOptions::default()
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(async {
        let resp = client
            .get(&check.url)
            .send()
            .await
            .map_err(|e| format!("{}: {}", check.url, error_chain(&e)))?;
        let status = resp.status();
        if status.is_success() {
            Ok(format!("{}: {status}", check.url))
        } else {
            Err(format!("{}: {status}", check.url))
        }
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
