//! Periodic upkeep, in one room: new probe rows and proxy usage rows folded into the
//! hourly and daily rollups every minute, old rows, runs and rollups pruned every hour by the retention
//! settings, and the run-log folder kept under `LOG_MAX_SIZE_MB`. It depends on the
//! store, the run logs and its configuration only; the service tells it the log
//! policy in force.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::Retention;
use crate::runlog::{self, ActiveLogs};
use crate::store::{self, Store};

/// How often new probe rows are folded into the rollups.
const ROLLUP_EVERY: Duration = Duration::from_secs(60);
/// How often old probe rows, rollups and run logs are pruned.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Rows folded into the rollups per transaction.
const ROLLUP_BATCH: i64 = 20_000;

/// Whether and where the run-log folder is capped (an admin setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPolicy {
    pub cleanup_enabled: bool,
    pub max_bytes: u64,
}

pub struct Upkeep {
    store: Store,
    data_dir: PathBuf,
    retention: Retention,
    log_policy: Mutex<LogPolicy>,
    /// Run logs being written now, and the folder's estimated size.
    pub active_logs: ActiveLogs,
}

impl Upkeep {
    pub fn new(
        store: Store,
        data_dir: PathBuf,
        retention: Retention,
        log_policy: LogPolicy,
    ) -> Upkeep {
        Upkeep {
            store,
            data_dir,
            retention,
            log_policy: Mutex::new(log_policy),
            active_logs: ActiveLogs::default(),
        }
    }

    /// Called by the service whenever the settings change.
    pub fn set_log_policy(&self, policy: LogPolicy) {
        *self.log_policy.lock().expect("poisoned") = policy;
    }

    fn log_policy(&self) -> LogPolicy {
        *self.log_policy.lock().expect("poisoned")
    }

    /// Folds every new probe row and proxy usage row into the rollups.
    pub async fn roll_up_all(&self) {
        loop {
            match self.store.roll_up(ROLLUP_BATCH).await {
                Ok(n) if n as i64 == ROLLUP_BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(error = %e, "rolling up probe rows failed");
                    break;
                }
            }
        }
        loop {
            match self.store.roll_up_usage(ROLLUP_BATCH).await {
                Ok(n) if n as i64 == ROLLUP_BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(error = %e, "rolling up proxy usage failed");
                    break;
                }
            }
        }
    }

    /// Deletes probe rows, runs, proxy usage rows and rollups older than their
    /// retention window.
    pub async fn prune_old_data(&self) {
        let t = store::now();
        let day = 86_400.0;
        let r = self.retention;
        match self
            .store
            .prune(
                t - r.raw_days as f64 * day,
                t - r.hourly_days as f64 * day,
                t - r.daily_days as f64 * day,
            )
            .await
        {
            Ok((rows, runs, rollups)) if rows + runs + rollups > 0 => {
                tracing::info!(rows, runs, rollups, "pruned old probe data");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "pruning old probe data failed"),
        }
        let raw = t - r.raw_days as f64 * day;
        match self
            .store
            .prune_usage(
                raw,
                t - r.hourly_days as f64 * day,
                t - r.daily_days as f64 * day,
            )
            .await
        {
            Ok((rows, rollups)) if rows + rollups > 0 => {
                tracing::info!(rows, rollups, "pruned old proxy usage");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "pruning old proxy usage failed"),
        }
    }

    /// Keeps the log folder under the cap when cleanup is on. The folder is only
    /// scanned when the running estimate of its size says it may be over the cap (or
    /// after `forget_size`, which the hourly pass uses to correct drift).
    pub async fn prune_logs(&self, forget_size: bool) {
        if forget_size {
            self.active_logs.set_estimate(None);
        }
        let policy = self.log_policy();
        if !policy.cleanup_enabled || !self.active_logs.may_exceed(policy.max_bytes) {
            return;
        }
        let dir = self.data_dir.join(runlog::LOG_DIR);
        let active = self.active_logs.snapshot();
        let max = policy.max_bytes;
        let (deleted, left) =
            tokio::task::spawn_blocking(move || runlog::prune(&dir, max, &active))
                .await
                .unwrap_or((0, 0));
        self.active_logs.set_estimate(Some(left));
        if deleted > 0 {
            tracing::info!(files = deleted, "pruned old run logs");
        }
    }

    /// Rolls up every minute and prunes every hour until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut last_prune: Option<Instant> = None;
        loop {
            self.roll_up_all().await;
            if last_prune.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
                last_prune = Some(Instant::now());
                self.prune_old_data().await;
                self.prune_logs(true).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(ROLLUP_EVERY) => {}
                _ = stop.cancelled() => break,
            }
        }
    }
}
