//! `[receiver]`: the push listeners in both layouts of the original (the
//! master branch's flat keys and the per-format `[receiver.capnp]` /
//! `[receiver.json]` tables), `[receiver.rpc]`, the app label and the
//! networks TCP peers may come from.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::walk::{expected, Diagnostics, Section};
use crate::ingest::config::{Endpoint, ReceiverConfig, RpcConfig, UnixSocketConfig, WireFormat};
use crate::netacl::AllowedNetworks;

/// What `[receiver]` configures.
pub(super) struct Receivers {
    /// Stream listeners, flat layout first, then the per-format tables.
    pub(super) receivers: Vec<ReceiverConfig>,
    /// `[receiver.rpc]`, when present and valid.
    pub(super) rpc: Option<RpcConfig>,
    /// `receiver.app_label`.
    pub(super) app_label: Option<String>,
    /// `receiver.allowed_networks`.
    pub(super) allowed_networks: Option<AllowedNetworks>,
}

/// Walks `[receiver]`. Every listener may hold `concurrent` connections;
/// addresses are checked for clashes with each other and with the HTTP
/// port `http_listen`.
pub(super) fn build_receivers(
    top: &mut Section<'_>,
    concurrent: usize,
    http_listen: SocketAddr,
    cx: &mut Diagnostics,
) -> Receivers {
    let mut receiver = top.sub("receiver", cx);
    let app_label = receiver.string("app_label", cx);
    if let Some(l) = &app_label {
        check_app_label(l, cx);
    }
    let default_mode = receiver.mode("unix_socket_mode", cx).unwrap_or(0o660);
    let allowed_networks = allowed_networks(&mut receiver, cx);
    let mut receivers = flat_listeners(&mut receiver, concurrent, default_mode, cx);
    receivers.extend(per_format_listeners(
        &mut receiver,
        concurrent,
        default_mode,
        cx,
    ));
    let rpc = rpc_listener(&mut receiver, concurrent, cx);
    receiver.finish(cx);

    check_duplicate_endpoints(&receivers, rpc.as_ref(), http_listen, cx);
    if allowed_networks.is_none() {
        warn_open_tcp(&receivers, rpc.as_ref(), cx);
    }
    Receivers {
        receivers,
        rpc,
        app_label,
        allowed_networks,
    }
}

/// `receiver.app_label` must be a label name that pushes cannot clash with
/// in their own right: not reserved by histograms and summaries, not `__`.
fn check_app_label(l: &str, cx: &mut Diagnostics) {
    if l == "le" || l == "quantile" {
        cx.problems.push(format!(
            "`receiver.app_label`: {l:?} is reserved for histogram buckets and summary quantiles"
        ));
    } else if !crate::exposition::is_valid_label_name(l) || l.starts_with("__") {
        cx.problems.push(format!(
            "`receiver.app_label`: {l:?} is not a valid label name (expected [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
        ));
    }
}

/// `receiver.allowed_networks`: an array of CIDR strings.
fn allowed_networks(receiver: &mut Section<'_>, cx: &mut Diagnostics) -> Option<AllowedNetworks> {
    receiver.get("allowed_networks", cx, super::walk::networks)
}

/// The master layout: one `format` for the flat `receive_on_unix_socket` /
/// `receive_on_tcp_socket` listeners (named `unix` and `tcp`).
fn flat_listeners(
    receiver: &mut Section<'_>,
    concurrent: usize,
    default_mode: u32,
    cx: &mut Diagnostics,
) -> Vec<ReceiverConfig> {
    let mut receivers = Vec::new();
    let format = receiver.get("format", cx, |v| match v.as_str() {
        Some("json") => Ok(WireFormat::Json),
        Some("capnp") => Ok(WireFormat::Capnp),
        Some("auto") => Ok(WireFormat::Auto),
        Some(s) => Err(format!(
            "expected \"json\", \"capnp\" or \"auto\", found {s:?}"
        )),
        None => Err(expected("a string", v)),
    });
    let format = format.unwrap_or(WireFormat::Auto);
    let unix_on = receiver.bool("receive_on_unix_socket", cx);
    let unix_path = receiver.string("receiver_unix_socket", cx);
    let unix_user = receiver.string("unix_socket_user", cx);
    let unix_group = receiver.string("unix_socket_group", cx);
    let tcp_on = receiver.bool("receive_on_tcp_socket", cx);
    let tcp_addr = receiver.addr("receiver_tcp_socket", cx);
    let unix_ttl = receiver.ttl("unix_socket_ttl", cx);
    let tcp_ttl = receiver.ttl("tcp_socket_ttl", cx);
    if unix_on.unwrap_or(unix_path.is_some()) {
        match unix_path {
            Some(path) => receivers.push(ReceiverConfig {
                name: "unix".to_owned(),
                endpoint: Endpoint::Unix(UnixSocketConfig {
                    path: PathBuf::from(path),
                    user: owner(unix_user, "current_user"),
                    group: owner(unix_group, "current_group"),
                    mode: default_mode,
                }),
                format,
                max_connections: concurrent,
                ttl: unix_ttl,
            }),
            // A present but invalid value was already reported.
            None if receiver.has("receiver_unix_socket") => {}
            None => cx.problems.push(
                "`receiver.receiver_unix_socket`: required when `receive_on_unix_socket = true`"
                    .to_owned(),
            ),
        }
    }
    if tcp_on.unwrap_or(tcp_addr.is_some()) {
        match tcp_addr {
            Some(addr) => receivers.push(ReceiverConfig {
                name: "tcp".to_owned(),
                endpoint: Endpoint::Tcp(addr),
                format,
                max_connections: concurrent,
                ttl: tcp_ttl,
            }),
            None if receiver.has("receiver_tcp_socket") => {}
            None => cx.problems.push(
                "`receiver.receiver_tcp_socket`: required when `receive_on_tcp_socket = true`"
                    .to_owned(),
            ),
        }
    }
    receivers
}

/// The per-format layout: `[receiver.capnp]` and `[receiver.json]`, each
/// with an optional Unix and TCP listener (`capnp_unix`, `json_tcp`, ...).
fn per_format_listeners(
    receiver: &mut Section<'_>,
    concurrent: usize,
    default_mode: u32,
    cx: &mut Diagnostics,
) -> Vec<ReceiverConfig> {
    let mut receivers = Vec::new();
    for (key, fmt) in [("capnp", WireFormat::Capnp), ("json", WireFormat::Json)] {
        let mut t = receiver.sub(key, cx);
        if !t.present() {
            continue;
        }
        let path = t.string("receiver_unix_socket", cx);
        let user = t.string("unix_socket_user", cx);
        let group = t.string("unix_socket_group", cx);
        let mode = t.mode("unix_socket_mode", cx).unwrap_or(default_mode);
        let ttl = t.ttl("ttl", cx);
        if let Some(path) = path {
            receivers.push(ReceiverConfig {
                name: format!("{key}_unix"),
                endpoint: Endpoint::Unix(UnixSocketConfig {
                    path: PathBuf::from(path),
                    user: owner(user, "current_user"),
                    group: owner(group, "current_group"),
                    mode,
                }),
                format: fmt,
                max_connections: concurrent,
                ttl,
            });
        }
        if let Some(addr) = t.addr("receiver_tcp_socket", cx) {
            receivers.push(ReceiverConfig {
                name: format!("{key}_tcp"),
                endpoint: Endpoint::Tcp(addr),
                format: fmt,
                max_connections: concurrent,
                ttl,
            });
        }
        t.finish(cx);
    }
    receivers
}

/// `[receiver.rpc]`: the Cap'n Proto RPC listener.
fn rpc_listener(
    receiver: &mut Section<'_>,
    concurrent: usize,
    cx: &mut Diagnostics,
) -> Option<RpcConfig> {
    let mut rpc_t = receiver.sub("rpc", cx);
    if !rpc_t.present() {
        return None;
    }
    let listen = rpc_t.addr("receiver_tcp_socket", cx);
    let ttl = rpc_t.ttl("ttl", cx);
    if listen.is_none() && !rpc_t.has("receiver_tcp_socket") {
        cx.problems
            .push("`receiver.rpc.receiver_tcp_socket`: required in `[receiver.rpc]`".to_owned());
    }
    rpc_t.finish(cx);
    listen.map(|listen| RpcConfig {
        listen,
        max_connections: concurrent,
        ttl,
    })
}

/// Without `allowed_networks`, a TCP receiver on a non-loopback address
/// takes pushes from anyone: worth a warning, not a refusal.
fn warn_open_tcp(receivers: &[ReceiverConfig], rpc: Option<&RpcConfig>, cx: &mut Diagnostics) {
    let tcp = receivers.iter().filter_map(|r| match &r.endpoint {
        Endpoint::Tcp(a) => Some(*a),
        Endpoint::Unix(_) => None,
    });
    for a in tcp.chain(rpc.map(|r| r.listen)) {
        if !a.ip().is_loopback() {
            cx.warnings.push(format!(
                "a TCP receiver listens on {a} and accepts pushes from any peer: \
                 set `receiver.allowed_networks` to restrict it"
            ));
        }
    }
}

/// `current_user` / `current_group` (and absence) mean "the process's own".
fn owner(v: Option<String>, magic: &str) -> Option<String> {
    v.filter(|s| s != magic)
}

/// Reports every listener address (TCP or Unix path) used twice, naming
/// both keys.
fn check_duplicate_endpoints(
    receivers: &[ReceiverConfig],
    rpc: Option<&RpcConfig>,
    http: SocketAddr,
    cx: &mut Diagnostics,
) {
    // Port 0 asks the kernel for a free port: never a clash.
    let tcp = |a: &SocketAddr| (a.port() != 0).then(|| a.to_string());
    let mut seen: Vec<(String, String)> = Vec::new();
    if let Some(a) = tcp(&http) {
        seen.push((a, "exporter.scrape_expose_endpoint".into()));
    }
    if let Some(a) = rpc.and_then(|r| tcp(&r.listen)) {
        seen.push((a, "receiver.rpc.receiver_tcp_socket".into()));
    }
    for r in receivers {
        // The key the receiver came from: `unix`/`tcp` are the master
        // layout's flat keys, `json_tcp` etc. the per-format tables.
        let table = match r.name.split_once('_') {
            Some((format, _)) => format!("receiver.{format}"),
            None => "receiver".to_owned(),
        };
        let (addr, key) = match &r.endpoint {
            Endpoint::Tcp(a) => match tcp(a) {
                Some(a) => (a, format!("{table}.receiver_tcp_socket")),
                None => continue,
            },
            Endpoint::Unix(u) => (
                u.path.display().to_string(),
                format!("{table}.receiver_unix_socket"),
            ),
        };
        seen.push((addr, key));
    }
    for (i, (a, key)) in seen.iter().enumerate() {
        if let Some((_, other)) = seen[..i].iter().find(|(b, _)| b == a) {
            cx.problems
                .push(format!("`{key}`: address {a} is already used by `{other}`"));
        }
    }
}
