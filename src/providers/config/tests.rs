use super::*;

/// The sample configuration of the original ssp-exporter, as shipped.
pub const ORIGINAL_SAMPLE: &str = include_str!("../../../examples/ssp/original-sample.yaml");

fn parse_yaml(s: &str) -> Result<SspConfig, Vec<String>> {
    parse(s, false, Path::new("/etc/ssp"))
}

#[test]
fn the_original_sample_loads_unchanged() {
    let c = parse_yaml(ORIGINAL_SAMPLE).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.metric_name, "ssp_balance");
    assert_eq!(c.messages["captcha"], -1_000_003);
    assert_eq!(c.identifiers.len(), 5);
    let alm = &c.identifiers[0];
    assert_eq!(alm.provider, "AlmatelRussia");
    assert!(!alm.tls_verify);
    assert_eq!(alm.poll_interval, Duration::from_secs(1800));
    assert_eq!(
        alm.labels,
        vec![
            ("category".to_owned(), "SP".to_owned()),
            ("currency".to_owned(), "₽".to_owned()),
            ("description".to_owned(), "Almatel RegionCode1".to_owned()),
        ]
    );
    // TLS verification is on unless switched off.
    assert!(c.identifiers[1].tls_verify);
    let meg = c
        .identifiers
        .iter()
        .find(|i| i.provider == "MegafonRussiaB2C")
        .unwrap();
    assert_eq!(meg.identifier, "79201234567");
    assert_eq!(meg.raw_identifier, serde_json::json!(79201234567u64));
    assert!(c.identifiers.iter().any(|i| i.disabled));
}

#[test]
fn secrets_never_in_debug() {
    let c = parse_yaml(ORIGINAL_SAMPLE).unwrap();
    let dbg = format!("{c:?}");
    for s in ["secret1", "secret2", "secret3", "APIKEY", "secret5"] {
        assert!(!dbg.contains(s), "{s} leaked: {dbg}");
    }
}

#[test]
fn every_violation_is_reported_with_its_path() {
    let bad = r#"
service:
  metric_name: 1bad
  messages: {init: x, disabled: -1}
  user_agents: []
identifiers:
  Vultr:
    - identifier: a
      poll_interval: 0
      tls_verify: "yes"
      extra: 1
  NoSuchPortal: []
"#;
    let e = parse_yaml(bad).unwrap_err();
    let all = e.join("\n");
    for path in [
        "`/service/metric_name`",
        "`/service/messages/init`",
        "`/identifiers/Vultr/0/poll_interval`",
        "`/identifiers/Vultr/0/tls_verify`",
        "`/identifiers/Vultr/0`",
        "`/identifiers`",
    ] {
        assert!(all.contains(path), "{path} not in:\n{all}");
    }
    assert!(e.len() >= 6, "{all}");
}

#[test]
fn json_files_and_password_sources() {
    let j = r#"{"service": {"messages": {"init": -1, "disabled": -2}, "user_agents": ["UA"]},
      "identifiers": {"Vultr": [{"identifier": "a", "password_file": "key.txt", "labels": {"n": 1, "b": true}}],
                      "ArubaCloud": null,
                      "Exec": [{"identifier": "e", "command": ["/bin/echo", "1"], "password_env": "X"}]}}"#;
    let c = parse(j, true, Path::new("/etc/ssp")).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.metric_name, DEFAULT_METRIC_NAME);
    // Missing codes take the original's values.
    assert_eq!(c.messages["no_answer"], -1_000_002);
    assert_eq!(c.messages["init"], -1);
    assert_eq!(
        c.identifiers[1].password,
        Password::Source(SecretSource::File(PathBuf::from("/etc/ssp/key.txt")))
    );
    assert_eq!(
        c.identifiers[1].labels,
        vec![
            ("b".to_owned(), "true".to_owned()),
            ("n".to_owned(), "1".to_owned())
        ]
    );
    assert_eq!(c.identifiers[0].command, vec!["/bin/echo", "1"]);
    // Two password sources, or none, are refused.
    let two = j.replace(
        r#""password_file": "key.txt""#,
        r#""password_file": "k", "password": "p""#,
    );
    assert!(parse(&two, true, Path::new("/")).is_err());
    let none = j.replace(r#", "password_file": "key.txt""#, "");
    assert!(parse(&none, true, Path::new("/")).is_err());
}

#[test]
fn duplicates_and_reserved_labels_are_refused() {
    let y = r#"
service: {messages: {init: -1, disabled: -2}, user_agents: []}
identifiers:
  Vultr:
    - {identifier: a, password: p, labels: {provider: x}}
    - {identifier: a, password: q}
"#;
    let e = parse_yaml(y).unwrap_err().join("\n");
    assert!(e.contains("`/identifiers/Vultr/1/identifier`"), "{e}");
    assert!(e.contains("`/identifiers/Vultr/0/labels/provider`"), "{e}");
}

#[test]
fn human_intervals() {
    let h = |s: u64| human_interval(Duration::from_secs(s));
    assert_eq!(h(1800), "30m");
    assert_eq!(h(3600), "1h");
    assert_eq!(h(5400), "1h30m");
    assert_eq!(h(90061), "1d1h");
    assert_eq!(h(61), "1m1s");
    assert_eq!(h(1), "1s");
    assert_eq!(h(1_209_600), "2w");
}

#[test]
fn the_committed_examples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ssp");
    let c = load(&dir.join("providers.yaml")).unwrap_or_else(|e| panic!("{e:#?}"));
    let providers: std::collections::BTreeSet<&str> =
        c.identifiers.iter().map(|i| i.provider.as_str()).collect();
    for p in crate::providers::all() {
        assert!(
            providers.contains(p.name()),
            "{} missing from the example",
            p.name()
        );
    }
    let toml =
        crate::config::Config::load(&dir.join("config.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(toml.config.providers.is_some());
}
