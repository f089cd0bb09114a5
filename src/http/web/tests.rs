//! Tests of [`WebConfig::parse`]: valid files, every problem reported, no
//! secret in errors or `Debug` output.

use super::*;

/// A CA and a server certificate for localhost, written into a temp dir
/// as `ca.crt`, `server.crt`, `server.key`.
fn pki() -> tempfile::TempDir {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("server.crt"), leaf.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
    dir
}

#[track_caller]
fn problems(text: &str, base: &Path) -> Vec<String> {
    match WebConfig::parse(text, base) {
        Ok(c) => panic!("expected problems, parsed {c:?}"),
        Err(p) => p,
    }
}

#[test]
fn empty_file_means_no_tls_and_no_auth() {
    for text in ["", "\n# nothing\n"] {
        let c = WebConfig::parse(text, Path::new(".")).unwrap();
        assert!(c.tls.is_none() && c.basic_auth.is_none());
    }
}

#[test]
fn tls_with_relative_paths_client_ca_and_auth() {
    let dir = pki();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let text = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n  min_version: TLS12\nbasic_auth_users:\n  prom: {hash}\n"
    );
    let c = WebConfig::parse(&text, dir.path()).unwrap();
    let tls = c.tls.as_ref().unwrap();
    // A CA without client_auth_type means RequireAndVerifyClientCert, as
    // in exporter-toolkit.
    assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
    assert_eq!(tls.cert_file, dir.path().join("server.crt"));
    assert_eq!(tls.server_config.alpn_protocols, [b"http/1.1".to_vec()]);
    assert_eq!(c.basic_auth.as_ref().unwrap().user_count(), 1);
    let shown = format!("{c:?} {}", c.describe());
    assert!(!shown.contains(&hash), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}

#[test]
fn verify_if_given_is_accepted() {
    let dir = pki();
    let c = WebConfig::parse(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n  client_auth_type: VerifyClientCertIfGiven\n",
        dir.path(),
    )
    .unwrap();
    assert_eq!(
        c.tls.unwrap().client_auth,
        ClientAuth::VerifyClientCertIfGiven
    );
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let dir = pki();
    let p = problems(
        "tls_server_config:\n  key_file: missing.key\n  client_auth_type: RequireAnyClientCert\n  min_version: TLS10\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\nbasic_auth_users:\n  prom: hunter2\n",
        dir.path(),
    );
    let all = p.join("\n");
    for key in [
        "`tls_server_config.cert_file`: required",
        "`tls_server_config.key_file`",
        "missing.key",
        "RequireAnyClientCert",
        "TLS10",
        "`tls_server_config.cipher_suites`",
        "`basic_auth_users.prom`: not a bcrypt hash",
    ] {
        assert!(all.contains(key), "{key} in:\n{all}");
    }
    assert!(!all.contains("hunter2"), "{all}");
}

#[test]
fn client_auth_without_ca_and_ca_without_client_auth_are_errors() {
    let dir = pki();
    let p = problems(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n",
        dir.path(),
    );
    assert_eq!(
        p,
        ["`tls_server_config.client_ca_file`: required to verify client certificates"]
    );
    let p = problems(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n  client_auth_type: NoClientCert\n",
        dir.path(),
    );
    assert!(p[0].contains("NoClientCert"), "{p:?}");
}

#[test]
fn unknown_keys_and_bad_yaml_are_errors() {
    let p = problems("tls_server_confg:\n  cert_file: x\n", Path::new("."));
    assert!(p[0].contains("tls_server_confg"), "{p:?}");
    let p = problems("basic_auth_users: [a, b\n", Path::new("."));
    assert!(p[0].starts_with("not valid"), "{p:?}");
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_an_error() {
    let dir = pki();
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("other.key"), other.serialize_pem()).unwrap();
    let p = problems(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
        dir.path(),
    );
    assert!(p[0].contains("do not form a usable pair"), "{p:?}");
}

#[test]
fn min_above_max_leaves_no_version() {
    let dir = pki();
    let p = problems(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n  max_version: TLS12\n",
        dir.path(),
    );
    assert!(p[0].contains("min_version is above max_version"), "{p:?}");
    let c = WebConfig::parse(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n",
        dir.path(),
    )
    .unwrap();
    assert!(c.tls.is_some());
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(&path, "basic_auth_users:\n  u: nope\n").unwrap();
    let e = WebConfig::load(&path).unwrap_err();
    assert_eq!(e.path, path);
    assert!(e.to_string().contains("web.yml"), "{e}");
}
