//! The `apimond` binary: parse flags, load the configuration, log, run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use apimond::config::{Config, LogFormat};
use clap::Parser;

/// apimon daemon: watches LLM API relay channels and serves the dashboard, API and proxy.
///
/// Every setting is an environment variable (see README.md), also settable in a TOML
/// file given with --config or APIMON_CONFIG; the environment wins over the file.
#[derive(Parser)]
#[command(name = "apimond", version)]
struct Args {
    /// TOML configuration file (keys are the variable names, e.g. `port = 8081`).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("apimond: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.logging.format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("apimond: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(apimond::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apimond: {e:#}");
            ExitCode::from(1)
        }
    }
}
