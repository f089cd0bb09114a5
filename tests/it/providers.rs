//! The built-in balance collectors against mock portals on loopback: every
//! provider × scenario shows the right `ssp_balance` value (balance or
//! sentinel), status series and `/apps` row, `/metrics` passes promtool,
//! and no password appears anywhere. The mocks refuse any request that
//! differs from the original's (see `portals.rs`); no test ends with a
//! refused request.

use std::fmt::Write as _;

use crate::portals::Portal;
use crate::support::*;

/// Every provider with mocks.
const PROVIDERS: [&str; 7] = [
    "Vultr",
    "ArubaCloud",
    "AlmatelRussia",
    "FreedomVrnRussia",
    "MegafonRussiaB2C",
    "T2RussiaB2C",
    "WifireRussia",
];

/// Scenario (identifier, password) and the expected outcome per provider:
/// `Ok(balance)` or the status.
fn expected(provider: &str, scenario: &str) -> Result<f64, &'static str> {
    // Where a 500 or a hang happens decides the code: on the first request
    // a bad status is `no_answer`, on a later one `cannot_proceed`.
    let e500_on_first = matches!(
        provider,
        "Vultr" | "ArubaCloud" | "AlmatelRussia" | "FreedomVrnRussia"
    );
    match scenario {
        "ok" => Ok(12.5),
        "zero" => Ok(0.0),
        "negative" => Ok(-7.25),
        "comma" => Ok(1234.56),
        // Passwords typed by YAML 1.1, sent as the original sent them.
        "numpw" => Ok(1234.56),
        "zeropw" => Ok(8.91),
        "octpw" => Ok(1.23),
        // MegaFon: a 200 login with a jwtToken wins over the page's texts.
        "jwtmsg" => Ok(4.5),
        // Freedom, Wifire: result codes `false` / `0.0` are Python's 0.
        "pyzero" => Ok(6.5),
        "wrong" => Err("cannot_proceed"),
        "layout" | "nonjson" | "empty" => Err("parsing_error"),
        "e500" if e500_on_first => Err("no_answer"),
        "e500" => Err("cannot_proceed"),
        "hang" => Err("no_answer"),
        "captcha" => Err("captcha"),
        "ratelimit" => Err("rate_limit"),
        other => panic!("unknown scenario {other}"),
    }
}

/// The password of a scenario as written in the YAML file.
fn password(scenario: &str) -> &'static str {
    match scenario {
        "ok" => "\"ok:12.5\"",
        "zero" => "\"ok:0\"",
        "negative" => "\"ok:-7.25\"",
        "comma" => "\"ok:1 234,56\"",
        "wrong" => "wrong",
        "layout" => "layout",
        "nonjson" => "nonjson",
        "empty" => "empty",
        "e500" => "e500",
        "hang" => "hang",
        "captcha" => "captcha",
        "ratelimit" => "ratelimit",
        "jwtmsg" => "jwtmsg",
        "pyzero" => "pyzero",
        // Plain: PyYAML reads a string, an integer, an octal integer.
        "zeropw" => "0891",
        "numpw" => "123456",
        "octpw" => "0123",
        other => panic!("unknown scenario {other}"),
    }
}

/// The scenarios of `provider`: the flows, or (`typed`) the passwords
/// YAML 1.1 types, which get their own app and a longer timeout.
fn scenarios(provider: &str, typed: bool) -> Vec<&'static str> {
    if typed {
        return vec!["zeropw", "numpw", "octpw"];
    }
    let mut s = vec![
        "ok", "zero", "negative", "comma", "wrong", "layout", "e500", "hang",
    ];
    // Almatel's balance is in HTML: no JSON body to break.
    if provider != "AlmatelRussia" {
        s.extend(["nonjson", "empty"]);
    }
    if provider == "MegafonRussiaB2C" {
        s.extend(["captcha", "ratelimit", "jwtmsg"]);
    }
    if matches!(provider, "FreedomVrnRussia" | "WifireRussia") {
        s.push("pyzero");
    }
    s
}

/// Plain identifiers and the balance their password asks for.
const TYPED_IDS: [(&str, &str); 2] = [("0891", "ok:2"), ("123456", "ok:3")];

/// Starts one mock per provider and writes the provider file; also a
/// disabled identifier and one whose password comes from a file (or, when
/// `typed`, the identifiers YAML 1.1 types).
async fn setup(dir: &std::path::Path, typed: bool) -> (Vec<Portal>, std::path::PathBuf) {
    let mut portals = Vec::new();
    let mut yaml = String::from(
        "service:\n  metric_name: ssp_balance\n  messages:\n    init: -1000000\n    disabled: -1000001\n    no_answer: -1000002\n    captcha: -1000003\n    cannot_proceed: -1000004\n    rate_limit: -1000005\n    parsing_error: -1000006\n    connection_error: -1000007\n  user_agents:\n    - TestAgent/1.0\nidentifiers:\n",
    );
    for p in PROVIDERS {
        let portal = Portal::start(p).await;
        writeln!(yaml, "  {p}:").unwrap();
        for sc in scenarios(p, typed) {
            writeln!(
                yaml,
                "    - {{identifier: {sc}, password: {}, base_url: \"{}\", poll_interval: 5400, labels: {{currency: X}}}}",
                password(sc),
                portal.base()
            )
            .unwrap();
        }
        // Identifiers typed by YAML 1.1: a string with a leading zero and
        // an integer; labels and logins keep the text.
        for (id, pw) in TYPED_IDS.iter().filter(|_| typed) {
            writeln!(
                yaml,
                "    - {{identifier: {id}, password: \"{pw}\", base_url: \"{}\", poll_interval: 5400, labels: {{currency: y, paid: n, code: 0123, on: off}}}}",
                portal.base()
            )
            .unwrap();
        }
        portals.push(portal);
    }
    if typed {
        let file = dir.join("ssp.yaml");
        std::fs::write(&file, yaml).unwrap();
        return (portals, file);
    }
    // A password from a file, and a disabled identifier with other labels.
    std::fs::write(dir.join("vultr.key"), "ok:3.5\n").unwrap();
    let vultr = portals[0].base();
    yaml = yaml.replacen(
        "  Vultr:\n",
        &format!("  Vultr:\n    - {{identifier: fromfile, password_file: vultr.key, base_url: \"{vultr}\", poll_interval: 1800}}\n    - {{identifier: paused, password: \"ok:1\", disabled: true, base_url: \"{vultr}\", labels: {{team: a}}}}\n"),
        1,
    );
    let file = dir.join("ssp.yaml");
    std::fs::write(&file, yaml).unwrap();
    (portals, file)
}

fn status_of(body: &str, provider: &str, identifier: &str) -> Option<String> {
    body.lines()
        .filter(|l| {
            l.starts_with("ssp_status{")
                && l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()) == Some(1.0)
        })
        .filter(|l| {
            l.contains(&format!("provider=\"{provider}\""))
                && l.contains(&format!("identifier=\"{identifier}\""))
        })
        .find_map(|l| {
            let i = l.find("status=\"")? + 8;
            Some(l[i..].split('"').next()?.to_owned())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_and_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let (portals, file) = setup(dir.path(), false).await;
    let app = TestApp::with_config(&format!(
        "[providers]\nconfig_file = \"{}\"\ntimeout = \"5s\"\nmax_concurrent = 8\n",
        file.display()
    ))
    .await;

    // Every identifier leaves `init` (the hanging ones after the timeout).
    // Each collection builds its own HTTP client, which costs CPU: on a
    // loaded machine some 80 of them at once would each take seconds, so
    // fewer run at a time, the timeout is generous and so is this guard
    // (a guard, not a measurement).
    let deadline = tokio::time::Instant::now() + 6 * STEP;
    let body = loop {
        let body = app.metrics().await;
        let pending = PROVIDERS.iter().any(|p| {
            scenarios(p, false)
                .into_iter()
                .any(|sc| status_of(&body, p, sc).as_deref() == Some("init"))
        });
        if !pending {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still init:\n{body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };

    // Every request was the original's, and every scenario ended as
    // expected; all differences are listed at once.
    let mut wrong: Vec<String> = Vec::new();
    for (p, portal) in PROVIDERS.iter().zip(&portals) {
        wrong.extend(portal.violations().into_iter().map(|v| format!("{p}: {v}")));
    }
    for p in PROVIDERS {
        for sc in scenarios(p, false) {
            let balance = metric("ssp_balance")
                .label("provider", p)
                .label("identifier", sc)
                .label("poll_interval", "1h30m")
                .label("currency", "X")
                .get(&body)
                .unwrap_or_else(|| panic!("no ssp_balance for {p}/{sc}"));
            let up = metric("ssp_up")
                .label("provider", p)
                .label("identifier", sc)
                .get(&body);
            let status = status_of(&body, p, sc);
            let got = (balance, status.as_deref(), up);
            let want = match expected(p, sc) {
                Ok(want) => {
                    let ts = metric("ssp_last_success_timestamp_seconds")
                        .label("provider", p)
                        .label("identifier", sc)
                        .get(&body)
                        .unwrap();
                    if status.as_deref() == Some("ok") && ts < 1.7e9 {
                        wrong.push(format!("{p}/{sc}: last success {ts}"));
                    }
                    (want, Some("ok"), Some(1.0))
                }
                Err(code) => {
                    let sentinel = match code {
                        "no_answer" => -1000002.0,
                        "captcha" => -1000003.0,
                        "cannot_proceed" => -1000004.0,
                        "rate_limit" => -1000005.0,
                        "parsing_error" => -1000006.0,
                        _ => unreachable!(),
                    };
                    (sentinel, Some(code), Some(0.0))
                }
            };
            if got != want {
                wrong.push(format!("{p}/{sc}: got {got:?}, expected {want:?}"));
            }
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
    // The password from a file, and the disabled identifier (shown, not dropped).
    let v = |id: &str| {
        metric("ssp_balance")
            .label("provider", "Vultr")
            .label("identifier", id)
            .get(&body)
    };
    assert_eq!(v("fromfile"), Some(3.5));
    assert_eq!(v("paused"), Some(-1000001.0));
    assert_eq!(
        status_of(&body, "Vultr", "paused").as_deref(),
        Some("disabled")
    );
    // Label sets are consistent: the union of custom labels, empty when unset.
    assert!(metric("ssp_balance")
        .label("identifier", "ok")
        .label("team", "")
        .is_in(&body));
    assert!(metric("ssp_balance")
        .label("identifier", "paused")
        .label("currency", "")
        .label("team", "a")
        .is_in(&body));
    assert_eq!(body.matches("# TYPE ssp_balance gauge").count(), 1);
    assert_contiguous_families(&body);
    crate::interop::promtool_check(&body).await;

    // /apps: one row per identifier, kind provider, source provider:<Name>.
    let apps = get(app.http, "/apps?format=json").await.body_string();
    let apps: serde_json::Value = serde_json::from_str(&apps).unwrap();
    let rows = apps["apps"].as_array().expect("apps array");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no /apps row {name}: {apps}"))
    };
    // Every scenario of every provider has its row, consistent with /metrics.
    for p in PROVIDERS {
        for sc in scenarios(p, false) {
            let r = row(&format!("ssp/{p}/{sc}"));
            assert_eq!(r["kind"], "provider", "{p}/{sc}");
            assert_eq!(r["source"], format!("provider:{p}"), "{p}/{sc}");
            match expected(p, sc) {
                Ok(_) => {
                    assert_eq!(r["status"], "up", "{p}/{sc}: {r}");
                    assert!(r.get("last_error").is_none(), "{p}/{sc}: {r}");
                }
                Err(code) => {
                    assert_eq!(r["status"], "down", "{p}/{sc}: {r}");
                    let err = r["last_error"].as_str().unwrap_or_default();
                    assert!(err.starts_with(&format!("{code}:")), "{p}/{sc}: {r}");
                }
            }
        }
    }
    let ok = row("ssp/Vultr/ok");
    assert_eq!(ok["kind"], "provider");
    assert_eq!(ok["source"], "provider:Vultr");
    assert_eq!(ok["status"], "up");
    assert_eq!(row("ssp/Vultr/paused")["status"], "disabled");
    let wrong = row("ssp/MegafonRussiaB2C/captcha");
    assert_eq!(wrong["status"], "down");
    assert!(
        wrong["last_error"]
            .as_str()
            .unwrap()
            .starts_with("captcha:"),
        "{wrong}"
    );
    let t2 = row("ssp/T2RussiaB2C/wrong");
    assert!(
        t2["last_error"].as_str().unwrap().contains("one-time code"),
        "{t2}"
    );
    // No secret anywhere.
    let table = get(app.http, "/apps").await.body_string();
    for text in [&body, &table, &apps.to_string()] {
        assert!(!text.contains("ok:12.5"), "password leaked");
        assert!(!text.contains("ok:3.5"), "password leaked");
    }
    app.stop().await;
}

/// Passwords and identifiers that YAML 1.1 types: every portal receives
/// the text written in the file in forms, headers and URLs, and in JSON
/// bodies the type the original's PyYAML gave (`123456` a number, `0891` a
/// string, `0123` the octal 83); labels keep the text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_typed_credentials_reach_the_portals_as_the_original_sent_them() {
    let dir = tempfile::tempdir().unwrap();
    let (portals, file) = setup(dir.path(), true).await;
    // No scenario hangs here: a generous timeout for a loaded machine.
    let app = TestApp::with_config(&format!(
        "[providers]\nconfig_file = \"{}\"\ntimeout = \"8s\"\nmax_concurrent = 8\n",
        file.display()
    ))
    .await;
    // Wait for every collection to end, whatever the labels turn out to be.
    let total = PROVIDERS.len() * (scenarios("", true).len() + TYPED_IDS.len());
    eventually(|| async {
        let body = app.metrics().await;
        let ups = body.lines().filter(|l| l.starts_with("ssp_up{")).count();
        let init = body.lines().any(|l| {
            l.starts_with("ssp_status{")
                && l.contains("status=\"init\"")
                && l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()) == Some(1.0)
        });
        ups == total && !init
    })
    .await;
    let body = app.metrics().await;
    let mut wrong: Vec<String> = Vec::new();
    for (p, portal) in PROVIDERS.iter().zip(&portals) {
        wrong.extend(portal.violations().into_iter().map(|v| format!("{p}: {v}")));
        let wants = scenarios(p, true)
            .into_iter()
            .map(|sc| (sc, expected(p, sc).unwrap()))
            .chain(
                TYPED_IDS
                    .iter()
                    .map(|(id, pw)| (*id, pw.strip_prefix("ok:").unwrap().parse().unwrap())),
            );
        for (id, want) in wants {
            let got = metric("ssp_balance")
                .label("provider", p)
                .label("identifier", id)
                .get(&body);
            if got != Some(want) {
                wrong.push(format!("{p}/{id}: balance {got:?}, expected {want}"));
            }
        }
    }
    // Label values keep their text too (YAML 1.1 would say true, false,
    // 83 and false).
    for p in PROVIDERS {
        for (id, _) in TYPED_IDS {
            let labelled = metric("ssp_balance")
                .label("provider", p)
                .label("identifier", id)
                .label("currency", "y")
                .label("paid", "n")
                .label("code", "0123")
                .label("on", "off")
                .is_in(&body);
            if !labelled {
                wrong.push(format!("{p}/{id}: labels changed"));
            }
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
    app.stop().await;
}

/// MegaFon and T2 with their first cookies on the final answer rather than
/// a redirect hop: the login and the token request still carry every
/// cookie of the jar, the narrow-path CSRF cookie (MegaFon) and the
/// session cookie beside the CSRF ones (T2), as the original sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cookie_of_the_jar_goes_with_the_login() {
    use crate::portals::Variant;
    let mut yaml = String::from(
        "service: {messages: {init: -1000000, disabled: -1000001}, user_agents: [TestAgent/1.0]}\nidentifiers:\n",
    );
    let mut portals = Vec::new();
    for p in ["MegafonRussiaB2C", "T2RussiaB2C"] {
        for (variant, id) in [(Variant::Final, "final"), (Variant::Hops, "hops")] {
            let portal = Portal::start_variant(p, variant).await;
            if id == "final" {
                writeln!(yaml, "  {p}:").unwrap();
            }
            writeln!(
                yaml,
                "    - {{identifier: {id}, password: \"ok:9.5\", base_url: \"{}\"}}",
                portal.base()
            )
            .unwrap();
            portals.push((p, id, portal));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ssp.yaml");
    std::fs::write(&file, yaml).unwrap();
    let app = TestApp::with_config(&format!(
        "[providers]\nconfig_file = \"{}\"\ntimeout = \"8s\"\n",
        file.display()
    ))
    .await;
    eventually(|| async {
        let body = app.metrics().await;
        portals
            .iter()
            .all(|(p, id, _)| status_of(&body, p, id).is_some_and(|s| s != "init"))
    })
    .await;
    let body = app.metrics().await;
    let mut wrong = Vec::new();
    for (p, id, portal) in &portals {
        wrong.extend(
            portal
                .violations()
                .into_iter()
                .map(|v| format!("{p}/{id}: {v}")),
        );
        let got = metric("ssp_balance")
            .label("provider", p)
            .label("identifier", id)
            .get(&body);
        if got != Some(9.5) {
            wrong.push(format!("{p}/{id}: balance {got:?}, expected 9.5"));
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
    app.stop().await;
}

/// MegaFon: a 200 login answer with a `jwtToken` is a success even when
/// the page also carries one of the texts the login checks look for (the
/// original looked for the token first). Cookies for the whole site here,
/// so that nothing else is at stake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megafon_login_with_a_jwt_wins_over_the_page_texts() {
    use crate::portals::Variant;
    let portal = Portal::start_variant("MegafonRussiaB2C", Variant::Simple).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ssp.yaml");
    std::fs::write(
        &file,
        format!(
            "service: {{messages: {{init: -1000000, disabled: -1000001}}, user_agents: []}}\nidentifiers:\n  MegafonRussiaB2C:\n    - {{identifier: jwtmsg, password: jwtmsg, base_url: \"{0}\"}}\n    - {{identifier: captcha, password: captcha, base_url: \"{0}\"}}\n",
            portal.base()
        ),
    )
    .unwrap();
    let app = TestApp::with_config(&format!(
        "[providers]\nconfig_file = \"{}\"\ntimeout = \"8s\"\n",
        file.display()
    ))
    .await;
    eventually(|| async {
        let body = app.metrics().await;
        ["jwtmsg", "captcha"]
            .iter()
            .all(|id| status_of(&body, "MegafonRussiaB2C", id).is_some_and(|s| s != "init"))
    })
    .await;
    let body = app.metrics().await;
    assert_eq!(portal.violations(), Vec::<String>::new());
    let v = |id: &str| {
        metric("ssp_balance")
            .label("provider", "MegafonRussiaB2C")
            .label("identifier", id)
            .get(&body)
    };
    assert_eq!(v("jwtmsg"), Some(4.5));
    // Without a token the texts still decide.
    assert_eq!(v("captcha"), Some(-1000003.0));
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_provider_file_lists_every_violation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ssp.json");
    std::fs::write(
        &file,
        r#"{"service": {"messages": {"init": "x"}}, "identifiers": {"Vultr": [{"password": 1, "poll_interval": -5}]}}"#,
    )
    .unwrap();
    let toml = dir.path().join("config.toml");
    std::fs::write(&toml, "[providers]\nconfig_file = \"ssp.json\"\n").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_exporter-proxy"))
        .args(["-c", toml.to_str().unwrap(), "check-config"])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    for path in [
        "`/service`",
        "`/service/messages/init`",
        "`/identifiers/Vultr/0`",
        "`/identifiers/Vultr/0/poll_interval`",
    ] {
        assert!(err.contains(path), "{path} not in:\n{err}");
    }
}

/// The original's own sample file, byte for byte, passes `check-config`;
/// a key the original ignored is a warning naming its path, a misspelled
/// one an error naming the key meant.
#[tokio::test]
async fn the_original_sample_and_ignored_keys_pass_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/ssp/original-sample.yaml"
    ))
    .unwrap();
    let check = |yaml: String| {
        let dir = dir.path().to_owned();
        async move {
            std::fs::write(dir.join("ssp.yaml"), yaml).unwrap();
            let toml = dir.join("config.toml");
            std::fs::write(&toml, "[providers]\nconfig_file = \"ssp.yaml\"\n").unwrap();
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_exporter-proxy"))
                .args(["-c", toml.to_str().unwrap(), "check-config"])
                .output()
                .await
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, err) = check(sample.clone()).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("warning"), "{err}");
    let (code, err) = check(format!("{sample}\nexporter_version: 2\n")).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning:") && err.contains("`/exporter_version`: unknown key ignored"),
        "{err}"
    );
    let (code, err) = check(sample.replace("user_agents:", "user_agent:")).await;
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("`/service/user_agent`") && err.contains("`user_agents`"),
        "{err}"
    );
}

/// HTTPS portals with a test CA: verified by default (an unknown CA is a
/// `connection_error`), trusted with `ca_file`, accepted with `tls_verify: false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_portals_are_verified_unless_told_otherwise() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "portal test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();

    let mut yaml = String::from(
        "service: {messages: {init: -1000000, disabled: -1000001}, user_agents: []}\nidentifiers:\n",
    );
    let mut portals = Vec::new();
    for p in ["Vultr", "ArubaCloud"] {
        let portal = Portal::start_tls(p, &leaf.pem(), &key.serialize_pem()).await;
        let base = portal.https_base();
        yaml.push_str(&format!(
            "  {p}:\n    - {{identifier: trusted, password: \"ok:5\", base_url: \"{base}\", ca_file: ca.pem}}\n    - {{identifier: unknown_ca, password: \"ok:5\", base_url: \"{base}\"}}\n    - {{identifier: unverified, password: \"ok:6\", base_url: \"{base}\", tls_verify: false}}\n"
        ));
        portals.push(portal);
    }
    let file = dir.path().join("ssp.yaml");
    std::fs::write(&file, yaml).unwrap();
    let app = TestApp::with_config(&format!(
        "[providers]\nconfig_file = \"{}\"\ntimeout = \"5s\"\n",
        file.display()
    ))
    .await;
    let done = |body: &str| {
        ["Vultr", "ArubaCloud"].iter().all(|p| {
            ["trusted", "unknown_ca", "unverified"]
                .iter()
                .all(|id| status_of(body, p, id).is_some_and(|s| s != "init"))
        })
    };
    let deadline = tokio::time::Instant::now() + STEP;
    let body = loop {
        let body = app.metrics().await;
        if done(&body) {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still init:\n{body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // The error says what failed and names both ways out, in /apps (and
    // in the log, which prints the same message).
    let apps = get(app.http, "/apps?format=json").await.body_string();
    let apps: serde_json::Value = serde_json::from_str(&apps).unwrap();
    for p in ["Vultr", "ArubaCloud"] {
        let row = apps["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == format!("ssp/{p}/unknown_ca"))
            .unwrap_or_else(|| panic!("no row for {p}: {apps}"));
        let err = row["last_error"].as_str().unwrap_or_default();
        for needle in [
            "connection_error:",
            "certificate",
            "`tls_verify: false`",
            "`ca_file",
        ] {
            assert!(err.contains(needle), "{needle} not in {err:?}");
        }
    }
    for p in ["Vultr", "ArubaCloud"] {
        let v = |id: &str| {
            metric("ssp_balance")
                .label("provider", p)
                .label("identifier", id)
                .get(&body)
        };
        assert_eq!(v("trusted"), Some(5.0), "{p}");
        assert_eq!(v("unverified"), Some(6.0), "{p}");
        assert_eq!(v("unknown_ca"), Some(-1000007.0), "{p}");
        assert_eq!(
            status_of(&body, p, "unknown_ca").as_deref(),
            Some("connection_error")
        );
    }
    app.stop().await;
}

/// The `Exec` provider: the command gets the account in its environment
/// and prints the balance; a failure, no number or a hang map to codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_provider_runs_a_command_with_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ssp.yaml");
    std::fs::write(
        &file,
        r#"
service: {messages: {init: -1000000, disabled: -1000001}, user_agents: []}
identifiers:
  Exec:
    - {identifier: env, password: "1 234,5", command: [/bin/sh, -c, 'test "$SSP_IDENTIFIER" = env && echo "$SSP_PASSWORD"']}
    - {identifier: negative, command: [/bin/echo, "-3.25"]}
    - {identifier: fails, command: [/bin/sh, -c, "exit 3"]}
    - {identifier: text, command: [/bin/echo, "no balance today"]}
    - {identifier: hangs, command: [/bin/sleep, "30"]}
    - {identifier: expo, command: [/usr/bin/printf, '# TYPE ssp_balance gauge\nssp_balance 1 234,5\n# TYPE isp_traffic_bytes gauge\nisp_traffic_bytes{month="11"} 42\n']}
    - {identifier: badexpo, command: [/usr/bin/printf, 'ssp_balance 5\nnot exposition {{\n']}
"#,
    )
    .unwrap();
    let app = TestApp::with_config(&format!(
        "[providers]\nconfig_file = \"{}\"\ntimeout = \"1s\"\n",
        file.display()
    ))
    .await;
    let ids = [
        "env", "negative", "fails", "text", "hangs", "expo", "badexpo",
    ];
    let deadline = tokio::time::Instant::now() + STEP;
    let body = loop {
        let body = app.metrics().await;
        if ids
            .iter()
            .all(|id| status_of(&body, "Exec", id).is_some_and(|s| s != "init"))
        {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still init:\n{body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let v = |id: &str| {
        metric("ssp_balance")
            .label("provider", "Exec")
            .label("identifier", id)
            .get(&body)
    };
    assert_eq!(v("env"), Some(1234.5));
    assert_eq!(v("negative"), Some(-3.25));
    assert_eq!(v("fails"), Some(-1000004.0));
    assert_eq!(v("text"), Some(-1000006.0));
    assert_eq!(v("hangs"), Some(-1000002.0));
    assert_eq!(
        status_of(&body, "Exec", "hangs").as_deref(),
        Some("no_answer")
    );
    app.stop().await;
}

/// A rate-limited identifier backs off: after the first `rate_limit` it
/// skips one run, after the second three; a success resets it. Driven run
/// by run (no clock involved).
#[tokio::test]
async fn a_rate_limited_identifier_backs_off() {
    use exporter_proxy::providers::config::{Identifier, Password};
    use exporter_proxy::providers::job::{ProviderJob, Shared};
    use exporter_proxy::store::Store;
    let portal = Portal::start("MegafonRussiaB2C").await;
    let cfg = exporter_proxy::config::Config::parse("").unwrap().config;
    let store = std::sync::Arc::new(Store::new(
        cfg.store_options(),
        exporter_proxy::telemetry::SelfMetrics::new(),
    ));
    let def = Identifier {
        provider: "MegafonRussiaB2C".to_owned(),
        identifier: "79201234567".to_owned(),
        raw_identifier: exporter_proxy::providers::config::yaml11::Typed::Str(
            "79201234567".to_owned(),
        ),
        password: Password::Inline(exporter_proxy::secret::Secret::new("ratelimit".to_owned())),
        labels: Vec::new(),
        tls_verify: true,
        poll_interval: std::time::Duration::from_secs(60),
        disabled: false,
        base_url: Some(portal.base()),
        ca_file: None,
        command: Vec::new(),
    };
    let shared = std::sync::Arc::new(Shared {
        metric_name: "ssp_balance".to_owned(),
        messages: exporter_proxy::providers::config::DEFAULT_MESSAGES
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        label_names: Default::default(),
        timeout: STEP,
    });
    let job = ProviderJob::new(def, shared, &[], store.clone()).unwrap();
    let mut attempts = Vec::new();
    for _ in 0..6 {
        job.collect().await;
        attempts.push(portal.hits("/mlk/api/login"));
    }
    // Runs 1 and 3 log in; 2 and 4-6 are skipped.
    assert_eq!(attempts, [1, 1, 2, 2, 2, 2]);
    let body = String::from_utf8(store.render().to_bytes().to_vec()).unwrap();
    assert!(
        metric("ssp_status")
            .label("status", "rate_limit")
            .value("1.0")
            .is_in(&body),
        "{body}"
    );
}

/// A reload applies the provider file: new identifiers start, removed ones
/// disappear from /metrics and /apps, unchanged ones keep running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_the_provider_file() {
    let portal = Portal::start("Vultr").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ssp.yaml");
    let write = |ids: &[(&str, &str)]| {
        let mut y = String::from(
            "service: {messages: {init: -1000000, disabled: -1000001}, user_agents: []}\nidentifiers:\n  Vultr:\n",
        );
        for (id, pw) in ids {
            writeln!(
                y,
                "    - {{identifier: {id}, password: \"{pw}\", base_url: \"{}\"}}",
                portal.base()
            )
            .unwrap();
        }
        std::fs::write(&file, y).unwrap();
    };
    write(&[("kept", "ok:1"), ("gone", "ok:2")]);
    let app = TestApp::with_config(&format!(
        "[providers]\nconfig_file = \"{}\"\n",
        file.display()
    ))
    .await;
    let value = |body: &str, id: &str| {
        metric("ssp_balance")
            .label("provider", "Vultr")
            .label("identifier", id)
            .get(body)
    };
    eventually(|| async { value(&app.metrics().await, "gone") == Some(2.0) }).await;
    write(&[("kept", "ok:1"), ("new", "ok:3")]);
    let (status, answer) = app.reload_with(&app.config_text).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("provider identifiers: 1 added, 0 changed, 1 removed, 1 unchanged"),
        "{answer}"
    );
    eventually(|| async { value(&app.metrics().await, "new") == Some(3.0) }).await;
    let body = app.metrics().await;
    assert_eq!(value(&body, "gone"), None);
    assert_eq!(value(&body, "kept"), Some(1.0));
    let apps = get(app.http, "/apps?format=json").await.body_string();
    assert!(!apps.contains("ssp/Vultr/gone"), "{apps}");
    // An invalid file is refused whole: the running identifiers stay.
    std::fs::write(&file, "service: {}\n").unwrap();
    let (status, answer) = app.reload_with(&app.config_text).await;
    assert_ne!(status, 200, "{answer}");
    assert!(answer.contains("`/service`"), "{answer}");
    assert_eq!(value(&app.metrics().await, "new"), Some(3.0));
    app.stop().await;
}

/// The committed sample `examples/ssp/providers.yaml`, with its mock
/// addresses and secrets swapped for the test's, runs against the mocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_sample_runs_against_the_mocks() {
    let dir = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/ssp/providers.yaml"
    ))
    .unwrap();
    let mut portals = Vec::new();
    let mut out = String::new();
    let mut current = String::new();
    for line in sample.lines() {
        if let Some(p) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            if !p.starts_with(' ') {
                current = p.to_owned();
            }
        }
        let line = if line.trim_start().starts_with("base_url:") {
            let portal = Portal::start(&current).await;
            let swapped = format!("      base_url: {}", portal.base());
            portals.push(portal);
            swapped
        } else if line.starts_with("    - Mozilla/") {
            // The mocks check that the user agent comes from the list.
            "    - TestAgent/1.0".to_owned()
        } else if line.trim_start().starts_with("password_env:") {
            // Tests never change the process environment: inline instead.
            "      password: \"ok:5\"".to_owned()
        } else {
            line.to_owned()
        };
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::write(dir.path().join("aruba.password"), "ok:7\n").unwrap();
    let file = dir.path().join("providers.yaml");
    std::fs::write(&file, out).unwrap();
    let app = TestApp::with_config(&format!(
        "[providers]\nconfig_file = \"{}\"\ntimeout = \"5s\"\n",
        file.display()
    ))
    .await;
    let want = [
        ("AlmatelRussia", "user123456", 5.0, "ok"),
        ("ArubaCloud", "1234566@aruba.it", 7.0, "ok"),
        ("FreedomVrnRussia", "5550001", 12.5, "ok"),
        ("MegafonRussiaB2C", "79201234567", 790.1, "ok"),
        ("T2RussiaB2C", "79001234567", -1000001.0, "disabled"),
        ("Vultr", "username@domain.tld", 5.0, "ok"),
        ("WifireRussia", "123456", 172.05, "ok"),
        ("Exec", "custom", 42.5, "ok"),
    ];
    eventually(|| async {
        let body = app.metrics().await;
        want.iter()
            .all(|(p, id, _, st)| status_of(&body, p, id).as_deref() == Some(st))
    })
    .await;
    let body = app.metrics().await;
    for (p, id, value, _) in want {
        let got = metric("ssp_balance")
            .label("provider", p)
            .label("identifier", id)
            .get(&body);
        assert_eq!(got, Some(value), "{p}/{id}");
    }
    crate::interop::promtool_check(&body).await;
    app.stop().await;
}
