//! The `exporter-proxy` binary: CLI → config → logging → bind → run, plus
//! the `check-config`, `push` and `apps` subcommands.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use exporter_proxy::cli::{self, Target};
use exporter_proxy::config::{Config, WireFormat};
use exporter_proxy::{app, telemetry};
use tokio_util::sync::CancellationToken;

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
        /// Where to: `unix:/path`, `tcp://host:port` or `http://host:port` (the
        /// Pushgateway-compatible API). Default: the first receiver of the config.
        #[arg(short, long, env = "EXPORTER_PROXY_PUSH_TO")]
        to: Option<String>,
        /// Envelope on sockets.
        #[arg(short, long, value_enum, default_value = "json")]
        format: Envelope,
    },
    /// Print the /apps table of a running proxy.
    Apps {
        /// Base URL of the proxy's HTTP port. Default: from the config.
        #[arg(short, long, env = "EXPORTER_PROXY_URL")]
        url: Option<String>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Envelope {
    Json,
    Capnp,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Push {
            ref app,
            ref file,
            ref to,
            format,
        }) => push(&cli, app, file.as_deref(), to.as_deref(), format),
        Some(Command::Apps { ref url, json }) => apps(&cli, url.as_deref(), json),
        Some(Command::CheckConfig) => match Config::load(&cli.config) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("warning: {w}");
                }
                println!("{}: configuration is valid", cli.config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("exporter-proxy: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Some(Command::Run) | None => run(&cli),
    }
}

fn run(cli: &Cli) -> ExitCode {
    let loaded = match Config::load(&cli.config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("exporter-proxy: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    telemetry::init_logging(&cli.log_level);
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
    let result = runtime.block_on(async move {
        let bound = app::bind(&config).await?;
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
    match cli::push(&target, format, app, &text) {
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

fn apps(cli: &Cli, url: Option<&str>, json: bool) -> ExitCode {
    let base = match url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => match Config::load(&cli.config) {
            Ok(l) => format!("http://{}", cli::loopback(l.config.http_listen)),
            Err(e) => {
                eprintln!("exporter-proxy apps: no --url given and {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let path = if json { "/apps?format=json" } else { "/apps" };
    match cli::http(&base, "GET", path, b"") {
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
