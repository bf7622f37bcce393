//! The fake upstream as a process, for the benchmark, the browser tests and the
//! operations checks:
//! `fake-upstream [--port N] [--models N] [--model NAME]... [--delay-ms N] [--event-gap-ms N] [--key KEY] [--tls]`.
//! `--model` (repeatable) lists these names instead; a name asks for its misbehaviour
//! (`gpt-4o-err500` answers 500, see the crate docs). `--tls` serves HTTPS with a fresh
//! self-signed certificate on a free port (for `scripts/test-ops.sh`, which probes
//! through BoringSSL under the unit's W^X rule).
//! `--event-gap-ms` pauses between stream events so each leaves in its own TCP segment.
//! Prints `listening http://127.0.0.1:PORT` once ready and serves until killed.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use testkit::{FakeConfig, FakeUpstream};

const USAGE: &str = "usage: fake-upstream [--port N] [--models N] [--model NAME]... [--delay-ms N] [--event-gap-ms N] [--key KEY] [--tls]";

fn parse(args: impl Iterator<Item = String>) -> Result<(FakeConfig, u16, bool), String> {
    let mut config = FakeConfig::default();
    let mut port = 0;
    let mut named: Vec<String> = Vec::new();
    let mut tls = false;
    let mut args = args;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--port" => {
                port = u16::try_from(number(value()?)?)
                    .map_err(|_| "--port: out of range".to_string())?;
            }
            "--models" => {
                let n = number(value()?)?;
                config.models = (0..n).map(|i| format!("model-{i:03}")).collect();
            }
            "--model" => named.push(value()?),
            "--delay-ms" => config.probe_delay = Duration::from_millis(number(value()?)?),
            "--event-gap-ms" => config.event_gap = Duration::from_millis(number(value()?)?),
            "--key" => config.api_key = value()?,
            "--tls" => tls = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if !named.is_empty() {
        config.models = named;
    }
    Ok((config, port, tls))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let (config, port, tls) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let upstream = if tls {
        FakeUpstream::start_tls(config).await
    } else {
        match FakeUpstream::bind(config, SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
            Ok(upstream) => upstream,
            Err(e) => {
                eprintln!("fake-upstream: cannot bind port {port}: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let mut stdout = std::io::stdout();
    // The benchmark waits for this line, so it must not sit in a buffer.
    let _ = writeln!(stdout, "listening {}", upstream.base_url());
    let _ = stdout.flush();
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
