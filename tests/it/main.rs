//! The one integration-test binary: starts the real server on port 0 and a
//! temp-dir socket, and talks to it over real sockets.
//!
//! The `interop` module drives real external peers (promtool, Python's
//! prometheus_client and pycapnp, netcat); `scripts/test.sh` installs them.
//! A missing tool fails the test: it is never skipped.

mod activation;
mod aggregator;
mod bad_input;
mod cli;
mod cli_http;
mod collect;
mod daemons;
mod docker;
mod edges;
mod edges_refusals;
mod expfmt;
mod exporters;
mod golang;
mod grafana;
mod gzip_clients;
mod http;
mod interop;
mod load;
mod persist;
mod poll;
mod portals;
mod providers;
mod push;
mod pushgw;
mod readme;
mod register;
mod reload;
mod rpc;
mod sd;
mod sinks;
mod support;
mod tls;
mod ui;
