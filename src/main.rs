//! The `exporter-proxy` binary: CLI → config → logging → bind → run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use exporter_proxy::{app, config::Config, telemetry};
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc. A push allocates thousands of small
/// strings on whichever thread parses it; glibc serves them from per-thread
/// arenas that keep their peak size (the RSS was 3-4 times the data held)
/// and spent a third of the push CPU in malloc/free. See docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for configuration errors (EX_CONFIG would be 78; the
/// original's users and our docs use EX_USAGE, 64).
const EXIT_CONFIG: u8 = 64;
/// Exit code when a listener cannot be bound or the server fails.
const EXIT_RUNTIME: u8 = 1;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match Config::load(&cli.config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("exporter-proxy: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        for w in &loaded.warnings {
            eprintln!("warning: {w}");
        }
        println!("{}: configuration is valid", cli.config.display());
        return ExitCode::SUCCESS;
    }
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
