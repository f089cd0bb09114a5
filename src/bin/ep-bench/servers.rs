//! Starting and stopping the servers under test, each in its own temporary
//! directory with its own configuration, on loopback ports chosen by the
//! kernel. Every process is stopped when its handle is dropped, also on
//! errors and panics.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::client::HttpConn;
use crate::procfs;

/// How long a server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("ep-bench-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        // nginx's workers run as an unprivileged user: let them read the files.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `n` distinct free loopback addresses (bound together, read, released:
/// the server binds them next). Binding them together keeps the kernel from
/// handing out the same port twice.
pub fn free_addrs(n: usize) -> Result<Vec<SocketAddr>> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    Ok(held
        .iter()
        .map(TcpListener::local_addr)
        .collect::<Result<_, _>>()?)
}

/// A running server process.
pub struct Server {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl Server {
    pub fn spawn(name: &'static str, mut cmd: Command, dir: TempDir) -> Result<Server> {
        let log = dir.path().join(format!("{name}.log"));
        let out = fs::File::create(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Server {
            name,
            child,
            log,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process and its children, for CPU and memory accounting.
    pub fn pids(&self) -> Vec<u32> {
        procfs::tree(self.pid())
    }

    /// Fails with the end of its log if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); its log ends with:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let s = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Polls `path` over HTTP until it answers 200, within `READY_TIMEOUT`.
    pub async fn wait_ready(&mut self, addr: SocketAddr, path: &str) -> Result<()> {
        let started = Instant::now();
        let req = HttpConn::get(path, false);
        let mut body = Vec::new();
        loop {
            self.check_alive()?;
            let mut conn = HttpConn::new(addr);
            if let Ok(r) = conn.send(&req, &mut body).await {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} not ready on http://{addr}{path} after {READY_TIMEOUT:?}; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then SIGKILL after `STOP_TIMEOUT`. Fails if the process
    /// had already died.
    pub fn stop(mut self) -> Result<()> {
        self.check_alive()?;
        self.terminate();
        Ok(())
    }

    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // `kill` from procps: std only offers SIGKILL, which would leave
        // nginx's workers running.
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "ep-bench: {} did not stop within {STOP_TIMEOUT:?}: killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The proxy with its addresses.
pub struct Proxy {
    pub server: Server,
    pub http: SocketAddr,
    pub tcp: SocketAddr,
    pub unix: PathBuf,
}

/// Starts the proxy binary with a temporary config listening on loopback.
pub async fn start_proxy(
    binary: &Path,
    worker_threads: usize,
    apps: usize,
    series: usize,
) -> Result<Proxy> {
    let dir = TempDir::new("proxy")?;
    let [http, tcp] = free_addrs(2)?[..] else {
        unreachable!("two addresses")
    };
    let unix = dir.path().join("push.sock");
    let config = format!(
        r#"[exporter]
worker_threads = {worker_threads}
concurrent_requests = 2048
scrape_expose_endpoint = "{http}"
shutdown_grace_period = "2s"
# The benchmark deletes its groups through the push API between phases.
enable_admin_api = true

[receiver]
format = "auto"
receive_on_unix_socket = true
receiver_unix_socket = "{unix}"
receive_on_tcp_socket = true
receiver_tcp_socket = "{tcp}"

[limits]
max_push_bytes = "16MiB"
max_series_per_app = {max_series}
max_apps = {max_apps}
"#,
        unix = unix.display(),
        max_series = series.max(100_000),
        max_apps = apps.max(10_000),
    );
    let config_path = dir.path().join("config.toml");
    fs::write(&config_path, config)?;
    let mut cmd = Command::new(binary);
    cmd.arg("-c").arg(&config_path);
    let mut server = Server::spawn("exporter-proxy", cmd, dir)?;
    server.wait_ready(http, "/-/ready").await?;
    Ok(Proxy {
        server,
        http,
        tcp,
        unix,
    })
}

/// Starts the Pushgateway without persistence (Debian's build otherwise
/// reloads the previous run's state).
pub async fn start_pushgateway(binary: &Path) -> Result<(Server, SocketAddr)> {
    let dir = TempDir::new("pushgateway")?;
    let addr = free_addrs(1)?[0];
    let mut cmd = Command::new(binary);
    cmd.arg("--persistence.file=")
        .arg(format!("--web.listen-address={addr}"));
    let mut server = Server::spawn("pushgateway", cmd, dir)?;
    server.wait_ready(addr, "/-/ready").await?;
    Ok((server, addr))
}

/// Starts nginx serving `plain` at `/metrics` and, to clients accepting
/// gzip, `gzip` as a pre-compressed file (`gzip_static`).
pub async fn start_nginx(
    binary: &Path,
    workers: usize,
    plain: &[u8],
    gzip: &[u8],
) -> Result<(Server, SocketAddr)> {
    let dir = TempDir::new("nginx")?;
    let p = dir.path();
    let addr = free_addrs(1)?[0];
    let www = p.join("www");
    fs::create_dir_all(&www)?;
    fs::set_permissions(&www, fs::Permissions::from_mode(0o755))?;
    for (name, bytes) in [("metrics", plain), ("metrics.gz", gzip)] {
        let f = www.join(name);
        fs::write(&f, bytes)?;
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644))?;
    }
    // As root, the master switches its workers to an unprivileged user.
    let user = if nix_is_root() {
        "user nobody nogroup;"
    } else {
        ""
    };
    let temps: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("    {t}_temp_path {}/tmp_{t};\n", p.display()))
        .collect();
    let config = format!(
        r#"daemon off;
master_process on;
{user}
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
{temps}    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
        listen {addr};
        root {www};
        location = /metrics {{
            default_type "text/plain; version=0.0.4; charset=utf-8";
            gzip_static on;
        }}
    }}
}}
"#,
        dir = p.display(),
        www = www.display(),
    );
    let conf = p.join("nginx.conf");
    fs::write(&conf, config)?;
    let mut cmd = Command::new(binary);
    cmd.arg("-p")
        .arg(p)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(p.join("error.log"));
    let mut server = Server::spawn("nginx", cmd, dir)?;
    server.wait_ready(addr, "/metrics").await?;
    Ok((server, addr))
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
