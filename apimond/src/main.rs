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
    /// Put a backup taken with `apimonctl backup` in place as DATA_DIR's database, then
    /// exit. The daemon must be stopped; the database there is kept aside. The data
    /// directory needs the secret key of the backup (secret.key or APIMON_SECRET_KEY).
    #[arg(long, value_name = "FILE")]
    restore: Option<PathBuf>,
    /// Print the man page (section 8) and exit; the package build uses it.
    #[arg(long, hide = true)]
    manpage: bool,
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

fn restore(config: &Config, file: &std::path::Path) -> ExitCode {
    match apimond::restore(config, file) {
        Ok(r) => {
            println!(
                "restored {} into {} (schema version {}, {} targets, {} runs)",
                file.display(),
                config.paths.data_dir.display(),
                r.schema_version,
                r.targets,
                r.runs
            );
            if let Some(previous) = r.previous {
                println!(
                    "the database that was there is kept as {}; delete it once the restore is checked",
                    previous.display()
                );
            }
            println!(
                "start apimond to use it; runs that were in flight in the backup are marked interrupted"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("apimond: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.manpage {
        let page = clap_mangen::Man::new(<Args as clap::CommandFactory>::command()).section("8");
        return match page.render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("apimond: cannot write the man page: {e}");
                ExitCode::from(1)
            }
        };
    }
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("apimond: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.logging.format);
    if let Some(file) = &args.restore {
        return restore(&config, file);
    }
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
