//! TLS and basic authentication of the HTTP port, configured by a file in
//! the Prometheus web configuration format (exporter-toolkit's
//! `--web.config.file`), so that the same file works for node_exporter,
//! the Pushgateway and us:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt           # PEM chain, leaf first
//!   key_file: server.key            # PEM private key (PKCS#8, PKCS#1 or SEC1)
//!   client_ca_file: clients-ca.crt  # optional
//!   client_auth_type: RequireAndVerifyClientCert
//!   min_version: TLS12              # TLS12 (default) or TLS13
//!   max_version: TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$...          # bcrypt hash
//! ```
//!
//! Relative paths are relative to the directory of the web config file, as
//! in exporter-toolkit. [`WebConfig::load`] reads and checks everything
//! (certificates, key, CA, hashes) and reports every problem at once, so a
//! bad file stops the start-up with exit code 64 like a bad config.
//!
//! * [`auth`](super::auth): the basic-auth layer and its verification cache.
//! * [`serve`](super::serve): the HTTP/HTTPS accept loop (handshakes in their own tasks,
//!   graceful shutdown).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::de::IgnoredAny;
use serde::Deserialize;

pub use super::auth::BasicAuth;

/// The validated web configuration.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// TLS, when `tls_server_config` is present.
    pub tls: Option<Tls>,
    /// Basic authentication, when `basic_auth_users` is not empty.
    pub basic_auth: Option<Arc<BasicAuth>>,
}

/// A ready rustls server configuration and what it was built from.
#[derive(Clone)]
pub struct Tls {
    /// The rustls configuration (aws-lc-rs provider, ALPN `http/1.1`).
    pub server_config: Arc<ServerConfig>,
    /// The certificate file, for logs.
    pub cert_file: PathBuf,
    /// The client certificate policy.
    pub client_auth: ClientAuth,
}

/// exporter-toolkit's `client_auth_type` values that can be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    NoClientCert,
    /// A certificate is verified against `client_ca_file` when the client
    /// sends one; clients without one are accepted.
    VerifyClientCertIfGiven,
    /// Every client must present a certificate signed by `client_ca_file`.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::NoClientCert => "NoClientCert",
            ClientAuth::VerifyClientCertIfGiven => "VerifyClientCertIfGiven",
            ClientAuth::RequireAndVerifyClientCert => "RequireAndVerifyClientCert",
        }
    }
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls)
            .field("basic_auth", &self.basic_auth)
            .finish()
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The rustls config holds the private key: never print it.
        f.debug_struct("Tls")
            .field("cert_file", &self.cert_file)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// Every problem found in a web configuration file, reported at once.
#[derive(Debug, Clone, PartialEq)]
pub struct WebConfigError {
    /// The file.
    pub path: PathBuf,
    /// One message per problem, each naming its key.
    pub problems: Vec<String>,
}

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid web configuration {}:", self.path.display())?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for WebConfigError {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    /// Accepted and ignored, as Go itself has done since 1.18.
    #[allow(dead_code)]
    prefer_server_cipher_suites: Option<bool>,
    // Known to exporter-toolkit, not supported here: refused by name
    // rather than as unknown keys.
    cert: Option<IgnoredAny>,
    key: Option<IgnoredAny>,
    client_ca: Option<IgnoredAny>,
    cipher_suites: Option<IgnoredAny>,
    curve_preferences: Option<IgnoredAny>,
    client_allowed_sans: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// Accepted; the server speaks HTTP/1.1 only, which every scraper does.
    #[allow(dead_code)]
    http2: Option<bool>,
    headers: Option<IgnoredAny>,
}

impl WebConfig {
    /// Reads, parses and checks a web configuration file, including the
    /// files it names.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let fail = |problems| WebConfigError {
            path: path.to_owned(),
            problems,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(vec![format!("cannot read file: {e}")]))?;
        let base = path.parent().unwrap_or(Path::new("."));
        WebConfig::parse(&text, base).map_err(fail)
    }

    /// Parses `text`; relative file names are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<WebConfig, Vec<String>> {
        // An empty file (or only comments) is valid and changes nothing,
        // as in exporter-toolkit.
        let blank = text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        let raw: RawWeb = if blank {
            RawWeb::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| vec![format!("not valid: {e}")])?
        };
        let mut problems = Vec::new();
        if let Some(http) = &raw.http_server_config {
            if http.headers.is_some() {
                problems.push(
                    "`http_server_config.headers`: not supported by exporter-proxy".to_owned(),
                );
            }
        }
        let tls = raw
            .tls_server_config
            .as_ref()
            .and_then(|t| build_tls(t, base, &mut problems));
        let basic_auth = match raw.basic_auth_users {
            Some(users) if !users.is_empty() => match BasicAuth::new(users.into_iter().collect()) {
                Ok(a) => Some(Arc::new(a)),
                Err(mut e) => {
                    problems.append(&mut e);
                    None
                }
            },
            _ => None,
        };
        if problems.is_empty() {
            Ok(WebConfig { tls, basic_auth })
        } else {
            Err(problems)
        }
    }

    /// A one-line description for the start-up log (no secrets).
    pub fn describe(&self) -> String {
        let tls = match &self.tls {
            Some(t) => format!(
                "tls (cert {}, client certificates: {})",
                t.cert_file.display(),
                t.client_auth.as_str()
            ),
            None => "no tls".to_owned(),
        };
        let auth = match &self.basic_auth {
            Some(a) => format!("basic auth ({} users)", a.user_count()),
            None => "no basic auth".to_owned(),
        };
        format!("{tls}, {auth}")
    }
}

fn resolve(base: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

fn version(
    key: &str,
    v: Option<&str>,
    problems: &mut Vec<String>,
) -> Option<&'static rustls::SupportedProtocolVersion> {
    match v {
        None => None,
        Some("TLS12") => Some(&rustls::version::TLS12),
        Some("TLS13") => Some(&rustls::version::TLS13),
        Some(s @ ("TLS10" | "TLS11")) => {
            problems.push(format!(
                "`tls_server_config.{key}`: {s} is not supported (insecure); use TLS12 or TLS13"
            ));
            None
        }
        Some(s) => {
            problems.push(format!(
                "`tls_server_config.{key}`: expected TLS12 or TLS13, found {s:?}"
            ));
            None
        }
    }
}

/// Builds the rustls server configuration of `tls_server_config`, reading
/// the files it names; `None` when anything was wrong (each problem is
/// pushed, in the order of the keys' checks).
fn build_tls(raw: &RawTls, base: &Path, problems: &mut Vec<String>) -> Option<Tls> {
    let before = problems.len();
    refuse_unsupported(raw, problems);
    let versions = protocol_versions(raw, problems);
    let cert_file = required_file(base, raw.cert_file.as_deref(), "cert_file", problems);
    let key_file = required_file(base, raw.key_file.as_deref(), "key_file", problems);
    let certs = cert_file
        .as_ref()
        .and_then(|p| read_certificates(p, "cert_file", problems));
    let key = key_file.as_ref().and_then(|p| read_key(p, problems));

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client_auth = client_auth(raw, problems);
    let verifier = client_auth.and_then(|auth| {
        client_verifier(
            auth,
            raw.client_ca_file.as_deref(),
            base,
            &provider,
            problems,
        )
    });
    if problems.len() > before {
        return None;
    }
    let (certs, key, verifier, client_auth, cert_file) =
        (certs?, key?, verifier?, client_auth?, cert_file?);
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| problems.push(format!("`tls_server_config`: {e}")))
        .ok()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            problems.push(format!(
                "`tls_server_config`: the certificate and key do not form a usable pair: {e}"
            ))
        })
        .ok()?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Some(Tls {
        server_config: Arc::new(config),
        cert_file,
        client_auth,
    })
}

/// Refuses, by name, the keys exporter-toolkit knows that are not honoured
/// here: inline PEM, and TLS tuning that rustls' defaults replace.
fn refuse_unsupported(raw: &RawTls, problems: &mut Vec<String>) {
    for (present, key) in [
        (raw.cert.is_some(), "cert"),
        (raw.key.is_some(), "key"),
        (raw.client_ca.is_some(), "client_ca"),
    ] {
        if present {
            problems.push(format!(
                "`tls_server_config.{key}`: inline PEM is not supported by exporter-proxy; use `{key}_file`"
            ));
        }
    }
    for (present, key) in [
        (raw.cipher_suites.is_some(), "cipher_suites"),
        (raw.curve_preferences.is_some(), "curve_preferences"),
        (raw.client_allowed_sans.is_some(), "client_allowed_sans"),
    ] {
        if present {
            problems.push(format!(
                "`tls_server_config.{key}`: not supported by exporter-proxy (rustls' safe defaults apply)"
            ));
        }
    }
}

/// The protocol versions between `min_version` and `max_version`.
fn protocol_versions(
    raw: &RawTls,
    problems: &mut Vec<String>,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let min = version("min_version", raw.min_version.as_deref(), problems);
    let max = version("max_version", raw.max_version.as_deref(), problems);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| {
                let rank = |v: &rustls::SupportedProtocolVersion| {
                    u8::from(v.version == rustls::ProtocolVersion::TLSv1_3)
                };
                min.is_none_or(|m| rank(v) >= rank(m)) && max.is_none_or(|m| rank(v) <= rank(m))
            })
            .collect();
    if versions.is_empty() {
        problems.push(
            "`tls_server_config`: min_version is above max_version: no protocol version left"
                .to_owned(),
        );
    }
    versions
}

/// The path of the required file key `tls_server_config.<key>`.
fn required_file(
    base: &Path,
    file: Option<&str>,
    key: &str,
    problems: &mut Vec<String>,
) -> Option<PathBuf> {
    match file {
        Some(f) => Some(resolve(base, f)),
        None => {
            problems.push(format!("`tls_server_config.{key}`: required"));
            None
        }
    }
}

/// The PEM certificates of `path` (at least one), named by `key` in
/// problems.
fn read_certificates(
    path: &Path,
    key: &str,
    problems: &mut Vec<String>,
) -> Option<Vec<CertificateDer<'static>>> {
    match CertificateDer::pem_file_iter(path).and_then(|it| it.collect::<Result<Vec<_>, _>>()) {
        Ok(c) if c.is_empty() => {
            problems.push(format!(
                "`tls_server_config.{key}`: {}: no PEM certificate found",
                path.display()
            ));
            None
        }
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(format!(
                "`tls_server_config.{key}`: {}: {}",
                path.display(),
                pem_error(&e)
            ));
            None
        }
    }
}

/// The PEM private key of `key_file`.
fn read_key(path: &Path, problems: &mut Vec<String>) -> Option<PrivateKeyDer<'static>> {
    match PrivateKeyDer::from_pem_file(path) {
        Ok(k) => Some(k),
        Err(e) => {
            // Never echo the key's contents: the error names the file only.
            problems.push(format!(
                "`tls_server_config.key_file`: {}: {}",
                path.display(),
                pem_error(&e)
            ));
            None
        }
    }
}

/// `client_auth_type`; absent or empty means `RequireAndVerifyClientCert`
/// with a `client_ca_file`, `NoClientCert` without.
fn client_auth(raw: &RawTls, problems: &mut Vec<String>) -> Option<ClientAuth> {
    match raw.client_auth_type.as_deref() {
        None | Some("") if raw.client_ca_file.is_some() => {
            Some(ClientAuth::RequireAndVerifyClientCert)
        }
        None | Some("") | Some("NoClientCert") => Some(ClientAuth::NoClientCert),
        Some("VerifyClientCertIfGiven") => Some(ClientAuth::VerifyClientCertIfGiven),
        Some("RequireAndVerifyClientCert") => Some(ClientAuth::RequireAndVerifyClientCert),
        Some(s @ ("RequestClientCert" | "RequireAnyClientCert")) => {
            problems.push(format!(
                "`tls_server_config.client_auth_type`: {s} accepts certificates without verifying them and is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ));
            None
        }
        Some(s) => {
            problems.push(format!(
                "`tls_server_config.client_auth_type`: expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert, found {s:?}"
            ));
            None
        }
    }
}

/// The verifier of client certificates for `auth`, trusting the
/// certificates of `client_ca_file`.
fn client_verifier(
    auth: ClientAuth,
    client_ca_file: Option<&str>,
    base: &Path,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    problems: &mut Vec<String>,
) -> Option<Arc<dyn ClientCertVerifier>> {
    match (auth, client_ca_file) {
        (ClientAuth::NoClientCert, Some(_)) => {
            problems.push(
                "`tls_server_config.client_ca_file`: set, but client_auth_type is NoClientCert: client certificates would not be checked".to_owned(),
            );
            None
        }
        (ClientAuth::NoClientCert, None) => Some(WebPkiClientVerifier::no_client_auth()),
        (_, None) => {
            problems.push(
                "`tls_server_config.client_ca_file`: required to verify client certificates"
                    .to_owned(),
            );
            None
        }
        (auth, Some(ca)) => {
            let roots = client_roots(&resolve(base, ca), problems);
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            match builder.build() {
                Ok(v) => Some(v),
                Err(e) => {
                    problems.push(format!("`tls_server_config.client_ca_file`: {e}"));
                    None
                }
            }
        }
    }
}

/// The trust anchors of `client_ca_file` (possibly none, after problems).
fn client_roots(ca: &Path, problems: &mut Vec<String>) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in read_certificates(ca, "client_ca_file", problems).unwrap_or_default() {
        if let Err(e) = roots.add(c) {
            problems.push(format!(
                "`tls_server_config.client_ca_file`: {}: {e}",
                ca.display()
            ));
        }
    }
    roots
}

fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            "no PEM item of the expected kind found".to_owned()
        }
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("invalid PEM ({other:?})"),
    }
}

#[cfg(test)]
mod tests;
