//! The `targets` table: channels with their sealed keys and probe settings.

use std::collections::BTreeMap;

use rusqlite::{Connection, Row, params};
use shared::Secret;
use shared::probe::{CheckMode, ClientProfile, DIRECT, ProbeMode, ProxyChoice, ProxyUrl};

use super::{Result, SecretBox, Store, StoreError, now, optional};

const KEY_CONTEXT: &str = "targets.api_key";
const HEADERS_CONTEXT: &str = "targets.extra_headers";
const PROXY_CONTEXT: &str = "targets.proxy_url";

/// The `proxy_url` column: `''` for the global default, `direct`, else the URL sealed
/// (it may carry the proxy's password).
fn seal_proxy(secrets: &SecretBox, proxy: &ProxyChoice) -> String {
    match proxy {
        ProxyChoice::Default => String::new(),
        ProxyChoice::Direct => DIRECT.into(),
        ProxyChoice::Via(p) => secrets.seal_text(PROXY_CONTEXT, p.expose()),
    }
}

fn open_proxy(secrets: &SecretBox, stored: &str) -> Result<ProxyChoice> {
    Ok(match stored {
        "" => ProxyChoice::Default,
        DIRECT => ProxyChoice::Direct,
        sealed => {
            let url = secrets.open_text(PROXY_CONTEXT, sealed)?;
            // Checked when it was set; never echo the URL, it may hold a password.
            ProxyChoice::Via(
                ProxyUrl::parse(&url)
                    .map_err(|e| StoreError::Corrupt(format!("targets.proxy_url: {e}")))?,
            )
        }
    })
}

/// The `extra_headers` column: `{}` when there are none, else the JSON object sealed
/// (base64 text). A value starting with `{` is an older plaintext object, sealed at
/// the next start by [`seal_plaintext_headers`].
fn seal_headers(secrets: &SecretBox, headers: &BTreeMap<String, Secret>) -> String {
    if headers.is_empty() {
        return "{}".into();
    }
    let plain: BTreeMap<&str, &str> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    secrets.seal_text(HEADERS_CONTEXT, &json(&plain))
}

fn open_headers(secrets: &SecretBox, stored: &str) -> Result<BTreeMap<String, Secret>> {
    let plain = if stored.starts_with('{') {
        stored.to_string()
    } else {
        secrets.open_text(HEADERS_CONTEXT, stored)?
    };
    let map: BTreeMap<String, String> = serde_json::from_str(&plain)
        .map_err(|e| StoreError::Corrupt(format!("targets.extra_headers: {e}")))?;
    Ok(map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect())
}

/// Seals header values stored in plaintext by an apimond from before they were
/// secrets. Returns how many targets changed.
pub(super) fn seal_plaintext_headers(conn: &Connection, secrets: &SecretBox) -> Result<usize> {
    let mut stmt = conn.prepare(
        "SELECT id, extra_headers FROM targets WHERE extra_headers LIKE '{%' AND extra_headers <> '{}'",
    )?;
    let rows: Vec<(i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, text) in &rows {
        let headers = open_headers(secrets, text)?;
        conn.execute(
            "UPDATE targets SET extra_headers = ?2 WHERE id = ?1",
            params![id, seal_headers(secrets, &headers)],
        )?;
    }
    Ok(rows.len())
}

/// A target as stored, with its key opened. Its `Debug` hides the key (via [`Secret`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRecord {
    pub id: i64,
    pub name: String,
    pub base_url: String,
    pub api_key: Secret,
    pub enabled: bool,
    pub interval_min: i64,
    pub timeout_s: f64,
    pub verify_ssl: bool,
    pub prompt: String,
    pub anthropic_version: String,
    pub max_models: i64,
    pub created_at: f64,
    pub updated_at: f64,
    pub last_run_at: Option<f64>,
    pub last_status: Option<String>,
    pub last_total: Option<i64>,
    pub last_success: Option<i64>,
    pub last_fail: Option<i64>,
    pub last_log_file: Option<String>,
    pub last_error: Option<String>,
    pub source_url: Option<String>,
    pub sort_order: i64,
    pub visitor_channel_actions_enabled: bool,
    pub selected_models: Vec<String>,
    pub exclude_models: Vec<String>,
    pub probe_mode: ProbeMode,
    pub check_mode: CheckMode,
    pub max_tokens: Option<i64>,
    pub slow_ms: i64,
    pub extra_headers: BTreeMap<String, Secret>,
    pub user_agent: Option<String>,
    pub route_overrides: Vec<shared::probe::RouteRule>,
    /// Sealed at rest; its `Debug` hides credentials.
    pub proxy: ProxyChoice,
    pub client_profile: ClientProfile,
}

pub const DEFAULT_TIMEOUT_S: f64 = 30.0;
pub const DEFAULT_PROMPT: &str = "Reply with one short sentence: what is the capital of France?";
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";
pub const DEFAULT_SLOW_MS: i64 = 10_000;

impl TargetRecord {
    /// A new target with every default, before its fields are set.
    pub fn new_with_defaults(interval_min: i64) -> TargetRecord {
        TargetRecord {
            id: 0,
            name: String::new(),
            base_url: String::new(),
            api_key: Secret::default(),
            enabled: true,
            interval_min,
            timeout_s: DEFAULT_TIMEOUT_S,
            verify_ssl: true,
            prompt: DEFAULT_PROMPT.into(),
            anthropic_version: DEFAULT_ANTHROPIC_VERSION.into(),
            max_models: 0,
            created_at: 0.0,
            updated_at: 0.0,
            last_run_at: None,
            last_status: None,
            last_total: None,
            last_success: None,
            last_fail: None,
            last_log_file: None,
            last_error: None,
            source_url: None,
            sort_order: 0,
            visitor_channel_actions_enabled: false,
            selected_models: Vec::new(),
            exclude_models: Vec::new(),
            probe_mode: ProbeMode::default(),
            check_mode: CheckMode::default(),
            max_tokens: None,
            slow_ms: DEFAULT_SLOW_MS,
            extra_headers: BTreeMap::new(),
            user_agent: None,
            route_overrides: Vec::new(),
            proxy: ProxyChoice::Default,
            client_profile: ClientProfile::default(),
        }
    }
}

const COLUMNS: &str = "id, name, base_url, api_key_sealed, enabled, interval_min, timeout_s, \
    verify_ssl, prompt, anthropic_version, max_models, created_at, updated_at, last_run_at, \
    last_status, last_total, last_success, last_fail, last_log_file, last_error, source_url, \
    sort_order, visitor_channel_actions_enabled, selected_models, exclude_models, probe_mode, \
    check_mode, max_tokens, slow_ms, extra_headers, user_agent, route_overrides, proxy_url, \
    client_profile";

fn json_col<T: serde::de::DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn from_row(row: &Row<'_>, secrets: &SecretBox) -> rusqlite::Result<Result<TargetRecord>> {
    let sealed: Vec<u8> = row.get(3)?;
    let api_key = match secrets.open(KEY_CONTEXT, &sealed) {
        Ok(k) => Secret::new(k),
        Err(e) => return Ok(Err(e)),
    };
    let extra_headers = match open_headers(secrets, &row.get::<_, String>(29)?) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    let proxy = match open_proxy(secrets, &row.get::<_, String>(32)?) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(TargetRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        base_url: row.get(2)?,
        api_key,
        enabled: row.get(4)?,
        interval_min: row.get(5)?,
        timeout_s: row.get(6)?,
        verify_ssl: row.get(7)?,
        prompt: row.get(8)?,
        anthropic_version: row.get(9)?,
        max_models: row.get(10)?,
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
        last_run_at: row.get(13)?,
        last_status: row.get(14)?,
        last_total: row.get(15)?,
        last_success: row.get(16)?,
        last_fail: row.get(17)?,
        last_log_file: row.get(18)?,
        last_error: row.get(19)?,
        source_url: row.get(20)?,
        sort_order: row.get(21)?,
        visitor_channel_actions_enabled: row.get(22)?,
        selected_models: json_col(row, 23)?,
        exclude_models: json_col(row, 24)?,
        // Written only from these enums; anything else reads as the default.
        probe_mode: ProbeMode::parse(&row.get::<_, String>(25)?).unwrap_or_default(),
        check_mode: CheckMode::parse(&row.get::<_, String>(26)?).unwrap_or_default(),
        max_tokens: row.get(27)?,
        slow_ms: row.get(28)?,
        extra_headers,
        user_agent: row.get(30)?,
        route_overrides: json_col(row, 31)?,
        proxy,
        client_profile: ClientProfile::parse(&row.get::<_, String>(33)?).unwrap_or_default(),
    }))
}

fn load(txn: &rusqlite::Connection, secrets: &SecretBox, id: i64) -> Result<Option<TargetRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM targets WHERE id = ?1");
    optional(txn.query_row(&sql, [id], |r| from_row(r, secrets)))?.transpose()
}

fn unique_violation(e: rusqlite::Error, name: &str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, Some(msg))
            if f.code == rusqlite::ErrorCode::ConstraintViolation
                && msg.contains("targets.name") =>
        {
            StoreError::Conflict(format!("a target named `{name}` already exists"))
        }
        _ => e.into(),
    }
}

fn write_editable(txn: &Connection, secrets: &SecretBox, t: &TargetRecord) -> Result<()> {
    txn.execute(
        "UPDATE targets SET name = ?2, base_url = ?3, api_key_sealed = ?4, enabled = ?5, \
         interval_min = ?6, timeout_s = ?7, verify_ssl = ?8, prompt = ?9, \
         anthropic_version = ?10, max_models = ?11, updated_at = ?12, source_url = ?13, \
         sort_order = ?14, visitor_channel_actions_enabled = ?15, selected_models = ?16, \
         exclude_models = ?17, probe_mode = ?18, check_mode = ?19, max_tokens = ?20, \
         slow_ms = ?21, extra_headers = ?22, user_agent = ?23, route_overrides = ?24, \
         proxy_url = ?25, client_profile = ?26 WHERE id = ?1",
        params![
            t.id,
            t.name,
            t.base_url,
            secrets.seal(KEY_CONTEXT, t.api_key.expose()),
            t.enabled,
            t.interval_min,
            t.timeout_s,
            t.verify_ssl,
            t.prompt,
            t.anthropic_version,
            t.max_models,
            t.updated_at,
            t.source_url,
            t.sort_order,
            t.visitor_channel_actions_enabled,
            json(&t.selected_models),
            json(&t.exclude_models),
            t.probe_mode.as_str(),
            t.check_mode.as_str(),
            t.max_tokens,
            t.slow_ms,
            seal_headers(secrets, &t.extra_headers),
            t.user_agent,
            json(&t.route_overrides),
            seal_proxy(secrets, &t.proxy),
            t.client_profile.as_str(),
        ],
    )
    .map_err(|e| unique_violation(e, &t.name))?;
    Ok(())
}

/// Inserts a target written by another program (the Go upgrade): its own id, times and
/// last results kept, the key and header values sealed like any other target's.
pub(super) fn insert_imported(
    txn: &Connection,
    secrets: &SecretBox,
    t: &TargetRecord,
) -> Result<()> {
    txn.execute(
        "INSERT INTO targets (id, name, base_url, api_key_sealed, interval_min, timeout_s, \
         prompt, anthropic_version, created_at, updated_at, sort_order, last_run_at, \
         last_status, last_total, last_success, last_fail, last_log_file, last_error) \
         VALUES (?1, ?2, '', x'', 0, 0, '', '', ?3, ?4, 0, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            t.id,
            t.name,
            t.created_at,
            t.updated_at,
            t.last_run_at,
            t.last_status,
            t.last_total,
            t.last_success,
            t.last_fail,
            t.last_log_file,
            t.last_error,
        ],
    )
    .map_err(|e| unique_violation(e, &t.name))?;
    write_editable(txn, secrets, t)
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

impl Store {
    pub async fn list_targets(&self) -> Result<Vec<TargetRecord>> {
        self.read(|conn, secrets| {
            let sql = format!("SELECT {COLUMNS} FROM targets ORDER BY sort_order, id");
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map([], |r| from_row(r, secrets))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row??);
            }
            Ok(out)
        })
        .await
    }

    pub async fn get_target(&self, id: i64) -> Result<Option<TargetRecord>> {
        self.read(move |conn, secrets| load(conn, secrets, id))
            .await
    }

    /// Inserts a target; a `sort_order` of 0 puts it after the last one.
    pub async fn create_target(&self, mut t: TargetRecord) -> Result<TargetRecord> {
        self.write(move |txn, secrets| {
            let ts = now();
            t.created_at = ts;
            t.updated_at = ts;
            if t.sort_order == 0 {
                let max: i64 = txn.query_row(
                    "SELECT COALESCE(MAX(sort_order), 0) FROM targets",
                    [],
                    |r| r.get(0),
                )?;
                t.sort_order = (max + 1).min(1_000_000);
            }
            txn.execute(
                "INSERT INTO targets (name, base_url, api_key_sealed, interval_min, timeout_s, \
                 prompt, anthropic_version, created_at, updated_at, sort_order) \
                 VALUES (?1, '', x'', 0, 0, '', '', ?2, ?2, 0)",
                params![t.name, ts],
            )
            .map_err(|e| unique_violation(e, &t.name))?;
            t.id = txn.last_insert_rowid();
            write_editable(txn, secrets, &t)?;
            Ok(t)
        })
        .await
    }

    /// Loads a target, lets `edit` change it and writes the result, all in one
    /// transaction. `edit` returning an error leaves the target untouched.
    pub async fn update_target<F, E>(&self, id: i64, edit: F) -> Result<Result<TargetRecord, E>>
    where
        F: FnOnce(&mut TargetRecord) -> Result<(), E> + Send + 'static,
        E: Send + 'static,
    {
        self.write(move |txn, secrets| {
            let mut t = load(txn, secrets, id)?.ok_or(StoreError::NotFound)?;
            let schedule = (t.interval_min, t.enabled);
            if let Err(e) = edit(&mut t) {
                return Ok(Err(e));
            }
            t.updated_at = now();
            write_editable(txn, secrets, &t)?;
            if schedule != (t.interval_min, t.enabled) {
                // A new interval, or a target enabled again: the scheduler places its
                // next run afresh rather than keeping a slot from the old schedule.
                txn.execute("UPDATE targets SET next_due_at = NULL WHERE id = ?1", [id])?;
            }
            Ok(Ok(t))
        })
        .await
    }

    /// Deletes a target with its runs and probe rows. Returns whether it existed.
    pub async fn delete_target(&self, id: i64) -> Result<bool> {
        let deleted = self
            .write(move |txn, _| Ok(txn.execute("DELETE FROM targets WHERE id = ?1", [id])? > 0))
            .await?;
        if deleted {
            self.checkpoint().await?;
        }
        Ok(deleted)
    }

    /// Sets `sort_order` of many targets in one transaction; an unknown id changes
    /// nothing and is reported.
    pub async fn reorder_targets(&self, orders: Vec<(i64, i64)>) -> Result<()> {
        self.write(move |txn, _| {
            let ts = now();
            for (id, order) in &orders {
                let n = txn.execute(
                    "UPDATE targets SET sort_order = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id, order, ts],
                )?;
                if n == 0 {
                    return Err(StoreError::UnknownTarget(*id));
                }
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// A minimal valid target for store tests.
    pub fn record(name: &str) -> TargetRecord {
        TargetRecord {
            name: name.into(),
            base_url: "http://127.0.0.1:9".into(),
            api_key: Secret::new("sk-store-test"),
            enabled: false,
            ..TargetRecord::new_with_defaults(30)
        }
    }
}
