//! `apimonctl`: the command-line client of apimond. Its commands (targets, runs,
//! checks, one-shot probes) arrive with the control socket; until then it only
//! reports its version.

use clap::Parser;

/// Command-line client for the apimon daemon.
#[derive(Parser)]
#[command(name = "apimonctl", version = shared::VERSION)]
struct Args {}

fn main() {
    let _ = Args::parse();
    eprintln!("apimonctl: no commands yet; use the HTTP API described in README.md");
    std::process::exit(2);
}
