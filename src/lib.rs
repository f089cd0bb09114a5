//! exporter-proxy: a metrics multiplexer.
//!
//! Applications push Prometheus text over Unix or TCP sockets (JSON or
//! Cap'n Proto envelopes, or Cap'n Proto RPC); every push atomically
//! replaces that application's set; everything is served merged, as one
//! valid exposition, on one HTTP port.
//!
//! Layout (see `ARCHITECTURE.md`):
//!
//! * [`config`]: TOML → validated [`config::Config`] (pure).
//! * [`exposition`]: the text-format parser and encoder, protobuf and
//!   OpenMetrics output (pure).
//! * [`store`]: app → metrics map, atomic replace, cross-app checks, cached render.
//! * [`ingest`]: receivers (accept loop, JSON/capnp codec, Unix sockets, RPC).
//! * [`collect`]: config-driven API collectors (steps, mappings).
//! * [`poll`]: polling other exporters, self-registration, service discovery.
//! * [`providers`]: built-in self-service-portal balance collectors.
//! * [`http`]: `/metrics`, `/apps`, `/register`, health endpoints, the web UI.
//! * [`pushgw`]: the Pushgateway-compatible push API.
//! * [`sinks`]: forwarding to remote write and InfluxDB.
//! * [`persist`]: the snapshot file.
//! * [`telemetry`]: self-metrics and logging.
//! * [`web`]: TLS and basic auth of the HTTP port (Prometheus web config
//!   file), and the HTTP(S) accept loop.
//! * [`netacl`]: allowed networks of the TCP receivers (pure).
//! * [`activation`]: sockets handed over by systemd.
//! * [`app`]: bind everything, run, shut down.
//! * [`cli`]: the `push` and `apps` client subcommands.
//! * [`healthcheck`]: the `healthcheck` subcommand (container health checks).
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
