//! exporter-proxy: a metrics multiplexer.
//!
//! Applications push Prometheus text over Unix or TCP sockets (JSON or
//! Cap'n Proto envelopes, or Cap'n Proto RPC); every push atomically
//! replaces that application's set; everything is served merged, as one
//! valid exposition, on one HTTP port.
//!
//! Layout, by layer from the top (see `ARCHITECTURE.md`; imports point
//! down, checked by `scripts/check_layers.py`):
//!
//! * [`app`]: bind everything, run, reload, shut down; [`cli`]: the `push`
//!   and `apps` client subcommands; [`healthcheck`]: container health checks.
//! * [`http`]: the HTTP port: `/metrics`, `/apps`, the push API, `/register`,
//!   health, the web UI, TLS and basic auth, the accept loop.
//! * [`config`]: walks the TOML and assembles the subsystems' own config types.
//! * [`poll`]: polling other exporters, self-registration, service discovery.
//! * [`ingest`]: receivers (accept loop, JSON/capnp codec, Unix sockets, RPC);
//!   [`collect`]: config-driven API collectors; [`providers`]: portal balance
//!   collectors; [`sinks`]: remote write and InfluxDB; [`persist`]: the
//!   snapshot file.
//! * [`outbound`]: the scheduler and everything outbound HTTP jobs share.
//! * [`store`]: app → metrics map, atomic replace, cross-app checks, cached render.
//! * [`telemetry`]: self-metrics and logging.
//! * Leaves: [`exposition`] (parser and encoders, pure), [`secret`],
//!   [`netacl`], [`ttl`], [`units`], [`fsutil`], [`activation`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod activation;
pub mod app;
pub mod cli;
pub mod collect;
pub mod config;
pub mod exposition;
pub mod fsutil;
#[allow(missing_docs)]
pub mod generated;
pub mod healthcheck;
pub mod http;
pub mod ingest;
pub mod netacl;
pub mod outbound;
pub mod persist;
pub mod poll;
pub mod providers;
pub mod secret;

pub mod sinks;
pub mod store;
pub mod telemetry;
pub mod ttl;
pub mod units;
