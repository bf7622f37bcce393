//! Run logs: one JSONL file per run at `DATA_DIR/logs/target_<id>_<ms>.jsonl`, one
//! object per line with the target and run ids, never a key. The folder is pruned
//! oldest-first beyond `LOG_MAX_SIZE_MB` when cleanup is on, never touching a file
//! still being written.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

pub const LOG_DIR: &str = "logs";

/// The run logs being written now (pruning skips them) and an estimate of the
/// folder's size, so that a full scan of the folder happens only when the cap may
/// have been passed, not after every run.
pub struct ActiveLogs {
    open: Mutex<HashSet<PathBuf>>,
    /// Bytes in the folder as of the last scan plus what runs wrote since; `None`
    /// until the first scan.
    estimate: Mutex<Option<u64>>,
}

impl Default for ActiveLogs {
    fn default() -> Self {
        ActiveLogs {
            open: Mutex::new(HashSet::new()),
            estimate: Mutex::new(None),
        }
    }
}

impl ActiveLogs {
    fn add(&self, p: &Path) {
        self.open.lock().expect("poisoned").insert(p.to_path_buf());
    }

    fn remove(&self, p: &Path, written: u64) {
        self.open.lock().expect("poisoned").remove(p);
        if let Some(e) = self.estimate.lock().expect("poisoned").as_mut() {
            *e += written;
        }
    }

    pub fn snapshot(&self) -> HashSet<PathBuf> {
        self.open.lock().expect("poisoned").clone()
    }

    /// Whether the folder may be over `max_bytes` (or its size is unknown).
    pub fn may_exceed(&self, max_bytes: u64) -> bool {
        self.estimate
            .lock()
            .expect("poisoned")
            .is_none_or(|e| e > max_bytes)
    }

    /// Records the size a scan found; `None` forces the next check to scan.
    pub fn set_estimate(&self, bytes: Option<u64>) {
        *self.estimate.lock().expect("poisoned") = bytes;
    }
}

pub struct RunLog<'a> {
    path: PathBuf,
    /// Relative to the data directory, as stored in `runs.log_file`.
    pub name: String,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    active: &'a ActiveLogs,
    target_id: i64,
    run_id: i64,
    written: u64,
    closed: bool,
    /// The file exists (it was created, whatever happened to later writes).
    created: bool,
}

impl Drop for RunLog<'_> {
    /// A run that ended early (an error) still releases its file for pruning.
    fn drop(&mut self) {
        if !self.closed {
            self.active.remove(&self.path, self.written);
        }
    }
}

impl<'a> RunLog<'a> {
    /// Creates the run's file. A failure to create it is logged and the run goes on
    /// without a file.
    pub async fn create(
        data_dir: &Path,
        active: &'a ActiveLogs,
        target_id: i64,
        run_id: i64,
    ) -> RunLog<'a> {
        let dir = data_dir.join(LOG_DIR);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let name = format!("{LOG_DIR}/target_{target_id}_{stamp}.jsonl");
        let path = data_dir.join(&name);
        active.add(&path);
        let file = async {
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .await
        }
        .await
        .map_err(
            |e| tracing::error!(path = %path.display(), error = %e, "cannot create the run log"),
        )
        .ok()
        .map(|f| tokio::io::BufWriter::with_capacity(64 * 1024, f));
        let created = file.is_some();
        RunLog {
            created,
            path,
            name,
            file,
            active,
            target_id,
            run_id,
            written: 0,
            closed: false,
        }
    }

    /// The name to store in `runs.log_file`: `None` when the file could not be
    /// created, so no run names a file that does not exist.
    pub fn stored_name(&self) -> Option<String> {
        self.created.then(|| self.name.clone())
    }

    /// Appends one row: `kind` plus the fields of `row` (an object).
    pub async fn write(&mut self, kind: &str, row: Value) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let mut obj = serde_json::Map::new();
        obj.insert("kind".into(), kind.into());
        obj.insert("target_id".into(), self.target_id.into());
        obj.insert("run_id".into(), self.run_id.into());
        obj.insert("ts".into(), crate::store::now().into());
        if let Value::Object(fields) = row {
            obj.extend(fields);
        }
        let mut line = serde_json::to_vec(&obj).expect("plain data");
        line.push(b'\n');
        self.written += line.len() as u64;
        if let Err(e) = file.write_all(&line).await {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the run log");
            self.file = None;
        }
    }

    pub async fn close(mut self) {
        if let Some(mut f) = self.file.take() {
            let _ = f.flush().await;
        }
        self.active.remove(&self.path, self.written);
        self.closed = true;
    }
}

/// Deletes the oldest `.jsonl` files until the folder is at most `max_bytes`,
/// skipping `active`. Returns how many files were deleted and the bytes left.
pub fn prune(dir: &Path, max_bytes: u64, active: &HashSet<PathBuf>) -> (usize, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    let mut deleted = 0;
    for (_, size, path) in files {
        if total <= max_bytes {
            break;
        }
        if active.contains(&path) {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= size;
            deleted += 1;
        }
    }
    (deleted, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_removes_oldest_first_and_never_the_active_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for i in 0..5 {
            let p = dir.path().join(format!("target_1_{i}.jsonl"));
            std::fs::write(&p, vec![b'x'; 1000]).unwrap();
            let t =
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(t)
                .unwrap();
            paths.push(p);
        }
        std::fs::write(dir.path().join("notes.txt"), vec![b'x'; 5000]).unwrap();
        // The oldest file is still being written.
        let active: HashSet<PathBuf> = [paths[0].clone()].into();
        assert_eq!(prune(dir.path(), 2500, &active), (3, 2000));
        assert!(paths[0].exists(), "the active file stays");
        assert!(!paths[1].exists() && !paths[2].exists() && !paths[3].exists());
        assert!(paths[4].exists());
        assert!(
            dir.path().join("notes.txt").exists(),
            "only run logs are pruned"
        );
    }
}
