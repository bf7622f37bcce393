//! Backups: a snapshot taken over the control socket while runs and writes go on,
//! restored with `apimond --restore` into a fresh data directory and compared row by
//! row; the refusals of a restore (newer schema, live daemon, missing or wrong key);
//! and what a snapshot never holds (the secret key, plaintext keys, the Go program's
//! database copy).

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::*;
use reqwest::{Method, StatusCode};
use rusqlite::Connection;
use serde_json::json;
use shared::client::RpcClient;
use shared::rpc::params::BackupRead;
use shared::rpc::reply::{BackupStarted, SecretKeyLocation};

const BIN: &str = env!("CARGO_BIN_EXE_apimond");

/// Takes a backup over the socket as apimonctl does, into `file`.
async fn take_backup(socket: &Path, file: &Path) -> BackupStarted {
    let mut rpc = RpcClient::connect(&[socket.to_path_buf()]).await.unwrap();
    let started = rpc.backup_start().await.unwrap();
    let mut out = std::fs::File::create(file).unwrap();
    let mut offset = 0;
    let mut chunks = 0;
    loop {
        let chunk = rpc
            .backup_read(BackupRead {
                backup_id: started.backup_id.clone(),
                offset,
            })
            .await
            .unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&chunk.data)
            .unwrap();
        out.write_all(&bytes).unwrap();
        offset += bytes.len() as u64;
        chunks += 1;
        match chunk.next_offset {
            Some(n) => assert_eq!(n, offset),
            None => break,
        }
    }
    assert_eq!(offset, started.size);
    assert!(chunks >= 1);
    started
}

fn restore_with_binary(dir: &Path, file: &Path) -> std::process::Output {
    Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", dir)
        .arg("--restore")
        .arg(file)
        .output()
        .unwrap()
}

fn integrity(path: &Path) -> String {
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn rows(conn: &Connection, sql: &str) -> Vec<Vec<String>> {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                let v: rusqlite::types::Value = r.get(i)?;
                Ok(format!("{v:?}"))
            })
            .collect()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn copy_key(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::copy(from.join("secret.key"), to.join("secret.key")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_write_load_restores_into_a_fresh_data_dir_with_the_same_rows() {
    let relay = fake_upstream(&["gpt-4o-mini", "claude-3-5-haiku", "gemini-2.0-flash"], 40).await;
    let mut d = TestDaemon::start().await;
    let mut probed = Vec::new();
    for i in 0..3 {
        probed.push(
            d.create_on(&format!("relay-{i}"), &relay.base_url(), json!({}))
                .await,
        );
    }
    for id in &probed {
        assert_eq!(d.trigger(*id).await.0, StatusCode::OK);
    }
    d.wait_run(probed[0]).await;

    // Load: new targets through the API and runs started again as soon as they end,
    // until told to stop. Names of the targets whose creation was acknowledged.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let (http, base) = (d.http.clone(), d.base.clone());
        let probed = probed.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("load-{n}");
                let (s, _, _) = send_with(
                    &http,
                    Method::POST,
                    &format!("{base}/api/targets"),
                    Some(ADMIN_TOKEN),
                    Some(&json!({"name": name, "base_url": "http://127.0.0.1:9",
                        "api_key": format!("sk-load-key-{n:08}"), "enabled": false})),
                    &[],
                )
                .await;
                if s == StatusCode::OK {
                    acked.lock().unwrap().push(name);
                }
                for id in &probed {
                    // 409 while it still runs: fine, it is busy writing.
                    let _ = send_with(
                        &http,
                        Method::POST,
                        &format!("{base}/api/targets/{id}/run"),
                        Some(ADMIN_TOKEN),
                        None,
                        &[],
                    )
                    .await;
                }
                n += 1;
            }
        })
    };
    while acked.lock().unwrap().len() < 15 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("apimon.backup");
    let before = acked.lock().unwrap().len();
    let started = take_backup(d.socket_path(), &file).await;
    let after = acked.lock().unwrap().len();
    // Writes go on after the snapshot.
    while acked.lock().unwrap().len() < after + 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    for id in &probed {
        d.wait_run(*id).await;
    }
    d.stop().await;

    assert_eq!(integrity(&file), "ok");
    let bytes = std::fs::read(&file).unwrap();
    let key_hex = std::fs::read_to_string(d.dir.join("secret.key")).unwrap();
    assert!(
        !contains(&bytes, key_hex.trim()),
        "the secret key is never in a backup"
    );
    assert!(!contains(&bytes, UPSTREAM_KEY), "channel keys stay sealed");
    assert!(!contains(&bytes, "sk-load-key-00000001"));
    assert_eq!(started.schema_version, apimond::store::migrations::LATEST);
    assert_eq!(
        started.secret_key,
        SecretKeyLocation::File {
            path: d.dir.join("secret.key").display().to_string()
        }
    );
    let leftovers: Vec<_> = std::fs::read_dir(&d.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".backup-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "a snapshot read to the end is deleted"
    );

    // The snapshot is one instant: every target acknowledged before it started is in
    // it, none acknowledged after it ended.
    let snap = Connection::open(&file).unwrap();
    let loaded: usize = snap
        .query_row(
            "SELECT COUNT(*) FROM targets WHERE name LIKE 'load-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        (before..=after).contains(&loaded),
        "{before} <= {loaded} <= {after}"
    );
    drop(snap);

    // Restore into a fresh data directory with the kept key.
    let fresh = tmp.path().join("restored");
    copy_key(&d.dir, &fresh);
    let out = restore_with_binary(&fresh, &file);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("{} targets", loaded + 3)), "{said}");
    assert_eq!(
        std::fs::metadata(fresh.join("registry.db"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let mut r = TestDaemon::start_in(&fresh, STANDARD).await;
    let (s, v) = r
        .admin(
            Method::POST,
            &format!("/api/targets/{}/reveal_key", probed[0]),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["item"]["api_key"], UPSTREAM_KEY,
        "the kept key opens the restored keys"
    );
    r.stop().await;
    assert_eq!(integrity(&fresh.join("registry.db")), "ok");

    // Row by row: what the restored database holds is what the source held then.
    let src = Connection::open(d.dir.join("registry.db")).unwrap();
    let dst = Connection::open(fresh.join("registry.db")).unwrap();
    let targets = "SELECT id, name, base_url, api_key_sealed, enabled, interval_min, created_at \
                   FROM targets ORDER BY id";
    let dst_targets = rows(&dst, targets);
    let src_targets = rows(&src, targets);
    assert_eq!(dst_targets.len(), loaded + 3);
    assert_eq!(&src_targets[..dst_targets.len()], &dst_targets[..]);
    let finished = "SELECT id, target_id, started_at, finished_at, status, total, success, fail \
                    FROM runs WHERE status NOT IN ('running', 'interrupted') ORDER BY id";
    let dst_runs = rows(&dst, finished);
    assert!(!dst_runs.is_empty());
    let src_runs = rows(&src, finished);
    for run in &dst_runs {
        assert!(src_runs.contains(run), "{run:?} is in the source");
    }
    // Runs in flight at the snapshot are interrupted in the restore, never running.
    let running: i64 = dst
        .query_row(
            "SELECT COUNT(*) FROM runs WHERE status = 'running'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(running, 0);
    let results = "SELECT id, run_id, target_id, protocol, model, success, status_code, error \
                   FROM run_models ORDER BY id";
    let dst_results = rows(&dst, results);
    assert!(!dst_results.is_empty());
    let src_results = rows(&src, results);
    for row in &dst_results {
        assert!(src_results.contains(row), "{row:?} is in the source");
    }
}

/// A data directory with one stopped daemon's database and a backup of it.
async fn stopped_with_backup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut d = TestDaemon::start_in(&dir, STANDARD).await;
    d.create_target("kept", "sk-kept-key-0123456789").await;
    let file = tmp.path().join("apimon.backup");
    take_backup(d.socket_path(), &file).await;
    d.stop().await;
    (tmp, dir, file)
}

#[tokio::test]
async fn a_backup_of_a_newer_schema_is_refused_and_changes_nothing() {
    let (_tmp, dir, file) = stopped_with_backup().await;
    let newer = apimond::store::migrations::LATEST + 1;
    Connection::open(&file)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let db_before = std::fs::read(dir.join("registry.db")).unwrap();
    let out = restore_with_binary(&dir, &file);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "schema is version {newer}, newer than this apimond"
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.join("registry.db")).unwrap(), db_before);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("restor")),
        "nothing left behind: {names:?}"
    );
}

#[tokio::test]
async fn a_restore_is_refused_while_a_daemon_runs_on_the_data_dir() {
    let (_tmp, dir, file) = stopped_with_backup().await;
    let d = TestDaemon::start_in(&dir, STANDARD).await;
    let out = tokio::task::spawn_blocking({
        let (dir, file) = (dir.clone(), file.clone());
        move || restore_with_binary(&dir, &file)
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another apimond is already using DATA_DIR"),
        "{out:?}"
    );
    drop(d);
}

#[tokio::test]
async fn a_restore_needs_the_backups_secret_key() {
    let (tmp, dir, file) = stopped_with_backup().await;
    // No key at all.
    let bare = tmp.path().join("bare");
    let out = restore_with_binary(&bare, &file);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("secret.key is missing"), "{err}");
    assert!(!bare.join("registry.db").exists());
    // Another key.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("secret.key"), format!("{}\n", "ab".repeat(32))).unwrap();
    let out = restore_with_binary(&other, &file);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("not the one this database was encrypted with"),
        "{out:?}"
    );
    assert!(!other.join("registry.db").exists());
    // Over the existing database: it is kept aside.
    let out = restore_with_binary(&dir, &file);
    assert!(out.status.success(), "{out:?}");
    let aside: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // Its WAL, when there is one, goes with it.
        .filter(|n| n.starts_with("registry.db.before-restore-") && !n.ends_with("-wal"))
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the previous database is kept aside: {aside:?}"
    );
}

#[tokio::test]
async fn a_backup_never_holds_the_go_programs_database_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/go-data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture.join("registry.db"), dir.join("registry.db")).unwrap();
    let mut d = TestDaemon::start_in(&dir, STANDARD).await;
    let pre = std::fs::read(dir.join("registry.db.pre-apimon")).unwrap();
    let go_key = "sk-dev-relay-key";
    assert!(
        contains(&pre, go_key),
        "the Go copy holds the key in plain text"
    );
    let file = tmp.path().join("apimon.backup");
    take_backup(d.socket_path(), &file).await;
    d.stop().await;
    let bytes = std::fs::read(&file).unwrap();
    assert!(!contains(&bytes, go_key));
    let snap = Connection::open(&file).unwrap();
    let tables: Vec<String> = rows(
        &snap,
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    assert!(tables.iter().any(|t| t.contains("targets")), "{tables:?}");
    let upgraded: i64 = snap
        .query_row("SELECT COUNT(*) FROM targets", [], |r| r.get(0))
        .unwrap();
    assert!(upgraded > 0, "the upgraded targets are in it");
}
