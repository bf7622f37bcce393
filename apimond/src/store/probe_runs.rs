//! How a run is written: opened in state `running`, its probes recorded as they come
//! (one `run_models` row each, plus the model's latest result and history), and
//! closed as completed, failed or interrupted.

use rusqlite::params;
use shared::probe::{ProbeResult, TargetStatus};

use super::runs::{RunRecord, RunStatus};
use super::{Result, Store, history, now};

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunFinish {
    /// `completed` or `error` for `finish_run`; `interrupted` goes to `interrupt_run`.
    pub status: RunStatus,
    /// The target status the run found.
    pub result: TargetStatus,
    pub total: i64,
    pub success: i64,
    pub fail: i64,
    pub error: Option<String>,
    pub log_file: Option<String>,
}

impl Store {
    /// Opens a run in state `running`.
    pub async fn start_run(&self, target_id: i64, trigger: &'static str) -> Result<RunRecord> {
        self.write(move |txn, _| {
            let ts = now();
            txn.execute(
                "INSERT INTO runs (target_id, started_at, status, trigger) VALUES (?1, ?2, ?3, ?4)",
                params![target_id, ts, RunStatus::Running, trigger],
            )?;
            Ok(RunRecord {
                id: txn.last_insert_rowid(),
                target_id,
                started_at: ts,
                finished_at: None,
                status: RunStatus::Running,
                total: 0,
                success: 0,
                fail: 0,
                log_file: None,
                error: None,
                trigger: trigger.to_string(),
                result: None,
            })
        })
        .await
    }

    /// Stores probes: each one's row and the model's latest result and history (the
    /// rollups fold the rows in later, see `roll_up`). Returns once queued: runs write
    /// as they go, and the run's closing write, awaited, commits after these.
    pub async fn record_probes(
        &self,
        run_id: i64,
        target_id: i64,
        results: Vec<ProbeResult>,
    ) -> Result<()> {
        self.write_detached("probe results", move |txn, _| {
            for r in &results {
                record_one(txn, run_id, target_id, r)?;
            }
            Ok(())
        })
        .await
    }

    /// Stores probes and waits for the commit.
    pub async fn record_probes_now(
        &self,
        run_id: i64,
        target_id: i64,
        results: Vec<ProbeResult>,
    ) -> Result<()> {
        self.write(move |txn, _| {
            for r in &results {
                record_one(txn, run_id, target_id, r)?;
            }
            Ok(())
        })
        .await
    }

    /// Closes a run and copies its outcome onto the target's `last_*` fields.
    pub async fn finish_run(&self, run_id: i64, target_id: i64, f: RunFinish) -> Result<()> {
        self.write(move |txn, _| {
            let ts = now();
            txn.execute(
                "UPDATE runs SET finished_at = ?2, status = ?3, result = ?4, total = ?5, success = ?6, \
                 fail = ?7, error = ?8, log_file = ?9 WHERE id = ?1",
                params![run_id, ts, f.status, f.result.as_str(), f.total, f.success, f.fail, f.error, f.log_file],
            )?;
            txn.execute(
                "UPDATE targets SET last_run_at = ?2, last_status = ?3, last_total = ?4, \
                 last_success = ?5, last_fail = ?6, last_error = ?7, last_log_file = ?8 WHERE id = ?1",
                params![target_id, ts, f.result.as_str(), f.total, f.success, f.fail, f.error, f.log_file],
            )?;
            Ok(())
        })
        .await
    }

    /// Closes the target's runs still marked running as errors; returns their ids.
    pub async fn fail_running_runs(&self, target_id: i64, error: &str) -> Result<Vec<i64>> {
        let error = error.to_string();
        self.write(move |txn, _| {
            let mut stmt = txn.prepare(
                "UPDATE runs SET status = ?4, result = ?5, finished_at = ?2, error = ?3 \
                 WHERE target_id = ?1 AND status = ?6 RETURNING id",
            )?;
            let ids = stmt
                .query_map(
                    params![
                        target_id,
                        now(),
                        error,
                        RunStatus::Error,
                        TargetStatus::Error.as_str(),
                        RunStatus::Running
                    ],
                    |r| r.get(0),
                )?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            Ok(ids)
        })
        .await
    }

    /// Closes a run that apimond stopped in the middle of; the target's last result
    /// stays the previous complete one.
    pub async fn interrupt_run(
        &self,
        run_id: i64,
        total: i64,
        success: i64,
        fail: i64,
    ) -> Result<()> {
        self.write(move |txn, _| {
            txn.execute(
                "UPDATE runs SET finished_at = ?2, status = ?6, total = ?3, success = ?4, \
                 fail = ?5, error = 'apimond stopped before the run finished' WHERE id = ?1",
                params![run_id, now(), total, success, fail, RunStatus::Interrupted],
            )?;
            Ok(())
        })
        .await
    }
}

/// One probe's writes. The row names its API as the Go program does (its rows and
/// apimon's share the table); the rule and path that chose it go beside.
fn record_one(
    txn: &rusqlite::Connection,
    run_id: i64,
    target_id: i64,
    r: &ProbeResult,
) -> Result<()> {
    let names = r.protocol.seed_names();
    txn.prepare_cached(
        "INSERT INTO run_models (run_id, target_id, protocol, model, success, duration, \
             status_code, error, content, route, endpoint, timestamp, stream, transport_success, \
             status, error_class, ttfb_ms, ttft_ms, total_ms, output_tokens, tokens_estimated, \
             tokens_per_s, returned_model, model_mismatch, attempts, route_rule, path) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)",
    )?
    .execute(params![
        run_id,
        target_id,
        names.protocol,
        r.model,
        r.success,
        r.total_ms / 1000.0,
        r.status_code,
        r.error,
        r.content,
        names.route,
        names.endpoint,
        r.started_at,
        r.stream,
        r.transport_success,
        r.status.as_str(),
        r.error_class.map(|c| c.as_str()),
        r.ttfb_ms,
        r.ttft_ms,
        r.total_ms,
        r.output_tokens.map(|n| n as i64),
        r.tokens_estimated,
        r.tokens_per_s,
        r.returned_model,
        r.model_mismatch,
        r.attempts,
        r.route_rule,
        r.path,
    ])?;
    history::record_latest(txn, run_id, target_id, r)
}
