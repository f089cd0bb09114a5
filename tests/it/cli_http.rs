//! `push` and `apps` on the real HTTP stack: against a proxy serving HTTPS
//! with basic auth from its web config, with `--ca-file`, `--user` and
//! `--password-file`, and the same exit codes as over plain HTTP (0
//! accepted, 2 refused, 1 unreachable or not trusted).

use crate::tls::{client_config, pki, run_bin, start_with_web, TLS};

#[tokio::test]
async fn push_and_apps_over_https_with_basic_auth() {
    let pki = pki();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let web = pki.web_config(&format!("{TLS}basic_auth_users:\n  prom: {hash}\n"));
    let app = start_with_web(&web, "").await;
    let dir = pki.dir.path();
    let password = dir.join("password");
    // A trailing newline, as `echo pw > file` writes.
    std::fs::write(&password, "pw\n").unwrap();
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "nope\n").unwrap();
    let metrics = dir.join("metrics.txt");
    std::fs::write(&metrics, "# TYPE tls_pushed gauge\ntls_pushed 1\n").unwrap();
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, format!("broken{{ 1 {}\n", "x".repeat(200))).unwrap();
    let ca = pki.ca.display().to_string();
    let url = format!("https://localhost:{}", app.http.port());
    let auth = |pw: &std::path::Path| {
        vec![
            "--ca-file".to_owned(),
            ca.clone(),
            "--user".to_owned(),
            "prom".to_owned(),
            "--password-file".to_owned(),
            pw.display().to_string(),
        ]
    };
    let push = |file: &std::path::Path, extra: Vec<String>| {
        let mut args = vec![
            "push".to_owned(),
            "--app".to_owned(),
            "tls_app".to_owned(),
            "--to".to_owned(),
            url.clone(),
            file.display().to_string(),
        ];
        args.extend(extra);
        run_bin(args)
    };

    let (code, out, err) = push(&metrics, auth(&password)).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "HTTP 200");
    assert!(app
        .store
        .apps()
        .iter()
        .any(|a| a.name == "{job=\"tls_app\"}"));

    // Refused by the proxy: exit 2 with the reason.
    let (code, out, _) = push(&bad, auth(&password)).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("HTTP 400") && out.contains("line 1"),
        "{out}"
    );
    // Wrong password: refused (401), exit 2; the password is never printed.
    let (code, out, err) = push(&metrics, auth(&wrong)).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.starts_with("HTTP 401"), "{out}");
    assert!(!out.contains("nope") && !err.contains("nope"));
    // No credentials: 401 as well.
    let (code, out, _) = push(&metrics, vec!["--ca-file".into(), ca.clone()]).await;
    assert_eq!(code, 2, "{out}");
    // A CA that did not sign the server's certificate: exit 1, nothing sent.
    let (code, _, err) = push(&metrics, vec![]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("certificate"), "{err}");
    // A password file that cannot be read: exit 1, naming the file.
    let missing = dir.join("missing");
    let (code, _, err) = push(&metrics, auth(&missing)).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");

    // apps with an explicit URL: the table, shortened errors; --wide, --json.
    let mut args = vec!["apps".to_owned(), "--url".to_owned(), url.clone()];
    args.extend(auth(&password));
    let (code, out, err) = run_bin(args.clone()).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("| App Name") && out.contains("tls_app"),
        "{out}"
    );
    let (code, wide, _) = run_bin([args.clone(), vec!["--wide".into()]].concat()).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("| line 1: invalid label name in broken: e… |"),
        "{out}"
    );
    assert!(out.lines().all(|l| l.chars().count() <= 180), "{out}");
    assert!(
        wide.contains(" UTC: line 1: invalid label name in broken: expected [a-zA-Z_]"),
        "{wide}"
    );
    let (code, json, _) = run_bin([args, vec!["--json".into()]].concat()).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["apps"][0]["name"].as_str().unwrap().contains("tls_app"));

    // apps with the address and TLS taken from the config and its web config.
    let config = client_config(dir, app.http, &web);
    let (code, out, err) = run_bin(vec![
        "-c".into(),
        config.display().to_string(),
        "apps".into(),
        "--user".into(),
        "prom".into(),
        "--password-file".into(),
        password.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("tls_app"), "{out}");
    // Without credentials: 401, exit 1.
    let (code, _, err) = run_bin(vec![
        "-c".into(),
        config.display().to_string(),
        "apps".into(),
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("HTTP 401"), "{err}");
    app.stop().await;
}
