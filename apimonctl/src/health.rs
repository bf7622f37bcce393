//! `apimonctl health`: asks a daemon's `GET /api/health` (no token needed), for
//! container health checks and load balancers; the exit code is the answer.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::error::CliError;
use crate::output::Out;

/// `--url`, else the local daemon on `PORT` (default 8081).
fn base_url(url: Option<&str>) -> String {
    match url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let port = std::env::var("PORT")
                .ok()
                .filter(|p| !p.is_empty() && p != "0")
                .unwrap_or_else(|| "8081".into());
            format!("http://127.0.0.1:{port}")
        }
    }
}

/// Exit 0 when the daemon answers 200, 1 when it answers otherwise (not ready),
/// 3 when it cannot be reached.
pub async fn health(url: Option<&str>, out: &Out) -> Result<ExitCode, CliError> {
    let url = format!("{}/api/health", base_url(url));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| CliError::Other(e.to_string()))?;
    let reply = client
        .get(&url)
        .send()
        .await
        .map_err(|e| CliError::Unreachable(format!("cannot reach {url}: {e}")))?;
    let status = reply.status();
    let body: Value = reply.json().await.unwrap_or(Value::Null);
    if out.json {
        out.print_json(&body);
    } else if status.is_success() {
        println!(
            "{url}: {} (apimond {})",
            status,
            body["version"].as_str().unwrap_or("?")
        );
    } else {
        println!("{url}: {status} {body}");
    }
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
