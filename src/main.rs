//! The `exporter-proxy` binary: CLI → config → logging → bind → run, plus
//! the `check-config`, `push`, `apps` and `healthcheck` subcommands.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use exporter_proxy::activation::Activated;
use exporter_proxy::cli::{self, Target};
use exporter_proxy::config::Config;
use exporter_proxy::http::web::WebConfig;
use exporter_proxy::ingest::config::WireFormat;
use exporter_proxy::{app, healthcheck, telemetry};
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc. A push allocates thousands of small
/// strings on whichever thread parses it; glibc serves them from per-thread
/// arenas that keep their peak size (the RSS was 3-4 times the data held)
/// and spent a third of the push CPU in malloc/free. See docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (its index in `mi_option_t`; the
/// binding does not name it). `tests::the_purge_delay_option_is_the_one_we_set`
/// checks it against the option's documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc give freed memory back to the system at once instead of
/// after its default delay of a second (ten for whole arenas), unless
/// `MIMALLOC_PURGE_DELAY` says otherwise. A large store churns through
/// transient buffers (a push's text, a scrape's frames, a new gzip body
/// per change) that the delay kept resident: at a million series the peak
/// VmRSS of a benchmark run went from 112-114 to 92-101 MiB (1.37× to
/// 1.13-1.23× the pushed text; 100 ms read 1.29-1.31×). It costs CPU under
/// churn: 0.4-0.75 points of a core in the steady scenario
/// (docs/benchmarks.md, "Memory at a million series");
/// `MIMALLOC_PURGE_DELAY=1000` restores mimalloc's default.
fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` stores a value in mimalloc's option table.
    // It is not thread-safe, so it runs first thing in `main`, before the
    // process has any other thread; the option index is checked by a test.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

/// Exit code for configuration errors (EX_USAGE, as documented).
const EXIT_CONFIG: u8 = 64;
/// Exit code when a listener cannot be bound, the server fails, or a
/// client command cannot reach the proxy.
const EXIT_RUNTIME: u8 = 1;
/// Exit code of `push` when the proxy refused the push.
const EXIT_REJECTED: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "exporter-proxy",
    version,
    about = "A metrics multiplexer: push, poll and collect Prometheus metrics, serve them merged on one port"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(
        short = 'c',
        long = "config",
        visible_alias = "config.file",
        env = "EXPORTER_PROXY_CONFIG",
        default_value = "config.toml",
        global = true
    )]
    config: PathBuf,
    /// Log level or filter (`info`, `debug`, `exporter_proxy=trace`); `RUST_LOG` wins when set.
    #[arg(
        long = "log.level",
        visible_alias = "log-level",
        env = "EXPORTER_PROXY_LOG_LEVEL",
        default_value = "info",
        global = true
    )]
    log_level: String,
    /// Web configuration file (Prometheus exporter-toolkit format: TLS and
    /// basic auth of the HTTP port); overrides `exporter.web_config_file`.
    #[arg(
        long = "web.config.file",
        visible_alias = "web-config-file",
        env = "EXPORTER_PROXY_WEB_CONFIG_FILE",
        global = true
    )]
    web_config: Option<PathBuf>,
    /// Serve `POST /-/reload` (as Prometheus' flag); same as
    /// `[exporter] enable_lifecycle = true`. SIGHUP always reloads.
    #[arg(long = "web.enable-lifecycle", global = true)]
    enable_lifecycle: bool,
    /// Serve the endpoints that delete data (push API `DELETE`); same as
    /// `[exporter] enable_admin_api = true`.
    #[arg(long = "web.enable-admin-api", global = true)]
    enable_admin_api: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate the configuration file, print every problem, and exit (64 when invalid).
    CheckConfig,
    /// Push a file (or stdin) as one app to a running proxy and print its answer.
    /// Exits 2 when the proxy refused the push, 1 when it could not be reached.
    Push {
        /// The app name: the push replaces everything this app pushed before.
        #[arg(short, long, env = "EXPORTER_PROXY_APP")]
        app: String,
        /// Exposition text to push; `-` or nothing for stdin.
        file: Option<PathBuf>,
        /// Where to: `unix:/path`, `tcp://host:port` or `http(s)://host:port`
        /// (the Pushgateway-compatible API). Default: the first receiver of the config.
        #[arg(short, long, env = "EXPORTER_PROXY_PUSH_TO")]
        to: Option<String>,
        /// Envelope on sockets.
        #[arg(short, long, value_enum, default_value = "json")]
        format: Envelope,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Print the /apps table of a running proxy.
    Apps {
        /// Base URL of the proxy's HTTP port. Default: from the config.
        #[arg(short, long, env = "EXPORTER_PROXY_URL")]
        url: Option<String>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Error texts whole instead of shortened.
        #[arg(long)]
        wide: bool,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// GET /-/healthy of a running proxy: exit 0 when it answers 200, 1
    /// otherwise (for container health checks).
    Healthcheck {
        /// URL to check. Default: /-/healthy at the config's HTTP address,
        /// https when the web config enables TLS (certificate not verified).
        #[arg(short, long)]
        url: Option<String>,
        /// PEM CA bundle to verify an https server with.
        #[arg(long = "ca-file")]
        ca_file: Option<PathBuf>,
        /// Do not verify the server certificate.
        #[arg(long)]
        insecure: bool,
        /// Give up after this long.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
}

/// How `push` and `apps` reach an HTTPS proxy with basic auth.
#[derive(Debug, Clone, clap::Args)]
struct HttpArgs {
    /// PEM CA bundle to verify an https proxy with (instead of the system roots).
    #[arg(long = "ca-file", env = "EXPORTER_PROXY_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Do not verify the proxy's certificate.
    #[arg(long)]
    insecure: bool,
    /// Basic auth user (one of the web config's `basic_auth_users`).
    #[arg(long, env = "EXPORTER_PROXY_USER")]
    user: Option<String>,
    /// File holding the basic auth password (surrounding whitespace trimmed).
    #[arg(long = "password-file", env = "EXPORTER_PROXY_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
}

impl HttpArgs {
    fn options(&self) -> cli::HttpOptions {
        cli::HttpOptions {
            ca_file: self.ca_file.clone(),
            insecure: self.insecure,
            user: self.user.clone(),
            password: self
                .password_file
                .clone()
                .map(exporter_proxy::secret::SecretSource::File),
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Envelope {
    Json,
    Capnp,
}

fn main() -> ExitCode {
    return_freed_memory_promptly();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Push {
            ref app,
            ref file,
            ref to,
            format,
            ref http,
        }) => push(&cli, app, file.as_deref(), to.as_deref(), format, http),
        Some(Command::Apps {
            ref url,
            json,
            wide,
            ref http,
        }) => apps(&cli, url.as_deref(), json, wide, http),
        Some(Command::CheckConfig) => match load(&cli) {
            Ok((loaded, web)) => {
                for w in &loaded.warnings {
                    eprintln!("warning: {w}");
                }
                println!("{}: configuration is valid", cli.config.display());
                if let Some(p) = &loaded.config.web_config_file {
                    println!(
                        "{}: web configuration is valid: {}",
                        p.display(),
                        web.describe()
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("exporter-proxy: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Some(Command::Healthcheck {
            ref url,
            ref ca_file,
            insecure,
            timeout,
        }) => health(&cli, url.as_deref(), ca_file.as_deref(), insecure, timeout),
        Some(Command::Run) | None => run(&cli),
    }
}

/// The config with `--web.config.file` applied, and the loaded web config.
fn load(cli: &Cli) -> Result<(exporter_proxy::config::Loaded, WebConfig), String> {
    let mut loaded = Config::load(&cli.config).map_err(|e| e.to_string())?;
    if let Some(p) = &cli.web_config {
        loaded.config.web_config_file = Some(p.clone());
    }
    loaded.config.gates.lifecycle |= cli.enable_lifecycle;
    loaded.config.gates.admin_api |= cli.enable_admin_api;
    let web = match &loaded.config.web_config_file {
        Some(p) => WebConfig::load(p).map_err(|e| e.to_string())?,
        None => WebConfig::default(),
    };
    Ok((loaded, web))
}

fn run(cli: &Cli) -> ExitCode {
    let (loaded, web) = match load(cli) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("exporter-proxy: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Before any thread exists: listenfd edits the environment.
    let activated = match Activated::from_env() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("exporter-proxy: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    telemetry::init_logging(&cli.log_level);
    if !activated.is_empty() {
        tracing::info!(
            sockets = activated.len(),
            "socket activation: sockets handed over"
        );
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let config = loaded.config;
    let runtime = if config.worker_threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("exporter-proxy: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let config_path = cli.config.clone();
    let result = runtime.block_on(async move {
        let bound = app::bind_with(&config, activated, web)
            .await?
            .with_config_path(config_path);
        let shutdown = CancellationToken::new();
        tokio::spawn(app::cancel_on_signal(shutdown.clone()));
        app::run(bound, config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("exporter-proxy: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn push(
    cli: &Cli,
    app: &str,
    file: Option<&std::path::Path>,
    to: Option<&str>,
    format: Envelope,
    http: &HttpArgs,
) -> ExitCode {
    let target = match to {
        Some(t) => Target::parse(t),
        None => Config::load(&cli.config)
            .map_err(|e| format!("no --to given and {e}"))
            .and_then(|l| {
                Target::from_config(&l.config)
                    .map(|(t, _)| t)
                    .ok_or_else(|| "no --to given and the config has no receiver".to_owned())
            }),
    };
    let target = match target {
        Ok(t) => t,
        Err(e) => {
            eprintln!("exporter-proxy push: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut text = String::new();
    let read = match file {
        None => std::io::stdin().read_to_string(&mut text),
        Some(p) if p.as_os_str() == "-" => std::io::stdin().read_to_string(&mut text),
        Some(p) => std::fs::read_to_string(p).map(|t| {
            text = t;
            text.len()
        }),
    };
    if let Err(e) = read {
        eprintln!("exporter-proxy push: reading the metrics: {e}");
        return ExitCode::from(EXIT_RUNTIME);
    }
    let format = match format {
        Envelope::Json => WireFormat::Json,
        Envelope::Capnp => WireFormat::Capnp,
    };
    match cli::push(&target, format, app, &text, &http.options()) {
        Ok(out) => {
            println!("{}", out.answer);
            if out.accepted {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_REJECTED)
            }
        }
        Err(e) => {
            eprintln!("exporter-proxy push: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// `apps`: the table (or JSON) over HTTP(S). Without `--url` the address
/// comes from the config, `https` when its web config enables TLS; the
/// certificate is then verified only with `--ca-file` (as `healthcheck`:
/// it names a host, not the loopback address derived here).
fn apps(cli: &Cli, url: Option<&str>, json: bool, wide: bool, http: &HttpArgs) -> ExitCode {
    let mut options = http.options();
    let base = match url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => match load(cli) {
            Ok((l, web)) => {
                let scheme = if web.tls.is_some() { "https" } else { "http" };
                options.insecure |= web.tls.is_some() && options.ca_file.is_none();
                format!("{scheme}://{}", cli::loopback(l.config.http_listen))
            }
            Err(e) => {
                eprintln!("exporter-proxy apps: no --url given and {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let path = match (json, wide) {
        (true, _) => "/apps?format=json",
        (false, true) => "/apps?format=text&wide=1",
        (false, false) => "/apps?format=text",
    };
    match cli::http(&options, "GET", &format!("{base}{path}"), Vec::new()) {
        Ok((200, body)) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("exporter-proxy apps: HTTP {status}: {}", body.trim_end());
            ExitCode::from(EXIT_RUNTIME)
        }
        Err(e) => {
            eprintln!("exporter-proxy apps: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn health(
    cli: &Cli,
    url: Option<&str>,
    ca_file: Option<&std::path::Path>,
    insecure: bool,
    timeout: std::time::Duration,
) -> ExitCode {
    let (url, insecure) = match url {
        Some(u) => (u.to_owned(), insecure),
        None => match load(cli) {
            Ok((l, web)) => {
                let scheme = if web.tls.is_some() { "https" } else { "http" };
                let addr = cli::loopback(l.config.http_listen);
                // Derived from the config: the certificate names a host,
                // not this loopback address; liveness is the question.
                (
                    format!("{scheme}://{addr}/-/healthy"),
                    insecure || web.tls.is_some(),
                )
            }
            Err(e) => {
                eprintln!("exporter-proxy healthcheck: no --url given and {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let check = healthcheck::Check {
        url,
        ca_file,
        insecure,
        timeout,
    };
    match healthcheck::run(&check) {
        Ok(msg) => {
            println!("healthy: {msg}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("unhealthy: {msg}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_we_set() {
        // Read before anything sets it (tests do not run `main`): the
        // documented default of mimalloc v3's `purge_delay`, in ms.
        // SAFETY: reading an option; no other test touches them.
        let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(
                default, 1000,
                "index {MI_OPTION_PURGE_DELAY} is purge_delay"
            );
        }
        return_freed_memory_promptly();
        let set = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(set, 0);
        } else {
            assert_eq!(set, default, "the environment wins");
        }
    }
}
