//! Backups of the database: a consistent snapshot taken while the daemon runs, and
//! the offline restore of such a snapshot into a data directory.
//!
//! A snapshot is `VACUUM INTO` on a connection of its own: one read transaction, so
//! it is the database as of one instant while the writer goes on into the WAL. It
//! holds only `registry.db`'s content (never `registry.db.pre-apimon`, the run logs
//! or the secret key); channel keys stay sealed in it, so it is useless without the
//! key, which the restore checks by its fingerprint.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use super::crypto::{KEY_FILE, SecretBox};
use super::{DB_FILE, Result, Store, StoreError, configure, migrations};

/// A snapshot file written by [`Store::snapshot_into`].
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub path: PathBuf,
    pub size: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    pub schema_version: i64,
}

/// What [`restore`] put in place.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The snapshot's schema version, before any migration of this binary.
    pub schema_version: i64,
    pub targets: i64,
    pub runs: i64,
    /// Where the database that was there before went (with its `-wal`), if any.
    pub previous: Option<PathBuf>,
}

fn sha256_of(path: &Path) -> Result<(u64, String)> {
    let mut file = std::fs::File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| StoreError::io(path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

impl Store {
    /// Writes a consistent copy of the database to `dest` (which must not exist),
    /// created 0600, while reads and writes go on.
    pub async fn snapshot_into(&self, dest: PathBuf) -> Result<Snapshot> {
        let source = self.inner.path.clone();
        tokio::task::spawn_blocking(move || {
            // Created private and empty first: VACUUM INTO fills an empty file and
            // keeps its mode.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&dest)
                .map_err(|e| StoreError::io(&dest, e))?;
            let written = (|| {
                let conn = Connection::open_with_flags(
                    &source,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&conn)?;
                let target = dest.to_str().ok_or_else(|| {
                    StoreError::Config(format!("{} is not a UTF-8 path", dest.display()))
                })?;
                conn.execute("VACUUM INTO ?1", [target])?;
                let schema_version: i64 =
                    conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
                let (size, sha256) = sha256_of(&dest)?;
                Ok(Snapshot {
                    path: dest.clone(),
                    size,
                    sha256,
                    schema_version,
                })
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&dest);
            }
            written
        })
        .await
        .map_err(|e| StoreError::Config(format!("the snapshot task failed: {e}")))?
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// Copies `from` to a new private file `to`, synced.
fn copy_private(from: &Path, to: &Path) -> Result<()> {
    let mut src = std::fs::File::open(from).map_err(|e| StoreError::io(from, e))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| StoreError::io(to, e))?;
    std::io::copy(&mut src, &mut dst).map_err(|e| StoreError::io(to, e))?;
    dst.flush()
        .and_then(|_| dst.sync_all())
        .map_err(|e| StoreError::io(to, e))
}

/// Checks a copy of a snapshot and brings it to this binary's schema: an apimon
/// database, intact, not newer than this binary, sealed with `secrets`' key.
fn check_and_migrate(copy: &Path, secrets: &SecretBox) -> Result<(i64, i64, i64)> {
    let mut conn = Connection::open(copy)?;
    configure(&conn)?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if integrity != "ok" {
        return Err(StoreError::Corrupt(format!(
            "the snapshot fails SQLite's integrity check: {integrity}"
        )));
    }
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        return Err(StoreError::Config(
            "the file is not an apimon backup (its database has no apimon schema version)".into(),
        ));
    }
    if version > migrations::LATEST {
        return Err(StoreError::Config(format!(
            "the backup's schema is version {version}, newer than this apimond understands ({}); \
             restore it with the apimond that took it, or a newer one",
            migrations::LATEST
        )));
    }
    super::check_fingerprint(&conn, secrets)?;
    migrations::migrate(&mut conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let targets = conn.query_row("SELECT COUNT(*) FROM targets", [], |r| r.get(0))?;
    let runs = conn.query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok((version, targets, runs))
}

/// Puts the snapshot `file` in place as `data_dir`'s database. The caller holds the
/// data directory's lock (no daemon runs on it). The snapshot is checked on a copy
/// first, so a refused one changes nothing; the database that was there is kept
/// beside as `registry.db.before-restore-<unix seconds>`.
pub fn restore(data_dir: &Path, file: &Path, given_key: Option<&str>) -> Result<Restored> {
    if given_key.is_none() && !data_dir.join(KEY_FILE).exists() {
        return Err(StoreError::Config(format!(
            "{} is missing: put the secret.key kept with the backup there (mode 0600) or set \
             APIMON_SECRET_KEY, then restore again",
            data_dir.join(KEY_FILE).display()
        )));
    }
    let secrets = SecretBox::load_or_create(data_dir, given_key, true)?;
    let db = data_dir.join(DB_FILE);
    let staging = data_dir.join("registry.db.restoring");
    for stale in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(with_suffix(&staging, stale));
    }
    copy_private(file, &staging)?;
    let checked = check_and_migrate(&staging, &secrets);
    let (schema_version, targets, runs) = match checked {
        Ok(c) => c,
        Err(e) => {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(with_suffix(&staging, suffix));
            }
            return Err(e);
        }
    };
    let previous = if db.exists() {
        let aside = data_dir.join(format!(
            "{DB_FILE}.before-restore-{}",
            super::now().floor() as i64
        ));
        // The WAL goes with its database (SQLite finds it by name); the shared-memory
        // file is rebuilt from it.
        std::fs::rename(&db, &aside).map_err(|e| StoreError::io(&db, e))?;
        let wal = with_suffix(&db, "-wal");
        if wal.exists() {
            std::fs::rename(&wal, with_suffix(&aside, "-wal"))
                .map_err(|e| StoreError::io(&wal, e))?;
        }
        let _ = std::fs::remove_file(with_suffix(&db, "-shm"));
        Some(aside)
    } else {
        None
    };
    let _ = std::fs::remove_file(with_suffix(&staging, "-shm"));
    let _ = std::fs::remove_file(with_suffix(&staging, "-wal"));
    std::fs::rename(&staging, &db).map_err(|e| StoreError::io(&db, e))?;
    fsync_dir(data_dir)?;
    Ok(Restored {
        schema_version,
        targets,
        runs,
        previous,
    })
}
