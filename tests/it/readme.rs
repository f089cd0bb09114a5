//! The README as a new user reads it: every shell block, in order, run by
//! bash against the binary started with the committed `config.toml`, from a
//! copy of the repository's files, with the binary on the `PATH`.
//!
//! A block that cannot run here says so in an HTML comment right above it:
//! `<!-- readme-test: skip: <why> -->` (a release build, a second proxy,
//! root, a container engine), or `<!-- readme-test: proxy: ... -->` for
//! the block that starts the proxy (this test starts it instead). Every
//! other block runs, verbatim, under `set -euo pipefail`: a command that
//! fails (a push refused with exit 2, a missing file) fails the test.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_exporter-proxy");
/// The committed config's addresses (the README's commands use them).
const HTTP: &str = "127.0.0.1:6555";
const PORTS: [u16; 3] = [6554, 6555, 6556];
/// All blocks together: a venv check, a few pushes, the Python clients.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// What the comment above a block says.
#[derive(Debug, Clone, PartialEq)]
enum Marker {
    Run,
    Skip(String),
    Proxy,
}

/// A shell block: its first line number, its text, its marker.
#[derive(Debug)]
struct Block {
    line: usize,
    text: String,
    marker: Marker,
}

/// Every ```sh (or bash, shell) block of `md`, in order.
fn shell_blocks(md: &str) -> Vec<Block> {
    let lines: Vec<&str> = md.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        let is_shell = ["```sh", "```bash", "```shell"].iter().any(|f| {
            fence
                .strip_prefix(f)
                .is_some_and(|rest| rest.trim().is_empty())
        });
        if !is_shell {
            i += 1;
            continue;
        }
        let above = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map_or("", |l| l.trim());
        let marker = match above
            .strip_prefix("<!-- readme-test:")
            .and_then(|m| m.strip_suffix("-->"))
            .map(str::trim)
        {
            None => Marker::Run,
            Some(m) if m.starts_with("proxy:") => Marker::Proxy,
            Some(m) => {
                let reason = m
                    .strip_prefix("skip:")
                    .unwrap_or_else(|| panic!("README line {i}: unknown marker {m:?}"))
                    .trim();
                assert!(!reason.is_empty(), "README line {i}: a skip needs a reason");
                Marker::Skip(reason.to_owned())
            }
        };
        let start = i + 1;
        let end = (start..lines.len())
            .find(|&j| lines[j].trim_start().starts_with("```"))
            .unwrap_or_else(|| panic!("README line {start}: unterminated block"));
        out.push(Block {
            line: start,
            text: lines[start..end].join("\n"),
            marker,
        });
        i = end + 1;
    }
    out
}

/// The column names of the first table line holding `App Name`.
fn table_columns(text: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.contains("| App Name"))
        .unwrap_or_else(|| panic!("no /apps table in:\n{text}"));
    line.split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == ".venv" || name == "__pycache__" {
            continue;
        }
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else if ty.is_file() {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
fn shell_blocks_are_found_with_their_markers() {
    let md = "a\n<!-- readme-test: skip: why -->\n```sh\nx\n```\n```sh\ny\nz\n```\n```toml\nk = 1\n```\n<!-- readme-test: proxy: p -->\n\n```bash\nrun\n```\n";
    let b = shell_blocks(md);
    assert_eq!(b.len(), 3);
    assert_eq!(b[0].marker, Marker::Skip("why".into()));
    assert_eq!(
        (b[1].line, b[1].text.as_str(), &b[1].marker),
        (6, "y\nz", &Marker::Run)
    );
    assert_eq!(b[2].marker, Marker::Proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shell_block_of_the_readme_runs_in_order() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let blocks = shell_blocks(&readme);
    assert_eq!(
        blocks.iter().filter(|b| b.marker == Marker::Proxy).count(),
        1,
        "one block starts the proxy"
    );
    for port in PORTS {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} of the committed config is in use: stop whatever listens there"
        );
    }

    // A copy of what the blocks use, as a clone of the repository has it.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::copy(repo("config.toml"), root.join("config.toml")).unwrap();
    copy_dir(&repo("schema"), &root.join("schema"));
    copy_dir(
        &repo("python_test_clients"),
        &root.join("python_test_clients"),
    );
    // The venv the README creates, made from the test suite's one so that
    // `pip install -r requirements.txt` finds everything installed and
    // needs no network.
    let venv = crate::interop::python();
    let venv = venv.parent().and_then(Path::parent).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(venv)
        .arg(root.join("python_test_clients/.venv"))
        .status()
        .unwrap();
    assert!(status.success());

    let log = std::fs::File::create(root.join("proxy.log")).unwrap();
    let mut proxy = tokio::process::Command::new(BIN)
        .args(["-c", "config.toml"])
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http: std::net::SocketAddr = HTTP.parse().unwrap();
    eventually(|| async {
        tokio::net::TcpStream::connect(http).await.is_ok()
            && get(http, "/-/ready").await.status == 200
    })
    .await;

    let mut script = String::from("set -euo pipefail\n");
    let mut skipped = Vec::new();
    for b in &blocks {
        match &b.marker {
            Marker::Run => {
                script.push_str(&format!(
                    "echo '### README line {}' >&2\n{}\n",
                    b.line, b.text
                ));
            }
            Marker::Skip(why) => skipped.push(format!("line {}: {why}", b.line)),
            Marker::Proxy => {}
        }
    }
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(root)
        .env("PATH", path)
        .env_remove("EXPORTER_PROXY_CONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .expect("the README's commands finish")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let proxy_log = || std::fs::read_to_string(root.join("proxy.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "a README command failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- proxy\n{}",
        out.status,
        proxy_log()
    );
    eprintln!("README blocks not run: {skipped:#?}");

    // No push was refused along the way (nc prints the reply; nothing fails on it).
    assert!(!stdout.contains("\"ok\":false"), "{stdout}");
    let apps: serde_json::Value =
        serde_json::from_slice(&get(http, "/apps?format=json").await.body).unwrap();
    let apps = apps["apps"].as_array().unwrap();
    for a in apps {
        assert_ne!(
            a["status"],
            "rejected",
            "refused push: {a}\n{}",
            proxy_log()
        );
    }
    for name in [
        "foo_bar_app0_metrics",
        "myapp",
        "backup",
        "{job=\"backup\"}",
        "{job=\"backup\",instance=\"db1\"}",
        "cron_backup",
    ] {
        assert!(
            apps.iter().any(|a| a["name"] == name),
            "{name} missing: {apps:#?}"
        );
    }
    // The sample table in the README has the columns the real one has.
    let sample = readme
        .split("```\n")
        .find(|chunk| chunk.contains("| App Name"))
        .expect("a sample /apps table in the README");
    assert_eq!(table_columns(sample), table_columns(&stdout));
    assert_eq!(table_columns(sample).len(), 9);

    // Stop it as a user would (Ctrl-C).
    let pid = proxy.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(STEP, proxy.wait())
        .await
        .expect("the proxy stops on SIGINT")
        .unwrap();
    assert!(status.success(), "{status}\n{}", proxy_log());
}
