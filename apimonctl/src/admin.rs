//! `apimonctl status|credentials|export|import`.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Value, json};
use shared::rpc::params::{Export, Import, NoParams};
use shared::rpc::{CHUNK, CHUNK_BYTES, Request};

use crate::error::CliError;
use crate::output::{Out, cell};
use crate::transport::Conn;

fn uptime(secs: f64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(secs as u64)).to_string()
}

/// Prints the daemon's status; exits 1 when it is alive but not ready.
pub async fn status(conn: &mut Conn, out: &Out) -> Result<ExitCode, CliError> {
    let s = conn.status().await?;
    // A daemon from before readiness existed says nothing: take it as ready.
    let ready = s["health"]["ready"].as_bool().unwrap_or(true);
    let code = if ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    if out.json {
        out.print_json(&s);
        return Ok(code);
    }
    let t = &s["targets"];
    let count = |v: &Value| v.as_array().map(Vec::len).unwrap_or(0);
    println!(
        "apimond {}, up {}",
        cell(&s["version"]),
        uptime(s["uptime_s"].as_f64().unwrap_or(0.0))
    );
    println!(
        "targets: {} ({} enabled); healthy {}, degraded {}, down or error {}, no models {}",
        cell(&t["total_targets"]),
        cell(&t["enabled_targets"]),
        cell(&t["healthy"]),
        cell(&t["degraded"]),
        cell(&t["down_or_error"]),
        cell(&t["no_models"]),
    );
    println!(
        "runs: {} running, {} queued; scheduler lag {:.1} s",
        count(&s["running_targets"]),
        count(&s["queued_targets"]),
        s["scheduler_lag_s"].as_f64().unwrap_or(0.0)
    );
    if ready {
        println!("health: live and ready");
    } else {
        let problems: Vec<&str> = s["health"]["problems"]
            .as_array()
            .map(|p| p.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!("health: live, NOT READY: {}", problems.join("; "));
    }
    Ok(code)
}

pub async fn credentials(conn: &mut Conn, out: &Out) -> Result<ExitCode, CliError> {
    let c = conn
        .rpc("credentials")?
        .call(&Request::Credentials(NoParams {}))
        .await?;
    if out.json {
        out.print_json(&c);
    } else {
        println!(
            "admin token:          {}  ({})",
            cell(&c["admin_token"]),
            cell(&c["admin_token_source"])
        );
        println!(
            "admin panel password: {}  ({})",
            cell(&c["admin_panel_password"]),
            cell(&c["admin_panel_password_source"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn breakers(conn: &mut Conn, out: &Out) -> Result<ExitCode, CliError> {
    let v = conn
        .rpc("breakers")?
        .call(&Request::ProxyBreakers(NoParams {}))
        .await?;
    if out.json {
        out.print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let items = v["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("every breaker is closed");
        return Ok(ExitCode::SUCCESS);
    }
    let rows = items
        .iter()
        .map(|b| {
            vec![
                cell(&b["target_name"]),
                cell(&b["model"]),
                cell(&b["state"]),
                cell(&b["failures"]),
                crate::output::time(&b["opened_at"]),
                crate::output::time(&b["retry_at"]),
            ]
        })
        .collect();
    out.table(
        &[
            "CHANNEL", "MODEL", "STATE", "FAILURES", "OPENED", "NEXT TRY",
        ],
        rows,
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn export(
    conn: &mut Conn,
    with_secrets: bool,
    output: Option<PathBuf>,
    out: &Out,
) -> Result<ExitCode, CliError> {
    let rpc = conn.rpc("export")?;
    let mut targets = Vec::new();
    let mut offset = 0u64;
    loop {
        let chunk = rpc
            .export_chunk(Export {
                with_secrets,
                offset,
            })
            .await?;
        targets.extend(chunk.items);
        match chunk.next_offset {
            Some(n) => offset = n,
            None => break,
        }
    }
    let doc = json!({"apimon_export": 1, "with_secrets": with_secrets, "targets": targets});
    let text = serde_json::to_string_pretty(&doc).expect("JSON values serialise");
    match output {
        None => println!("{text}"),
        Some(path) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| CliError::Other(format!("cannot write {}: {e}", path.display())))?;
            // An existing file keeps its mode on open: make it private before writing.
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            if !out.json {
                eprintln!("exported {} targets to {}", targets.len(), path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn import(conn: &mut Conn, file: &Path, out: &Out) -> Result<ExitCode, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{} is not JSON: {e}", file.display())))?;
    let targets = doc["targets"].as_array().ok_or_else(|| {
        CliError::Usage(format!(
            "{} has no `targets` list; is it an apimonctl export?",
            file.display()
        ))
    })?;
    let rpc = conn.rpc("import")?;
    let mut created = 0;
    let mut skipped = Vec::new();
    // Chunks of at most CHUNK targets and about CHUNK_BYTES (at least one target).
    let mut chunks: Vec<Vec<Value>> = Vec::new();
    let mut bytes = 0usize;
    for t in targets {
        let size = t.to_string().len();
        match chunks.last_mut() {
            Some(c) if c.len() < CHUNK && bytes + size <= CHUNK_BYTES => {
                c.push(t.clone());
                bytes += size;
            }
            _ => {
                chunks.push(vec![t.clone()]);
                bytes = size;
            }
        }
    }
    for chunk in chunks {
        let r = rpc.import_chunk(Import { items: chunk }).await?;
        created += r.created;
        skipped.extend(r.skipped);
    }
    if out.json {
        out.print_json(&json!({"created": created, "skipped": skipped}));
    } else {
        println!("imported {created} targets");
        for s in &skipped {
            println!("skipped {}: {}", s.name, s.reason);
        }
    }
    Ok(if skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(5)
    })
}
