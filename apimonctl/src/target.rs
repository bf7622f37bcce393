//! `apimonctl target …`: add, list, show, change, remove, enable, disable.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Args;
use serde_json::{Map, Value, json};
use shared::rpc::Request;
use shared::rpc::params::{TargetRef, TargetsAdd, TargetsEdit};

use crate::error::CliError;
use crate::output::{Out, cell, time};
use crate::transport::Conn;
use crate::{TargetCommand, TargetFields};

#[derive(Args)]
pub struct AddArgs {
    #[arg(long)]
    name: String,
    /// The relay's base URL, e.g. https://relay.example.com
    #[arg(long)]
    base_url: String,
    /// Read the key from this environment variable (else from standard input).
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// Add it disabled (no scheduled probes).
    #[arg(long)]
    disabled: bool,
    #[command(flatten)]
    fields: TargetFields,
}

#[derive(Args)]
pub struct EditArgs {
    target: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    base_url: Option<String>,
    /// New key from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "api_key_stdin")]
    api_key_env: Option<String>,
    /// New key from standard input.
    #[arg(long)]
    api_key_stdin: bool,
    #[command(flatten)]
    fields: TargetFields,
}

/// The key, from a variable or standard input; never from the command line, where
/// other users and shell history would see it.
fn read_key(env: Option<&str>) -> Result<String, CliError> {
    let key = match env {
        Some(var) => std::env::var(var).map_err(|_| {
            CliError::Usage(format!("--api-key-env {var}: the variable is not set"))
        })?,
        None => {
            if std::io::stdin().is_terminal() {
                eprint!("API key (input is read from standard input): ");
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line
        }
    };
    let key = key.trim().to_string();
    if key.is_empty() {
        return Err(CliError::Usage(
            "no API key: pass --api-key-env VAR or pipe the key on standard input".into(),
        ));
    }
    Ok(key)
}

fn fields_json(f: &TargetFields) -> Result<Map<String, Value>, CliError> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.into(), v);
    };
    if let Some(v) = f.interval_min {
        put("interval_min", json!(v));
    }
    if let Some(v) = f.timeout_s {
        put("timeout_s", json!(v));
    }
    if let Some(v) = &f.models {
        put(
            "selected_models",
            json!(v.iter().filter(|s| !s.is_empty()).collect::<Vec<_>>()),
        );
    }
    if let Some(v) = &f.exclude {
        put(
            "exclude_models",
            json!(v.iter().filter(|s| !s.is_empty()).collect::<Vec<_>>()),
        );
    }
    if let Some(v) = f.max_models {
        put("max_models", json!(v));
    }
    if let Some(v) = &f.check_mode {
        put("check_mode", json!(v));
    }
    if let Some(v) = &f.probe_mode {
        put("probe_mode", json!(v));
    }
    if let Some(v) = &f.prompt {
        put("prompt", json!(v));
    }
    if let Some(v) = &f.anthropic_version {
        put("anthropic_version", json!(v));
    }
    if let Some(v) = f.max_tokens {
        put("max_tokens", json!(v));
    }
    if let Some(v) = f.slow_ms {
        put("slow_ms", json!(v));
    }
    if let Some(v) = f.verify_ssl {
        put("verify_ssl", json!(v));
    }
    if let Some(v) = &f.user_agent {
        put("user_agent", json!(v));
    }
    if let Some(v) = &f.source_url {
        put("source_url", json!(v));
    }
    if let Some(v) = f.visitor_actions {
        put("visitor_channel_actions_enabled", json!(v));
    }
    if let Some(v) = f.sort_order {
        put("sort_order", json!(v));
    }
    if !f.routes.is_empty() {
        let mut rules = Vec::new();
        for raw in f.routes.iter().filter(|r| !r.is_empty()) {
            let (pattern, protocol) = raw.split_once('=').ok_or_else(|| {
                CliError::Usage(format!(
                    "--route `{raw}`: expected GLOB=PROTOCOL, e.g. *deepseek*=anthropic"
                ))
            })?;
            rules.push(json!({"pattern": pattern.trim(), "protocol": protocol.trim()}));
        }
        put("route_overrides", json!(rules));
    }
    if !f.headers.is_empty() {
        let mut h = Map::new();
        for raw in &f.headers {
            let (name, value) = raw.split_once(':').ok_or_else(|| {
                CliError::Usage(format!("--header `{raw}`: expected `Name: value`"))
            })?;
            h.insert(name.trim().into(), json!(value.trim()));
        }
        put("extra_headers", Value::Object(h));
    }
    Ok(m)
}

pub async fn run(cmd: TargetCommand, conn: &mut Conn, out: &Out) -> Result<ExitCode, CliError> {
    match cmd {
        TargetCommand::Ls => ls(conn, out).await,
        TargetCommand::Show { target } => show(conn, &target, out).await,
        TargetCommand::Add(a) => {
            let mut fields = fields_json(&a.fields)?;
            fields.insert("name".into(), json!(a.name));
            fields.insert("base_url".into(), json!(a.base_url));
            if a.disabled {
                fields.insert("enabled".into(), json!(false));
            }
            fields.insert("api_key".into(), json!(read_key(a.api_key_env.as_deref())?));
            let v = conn
                .rpc("target add")?
                .call(&Request::TargetsAdd(TargetsAdd {
                    fields: Value::Object(fields),
                }))
                .await?;
            report(out, &v, "added")
        }
        TargetCommand::Edit(e) => {
            let mut fields = fields_json(&e.fields)?;
            if let Some(n) = &e.name {
                fields.insert("name".into(), json!(n));
            }
            if let Some(u) = &e.base_url {
                fields.insert("base_url".into(), json!(u));
            }
            if e.api_key_env.is_some() || e.api_key_stdin {
                fields.insert("api_key".into(), json!(read_key(e.api_key_env.as_deref())?));
            }
            if fields.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give at least one field (see --help)".into(),
                ));
            }
            let v = conn
                .rpc("target edit")?
                .call(&Request::TargetsEdit(TargetsEdit {
                    target: e.target,
                    fields: Value::Object(fields),
                }))
                .await?;
            report(out, &v, "updated")
        }
        TargetCommand::Rm { target } => {
            let v = conn
                .rpc("target rm")?
                .call(&Request::TargetsRemove(TargetRef::new(target)))
                .await?;
            if out.json {
                out.print_json(&v);
            } else {
                println!("deleted target {}", v["id"]);
            }
            Ok(ExitCode::SUCCESS)
        }
        TargetCommand::Enable { target } => toggle(conn, &target, true, out).await,
        TargetCommand::Disable { target } => toggle(conn, &target, false, out).await,
    }
}

async fn toggle(
    conn: &mut Conn,
    target: &str,
    enabled: bool,
    out: &Out,
) -> Result<ExitCode, CliError> {
    let v = conn
        .rpc(if enabled {
            "target enable"
        } else {
            "target disable"
        })?
        .call(&Request::TargetsEdit(TargetsEdit {
            target: target.to_string(),
            fields: json!({ "enabled": enabled }),
        }))
        .await?;
    report(out, &v, if enabled { "enabled" } else { "disabled" })
}

fn report(out: &Out, v: &Value, what: &str) -> Result<ExitCode, CliError> {
    if out.json {
        out.print_json(&v["item"]);
    } else {
        println!(
            "{what} target {} ({})",
            v["item"]["id"],
            cell(&v["item"]["name"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `ok/total` of a target's latest models.
fn models_ok(t: &Value) -> String {
    let models = t["latest_models"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if models.is_empty() {
        return "-".into();
    }
    let ok = models.iter().filter(|m| m["success"] == true).count();
    format!("{ok}/{}", models.len())
}

async fn ls(conn: &mut Conn, out: &Out) -> Result<ExitCode, CliError> {
    let targets = conn.targets().await?;
    if out.json {
        out.print_json(&json!(targets));
        return Ok(ExitCode::SUCCESS);
    }
    let rows = targets
        .iter()
        .map(|t| {
            vec![
                cell(&t["id"]),
                cell(&t["name"]),
                cell(&t["enabled"]),
                out.status(&cell(&t["last_status"])),
                models_ok(t),
                format!("{} min", cell(&t["interval_min"])),
                time(&t["last_run_at"]),
            ]
        })
        .collect();
    out.table(
        &[
            "ID",
            "NAME",
            "ENABLED",
            "STATUS",
            "MODELS OK",
            "INTERVAL",
            "LAST RUN (UTC)",
        ],
        rows,
    );
    Ok(ExitCode::SUCCESS)
}

async fn show(conn: &mut Conn, ident: &str, out: &Out) -> Result<ExitCode, CliError> {
    let id = conn.resolve(ident).await?;
    let t = conn.target(id).await?;
    if out.json {
        out.print_json(&t);
        return Ok(ExitCode::SUCCESS);
    }
    let fields = [
        "id",
        "name",
        "base_url",
        "api_key",
        "enabled",
        "interval_min",
        "timeout_s",
        "probe_mode",
        "check_mode",
        "selected_models",
        "exclude_models",
        "max_models",
        "max_tokens",
        "slow_ms",
        "verify_ssl",
        "last_status",
        "last_error",
    ];
    let mut rows: Vec<Vec<String>> = fields
        .iter()
        .filter(|f| t.get(**f).is_some())
        .map(|f| {
            let v = &t[*f];
            let shown = match v {
                Value::Array(a) if a.is_empty() && *f == "exclude_models" => "none".to_string(),
                Value::Array(a) if a.is_empty() => "all".to_string(),
                Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
                _ if *f == "last_status" => out.status(&cell(v)),
                _ => cell(v),
            };
            vec![f.to_string(), shown]
        })
        .collect();
    rows.push(vec!["last_run_at".into(), time(&t["last_run_at"])]);
    rows.push(vec!["models ok".into(), models_ok(&t)]);
    out.table(&["FIELD", "VALUE"], rows);
    Ok(ExitCode::SUCCESS)
}
