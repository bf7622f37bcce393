//! A data directory of the Go `api_monitor` upgraded in place at start: the real one it
//! wrote (`fixtures/go-data/`), one built from its schema with a leftover WAL and every
//! setting, one apimon cannot take (left byte for byte), and databases that are
//! neither apimon's nor the Go program's (refused).

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The admin token the Go program generated and stored in the fixture.
const GO_TOKEN: &str = "amtk-e6ddeea6e4537cc0c86805fb9b4bf71f";
const GO_KEY: &str = "sk-dev-relay-key";
const GO_PROXY_KEY: &str = "sk-CZUFGrQqQr6aAMdoNTFX4PRQzebgNNxq05PP";
const BACKUP: &str = "registry.db.pre-apimon";
/// The Go rows are from the fixture's day; keep them inside the raw-row window.
const KEEP_ROWS: (&str, &str) = ("RETENTION_RAW_DAYS", "3650");

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/go-data")
}

/// A temporary parent with `data/` holding a copy of the real Go data directory.
fn go_data_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::copy(fixture().join("registry.db"), dir.join("registry.db")).unwrap();
    for e in std::fs::read_dir(fixture().join("logs")).unwrap().flatten() {
        std::fs::copy(e.path(), dir.join("logs").join(e.file_name())).unwrap();
    }
    (tmp, dir)
}

/// The Go program's schema (`.schema` output lists SQLite's own `sqlite_sequence`,
/// which SQLite creates by itself).
fn go_schema() -> String {
    include_str!("fixtures/go-data/schema.sql")
        .replace("CREATE TABLE sqlite_sequence(name,seq);", "")
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Every file under `dir` but the pre-upgrade copy that holds one of `secrets`.
fn files_holding(dir: &Path, secrets: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files
        .into_iter()
        .filter(|p| p.file_name().unwrap() != BACKUP)
        .filter(|p| match std::fs::read(p) {
            Ok(bytes) => secrets.iter().any(|s| contains(&bytes, s)),
            Err(_) => false,
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn get(d: &TestDaemon, token: &str, path: &str) -> Value {
    let (s, body, v) = d.send(Method::GET, path, Some(token), None).await;
    assert_eq!(s, StatusCode::OK, "{path}: {body}");
    v
}

/// Starts the real binary on `dir` with JSON logs; returns it, its address and the log
/// lines written up to the "listening" line.
fn spawn_binary(dir: &Path) -> (std::process::Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_apimond"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", dir)
        .env("PORT", "0")
        .env("LOG_FORMAT", "json")
        .env(KEEP_ROWS.0, KEEP_ROWS.1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let address = loop {
        let line = lines.next().expect("apimond logs its address").unwrap();
        log.push_str(&line);
        log.push('\n');
        let v: Value = serde_json::from_str(&line).unwrap();
        if let Some(a) = v["fields"]["address"].as_str() {
            break a.to_string();
        }
    };
    // Keep draining so the daemon never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, address, log)
}

#[tokio::test]
async fn the_go_programs_own_data_directory_upgrades_in_place_and_keeps_working() {
    let (_tmp, dir) = go_data_dir();
    let mut d = TestDaemon::start_in(&dir, &[KEEP_ROWS]).await;

    // The Go program's generated admin token is apimon's now; no new one was made.
    let v = get(&d, GO_TOKEN, "/api/targets").await;
    let creds: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("credentials.toml")).unwrap()).unwrap();
    assert_eq!(creds["admin_token"].as_str(), Some(GO_TOKEN));

    let items = v["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["relay-one", "relay-two"]);
    let one = &items[0];
    let expected = json!({
        "id": 1, "name": "relay-one", "base_url": "http://127.0.0.5", "enabled": true,
        "interval_min": 15, "timeout_s": 30.0, "verify_ssl": false,
        "prompt": "What is the exact model identifier (model string) you are using for this chat/session?",
        "anthropic_version": "2025-09-29", "max_models": 0,
        "created_at": 1795689654.148, "updated_at": 1795689657.225,
        "last_run_at": 1795689657.225, "last_status": "degraded", "last_total": 5,
        "last_success": 4, "last_fail": 1,
        "last_log_file": "logs/target_1_20261126_104057.jsonl", "last_error": null,
        "source_url": null, "sort_order": 1, "visitor_channel_actions_enabled": false,
        "selected_models": [],
    });
    for (field, want) in expected.as_object().unwrap() {
        assert_eq!(&one[field], want, "relay-one.{field}");
    }
    assert_ne!(one["api_key"], GO_KEY, "shown masked");
    assert_eq!(items[1]["id"], 2);
    assert_eq!(items[1]["last_run_at"], Value::Null);
    // The list shows each model's latest result from the Go rows at once.
    let mut models: Vec<&str> = one["latest_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    models.sort();
    assert_eq!(
        models,
        [
            "claude-sonnet-4",
            "gemini-2.5-pro",
            "gpt-4o",
            "gpt-5-mini",
            "x-fail429"
        ]
    );

    for id in [1, 2] {
        let (s, body, v) = d
            .send(
                Method::POST,
                &format!("/api/targets/{id}/reveal_key"),
                Some(GO_TOKEN),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(v["item"]["api_key"], GO_KEY);
    }

    // Runs and their rows, ids kept; the JSONL files they name are there.
    let runs = get(&d, GO_TOKEN, "/api/targets/1/runs").await;
    let runs = runs["items"].as_array().unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(runs[1]["status"], "completed");
    assert_eq!(runs[1]["started_at"], 1795689654.172);
    assert_eq!(runs[1]["finished_at"], 1795689654.212);
    assert_eq!(
        (
            runs[1]["total"].as_i64(),
            runs[1]["success"].as_i64(),
            runs[1]["fail"].as_i64()
        ),
        (Some(5), Some(4), Some(1))
    );
    for r in runs {
        let file = r["log_file"].as_str().unwrap();
        assert!(file.starts_with("logs/target_1_2026"), "{file}");
        assert!(
            dir.join(file).is_file(),
            "{file} is readable where apimon looks"
        );
    }
    let logs = get(&d, GO_TOKEN, "/api/targets/1/logs?run_id=1").await;
    assert_eq!(logs["run"]["id"], 1);
    let rows = logs["items"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    let row = |model: &str| rows.iter().find(|r| r["model"] == model).unwrap().clone();
    let claude = row("claude-sonnet-4");
    for (field, want) in [
        ("id", json!(3)),
        ("run_id", json!(1)),
        ("target_id", json!(1)),
        ("protocol", json!("anthropic")),
        ("route", json!("anthropic")),
        ("endpoint", json!("messages")),
        ("success", json!(true)),
        ("duration", json!(0.014)),
        ("status_code", json!(200)),
        ("content", json!("I am claude-sonnet-4")),
        ("timestamp", json!(1795689654.2)),
        ("stream", json!(false)),
        ("transport_success", json!(true)),
        ("tool_calls_count", json!(0)),
        ("tool_calls", json!([])),
    ] {
        assert_eq!(claude[field], want, "claude row {field}");
    }
    let failed = row("x-fail429");
    assert_eq!(failed["success"], false);
    assert_eq!(failed["error"], "HTTP 429: rate limited");
    assert_eq!(failed["status_code"], 429);
    let latest = get(&d, GO_TOKEN, "/api/targets/1/logs").await;
    assert_eq!(latest["run"]["id"], 2, "the latest run by default");

    // Settings carried over.
    let s = get(&d, GO_TOKEN, "/api/admin/settings").await;
    assert_eq!(s["item"]["visitor_mode_enabled"], false);
    assert_eq!(s["item"]["log_cleanup_enabled"], true);
    assert_eq!(s["item"]["log_max_size_mb"], 500);
    assert_eq!(s["item"]["default_interval_min"], 30);
    assert_eq!(s["item"]["api_monitor_token_visitor_set"], false);
    assert_eq!(s["item"]["proxy_master_token_set"], false);

    // Live files while running, then after a clean stop: no plaintext key anywhere but
    // in the copy.
    assert_eq!(files_holding(&dir, &[GO_KEY]), Vec::<PathBuf>::new());
    d.stop().await;
    assert_eq!(files_holding(&dir, &[GO_KEY]), Vec::<PathBuf>::new());

    // The proxy key as the Go program stored it.
    {
        let conn = rusqlite::Connection::open(dir.join("registry.db")).unwrap();
        let (name, hash, prefix, allowed, enabled): (String, String, String, String, bool) = conn
            .query_row(
                "SELECT name, key_hash, key_prefix, allowed_target_ids, enabled FROM proxy_keys \
                 WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(name, "dev-key");
        assert_eq!(hash, sha256_hex(GO_PROXY_KEY));
        assert_eq!(prefix, &GO_PROXY_KEY[..12]);
        assert_eq!((allowed.as_str(), enabled), ("[]", true));
    }

    // The copy: private, self-contained, the Go database as it was.
    let backup = dir.join(BACKUP);
    assert_eq!(mode(&backup), 0o600);
    assert_eq!(
        mode(&dir.join("registry.db")),
        0o600,
        "the new database is private too"
    );
    assert!(!dir.join(format!("{BACKUP}-wal")).exists());
    assert!(!dir.join("registry.db.upgrading").exists());
    {
        let conn = rusqlite::Connection::open(&backup).unwrap();
        let key: String = conn
            .query_row("SELECT api_key FROM targets WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(key, GO_KEY);
    }

    // A second start (the real binary) works on the upgraded database and still warns
    // about the copy.
    let (mut child, address, log) = spawn_binary(&dir);
    let warning = log
        .lines()
        .find(|l| l.contains("\"WARN\"") && l.contains(BACKUP))
        .unwrap_or_else(|| panic!("no warning about the copy in:\n{log}"));
    assert!(warning.contains("plaintext"), "{warning}");
    assert!(
        warning.contains("delete it once the upgrade is checked"),
        "{warning}"
    );
    assert!(!log.contains("upgrading"), "upgraded once only:\n{log}");
    let body: Value = tokio::task::spawn_blocking(move || {
        reqwest::blocking::Client::new()
            .get(format!("http://{address}/api/targets"))
            .bearer_auth(GO_TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Writes a Go database from the Go program's own schema at `dir/registry.db` with
/// `rows`, leaving the data in a WAL that nobody checkpointed, as a Go program stopped
/// hard leaves it. Returns once the files are in place.
fn write_go_database_with_wal(dir: &Path, rows: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let src = scratch.path().join("registry.db");
    let conn = rusqlite::Connection::open(&src).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0").unwrap();
    conn.execute_batch(&go_schema()).unwrap();
    conn.execute_batch(rows).unwrap();
    // Copied while the writer is still open: the database file holds none of it yet.
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(&src, dir.join("registry.db")).unwrap();
    std::fs::copy(
        scratch.path().join("registry.db-wal"),
        dir.join("registry.db-wal"),
    )
    .unwrap();
    drop(conn);
}

const ALPHA_KEY: &str = "sk-alpha-secret-000111222";
const BETA_KEY: &str = "sk-beta-secret-333444555";

#[tokio::test]
async fn a_go_database_left_in_its_wal_upgrades_with_every_setting_run_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // Whole seconds: SQLite parses decimal text into the nearest double only roughly.
    let t0 = (apimond::store::now() - 3600.0).floor();
    let rows = format!(
        r#"
        INSERT INTO targets (id, name, base_url, api_key, enabled, interval_min, timeout_s,
            verify_ssl, prompt, anthropic_version, max_models, created_at, updated_at,
            last_run_at, last_status, last_total, last_success, last_fail, last_log_file,
            last_error, source_url, sort_order, visitor_channel_actions_enabled, selected_models)
        VALUES
          (1, 'alpha', 'https://alpha.example/v1', '{ALPHA_KEY}', 0, 5, 12.5, 1, 'Say hi', '2023-06-01',
           7, {t0}, {t0} + 10, {t0} + 300, 'down', 2, 0, 2,
           '/srv/api_monitor/data/logs/target_1_20250101_000300.jsonl',
           'upstream said: invalid key {ALPHA_KEY}', 'https://docs.alpha.example', 2, 1,
           '["gpt-4o","o3-mini"]'),
          (2, 'beta', 'http://beta.example', '{BETA_KEY}', 1, 30, 30.0, 0, 'p', '2025-09-29',
           0, {t0}, {t0}, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, 0, '[]'),
          (9, 'deleted', 'http://gone.example', 'sk-gone', 1, 30, 30.0, 0, 'p', '2025-09-29',
           0, {t0}, {t0}, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3, 0, '[]');
        INSERT INTO runs (id, target_id, started_at, finished_at, status, total, success, fail, log_file, error) VALUES
          (1, 1, {t0} + 100, {t0} + 110, 'completed', 2, 1, 1, 'data/logs/target_1_20250101_000140.jsonl', NULL),
          (2, 1, {t0} + 200, {t0} + 201, 'error', 0, 0, 0, NULL, 'discovery: 401 for key {ALPHA_KEY}'),
          (3, 1, {t0} + 300, {t0} + 310, 'completed', 2, 0, 2, '/srv/api_monitor/data/logs/target_1_20250101_000300.jsonl', NULL),
          (4, 1, {t0} + 400, NULL, 'running', 0, 0, 0, NULL, NULL),
          (5, 9, {t0} + 100, {t0} + 110, 'completed', 1, 1, 0, NULL, NULL);
        INSERT INTO run_models (id, run_id, target_id, protocol, model, stream, duration, success,
            transport_success, tool_calls_count, tool_calls, content, timestamp, error, status_code, route, endpoint) VALUES
          (1, 1, 1, 'openai', 'gpt-4o', 0, 1.5, 1, 1, 1, '[{{"name":"f"}}]', 'hello', {t0} + 101, NULL, 200, 'chat', 'chat'),
          (2, 1, 1, 'openai', 'o3-mini', 1, 2.0, 0, 1, 0, NULL, 'echo {ALPHA_KEY}', {t0} + 102, 'HTTP 401: bad key {ALPHA_KEY}', 401, 'responses', 'responses'),
          (3, 3, 1, 'openai', 'gpt-4o', 0, 0.5, 0, 0, 0, '[]', '', {t0} + 301, 'timeout', NULL, 'chat', 'chat'),
          (4, 3, 1, 'openai', 'o3-mini', 1, 0.7, 0, 1, 0, '[]', '', {t0} + 302, 'HTTP 500', 500, 'responses', 'responses'),
          (5, 5, 9, 'openai', 'gpt-4o', 0, 0.1, 1, 1, 0, '[]', 'orphan', {t0} + 101, NULL, 200, 'chat', 'chat');
        -- Deleted the Go way: without foreign keys, its runs and rows stay behind.
        DELETE FROM targets WHERE id = 9;
        INSERT INTO app_settings (key, value, updated_at) VALUES
          ('runtime_api_monitor_token', 'go-admin-token-abcdef123456', {t0}),
          ('runtime_api_monitor_visitor_token', 'go-visitor-token-abcdef', {t0}),
          ('visitor_mode_enabled', 'true', {t0}),
          ('proxy_master_token', 'go-master-token-xyz-0001', {t0}),
          ('log_cleanup_enabled', 'false', {t0}),
          ('log_max_size_mb', '123', {t0}),
          ('default_interval_min', '45', {t0}),
          ('some_other_go_setting', 'x', {t0});
        INSERT INTO proxy_keys (id, name, key_hash, key_prefix, allowed_targets, allowed_models,
            description, enabled, created_at, revoked_at, last_used_at, last_used_target_id) VALUES
          (1, 'ci', '{hash1}', 'sk-proxy-one', '[1]', '["alpha/gpt-4o"]', 'for CI', 1, {t0}, NULL, {t0} + 50, 1),
          (2, 'old', '{hash2}', 'sk-proxy-two', '[]', '[]', '', 0, {t0}, {t0} + 60, NULL, NULL);
        "#,
        hash1 = sha256_hex("sk-proxy-one-secret"),
        hash2 = sha256_hex("sk-proxy-two-secret").to_uppercase(),
    );
    write_go_database_with_wal(&dir, &rows);
    assert!(
        std::fs::metadata(dir.join("registry.db-wal"))
            .unwrap()
            .len()
            > 0
    );
    assert!(
        !contains(&std::fs::read(dir.join("registry.db")).unwrap(), ALPHA_KEY),
        "only the WAL holds the rows"
    );
    // A run log in which a relay echoed the key.
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(
        dir.join("logs/target_1_20250101_000140.jsonl"),
        format!(
            "{{\"model\":\"o3-mini\",\"error\":\"HTTP 401: bad key {ALPHA_KEY}\",\"run_id\":1}}\n"
        ),
    )
    .unwrap();

    let mut d = TestDaemon::start_in(&dir, &[KEEP_ROWS]).await;
    let admin = "go-admin-token-abcdef123456";
    let v = get(&d, admin, "/api/targets").await;
    let items = v["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["beta", "alpha"], "in the Go program's order");
    let alpha = &items[1];
    let expected = json!({
        "id": 1, "base_url": "https://alpha.example/v1", "enabled": false, "interval_min": 5,
        "timeout_s": 12.5, "verify_ssl": true, "prompt": "Say hi",
        "anthropic_version": "2023-06-01", "max_models": 7, "created_at": t0,
        "updated_at": t0 + 10.0, "last_run_at": t0 + 300.0, "last_status": "down",
        "last_total": 2, "last_success": 0, "last_fail": 2,
        "last_log_file": "logs/target_1_20250101_000300.jsonl",
        "last_error": "upstream said: invalid key [redacted]",
        "source_url": "https://docs.alpha.example", "sort_order": 2,
        "visitor_channel_actions_enabled": true, "selected_models": ["gpt-4o", "o3-mini"],
    });
    for (field, want) in expected.as_object().unwrap() {
        assert_eq!(&alpha[field], want, "alpha.{field}");
    }
    let (_, _, key) = d
        .send(Method::POST, "/api/targets/1/reveal_key", Some(admin), None)
        .await;
    assert_eq!(key["item"]["api_key"], ALPHA_KEY);

    // The visitor token works, and visitor mode came along.
    let v = get(&d, "go-visitor-token-abcdef", "/api/targets").await;
    assert_eq!(v["permissions"]["role"], "visitor");
    let s = get(&d, admin, "/api/admin/settings").await;
    for (field, want) in [
        ("visitor_mode_enabled", json!(true)),
        ("log_cleanup_enabled", json!(false)),
        ("log_max_size_mb", json!(123)),
        ("default_interval_min", json!(45)),
        ("proxy_master_token_set", json!(true)),
        ("api_monitor_token_visitor_set", json!(true)),
    ] {
        assert_eq!(s["item"][field], want, "setting {field}");
    }

    // Every run, ids kept; the one the Go program left running is interrupted now.
    let runs = get(&d, admin, "/api/targets/1/runs").await;
    let runs = runs["items"].as_array().unwrap();
    let summary: Vec<(i64, &str)> = runs
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            (4, "interrupted"),
            (3, "completed"),
            (2, "error"),
            (1, "completed")
        ]
    );
    assert_eq!(runs[2]["error"], "discovery: 401 for key [redacted]");
    assert_eq!(runs[3]["log_file"], "logs/target_1_20250101_000140.jsonl");
    let logs = get(&d, admin, "/api/targets/1/logs?run_id=1").await;
    let rows = logs["items"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let o3 = rows.iter().find(|r| r["model"] == "o3-mini").unwrap();
    assert_eq!(o3["error"], "HTTP 401: bad key [redacted]");
    assert_eq!(o3["content"], "echo [redacted]");
    assert_eq!(
        (&o3["protocol"], &o3["route"], &o3["endpoint"]),
        (&json!("openai"), &json!("responses"), &json!("responses"))
    );
    assert_eq!(o3["tool_calls"], json!([]), "never null");
    assert_eq!(o3["stream"], true);
    let gpt = rows.iter().find(|r| r["model"] == "gpt-4o").unwrap();
    assert_eq!(gpt["tool_calls"], json!([{"name": "f"}]));
    assert_eq!(gpt["tool_calls_count"], 1);
    let all = get(&d, admin, "/api/targets/1/logs?scope=all").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 4);

    // A new target continues after the deleted one's id, which proxy keys or old log
    // files may still name.
    let body = json!({"name": "gamma", "base_url": "http://gamma.example", "api_key": "sk-gamma-0000000000"});
    let (s, text, v) = d
        .send(Method::POST, "/api/targets", Some(admin), Some(&body))
        .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let id = v["item"]["id"].as_i64().unwrap();
    assert!(id > 9, "new id {id}");
    d.stop().await;

    let conn = rusqlite::Connection::open(dir.join("registry.db")).unwrap();
    let orphans: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM runs WHERE target_id = 9) + \
             (SELECT count(*) FROM run_models WHERE target_id = 9)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        orphans, 0,
        "the deleted target's rows stay behind in the copy only"
    );
    let keys: Vec<(i64, String, String, String, bool, Option<f64>)> = conn
        .prepare("SELECT id, key_hash, allowed_target_ids, allowed_models, enabled, revoked_at FROM proxy_keys ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        keys,
        [
            (
                1,
                sha256_hex("sk-proxy-one-secret"),
                "[1]".into(),
                "[\"alpha/gpt-4o\"]".into(),
                true,
                None
            ),
            (
                2,
                sha256_hex("sk-proxy-two-secret"),
                "[]".into(),
                "[]".into(),
                false,
                Some(t0 + 60.0)
            ),
        ]
    );
    drop(conn);

    // The copy has what was only in the WAL; no key in anything else.
    let copy = rusqlite::Connection::open(dir.join(BACKUP)).unwrap();
    let (targets, journal): (i64, String) = copy
        .query_row(
            "SELECT count(*), (SELECT journal_mode FROM pragma_journal_mode) FROM targets",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((targets, journal.as_str()), (2, "delete"));
    drop(copy);
    assert_eq!(mode(&dir.join(BACKUP)), 0o600);
    // (The admin token is in credentials.toml, 0600, by design, as a generated one is.)
    assert_eq!(
        files_holding(
            &dir,
            &[
                ALPHA_KEY,
                BETA_KEY,
                "go-visitor-token-abcdef",
                "go-master-token-xyz-0001"
            ]
        ),
        Vec::<PathBuf>::new()
    );
}

/// Starts on `dir` expecting a refusal; returns the message.
async fn refused(dir: &Path) -> String {
    let err = start_raw(dir, &[])
        .await
        .err()
        .expect("the start is refused");
    format!("{err:#}")
}

#[tokio::test]
async fn a_go_database_apimon_cannot_take_is_left_byte_for_byte_and_the_start_says_why() {
    const TARGETS: &str = "INSERT INTO targets (name, base_url, api_key, interval_min, \
        created_at, updated_at, sort_order) VALUES \
        ('ok', 'http://a.example', 'sk-broken-fixture-1', 30, 1, 1, 1), \
        ('bad', 'http://b.example', 'sk-broken-fixture-2', 30, 1, 1, 2);";
    // Rows the Go program itself would never have written, and what the refusal says.
    let cases: &[(&str, &str)] = &[
        (
            "UPDATE targets SET interval_min = 0 WHERE id = 2;",
            "target 2 (`bad`): interval_min is 0; the Go program allows 1 to 1440",
        ),
        (
            "UPDATE targets SET selected_models = 'gpt-4o' WHERE id = 2;",
            "target 2: selected_models is not a JSON list of names",
        ),
        (
            "INSERT INTO runs (target_id, started_at, status) VALUES (1, 5, 'paused');",
            "run 1 of target 1: status `paused` is not running, completed or error",
        ),
        (
            "INSERT INTO proxy_keys (name, key_hash, key_prefix, created_at) \
             VALUES ('k', 'not-a-digest', 'sk-x', 1);",
            "proxy key 1: key_hash is not a SHA-256 hex digest",
        ),
    ];
    for (broken, why) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::write(
            dir.join("logs/target_1_20250101_000000.jsonl"),
            "sk-broken-fixture-1\n",
        )
        .unwrap();
        {
            let conn = rusqlite::Connection::open(dir.join("registry.db")).unwrap();
            conn.execute_batch(&go_schema()).unwrap();
            conn.execute_batch(TARGETS).unwrap();
            conn.execute_batch(broken).unwrap();
        }
        let before = std::fs::read(dir.join("registry.db")).unwrap();
        let msg = refused(&dir).await;
        assert!(
            msg.contains("cannot upgrade the Go api_monitor's database"),
            "{msg}"
        );
        assert!(msg.contains(why), "{why}: {msg}");
        assert!(msg.contains("it is left unchanged"), "{msg}");
        assert_eq!(
            std::fs::read(dir.join("registry.db")).unwrap(),
            before,
            "byte for byte"
        );
        assert!(!dir.join(BACKUP).exists(), "no copy left behind");
        assert!(!dir.join("registry.db.upgrading").exists());

        // Repaired with the Go program's own tools, it upgrades at the next start.
        {
            let conn = rusqlite::Connection::open(dir.join("registry.db")).unwrap();
            conn.execute_batch(
                "UPDATE targets SET interval_min = 10, selected_models = '[]'; \
                 UPDATE runs SET status = 'completed'; \
                 UPDATE proxy_keys SET key_hash = lower(hex(randomblob(32)));",
            )
            .unwrap();
        }
        let mut d = TestDaemon::start_in(&dir, &[("API_MONITOR_TOKEN", ADMIN_TOKEN)]).await;
        let (_, v) = d.admin(Method::GET, "/api/targets", None).await;
        assert_eq!(v["items"][1]["name"], "bad");
        d.stop().await;
        assert_eq!(
            files_holding(&dir, &["sk-broken-fixture-1"]),
            Vec::<PathBuf>::new()
        );
    }

    // A truncated copy of the real Go database.
    let (_tmp, dir) = go_data_dir();
    let whole = std::fs::read(dir.join("registry.db")).unwrap();
    std::fs::write(dir.join("registry.db"), &whole[..whole.len() / 2]).unwrap();
    let before = std::fs::read(dir.join("registry.db")).unwrap();
    let msg = refused(&dir).await;
    assert!(
        msg.contains(
            "registry.db cannot be read as an SQLite database (database disk image is malformed)"
        ),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(dir.join("registry.db")).unwrap(),
        before,
        "byte for byte"
    );
    assert!(!dir.join(BACKUP).exists());
    assert!(!dir.join("registry.db.upgrading").exists());
}

#[tokio::test]
async fn a_database_without_a_schema_version_that_is_not_the_go_programs_is_refused() {
    let cases: &[(&str, &str)] = &[
        (
            "PRAGMA journal_mode = WAL; CREATE TABLE notes (x TEXT); \
             INSERT INTO notes VALUES ('keep me');",
            "notes",
        ),
        // The Go program's table names, but keys that are not in plaintext.
        (
            "CREATE TABLE targets (id INTEGER PRIMARY KEY, api_key_sealed BLOB); \
             CREATE TABLE runs (id INTEGER); CREATE TABLE run_models (id INTEGER); \
             CREATE TABLE app_settings (key TEXT); CREATE TABLE proxy_keys (id INTEGER);",
            "app_settings, proxy_keys, run_models, runs, targets",
        ),
    ];
    for (sql, tables) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir_all(&dir).unwrap();
        rusqlite::Connection::open(dir.join("registry.db"))
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let before = std::fs::read(dir.join("registry.db")).unwrap();
        let msg = refused(&dir).await;
        assert!(
            msg.contains("is neither an apimon database nor one written by the Go api_monitor"),
            "{msg}"
        );
        assert!(msg.contains(&format!("its tables are {tables},")), "{msg}");
        assert!(msg.contains("move it away"), "{msg}");
        assert_eq!(std::fs::read(dir.join("registry.db")).unwrap(), before);
        assert!(!dir.join("secret.key").exists(), "no key made for it");
        for sidecar in ["registry.db-wal", "registry.db-shm"] {
            assert!(!dir.join(sidecar).exists(), "looking left {sidecar} behind");
        }
        assert!(!dir.join(BACKUP).exists());
    }

    // An empty database file is a fresh install.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    drop(rusqlite::Connection::open(dir.join("registry.db")).unwrap());
    let d = TestDaemon::start_in(&dir, STANDARD).await;
    let (s, _) = d.admin(Method::GET, "/api/targets", None).await;
    assert_eq!(s, StatusCode::OK);
}
