//! Built-in balance collectors for self-service portals (the ssp-exporter
//! providers), each identifier running as an internal app.
//!
//! * [`config`]: the ssp-exporter YAML/JSON file, validated by a JSON Schema.
//! * one module per portal ([`vultr`], [`aruba`], [`almatel`], [`freedom`],
//!   [`megafon`], [`t2`], [`wifire`]) and [`exec`] for custom logic, each
//!   implementing [`Provider`]; [`template`] is a starting point for a new one.
//! * [`job`]: an identifier as a scheduler [`crate::outbound::scheduler::Job`]
//!   that renders its series and commits them to the store as the app
//!   `ssp/<Provider>/<identifier>` (kind `provider`, source `provider:<Name>`).
//!
//! A provider only says what one collection found: a balance or a
//! [`Failure`] with its sentinel [`Code`]. Timeouts, panics, back-off, the
//! cookie jar, the user agent and what the store shows are handled here, so
//! that a portal module is the documented HTTP flow and nothing else.

pub mod almatel;
pub mod aruba;
pub mod config;
pub mod cookies;
pub mod exec;
pub mod freedom;
pub mod job;
pub mod megafon;
pub mod pyjson;
pub mod t2;
pub mod template;
pub mod vultr;
pub mod wifire;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::secret::Secret;
pub use config::{Identifier, SspConfig};
pub use job::ProviderSet;

/// Largest portal response read, so a wrong URL cannot make us buffer a
/// download; balance pages are a few hundred kilobytes at most.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What a provider returns.
pub type Collect<'a> = Pin<Box<dyn Future<Output = Result<f64, Failure>> + Send + 'a>>;

/// A portal: one documented login and balance flow.
pub trait Provider: Send + Sync + 'static {
    /// The name used as key under `identifiers` and as `provider` label.
    fn name(&self) -> &'static str;
    /// Scheme and host of the real portal (an identifier's `base_url`
    /// replaces it).
    fn default_base(&self) -> &'static str;
    /// One collection: log in, read the balance, log out.
    fn collect<'a>(&'a self, s: &'a Session) -> Collect<'a>;
}

/// Every built-in provider.
pub fn all() -> [&'static dyn Provider; 8] {
    [
        &almatel::AlmatelRussia,
        &aruba::ArubaCloud,
        &freedom::FreedomVrnRussia,
        &megafon::MegafonRussiaB2C,
        &t2::T2RussiaB2C,
        &vultr::Vultr,
        &wifire::WifireRussia,
        &exec::Exec,
    ]
}

/// The provider called `name`.
pub fn lookup(name: &str) -> Option<&'static dyn Provider> {
    all().into_iter().find(|p| p.name() == name)
}

/// Why a collection failed: the sentinel codes of the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    /// The portal did not answer properly (non-2xx first step, timeout).
    NoAnswer,
    /// The portal asks for a captcha.
    Captcha,
    /// Login refused, a page or token missing, a later step failed.
    CannotProceed,
    /// Too many attempts: the identifier backs off.
    RateLimit,
    /// The balance is missing or not a number (changed layout).
    ParsingError,
    /// The portal could not be reached.
    ConnectionError,
}

impl Code {
    /// The key in `service.messages` (and the `status` label value).
    pub fn key(self) -> &'static str {
        match self {
            Code::NoAnswer => "no_answer",
            Code::Captcha => "captcha",
            Code::CannotProceed => "cannot_proceed",
            Code::RateLimit => "rate_limit",
            Code::ParsingError => "parsing_error",
            Code::ConnectionError => "connection_error",
        }
    }
}

/// A failed collection: its code and a message for `/apps` and the log,
/// naming the step. Never contains a password, token, cookie or body.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The sentinel code.
    pub code: Code,
    /// What happened.
    pub message: String,
}

/// A failure with `code`.
pub fn fail(code: Code, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

/// What a provider gets for one collection: a fresh HTTP client (its own
/// cookie jar, the identifier's user agent, TLS settings and timeout) and
/// the account.
pub struct Session {
    /// The HTTP client of this collection.
    pub client: reqwest::Client,
    /// Scheme and host, without a trailing slash.
    pub base: String,
    /// The account's identifier.
    pub identifier: String,
    /// The identifier typed as the original typed it (for JSON bodies).
    pub raw_identifier: config::yaml11::Typed,
    /// The password or API key.
    pub password: Secret,
    /// The password was a plain YAML scalar (or a JSON number): JSON
    /// bodies send it typed as the original did.
    pub password_plain: bool,
    /// The cookie jar of `client`, readable whole.
    pub jar: std::sync::Arc<cookies::SessionJar>,
    /// The user agent chosen for this identifier.
    pub user_agent: String,
    /// `Exec`: the command.
    pub command: Vec<String>,
    /// The collection's time limit (`Exec` uses it for its child).
    pub timeout: Duration,
    /// The balance family's name (`service.metric_name`).
    pub metric_name: String,
    /// Exposition text exported with the balance (`Exec` only); validated
    /// by the provider, committed with the identifier's series.
    pub extra: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("base", &self.base)
            .field("identifier", &self.identifier)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// `path` on the portal.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The identifier as a JSON body value, typed as the original sent it.
    pub fn identifier_json(&self) -> pyjson::Json {
        pyjson::Json::Typed(self.raw_identifier.clone())
    }

    /// The password as a JSON body value, typed as the original sent it
    /// (`password: 123456` a number, `password: 0891` a string).
    pub fn password_json(&self) -> pyjson::Json {
        let w = config::yaml11::Written {
            text: self.password.expose().to_owned(),
            plain: self.password_plain,
        };
        pyjson::Json::Typed(w.typed())
    }
}

/// Which step of a flow a request is: the first one maps a bad status to
/// `no_answer`, later ones to `cannot_proceed` (as in the original).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The first request of the flow.
    First,
    /// Any later request.
    Later,
}

/// Sends a request; a network error becomes `connection_error` (or
/// `no_answer` for a timeout), and a status other than 2xx becomes a
/// failure: 401/403 `cannot_proceed` (refused credentials), 429
/// `rate_limit`, else by `step`.
pub async fn send(req: RequestBuilder, step: Step, what: &str) -> Result<Response, Failure> {
    let resp = req.send().await.map_err(|e| request_error(e, what))?;
    check_status(resp.status(), step, what)?;
    Ok(resp)
}

/// Sends a request whose status is not checked (a logout).
pub async fn send_unchecked(req: RequestBuilder, what: &str) -> Result<Response, Failure> {
    req.send().await.map_err(|e| request_error(e, what))
}

/// The failure for a status, if it is one.
pub fn check_status(status: StatusCode, step: Step, what: &str) -> Result<(), Failure> {
    let Err(crate::outbound::BadStatus(status)) = crate::outbound::check_status(status) else {
        return Ok(());
    };
    let code = match status.as_u16() {
        401 | 403 => Code::CannotProceed,
        429 => Code::RateLimit,
        _ if step == Step::First => Code::NoAnswer,
        _ => Code::CannotProceed,
    };
    Err(fail(code, format!("{what}: HTTP status {status}")))
}

fn request_error(e: reqwest::Error, what: &str) -> Failure {
    let code = match crate::outbound::classify(&e) {
        crate::outbound::Transport::Timeout => Code::NoAnswer,
        _ => Code::ConnectionError,
    };
    // Without the URL: the chain alone names the cause; the step names the URL.
    let text = crate::outbound::error_chain(e);
    fail(code, format!("{what}: {text}{}", tls_hint(&text)))
}

/// The way out of a certificate failure, added to its message (the log
/// and `/apps` show it): verification is on by default, unlike the original.
pub fn tls_hint(error: &str) -> &'static str {
    if error.to_ascii_lowercase().contains("certificate") {
        "; the portal's TLS certificate is not trusted by the system roots: add its CA with `ca_file: <pem file>`, or set `tls_verify: false` (as the original did) for this identifier"
    } else {
        ""
    }
}

/// Reads a body as text, at most [`MAX_BODY_BYTES`].
pub async fn text(mut resp: Response, what: &str) -> Result<String, Failure> {
    let body = crate::outbound::read_bounded(&mut resp, MAX_BODY_BYTES)
        .await
        .map_err(|e| match e {
            crate::outbound::BodyError::TooLarge { limit } => fail(
                Code::ParsingError,
                format!("{what}: body larger than {limit} bytes"),
            ),
            crate::outbound::BodyError::Transport(e) => request_error(e, what),
        })?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Reads a JSON body; anything else is `code` (the step decides whether a
/// non-JSON answer means a refused login or a changed layout).
pub async fn json(resp: Response, code: Code, what: &str) -> Result<Value, Failure> {
    let body = text(resp, what).await?;
    serde_json::from_str(&body).map_err(|_| {
        fail(
            code,
            if body.trim().is_empty() {
                format!("{what}: empty body, expected JSON")
            } else {
                format!("{what}: body is not JSON")
            },
        )
    })
}

/// The value at a JSON path (`["account", "balance"]`).
pub fn at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

/// A balance from JSON: a number, or a numeric string (see [`parse_amount`]).
/// Missing, null or anything else is `parsing_error` naming `path`.
pub fn balance_at(v: &Value, path: &[&str], what: &str) -> Result<f64, Failure> {
    let name = path.join(".");
    match at(v, path) {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| {
            fail(
                Code::ParsingError,
                format!("{what}: `{name}` is not a number"),
            )
        }),
        Some(Value::String(s)) => parse_amount(s).ok_or_else(|| {
            fail(
                Code::ParsingError,
                format!("{what}: `{name}` is {s:?}, not a number"),
            )
        }),
        Some(Value::Null) | None => Err(fail(
            Code::ParsingError,
            format!("{what}: no `{name}` in the answer"),
        )),
        Some(other) => Err(fail(
            Code::ParsingError,
            format!("{what}: `{name}` is {}, not a number", kind(other)),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses an amount as portals print it: spaces (also no-break and thin
/// spaces) as thousands separators, a comma or a dot as decimal mark
/// (`1 234,56`, `-12.5`, `1,234.56`), a Unicode minus; a trailing currency
/// sign or `руб.` is ignored. `None` when it is not a finite number.
pub fn parse_amount(s: &str) -> Option<f64> {
    let mut t: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '\u{a0}' | '\u{202f}' | '\u{2009}'))
        .map(|c| if c == '\u{2212}' { '-' } else { c })
        .collect();
    for suffix in ["₽", "€", "$", "£", "руб.", "руб", "р."] {
        if let Some(rest) = t.strip_suffix(suffix) {
            t = rest.to_owned();
            break;
        }
    }
    if t.contains(',') {
        t = if t.contains('.') {
            t.replace(',', "")
        } else {
            t.replace(',', ".")
        };
    }
    if t.is_empty() || !t.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `[providers]`: the ssp-exporter provider file and how it is run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvidersConfig {
    /// The ssp-exporter YAML or JSON file (`config_file`).
    pub file: std::path::PathBuf,
    /// Time limit of one collection (every request and the whole flow).
    pub timeout: std::time::Duration,
    /// Most collections running at once.
    pub max_concurrent: usize,
    /// The file's content, validated.
    pub ssp: SspConfig,
}

/// Default `providers.timeout`: portals are slow, but a login flow that
/// takes longer than this is hung.
pub const DEFAULT_PROVIDER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Default `providers.max_concurrent`: a few logins at once, so one slow
/// portal never delays the others, without hammering anyone.
pub const DEFAULT_PROVIDER_CONCURRENCY: u64 = 4;

#[cfg(test)]
mod tests;
