//! `apimonctl`: the command-line client of apimond. Talks to the daemon over its
//! control socket, or over HTTP to a remote daemon (`--url`), and probes a relay with
//! no daemon at all (`probe`).
//!
//! Exit codes: 0 ok, 1 check threshold crossed, 2 usage error, 3 daemon unreachable,
//! 4 not found, 5 any other error.

mod admin;
mod backup;
mod error;
mod events;
mod health;
mod keys;
mod output;
mod probe;
mod runs;
mod target;
mod transport;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use error::CliError;
use output::Out;

/// Watch LLM API relay channels: manage targets, run probes, gate CI on their health.
#[derive(Parser)]
#[command(name = "apimonctl", version = shared::VERSION, propagate_version = true)]
pub struct Cli {
    /// Control socket of the daemon (default: APIMON_SOCKET, then the usual places).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Drive a (remote) daemon over its HTTP API instead of the socket.
    #[arg(long, global = true, env = "APIMON_URL", value_name = "URL")]
    url: Option<String>,
    /// Environment variable holding the API token for --url.
    #[arg(long, global = true, value_name = "VAR")]
    token_env: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Daemon version, uptime, target counts, running and queued runs, scheduler lag.
    Status,
    /// Add, list, show, change, remove, enable or disable targets (channels).
    #[command(subcommand)]
    Target(TargetCommand),
    /// Start runs of targets now.
    Run {
        /// Targets: an id, a name, or `name:<name>` for a name made of digits.
        #[arg(required = true)]
        targets: Vec<String>,
        /// Wait until the runs finish (a progress bar on a terminal).
        #[arg(long)]
        wait: bool,
    },
    /// The latest runs of a target.
    Runs {
        target: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// The models of a target's latest run (or of --run ID).
    Models {
        target: String,
        #[arg(long, value_name = "ID")]
        run: Option<i64>,
    },
    /// Print events: those of the runs in flight, or all of them with --follow.
    Events {
        /// Keep printing until interrupted.
        #[arg(long)]
        follow: bool,
    },
    /// Run targets (all enabled ones by default; with --max-age only those without a
    /// recent run), wait, and exit 1 if any reaches the threshold: the CI health check.
    Check {
        targets: Vec<String>,
        /// The status from which the check fails.
        #[arg(long, value_enum, default_value_t = Threshold::Down)]
        fail_on: Threshold,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
        /// Judge a target by its latest run when that finished within this long (e.g.
        /// `10m`, `1h30m`), and run only the targets whose latest run is older.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        max_age: Option<std::time::Duration>,
    },
    /// Probe a relay once, with no daemon and no database.
    Probe(probe::ProbeArgs),
    /// The generated admin token and panel password.
    Credentials,
    /// The proxy's circuit breakers: open, half-open, or closed with failures counted.
    Breakers,
    /// Write every target as JSON (keys only with --with-secrets).
    Export {
        #[arg(long)]
        with_secrets: bool,
        /// Write to this file (0600) instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Create the targets of an export file.
    Import { file: PathBuf },
    /// Create, list, show, change and revoke proxy keys; show proxy usage.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Ask GET /api/health of --url (default: http://127.0.0.1:$PORT, 8081); exit 0
    /// when it answers 200, 1 otherwise (not ready), 3 when unreachable. No token.
    Health,
    /// Write a consistent snapshot of the daemon's database to FILE (0600), taken
    /// while it runs. The secret key is not in it: keep that apart (see the output).
    Backup { file: PathBuf },
    /// Shell completions.
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (apimonctl.1 and one per subcommand) into DIR; the
    /// package build uses it.
    #[command(hide = true)]
    Manpages { dir: PathBuf },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Threshold {
    Degraded,
    Down,
}

impl Threshold {
    /// Severity from which the check fails (SPEC §4.6 order).
    pub fn severity(self) -> u8 {
        match self {
            Threshold::Degraded => 2,
            Threshold::Down => 3,
        }
    }
}

#[derive(Subcommand)]
enum TargetCommand {
    /// Add a target; the key comes from --api-key-env or standard input.
    Add(target::AddArgs),
    /// List targets.
    Ls,
    /// Show one target.
    Show { target: String },
    /// Change a target's fields.
    Edit(target::EditArgs),
    /// Delete a target with its history.
    Rm { target: String },
    /// Let the scheduler probe a target.
    Enable { target: String },
    /// Stop scheduled probes of a target.
    Disable { target: String },
}

/// Fields shared by `target add` and `target edit`.
#[derive(Args, Default)]
pub struct TargetFields {
    /// Probe interval in minutes (1-1440).
    #[arg(long)]
    interval_min: Option<i64>,
    /// Whole-probe timeout in seconds (3-300).
    #[arg(long)]
    timeout_s: Option<f64>,
    /// Models to probe, comma-separated (empty: all).
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    models: Option<Vec<String>>,
    /// Glob patterns of models to skip, comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    exclude: Option<Vec<String>>,
    /// Probe at most this many models (0: all).
    #[arg(long)]
    max_models: Option<i64>,
    /// `challenge` (default) or `prompt`.
    #[arg(long)]
    check_mode: Option<String>,
    /// `stream` (default), `plain` or `both`.
    #[arg(long)]
    probe_mode: Option<String>,
    /// Prompt sent in `prompt` check mode.
    #[arg(long)]
    prompt: Option<String>,
    #[arg(long)]
    anthropic_version: Option<String>,
    /// Output token budget of a probe.
    #[arg(long)]
    max_tokens: Option<i64>,
    /// A passing probe slower than this many ms is `slow`.
    #[arg(long)]
    slow_ms: Option<i64>,
    /// Verify TLS certificates (true/false).
    #[arg(long)]
    verify_ssl: Option<bool>,
    /// User-Agent sent to the relay.
    #[arg(long)]
    user_agent: Option<String>,
    /// Extra request header `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    #[arg(long)]
    source_url: Option<String>,
    /// Let visitors start runs of this target (true/false).
    #[arg(long)]
    visitor_actions: Option<bool>,
    /// Position in the dashboard (1-1000000).
    #[arg(long)]
    sort_order: Option<i64>,
    /// Route rule `glob=protocol` tried before the global table (repeatable;
    /// protocol: openai, responses, anthropic, gemini). `--route ''` clears them.
    #[arg(long = "route", value_name = "GLOB=PROTOCOL")]
    routes: Vec<String>,
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let out = Out::new(cli.json);
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "apimonctl",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe(args) => probe::run(args, &out).await,
        Command::Health => health::health(cli.url.as_deref(), &out).await,
        Command::Manpages { dir } => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(Cli::command(), &dir).map_err(|e| {
                CliError::Other(format!("cannot write into {}: {e}", dir.display()))
            })?;
            Ok(ExitCode::SUCCESS)
        }
        command => {
            let mut conn = transport::Conn::open(
                cli.socket.as_deref(),
                cli.url.as_deref(),
                cli.token_env.as_deref(),
            )
            .await?;
            match command {
                Command::Status => admin::status(&mut conn, &out).await,
                Command::Target(t) => target::run(t, &mut conn, &out).await,
                Command::Run { targets, wait } => runs::run(&mut conn, &targets, wait, &out).await,
                Command::Runs { target, limit } => {
                    runs::list(&mut conn, &target, limit, &out).await
                }
                Command::Models { target, run } => {
                    runs::models(&mut conn, &target, run, &out).await
                }
                Command::Events { follow } => events::events(&mut conn, follow, &out).await,
                Command::Check {
                    targets,
                    fail_on,
                    timeout,
                    max_age,
                } => runs::check(&mut conn, &targets, fail_on, timeout, max_age, &out).await,
                Command::Credentials => admin::credentials(&mut conn, &out).await,
                Command::Breakers => admin::breakers(&mut conn, &out).await,
                Command::Export {
                    with_secrets,
                    output,
                } => admin::export(&mut conn, with_secrets, output, &out).await,
                Command::Import { file } => admin::import(&mut conn, &file, &out).await,
                Command::Keys(k) => keys::run(k, &mut conn, &out).await,
                Command::Backup { file } => backup::backup(&mut conn, &file, &out).await,
                Command::Completions { .. }
                | Command::Probe(_)
                | Command::Manpages { .. }
                | Command::Health => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

/// `apimonctl target ls | head -1`: once the reader has gone, stop quietly with
/// success, as other Unix tools do, instead of panicking in whichever `println!`
/// meets the closed pipe first (Rust ignores SIGPIPE, so the write fails instead).
fn quiet_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        let broken_pipe = std::io::Error::from_raw_os_error(libc::EPIPE).to_string();
        if message.starts_with("failed printing to stdout") && message.ends_with(&broken_pipe) {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_when_stdout_closes();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("apimonctl: cannot start: {e}");
            return ExitCode::from(5);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("apimonctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
