//! Self-registration: exporters announce themselves with `POST /register`
//! and are polled like configured targets (app kind `registered`).
//!
//! * A POST is an upsert: a new id is added, a known id is a heartbeat that
//!   pushes its expiry back and may change its address, interval or labels.
//! * A registration expires `ttl` after its last heartbeat: its target and
//!   metrics are removed. `DELETE /register/<id>` removes it at once.
//! * Only peers inside `allowed_networks` may use the endpoint, and when a
//!   token is configured it must come as `Authorization: Bearer <token>`
//!   (compared in constant time, never logged).
//! * The registry is written atomically (temp file, fsync, rename, fsync of
//!   the directory) after every change of membership or definition, and read
//!   back at start-up. Heartbeats are not written: restored registrations get
//!   a fresh TTL from start-up, so a restart never expires a live exporter.
//!
//! [`RegistryState`] is the pure part (validation, upsert, expiry), tested
//! without time passing; [`Registrar`] adds the clock, the poller and the file.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Poller;
use crate::poll::config::{check_labels, check_url, RegisterConfig, TargetConfig};

/// Largest accepted registration document.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Longest id: ids are app names and label values, keep them short.
const MAX_ID_BYTES: usize = 128;

/// A duration in a registration: seconds or a string such as `"30s"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Seconds(f64),
    Text(String),
}

impl DurationValue {
    fn get(&self, key: &str) -> Result<Duration, String> {
        match self {
            DurationValue::Seconds(s) if s.is_finite() && *s > 0.0 && *s < 1e9 => {
                Ok(Duration::from_secs_f64(*s))
            }
            DurationValue::Seconds(s) => {
                Err(format!("`{key}`: {s} is not a positive number of seconds"))
            }
            DurationValue::Text(t) => humantime::parse_duration(t).map_err(|e| {
                format!("`{key}`: expected a duration such as \"30s\", found {t:?} ({e})")
            }),
        }
    }
}

/// The body of `POST /register`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    id: String,
    url: Option<String>,
    address: Option<String>,
    port: Option<u16>,
    path: Option<String>,
    scheme: Option<String>,
    interval: Option<DurationValue>,
    ttl: Option<DurationValue>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// A `[[poll.mappings]]` name: the target serves JSON.
    mapping: Option<String>,
}

/// A validated registration: what the target is polled with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// The id, also the app name.
    pub id: String,
    /// The URL polled.
    pub url: String,
    /// Poll interval.
    #[serde(with = "secs")]
    pub interval: Duration,
    /// Expiry after the last heartbeat.
    #[serde(with = "secs")]
    pub ttl: Duration,
    /// Labels added to every series.
    pub labels: Vec<(String, String)>,
    /// The JSON mapping of the target's body, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<String>,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let f = f64::deserialize(d)?;
        if f.is_finite() && f > 0.0 && f < 1e9 {
            Ok(Duration::from_secs_f64(f))
        } else {
            Err(serde::de::Error::custom("expected positive seconds"))
        }
    }
}

/// Why a request was refused: a status and a message for the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// HTTP status.
    pub status: StatusCode,
    /// What was wrong.
    pub message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// Validates a registration document against the configured limits.
pub fn validate(
    body: &[u8],
    cfg: &RegisterConfig,
    app_label: Option<&str>,
) -> Result<Registration, Refusal> {
    let bad = |m: String| refuse(StatusCode::BAD_REQUEST, m);
    let req: RegisterRequest = serde_json::from_slice(body)
        .map_err(|e| bad(format!("invalid registration document: {e}")))?;
    if req.id.is_empty()
        || req.id.len() > MAX_ID_BYTES
        || !req
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
    {
        return Err(bad(format!(
            "`id`: expected 1 to {MAX_ID_BYTES} characters of [A-Za-z0-9_.:-]"
        )));
    }
    let url = match (&req.url, &req.address) {
        (Some(_), Some(_)) => return Err(bad("give either `url` or `address`, not both".into())),
        (None, None) => return Err(bad("`url` or `address` and `port` is required".into())),
        (Some(u), None) => {
            if req.port.is_some() || req.path.is_some() || req.scheme.is_some() {
                return Err(bad(
                    "`port`, `path` and `scheme` go with `address`, not `url`".into(),
                ));
            }
            u.clone()
        }
        (None, Some(a)) => {
            let port = req
                .port
                .ok_or_else(|| bad("`port`: required with `address`".into()))?;
            let scheme = req.scheme.as_deref().unwrap_or("http");
            let host = match a.parse::<IpAddr>() {
                Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
                _ => a.clone(),
            };
            let path = req.path.as_deref().unwrap_or("/metrics");
            if !path.starts_with('/') {
                return Err(bad(format!(
                    "`path`: expected an absolute path, found {path:?}"
                )));
            }
            format!("{scheme}://{host}:{port}{path}")
        }
    };
    check_url(&url).map_err(|e| bad(format!("`url`: {e}")))?;
    let interval = match &req.interval {
        Some(v) => v.get("interval").map_err(bad)?,
        None => cfg.default_interval,
    };
    if interval < cfg.min_interval {
        return Err(bad(format!(
            "`interval`: expected at least {}",
            humantime::format_duration(cfg.min_interval)
        )));
    }
    let ttl = match &req.ttl {
        Some(v) => v.get("ttl").map_err(bad)?,
        None => cfg.default_ttl.max(interval),
    };
    if ttl < interval || ttl > cfg.max_ttl {
        return Err(bad(format!(
            "`ttl`: expected from the interval ({}) to {}",
            humantime::format_duration(interval),
            humantime::format_duration(cfg.max_ttl)
        )));
    }
    let labels: Vec<(String, String)> = req.labels.into_iter().collect();
    check_labels(&labels, app_label).map_err(|e| bad(format!("`labels`: {e}")))?;
    if let Some(m) = &req.mapping {
        crate::collect::mapping::find(&cfg.mappings, m)
            .map_err(|e| bad(format!("`mapping`: {e}")))?;
    }
    Ok(Registration {
        id: req.id,
        url,
        interval,
        ttl,
        labels,
        mapping: req.mapping,
    })
}

#[derive(Debug, Clone)]
struct Entry {
    reg: Registration,
    expires: Instant,
    registered_at: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    peer: Option<IpAddr>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// A new id.
    Created,
    /// A heartbeat that changed the definition.
    Updated,
    /// A heartbeat with the same definition.
    Refreshed,
}

/// The registrations, without clock or IO.
#[derive(Debug, Default)]
pub struct RegistryState {
    entries: BTreeMap<String, Entry>,
}

impl RegistryState {
    /// Adds or refreshes a registration at `now`.
    pub fn upsert(
        &mut self,
        reg: Registration,
        now: Instant,
        wall: DateTime<Utc>,
        peer: Option<IpAddr>,
        max: usize,
    ) -> Result<Upsert, Refusal> {
        let expires = now + reg.ttl;
        if let Some(e) = self.entries.get_mut(&reg.id) {
            let outcome = if e.reg == reg {
                Upsert::Refreshed
            } else {
                Upsert::Updated
            };
            e.reg = reg;
            e.expires = expires;
            e.last_seen = wall;
            e.peer = peer;
            return Ok(outcome);
        }
        if self.entries.len() >= max {
            return Err(refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!("the registry is full ({max} registrations): try again later"),
            ));
        }
        self.entries.insert(
            reg.id.clone(),
            Entry {
                reg,
                expires,
                registered_at: wall,
                last_seen: wall,
                peer,
            },
        );
        Ok(Upsert::Created)
    }

    /// Removes one registration.
    pub fn remove(&mut self, id: &str) -> bool {
        self.entries.remove(id).is_some()
    }

    /// Removes and returns the ids expired at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let gone: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.entries.remove(id);
        }
        gone
    }

    /// The earliest expiry.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.expires).min()
    }

    /// Number of registrations.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn registrations(&self) -> Vec<Registration> {
        self.entries.values().map(|e| e.reg.clone()).collect()
    }
}

/// The registry file's content.
#[derive(Debug, Serialize, Deserialize)]
struct RegistryFile {
    version: u32,
    registrations: Vec<Registration>,
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length is not secret-dependent enough to matter (tokens have a
    // fixed length in practice); the content is compared without early exit.
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The registration service behind `/register`.
pub struct Registrar {
    cfg: RegisterConfig,
    app_label: Option<String>,
    state: Mutex<RegistryState>,
    poller: Arc<Poller>,
    changed: Notify,
    /// Serialises writes of the registry file, in order of changes.
    write_lock: tokio::sync::Mutex<()>,
    /// Ids of targets that failed `evict_after_failures` polls in a row.
    evictions: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar").finish_non_exhaustive()
    }
}

impl Registrar {
    /// A registrar adding targets to `poller`. Restores the registry file
    /// when there is one (each entry validated again, with a fresh TTL).
    pub async fn start(
        cfg: RegisterConfig,
        app_label: Option<String>,
        poller: Arc<Poller>,
    ) -> Arc<Registrar> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        poller.set_evictions(tx);
        let r = Arc::new(Registrar {
            cfg,
            app_label,
            state: Mutex::new(RegistryState::default()),
            poller,
            changed: Notify::new(),
            write_lock: tokio::sync::Mutex::new(()),
            evictions: tokio::sync::Mutex::new(rx),
        });
        if let Some(path) = r.cfg.registry_file.clone() {
            r.restore(&path).await;
        }
        r
    }

    /// The aggregator seed's endpoint, when configured.
    pub fn compat(&self) -> Option<&super::compat::CompatConfig> {
        self.cfg.compat.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn restore(&self, path: &Path) {
        let text = match tokio::fs::read(path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot read the registry file: starting empty");
                return;
            }
        };
        let file: RegistryFile = match serde_json::from_slice(&text) {
            Ok(f) => f,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "invalid registry file: starting empty");
                return;
            }
        };
        let mut restored = 0;
        for reg in file.registrations {
            // Re-validate: the limits may have changed since it was written.
            let doc = json!({
                "id": reg.id, "url": reg.url,
                "interval": reg.interval.as_secs_f64(), "ttl": reg.ttl.as_secs_f64(),
                "labels": reg.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
                "mapping": reg.mapping,
            });
            let reg = match validate(
                doc.to_string().as_bytes(),
                &self.cfg,
                self.app_label.as_deref(),
            ) {
                Ok(r) => r,
                Err(e) => {
                    warn!(id = %reg.id, error = %e.message, "dropping a restored registration");
                    continue;
                }
            };
            let up = self.lock().upsert(
                reg.clone(),
                Instant::now(),
                Utc::now(),
                None,
                self.cfg.max_registrations,
            );
            if up.is_ok() && self.poller.add_registered(self.target(&reg)).await.is_ok() {
                restored += 1;
            } else {
                self.lock().remove(&reg.id);
            }
        }
        self.poller.metrics_registrations(self.lock().len());
        info!(path = %path.display(), restored, "registry restored");
    }

    fn target(&self, reg: &Registration) -> TargetConfig {
        let mut labels = reg.labels.clone();
        // Two exporters with the same metrics must not collide.
        if self.cfg.instance_label && !labels.iter().any(|(k, _)| k == "instance") {
            labels.push(("instance".to_owned(), reg.id.clone()));
        }
        TargetConfig {
            name: reg.id.clone(),
            url: reg.url.clone(),
            interval: reg.interval,
            timeout: self.cfg.timeout.min(reg.interval),
            headers: Vec::new(),
            auth: None,
            ca_file: None,
            insecure_skip_verify: false,
            labels,
            max_body_bytes: self.cfg.max_body_bytes,
            stale_after: reg.ttl,
            mapping: reg
                .mapping
                .as_deref()
                .and_then(|m| crate::collect::mapping::find(&self.cfg.mappings, m).ok()),
            evict_after_failures: self.cfg.evict_after_failures,
        }
    }

    /// Checks the peer and the token.
    fn admit(&self, peer: Option<IpAddr>, authorization: Option<&str>) -> Result<(), Refusal> {
        let allowed = peer.is_some_and(|ip| {
            self.cfg
                .allowed_networks
                .iter()
                .any(|n| crate::netacl::contains(n, ip))
        });
        if !allowed {
            let who = peer.map_or_else(|| "an unknown address".to_owned(), |p| p.to_string());
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!("registration from {who} is not allowed: the address is outside `poll.register.allowed_networks`"),
            ));
        }
        if let Some(src) = &self.cfg.token {
            let want = src.read().map_err(|e| {
                warn!(error = %e, "cannot read the registration token");
                refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the registration token is not available",
                )
            })?;
            let given = authorization
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim)
                .unwrap_or("");
            if !constant_time_eq(given.as_bytes(), want.expose().as_bytes()) {
                return Err(refuse(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong token: send `Authorization: Bearer <token>`",
                ));
            }
        }
        Ok(())
    }

    /// `POST /register`: answers 201 for a new id, 200 for a heartbeat.
    pub async fn register(
        &self,
        peer: Option<IpAddr>,
        authorization: Option<&str>,
        body: &[u8],
    ) -> (StatusCode, Value) {
        match self.try_register(peer, authorization, body).await {
            Ok(v) => v,
            Err(r) => error_body(r),
        }
    }

    async fn try_register(
        &self,
        peer: Option<IpAddr>,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<(StatusCode, Value), Refusal> {
        self.admit(peer, authorization)?;
        let reg = validate(body, &self.cfg, self.app_label.as_deref())?;
        if self.poller.is_static(&reg.id) {
            return Err(refuse(
                StatusCode::CONFLICT,
                format!("id {:?} is a configured target's name", reg.id),
            ));
        }
        let outcome = self.lock().upsert(
            reg.clone(),
            Instant::now(),
            Utc::now(),
            peer,
            self.cfg.max_registrations,
        )?;
        if outcome != Upsert::Refreshed {
            if let Err(e) = self.poller.add_registered(self.target(&reg)).await {
                self.lock().remove(&reg.id);
                return Err(refuse(StatusCode::CONFLICT, e));
            }
            info!(id = %reg.id, url = %reg.url, ?outcome, "registration");
            self.poller.metrics_registrations(self.lock().len());
            self.save().await;
        }
        self.changed.notify_one();
        let status = if outcome == Upsert::Created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((
            status,
            json!({
                "ok": true,
                "id": reg.id,
                "url": reg.url,
                "created": outcome == Upsert::Created,
                "interval_seconds": reg.interval.as_secs_f64(),
                "ttl_seconds": reg.ttl.as_secs_f64(),
            }),
        ))
    }

    /// `DELETE /register/<id>`.
    pub async fn deregister(
        &self,
        peer: Option<IpAddr>,
        authorization: Option<&str>,
        id: &str,
    ) -> (StatusCode, Value) {
        if let Err(r) = self.admit(peer, authorization) {
            return error_body(r);
        }
        let existed = self.lock().remove(id);
        if !existed {
            return error_body(refuse(
                StatusCode::NOT_FOUND,
                format!("no registration with id {id:?}"),
            ));
        }
        self.poller.remove_registered(id).await;
        self.poller.metrics_registrations(self.lock().len());
        self.save().await;
        info!(id = %id, "deregistered");
        (
            StatusCode::OK,
            json!({"ok": true, "id": id, "removed": true}),
        )
    }

    /// `GET /register`.
    pub fn list(&self, peer: Option<IpAddr>, authorization: Option<&str>) -> (StatusCode, Value) {
        if let Err(r) = self.admit(peer, authorization) {
            return error_body(r);
        }
        let now = Instant::now();
        let wall = Utc::now();
        let state = self.lock();
        let regs: Vec<Value> = state
            .entries
            .values()
            .map(|e| {
                let left = e.expires.saturating_duration_since(now);
                let expires = wall + chrono::Duration::from_std(left).unwrap_or_default();
                json!({
                    "id": e.reg.id,
                    "url": e.reg.url,
                    "interval_seconds": e.reg.interval.as_secs_f64(),
                    "ttl_seconds": e.reg.ttl.as_secs_f64(),
                    "labels": e.reg.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
                    "registered_at": rfc3339(e.registered_at),
                    "last_seen": rfc3339(e.last_seen),
                    "expires_at": rfc3339(expires),
                    "peer": e.peer.map(|p| p.to_string()),
                })
            })
            .collect();
        (StatusCode::OK, json!({ "registrations": regs }))
    }

    /// Expires registrations until `shutdown`.
    pub async fn run_expiry(self: Arc<Self>, shutdown: CancellationToken) {
        // Only this loop receives evictions.
        let mut evictions = self.evictions.lock().await;
        loop {
            let next = self.lock().next_expiry();
            // Without registrations, sleep until something changes.
            let wake = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.changed.notified() => continue,
                Some(id) = evictions.recv() => {
                    self.evict(&id).await;
                    continue;
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
            let gone = self.lock().expire(Instant::now());
            if gone.is_empty() {
                continue;
            }
            for id in &gone {
                info!(id = %id, "registration expired");
                self.poller.remove_registered(id).await;
            }
            self.poller.metrics_registrations(self.lock().len());
            self.save().await;
        }
    }

    /// Removes a registration whose target failed `evict_after_failures`
    /// polls in a row, as the seed's aggregator does; its next POST
    /// registers it again.
    async fn evict(&self, id: &str) {
        if !self.lock().remove(id) {
            return;
        }
        warn!(id = %id, failures = ?self.cfg.evict_after_failures, "registration evicted after failed polls");
        self.poller.remove_registered(id).await;
        self.poller.metrics_registrations(self.lock().len());
        self.save().await;
    }

    /// Writes the registry file, if configured. Errors are logged: the
    /// in-memory registry stays authoritative.
    async fn save(&self) {
        let Some(path) = self.cfg.registry_file.clone() else {
            return;
        };
        let _order = self.write_lock.lock().await;
        let file = RegistryFile {
            version: 1,
            registrations: self.lock().registrations(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("registry serialises");
        let result =
            tokio::task::spawn_blocking(move || crate::fsutil::write_atomically(&path, &bytes))
                .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "cannot write the registry file"),
            Err(e) => warn!(error = %e, "cannot write the registry file"),
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn error_body(r: Refusal) -> (StatusCode, Value) {
    (r.status, json!({"ok": false, "error": r.message}))
}

#[cfg(test)]
mod tests;
