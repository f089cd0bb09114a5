//! Tests of [`Config::parse`]: both layouts of the original, defaults, value
//! syntaxes, and the collected problem lists.
//!
//! Valid documents go through [`check`], which compares the whole parsed
//! [`Config`] with the defaults edited by the test, so that an unexpected
//! change to any other field fails too. Invalid documents go through
//! [`check_problems`], which compares the exact list of problems.

use super::*;
use crate::ingest::config::{Endpoint, UnixSocketConfig, WireFormat};
use crate::poll::config::*;
use crate::secret::SecretSource;
use crate::store::Ttl;

/// The configuration an empty document produces.
fn defaults() -> Config {
    Config {
        worker_threads: 0,
        http_listen: "127.0.0.1:6555".parse().unwrap(),
        receivers: Vec::new(),
        rpc: None,
        app_label: None,
        limits: Limits::default(),
        shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        poll: PollConfig {
            targets: Vec::new(),
            max_concurrent: DEFAULT_MAX_CONCURRENT_POLLS as usize,
            register: None,
            mappings: Vec::new(),
            sd: Vec::new(),
        },
        push_api: true,
        sinks: Vec::new(),
        persistence: None,
        default_ttl: Ttl::Never,
        expiry_interval: secs(1),
        push_api_ttl: None,
        web_config_file: None,
        allowed_networks: None,
        collectors: Vec::new(),
        providers: None,
        gates: crate::http::gates::Gates::default(),
    }
}

/// Parses `text`, which must be valid, and returns the result.
#[track_caller]
fn parse_ok(text: &str) -> Loaded {
    Config::parse(text).unwrap_or_else(|e| panic!("{e}\ninput:\n{text}"))
}

/// Parses `text` and expects the defaults changed by `edit`, and no warnings.
#[track_caller]
fn check(text: &str, edit: impl FnOnce(&mut Config)) {
    check_warnings(text, edit, &[]);
}

/// Parses `text` and expects the defaults changed by `edit`, and exactly
/// the warnings `warnings`.
#[track_caller]
fn check_warnings(text: &str, edit: impl FnOnce(&mut Config), warnings: &[&str]) {
    let loaded = parse_ok(text);
    let mut expected = defaults();
    edit(&mut expected);
    assert_eq!(loaded.config, expected, "input:\n{text}");
    assert_eq!(loaded.warnings, warnings, "input:\n{text}");
}

/// Parses `text` and expects exactly the problems `expected`, in any order.
#[track_caller]
fn check_problems(text: &str, expected: &[&str]) {
    let err = match Config::parse(text) {
        Ok(l) => panic!("expected problems {expected:#?}, parsed:\n{:#?}", l.config),
        Err(e) => e,
    };
    assert_eq!(err.path, None);
    let mut got = err.problems.clone();
    got.sort();
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "input:\n{text}");
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn tcp(name: &str, a: &str, format: WireFormat, max_connections: usize) -> ReceiverConfig {
    ReceiverConfig {
        name: name.to_owned(),
        endpoint: Endpoint::Tcp(addr(a)),
        format,
        max_connections,
        ttl: None,
    }
}

fn unix(
    name: &str,
    path: &str,
    owner: Option<&str>,
    format: WireFormat,
    max_connections: usize,
) -> ReceiverConfig {
    ReceiverConfig {
        name: name.to_owned(),
        endpoint: Endpoint::Unix(UnixSocketConfig {
            path: PathBuf::from(path),
            user: owner.map(str::to_owned),
            group: owner.map(str::to_owned),
            mode: 0o660,
        }),
        format,
        max_connections,
        ttl: None,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---- the original's layouts ----

/// The original's `config.toml` on master, every key with its sample value.
const MASTER: &str = r#"
[exporter]
worker_threads = 0
concurrent_requests = 2048
scrape_expose_endpoint = "0.0.0.0:6555"

[receiver]
format = "json"
receive_on_unix_socket = true
receiver_unix_socket = "/var/run/exporter-proxy-receiver.sock"
unix_socket_user = "current_user"
unix_socket_group = "current_group"
receive_on_tcp_socket = true
receiver_tcp_socket = "127.0.0.1:6554"

[poll_external]
poll_other_scrape_endpoints = false
other_scrape_endpoints = ["http://127.0.0.1:1025/1025.html", "http://127.0.0.1:1026/1026.html", "http://127.0.0.1:1027/1027.html"]
allow_invalid_certs = true
poll_interval = 5
client_timeout = 2
"#;

#[test]
fn master_layout_of_the_original() {
    check(MASTER, |c| {
        c.http_listen = addr("0.0.0.0:6555");
        c.receivers = vec![
            unix(
                "unix",
                "/var/run/exporter-proxy-receiver.sock",
                None,
                WireFormat::Json,
                2048,
            ),
            tcp("tcp", "127.0.0.1:6554", WireFormat::Json, 2048),
        ];
        // `poll_other_scrape_endpoints = false`: no targets.
    });
}

#[test]
fn master_layout_flags_switch_listeners() {
    // Disabled listeners are not built even when their address is given.
    check(
        r#"
        [receiver]
        format = "capnp"
        receive_on_unix_socket = false
        receiver_unix_socket = "/tmp/x.sock"
        receive_on_tcp_socket = false
        receiver_tcp_socket = "127.0.0.1:6554"
        "#,
        |_| {},
    );
    // Without the switches, an address alone enables its listener; the
    // default format is auto-detection.
    check(
        r#"
        [exporter]
        concurrent_requests = 7
        [receiver]
        receiver_unix_socket = "/tmp/x.sock"
        receiver_tcp_socket = "127.0.0.1:6554"
        "#,
        |c| {
            c.receivers = vec![
                unix("unix", "/tmp/x.sock", None, WireFormat::Auto, 7),
                tcp("tcp", "127.0.0.1:6554", WireFormat::Auto, 7),
            ];
        },
    );
}

/// The per-format layout of the original's `granular_locks` branch.
const PER_FORMAT: &str = r#"
[exporter]
worker_threads = 0
concurrent_requests = 2048
scrape_expose_endpoint = "0.0.0.0:6555"
stale_check_interval = 1
stale_metric_ttl = 10

[receiver]

[receiver.capnp]
receiver_unix_socket = "/var/run/exporter-proxy-receiver-capnp.sock"
unix_socket_user = "root"
unix_socket_group = "root"
receiver_tcp_socket = "127.0.0.1:6554"

[receiver.json]
receiver_unix_socket = "/var/run/exporter-proxy-receiver-json.sock"
unix_socket_user = "root"
unix_socket_group = "root"
receiver_tcp_socket = "127.0.0.1:6553"

[poll_external]
other_scrape_endpoints = ["http://127.0.0.1:1025/1025.html", "http://127.0.0.1:1026/1026.html", "http://127.0.0.1:1027/1027.html"]
allow_invalid_certs = true
poll_interval = 5
client_timeout = 2
"#;

#[test]
fn per_format_layout_of_the_original() {
    let loaded = parse_ok(PER_FORMAT);
    let mut expected = defaults();
    expected.http_listen = addr("0.0.0.0:6555");
    expected.receivers = vec![
        unix(
            "capnp_unix",
            "/var/run/exporter-proxy-receiver-capnp.sock",
            Some("root"),
            WireFormat::Capnp,
            2048,
        ),
        tcp("capnp_tcp", "127.0.0.1:6554", WireFormat::Capnp, 2048),
        unix(
            "json_unix",
            "/var/run/exporter-proxy-receiver-json.sock",
            Some("root"),
            WireFormat::Json,
            2048,
        ),
        tcp("json_tcp", "127.0.0.1:6553", WireFormat::Json, 2048),
    ];
    // The table's presence enables polling on that branch: one target per
    // URL, named by the URL (never by the resolved address).
    let targets = &loaded.config.poll.targets;
    let urls: Vec<&str> = targets.iter().map(|t| t.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "http://127.0.0.1:1025/1025.html",
            "http://127.0.0.1:1026/1026.html",
            "http://127.0.0.1:1027/1027.html",
        ]
    );
    for t in targets {
        assert_eq!((t.interval, t.timeout), (secs(5), secs(2)));
        assert!(t.insecure_skip_verify, "allow_invalid_certs = true");
    }
    expected.poll = loaded.config.poll.clone();
    // The branch's intended TTL keys are implemented: period and TTL.
    expected.expiry_interval = secs(1);
    expected.default_ttl = Ttl::After(secs(10));
    assert_eq!(loaded.config, expected);
    assert_eq!(loaded.warnings, Vec::<String>::new());
}

#[test]
fn per_format_tables_are_optional_and_may_be_partial() {
    check(
        r#"
        [receiver.json]
        receiver_tcp_socket = "127.0.0.1:6553"
        "#,
        |c| c.receivers = vec![tcp("json_tcp", "127.0.0.1:6553", WireFormat::Json, 2048)],
    );
    // `current_user` / `current_group` are accepted in this layout too, and
    // a mode set in `[receiver]` applies unless the table overrides it.
    check(
        r#"
        [receiver]
        unix_socket_mode = "0600"
        [receiver.capnp]
        receiver_unix_socket = "/tmp/c.sock"
        unix_socket_user = "current_user"
        unix_socket_group = "current_group"
        [receiver.json]
        receiver_unix_socket = "/tmp/j.sock"
        unix_socket_mode = "0640"
        "#,
        |c| {
            let mut capnp = unix("capnp_unix", "/tmp/c.sock", None, WireFormat::Capnp, 2048);
            let mut json = unix("json_unix", "/tmp/j.sock", None, WireFormat::Json, 2048);
            for (r, mode) in [(&mut capnp, 0o600), (&mut json, 0o640)] {
                let Endpoint::Unix(u) = &mut r.endpoint else {
                    unreachable!()
                };
                u.mode = mode;
            }
            c.receivers = vec![capnp, json];
        },
    );
}

// ---- defaults and value syntaxes ----

#[test]
fn empty_document_gives_the_defaults() {
    check("", |_| {});
    check("# only a comment\n\n", |_| {});
    let d = defaults();
    assert_eq!(d.limits.max_push_bytes, 16 * 1024 * 1024);
    assert_eq!(d.limits.max_series_per_app, 100_000);
    assert_eq!(d.limits.max_apps, 10_000);
    assert_eq!(d.limits.pack_above_series, 300_000);
    assert_eq!(d.store_options().pack_above_series, 300_000);
    assert_eq!(d.limits.read_timeout, secs(30));
    assert_eq!(d.limits.idle_timeout, secs(10));
    assert_eq!(d.shutdown_grace, secs(10));
}

#[test]
fn empty_poll_table_means_no_targets() {
    check("[poll_external]\n", |_| {});
    check(
        "[poll_external]\npoll_other_scrape_endpoints = false\n",
        |_| {},
    );
}

#[test]
fn durations_as_seconds_or_strings() {
    check("[limits]\nread_timeout = 45", |c| {
        c.limits.read_timeout = secs(45)
    });
    check("[limits]\nidle_timeout = \"500ms\"", |c| {
        c.limits.idle_timeout = Duration::from_millis(500)
    });
    check("[limits]\nread_timeout = \"1m30s\"", |c| {
        c.limits.read_timeout = secs(90)
    });
    check("[exporter]\nshutdown_grace_period = \"2s\"", |c| {
        c.shutdown_grace = secs(2)
    });
    // Zero grace is allowed: shut down at once.
    check("[exporter]\nshutdown_grace_period = 0", |c| {
        c.shutdown_grace = Duration::ZERO
    });
    let loaded = parse_ok(
        "[poll_external]\nother_scrape_endpoints = [\"http://h:1/m\"]\npoll_interval = \"1m\"\nclient_timeout = \"1500ms\"",
    );
    let t = &loaded.config.poll.targets[0];
    assert_eq!(
        (t.interval, t.timeout),
        (secs(60), Duration::from_millis(1500))
    );
}

#[test]
fn sizes_as_bytes_or_strings() {
    for (value, bytes) in [
        ("1024", 1024),
        ("\"16MiB\"", 16 << 20),
        ("\"512KiB\"", 512 << 10),
        ("\"2GiB\"", 2 << 30),
        ("\"100B\"", 100),
        ("\"7\"", 7),
    ] {
        check(&format!("[limits]\nmax_push_bytes = {value}"), |c| {
            c.limits.max_push_bytes = bytes;
            // The budget holds at least one full-size push.
            c.limits.max_inflight_push_bytes = c.limits.max_inflight_push_bytes.max(bytes);
        });
    }
}

#[test]
fn edge_limits_and_write_gates() {
    check(
        "[exporter]\nenable_lifecycle = true\nenable_admin_api = true\nmax_http_connections = 50\n\
         [limits]\nstream_idle_timeout = \"never\"\nmax_inflight_push_bytes = \"64MiB\"\nmax_queued_connections = 10\nlisten_backlog = 8192\n\
         [push_api]\nallowed_networks = [\"10.0.0.0/8\"]",
        |c| {
            c.gates.lifecycle = true;
            c.gates.admin_api = true;
            c.gates.max_http_connections = 50;
            c.gates.push_api_networks =
                crate::netacl::AllowedNetworks::parse(&["10.0.0.0/8"]).unwrap();
            c.limits.stream_idle_timeout = None;
            c.limits.max_inflight_push_bytes = 64 << 20;
            c.limits.max_queued_connections = 10;
            c.limits.listen_backlog = 8192;
        },
    );
    check("[limits]\nstream_idle_timeout = \"1h\"", |c| {
        c.limits.stream_idle_timeout = Some(secs(3600))
    });
    assert!(defaults().limits.stream_idle_timeout >= Some(secs(600)));
    assert!(!defaults().gates.lifecycle && !defaults().gates.admin_api);
    check_problems(
        "[exporter]\nenable_lifecycle = 1\n[limits]\nmax_inflight_push_bytes = \"1MiB\"\n[push_api]\nallowed_networks = []",
        &[
            "`exporter.enable_lifecycle`: expected a boolean, found integer",
            "`limits.max_inflight_push_bytes`: 1048576 is below `limits.max_push_bytes` (16777216): a full-size push could never be received",
            "`push_api.allowed_networks`: an empty list would refuse every peer; leave the key out to allow any peer",
        ],
    );
}

#[test]
fn unix_socket_modes() {
    for (value, mode) in [
        ("\"0600\"", 0o600),
        ("\"660\"", 0o660),
        ("\"0o640\"", 0o640),
        ("0o644", 0o644),
        ("\"0\"", 0),
    ] {
        check(
            &format!(
                "[receiver]\nreceiver_unix_socket = \"/tmp/s.sock\"\nunix_socket_mode = {value}"
            ),
            |c| {
                let mut r = unix("unix", "/tmp/s.sock", None, WireFormat::Auto, 2048);
                let Endpoint::Unix(u) = &mut r.endpoint else {
                    unreachable!()
                };
                u.mode = mode;
                c.receivers = vec![r];
            },
        );
    }
}

#[test]
fn other_settings() {
    check(
        r#"
        [exporter]
        worker_threads = 4
        [receiver]
        app_label = "app"
        [receiver.rpc]
        receiver_tcp_socket = "[::1]:6556"
        [limits]
        max_series_per_app = 10
        max_apps = 3
        pack_above_series = 0
        "#,
        |c| {
            c.worker_threads = 4;
            c.app_label = Some("app".to_owned());
            c.rpc = Some(RpcConfig {
                listen: addr("[::1]:6556"),
                max_connections: 2048,
                ttl: None,
            });
            c.limits.max_series_per_app = 10;
            c.limits.max_apps = 3;
            c.limits.pack_above_series = 0;
        },
    );
    // The bounds of `concurrent_requests` themselves are accepted.
    for n in [1, 65534] {
        check(
            &format!("[exporter]\nconcurrent_requests = {n}\n[receiver]\nreceiver_tcp_socket = \"127.0.0.1:1\""),
            |c| c.receivers = vec![tcp("tcp", "127.0.0.1:1", WireFormat::Auto, n)],
        );
    }
}

#[test]
fn push_api_switch() {
    check("[push_api]\nenabled = false", |c| c.push_api = false);
    check("[push_api]\n", |_| {});
    check_problems(
        "[push_api]\nenabled = 1\nport = 2",
        &[
            "`push_api.enabled`: expected a boolean, found integer",
            "`push_api.port`: unknown key",
        ],
    );
}

// ---- problems ----

#[test]
fn invalid_toml_is_one_problem() {
    for text in ["[exporter\n", "worker_threads = = 1", "a = 1\na = 2\n"] {
        let err = Config::parse(text).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(
            err.problems[0].starts_with("not valid TOML: "),
            "{}",
            err.problems[0]
        );
    }
}

#[test]
fn wrong_types_name_their_keys() {
    check_problems(
        r#"
        [exporter]
        worker_threads = "4"
        concurrent_requests = 1.5
        scrape_expose_endpoint = 6555
        shutdown_grace_period = true
        [receiver]
        format = 1
        receive_on_tcp_socket = "yes"
        unix_socket_mode = []
        [limits]
        max_push_bytes = -1
        max_apps = "10"
        [poll_external]
        poll_other_scrape_endpoints = 1
        other_scrape_endpoints = "http://127.0.0.1:1/"
        allow_invalid_certs = "no"
        poll_interval = -5
        "#,
        &[
            "`exporter.worker_threads`: expected an integer, found string",
            "`exporter.concurrent_requests`: expected an integer, found float",
            "`exporter.scrape_expose_endpoint`: expected an address string, found integer",
            "`exporter.shutdown_grace_period`: expected seconds or a duration string such as \"30s\", found boolean",
            "`receiver.format`: expected a string, found integer",
            "`receiver.receive_on_tcp_socket`: expected a boolean, found string",
            "`receiver.unix_socket_mode`: expected an octal mode string such as \"0660\", found array",
            "`limits.max_push_bytes`: expected a positive byte count or a size such as \"16MiB\", found integer",
            "`limits.max_apps`: expected an integer, found string",
            "`poll_external.poll_other_scrape_endpoints`: expected a boolean, found integer",
            "`poll_external.other_scrape_endpoints`: expected an array of URLs, found string",
            "`poll_external.allow_invalid_certs`: expected a boolean, found string",
            "`poll_external.poll_interval`: expected seconds or a duration string such as \"30s\", found integer",
        ],
    );
}

#[test]
fn sections_that_are_not_tables() {
    check_problems(
        "exporter = 1\nlimits = \"x\"\n[receiver]\njson = true\n",
        &[
            "`exporter`: expected a table, found integer",
            "`limits`: expected a table, found string",
            "`receiver.json`: expected a table, found boolean",
        ],
    );
}

#[test]
fn concurrent_requests_out_of_range() {
    for n in [0, 65535, -1] {
        check_problems(
            &format!("[exporter]\nconcurrent_requests = {n}"),
            &[&format!(
                "`exporter.concurrent_requests`: expected an integer from 1 to 65534, found {n}"
            )],
        );
    }
    check_problems(
        "[exporter]\nworker_threads = 1025",
        &["`exporter.worker_threads`: expected an integer from 0 to 1024, found 1025"],
    );
    check_problems(
        "[limits]\nmax_series_per_app = 0\nmax_apps = 0",
        &[
            "`limits.max_series_per_app`: expected an integer from 1 to 4294967295, found 0",
            "`limits.max_apps`: expected an integer from 1 to 4294967295, found 0",
        ],
    );
}

#[test]
fn addresses_must_be_ip_literals() {
    check_problems(
        r#"
        [exporter]
        scrape_expose_endpoint = "localhost:6555"
        [receiver.json]
        receiver_tcp_socket = "example.com:6554"
        [receiver.rpc]
        receiver_tcp_socket = "127.0.0.1"
        "#,
        &[
            "`exporter.scrape_expose_endpoint`: expected an IP address and port such as \"127.0.0.1:6554\" or \"[::1]:6554\", found \"localhost:6555\"",
            "`receiver.json.receiver_tcp_socket`: expected an IP address and port such as \"127.0.0.1:6554\" or \"[::1]:6554\", found \"example.com:6554\"",
            "`receiver.rpc.receiver_tcp_socket`: expected an IP address and port such as \"127.0.0.1:6554\" or \"[::1]:6554\", found \"127.0.0.1\"",
        ],
    );
}

#[test]
fn unknown_keys_at_every_level() {
    check_problems(
        r#"
        top_level = 1
        [exporter]
        worker_thread = 0
        [receiver]
        fromat = "json"
        [receiver.json]
        receiver_unix_sock = "/tmp/x.sock"
        [receiver.capnp]
        tcp = "127.0.0.1:1"
        [receiver.rpc]
        receiver_tcp_socket = "127.0.0.1:6556"
        max_connections = 3
        [limits]
        max_push_size = 1
        [poll_external]
        poll_intervall = 5
        [unknown_section]
        "#,
        &[
            "`top_level`: unknown key",
            "`unknown_section`: unknown key",
            "`exporter.worker_thread`: unknown key",
            "`receiver.fromat`: unknown key",
            "`receiver.json.receiver_unix_sock`: unknown key",
            "`receiver.capnp.tcp`: unknown key",
            "`receiver.rpc.max_connections`: unknown key",
            "`limits.max_push_size`: unknown key",
            "`poll_external.poll_intervall`: unknown key",
        ],
    );
}

#[test]
fn bad_format_and_app_label() {
    check_problems(
        "[receiver]\nformat = \"xml\"",
        &["`receiver.format`: expected \"json\", \"capnp\" or \"auto\", found \"xml\""],
    );
    check_problems(
        "[receiver]\nformat = \"JSON\"",
        &["`receiver.format`: expected \"json\", \"capnp\" or \"auto\", found \"JSON\""],
    );
    for label in ["1app", "app-name", "", "__app", "a b"] {
        check_problems(
            &format!("[receiver]\napp_label = {label:?}"),
            &[&format!(
                "`receiver.app_label`: {label:?} is not a valid label name (expected [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
            )],
        );
    }
    check_problems(
        "[receiver]\napp_label = 5",
        &["`receiver.app_label`: expected a string, found integer"],
    );
}

#[test]
fn enabled_listener_needs_its_address() {
    check_problems(
        "[receiver]\nreceive_on_unix_socket = true\nreceive_on_tcp_socket = true",
        &[
            "`receiver.receiver_unix_socket`: required when `receive_on_unix_socket = true`",
            "`receiver.receiver_tcp_socket`: required when `receive_on_tcp_socket = true`",
        ],
    );
    check_problems(
        "[receiver.rpc]\n",
        &["`receiver.rpc.receiver_tcp_socket`: required in `[receiver.rpc]`"],
    );
}

/// Expects one problem per entry of `clashes`: each names the address and
/// both listeners involved. The exact wording is not pinned.
#[track_caller]
fn check_clashes(text: &str, clashes: &[(&str, &str, &str)]) {
    let err = Config::parse(text).expect_err("clash accepted");
    assert_eq!(err.problems.len(), clashes.len(), "{err}");
    for (address, first, second) in clashes {
        assert!(
            err.problems
                .iter()
                .any(|p| p.contains(&format!("address {address} "))
                    && p.contains(first)
                    && p.contains(second)
                    && p.contains('`')),
            "no problem about {address} naming {first} and {second}:\n{err}"
        );
    }
}

#[test]
fn duplicate_addresses_between_listeners() {
    check_clashes(
        r#"
        [exporter]
        scrape_expose_endpoint = "127.0.0.1:6554"
        [receiver]
        receiver_tcp_socket = "127.0.0.1:6554"
        "#,
        &[(
            "127.0.0.1:6554",
            "`exporter.scrape_expose_endpoint`",
            "`receiver.receiver_tcp_socket`",
        )],
    );
    check_clashes(
        r#"
        [receiver.capnp]
        receiver_unix_socket = "/tmp/same.sock"
        receiver_tcp_socket = "127.0.0.1:7000"
        [receiver.json]
        receiver_unix_socket = "/tmp/same.sock"
        receiver_tcp_socket = "127.0.0.1:7000"
        "#,
        &[
            (
                "/tmp/same.sock",
                "`receiver.capnp.receiver_unix_socket`",
                "`receiver.json.receiver_unix_socket`",
            ),
            (
                "127.0.0.1:7000",
                "`receiver.capnp.receiver_tcp_socket`",
                "`receiver.json.receiver_tcp_socket`",
            ),
        ],
    );
    // A master-layout listener may clash with a per-format one.
    check_clashes(
        r#"
        [receiver]
        receiver_tcp_socket = "127.0.0.1:7000"
        [receiver.rpc]
        receiver_tcp_socket = "127.0.0.1:7000"
        "#,
        &[(
            "127.0.0.1:7000",
            "`receiver.receiver_tcp_socket`",
            "`receiver.rpc.receiver_tcp_socket`",
        )],
    );
    // Different ports, or a Unix path next to a TCP address, do not clash.
    check(
        r#"
        [exporter]
        scrape_expose_endpoint = "127.0.0.1:7001"
        [receiver]
        receiver_unix_socket = "/tmp/a.sock"
        receiver_tcp_socket = "127.0.0.1:7000"
        "#,
        |c| {
            c.http_listen = addr("127.0.0.1:7001");
            c.receivers = vec![
                unix("unix", "/tmp/a.sock", None, WireFormat::Auto, 2048),
                tcp("tcp", "127.0.0.1:7000", WireFormat::Auto, 2048),
            ];
        },
    );
}

#[test]
fn port_zero_never_clashes() {
    check(
        r#"
        [exporter]
        scrape_expose_endpoint = "127.0.0.1:0"
        [receiver]
        receiver_tcp_socket = "127.0.0.1:0"
        [receiver.json]
        receiver_tcp_socket = "127.0.0.1:0"
        [receiver.rpc]
        receiver_tcp_socket = "127.0.0.1:0"
        "#,
        |c| {
            c.http_listen = addr("127.0.0.1:0");
            c.receivers = vec![
                tcp("tcp", "127.0.0.1:0", WireFormat::Auto, 2048),
                tcp("json_tcp", "127.0.0.1:0", WireFormat::Json, 2048),
            ];
            c.rpc = Some(RpcConfig {
                listen: addr("127.0.0.1:0"),
                max_connections: 2048,
                ttl: None,
            });
        },
    );
}

#[test]
fn poll_urls_must_be_http() {
    check_problems(
        r#"
        [poll_external]
        other_scrape_endpoints = ["http://127.0.0.1:1/", "ftp://127.0.0.1/x", "127.0.0.1:9100"]
        "#,
        // The first bad element is reported.
        &["`poll_external.other_scrape_endpoints`: element 1: expected an http:// or https:// URL, found \"ftp://127.0.0.1/x\""],
    );
    check_problems(
        "[poll_external]\nother_scrape_endpoints = [\"https://a/\", 5]",
        &["`poll_external.other_scrape_endpoints`: element 1: expected a URL string, found integer"],
    );
}

#[test]
fn zero_durations_where_not_allowed() {
    check_problems(
        r#"
        [limits]
        read_timeout = 0
        idle_timeout = "0s"
        [poll_external]
        poll_interval = 0
        client_timeout = "0ms"
        "#,
        &[
            "`limits.read_timeout`: must be greater than zero",
            "`limits.idle_timeout`: must be greater than zero",
            "`poll_external.poll_interval`: must be greater than zero",
            "`poll_external.client_timeout`: must be greater than zero",
        ],
    );
}

#[test]
fn bad_sizes_modes_and_duration_strings() {
    let err = Config::parse(
        r#"
        [receiver]
        unix_socket_mode = "0999"
        [receiver.json]
        unix_socket_mode = "01777"
        [limits]
        max_push_bytes = "16MB"
        read_timeout = "soon"
        "#,
    )
    .unwrap_err();
    let keys: Vec<&str> = err
        .problems
        .iter()
        .map(|p| p.split(':').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "`receiver.unix_socket_mode`",
            "`receiver.json.unix_socket_mode`",
            "`limits.max_push_bytes`",
            "`limits.read_timeout`",
        ],
        "{err}"
    );
    assert!(err.problems[0].contains("expected an octal mode"), "{err}");
    assert!(err.problems[1].contains("beyond 0777"), "{err}");
    assert!(
        err.problems[2].contains("unknown size unit \"MB\""),
        "{err}"
    );
    assert!(err.problems[3].contains("found \"soon\""), "{err}");
    check_problems(
        "[limits]\nmax_push_bytes = \"0MiB\"",
        &["`limits.max_push_bytes`: must be greater than zero"],
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = Config::parse(
        r#"
        bogus = 1
        [exporter]
        concurrent_requests = 0
        scrape_expose_endpoint = "localhost:6555"
        [receiver]
        format = "xml"
        app_label = "1"
        receive_on_unix_socket = true
        [limits]
        read_timeout = 0
        [poll_external]
        other_scrape_endpoints = ["gopher://x"]
        "#,
    )
    .unwrap_err();
    assert_eq!(err.problems.len(), 8, "{err}");
    for key in [
        "`bogus`",
        "`exporter.concurrent_requests`",
        "`exporter.scrape_expose_endpoint`",
        "`receiver.format`",
        "`receiver.app_label`",
        "`receiver.receiver_unix_socket`",
        "`limits.read_timeout`",
        "`poll_external.other_scrape_endpoints`",
    ] {
        assert!(
            err.problems.iter().any(|p| p.starts_with(key)),
            "no problem names {key}:\n{err}"
        );
    }
    // Each problem is on its own line of the displayed error.
    let shown = err.to_string();
    assert!(shown.starts_with("invalid configuration:\n  - "), "{shown}");
    assert_eq!(shown.lines().count(), 1 + err.problems.len(), "{shown}");
}

// ---- the committed example ----

const COMMITTED: &str = include_str!("../../config.toml");

#[test]
fn committed_config_is_valid_without_warnings() {
    let loaded = parse_ok(COMMITTED);
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let c = &loaded.config;
    assert_eq!(c.http_listen, addr("127.0.0.1:6555"));
    let names: Vec<&str> = c.receivers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["unix", "tcp"]);
    assert!(c.rpc.is_some());
    // Nothing in it should differ from the built-in defaults it documents.
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
}

#[test]
fn load_adds_the_path_to_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[exporter]\nworker_threads = -1\n").unwrap();
    let err = Config::load(&path).unwrap_err();
    assert_eq!(err.path.as_deref(), Some(path.as_path()));
    assert_eq!(
        err.problems,
        ["`exporter.worker_threads`: expected an integer from 0 to 1024, found -1"]
    );
    assert!(err.to_string().contains(&path.display().to_string()));

    let missing = dir.path().join("missing.toml");
    let err = Config::load(&missing).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(err.problems[0].starts_with("cannot read file: "), "{err}");
}

/// The keys of `key = value` lines whose previous non-empty line is not a
/// comment, i.e. keys without documentation right above them.
fn undocumented_keys(text: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let mut previous = "";
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !line.starts_with('#') && !line.starts_with('[') {
            if let Some((key, _)) = line.split_once('=') {
                if !previous.starts_with('#') {
                    missing.push(key.trim().to_owned());
                }
            }
        }
        previous = line;
    }
    missing
}

#[test]
fn undocumented_keys_finds_keys_without_a_comment_above() {
    let text = "# a\na = 1\nb = 2\n\n# c\n\nc = 3\n[t]\nd = 4\n# e = 5\n";
    assert_eq!(undocumented_keys(text), ["b", "d"]);
    assert_eq!(undocumented_keys("# x\n# y\nx = 1\n"), Vec::<String>::new());
}

#[test]
fn committed_config_documents_every_key() {
    assert_eq!(undocumented_keys(COMMITTED), Vec::<String>::new());
    let container = include_str!("../../docker/config.toml");
    assert_eq!(undocumented_keys(container), Vec::<String>::new());
}

#[test]
fn an_invalid_present_address_is_one_problem_not_two() {
    let err = Config::parse(
        "[receiver]\nreceive_on_tcp_socket = true\nreceiver_tcp_socket = \"localhost:1\"\nreceive_on_unix_socket = true\nreceiver_unix_socket = 5\n",
    )
    .unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
    assert!(!err.to_string().contains("required"), "{err}");
}

#[test]
fn app_label_may_not_be_le_or_quantile() {
    for l in ["le", "quantile"] {
        let err = Config::parse(&format!("[receiver]\napp_label = \"{l}\"\n")).unwrap_err();
        assert!(
            err.problems[0].contains("`receiver.app_label`")
                && err.problems[0].contains("reserved"),
            "{err}"
        );
    }
}

#[test]
fn address_clashes_name_both_keys() {
    let err = Config::parse(
        "[exporter]\nscrape_expose_endpoint = \"127.0.0.1:7\"\n[receiver]\nreceiver_tcp_socket = \"127.0.0.1:7\"\n[receiver.json]\nreceiver_tcp_socket = \"127.0.0.1:7\"\n[receiver.rpc]\nreceiver_tcp_socket = \"127.0.0.1:7\"\n",
    )
    .unwrap_err();
    let text = err.to_string();
    for key in [
        "`receiver.receiver_tcp_socket`",
        "`receiver.json.receiver_tcp_socket`",
        "`receiver.rpc.receiver_tcp_socket`",
        "`exporter.scrape_expose_endpoint`",
    ] {
        assert!(text.contains(key), "{key} in {text}");
    }
}

#[test]
fn ttls() {
    let loaded = parse_ok(
        r#"
        [exporter]
        stale_metric_ttl = "never"
        stale_check_interval = "250ms"
        [receiver]
        receiver_tcp_socket = "127.0.0.1:1"
        tcp_socket_ttl = 30
        receiver_unix_socket = "/tmp/x.sock"
        unix_socket_ttl = "1h"
        [receiver.json]
        receiver_tcp_socket = "127.0.0.1:2"
        ttl = "never"
        [receiver.rpc]
        receiver_tcp_socket = "127.0.0.1:3"
        ttl = "5m"
        [push_api]
        ttl = "10m"
        "#,
    );
    let c = &loaded.config;
    assert_eq!(c.default_ttl, Ttl::Never);
    assert_eq!(c.expiry_interval, Duration::from_millis(250));
    let ttl = |name: &str| c.receivers.iter().find(|r| r.name == name).unwrap().ttl;
    assert_eq!(ttl("tcp"), Some(Ttl::After(secs(30))));
    assert_eq!(ttl("unix"), Some(Ttl::After(secs(3600))));
    assert_eq!(ttl("json_tcp"), Some(Ttl::Never));
    assert_eq!(c.rpc.as_ref().unwrap().ttl, Some(Ttl::After(secs(300))));
    assert_eq!(c.push_api_ttl, Some(Ttl::After(secs(600))));
    let err = Config::parse("[exporter]\nstale_metric_ttl = 0\n[push_api]\nttl = \"soon\"\n")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(
            "`exporter.stale_metric_ttl`: expected a positive number of seconds, or \"never\""
        ),
        "{text}"
    );
    assert!(text.contains("`push_api.ttl`: expected a TTL"), "{text}");
}

#[test]
fn sinks() {
    use crate::sinks::{influx::Api, SinkKind};
    let loaded = parse_ok(
        r#"
        [[sinks.remote_write]]
        url = "http://127.0.0.1:9090/api/v1/write"
        bearer_token_env = "RW_TOKEN"
        [[sinks.remote_write]]
        name = "second"
        url = "https://vm:8428/api/v1/write"
        interval = "1m"
        queue_capacity = 3
        max_retries = 0
        max_samples_per_request = 10
        app_label = "source"
        [[sinks.influxdb]]
        url = "http://influx:8086"
        api = "v2"
        org = "o"
        bucket = "b"
        token_file = "/run/secrets/influx"
        "#,
    );
    let s = &loaded.config.sinks;
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].name, "remote_write_0");
    assert_eq!(s[0].interval, std::time::Duration::from_secs(15));
    assert_eq!(
        s[0].kind,
        SinkKind::RemoteWrite {
            url: "http://127.0.0.1:9090/api/v1/write".into(),
            bearer_token: Some(SecretSource::Env("RW_TOKEN".into())),
        }
    );
    assert_eq!(
        (s[1].name.as_str(), s[1].queue_capacity, s[1].max_retries),
        ("second", 3, 0)
    );
    assert_eq!(
        (s[1].max_samples_per_request, s[1].app_label.as_str()),
        (10, "source")
    );
    assert_eq!(
        s[2].kind,
        SinkKind::Influx {
            url: "http://influx:8086".into(),
            api: Api::V2 {
                org: "o".into(),
                bucket: "b".into()
            },
            token: Some(SecretSource::File("/run/secrets/influx".into())),
        }
    );
    // Secrets never show in Debug output, only where they come from.
    let debug = format!("{:?}", s[2]);
    assert!(debug.contains("/run/secrets/influx"), "{debug}");
}

#[test]
fn sink_problems_name_their_keys() {
    let err = Config::parse(
        r#"
        [[sinks.remote_write]]
        url = "ftp://x"
        bogus = 1
        [[sinks.remote_write]]
        bearer_token_env = "A"
        bearer_token_file = "/b"
        [[sinks.influxdb]]
        url = "http://i"
        api = "v3"
        [[sinks.influxdb]]
        url = "http://i"
        [[sinks.influxdb]]
        url = "http://i"
        api = "v2"
        "#,
    )
    .unwrap_err();
    let text = err.to_string();
    for want in [
        "`sinks.remote_write[0].url`: expected an http:// or https:// URL",
        "`sinks.remote_write[0].bogus`: unknown key",
        "`sinks.remote_write[1].url`: required",
        "`sinks.remote_write[1]`: set either bearer_token_file or bearer_token_env",
        "`sinks.influxdb[0].api`: expected \"v1\" or \"v2\"",
        "`sinks.influxdb[1].database`: required",
        "`sinks.influxdb[2]`: org and bucket are required",
    ] {
        assert!(text.contains(want), "{want} missing in:\n{text}");
    }
}

#[test]
fn web_config_file_and_allowed_networks() {
    check(
        r#"
        [exporter]
        web_config_file = "/etc/exporter-proxy/web.yml"
        [receiver]
        receiver_tcp_socket = "0.0.0.0:6554"
        allowed_networks = ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]
        "#,
        |c| {
            c.web_config_file = Some(PathBuf::from("/etc/exporter-proxy/web.yml"));
            c.receivers = vec![tcp("tcp", "0.0.0.0:6554", WireFormat::Auto, 2048)];
            c.allowed_networks = Some(
                crate::netacl::AllowedNetworks::parse(&["127.0.0.0/8", "::1/128", "10.0.0.0/8"])
                    .unwrap(),
            );
        },
    );
}

#[test]
fn a_non_loopback_receiver_without_allowed_networks_is_warned_about() {
    check_warnings(
        "[receiver]\nreceiver_tcp_socket = \"0.0.0.0:6554\"\n",
        |c| c.receivers = vec![tcp("tcp", "0.0.0.0:6554", WireFormat::Auto, 2048)],
        &["a TCP receiver listens on 0.0.0.0:6554 and accepts pushes from any peer: set `receiver.allowed_networks` to restrict it"],
    );
}

#[test]
fn allowed_networks_problems_name_the_key() {
    check_problems(
        "[receiver]\nallowed_networks = [\"10.0.0.0/8\", \"nope\"]\n",
        &["`receiver.allowed_networks`: element 1: expected a network such as \"10.0.0.0/8\" or \"::1/128\", found \"nope\""],
    );
    check_problems(
        "[receiver]\nallowed_networks = []\n",
        &["`receiver.allowed_networks`: an empty list would refuse every peer; leave the key out to allow any peer"],
    );
    check_problems(
        "[receiver]\nallowed_networks = \"10.0.0.0/8\"\n",
        &["`receiver.allowed_networks`: expected an array of networks such as [\"127.0.0.0/8\"], found string"],
    );
}
