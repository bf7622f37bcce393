//! Forward-only schema migrations, versioned by `PRAGMA user_version`. Each step runs
//! in its own transaction; a database newer than this binary is refused rather than
//! guessed at.

use rusqlite::Connection;

use super::{Result, StoreError};

/// Step N brings the schema from version N to N+1.
const STEPS: &[&str] = &[
    // 1: the seed's tables, with channel keys sealed instead of plain.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE targets (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        base_url TEXT NOT NULL,
        api_key_sealed BLOB NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        interval_min INTEGER NOT NULL,
        timeout_s REAL NOT NULL,
        verify_ssl INTEGER NOT NULL DEFAULT 1,
        prompt TEXT NOT NULL,
        anthropic_version TEXT NOT NULL,
        max_models INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        last_run_at REAL,
        last_status TEXT,
        last_total INTEGER,
        last_success INTEGER,
        last_fail INTEGER,
        last_log_file TEXT,
        last_error TEXT,
        source_url TEXT,
        sort_order INTEGER NOT NULL,
        visitor_channel_actions_enabled INTEGER NOT NULL DEFAULT 0,
        selected_models TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        started_at REAL NOT NULL,
        finished_at REAL,
        status TEXT NOT NULL,
        total INTEGER NOT NULL DEFAULT 0,
        success INTEGER NOT NULL DEFAULT 0,
        fail INTEGER NOT NULL DEFAULT 0,
        log_file TEXT,
        error TEXT
    );
    CREATE INDEX runs_by_target ON runs(target_id, id);
    CREATE TABLE run_models (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        protocol TEXT NOT NULL,
        model TEXT NOT NULL,
        success INTEGER NOT NULL,
        duration REAL,
        status_code INTEGER,
        error TEXT,
        content TEXT,
        route TEXT,
        endpoint TEXT,
        timestamp REAL NOT NULL,
        stream INTEGER NOT NULL DEFAULT 0,
        transport_success INTEGER NOT NULL DEFAULT 0,
        tool_calls_count INTEGER NOT NULL DEFAULT 0,
        tool_calls TEXT
    );
    CREATE INDEX run_models_by_run ON run_models(run_id);
    CREATE INDEX run_models_by_target_model ON run_models(target_id, model, id);
    CREATE TABLE app_settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE proxy_keys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        key_prefix TEXT NOT NULL,
        allowed_target_ids TEXT NOT NULL DEFAULT '[]',
        allowed_models TEXT NOT NULL DEFAULT '[]',
        description TEXT NOT NULL DEFAULT '',
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at REAL NOT NULL,
        revoked_at REAL,
        last_used_at REAL,
        last_used_target_id INTEGER
    );
    "#,
    // 2: apimon's per-target probe settings.
    r#"
    ALTER TABLE targets ADD COLUMN exclude_models TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE targets ADD COLUMN probe_mode TEXT NOT NULL DEFAULT 'stream';
    ALTER TABLE targets ADD COLUMN check_mode TEXT NOT NULL DEFAULT 'challenge';
    ALTER TABLE targets ADD COLUMN max_tokens INTEGER;
    ALTER TABLE targets ADD COLUMN slow_ms INTEGER NOT NULL DEFAULT 10000;
    ALTER TABLE targets ADD COLUMN extra_headers TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE targets ADD COLUMN user_agent TEXT;
    "#,
    // 3: the probe engine's measurements, discovered models, schedule, latest results
    // with their short history, and long-window rollups.
    r#"
    ALTER TABLE targets ADD COLUMN discovered_models TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE targets ADD COLUMN route_overrides TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE targets ADD COLUMN next_due_at REAL;
    ALTER TABLE runs ADD COLUMN trigger TEXT NOT NULL DEFAULT 'schedule';
    ALTER TABLE runs ADD COLUMN result TEXT;
    ALTER TABLE run_models ADD COLUMN status TEXT;
    ALTER TABLE run_models ADD COLUMN error_class TEXT;
    ALTER TABLE run_models ADD COLUMN ttfb_ms REAL;
    ALTER TABLE run_models ADD COLUMN ttft_ms REAL;
    ALTER TABLE run_models ADD COLUMN total_ms REAL;
    ALTER TABLE run_models ADD COLUMN output_tokens INTEGER;
    ALTER TABLE run_models ADD COLUMN tokens_estimated INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE run_models ADD COLUMN tokens_per_s REAL;
    ALTER TABLE run_models ADD COLUMN returned_model TEXT;
    ALTER TABLE run_models ADD COLUMN model_mismatch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE run_models ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX run_models_by_time ON run_models(timestamp);
    -- Per-model history lives in model_latest now; an index with a hot spot per model
    -- made every probe insert touch a random page.
    DROP INDEX run_models_by_target_model;
    CREATE INDEX run_models_by_target ON run_models(target_id, id);
    CREATE INDEX runs_by_status ON runs(status);
    CREATE TABLE model_latest (
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        protocol TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        success INTEGER NOT NULL,
        status TEXT NOT NULL,
        stream INTEGER NOT NULL,
        route TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        total_ms REAL NOT NULL,
        ttft_ms REAL,
        tokens_per_s REAL,
        status_code INTEGER,
        error_class TEXT,
        error TEXT,
        returned_model TEXT,
        model_mismatch INTEGER NOT NULL,
        timestamp REAL NOT NULL,
        history BLOB NOT NULL DEFAULT x'',
        PRIMARY KEY (target_id, model)
    );
    CREATE TABLE rollups (
        period TEXT NOT NULL,
        bucket_start REAL NOT NULL,
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        count INTEGER NOT NULL,
        success INTEGER NOT NULL,
        slow INTEGER NOT NULL,
        latency_sketch TEXT NOT NULL,
        ttft_sketch TEXT NOT NULL,
        PRIMARY KEY (period, target_id, model, bucket_start)
    );
    CREATE INDEX rollups_by_time ON rollups(period, bucket_start);
    "#,
    // 4: `targets.extra_headers` holds its map sealed (base64) instead of plaintext
    // JSON. The sealing needs the secret key, so `Store::open` does it in code after
    // the migrations; this step only marks the format, so an older apimond refuses the
    // database instead of failing to read its targets.
    r#"
    UPDATE targets SET extra_headers = extra_headers WHERE 0;
    "#,
    // 5: probe rows name their API as the Go program does, `(protocol, route,
    // endpoint)`; apimon's route rule and request path, kept in `route` and `endpoint`
    // until now (an endpoint starting with `/`), move to `route_rule` and `path`. Rows
    // from before the probe engine (no `status`) had no rule in `route`.
    r#"
    ALTER TABLE run_models ADD COLUMN route_rule TEXT;
    ALTER TABLE run_models ADD COLUMN path TEXT;
    ALTER TABLE model_latest ADD COLUMN route_rule TEXT;
    ALTER TABLE model_latest ADD COLUMN path TEXT;
    UPDATE run_models SET route_rule = CASE WHEN status IS NULL THEN NULL ELSE route END,
        path = endpoint,
        protocol = CASE protocol WHEN 'responses' THEN 'openai' ELSE protocol END,
        route = CASE protocol WHEN 'openai' THEN 'chat' ELSE protocol END,
        endpoint = CASE protocol WHEN 'openai' THEN 'chat' WHEN 'anthropic' THEN 'messages'
            ELSE protocol END
        WHERE endpoint LIKE '/%';
    UPDATE model_latest SET route_rule = route, path = endpoint,
        protocol = CASE protocol WHEN 'responses' THEN 'openai' ELSE protocol END,
        route = CASE protocol WHEN 'openai' THEN 'chat' ELSE protocol END,
        endpoint = CASE protocol WHEN 'openai' THEN 'chat' WHEN 'anthropic' THEN 'messages'
            ELSE protocol END
        WHERE endpoint LIKE '/%';
    "#,
    // 6: how probes leave: the target's outbound proxy ('' the global default,
    // 'direct', else the URL sealed) and client profile (Chrome-like by default, as
    // the Go program probes).
    r#"
    ALTER TABLE targets ADD COLUMN proxy_url TEXT NOT NULL DEFAULT '';
    ALTER TABLE targets ADD COLUMN client_profile TEXT NOT NULL DEFAULT 'browser';
    "#,
    // 7: proxy key limits, and what the proxy served: one row per request with hourly
    // and daily rollups (key and target 0 there stand for "none": the master token, no
    // channel reached). Keys from the Go program keep working: the new limits are null.
    r#"
    ALTER TABLE proxy_keys ADD COLUMN expires_at REAL;
    ALTER TABLE proxy_keys ADD COLUMN rpm_limit INTEGER;
    ALTER TABLE proxy_keys ADD COLUMN daily_token_budget INTEGER;
    ALTER TABLE proxy_keys ADD COLUMN updated_at REAL;
    UPDATE proxy_keys SET updated_at = created_at;
    CREATE TABLE proxy_usage (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        key_id INTEGER,
        target_id INTEGER,
        requested_model TEXT NOT NULL,
        upstream_model TEXT,
        model TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        stream INTEGER NOT NULL,
        status INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        ttfb_ms REAL,
        ttft_ms REAL,
        total_ms REAL NOT NULL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        tokens_estimated INTEGER NOT NULL,
        error_class TEXT
    );
    CREATE INDEX proxy_usage_by_time ON proxy_usage(at);
    CREATE INDEX proxy_usage_by_key ON proxy_usage(key_id, at);
    CREATE INDEX proxy_usage_by_target ON proxy_usage(target_id, at);
    CREATE TABLE proxy_usage_rollups (
        period TEXT NOT NULL,
        bucket_start REAL NOT NULL,
        key_id INTEGER NOT NULL,
        target_id INTEGER NOT NULL,
        model TEXT NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        estimated_requests INTEGER NOT NULL,
        total_ms_sum REAL NOT NULL,
        PRIMARY KEY (period, key_id, target_id, model, bucket_start)
    );
    CREATE INDEX proxy_usage_rollups_by_time ON proxy_usage_rollups(period, bucket_start);
    "#,
    // 8: rollups count failures by error class (a JSON object), for the analysis page's
    // error classes over time; buckets folded before stay empty.
    r#"
    ALTER TABLE rollups ADD COLUMN error_classes TEXT NOT NULL DEFAULT '{}';
    "#,
    // 9: raw usage rows are read only by time (the parts of a range no whole rollup
    // bucket covers, retention, the budget counters at start), so the key and channel
    // indexes only cost every proxied request two more index inserts.
    r#"
    DROP INDEX proxy_usage_by_key;
    DROP INDEX proxy_usage_by_target;
    "#,
];

pub const LATEST: i64 = STEPS.len() as i64;

pub fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > LATEST {
        return Err(StoreError::Config(format!(
            "the database schema is version {current}, newer than this apimond understands \
             ({LATEST}); run a newer apimond or restore a backup"
        )));
    }
    for (i, sql) in STEPS.iter().enumerate().skip(current as usize) {
        let version = i as i64 + 1;
        let txn = conn.transaction()?;
        txn.execute_batch(sql)?;
        txn.pragma_update(None, "user_version", version)?;
        txn.commit()?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}

/// Creates the latest schema in an empty database within the caller's transaction, so
/// the Go upgrade builds schema and data all or nothing.
pub(super) fn create_latest(txn: &Connection) -> Result<()> {
    for sql in STEPS {
        txn.execute_batch(sql)?;
    }
    txn.pragma_update(None, "user_version", LATEST)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_database_reaches_the_latest_version_and_a_second_run_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, LATEST);
    }

    /// A database at version 3 holding one target and one run.
    fn at_version_3_with_a_run() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for (i, sql) in STEPS.iter().take(3).enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", i as i64 + 1)
                .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO targets (id, name, base_url, api_key_sealed, interval_min, timeout_s, \
             prompt, anthropic_version, created_at, updated_at, sort_order) \
             VALUES (1, 't', 'http://x', x'00', 30, 30, 'p', 'v', 0, 0, 1);
             INSERT INTO runs (id, target_id, started_at, status) VALUES (1, 1, 0, 'completed');",
        )
        .unwrap();
        conn
    }

    /// `protocol, route, endpoint, route_rule, path` of a probe row.
    type Names = (String, String, String, Option<String>, Option<String>);

    fn names(p: &str, r: &str, e: &str, rule: Option<&str>, path: Option<&str>) -> Names {
        let own = |s: Option<&str>| s.map(String::from);
        (p.into(), r.into(), e.into(), own(rule), own(path))
    }

    fn read_names(conn: &Connection, table: &str) -> Vec<Names> {
        conn.prepare(&format!(
            "SELECT protocol, route, endpoint, route_rule, path FROM {table} ORDER BY model"
        ))
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
    }

    #[test]
    fn probe_rows_of_older_versions_take_the_go_names_and_keep_rule_and_path() {
        let mut conn = at_version_3_with_a_run();
        let gemini_path = "/v1beta/models/g:streamGenerateContent";
        let rows = [
            ("openai", "default", "/v1/chat/completions"),
            ("responses", "gpt-5*", "/v1/responses"),
            ("anthropic", "*claude*", "/v1/messages"),
            ("gemini", "*gemini*", gemini_path),
            // Already in the Go program's names: left as it is.
            ("openai", "responses", "responses"),
        ];
        for (i, (protocol, route, endpoint)) in rows.iter().enumerate() {
            let model = format!("m{i}");
            conn.execute(
                "INSERT INTO run_models (run_id, target_id, protocol, model, success, route, \
                 endpoint, timestamp, status) VALUES (1, 1, ?1, ?2, 1, ?3, ?4, 0, 'ok')",
                rusqlite::params![protocol, model, route, endpoint],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO model_latest (target_id, model, protocol, run_id, success, status, \
                 stream, route, endpoint, total_ms, model_mismatch, timestamp) \
                 VALUES (1, ?1, ?2, 1, 1, 'ok', 1, ?3, ?4, 1, 0, 0)",
                rusqlite::params![model, protocol, route, endpoint],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let chat = "/v1/chat/completions";
        let want = vec![
            names("openai", "chat", "chat", Some("default"), Some(chat)),
            names(
                "openai",
                "responses",
                "responses",
                Some("gpt-5*"),
                Some("/v1/responses"),
            ),
            names(
                "anthropic",
                "anthropic",
                "messages",
                Some("*claude*"),
                Some("/v1/messages"),
            ),
            names(
                "gemini",
                "gemini",
                "gemini",
                Some("*gemini*"),
                Some(gemini_path),
            ),
            names("openai", "responses", "responses", None, None),
        ];
        assert_eq!(read_names(&conn, "run_models"), want);
        assert_eq!(read_names(&conn, "model_latest"), want);
    }

    #[test]
    fn a_probe_row_from_before_the_probe_engine_gets_no_route_rule() {
        // Such rows have no status, and their `route` named the API, not a rule.
        let mut conn = at_version_3_with_a_run();
        conn.execute_batch(
            "INSERT INTO run_models (run_id, target_id, protocol, model, success, route, \
             endpoint, timestamp) VALUES (1, 1, 'anthropic', 'm', 1, 'messages', '/v1/messages', 0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(
            read_names(&conn, "run_models"),
            [names(
                "anthropic",
                "anthropic",
                "messages",
                None,
                Some("/v1/messages")
            )]
        );
    }

    #[test]
    fn proxy_keys_of_older_versions_keep_their_rows_and_get_no_limits() {
        let mut conn = at_version_3_with_a_run();
        conn.execute_batch(
            "INSERT INTO proxy_keys (id, name, key_hash, key_prefix, created_at) \
             VALUES (4, 'go', 'ab', 'sk-go-012345', 100.5);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let row: (String, f64, Option<f64>, Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT name, updated_at, expires_at, rpm_limit, daily_token_budget \
                 FROM proxy_keys WHERE id = 4",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(row, ("go".into(), 100.5, None, None, None));
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        let e = migrate(&mut conn).unwrap_err().to_string();
        assert!(e.contains("newer than this apimond"), "{e}");
    }
}
