//! HTTP clients: the one place where a reqwest client is built.
//!
//! Every outbound job describes what it needs in [`ClientOptions`]; TLS
//! (rustls with the system roots, or only the certificates of a CA file),
//! redirects, gzip, timeouts and cookies are set the same way for all, and
//! a bad CA file is reported the same way whichever job names it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Our user agent, unless a job sets its own.
pub const USER_AGENT: &str = concat!("exporter-proxy/", env!("CARGO_PKG_VERSION"));

/// Largest CA or client-certificate file read, so that a wrong path (a log
/// file) is refused quickly.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Cookie handling of a client.
#[derive(Clone, Default)]
pub enum Cookies {
    /// No cookies kept.
    #[default]
    None,
    /// A jar owned by the client (a fresh session per client).
    Store,
    /// A jar the caller keeps, to read or seed cookies.
    Jar(Arc<reqwest::cookie::Jar>),
    /// A cookie store of the caller's own (a session-wide jar with its own
    /// path rules).
    Provider(Arc<dyn reqwest::cookie::CookieStore>),
}

/// What a job needs of its client.
#[derive(Clone)]
pub struct ClientOptions<'a> {
    /// The `User-Agent` header; `None`: ours.
    pub user_agent: Option<&'a str>,
    /// PEM file with the only CA certificates to trust, and the config key
    /// that named it (for the error message).
    pub ca_file: Option<(&'a Path, &'a str)>,
    /// PEM file with a client certificate and its key (mutual TLS), and the
    /// key that named it.
    pub client_cert: Option<(&'a Path, &'a str)>,
    /// Skip certificate verification (an explicit, documented choice).
    pub insecure_skip_verify: bool,
    /// Whole-request timeout; `None`: the caller bounds the request itself.
    pub timeout: Option<Duration>,
    /// Connection timeout; `None`: bounded by `timeout` only.
    pub connect_timeout: Option<Duration>,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
    /// Decode gzip answers (announced with `Accept-Encoding`).
    pub gzip: bool,
    /// Idle connections kept per host; `None`: reqwest's default.
    pub max_idle_per_host: Option<usize>,
    /// Cookie handling.
    pub cookies: Cookies,
}

impl Default for ClientOptions<'_> {
    fn default() -> Self {
        ClientOptions {
            user_agent: None,
            ca_file: None,
            client_cert: None,
            insecure_skip_verify: false,
            timeout: None,
            connect_timeout: None,
            max_redirects: 5,
            gzip: true,
            max_idle_per_host: None,
            cookies: Cookies::None,
        }
    }
}

/// Builds a client; the error names the file or setting at fault, never a
/// secret.
pub fn build_client(o: &ClientOptions<'_>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .user_agent(o.user_agent.unwrap_or(USER_AGENT))
        .gzip(o.gzip)
        .redirect(reqwest::redirect::Policy::limited(o.max_redirects))
        .danger_accept_invalid_certs(o.insecure_skip_verify);
    if let Some(t) = o.timeout {
        b = b.timeout(t);
    }
    if let Some(t) = o.connect_timeout {
        b = b.connect_timeout(t);
    }
    if let Some(n) = o.max_idle_per_host {
        b = b.pool_max_idle_per_host(n);
    }
    b = match &o.cookies {
        Cookies::None => b,
        Cookies::Store => b.cookie_store(true),
        Cookies::Jar(jar) => b.cookie_provider(jar.clone()),
        Cookies::Provider(store) => b.cookie_provider(Arc::new(Shared(store.clone()))),
    };
    if let Some((path, key)) = o.ca_file {
        let pem = read_pem(path, key)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("`{key}` {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "`{key}` {} holds no PEM certificate",
                path.display()
            ));
        }
        b = b.tls_certs_only(certs);
    }
    if let Some((path, key)) = o.client_cert {
        let pem = read_pem(path, key)?;
        let id = reqwest::Identity::from_pem(&pem)
            .map_err(|e| format!("`{key}` {}: {e}", path.display()))?;
        b = b.identity(id);
    }
    b.build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", super::chain(&e)))
}

/// A caller's cookie store behind `dyn`, as reqwest wants a sized one.
struct Shared(Arc<dyn reqwest::cookie::CookieStore>);

impl reqwest::cookie::CookieStore for Shared {
    fn set_cookies(
        &self,
        headers: &mut dyn Iterator<Item = &reqwest::header::HeaderValue>,
        url: &url::Url,
    ) {
        self.0.set_cookies(headers, url)
    }

    fn cookies(&self, url: &url::Url) -> Option<reqwest::header::HeaderValue> {
        self.0.cookies(url)
    }
}

fn read_pem(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read `{key}` {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if meta.len() > MAX_PEM_BYTES {
        return Err(format!(
            "`{key}` {} is larger than {MAX_PEM_BYTES} bytes",
            path.display()
        ));
    }
    std::fs::read(path).map_err(cannot)
}
