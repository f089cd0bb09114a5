use super::*;

/// The sample configuration of the original ssp-exporter
/// (`config/sample_exporter.yaml`), byte for byte.
pub const ORIGINAL_SAMPLE: &str = include_str!("../../../examples/ssp/original-sample.yaml");

fn parse_yaml(s: &str) -> Result<SspConfig, Vec<String>> {
    parse(s, false, Path::new("/etc/ssp"))
}

#[test]
fn the_original_sample_loads_verbatim() {
    // The shipped file is the original's, `---` and blank line included.
    assert!(ORIGINAL_SAMPLE.starts_with("---\n\nservice:\n"));
    assert!(ORIGINAL_SAMPLE.contains("identifier: identifier_almatel"));
    let c = parse_yaml(ORIGINAL_SAMPLE).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.warnings, Vec::<String>::new());
    assert_eq!(c.metric_name, "ssp_balance");
    assert_eq!(c.messages["captcha"], -1_000_003);
    assert_eq!(c.user_agents.len(), 6);
    let names: Vec<(&str, &str)> = c
        .identifiers
        .iter()
        .map(|i| (i.provider.as_str(), i.identifier.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("AlmatelRussia", "identifier_almatel"),
            ("ArubaCloud", "identifier_arubacloud"),
            ("MegafonRussiaB2C", "identifier_megafon"),
            ("Vultr", "identifier_vultr"),
            ("WifireRussia", "identifier_wifire"),
        ]
    );
    let alm = &c.identifiers[0];
    assert!(!alm.tls_verify);
    assert_eq!(alm.poll_interval, Duration::from_secs(1800));
    assert_eq!(
        alm.labels,
        vec![
            ("category".to_owned(), "SP".to_owned()),
            ("currency".to_owned(), "₽".to_owned()),
            ("description".to_owned(), "Almatel Description".to_owned()),
        ]
    );
    assert_eq!(alm.password.read().unwrap().expose(), "password_almatel");
    // TLS verification is on unless switched off.
    assert!(c.identifiers[1].tls_verify);
    assert!(!c.identifiers[2].disabled);
    assert!(c.identifiers[4].disabled);
}

#[test]
fn secrets_never_in_debug() {
    let c = parse_yaml(ORIGINAL_SAMPLE).unwrap();
    let dbg = format!("{c:?}");
    for s in [
        "password_almatel",
        "password_arubacloud",
        "password_megafon",
        "apikey_vultr",
        "password_wifire",
    ] {
        assert!(!dbg.contains(s), "{s} leaked: {dbg}");
    }
}

/// Identifiers, passwords and label values keep the text written in the
/// file whatever YAML would type it; JSON bodies get PyYAML's type.
#[test]
fn scalars_keep_their_text_and_pyyaml_type() {
    let y = r#"
service: {messages: {init: -1, disabled: -2}, user_agents: []}
identifiers:
  WifireRussia:
    - identifier: 0891
      password: 0891
      labels: {currency: y, flag: n, on_off: off, octal: 0123, num: 1_000, f: 1.50}
    - identifier: 0123
      password: 123456
    - identifier: '0777'
      password: "0123"
      tls_verify: no
      disabled: yes
      poll_interval: 30:00
"#;
    let c = parse_yaml(y).unwrap_or_else(|e| panic!("{e:#?}"));
    let [a, b, q] = &c.identifiers[..] else {
        panic!("three identifiers")
    };
    assert_eq!(a.identifier, "0891");
    assert_eq!(a.raw_identifier, Typed::Str("0891".to_owned()));
    assert_eq!(a.password.read().unwrap().expose(), "0891");
    assert!(matches!(a.password, Password::Plain(_)));
    let label = |k: &str| {
        a.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(label("currency"), Some("y"));
    assert_eq!(label("flag"), Some("n"));
    assert_eq!(label("on_off"), Some("off"));
    assert_eq!(label("octal"), Some("0123"));
    assert_eq!(label("num"), Some("1_000"));
    assert_eq!(label("f"), Some("1.50"));
    // `0123` is octal 83 to PyYAML: the label and login keep "0123", a
    // JSON body gets the number the original sent.
    assert_eq!(b.identifier, "0123");
    assert_eq!(b.raw_identifier, Typed::Int("83".to_owned()));
    assert_eq!(b.password.read().unwrap().expose(), "123456");
    assert!(matches!(b.password, Password::Plain(_)));
    // Quoted: strings; and the other keys typed as YAML 1.1 types them.
    assert_eq!(q.identifier, "0777");
    assert_eq!(q.raw_identifier, Typed::Str("0777".to_owned()));
    assert!(matches!(q.password, Password::Inline(_)));
    assert!(!q.tls_verify);
    assert!(q.disabled);
    assert_eq!(q.poll_interval, Duration::from_secs(1800));
}

/// Keys the original ignored are warnings and dropped; misspellings of
/// known keys are errors naming the key meant; unknown identifier keys
/// stay errors (the original refused them too).
#[test]
fn unknown_keys_warn_unless_misspelled() {
    let y = r#"
version: 2
service:
  messages: {init: -1, disabled: -2}
  user_agents: []
  log_level: INFO
identifiers:
  SomeOtherPortal: [{identifier: a, password: b}]
  Vultr: [{identifier: a, password: b}]
"#;
    let c = parse_yaml(y).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.identifiers.len(), 1);
    let w = c.warnings.join("\n");
    for path in [
        "`/version`",
        "`/service/log_level`",
        "`/identifiers/SomeOtherPortal`",
    ] {
        assert!(w.contains(path), "{path} not in:\n{w}");
    }
    let bad = r#"
servce: {}
service:
  messages: {init: -1, disabled: -2}
  user_agent: [UA]
identifiers:
  Vulrt: []
  MegafonRussia: []
  Vultr: [{identifier: a, pasword: b, comment: x}]
"#;
    let e = parse_yaml(bad).unwrap_err().join("\n");
    for (path, meant) in [
        ("`/servce`", "`service`"),
        ("`/service/user_agent`", "`user_agents`"),
        ("`/identifiers/Vulrt`", "`Vultr`"),
        ("`/identifiers/MegafonRussia`", "`MegafonRussiaB2C`"),
        ("`/identifiers/Vultr/0/pasword`", "`password`"),
    ] {
        let line = e
            .lines()
            .find(|l| l.starts_with(path))
            .unwrap_or_else(|| panic!("{path} not in:\n{e}"));
        assert!(line.contains(meant), "{line}");
    }
    assert!(
        e.contains("`/identifiers/Vultr/0/comment`: unknown key"),
        "{e}"
    );
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
  Vultrr: []
"#;
    let e = parse_yaml(bad).unwrap_err();
    let all = e.join("\n");
    for path in [
        "`/service/metric_name`",
        "`/service/messages/init`",
        "`/identifiers/Vultr/0/poll_interval`",
        "`/identifiers/Vultr/0/tls_verify`",
        "`/identifiers/Vultr/0`",
        "`/identifiers/Vultr/0/extra`",
        "`/identifiers/Vultrr`",
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
