//! The Go program's credentials and settings: the settings apimon knows (the generated
//! admin and visitor tokens become apimon's, sealed like any stored token) and the proxy
//! keys, kept as the Go program stored them so existing keys keep working.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::super::{Result, SecretBox, now, settings};
use super::checks::{bad, check_range, get};

/// The Go settings apimon carries over: its key, apimon's key, and the value's kind.
const SETTINGS: &[(&str, &str, Kind)] = &[
    (
        "runtime_api_monitor_token",
        "api_monitor_token_admin",
        Kind::Token,
    ),
    (
        "runtime_api_monitor_visitor_token",
        "api_monitor_token_visitor",
        Kind::Token,
    ),
    ("proxy_master_token", "proxy_master_token", Kind::Token),
    ("visitor_mode_enabled", "visitor_mode_enabled", Kind::Bool),
    ("log_cleanup_enabled", "log_cleanup_enabled", Kind::Bool),
    ("log_max_size_mb", "log_max_size_mb", Kind::Int(0, 102_400)),
    (
        "default_interval_min",
        "default_interval_min",
        Kind::Int(1, 1440),
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    /// Sealed; an empty value means unset and is not stored.
    Token,
    Bool,
    Int(i64, i64),
}

/// Copies the settings apimon knows; returns how many were stored.
pub(super) fn copy_settings(txn: &Connection, secrets: &SecretBox) -> Result<usize> {
    let mut stmt = txn.prepare("SELECT key, value FROM go.app_settings ORDER BY key")?;
    let stored: HashMap<String, String> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let ts = now();
    let mut n = 0;
    for (go_key, key, kind) in SETTINGS {
        let Some(value) = stored.get(*go_key) else {
            continue;
        };
        let what = format!("setting {go_key}");
        let (value, secret) = match kind {
            Kind::Token if value.is_empty() => continue,
            Kind::Token => {
                // Never echoed: it is a credential.
                if value.chars().count() > 256 || value.chars().any(char::is_control) {
                    return Err(bad(format!(
                        "{what}: the Go program allows at most 256 printable characters"
                    )));
                }
                (value.clone(), true)
            }
            Kind::Bool => match value.as_str() {
                "true" | "1" => ("true".to_string(), false),
                "false" | "0" => ("false".to_string(), false),
                other => {
                    return Err(bad(format!("{what} is `{other}`, not true or false")));
                }
            },
            Kind::Int(min, max) => {
                let v: i64 = value
                    .parse()
                    .map_err(|_| bad(format!("{what} is `{value}`, not a whole number")))?;
                check_range(&what, "the value", v, *min, *max)?;
                (v.to_string(), false)
            }
        };
        settings::put(txn, secrets, key, &value, secret, ts)?;
        n += 1;
    }
    let ignored: Vec<&str> = stored
        .keys()
        .map(String::as_str)
        .filter(|k| !SETTINGS.iter().any(|(go, _, _)| go == k))
        .collect();
    if !ignored.is_empty() {
        tracing::info!(settings = ?ignored, "Go settings apimon has no use for were not carried over");
    }
    Ok(n)
}

/// Copies the proxy keys as the Go program stored them: the SHA-256 hex digest of the
/// whole key and its first 12 characters, so existing keys keep working.
pub(super) fn copy_proxy_keys(txn: &Connection) -> Result<usize> {
    let mut read = txn.prepare(
        "SELECT id, name, key_hash, key_prefix, allowed_targets, allowed_models, description, \
         enabled, created_at, revoked_at, last_used_at, last_used_target_id \
         FROM go.proxy_keys ORDER BY id",
    )?;
    let mut write = txn.prepare(
        "INSERT INTO proxy_keys (id, name, key_hash, key_prefix, allowed_target_ids, \
         allowed_models, description, enabled, created_at, revoked_at, last_used_at, \
         last_used_target_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut rows = read.query([])?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let what = format!("proxy key {id}");
        let hash: String = get(row, 2, &what)?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!(
                "{what}: key_hash is not a SHA-256 hex digest (64 hexadecimal characters)"
            )));
        }
        let allowed_targets: String = get(row, 4, &what)?;
        serde_json::from_str::<Vec<i64>>(&allowed_targets).map_err(|e| {
            bad(format!(
                "{what}: allowed_targets is not a JSON list of target ids: {e}"
            ))
        })?;
        let allowed_models: String = get(row, 5, &what)?;
        serde_json::from_str::<Vec<String>>(&allowed_models).map_err(|e| {
            bad(format!(
                "{what}: allowed_models is not a JSON list of names: {e}"
            ))
        })?;
        write.execute(params![
            id,
            get::<String>(row, 1, &what)?,
            hash.to_ascii_lowercase(),
            get::<String>(row, 3, &what)?,
            allowed_targets,
            allowed_models,
            get::<String>(row, 6, &what)?,
            get::<bool>(row, 7, &what)?,
            get::<f64>(row, 8, &what)?,
            get::<Option<f64>>(row, 9, &what)?,
            get::<Option<f64>>(row, 10, &what)?,
            get::<Option<i64>>(row, 11, &what)?,
        ])?;
        n += 1;
    }
    Ok(n)
}
