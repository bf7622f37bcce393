//! The SQLite store: the only place with SQL. One writer thread fed by a bounded
//! channel owns the write connection; reads run on their own connections on the
//! blocking pool. Nothing here runs SQLite on an async worker thread.
//!
//! The interface is typed records in, typed records out, so another backend can be
//! added behind it without touching callers. One module per table family:
//!
//! - `targets`, `settings`, `crypto`: the channels, admin settings and sealed secrets;
//! - `runs`: what runs found (run rows and their probe rows), read back;
//! - `probe_runs`: how a run is written, from opening to closing;
//! - `history`: each model's latest result and its short history;
//! - `rollups`: hourly and daily aggregates for long windows;
//! - `discovered_models`, `schedule`: what discovery found, when each target is due;
//! - `retention`: what is pruned and when;
//! - `proxy_keys`, `proxy_usage`, `usage_reads`: the proxy's keys, and what it served
//!   with rollups, read back;
//! - `migrations`: the schema;
//! - `backup`: online snapshots and their offline restore;
//! - `go_upgrade`: a data directory of the Go `api_monitor` upgraded in place.

pub mod backup;
pub mod crypto;
pub mod discovered_models;
pub mod go_upgrade;
pub mod health;
pub mod history;
pub mod log_reads;
pub mod migrations;
pub mod probe_runs;
pub mod proxy_keys;
pub mod proxy_usage;
pub mod retention;
pub mod rollups;
pub mod runs;
pub mod schedule;
pub mod settings;
pub mod targets;
pub mod usage_reads;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

pub use crypto::SecretBox;
pub use health::{StoreHealth, Writability};

pub const DB_FILE: &str = "registry.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// The disk is full or the data directory cannot be written: nothing is wrong with
    /// the data, and writes work again once the cause is gone.
    #[error("{0}")]
    Unwritable(String),
    #[error("not found")]
    NotFound,
    #[error("no target with id {0}")]
    UnknownTarget(i64),
    #[error("{0}")]
    Conflict(String),
    #[error("the store has shut down")]
    Closed,
}

impl StoreError {
    /// The same error, for a second caller (a batch's commit failure reaches every
    /// write in it).
    fn replay(&self) -> StoreError {
        match self {
            StoreError::Unwritable(why) => StoreError::Unwritable(why.clone()),
            other => {
                StoreError::Corrupt(format!("the batch transaction failed to commit: {other}"))
            }
        }
    }

    /// A full disk or an unwritable data directory told apart from other failures.
    pub fn classified(self) -> StoreError {
        match health::unwritable_reason(&self) {
            Some(why) => StoreError::Unwritable(why),
            None => self,
        }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Work for the writer thread. Writes run in a savepoint of a shared transaction
/// (group commit: whatever queued up while the last batch was written commits
/// together) and learn their result only once the batch committed.
enum Job {
    Write(WriteJob),
    /// Copy the WAL into the database and truncate it; runs outside any transaction.
    Checkpoint(oneshot::Sender<Result<()>>),
}

/// Reports a write's result once its batch committed (`Ok`) or failed (why).
type Finisher = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// A write: runs inside the batch's transaction, returns how to report its result.
type WriteJob = Box<dyn FnOnce(&mut rusqlite::Transaction<'_>, &SecretBox) -> Finisher + Send>;

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    health: Arc<StoreHealth>,
    writer: mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
    secrets: SecretBox,
}

/// Bounded queue of pending writes: enough for bursts, small enough that a stuck
/// writer is noticed as back-pressure rather than memory growth.
const WRITE_QUEUE: usize = 1024;

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) `DATA_DIR/registry.db`, runs the migrations, checks
    /// the secret key's fingerprint and starts the writer thread.
    pub fn open(data_dir: &Path, secrets: SecretBox) -> Result<Store> {
        let path = data_dir.join(DB_FILE);
        // Create the file private before SQLite does; its WAL and shared-memory files
        // inherit these permissions.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| StoreError::io(&path, e))?;
        }
        let mut conn = Connection::open(&path)?;
        configure(&conn)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Config(format!(
                "{} cannot use WAL mode (got {mode}); is the data directory on a network filesystem?",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The writer revisits the same pages (latest results, index tails) all the
        // time: a larger cache saves re-reading them. Keep the WAL from staying large
        // after a checkpoint.
        conn.pragma_update(None, "cache_size", -16_000)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        // Each write job runs in a savepoint, whose journal holds the original of every
        // page the job changes. Past 64 KiB SQLite spills it to a temporary file: a usage
        // batch then wrote each page twice more (4-byte headers and 4 KiB pages), 1.1 KB
        // per proxied request. In memory it is a page copy, dropped with the savepoint.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        migrations::migrate(&mut conn)?;
        check_fingerprint(&conn, &secrets)?;
        let sealed = targets::seal_plaintext_headers(&conn, &secrets)?;
        if sealed > 0 {
            // Push the plaintext out of the WAL too (secure_delete cleared the pages).
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            tracing::info!(
                targets = sealed,
                "sealed extra header values stored in plaintext"
            );
        }

        let (tx, rx) = mpsc::channel::<Job>(WRITE_QUEUE);
        let writer_secrets = SecretBox::from_key_of(&secrets);
        let health = Arc::new(StoreHealth::default());
        let writer_health = health.clone();
        std::thread::Builder::new()
            .name("apimon-store-writer".into())
            .spawn(move || writer_loop(conn, rx, writer_secrets, &writer_health))
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                health,
                writer: tx,
                readers: Mutex::new(Vec::new()),
                secrets,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether writes reach the disk and whether the writer thread is moving.
    pub fn health(&self) -> &StoreHealth {
        &self.inner.health
    }

    /// The writer thread is running and not stuck on one batch.
    pub fn writer_alive(&self) -> bool {
        !self.inner.writer.is_closed() && self.inner.health.writer_alive()
    }

    /// Writes once to find out whether the disk takes writes again; what the daemon
    /// calls while the store is unwritable, so it recovers without traffic.
    pub async fn check_writable(&self) -> Result<()> {
        self.write(|c, _| {
            c.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('last_write_check', ?1)",
                [now().to_string()],
            )?;
            Ok(())
        })
        .await
    }

    /// Runs `f` on the writer thread, all or nothing: in a savepoint of the batch's
    /// transaction. Returns once the batch committed.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &SecretBox) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let health = self.inner.health.clone();
        let job = Job::Write(Box::new(move |txn, secrets| {
            let outcome = match txn.savepoint() {
                Err(e) => Err(StoreError::from(e)),
                Ok(mut sp) => match f(&sp, secrets) {
                    Ok(v) => sp.commit().map(|_| v).map_err(StoreError::from),
                    Err(e) => {
                        let _ = sp.rollback();
                        Err(e)
                    }
                },
            };
            let outcome = outcome.map_err(|e| health.noticed(e));
            Box::new(move |committed| {
                let _ = tx.send(match (outcome, committed) {
                    (Ok(_), Err(why)) => Err(why.replay()),
                    (other, _) => other,
                });
            })
        }));
        self.inner
            .writer
            .send(job)
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues `f` for the writer thread and returns once it is queued, without waiting
    /// for the commit; a failure is logged. Writes keep their order, so a later
    /// awaited write commits after it.
    async fn write_detached<F>(&self, what: &'static str, f: F) -> Result<()>
    where
        F: FnOnce(&Connection, &SecretBox) -> Result<()> + Send + 'static,
    {
        let health = self.inner.health.clone();
        let job = Job::Write(Box::new(move |txn, secrets| {
            let outcome = match txn.savepoint() {
                Err(e) => Err(StoreError::from(e)),
                Ok(mut sp) => match f(&sp, secrets) {
                    Ok(()) => sp.commit().map_err(StoreError::from),
                    Err(e) => {
                        let _ = sp.rollback();
                        Err(e)
                    }
                },
            };
            let outcome = outcome.map_err(|e| health.noticed(e));
            Box::new(move |committed| match (outcome, committed) {
                (Err(e), _) => tracing::error!(error = %e, what, "write failed"),
                (Ok(()), Err(why)) => {
                    tracing::error!(error = %why, what, "write lost: its batch failed to commit")
                }
                (Ok(()), Ok(())) => {}
            })
        }));
        self.inner
            .writer
            .send(job)
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Runs `f` on a read connection on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &SecretBox) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().expect("reader pool poisoned").pop();
            let conn = match pooled {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &inner.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    configure(&c)?;
                    c
                }
            };
            let out = f(&conn, &inner.secrets);
            let mut pool = inner.readers.lock().expect("reader pool poisoned");
            if pool.len() < 8 {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Copies the WAL back into the database file and truncates it, so deleted or
    /// replaced secrets do not linger in the WAL.
    pub async fn checkpoint(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .writer
            .send(Job::Checkpoint(tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Sizes of the database file and its WAL and shared-memory files, in bytes.
    pub fn disk_usage(&self) -> u64 {
        let base = self.inner.path.as_os_str().to_owned();
        ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| {
                let mut p = base.clone();
                p.push(suffix);
                std::fs::metadata(PathBuf::from(p))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// The writer thread: takes whatever writes are queued (up to [`MAX_BATCH`]), runs
/// them in one transaction, commits, then tells each its result.
fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    secrets: SecretBox,
    health: &StoreHealth,
) {
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(j) => j,
            None => match rx.blocking_recv() {
                Some(j) => j,
                None => break,
            },
        };
        let _busy = health.busy();
        let first = match first {
            Job::Checkpoint(reply) => {
                let r = conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .map_err(StoreError::from);
                let _ = reply.send(r);
                continue;
            }
            Job::Write(w) => w,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Job::Write(w)) => batch.push(w),
                Ok(checkpoint) => {
                    // Runs after this batch commits.
                    next = Some(checkpoint);
                    break;
                }
                Err(_) => break,
            }
        }
        let mut txn = match conn.transaction() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot begin a write transaction");
                continue;
            }
        };
        let finishers: Vec<Finisher> = batch.into_iter().map(|w| w(&mut txn, &secrets)).collect();
        let committed = txn.commit().map_err(|e| StoreError::from(e).classified());
        match &committed {
            Ok(()) => health.wrote(),
            Err(StoreError::Unwritable(why)) => health.cannot_write(why),
            Err(e) => tracing::error!(error = %e, "a write batch failed to commit"),
        }
        for f in finishers {
            f(committed.as_ref().map(|_| ()));
        }
    }
    // Leave no WAL behind on a clean shutdown.
    let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
}

const FINGERPRINT_KEY: &str = "secret_key_fingerprint";

fn check_fingerprint(conn: &Connection, secrets: &SecretBox) -> Result<()> {
    let stored: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [FINGERPRINT_KEY],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    match stored {
        Some(fp) if fp == secrets.fingerprint() => Ok(()),
        Some(fp) => Err(StoreError::Config(format!(
            "the secret key (fingerprint {}) is not the one this database was encrypted with \
             (fingerprint {fp}); set APIMON_SECRET_KEY to the original key or restore secret.key",
            secrets.fingerprint()
        ))),
        None => {
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)",
                [FINGERPRINT_KEY, secrets.fingerprint()],
            )?;
            Ok(())
        }
    }
}

/// Current time as Unix seconds, the API's timestamp form.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn optional<T>(r: rusqlite::Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
