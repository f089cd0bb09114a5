//! The outbound layer: everything a job that fetches over HTTP shares, so
//! that poll targets, registered targets, collectors, providers and sinks
//! each keep only what is their own.
//!
//! * [`scheduler`]: the fixed-rate job scheduler.
//! * [`client`]: building a reqwest client from [`ClientOptions`] (CA file,
//!   skip-verify, client certificate, timeouts, user agent, gzip,
//!   redirects, cookies). Only this module builds HTTP clients.
//! * [`check_status`], [`read_bounded`], [`classify`], [`error_chain`]: the
//!   answer's status, a body read within a byte limit (counted after
//!   decompression), transport errors as a closed [`Transport`] kind and
//!   their text without the URL (a query may carry a secret).
//! * [`health`]: the up/down record of a job behind `/apps` and the
//!   `*_up`/failure self-metrics.

pub mod client;
pub mod health;
pub mod scheduler;

pub use client::{build_client, ClientOptions, Cookies};
pub use health::{Failure, Health, Outcome};

use reqwest::StatusCode;

/// What kind of transport error a request ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// No complete answer in time.
    Timeout,
    /// No connection (refused, unreachable, DNS, TLS handshake).
    Connect,
    /// The body could not be decoded (e.g. broken gzip).
    Decode,
    /// Anything else while sending or reading.
    Other,
}

/// Classifies a reqwest error.
pub fn classify(e: &reqwest::Error) -> Transport {
    if e.is_timeout() {
        Transport::Timeout
    } else if e.is_connect() {
        Transport::Connect
    } else if e.is_decode() {
        Transport::Decode
    } else {
        Transport::Other
    }
}

/// The error's text with its whole source chain, without the URL (a query
/// string may carry a token; the caller names its target itself).
pub fn error_chain(e: reqwest::Error) -> String {
    chain(&e.without_url())
}

/// Whether the error is a failed certificate verification, for a message
/// that names the ways out.
pub fn is_certificate_error(e: &reqwest::Error) -> bool {
    let text = chain(e).to_ascii_lowercase();
    text.contains("certificate")
        || text.contains("unknownissuer")
        || text.contains("unknown issuer")
}

/// Any error's text with its source chain, each cause once.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// A status other than 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadStatus(pub StatusCode);

impl std::fmt::Display for BadStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP status {}, expected 2xx", self.0)
    }
}

/// `Ok` for a 2xx status.
pub fn check_status(status: StatusCode) -> Result<(), BadStatus> {
    if status.is_success() {
        Ok(())
    } else {
        Err(BadStatus(status))
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than the limit (announced or counted).
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The transport failed while reading.
    Transport(reqwest::Error),
}

/// Reads the body, at most `limit` bytes counted after decompression (a
/// small compressed body cannot expand past it).
pub async fn read_bounded(
    resp: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests;
