//! Whether the store can do its job: writes reach the disk (a full disk or a
//! read-only data directory is told apart from damaged data, and said plainly), and
//! the writer thread is not stuck on one batch. Read by `/api/health`, `apimonctl
//! status` and the systemd watchdog.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::ErrorCode;

use super::StoreError;

/// A batch taking longer than this means the writer is stuck.
pub const WRITER_STUCK: Duration = Duration::from_secs(30);

/// What a failed write says about the disk, if it was the disk: `None` for any other
/// failure.
pub fn unwritable_reason(e: &StoreError) -> Option<String> {
    let StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) = e else {
        return match e {
            StoreError::Unwritable(why) => Some(why.clone()),
            _ => None,
        };
    };
    match f.code {
        ErrorCode::DiskFull => Some(
            "the disk holding DATA_DIR is full: free some space (apimond resumes writing by itself)"
                .into(),
        ),
        ErrorCode::ReadOnly => Some(
            "the database in DATA_DIR is read-only: make DATA_DIR writable for apimond's user (apimond resumes writing by itself)"
                .into(),
        ),
        ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => Some(
            "cannot write to DATA_DIR (disk I/O error: is its file system read-only, full or failing?)"
                .into(),
        ),
        _ => None,
    }
}

/// Whether writes reach the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writability {
    Writable,
    /// Since the last failed write, with its reason.
    Unwritable(String),
}

/// Shared by the store handle and its writer thread.
pub struct StoreHealth {
    epoch: Instant,
    /// Milliseconds after `epoch` + 1 when the writer started the batch it is on; 0
    /// when it waits for work.
    busy_since_ms: AtomicU64,
    writability: Mutex<Writability>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        StoreHealth {
            epoch: Instant::now(),
            busy_since_ms: AtomicU64::new(0),
            writability: Mutex::new(Writability::Writable),
        }
    }
}

/// Marks the writer idle again when dropped.
pub(super) struct Busy<'a>(&'a StoreHealth);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy_since_ms.store(0, Ordering::Relaxed);
    }
}

impl StoreHealth {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    pub(super) fn busy(&self) -> Busy<'_> {
        self.busy_since_ms.store(self.now_ms(), Ordering::Relaxed);
        Busy(self)
    }

    /// A batch committed: the disk takes writes.
    pub(super) fn wrote(&self) {
        let mut w = self.writability.lock().expect("poisoned");
        if *w != Writability::Writable {
            tracing::info!("DATA_DIR takes writes again");
            *w = Writability::Writable;
        }
    }

    pub(super) fn cannot_write(&self, why: &str) {
        let mut w = self.writability.lock().expect("poisoned");
        if *w == Writability::Writable {
            tracing::error!(
                reason = why,
                "writes to DATA_DIR fail; the stored data is intact"
            );
        }
        *w = Writability::Unwritable(why.to_string());
    }

    /// Classifies a failed write, remembering a disk problem.
    pub(super) fn noticed(&self, e: StoreError) -> StoreError {
        let e = e.classified();
        if let StoreError::Unwritable(why) = &e {
            self.cannot_write(why);
        }
        e
    }

    pub fn writability(&self) -> Writability {
        self.writability.lock().expect("poisoned").clone()
    }

    /// How long the writer has been on its current batch (zero when idle).
    pub fn writer_busy_for(&self) -> Duration {
        match self.busy_since_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.now_ms().saturating_sub(since)),
        }
    }

    /// The writer thread is alive and moving.
    pub fn writer_alive(&self) -> bool {
        self.writer_busy_for() < WRITER_STUCK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn full_read_only_and_io_failures_are_told_apart_from_damage() {
        let full = unwritable_reason(&sqlite(rusqlite::ffi::SQLITE_FULL)).unwrap();
        assert!(full.contains("full"), "{full}");
        let ro = unwritable_reason(&sqlite(rusqlite::ffi::SQLITE_READONLY)).unwrap();
        assert!(ro.contains("read-only"), "{ro}");
        let io = unwritable_reason(&sqlite(rusqlite::ffi::SQLITE_IOERR_WRITE)).unwrap();
        assert!(io.contains("I/O"), "{io}");
        assert!(unwritable_reason(&sqlite(rusqlite::ffi::SQLITE_CORRUPT)).is_none());
        assert!(unwritable_reason(&StoreError::NotFound).is_none());
    }
}
