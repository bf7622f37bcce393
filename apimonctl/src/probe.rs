//! `apimonctl probe`: probe a relay once with the same engine as the daemon, with no
//! daemon and no database. For CI: exit 1 at or past the threshold.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use serde_json::json;
use shared::Secret;
use shared::probe::{
    CheckMode, ClientProfile, ModelStatus, ProbeMode, ProbeSettings, Prober, ProxyChoice, ProxyUrl,
    TargetStatus, route,
};

use crate::Threshold;
use crate::error::CliError;
use crate::output::Out;
use crate::runs::results_table;

#[derive(Args)]
pub struct ProbeArgs {
    /// The relay's base URL.
    #[arg(long)]
    base_url: String,
    /// Environment variable holding the relay's API key.
    #[arg(long, value_name = "VAR")]
    api_key_env: String,
    /// Probe these models (repeatable); without it, every model the relay lists.
    #[arg(long = "model", value_name = "M")]
    models: Vec<String>,
    /// `stream`, `plain` or `both`.
    #[arg(long, default_value = "stream")]
    mode: String,
    /// `challenge` or `prompt`.
    #[arg(long, default_value = "challenge")]
    check_mode: String,
    #[arg(
        long,
        default_value = "Reply with one short sentence: what is the capital of France?"
    )]
    prompt: String,
    /// Whole-probe timeout in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout_s: f64,
    /// Probes in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long)]
    max_tokens: Option<u32>,
    #[arg(long, default_value = "2023-06-01")]
    anthropic_version: String,
    /// A passing probe slower than this many ms is `slow`.
    #[arg(long, default_value_t = 10_000)]
    slow_ms: u64,
    /// Do not verify TLS certificates.
    #[arg(long)]
    insecure: bool,
    /// `browser` (a Chrome TLS fingerprint and headers, as the daemon's default) or
    /// `plain`.
    #[arg(long, default_value = "browser")]
    client_profile: String,
    /// Environment variable holding an outbound proxy URL (http, https, socks5 or
    /// socks5h, credentials allowed); without it, `OUTBOUND_PROXY` if set, else direct.
    /// Read from the environment so its credentials stay out of the process list.
    #[arg(long, value_name = "VAR")]
    proxy_env: Option<String>,
    /// The status from which the command fails.
    #[arg(long, value_enum, default_value_t = Threshold::Down)]
    fail_on: Threshold,
}

pub async fn run(a: ProbeArgs, out: &Out) -> Result<ExitCode, CliError> {
    let key = std::env::var(&a.api_key_env).map_err(|_| {
        CliError::Usage(format!(
            "--api-key-env {}: the variable is not set",
            a.api_key_env
        ))
    })?;
    let modes = ProbeMode::parse(&a.mode)
        .ok_or_else(|| {
            CliError::Usage(format!("--mode {}: expected stream, plain or both", a.mode))
        })?
        .streams();
    let check_mode = CheckMode::parse(&a.check_mode).ok_or_else(|| {
        CliError::Usage(format!(
            "--check-mode {}: expected challenge or prompt",
            a.check_mode
        ))
    })?;
    let url_ok = reqwest::Url::parse(&a.base_url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if !url_ok {
        return Err(CliError::Usage(format!(
            "--base-url {}: expected an http:// or https:// URL",
            a.base_url
        )));
    }
    if !(1.0..=600.0).contains(&a.timeout_s) {
        return Err(CliError::Usage("--timeout-s: expected 1 to 600".into()));
    }
    let client_profile = ClientProfile::parse(&a.client_profile).ok_or_else(|| {
        CliError::Usage(format!(
            "--client-profile {}: expected browser or plain",
            a.client_profile
        ))
    })?;
    let proxy = match &a.proxy_env {
        Some(var) => {
            let raw = std::env::var(var).map_err(|_| {
                CliError::Usage(format!("--proxy-env {var}: the variable is not set"))
            })?;
            Some(proxy_url(&raw, &format!("--proxy-env {var}"))?)
        }
        None => match std::env::var("OUTBOUND_PROXY") {
            Ok(raw) if !raw.trim().is_empty() => Some(proxy_url(&raw, "OUTBOUND_PROXY")?),
            _ => None,
        },
    };
    let settings = ProbeSettings {
        base_url: a.base_url.clone(),
        api_key: Secret::new(key),
        timeout: Duration::from_secs_f64(a.timeout_s),
        verify_ssl: !a.insecure,
        anthropic_version: a.anthropic_version.clone(),
        extra_headers: BTreeMap::new(),
        user_agent: None,
        max_tokens: a.max_tokens,
        check_mode,
        prompt: a.prompt.clone(),
        slow_ms: a.slow_ms,
        route_overrides: Vec::new(),
        proxy: ProxyChoice::Default,
        client_profile,
    };
    let prober = Prober::new(route::default_rules()).with_default_proxy(proxy);
    let models = if a.models.is_empty() {
        match prober.discover(&settings).await {
            Ok(m) => m,
            Err(e) => {
                if out.json {
                    out.print_json(&json!({"target_status": "error", "error_class": e.class, "error": e.message, "results": []}));
                } else {
                    eprintln!("apimonctl: {}", e.message);
                }
                return Ok(threshold_exit(TargetStatus::Error, a.fail_on));
            }
        }
    } else {
        a.models.clone()
    };
    let jobs: Vec<(String, bool)> = models
        .iter()
        .flat_map(|m| modes.iter().map(move |s| (m.clone(), *s)))
        .collect();
    let settings = &settings;
    let prober = &prober;
    let mut results: Vec<_> = futures_util::stream::iter(jobs)
        .map(|(m, s)| async move { prober.probe(settings, &m, s).await })
        .buffer_unordered(a.concurrency.max(1))
        .collect()
        .await;
    results.sort_by(|x, y| x.model.cmp(&y.model).then(y.stream.cmp(&x.stream)));
    // A model probed both ways counts once, with its worse outcome, as in the daemon.
    let mut by_model: BTreeMap<&str, ModelStatus> = BTreeMap::new();
    for r in &results {
        let worst = by_model.entry(&r.model).or_insert(r.status);
        if rank(r.status) > rank(*worst) {
            *worst = r.status;
        }
    }
    let statuses: Vec<ModelStatus> = by_model.into_values().collect();
    let status = TargetStatus::of_run(false, &statuses);
    let rows: Vec<serde_json::Value> = results
        .iter()
        .map(|r| serde_json::to_value(r).expect("plain data"))
        .collect();
    if out.json {
        out.print_json(&json!({"target_status": status, "results": rows}));
    } else {
        results_table(out, &rows);
        println!("status: {}", out.status(status.as_str()));
    }
    Ok(threshold_exit(status, a.fail_on))
}

fn rank(s: ModelStatus) -> u8 {
    match s {
        ModelStatus::Ok => 0,
        ModelStatus::Slow => 1,
        ModelStatus::Fail => 2,
    }
}

fn threshold_exit(status: TargetStatus, fail_on: Threshold) -> ExitCode {
    if status.severity() >= fail_on.severity() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A proxy URL from the environment; the error never shows the value (it may hold a
/// password), only why it was refused.
fn proxy_url(raw: &str, what: &str) -> Result<ProxyUrl, CliError> {
    ProxyUrl::parse(raw.trim()).map_err(|e| CliError::Usage(format!("{what}: {e}")))
}
