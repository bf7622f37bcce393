//! The ClientHello recorder as a process, to capture a real browser's JA4:
//! `hello-recorder [--port N] [--count N]`. Prints `listening https://localhost:PORT`
//! once ready, then `ja4 <JA4>` and `ja4_r <JA4_r>` per hello, and exits after `count`
//! hellos (default 1). `scripts/capture-ja4.sh` drives it with headless Chromium.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use testkit::HelloRecorder;

const USAGE: &str = "usage: hello-recorder [--port N] [--count N]";

fn parse(mut args: impl Iterator<Item = String>) -> Result<(u16, usize), String> {
    let (mut port, mut count) = (0u16, 1usize);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--port" => {
                port = value?
                    .parse()
                    .map_err(|_| "--port: not a port".to_string())?
            }
            "--count" => {
                count = value?
                    .parse()
                    .map_err(|_| "--count: not a number".to_string())?
            }
            _ => return Err(USAGE.to_string()),
        }
    }
    Ok((port, count))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let (port, count) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let recorder = match HelloRecorder::start(port).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hello-recorder: cannot listen on port {port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening {}", recorder.url());
    let _ = out.flush();
    let mut printed = 0;
    while printed < count {
        let hellos = recorder
            .wait_for(printed + 1, Duration::from_secs(3600))
            .await;
        for h in &hellos[printed..] {
            let _ = writeln!(out, "ja4 {}\nja4_r {}", h.ja4(), h.ja4_r());
            printed += 1;
        }
        let _ = out.flush();
    }
    ExitCode::SUCCESS
}
