//! `apimonctl keys …`: create (the secret printed once), list, show, change and revoke
//! proxy keys, and read what the proxy served. Over the control socket only: keys are
//! the daemon owner's business.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use shared::rpc::Request;
use shared::rpc::key_params::{KeyRef, KeysCreate, KeysEdit, KeysUsage};
use shared::rpc::params::NoParams;

use crate::error::CliError;
use crate::output::{Out, cell, ms, time};
use crate::transport::Conn;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed this once.
    Create(CreateArgs),
    /// List keys, revoked ones too.
    Ls,
    /// Show one key (an id, a name, or `name:<name>`).
    Show { key: String },
    /// Change a key's name, permissions or limits.
    Edit(EditArgs),
    /// Revoke a key: it stops working at once, for good.
    Revoke { key: String },
    /// Requests and tokens served, filtered and grouped.
    Usage(UsageArgs),
}

/// Permissions and limits shared by `create` and `edit`.
#[derive(Args, Default)]
pub struct KeyFields {
    #[arg(long)]
    description: Option<String>,
    /// A target (channel) the key may use, by id or name (repeatable; none: all).
    #[arg(long = "target", value_name = "TARGET")]
    targets: Vec<String>,
    /// A `channel/model` the key may use (repeatable; none: all).
    #[arg(long = "model", value_name = "CHANNEL/MODEL")]
    models: Vec<String>,
    /// Requests per minute (`none` for no limit).
    #[arg(long, value_name = "N|none")]
    rpm: Option<String>,
    /// Tokens per day, input and output together, estimates included (`none` for no
    /// budget). The day is the daemon's APIMON_TIMEZONE day.
    #[arg(long, value_name = "N|none")]
    daily_tokens: Option<String>,
    /// When the key stops working: a duration from now (`30d`, `12h`), a UTC time
    /// (`2027-01-31T00:00:00Z`, `2027-01-31 00:00`), or `never`.
    #[arg(long, value_name = "WHEN")]
    expires: Option<String>,
}

#[derive(Args)]
pub struct CreateArgs {
    #[arg(long)]
    name: String,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
    #[command(flatten)]
    fields: KeyFields,
}

#[derive(Args)]
pub struct EditArgs {
    key: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    #[arg(long)]
    disable: bool,
    /// Allow every target again.
    #[arg(long, conflicts_with = "targets")]
    all_targets: bool,
    /// Allow every model again.
    #[arg(long, conflicts_with = "models")]
    all_models: bool,
    #[command(flatten)]
    fields: KeyFields,
}

#[derive(Args)]
pub struct UsageArgs {
    /// Only this key (id, name, or `master` for the master token).
    #[arg(long)]
    key: Option<String>,
    /// Only this target (id or name).
    #[arg(long)]
    target: Option<String>,
    /// Only this model (as sent upstream).
    #[arg(long)]
    model: Option<String>,
    /// From: a duration back from now (`24h`, `7d`) or a UTC time (default: 24h ago).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// To: a duration back from now or a UTC time (default: now).
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// Group by any of key, target, model, and hour or day (comma-separated).
    #[arg(long, value_name = "LIST")]
    group_by: Option<String>,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A time given as a duration (from now, forward or back) or a UTC date and time.
fn parse_when(flag: &str, text: &str, forward: bool) -> Result<f64, CliError> {
    if let Ok(d) = humantime::parse_duration(text) {
        let d = d.as_secs_f64();
        return Ok(if forward { now() + d } else { now() - d });
    }
    let at = humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339_weak(&format!("{}:00", text.trim_end_matches('Z'))))
        .map_err(|_| {
            CliError::Usage(format!(
                "{flag} `{text}`: expected a duration such as 30d or 12h, or a UTC time such as \
                 2027-01-31T00:00:00Z"
            ))
        })?;
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0))
}

/// `N` or `none`.
fn limit(flag: &str, text: &str) -> Result<Value, CliError> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(Value::Null);
    }
    text.parse::<u64>()
        .map(|n| json!(n))
        .map_err(|_| CliError::Usage(format!("{flag} `{text}`: expected a number or `none`")))
}

async fn fields_json(f: &KeyFields, conn: &mut Conn) -> Result<Map<String, Value>, CliError> {
    let mut m = Map::new();
    if let Some(d) = &f.description {
        m.insert("description".into(), json!(d));
    }
    if !f.targets.is_empty() {
        let mut ids = Vec::new();
        for t in &f.targets {
            ids.push(conn.resolve(t).await?);
        }
        m.insert("allowed_target_ids".into(), json!(ids));
    }
    if !f.models.is_empty() {
        m.insert("allowed_models".into(), json!(f.models));
    }
    if let Some(r) = &f.rpm {
        m.insert("rpm_limit".into(), limit("--rpm", r)?);
    }
    if let Some(b) = &f.daily_tokens {
        m.insert("daily_token_budget".into(), limit("--daily-tokens", b)?);
    }
    if let Some(e) = &f.expires {
        let v = if e.eq_ignore_ascii_case("never") {
            Value::Null
        } else {
            json!(parse_when("--expires", e, true)?)
        };
        m.insert("expires_at".into(), v);
    }
    Ok(m)
}

pub async fn run(cmd: KeysCommand, conn: &mut Conn, out: &Out) -> Result<ExitCode, CliError> {
    match cmd {
        KeysCommand::Create(a) => {
            let mut fields = fields_json(&a.fields, conn).await?;
            fields.insert("name".into(), json!(a.name));
            if a.disabled {
                fields.insert("enabled".into(), json!(false));
            }
            let v = conn
                .rpc("keys create")?
                .call(&Request::KeysCreate(KeysCreate {
                    fields: Value::Object(fields),
                }))
                .await?;
            if out.json {
                out.print_json(&json!({"item": v["item"], "proxy_key": v["proxy_key"]}));
            } else {
                eprintln!(
                    "created proxy key {} ({}); its secret, shown only now:",
                    v["item"]["id"],
                    cell(&v["item"]["name"])
                );
                println!("{}", cell(&v["proxy_key"]));
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Ls => {
            let v = conn
                .rpc("keys ls")?
                .call(&Request::KeysList(NoParams {}))
                .await?;
            ls(&v, out);
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Show { key } => {
            let v = conn
                .rpc("keys show")?
                .call(&Request::KeysGet(KeyRef::new(key)))
                .await?;
            show(&v["item"], out);
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Edit(e) => {
            let mut fields = fields_json(&e.fields, conn).await?;
            if let Some(n) = &e.name {
                fields.insert("name".into(), json!(n));
            }
            if e.enable || e.disable {
                fields.insert("enabled".into(), json!(e.enable));
            }
            if e.all_targets {
                fields.insert("allowed_target_ids".into(), json!([]));
            }
            if e.all_models {
                fields.insert("allowed_models".into(), json!([]));
            }
            if fields.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give at least one field (see --help)".into(),
                ));
            }
            let v = conn
                .rpc("keys edit")?
                .call(&Request::KeysEdit(KeysEdit {
                    key: e.key,
                    fields: Value::Object(fields),
                }))
                .await?;
            report(out, &v, "updated")
        }
        KeysCommand::Revoke { key } => {
            let v = conn
                .rpc("keys revoke")?
                .call(&Request::KeysRevoke(KeyRef::new(key)))
                .await?;
            report(out, &v, "revoked")
        }
        KeysCommand::Usage(u) => {
            let params = KeysUsage {
                key: u.key,
                target: u.target,
                model: u.model,
                since: u
                    .since
                    .map(|s| parse_when("--since", &s, false))
                    .transpose()?,
                until: u
                    .until
                    .map(|s| parse_when("--until", &s, false))
                    .transpose()?,
                group_by: u.group_by,
            };
            let v = conn
                .rpc("keys usage")?
                .call(&Request::KeysUsage(params))
                .await?;
            usage(&v, out);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn report(out: &Out, v: &Value, what: &str) -> Result<ExitCode, CliError> {
    if out.json {
        out.print_json(&v["item"]);
    } else {
        println!(
            "{what} proxy key {} ({})",
            v["item"]["id"],
            cell(&v["item"]["name"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A list for a table cell: `all` when empty.
fn list_or_all(v: &Value) -> String {
    match v.as_array() {
        Some(a) if a.is_empty() => "all".into(),
        Some(a) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
        None => cell(v),
    }
}

fn today(k: &Value) -> String {
    format!(
        "{} req, {} tok",
        cell(&k["usage_today"]["requests"]),
        cell(&k["usage_today"]["tokens"])
    )
}

fn ls(v: &Value, out: &Out) {
    if out.json {
        out.print_json(&v["items"]);
        return;
    }
    let rows = v["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|k| {
            vec![
                cell(&k["id"]),
                cell(&k["name"]),
                cell(&k["key_prefix"]),
                cell(&k["status"]),
                list_or_all(&k["allowed_target_ids"]),
                list_or_all(&k["allowed_models"]),
                cell(&k["rpm_limit"]),
                cell(&k["daily_token_budget"]),
                today(k),
                time(&k["last_used_at"]),
            ]
        })
        .collect();
    out.table(
        &[
            "ID",
            "NAME",
            "PREFIX",
            "STATUS",
            "TARGETS",
            "MODELS",
            "RPM",
            "TOKENS/DAY",
            "TODAY",
            "LAST USED (UTC)",
        ],
        rows,
    );
}

fn show(k: &Value, out: &Out) {
    if out.json {
        out.print_json(k);
        return;
    }
    let mut rows: Vec<Vec<String>> = [
        "id",
        "name",
        "key_prefix",
        "status",
        "description",
        "allowed_target_ids",
        "allowed_models",
        "rpm_limit",
        "daily_token_budget",
        "last_used_target_id",
    ]
    .iter()
    .map(|f| vec![f.to_string(), list_or_all(&k[*f])])
    .collect();
    for f in ["expires_at", "created_at", "revoked_at", "last_used_at"] {
        rows.push(vec![format!("{f} (UTC)"), time(&k[f])]);
    }
    rows.push(vec![
        format!("today ({})", cell(&k["usage_today"]["time_zone"])),
        today(k),
    ]);
    out.table(&["FIELD", "VALUE"], rows);
}

fn usage(v: &Value, out: &Out) {
    if out.json {
        out.print_json(v);
        return;
    }
    let groups: Vec<&str> = v["group_by"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut headers: Vec<&str> = Vec::new();
    for g in &groups {
        headers.push(match *g {
            "hour" | "day" => "FROM (UTC)",
            "key" => "KEY",
            "target" => "TARGET",
            _ => "MODEL",
        });
    }
    headers.extend([
        "REQUESTS",
        "ERRORS",
        "IN TOKENS",
        "OUT TOKENS",
        "ESTIMATED",
        "AVG",
    ]);
    let sums = |s: &Value| {
        vec![
            cell(&s["requests"]),
            cell(&s["errors"]),
            cell(&s["tokens"]),
            cell(&s["input_tokens"]),
            cell(&s["output_tokens"]),
            cell(&s["estimated_requests"]),
            ms(&s["avg_total_ms"]),
        ]
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for item in v["items"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let mut row: Vec<String> = groups
            .iter()
            .map(|g| match *g {
                "hour" | "day" => time(&item["bucket_start"]),
                "key" => cell(&item["key_name"]),
                "target" => cell(&item["target_id"]),
                _ => cell(&item["model"]),
            })
            .collect();
        row.extend(sums(item));
        rows.push(row);
    }
    let mut total: Vec<String> = groups
        .iter()
        .enumerate()
        .map(|(i, _)| {
            if i == 0 {
                "total".into()
            } else {
                String::new()
            }
        })
        .collect();
    total.extend(sums(&v["totals"]));
    rows.push(total);
    out.table(&headers, rows);
    println!(
        "{} to {} UTC, from {} data",
        time(&v["since"]),
        time(&v["until"]),
        cell(&v["source"])
    );
}
