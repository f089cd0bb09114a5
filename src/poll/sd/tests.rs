use std::time::Duration;

use super::*;
use crate::poll::config::Auth;
use crate::store::StoreOptions;
use crate::telemetry::SelfMetrics;

fn parse(toml_text: &str) -> (Vec<SdConfig>, Vec<String>) {
    let doc: toml::Table = toml::from_str(toml_text).unwrap();
    let poll = doc.get("poll").and_then(|p| p.as_table());
    let mut problems = Vec::new();
    let sds = parse_config(
        poll.and_then(|p| p.get("file_sd")),
        poll.and_then(|p| p.get("http_sd")),
        Some("app"),
        1 << 20,
        &mut problems,
    );
    (sds, problems)
}

fn file_sd(files: &[&str]) -> SdConfig {
    let list: Vec<String> = files.iter().map(|f| format!("{f:?}")).collect();
    let (mut sds, problems) = parse(&format!(
        "[[poll.file_sd]]\nname = \"nodes\"\nfiles = [{}]\nrefresh_interval = \"50ms\"\n\
         [poll.file_sd.targets]\ninterval = \"1h\"\ntimeout = \"1s\"\nlabels = {{ dc = \"a\" }}\n",
        list.join(", ")
    ));
    assert!(problems.is_empty(), "{problems:?}");
    sds.pop().unwrap()
}

#[test]
fn config_of_both_kinds() {
    let (sds, problems) = parse(
        "[[poll.file_sd]]\nname = \"nodes\"\nfiles = [\"/etc/sd/*.json\", \"/etc/sd/x.yml\"]\n\
         [poll.file_sd.targets]\ninterval = \"30s\"\nbearer_token_file = \"/etc/tok\"\nmax_body_size = \"2MiB\"\n\
         [[poll.http_sd]]\nname = \"jobs\"\nurl = \"https://backend:8443/sd\"\nrefresh_interval = \"2m\"\n\
         basic_auth = { username = \"u\", password_env = \"SD_PASSWORD\" }\n\
         tls = { insecure_skip_verify = true }\n",
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(sds.len(), 2);
    assert_eq!(sds[0].refresh_interval, config::DEFAULT_FILE_REFRESH);
    assert_eq!(sds[0].template.interval, Duration::from_secs(30));
    assert!(matches!(sds[0].template.auth, Some(Auth::Bearer(_))));
    assert_eq!(sds[0].template.max_body_bytes, 2 << 20);
    assert_eq!(sds[1].refresh_interval, Duration::from_secs(120));
    let SdSource::Http(endpoint) = &sds[1].source else {
        panic!("http")
    };
    assert_eq!(endpoint.url, "https://backend:8443/sd");
    assert!(endpoint.insecure_skip_verify);
    assert!(matches!(endpoint.auth, Some(Auth::Basic { .. })));
    // The password is not in the Debug output of the config.
    assert!(!format!("{sds:?}").contains("SD_PASSWORD_VALUE"));
}

#[test]
fn config_problems_name_their_key() {
    let (_, problems) = parse(
        "[[poll.file_sd]]\nname = \"bad name\"\nfiles = [\"/x/*/a.json\", \"/x/a.txt\"]\nurl = \"http://x\"\n\
         [poll.file_sd.targets]\ninterval = \"soon\"\nlabels = { \"__x\" = \"1\" }\n\
         [[poll.http_sd]]\nname = \"h\"\nfiles = [\"a.json\"]\nfrobnicate = 1\n\
         [[poll.http_sd]]\nname = \"h2\"\nbearer_token_file = \"a\"\nbearer_token_env = \"B\"\n",
    );
    let all = problems.join("\n");
    for want in [
        "`poll.file_sd[0].name`: \"bad name\" is not a valid name",
        "`poll.file_sd[0].files`: \"/x/*/a.json\"",
        "`poll.file_sd[0].files`: \"/x/a.txt\"",
        "`poll.file_sd[0].url`: only for [[poll.http_sd]]",
        "`poll.file_sd[0].targets.interval`: \"soon\" is not a duration",
        "`poll.file_sd[0].targets.labels`: \"__x\" is not a valid label name",
        "`poll.http_sd[0]`: unknown field `frobnicate`",
        "`poll.http_sd[1].url`: required",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
}

#[test]
fn groups_make_targets_with_scheme_path_params_and_labels() {
    let sd = file_sd(&["/x.json"]);
    let groups = parse_groups(
        r#"[
            {"targets": ["10.0.0.1:9100", "10.0.0.2:9100"], "labels": {"job": "node", "__meta_x": "dropped"}},
            {"targets": ["probe:9115"], "labels": {"__scheme__": "https", "__metrics_path__": "/probe",
              "__param_target": "https://example.org/?a=b", "__param_module": "http_2xx", "instance": "example.org", "dc": "b"}}
        ]"#,
        false,
    )
    .unwrap();
    let targets = targets_from_groups(&sd, groups).unwrap();
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "nodes/10.0.0.1:9100/metrics",
            "nodes/10.0.0.2:9100/metrics",
            "nodes/probe:9115/probe?module=http_2xx&target=https%3A%2F%2Fexample.org%2F%3Fa%3Db"
        ]
    );
    assert_eq!(targets[0].url, "http://10.0.0.1:9100/metrics");
    assert_eq!(
        targets[0].labels,
        [
            ("dc".to_owned(), "a".to_owned()),
            ("instance".to_owned(), "10.0.0.1:9100".to_owned()),
            ("job".to_owned(), "node".to_owned())
        ]
    );
    assert_eq!(
        targets[2].url,
        "https://probe:9115/probe?module=http_2xx&target=https%3A%2F%2Fexample.org%2F%3Fa%3Db"
    );
    // The group's labels win over the source's; `instance` as given.
    assert_eq!(
        targets[2].labels,
        [
            ("dc".to_owned(), "b".to_owned()),
            ("instance".to_owned(), "example.org".to_owned())
        ]
    );
    assert_eq!(targets[2].interval, Duration::from_secs(3600));
}

#[test]
fn yaml_groups() {
    let groups = parse_groups(
        "- targets: ['a:1']\n  labels:\n    job: x\n- targets:\n  - b:2\n",
        true,
    )
    .unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[1].targets, ["b:2"]);
    assert_eq!(groups[0].labels["job"], "x");
}

#[test]
fn bad_groups_are_refused_whole() {
    let sd = file_sd(&["/x.json"]);
    for (text, want) in [
        (r#"{"targets": []}"#, "invalid service-discovery JSON"),
        (r#"[{"labels": {}}]"#, "missing field `targets`"),
        (
            r#"[{"targets": ["a:1"], "labels": {"__scheme__": "ftp"}}]"#,
            "group 0, target \"a:1\": __scheme__ \"ftp\"",
        ),
        (
            r#"[{"targets": ["a:1"], "labels": {"__metrics_path__": "x"}}]"#,
            "__metrics_path__ \"x\"",
        ),
        (r#"[{"targets": ["a:1/x"]}]"#, "expected host:port"),
        (
            r#"[{"targets": ["a:1"], "labels": {"bad-name": "1"}}]"#,
            "not a valid label name",
        ),
        (
            r#"[{"targets": ["a:1"]}, {"targets": ["a:1"], "labels": {"x": "1"}}]"#,
            "listed twice with different labels",
        ),
    ] {
        let e = parse_groups(text, false).and_then(|g| targets_from_groups(&sd, g));
        let e = e.expect_err(text);
        assert!(e.contains(want), "{text}: {e}");
    }
    // The same target twice with the same labels is one target.
    let g = parse_groups(r#"[{"targets": ["a:1", "a:1"]}]"#, false).unwrap();
    assert_eq!(targets_from_groups(&sd, g).unwrap().len(), 1);
}

#[test]
fn globs_in_the_file_name() {
    assert!(glob_match(b"*.json", b"a.json"));
    assert!(glob_match(b"n?des-*.yml", b"nodes-1.yml"));
    assert!(!glob_match(b"*.json", b"a.yml"));
    assert!(!glob_match(b"?", b""));
}

fn store() -> Arc<Store> {
    Arc::new(Store::new(StoreOptions::default(), SelfMetrics::new()))
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} did not happen in time");
}

/// File changes reconcile the targets with their phases kept; a bad file
/// keeps the previous list and shows in `/apps` and the self-metrics.
#[tokio::test]
async fn file_changes_reconcile_targets_and_a_bad_file_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.json");
    let yaml = dir.path().join("b.yml");
    std::fs::write(&file, r#"[{"targets": ["127.0.0.1:1", "127.0.0.1:2"]}]"#).unwrap();
    let store = store();
    let shutdown = CancellationToken::new();
    let poller = Poller::new(store.clone(), 4, shutdown.child_token());
    poller
        .set_static(vec![TargetConfig {
            name: "static".to_owned(),
            url: "http://127.0.0.1:3/metrics".to_owned(),
            ..file_sd(&["/unused.json"]).template
        }])
        .await;
    let sd = ServiceDiscovery::new(poller.clone(), store.clone(), shutdown.child_token());
    let pattern = dir.path().join("*.*");
    sd.set(vec![file_sd(&[pattern.to_str().unwrap()])]).await;

    let ids = || {
        let poller = poller.clone();
        async move { poller.scheduler().ids().await }
    };
    let want = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    for _ in 0..200 {
        if ids().await.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        ids().await,
        want(&[
            "nodes/127.0.0.1:1/metrics",
            "nodes/127.0.0.1:2/metrics",
            "static"
        ])
    );
    let phase = |id: &'static str| {
        let poller = poller.clone();
        async move { poller.scheduler().first_run(id).await.unwrap() }
    };
    let (p1, ps) = (
        phase("nodes/127.0.0.1:1/metrics").await,
        phase("static").await,
    );

    // A second file adds a target, the first loses one: the others keep their phase.
    std::fs::write(&file, r#"[{"targets": ["127.0.0.1:1"]}]"#).unwrap();
    std::fs::write(&yaml, "- targets: ['127.0.0.1:4']\n").unwrap();
    for _ in 0..200 {
        if ids()
            .await
            .contains(&"nodes/127.0.0.1:4/metrics".to_owned())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        ids().await,
        want(&[
            "nodes/127.0.0.1:1/metrics",
            "nodes/127.0.0.1:4/metrics",
            "static"
        ])
    );
    assert_eq!(phase("nodes/127.0.0.1:1/metrics").await, p1);
    assert_eq!(phase("static").await, ps);
    let up = |store: &Store| {
        store
            .apps()
            .into_iter()
            .find(|a| a.name == "sd/nodes")
            .map(|a| (a.status(), a.last_error))
    };
    assert_eq!(up(&store).map(|u| u.0), Some("up"));

    // A bad file: the list stays, the error shows.
    std::fs::write(&file, "[{\"targets\": [").unwrap();
    eventually("the error in /apps", || {
        up(&store).is_some_and(|u| u.0 == "down")
    })
    .await;
    let (_, error) = up(&store).unwrap();
    let error = error.unwrap();
    assert!(
        error.contains("invalid_body") && error.contains("a.json"),
        "{error}"
    );
    assert!(error.contains("previous targets are kept"), "{error}");
    // Reported once per bad version, not at every check.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store
            .self_metrics()
            .poll_failures("sd/nodes", PollFailure::InvalidBody),
        1
    );
    assert_eq!(ids().await.len(), 3);
    assert_eq!(phase("nodes/127.0.0.1:1/metrics").await, p1);

    // Fixed: back up. Removing the source removes its targets, not the static one.
    std::fs::write(&file, r#"[{"targets": ["127.0.0.1:1"]}]"#).unwrap();
    eventually("up again", || up(&store).is_some_and(|u| u.0 == "up")).await;
    let report = sd.set(Vec::new()).await;
    assert_eq!(report.removed, ["nodes"]);
    assert_eq!(ids().await, want(&["static"]));
    assert!(up(&store).is_none());
    sd.stop().await;
    poller.stop().await;
}
