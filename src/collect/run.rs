//! One collector as a scheduler job: the steps (with a cookie jar and a
//! response cache), the extraction of variables, the metrics, and what a
//! result does to the store and the self-metrics.
//!
//! A cycle is all or nothing: every step must answer 2xx within the
//! collector's `timeout` (for all steps together) and every metric must
//! evaluate; only then is the new set committed (through the same
//! [`Store::prepare_with`]/[`Store::commit`] path as a push) and the delta
//! and observation state kept. A failed cycle marks the collector `down`
//! in `/apps` with the reason, and the last good values stay until
//! `stale_after` has passed since the last success.
//!
//! Secrets are read at every cycle and only put into requests: messages
//! name steps and URLs as written in the configuration (placeholders
//! unexpanded), and reqwest errors are stripped of their URL.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::metrics::{evaluate, Inputs, State};
use super::spec::{Body, CollectorConfig, ExtractFrom, Part, Source, Step, Template};
use crate::outbound::health::{fail, JobRef};
use crate::outbound::scheduler::{Job, RunFuture};
use crate::outbound::{self, ClientOptions, Cookies, Failure, Health, Outcome};
use crate::secret::Secret;
use crate::store::{AppKind, PrepareOptions, Store};
use crate::telemetry::{PollFailure, RejectReason};

/// A response as the steps and the cache keep it.
#[derive(Debug)]
struct Fetched {
    headers: HeaderMap,
    /// Cookies set by the response, name → value.
    cookies: Vec<(String, String)>,
    body: String,
}

#[derive(Default)]
struct Inner {
    /// Request hash → when fetched, response.
    cache: HashMap<u64, (Instant, Arc<Fetched>)>,
    state: State,
}

type Client = (reqwest::Client, Arc<reqwest::cookie::Jar>);

/// A collector as a scheduler job.
pub struct CollectJob {
    def: CollectorConfig,
    store: Arc<Store>,
    client: OnceLock<Result<Client, String>>,
    /// Runs of one job never overlap: the lock is never contended.
    inner: tokio::sync::Mutex<Inner>,
    health: Health,
}

impl std::fmt::Debug for CollectJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectJob")
            .field("def", &self.def)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CollectJob {
    fn eq(&self, other: &Self) -> bool {
        self.def == other.def
    }
}

impl Job for CollectJob {
    fn id(&self) -> &str {
        &self.def.name
    }

    fn interval(&self) -> Duration {
        self.def.interval
    }

    fn run(&self) -> RunFuture<'_> {
        Box::pin(self.cycle())
    }

    fn removed(&self) {
        self.store.remove_kind(&self.def.name, AppKind::Collector);
        self.store.self_metrics().remove_target(&self.def.name);
        info!(collector = %self.def.name, "collector removed");
    }
}

impl CollectJob {
    /// A job running `def` into `store`.
    pub fn new(def: CollectorConfig, store: Arc<Store>) -> CollectJob {
        CollectJob {
            def,
            store,
            client: OnceLock::new(),
            inner: tokio::sync::Mutex::new(Inner::default()),
            health: Health::default(),
        }
    }

    /// The definition.
    pub fn def(&self) -> &CollectorConfig {
        &self.def
    }

    /// One cycle: steps, metrics, store, self-metrics.
    pub async fn cycle(&self) {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.def.timeout, self.collect()).await {
            Ok(r) => r,
            Err(_) => Err(fail(
                PollFailure::Timeout,
                format!(
                    "the steps did not complete within the timeout of {}",
                    humantime::format_duration(self.def.timeout)
                ),
            )),
        };
        let name = &self.def.name;
        let source = self.def.source();
        let job = JobRef {
            name,
            kind: AppKind::Collector,
            source: &source,
            stale_after: self.def.stale_after,
        };
        let ok = result.as_ref().map(|_| ());
        match (
            self.health.record(&self.store, job, started.elapsed(), ok),
            &result,
        ) {
            (Outcome::CameUp, Ok(series)) => info!(collector = %name, series, "collector is up"),
            (Outcome::WentDown, Err(f)) => {
                warn!(collector = %name, reason = f.reason.as_str(), error = %f.message, "collector failed")
            }
            (Outcome::StillDown, Err(f)) => {
                debug!(collector = %name, reason = f.reason.as_str(), error = %f.message, "collector failed again")
            }
            _ => {}
        }
    }

    fn client(&self) -> Result<&Client, Failure> {
        self.client
            .get_or_init(|| {
                let jar = Arc::new(reqwest::cookie::Jar::default());
                outbound::build_client(&ClientOptions {
                    insecure_skip_verify: self.def.insecure_skip_verify,
                    cookies: Cookies::Jar(jar.clone()),
                    ..ClientOptions::default()
                })
                .map(|c| (c, jar))
            })
            .as_ref()
            .map_err(|e| fail(PollFailure::Request, e.clone()))
    }

    /// Runs the steps and the metrics; commits. Returns the series count.
    async fn collect(&self) -> Result<usize, Failure> {
        let mut inner = self.inner.lock().await;
        let secrets = self.read_secrets()?;
        let mut vars: HashMap<String, String> = HashMap::new();
        let mut responses: Vec<Arc<Fetched>> = Vec::new();
        // Responses of this cycle, by request: one request is sent once.
        let mut fresh: HashMap<u64, Arc<Fetched>> = HashMap::new();
        for step in &self.def.steps {
            let at = |e: String| format!("step {:?} ({}): {e}", step.name, step.url.text);
            let req = Request::build(step, &secrets, &vars)
                .map_err(|e| fail(PollFailure::Request, at(e)))?;
            let key = req.key();
            let cached = fresh.get(&key).cloned().or_else(|| {
                inner
                    .cache
                    .get(&key)
                    .filter(|(t, _)| t.elapsed() < self.def.cache_ttl)
                    .map(|(_, f)| f.clone())
            });
            let fetched = match cached {
                Some(f) => f,
                None => {
                    let f = Arc::new(self.send(req).await.map_err(|mut f| {
                        f.message = at(f.message);
                        f
                    })?);
                    fresh.insert(key, f.clone());
                    f
                }
            };
            for e in &step.extract {
                let v = extract(&e.from, &fetched, &self.client()?.1, &step.url).map_err(|m| {
                    fail(
                        PollFailure::InvalidBody,
                        at(format!("variable {}: {m}", e.var)),
                    )
                })?;
                vars.insert(e.var.clone(), v);
            }
            responses.push(fetched);
        }
        let wanted: BTreeSet<usize> = self
            .def
            .metrics
            .iter()
            .filter_map(|m| match &m.source {
                Source::Path { step, .. } | Source::Expr { step, .. } => Some(*step),
                Source::Var(_) => None,
            })
            .collect();
        let mut json = Vec::with_capacity(responses.len());
        for (i, r) in responses.iter().enumerate() {
            if wanted.contains(&i) {
                let v: Value = serde_json::from_str(&r.body).map_err(|e| {
                    fail(
                        PollFailure::InvalidBody,
                        format!(
                            "step {:?}: the response is not JSON: {e}",
                            self.def.steps[i].name
                        ),
                    )
                })?;
                json.push(Some(v));
            } else {
                json.push(None);
            }
        }
        // On the blocking pool: jq expressions may compute for a while
        // (bounded, see `collect::expr`).
        let (specs, state) = (self.def.metrics.clone(), inner.state.clone());
        let collector = self.def.name.clone();
        let evaluated = tokio::task::spawn_blocking(move || {
            let input = Inputs {
                json: &json,
                vars: &vars,
            };
            evaluate(&specs, &state, &input).map_err(|e| format!("collector {collector}: {e}"))
        })
        .await
        .map_err(|e| format!("evaluation failed: {e}"))
        .and_then(|r| r)
        .map_err(|e| fail(PollFailure::InvalidBody, e))?;
        let to_failure = |e: crate::store::PushError| {
            let reason = match e.reason {
                RejectReason::ParseError | RejectReason::TooManySeries => PollFailure::InvalidBody,
                _ => PollFailure::Rejected,
            };
            fail(reason, e.message)
        };
        let prepared = self
            .store
            .prepare_with(&self.def.name, &evaluated.text, &PrepareOptions::default())
            .map_err(to_failure)?;
        let series = self
            .store
            .commit(vec![prepared], AppKind::Collector, &self.def.source())
            .map_err(to_failure)?;
        inner.state = evaluated.state;
        if !self.def.cache_ttl.is_zero() {
            let now = Instant::now();
            let ttl = self.def.cache_ttl;
            inner.cache.retain(|_, (t, _)| t.elapsed() < ttl);
            for (k, f) in fresh {
                inner.cache.insert(k, (now, f));
            }
        }
        Ok(series)
    }

    fn read_secrets(&self) -> Result<HashMap<String, Secret>, Failure> {
        let mut out = HashMap::new();
        for (name, src) in &self.def.secrets {
            let s = src
                .read()
                .map_err(|e| fail(PollFailure::Credentials, format!("secret {name}: {e}")))?;
            out.insert(name.clone(), s);
        }
        Ok(out)
    }

    async fn send(&self, req: Request) -> Result<Fetched, Failure> {
        let (client, _) = self.client()?;
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|e| fail(PollFailure::Request, e.to_string()))?;
        let mut b = client.request(method, req.url);
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        if let Some((ctype, body)) = req.body {
            b = b.header(reqwest::header::CONTENT_TYPE, ctype).body(body);
        }
        let mut resp = b.send().await.map_err(Failure::transport)?;
        outbound::check_status(resp.status()).map_err(Failure::status)?;
        let headers = resp.headers().clone();
        let cookies = resp
            .cookies()
            .map(|c| (c.name().to_owned(), c.value().to_owned()))
            .collect();
        let body = outbound::read_bounded(&mut resp, self.def.max_body_bytes)
            .await
            .map_err(|e| Failure::body(e, "max_body_bytes"))?;
        let body = String::from_utf8(body)
            .map_err(|_| fail(PollFailure::InvalidBody, "the response is not UTF-8"))?;
        Ok(Fetched {
            headers,
            cookies,
            body,
        })
    }
}

/// A request with every placeholder expanded. Holds secrets: never logged,
/// never `Debug`.
struct Request {
    method: String,
    url: url::Url,
    headers: Vec<(String, String)>,
    body: Option<(&'static str, Vec<u8>)>,
}

impl Request {
    fn build(
        step: &Step,
        secrets: &HashMap<String, Secret>,
        vars: &HashMap<String, String>,
    ) -> Result<Request, String> {
        let x = |t: &Template| expand(t, secrets, vars);
        let mut url = url::Url::parse(&x(&step.url)?).map_err(|e| format!("invalid URL: {e}"))?;
        if !step.query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in &step.query {
                q.append_pair(k, &x(v)?);
            }
        }
        let headers = step
            .headers
            .iter()
            .map(|(k, v)| Ok((k.clone(), x(v)?)))
            .collect::<Result<Vec<_>, String>>()?;
        let body = match &step.body {
            Body::None => None,
            Body::Form(f) => {
                let mut s = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in f {
                    s.append_pair(k, &x(v)?);
                }
                Some(("application/x-www-form-urlencoded", s.finish().into_bytes()))
            }
            Body::Json(v) => Some((
                "application/json",
                serde_json::to_vec(&expand_json(v, secrets, vars)?).map_err(|e| e.to_string())?,
            )),
        };
        Ok(Request {
            method: step.method.clone(),
            url,
            headers,
            body,
        })
    }

    /// The cache key: a hash of everything sent.
    fn key(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(self.method.as_bytes());
        h.update(b"\0");
        h.update(self.url.as_str().as_bytes());
        for (k, v) in &self.headers {
            h.update(b"\0");
            h.update(k.to_ascii_lowercase().as_bytes());
            h.update(b":");
            h.update(v.as_bytes());
        }
        if let Some((c, b)) = &self.body {
            h.update(b"\0");
            h.update(c.as_bytes());
            h.update(b);
        }
        h.digest()
    }
}

fn expand(
    t: &Template,
    secrets: &HashMap<String, Secret>,
    vars: &HashMap<String, String>,
) -> Result<String, String> {
    let mut s = String::new();
    for p in &t.parts {
        match p {
            Part::Lit(l) => s.push_str(l),
            Part::Secret(n) => s.push_str(
                secrets
                    .get(n)
                    .ok_or_else(|| format!("secret {n} is not defined"))?
                    .expose(),
            ),
            Part::Var(n) => s.push_str(
                vars.get(n)
                    .ok_or_else(|| format!("variable {n} was not extracted"))?,
            ),
            Part::Now(t) => s.push_str(&t.render(chrono::Utc::now())),
        }
    }
    Ok(s)
}

fn expand_json(
    v: &Value,
    secrets: &HashMap<String, Secret>,
    vars: &HashMap<String, String>,
) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(expand(&Template::parse(s)?, secrets, vars)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| expand_json(x, secrets, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), expand_json(x, secrets, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Takes one variable from a response.
fn extract(
    from: &ExtractFrom,
    r: &Fetched,
    jar: &reqwest::cookie::Jar,
    url: &Template,
) -> Result<String, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!(
            "expected a string or a number, found {}",
            super::path::type_name(other)
        )),
    };
    match from {
        ExtractFrom::Json(p) => {
            let v: Value = serde_json::from_str(&r.body)
                .map_err(|e| format!("the response is not JSON: {e}"))?;
            scalar(p.one(&v)?).map_err(|e| format!("path `{p}`: {e}"))
        }
        ExtractFrom::Header(h) => r
            .headers
            .get(h.as_str())
            .ok_or_else(|| format!("no header {h:?} in the response"))?
            .to_str()
            .map(str::to_owned)
            .map_err(|_| format!("header {h:?} is not text")),
        ExtractFrom::Cookie(c) => {
            if let Some((_, v)) = r.cookies.iter().find(|(n, _)| n == c) {
                return Ok(v.clone());
            }
            // Set by an earlier response: look in the jar.
            use reqwest::cookie::CookieStore as _;
            let literal: String = match url.parts.first() {
                Some(Part::Lit(l)) => l.clone(),
                _ => String::new(),
            };
            url::Url::parse(&literal)
                .ok()
                .and_then(|u| jar.cookies(&u))
                .and_then(|h| h.to_str().ok().map(str::to_owned))
                .and_then(|all| {
                    all.split(';')
                        .filter_map(|kv| kv.trim().split_once('='))
                        .find(|(k, _)| k == c)
                        .map(|(_, v)| v.to_owned())
                })
                .ok_or_else(|| format!("no cookie {c:?} was set"))
        }
        ExtractFrom::Css { selector, attr } => {
            let sel = scraper::Selector::parse(selector)
                .map_err(|e| format!("invalid CSS selector: {e}"))?;
            let doc = scraper::Html::parse_document(&r.body);
            let el = doc
                .select(&sel)
                .next()
                .ok_or_else(|| format!("no element matches the CSS selector {selector:?}"))?;
            match attr {
                Some(a) => el.value().attr(a).map(str::to_owned).ok_or_else(|| {
                    format!("the element matching {selector:?} has no attribute {a:?}")
                }),
                None => Ok(el.text().collect::<String>().trim().to_owned()),
            }
        }
        ExtractFrom::Regex(re) => {
            let caps =
                re.0.captures(&r.body)
                    .ok_or_else(|| format!("the regex {:?} does not match", re.0.as_str()))?;
            let m = caps.get(1).or_else(|| caps.get(0)).map(|m| m.as_str());
            Ok(m.unwrap_or_default().to_owned())
        }
    }
}
