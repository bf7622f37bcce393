//! Upgrade in place of a data directory written by the Go `api_monitor`, the program
//! apimon replaces. Its `registry.db` has no `user_version`, tables of its own and
//! channel keys in plaintext. At start, once the data directory's lock is held:
//!
//! 1. [`inspect`] tells the Go program's database from apimon's own and from an empty
//!    one, and refuses anything else;
//! 2. the Go database is copied with SQLite's backup API (a leftover WAL included) to
//!    [`BACKUP_FILE`] (0600), the one file under DATA_DIR allowed to hold plaintext
//!    keys; every start warns about it until it is deleted;
//! 3. a new database is built beside it from that copy, schema and rows in one
//!    transaction (`copy`, `credentials`, checked by `checks`), keys sealed, keys
//!    echoed in stored texts and in the old run logs scrubbed (`logs`);
//! 4. the new file replaces `registry.db` by a rename.
//!
//! The original file is only ever read, so a failure before the rename leaves it byte
//! for byte as it was (the copy and the half-built file are removed) and the start
//! fails saying why. Building a new file rather than rewriting the old one keeps the
//! plaintext out of apimon's database by construction: no freed page, stale WAL frame
//! or VACUUM to reason about.

mod checks;
mod copy;
mod credentials;
mod logs;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{DB_FILE, Result, SecretBox, StoreError};

/// The Go database as it was before the upgrade, with its plaintext keys.
pub const BACKUP_FILE: &str = "registry.db.pre-apimon";
/// The new database while it is built; renamed to `registry.db` when complete.
const BUILD_FILE: &str = "registry.db.upgrading";
/// The Go program's tables; with a plaintext `targets.api_key` they mark its database.
const GO_TABLES: [&str; 5] = [
    "targets",
    "runs",
    "run_models",
    "app_settings",
    "proxy_keys",
];

/// What `registry.db` turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No database yet, or one with nothing in it: a fresh install.
    Nothing,
    /// apimon's own (schema version 1 or later).
    Apimon,
    /// The Go `api_monitor`'s.
    GoProgram,
}

/// Readies DATA_DIR's database for [`super::Store::open`]: tells what is there, loads
/// or creates the secret key, upgrades a Go database, and warns while a pre-upgrade
/// copy is left. `log_dir` is the run-log folder the Go program shared with apimon.
pub fn prepare(data_dir: &Path, log_dir: &Path, given_key: Option<&str>) -> Result<SecretBox> {
    let found = inspect(data_dir)?;
    let secrets = SecretBox::load_or_create(data_dir, given_key, found == Found::Apimon)?;
    if found == Found::GoProgram {
        upgrade(data_dir, log_dir, &secrets)?;
    }
    warn_if_backup_left(data_dir);
    Ok(secrets)
}

/// The WAL and shared-memory files that reading a WAL-mode database creates when they
/// are missing; removed again once the reader is gone (declare this before the
/// connection so it drops after), so that looking at DATA_DIR changes nothing there.
struct Sidecars {
    wal: Option<PathBuf>,
    shm: Option<PathBuf>,
}

impl Sidecars {
    fn missing_beside(db: &Path) -> Sidecars {
        let missing = |suffix| Some(with_suffix(db, suffix)).filter(|p| !p.exists());
        Sidecars {
            wal: missing("-wal"),
            shm: missing("-shm"),
        }
    }
}

impl Drop for Sidecars {
    fn drop(&mut self) {
        if let Some(wal) = &self.wal {
            // A WAL that holds frames is someone else's data, never ours to remove
            // (nor, then, its shared memory).
            if std::fs::metadata(wal).is_ok_and(|m| m.len() > 0) {
                return;
            }
            let _ = std::fs::remove_file(wal);
        }
        if let Some(shm) = &self.shm {
            let _ = std::fs::remove_file(shm);
        }
    }
}

fn open_read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Tells what `DATA_DIR/registry.db` is, reading it only. A database at schema version
/// 0 that is neither empty nor the Go program's is refused: apimon would not know
/// what it is overwriting.
pub fn inspect(data_dir: &Path) -> Result<Found> {
    let path = data_dir.join(DB_FILE);
    if !path.exists() {
        return Ok(Found::Nothing);
    }
    let unreadable = |e: rusqlite::Error| {
        StoreError::Config(format!(
            "{} cannot be read as an SQLite database ({e}); move it away or set DATA_DIR to \
             another directory",
            path.display()
        ))
    };
    let _sidecars = Sidecars::missing_beside(&path);
    let conn = open_read_only(&path).map_err(|e| match e {
        StoreError::Sqlite(e) => unreadable(e),
        e => e,
    })?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(unreadable)?;
    if version > 0 {
        return Ok(Found::Apimon);
    }
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(unreadable)?;
    if objects == 0 {
        return Ok(Found::Nothing);
    }
    let tables = names(
        &conn,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' \
         ORDER BY name",
    )?;
    let go_tables = GO_TABLES.iter().all(|t| tables.iter().any(|n| n == t));
    if go_tables
        && names(&conn, "SELECT name FROM pragma_table_info('targets')")?
            .iter()
            .any(|c| c == "api_key")
    {
        return Ok(Found::GoProgram);
    }
    Err(StoreError::Config(format!(
        "{} is neither an apimon database nor one written by the Go api_monitor: it has no \
         schema version and its tables are {}, where the Go program's are {} with a plaintext \
         targets.api_key; move it away or set DATA_DIR to another directory",
        path.display(),
        if tables.is_empty() {
            "none".to_string()
        } else {
            tables.join(", ")
        },
        GO_TABLES.join(", ")
    )))
}

fn names(conn: &Connection, sql: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Logs, at every start while it exists, where the pre-upgrade copy is and why it
/// should not stay.
pub fn warn_if_backup_left(data_dir: &Path) {
    let path = data_dir.join(BACKUP_FILE);
    if path.exists() {
        tracing::warn!(
            file = %path.display(),
            "this copy of the Go api_monitor's database, kept by the upgrade, holds channel \
             keys in plaintext; delete it once the upgrade is checked"
        );
    }
}

/// Backs up, builds and swaps in the upgraded database; see the module docs.
pub fn upgrade(data_dir: &Path, log_dir: &Path, secrets: &SecretBox) -> Result<()> {
    let db = data_dir.join(DB_FILE);
    let backup = data_dir.join(BACKUP_FILE);
    let build = data_dir.join(BUILD_FILE);
    tracing::info!(database = %db.display(), "found the Go api_monitor's database; upgrading it");
    back_up(&db, &backup)?;
    let built = build_from(&backup, &build, secrets)
        .and_then(|copied| logs::scrub_keys(log_dir, &copied.keys).map(|files| (copied, files)));
    let (copied, scrubbed_logs) = match built {
        Ok(v) => v,
        Err(e) => {
            remove_db_files(&build);
            remove_db_files(&backup);
            // A row the copy refused says which and why on its own.
            let why = match e {
                StoreError::Corrupt(why) => why,
                e => e.to_string(),
            };
            return Err(StoreError::Config(format!(
                "cannot upgrade the Go api_monitor's database {}: {why}; it is left unchanged",
                db.display()
            )));
        }
    };
    swap_in(&build, &db).map_err(|e| {
        StoreError::Config(format!(
            "the upgraded database is complete in {} but cannot replace {} ({e}); the Go \
             database is copied in {}",
            build.display(),
            db.display(),
            backup.display()
        ))
    })?;
    tracing::info!(
        targets = copied.targets,
        runs = copied.runs,
        probe_rows = copied.run_models,
        proxy_keys = copied.proxy_keys,
        settings = copied.settings,
        orphan_runs_dropped = copied.orphan_runs,
        orphan_rows_dropped = copied.orphan_rows,
        run_logs_scrubbed = scrubbed_logs,
        backup = %backup.display(),
        "upgraded the Go api_monitor's database; channel keys are sealed now"
    );
    Ok(())
}

/// Creates `path` empty and private, so SQLite's files for it inherit mode 0600.
fn create_private(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| StoreError::io(path, e))
}

pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Removes a database file and its journal, WAL and shared-memory files, if there.
fn remove_db_files(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(path, suffix));
    }
}

fn sync(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io(path, e))
}

/// Copies the Go database, WAL included, into a self-contained file at `backup`.
fn back_up(db: &Path, backup: &Path) -> Result<()> {
    if backup.exists() {
        return Err(StoreError::Config(format!(
            "{} holds the Go api_monitor's database to upgrade, but {} already exists (an \
             earlier copy); move that file away, keeping it if you may need it, and start again",
            db.display(),
            backup.display()
        )));
    }
    create_private(backup)?;
    let _sidecars = Sidecars::missing_beside(db);
    let copied = (|| -> Result<()> {
        let src = open_read_only(db)?;
        let mut dst = Connection::open(backup)?;
        {
            let job = Backup::new(&src, &mut dst)?;
            let mut waits = 0;
            loop {
                match job.step(-1)? {
                    StepResult::Done => break,
                    StepResult::More => {}
                    // Busy, locked, or a state of a newer rusqlite: wait a little.
                    _ => {
                        waits += 1;
                        if waits > 50 {
                            return Err(StoreError::Config(format!(
                                "{} stays locked by another program; stop the Go api_monitor \
                                 before starting apimond on its data directory",
                                db.display()
                            )));
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        }
        // The copy keeps the Go database's WAL mode; leave it a single file instead.
        dst.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
        dst.close().map_err(|(_, e)| e)?;
        sync(backup)
    })();
    copied.map_err(|e| {
        remove_db_files(backup);
        StoreError::Config(format!(
            "cannot copy {} to {}: {e}; nothing was changed",
            db.display(),
            backup.display()
        ))
    })
}

/// Builds apimon's database at `build` from the Go copy at `backup`.
fn build_from(backup: &Path, build: &Path, secrets: &SecretBox) -> Result<copy::Copied> {
    // A half-built file left by a crash during an earlier attempt.
    remove_db_files(build);
    create_private(build)?;
    let mut conn = Connection::open(build)?;
    super::configure(&conn)?;
    let source = backup
        .to_str()
        .ok_or_else(|| StoreError::Config(format!("{} is not a UTF-8 path", backup.display())))?;
    conn.execute("ATTACH DATABASE ?1 AS go", [source])?;
    let copied = copy::copy_all(&mut conn, secrets)?;
    conn.execute_batch("DETACH DATABASE go")?;
    conn.close().map_err(|(_, e)| e)?;
    sync(build)?;
    Ok(copied)
}

/// Replaces the Go database with the built one.
fn swap_in(build: &Path, db: &Path) -> Result<()> {
    // The Go WAL's content is in the copy; left beside the new file, SQLite would
    // replay its frames onto it.
    for suffix in ["-wal", "-shm"] {
        let p = with_suffix(db, suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&p, e)),
        }
    }
    std::fs::rename(build, db).map_err(|e| StoreError::io(db, e))?;
    if let Some(dir) = db.parent() {
        sync(dir)?;
    }
    Ok(())
}
