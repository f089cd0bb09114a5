//! HTTP basic authentication with bcrypt hashes (`basic_auth_users`).
//!
//! Every endpoint needs credentials, including the push API, except
//! `GET /-/healthy` (liveness probes and the `healthcheck` subcommand have
//! no credentials; it reveals nothing). A refusal is `401` with
//! `WWW-Authenticate: Basic`.
//!
//! bcrypt is slow by design (tens of milliseconds at cost 10), and
//! Prometheus sends the same credentials on every scrape, so a successful
//! verification is cached for [`CACHE_TTL`] under a SHA-256 digest of user,
//! password and stored hash (the password itself is never kept). Failures
//! are never cached. Verifications run on the blocking pool, at most
//! [`MAX_CONCURRENT_VERIFICATIONS`] at a time, so a flood of bad passwords
//! costs bounded CPU and cannot slow cached, valid requests.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use tokio::sync::Semaphore;
use tracing::warn;

/// How long a successful verification is remembered: long enough to cover
/// several scrapes at usual intervals (one bcrypt run per minute per
/// client), short enough that a cached success does not linger.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// Cached verifications kept at most; the cache is emptied when full
/// (legitimate clients are few; this only bounds memory).
const CACHE_CAPACITY: usize = 1024;
/// bcrypt verifications running at once. More would only add latency:
/// each one uses a core fully.
pub const MAX_CONCURRENT_VERIFICATIONS: usize = 4;
/// The path that stays open without credentials.
pub const OPEN_PATH: &str = "/-/healthy";

/// The users and their bcrypt hashes, with the verification cache.
pub struct BasicAuth {
    users: HashMap<String, String>,
    /// digest(user, password, hash) → when it was verified. A `Mutex`: it
    /// is held for one map operation, never across `.await`.
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    slots: Semaphore,
    /// A hash to verify against for unknown users, so that their answer
    /// takes as long as a known user's (no user enumeration by timing).
    dummy: OnceLock<String>,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // User names only: hashes are secrets too (offline cracking).
        let mut users: Vec<&str> = self.users.keys().map(String::as_str).collect();
        users.sort_unstable();
        f.debug_struct("BasicAuth")
            .field("users", &users)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Basic` header, or a malformed one.
    Missing,
    /// Unknown user or wrong password.
    Wrong,
}

impl BasicAuth {
    /// Checks the users: names must be non-empty without `:` (basic auth
    /// cannot carry them), hashes must be bcrypt hashes.
    pub fn new(users: HashMap<String, String>) -> Result<BasicAuth, Vec<String>> {
        let mut problems = Vec::new();
        let mut names: Vec<&String> = users.keys().collect();
        names.sort();
        for user in names {
            let hash = &users[user];
            if user.is_empty() || user.contains(':') {
                problems.push(format!(
                    "`basic_auth_users`: user {user:?}: a user name must be non-empty and must not contain ':'"
                ));
            }
            if let Err(e) = hash.parse::<bcrypt::HashParts>() {
                // The error describes the format, not the value.
                problems.push(format!(
                    "`basic_auth_users.{user}`: not a bcrypt hash ({e}); create one with `htpasswd -nBC 10 {user}`"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(BasicAuth {
            users,
            cache: Mutex::new(HashMap::new()),
            slots: Semaphore::new(MAX_CONCURRENT_VERIFICATIONS),
            dummy: OnceLock::new(),
        })
    }

    /// Number of users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Checks an `Authorization` header value.
    pub async fn check(&self, header: Option<&HeaderValue>) -> Result<(), Denied> {
        let (user, password) = parse_header(header).ok_or(Denied::Missing)?;
        let known = self.users.get(&user);
        let key = known.map(|hash| digest(&user, &password, hash));
        if let Some(key) = key {
            let cache = self.cache.lock().expect("auth cache lock");
            if cache.get(&key).is_some_and(|t| t.elapsed() < CACHE_TTL) {
                return Ok(());
            }
        }
        let hash = match known {
            Some(h) => h.clone(),
            None => self.dummy_hash().to_owned(),
        };
        let _slot = self.slots.acquire().await.expect("never closed");
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        match (ok, key) {
            (true, Some(key)) => {
                let mut cache = self.cache.lock().expect("auth cache lock");
                if cache.len() >= CACHE_CAPACITY {
                    cache.retain(|_, t| t.elapsed() < CACHE_TTL);
                    if cache.len() >= CACHE_CAPACITY {
                        cache.clear();
                    }
                }
                cache.insert(key, Instant::now());
                Ok(())
            }
            _ => Err(Denied::Wrong),
        }
    }

    /// A hash of the same cost as the configured ones, made once.
    fn dummy_hash(&self) -> &str {
        self.dummy.get_or_init(|| {
            let cost = self
                .users
                .values()
                .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
                .map(|p| p.get_cost())
                .max()
                .unwrap_or(bcrypt::DEFAULT_COST);
            bcrypt::hash("exporter-proxy: no such user", cost).expect("valid cost")
        })
    }
}

/// `Basic base64(user:password)` → (user, password).
fn parse_header(header: Option<&HeaderValue>) -> Option<(String, String)> {
    let value = header?.to_str().ok()?.trim();
    let (scheme, creds) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(creds.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn digest(user: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [user, password, hash] {
        // Length-prefixed so that ("ab", "c") and ("a", "bc") differ.
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Wraps every route and the fallback of `router` with basic auth.
pub fn layer(router: Router, auth: Arc<BasicAuth>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(auth, middleware))
}

async fn middleware(State(auth): State<Arc<BasicAuth>>, req: Request, next: Next) -> Response {
    if req.uri().path() == OPEN_PATH {
        return next.run(req).await;
    }
    match auth.check(req.headers().get(AUTHORIZATION)).await {
        Ok(()) => next.run(req).await,
        Err(denied) => {
            if denied == Denied::Wrong {
                // The user name is not a secret; the password never gets here.
                let user = parse_header(req.headers().get(AUTHORIZATION))
                    .map(|(u, _)| u)
                    .unwrap_or_default();
                warn!(user = %user.escape_debug(), path = %req.uri().path(), "basic auth failed");
            }
            (
                StatusCode::UNAUTHORIZED,
                [(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"exporter-proxy\", charset=\"UTF-8\""),
                )],
                "401 unauthorized: valid basic auth credentials are required\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(user: &str, password: &str) -> BasicAuth {
        let hash = bcrypt::hash(password, 4).unwrap();
        BasicAuth::new(HashMap::from([(user.to_owned(), hash)])).unwrap()
    }

    fn basic(user: &str, password: &str) -> HeaderValue {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {b64}")).unwrap()
    }

    #[tokio::test]
    async fn accepts_the_right_password_and_caches_it() {
        let a = auth("prom", "s3cret:with:colons");
        let h = basic("prom", "s3cret:with:colons");
        assert_eq!(a.check(Some(&h)).await, Ok(()));
        assert_eq!(a.cache.lock().unwrap().len(), 1);
        assert_eq!(a.check(Some(&h)).await, Ok(()));
        assert_eq!(a.cache.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn refuses_wrong_unknown_and_missing_credentials() {
        let a = auth("prom", "good");
        assert_eq!(
            a.check(Some(&basic("prom", "bad"))).await,
            Err(Denied::Wrong)
        );
        assert_eq!(
            a.check(Some(&basic("eve", "good"))).await,
            Err(Denied::Wrong)
        );
        assert_eq!(a.check(None).await, Err(Denied::Missing));
        let bearer = HeaderValue::from_static("Bearer abc");
        assert_eq!(a.check(Some(&bearer)).await, Err(Denied::Missing));
        let garbage = HeaderValue::from_static("Basic !!!");
        assert_eq!(a.check(Some(&garbage)).await, Err(Denied::Missing));
        // Failures are not cached.
        assert!(a.cache.lock().unwrap().is_empty());
    }

    #[test]
    fn debug_shows_users_but_no_hashes() {
        let a = auth("prom", "good");
        let hash = a.users["prom"].clone();
        let shown = format!("{a:?}");
        assert!(shown.contains("prom"), "{shown}");
        assert!(!shown.contains(&hash), "{shown}");
    }

    #[test]
    fn refuses_bad_hashes_and_names() {
        let e = BasicAuth::new(HashMap::from([
            ("a:b".to_owned(), bcrypt::hash("x", 4).unwrap()),
            ("plain".to_owned(), "password123".to_owned()),
        ]))
        .unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("\"a:b\""), "{e:?}");
        assert!(
            e[1].contains("basic_auth_users.plain") && !e[1].contains("password123"),
            "{e:?}"
        );
    }
}
