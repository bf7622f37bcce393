//! `apimonctl events [--follow]`: the daemon's events, one line each.

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;

use serde_json::Value;
use shared::rpc::Notification;

use crate::error::CliError;
use crate::output::{Out, cell};
use crate::transport::Conn;

fn event_line(e: &Value) -> String {
    let t = e["type"].as_str().unwrap_or("?");
    match t {
        "run_started" => format!(
            "run_started   {} run {} ({})",
            cell(&e["target_name"]),
            cell(&e["run_id"]),
            cell(&e["trigger"])
        ),
        "model_result" => format!(
            "model_result  target {} run {} {} {}{}",
            cell(&e["target_id"]),
            cell(&e["run_id"]),
            cell(&e["model"]),
            cell(&e["status"]),
            e["error_class"]
                .as_str()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        ),
        "run_completed" => format!(
            "run_completed {} run {}: {} {}/{}",
            cell(&e["target_name"]),
            cell(&e["run_id"]),
            cell(&e["target_status"]),
            cell(&e["success"]),
            cell(&e["total"])
        ),
        "target_updated" => format!(
            "target_updated {} ({})",
            cell(&e["target_name"]),
            cell(&e["last_status"])
        ),
        "target_deleted" => format!("target_deleted {}", cell(&e["target_id"])),
        "models_changed" => format!(
            "models_changed {}: +{} -{}",
            cell(&e["target_name"]),
            e["added"].as_array().map(Vec::len).unwrap_or(0),
            e["removed"].as_array().map(Vec::len).unwrap_or(0)
        ),
        "breaker_changed" => format!(
            "breaker_changed {} {}: {} after {} failures",
            cell(&e["target_name"]),
            cell(&e["model"]),
            cell(&e["state"]),
            cell(&e["failures"])
        ),
        other => format!("{other} {e}"),
    }
}

pub async fn events(conn: &mut Conn, follow: bool, out: &Out) -> Result<ExitCode, CliError> {
    let rpc = conn.rpc("events")?;
    // Subscribe first, then ask what is in flight on a second connection: a run that
    // ends in between is then both seen as running and heard finishing.
    rpc.subscribe().await?;
    let mut second = shared::client::RpcClient::connect(std::slice::from_ref(&rpc.path)).await?;
    let status = second.status().await?;
    drop(second);
    let mut going: HashSet<i64> = status
        .running_targets
        .into_iter()
        .chain(status.queued_targets)
        .collect();
    if !follow && going.is_empty() {
        eprintln!("no runs in flight; use --follow to wait for events");
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        let msg = rpc.read().await?;
        match Notification::from_message(&msg) {
            Some(Notification::Event(params)) => {
                let line = if out.json {
                    params.to_string()
                } else {
                    event_line(&params)
                };
                // A reader that went away (`| head`) ends the command quietly.
                if writeln!(std::io::stdout(), "{line}").is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
                match params["type"].as_str() {
                    Some("run_started") => {
                        going.insert(params["target_id"].as_i64().unwrap_or(0));
                    }
                    Some("run_completed" | "target_deleted") => {
                        going.remove(&params["target_id"].as_i64().unwrap_or(0));
                    }
                    _ => {}
                }
                if !follow && going.is_empty() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Some(Notification::Lagged { missed }) => {
                eprintln!("apimonctl: missed {missed} events (reading too slowly)")
            }
            None => {}
        }
    }
}
