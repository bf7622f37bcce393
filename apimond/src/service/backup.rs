//! Online backups for `apimonctl backup`: a snapshot of the database is taken into
//! the data directory (the only place the hardened unit may write), then read by the
//! client in chunks that fit a control-socket line, and deleted once read or left
//! idle. The secret key is never sent: the reply says where it is kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use shared::rpc::reply::{BackupChunk, BackupStarted, SecretKeyLocation};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{Caller, Core, ServiceError, ServiceResult};
use crate::store::crypto::KEY_FILE;

/// Bytes per `backup.read` chunk: about 700 KB of base64 on the line.
pub const CHUNK_BYTES: usize = 512 * 1024;
/// Snapshots held at once: each is a copy of the database on the same disk.
const MAX_HELD: usize = 2;
/// A snapshot nobody read for this long is deleted.
const IDLE: Duration = Duration::from_secs(600);
/// Snapshot files are `DATA_DIR/.backup-<id>.snapshot`.
const PREFIX: &str = ".backup-";
const SUFFIX: &str = ".snapshot";

struct Held {
    path: PathBuf,
    size: u64,
    last_read: Instant,
}

/// The snapshots waiting to be read.
pub struct Backups {
    data_dir: PathBuf,
    held: Mutex<HashMap<String, Held>>,
}

impl Backups {
    /// Removes snapshot files a previous daemon left behind (it stopped mid-backup).
    pub fn new(data_dir: &Path) -> Backups {
        if let Ok(entries) = std::fs::read_dir(data_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(PREFIX) && name.ends_with(SUFFIX) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Backups {
            data_dir: data_dir.to_path_buf(),
            held: Mutex::new(HashMap::new()),
        }
    }

    fn expire_idle(&self) {
        let mut held = self.held.lock().expect("backups poisoned");
        held.retain(|_, h| {
            let keep = h.last_read.elapsed() < IDLE;
            if !keep {
                let _ = std::fs::remove_file(&h.path);
            }
            keep
        });
    }

    fn forget(&self, id: &str) {
        if let Some(h) = self.held.lock().expect("backups poisoned").remove(id) {
            let _ = std::fs::remove_file(&h.path);
        }
    }
}

impl Drop for Backups {
    fn drop(&mut self) {
        for h in self.held.get_mut().expect("backups poisoned").values() {
            let _ = std::fs::remove_file(&h.path);
        }
    }
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!(
        "no backup {id} waiting: it was read to the end, left idle over {} minutes, or \
         apimond restarted; start again",
        IDLE.as_secs() / 60
    ))
}

impl Core {
    /// Takes a snapshot and holds it for [`Core::backup_read`]. Admin only.
    pub async fn backup_start(&self, caller: &Caller) -> ServiceResult<BackupStarted> {
        caller.require_admin()?;
        let backups = &self.backups;
        backups.expire_idle();
        if backups.held.lock().expect("backups poisoned").len() >= MAX_HELD {
            return Err(ServiceError::Conflict(format!(
                "{MAX_HELD} backups are already being read; wait for them to finish"
            )));
        }
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let id = hex::encode(raw);
        let path = backups.data_dir.join(format!("{PREFIX}{id}{SUFFIX}"));
        let taken_at = crate::store::now();
        let snapshot = self.store.snapshot_into(path).await.map_err(|e| {
            tracing::error!(error = %e, "backup snapshot failed");
            ServiceError::Internal(format!("cannot take the snapshot: {e}"))
        })?;
        backups.held.lock().expect("backups poisoned").insert(
            id.clone(),
            Held {
                path: snapshot.path,
                size: snapshot.size,
                last_read: Instant::now(),
            },
        );
        tracing::info!(backup = %id, bytes = snapshot.size, "backup snapshot taken");
        let secret_key = if self.config.secret_key.is_some() {
            SecretKeyLocation::Environment {
                variable: "APIMON_SECRET_KEY".into(),
            }
        } else {
            SecretKeyLocation::File {
                path: self
                    .config
                    .paths
                    .data_dir
                    .join(KEY_FILE)
                    .display()
                    .to_string(),
            }
        };
        Ok(BackupStarted {
            backup_id: id,
            size: snapshot.size,
            sha256: snapshot.sha256,
            schema_version: snapshot.schema_version,
            taken_at,
            secret_key,
        })
    }

    /// The bytes of a held snapshot from `offset`; after the last chunk the snapshot
    /// is deleted. Admin only.
    pub async fn backup_read(
        &self,
        caller: &Caller,
        id: &str,
        offset: u64,
    ) -> ServiceResult<BackupChunk> {
        caller.require_admin()?;
        let backups = &self.backups;
        backups.expire_idle();
        let (path, size) = {
            let mut held = backups.held.lock().expect("backups poisoned");
            let h = held.get_mut(id).ok_or_else(|| not_found(id))?;
            h.last_read = Instant::now();
            (h.path.clone(), h.size)
        };
        if offset > size {
            return Err(ServiceError::BadRequest(format!(
                "offset: {offset} is past the end of the backup ({size} bytes)"
            )));
        }
        let len = (size - offset).min(CHUNK_BYTES as u64) as usize;
        let mut buf = vec![0u8; len];
        let read = async {
            let mut file = tokio::fs::File::open(&path).await?;
            file.seek(std::io::SeekFrom::Start(offset)).await?;
            file.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(())
        };
        if let Err(e) = read.await {
            backups.forget(id);
            tracing::error!(error = %e, backup = %id, "cannot read the backup snapshot");
            return Err(ServiceError::Internal(format!(
                "cannot read the snapshot: {e}"
            )));
        }
        let end = offset + len as u64;
        let next_offset = (end < size).then_some(end);
        if next_offset.is_none() {
            backups.forget(id);
            tracing::info!(backup = %id, "backup read to the end");
        }
        Ok(BackupChunk {
            offset,
            data: base64::engine::general_purpose::STANDARD.encode(&buf),
            next_offset,
        })
    }
}
