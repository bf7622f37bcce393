//! The copy: the Go program's rows into apimon's schema, in one transaction on the new
//! database with the Go copy attached as `go`. Ids are kept (scripts, JSONL files and
//! proxy keys name targets and runs by id), channel keys are sealed, and a key a relay
//! echoed into a stored error or reply is scrubbed, as apimon does for its own rows.
//!
//! What the Go program guaranteed (its bounds, run statuses, JSON lists) is checked; a
//! row that breaks it fails the upgrade naming the row, rather than landing in apimon
//! half-understood. Runs and probe rows of targets the Go program deleted (it did not
//! enforce its foreign keys) are dropped and counted.

use rusqlite::{Connection, OptionalExtension, params};
use shared::Secret;
use shared::probe::{ModelStatus, ProbeResult, Protocol, scrub};

use super::super::targets::{self, TargetRecord};
use super::super::{Result, SecretBox, history, migrations, now, runs::RunStatus};
use super::checks::{bad, check_len, check_range, get};
use super::credentials;
use super::logs::normalise_log_file;

/// What was copied, and the plaintext keys (for scrubbing the run logs).
pub(super) struct Copied {
    pub targets: usize,
    pub runs: usize,
    pub run_models: usize,
    pub proxy_keys: usize,
    pub settings: usize,
    pub orphan_runs: usize,
    pub orphan_rows: usize,
    pub keys: Vec<Secret>,
}

pub(super) fn copy_all(conn: &mut Connection, secrets: &SecretBox) -> Result<Copied> {
    let txn = conn.transaction()?;
    migrations::create_latest(&txn)?;
    let targets = copy_targets(&txn, secrets)?;
    let mut copied = Copied {
        targets: targets.len(),
        runs: 0,
        run_models: 0,
        proxy_keys: credentials::copy_proxy_keys(&txn)?,
        settings: credentials::copy_settings(&txn, secrets)?,
        orphan_runs: 0,
        orphan_rows: 0,
        keys: Vec::new(),
    };
    for t in &targets {
        copied.runs += copy_runs(&txn, t)?;
        copied.run_models += copy_run_models(&txn, t)?;
    }
    let count = |sql: &str| -> Result<usize> {
        Ok(txn.query_row(sql, [], |r| r.get::<_, i64>(0))? as usize)
    };
    copied.orphan_runs = count("SELECT count(*) FROM go.runs")? - copied.runs;
    copied.orphan_rows = count("SELECT count(*) FROM go.run_models")? - copied.run_models;
    rebuild_latest(&txn)?;
    carry_sequences(&txn)?;
    txn.execute(
        "INSERT INTO meta(key, value) VALUES ('upgraded_from_go_at', ?1)",
        [now().to_string()],
    )?;
    txn.commit()?;
    copied.keys = targets.into_iter().map(|t| t.api_key).collect();
    copied.keys.dedup();
    Ok(copied)
}

/// Reads, checks and inserts every target; returns them with their plaintext keys.
fn copy_targets(txn: &Connection, secrets: &SecretBox) -> Result<Vec<TargetRecord>> {
    let mut stmt = txn.prepare(
        "SELECT id, name, base_url, api_key, enabled, interval_min, timeout_s, verify_ssl, \
         prompt, anthropic_version, max_models, created_at, updated_at, last_run_at, \
         last_status, last_total, last_success, last_fail, last_log_file, last_error, \
         source_url, sort_order, visitor_channel_actions_enabled, selected_models \
         FROM go.targets ORDER BY sort_order, id",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let what = format!("target {id}");
        let interval_min: i64 = get(row, 5, &what)?;
        let selected: String = get(row, 23, &what)?;
        let mut t = TargetRecord {
            id,
            name: get(row, 1, &what)?,
            base_url: get(row, 2, &what)?,
            api_key: Secret::new(get::<String>(row, 3, &what)?),
            enabled: get(row, 4, &what)?,
            timeout_s: get(row, 6, &what)?,
            verify_ssl: get(row, 7, &what)?,
            prompt: get(row, 8, &what)?,
            anthropic_version: get(row, 9, &what)?,
            max_models: get(row, 10, &what)?,
            created_at: get(row, 11, &what)?,
            updated_at: get(row, 12, &what)?,
            last_run_at: get(row, 13, &what)?,
            last_status: get(row, 14, &what)?,
            last_total: get(row, 15, &what)?,
            last_success: get(row, 16, &what)?,
            last_fail: get(row, 17, &what)?,
            last_log_file: normalise_log_file(get(row, 18, &what)?),
            last_error: get(row, 19, &what)?,
            source_url: get(row, 20, &what)?,
            sort_order: get(row, 21, &what)?,
            visitor_channel_actions_enabled: get(row, 22, &what)?,
            selected_models: serde_json::from_str(&selected).map_err(|e| {
                bad(format!(
                    "{what}: selected_models is not a JSON list of names: {e}"
                ))
            })?,
            // apimon's own fields start at their defaults.
            ..TargetRecord::new_with_defaults(interval_min)
        };
        let what = format!("target {id} (`{}`)", t.name);
        check_len(&what, "name", &t.name, 1, 128)?;
        check_len(&what, "base_url", &t.base_url, 3, 512)?;
        if !(t.base_url.starts_with("http://") || t.base_url.starts_with("https://")) {
            return Err(bad(format!(
                "{what}: base_url is not an http:// or https:// URL"
            )));
        }
        check_len(&what, "api_key", t.api_key.expose(), 1, 2048)?;
        check_range(&what, "interval_min", t.interval_min, 1, 1440)?;
        check_range(&what, "timeout_s", t.timeout_s, 3.0, 300.0)?;
        check_range(&what, "max_models", t.max_models, 0, 5000)?;
        check_len(&what, "prompt", &t.prompt, 1, 4000)?;
        check_len(&what, "anthropic_version", &t.anthropic_version, 4, 64)?;
        if let Some(url) = &t.source_url {
            check_len(&what, "source_url", url, 0, 1024)?;
        }
        check_range(
            &what,
            "selected_models (count)",
            t.selected_models.len(),
            0,
            5000,
        )?;
        for m in &t.selected_models {
            check_len(&what, "a selected model", m, 1, 256)?;
        }
        t.last_error = t.last_error.map(|e| scrub(&e, &t.api_key));
        out.push(t);
    }
    // Older Go releases left 0 before they kept an order; apimon's API takes 1 to
    // 1,000,000, so such a list is renumbered in the order it was shown.
    if out.iter().any(|t| !(1..=1_000_000).contains(&t.sort_order)) {
        for (i, t) in out.iter_mut().enumerate() {
            t.sort_order = i as i64 + 1;
        }
    }
    for t in &out {
        targets::insert_imported(txn, secrets, t)?;
    }
    Ok(out)
}

/// Copies the target's runs; returns how many.
fn copy_runs(txn: &Connection, t: &TargetRecord) -> Result<usize> {
    let mut read = txn.prepare(
        "SELECT id, started_at, finished_at, status, total, success, fail, log_file, error \
         FROM go.runs WHERE target_id = ?1 ORDER BY id",
    )?;
    let mut write = txn.prepare(
        "INSERT INTO runs (id, target_id, started_at, finished_at, status, total, success, \
         fail, log_file, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let mut rows = read.query([t.id])?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let what = format!("run {id} of target {}", t.id);
        let status: String = get(row, 3, &what)?;
        // A run left `running` by a crash is marked interrupted at start, as apimon's own.
        let status = RunStatus::parse(&status)
            .filter(|s| *s != RunStatus::Interrupted)
            .ok_or_else(|| {
                bad(format!(
                    "{what}: status `{status}` is not running, completed or error"
                ))
            })?;
        let error: Option<String> = get(row, 8, &what)?;
        write.execute(params![
            id,
            t.id,
            get::<f64>(row, 1, &what)?,
            get::<Option<f64>>(row, 2, &what)?,
            status,
            get::<i64>(row, 4, &what)?,
            get::<i64>(row, 5, &what)?,
            get::<i64>(row, 6, &what)?,
            normalise_log_file(get(row, 7, &what)?),
            error.map(|e| scrub(&e, &t.api_key)),
        ])?;
        n += 1;
    }
    Ok(n)
}

/// Copies the target's probe rows, with the Go program's protocol, route and endpoint
/// values as they are, and `total_ms` from its `duration` so rollups and stats count
/// them. Returns how many.
fn copy_run_models(txn: &Connection, t: &TargetRecord) -> Result<usize> {
    // `replace` with an empty pattern leaves the text as it is: a key too short to
    // scrub safely (see `shared::probe::scrub`) is not looked for.
    let key = if t.api_key.expose().len() >= 4 {
        t.api_key.expose()
    } else {
        ""
    };
    let n = txn.execute(
        "INSERT INTO run_models (id, run_id, target_id, protocol, model, success, duration, \
         status_code, error, content, route, endpoint, timestamp, stream, transport_success, \
         tool_calls_count, tool_calls, total_ms) \
         SELECT m.id, m.run_id, m.target_id, COALESCE(m.protocol, ''), COALESCE(m.model, ''), \
         m.success, m.duration, m.status_code, replace(m.error, ?2, '[redacted]'), \
         replace(m.content, ?2, '[redacted]'), m.route, m.endpoint, \
         COALESCE(m.timestamp, r.started_at), m.stream, m.transport_success, \
         m.tool_calls_count, COALESCE(m.tool_calls, '[]'), m.duration * 1000.0 \
         FROM go.run_models m JOIN go.runs r ON r.id = m.run_id AND r.target_id = m.target_id \
         WHERE m.target_id = ?1 ORDER BY m.id",
        params![t.id, key],
    )?;
    Ok(n)
}

/// Fills each model's latest result and short history (what the target list shows)
/// from its last probe rows, as if they had been recorded by apimon.
fn rebuild_latest(txn: &Connection) -> Result<()> {
    let mut stmt = txn.prepare(
        "SELECT run_id, target_id, protocol, model, success, duration, status_code, error, \
         route, endpoint, timestamp, stream, transport_success FROM ( \
           SELECT *, ROW_NUMBER() OVER (PARTITION BY target_id, model ORDER BY id DESC) AS n \
           FROM run_models WHERE model <> '') \
         WHERE n <= ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([history::HISTORY_KEEP as i64])?;
    while let Some(row) = rows.next()? {
        let protocol: String = row.get(2)?;
        let route: Option<String> = row.get(8)?;
        // The Go program names its APIs by (protocol, route); a row naming another
        // has no place here.
        let Some(protocol) = Protocol::from_seed_names(&protocol, route.as_deref().unwrap_or(""))
        else {
            continue;
        };
        let success: bool = row.get(4)?;
        let total_ms = row.get::<_, Option<f64>>(5)?.unwrap_or(0.0) * 1000.0;
        let status_code: Option<i64> = row.get(6)?;
        let result = ProbeResult {
            model: row.get(3)?,
            protocol,
            // The Go program recorded neither a route rule nor a request path.
            route_rule: String::new(),
            path: String::new(),
            stream: row.get(11)?,
            success,
            status: ModelStatus::of(success, total_ms, targets::DEFAULT_SLOW_MS as u64),
            transport_success: row.get(12)?,
            status_code: status_code.and_then(|c| u16::try_from(c).ok()),
            ttfb_ms: None,
            ttft_ms: None,
            total_ms,
            output_tokens: None,
            tokens_estimated: false,
            tokens_per_s: None,
            returned_model: None,
            model_mismatch: false,
            content: String::new(),
            error_class: None,
            error: row.get(7)?,
            attempts: 1,
            started_at: row.get(10)?,
        };
        history::record_latest(txn, row.get(0)?, row.get(1)?, &result)?;
    }
    Ok(())
}

/// New ids continue after the Go program's last ones, deleted rows included, so a
/// new target never takes the id of a deleted one that a proxy key or an old log
/// file still names.
fn carry_sequences(txn: &Connection) -> Result<()> {
    let mut stmt = txn.prepare(
        "SELECT name, seq FROM go.sqlite_sequence \
         WHERE name IN ('targets', 'runs', 'run_models', 'proxy_keys')",
    )?;
    let seqs: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, seq) in seqs {
        let ours: Option<i64> = txn
            .query_row(
                "SELECT seq FROM main.sqlite_sequence WHERE name = ?1",
                [&name],
                |r| r.get(0),
            )
            .optional()?;
        match ours {
            Some(s) if s >= seq => {}
            Some(_) => {
                txn.execute(
                    "UPDATE main.sqlite_sequence SET seq = ?2 WHERE name = ?1",
                    params![name, seq],
                )?;
            }
            None => {
                txn.execute(
                    "INSERT INTO main.sqlite_sequence(name, seq) VALUES (?1, ?2)",
                    params![name, seq],
                )?;
            }
        }
    }
    Ok(())
}
