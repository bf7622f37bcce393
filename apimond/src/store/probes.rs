//! What runs write: run rows, one `run_models` row per probe, each model's latest
//! result with a short history (what the target list shows), hourly and daily rollups
//! for long windows, the discovered model list, the schedule, and retention.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use shared::probe::{ErrorClass, ModelStatus, ProbeResult};

use super::runs::RunRecord;
use super::{Result, Store, now};
use crate::sketch::Sketch;

/// History points kept per model (the list shows up to this many).
pub const HISTORY_KEEP: usize = 60;

/// A model's latest result, as kept in `model_latest.result`.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestResult {
    pub success: bool,
    pub status: ModelStatus,
    pub stream: bool,
    pub route: String,
    pub endpoint: String,
    pub total_ms: f64,
    pub ttft_ms: Option<f64>,
    pub tokens_per_s: Option<f64>,
    pub status_code: Option<u16>,
    pub error_class: Option<String>,
    pub error: Option<String>,
    pub returned_model: Option<String>,
    pub model_mismatch: bool,
    pub timestamp: f64,
}

/// One history point: `(run_id, unix seconds, 0 fail | 1 ok | 2 slow, total ms,
/// status code, error class)`.
pub type HistoryPoint = (i64, i64, u8, i64, Option<u16>, Option<ErrorClass>);

/// History is stored as a blob of fixed 16-byte points (run id, time, total ms as
/// little-endian u32; status code u16; status u8; error class u8, 0 for none): cheap
/// to append to on every probe and to read the last few of for every model in the
/// target list.
const POINT: usize = 16;

fn encode_point(p: &HistoryPoint, out: &mut Vec<u8>) {
    out.extend_from_slice(&(p.0.clamp(0, u32::MAX as i64) as u32).to_le_bytes());
    out.extend_from_slice(&(p.1.clamp(0, u32::MAX as i64) as u32).to_le_bytes());
    out.extend_from_slice(&(p.3.clamp(0, u32::MAX as i64) as u32).to_le_bytes());
    out.extend_from_slice(&p.4.unwrap_or(0).to_le_bytes());
    out.push(p.2);
    out.push(
        p.5.and_then(|c| ErrorClass::ALL.iter().position(|x| *x == c))
            .map(|i| i as u8 + 1)
            .unwrap_or(0),
    );
}

fn decode_point(b: &[u8]) -> HistoryPoint {
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let status = u16::from_le_bytes([b[12], b[13]]);
    (
        u32_at(0) as i64,
        u32_at(4) as i64,
        b[14],
        u32_at(8) as i64,
        (status != 0).then_some(status),
        b[15]
            .checked_sub(1)
            .and_then(|i| ErrorClass::ALL.get(i as usize).copied()),
    )
}

/// The last `n` points, oldest first.
pub fn parse_history(blob: &[u8], n: usize) -> Vec<HistoryPoint> {
    let count = blob.len() / POINT;
    let start = count.saturating_sub(n);
    (start..count)
        .map(|i| decode_point(&blob[i * POINT..(i + 1) * POINT]))
        .collect()
}

/// Appends a point, keeping at most [`HISTORY_KEEP`].
fn push_history(blob: &[u8], p: &HistoryPoint) -> Vec<u8> {
    let whole = &blob[..blob.len() - blob.len() % POINT];
    let keep_from = (whole.len() / POINT + 1).saturating_sub(HISTORY_KEEP) * POINT;
    let mut out = Vec::with_capacity(whole.len() - keep_from + POINT);
    out.extend_from_slice(&whole[keep_from..]);
    encode_point(p, &mut out);
    out
}

#[derive(Debug, Clone)]
pub struct ModelLatest {
    pub target_id: i64,
    pub model: String,
    pub protocol: String,
    pub run_id: i64,
    pub result: LatestResult,
    /// Oldest first.
    pub history: Vec<HistoryPoint>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunFinish {
    /// `completed` or `error`.
    pub status: &'static str,
    /// The target status the run found (`healthy`, `degraded`, …).
    pub result: &'static str,
    pub total: i64,
    pub success: i64,
    pub fail: i64,
    pub error: Option<String>,
    pub log_file: Option<String>,
}

/// A rollup row read back.
#[derive(Debug, Clone, Serialize)]
pub struct Rollup {
    pub period: String,
    pub bucket_start: f64,
    pub model: String,
    pub count: i64,
    pub success: i64,
    pub slow: i64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p95_ms: Option<f64>,
}

fn bucket_start(ts: f64, period: &str) -> f64 {
    let size = if period == "hour" { 3600.0 } else { 86_400.0 };
    (ts / size).floor() * size
}

impl Store {
    /// Opens a run in state `running`.
    pub async fn start_run(&self, target_id: i64, trigger: &'static str) -> Result<RunRecord> {
        self.write(move |txn, _| {
            let ts = now();
            txn.execute(
                "INSERT INTO runs (target_id, started_at, status, trigger) VALUES (?1, ?2, 'running', ?3)",
                params![target_id, ts, trigger],
            )?;
            Ok(RunRecord {
                id: txn.last_insert_rowid(),
                target_id,
                started_at: ts,
                finished_at: None,
                status: "running".into(),
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

    /// Stores probes: each one's row, the model's latest result and history, and the
    /// hourly and daily rollups. Returns once queued (runs write as they go; the run's
    /// closing write, awaited, commits after these).
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

    /// Folds probe rows not yet counted into the hourly and daily rollups, at most
    /// `max_rows` of them, in one transaction. Rows are counted once each, late ones
    /// too: a watermark on the row id says how far the rollups reach. Returns the rows
    /// folded in.
    pub async fn roll_up(&self, max_rows: i64) -> Result<usize> {
        self.write(move |txn, _| {
            let mark: i64 = txn
                .query_row("SELECT value FROM meta WHERE key = 'rollup_watermark'", [], |r| r.get::<_, String>(0))
                .optional()?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            type Key = (&'static str, i64, i64, String);
            #[derive(Default)]
            struct Agg {
                count: i64,
                success: i64,
                slow: i64,
                latency: Sketch,
                ttft: Sketch,
            }
            let mut aggs: HashMap<Key, Agg> = HashMap::new();
            let mut last = mark;
            let mut rows = 0usize;
            {
                let mut stmt = txn.prepare_cached(
                    "SELECT id, target_id, model, timestamp, success, status, total_ms, ttft_ms \
                     FROM run_models WHERE id > ?1 ORDER BY id LIMIT ?2",
                )?;
                let mut q = stmt.query(params![mark, max_rows])?;
                while let Some(row) = q.next()? {
                    let id: i64 = row.get(0)?;
                    let target_id: i64 = row.get(1)?;
                    let model: String = row.get(2)?;
                    let ts: f64 = row.get(3)?;
                    let success: bool = row.get(4)?;
                    let status: Option<String> = row.get(5)?;
                    let total: Option<f64> = row.get(6)?;
                    let ttft: Option<f64> = row.get(7)?;
                    last = id;
                    rows += 1;
                    for period in ["hour", "day"] {
                        let a = aggs
                            .entry((period, bucket_start(ts, period) as i64, target_id, model.clone()))
                            .or_default();
                        a.count += 1;
                        a.success += success as i64;
                        a.slow += (status.as_deref() == Some("slow")) as i64;
                        if success {
                            if let Some(t) = total {
                                a.latency.add(t);
                            }
                            if let Some(t) = ttft {
                                a.ttft.add(t);
                            }
                        }
                    }
                }
            }
            for ((period, bucket, target_id, model), a) in aggs {
                let existing: Option<(String, String)> = txn
                    .prepare_cached(
                        "SELECT latency_sketch, ttft_sketch FROM rollups WHERE period = ?1 AND \
                         target_id = ?2 AND model = ?3 AND bucket_start = ?4",
                    )?
                    .query_row(params![period, target_id, model, bucket as f64], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?;
                let (mut latency, mut ttft) = (a.latency, a.ttft);
                if let Some((l, t)) = existing {
                    latency.merge(&serde_json::from_str(&l).unwrap_or_default());
                    ttft.merge(&serde_json::from_str(&t).unwrap_or_default());
                }
                txn.prepare_cached(
                    "INSERT INTO rollups (period, bucket_start, target_id, model, count, success, slow, \
                     latency_sketch, ttft_sketch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                     ON CONFLICT(period, target_id, model, bucket_start) DO UPDATE SET \
                     count = count + excluded.count, success = success + excluded.success, \
                     slow = slow + excluded.slow, latency_sketch = excluded.latency_sketch, \
                     ttft_sketch = excluded.ttft_sketch",
                )?
                .execute(params![
                    period,
                    bucket as f64,
                    target_id,
                    model,
                    a.count,
                    a.success,
                    a.slow,
                    serde_json::to_string(&latency).expect("plain data"),
                    serde_json::to_string(&ttft).expect("plain data"),
                ])?;
            }
            if last > mark {
                txn.execute(
                    "INSERT INTO meta(key, value) VALUES ('rollup_watermark', ?1) \
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [last.to_string()],
                )?;
            }
            Ok(rows)
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
                params![run_id, ts, f.status, f.result, f.total, f.success, f.fail, f.error, f.log_file],
            )?;
            txn.execute(
                "UPDATE targets SET last_run_at = ?2, last_status = ?3, last_total = ?4, \
                 last_success = ?5, last_fail = ?6, last_error = ?7, last_log_file = ?8 WHERE id = ?1",
                params![target_id, ts, f.result, f.total, f.success, f.fail, f.error, f.log_file],
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
                "UPDATE runs SET status = 'error', result = 'error', finished_at = ?2, error = ?3 \
                 WHERE target_id = ?1 AND status = 'running' RETURNING id",
            )?;
            let ids = stmt
                .query_map(params![target_id, now(), error], |r| r.get(0))?
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
                "UPDATE runs SET finished_at = ?2, status = 'interrupted', total = ?3, success = ?4, \
                 fail = ?5, error = 'apimond stopped before the run finished' WHERE id = ?1",
                params![run_id, now(), total, success, fail],
            )?;
            Ok(())
        })
        .await
    }

    /// Stores the discovered model list; returns the models added and removed since the
    /// last discovery (both empty on the first one).
    pub async fn set_discovered_models(
        &self,
        target_id: i64,
        models: Vec<String>,
    ) -> Result<(Vec<String>, Vec<String>)> {
        self.write(move |txn, _| {
            let old: String = txn.query_row(
                "SELECT discovered_models FROM targets WHERE id = ?1",
                [target_id],
                |r| r.get(0),
            )?;
            let old: Vec<String> = serde_json::from_str(&old).unwrap_or_default();
            let (added, removed) = if old.is_empty() {
                (Vec::new(), Vec::new())
            } else {
                (
                    models
                        .iter()
                        .filter(|m| !old.contains(m))
                        .cloned()
                        .collect(),
                    old.iter()
                        .filter(|m| !models.contains(m))
                        .cloned()
                        .collect(),
                )
            };
            txn.execute(
                "UPDATE targets SET discovered_models = ?2 WHERE id = ?1",
                params![
                    target_id,
                    serde_json::to_string(&models).expect("plain data")
                ],
            )?;
            Ok((added, removed))
        })
        .await
    }

    pub async fn discovered_models(&self, target_id: i64) -> Result<Vec<String>> {
        self.read(move |conn, _| {
            let text: String = conn.query_row(
                "SELECT discovered_models FROM targets WHERE id = ?1",
                [target_id],
                |r| r.get(0),
            )?;
            Ok(serde_json::from_str(&text).unwrap_or_default())
        })
        .await
    }

    pub async fn set_next_due(&self, target_id: i64, due: f64) -> Result<()> {
        self.write(move |txn, _| {
            txn.execute(
                "UPDATE targets SET next_due_at = ?2 WHERE id = ?1",
                params![target_id, due],
            )?;
            Ok(())
        })
        .await
    }

    /// Every target's schedule: (id, enabled, interval_min, next_due_at).
    pub async fn schedule(&self) -> Result<Vec<(i64, bool, i64, Option<f64>)>> {
        self.read(|conn, _| {
            let mut stmt =
                conn.prepare("SELECT id, enabled, interval_min, next_due_at FROM targets")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Latest results with the last `points` of history, of one target or of all.
    pub async fn model_latest(
        &self,
        target_id: Option<i64>,
        points: usize,
    ) -> Result<HashMap<i64, Vec<ModelLatest>>> {
        self.read(move |conn, _| {
            let mut out: HashMap<i64, Vec<ModelLatest>> = HashMap::new();
            let mut stmt = conn.prepare_cached(
                "SELECT target_id, model, protocol, run_id, success, status, stream, route, endpoint, \
                 total_ms, ttft_ms, tokens_per_s, status_code, error_class, error, returned_model, \
                 model_mismatch, timestamp, history FROM model_latest \
                 WHERE (?1 IS NULL OR target_id = ?1) ORDER BY target_id, rowid",
            )?;
            let mut rows = stmt.query([target_id])?;
            while let Some(row) = rows.next()? {
                let status: String = row.get(5)?;
                let history: Vec<u8> = row.get(18)?;
                let m = ModelLatest {
                    target_id: row.get(0)?,
                    model: row.get(1)?,
                    protocol: row.get(2)?,
                    run_id: row.get(3)?,
                    result: LatestResult {
                        success: row.get(4)?,
                        status: match status.as_str() {
                            "ok" => ModelStatus::Ok,
                            "slow" => ModelStatus::Slow,
                            _ => ModelStatus::Fail,
                        },
                        stream: row.get(6)?,
                        route: row.get(7)?,
                        endpoint: row.get(8)?,
                        total_ms: row.get(9)?,
                        ttft_ms: row.get(10)?,
                        tokens_per_s: row.get(11)?,
                        status_code: row.get(12)?,
                        error_class: row.get(13)?,
                        error: row.get(14)?,
                        returned_model: row.get(15)?,
                        model_mismatch: row.get(16)?,
                        timestamp: row.get(17)?,
                    },
                    history: parse_history(&history, points),
                };
                out.entry(m.target_id).or_default().push(m);
            }
            Ok(out)
        })
        .await
    }

    /// Drops a model's latest result (it left the selection or the channel).
    pub async fn forget_models(&self, target_id: i64, keep: Vec<String>) -> Result<usize> {
        self.write(move |txn, _| {
            let mut stmt = txn.prepare("SELECT model FROM model_latest WHERE target_id = ?1")?;
            let models: Vec<String> = stmt
                .query_map([target_id], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut n = 0;
            for m in models.iter().filter(|m| !keep.contains(m)) {
                n += txn.execute(
                    "DELETE FROM model_latest WHERE target_id = ?1 AND model = ?2",
                    params![target_id, m],
                )?;
            }
            Ok(n)
        })
        .await
    }

    /// Rollups of a target since a time, oldest first.
    pub async fn rollups(
        &self,
        target_id: i64,
        period: &'static str,
        since: f64,
    ) -> Result<Vec<Rollup>> {
        self.read(move |conn, _| {
            let mut stmt = conn.prepare(
                "SELECT period, bucket_start, model, count, success, slow, latency_sketch, ttft_sketch \
                 FROM rollups WHERE target_id = ?1 AND period = ?2 AND bucket_start >= ?3 \
                 ORDER BY bucket_start, model",
            )?;
            let rows = stmt.query_map(params![target_id, period, since], |r| {
                let lat: String = r.get(6)?;
                let ttft: String = r.get(7)?;
                let lat: Sketch = serde_json::from_str(&lat).unwrap_or_default();
                let ttft: Sketch = serde_json::from_str(&ttft).unwrap_or_default();
                Ok(Rollup {
                    period: r.get(0)?,
                    bucket_start: r.get(1)?,
                    model: r.get(2)?,
                    count: r.get(3)?,
                    success: r.get(4)?,
                    slow: r.get(5)?,
                    latency_p50_ms: lat.quantile(0.5),
                    latency_p95_ms: lat.quantile(0.95),
                    ttft_p50_ms: ttft.quantile(0.5),
                    ttft_p95_ms: ttft.quantile(0.95),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Deletes raw probe rows (and finished runs left without any) older than
    /// `raw_before`, hourly rollups older than `hourly_before` and daily ones older
    /// than `daily_before`. Returns (probe rows, runs, rollups) deleted.
    pub async fn prune(
        &self,
        raw_before: f64,
        hourly_before: f64,
        daily_before: f64,
    ) -> Result<(usize, usize, usize)> {
        let counts = self
            .write(move |txn, _| {
                let rows =
                    // Only rows already folded into the rollups go.
                    txn.execute(
                        "DELETE FROM run_models WHERE timestamp < ?1 AND id <= COALESCE(\
                         (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'rollup_watermark'), 0)",
                        [raw_before],
                    )?;
                // Keep each target's latest run so its last result stays explainable.
                let runs = txn.execute(
                    "DELETE FROM runs WHERE started_at < ?1 AND status != 'running' \
                     AND id NOT IN (SELECT MAX(id) FROM runs GROUP BY target_id) \
                     AND NOT EXISTS (SELECT 1 FROM run_models WHERE run_models.run_id = runs.id)",
                    [raw_before],
                )?;
                let hourly = txn.execute(
                    "DELETE FROM rollups WHERE period = 'hour' AND bucket_start < ?1",
                    [hourly_before],
                )?;
                let daily = txn.execute(
                    "DELETE FROM rollups WHERE period = 'day' AND bucket_start < ?1",
                    [daily_before],
                )?;
                Ok((rows, runs, hourly + daily))
            })
            .await?;
        Ok(counts)
    }
}

/// One probe's writes.
fn record_one(
    txn: &rusqlite::Connection,
    run_id: i64,
    target_id: i64,
    r: &ProbeResult,
) -> Result<()> {
    txn.prepare_cached(
        "INSERT INTO run_models (run_id, target_id, protocol, model, success, duration, \
             status_code, error, content, route, endpoint, timestamp, stream, transport_success, \
             status, error_class, ttfb_ms, ttft_ms, total_ms, output_tokens, tokens_estimated, \
             tokens_per_s, returned_model, model_mismatch, attempts) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
    )?
    .execute(params![
        run_id,
        target_id,
        r.protocol.as_str(),
        r.model,
        r.success,
        r.total_ms / 1000.0,
        r.status_code,
        r.error,
        r.content,
        r.route,
        r.endpoint,
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
    ])?;

    let old: Option<Vec<u8>> = txn
        .prepare_cached("SELECT history FROM model_latest WHERE target_id = ?1 AND model = ?2")?
        .query_row(params![target_id, r.model], |row| row.get(0))
        .optional()?;
    let code = match r.status {
        ModelStatus::Fail => 0,
        ModelStatus::Ok => 1,
        ModelStatus::Slow => 2,
    };
    let point: HistoryPoint = (
        run_id,
        r.started_at as i64,
        code,
        r.total_ms.round() as i64,
        r.status_code,
        r.error_class,
    );
    let history = push_history(old.as_deref().unwrap_or(&[]), &point);
    txn.prepare_cached(
            "INSERT INTO model_latest (target_id, model, protocol, run_id, success, status, stream, \
             route, endpoint, total_ms, ttft_ms, tokens_per_s, status_code, error_class, error, \
             returned_model, model_mismatch, timestamp, history) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) \
             ON CONFLICT(target_id, model) DO UPDATE SET protocol = excluded.protocol, \
             run_id = excluded.run_id, success = excluded.success, status = excluded.status, \
             stream = excluded.stream, route = excluded.route, endpoint = excluded.endpoint, \
             total_ms = excluded.total_ms, ttft_ms = excluded.ttft_ms, \
             tokens_per_s = excluded.tokens_per_s, status_code = excluded.status_code, \
             error_class = excluded.error_class, error = excluded.error, \
             returned_model = excluded.returned_model, model_mismatch = excluded.model_mismatch, \
             timestamp = excluded.timestamp, history = excluded.history",
        )?
        .execute(params![
            target_id,
            r.model,
            r.protocol.as_str(),
            run_id,
            r.success,
            r.status.as_str(),
            r.stream,
            r.route,
            r.endpoint,
            r.total_ms,
            r.ttft_ms,
            r.tokens_per_s,
            r.status_code,
            r.error_class.map(|c| c.as_str()),
            r.error,
            r.returned_model,
            r.model_mismatch,
            r.started_at,
            history,
        ])?;

    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(model: &str, started_at: f64, total_ms: f64) -> ProbeResult {
        ProbeResult {
            model: model.into(),
            protocol: shared::probe::Protocol::Openai,
            route: "default".into(),
            endpoint: "/v1/chat/completions".into(),
            stream: true,
            success: true,
            status: ModelStatus::Ok,
            transport_success: true,
            status_code: Some(200),
            ttfb_ms: Some(10.0),
            ttft_ms: Some(20.0),
            total_ms,
            output_tokens: Some(3),
            tokens_estimated: false,
            tokens_per_s: Some(30.0),
            returned_model: Some(model.into()),
            model_mismatch: false,
            content: "mango".into(),
            error_class: None,
            error: None,
            attempts: 1,
            started_at,
        }
    }

    #[tokio::test]
    async fn rows_are_pruned_only_once_folded_into_rollups_and_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::store::SecretBox::from_key([1; 32])).unwrap();
        let mut t = crate::store::targets::tests_support::record("t");
        t = store.create_target(t).await.unwrap();
        let run = store.start_run(t.id, "manual").await.unwrap();
        let old = now() - 10.0 * 86_400.0;
        store
            .record_probes_now(
                run.id,
                t.id,
                vec![probe("m", old, 100.0), probe("m", old + 1.0, 300.0)],
            )
            .await
            .unwrap();
        let week = now() - 7.0 * 86_400.0;
        let far = now() - 400.0 * 86_400.0;
        assert_eq!(
            store.prune(week, far, far).await.unwrap().0,
            0,
            "not folded in yet"
        );
        assert_eq!(store.roll_up(1).await.unwrap(), 1, "batches are bounded");
        assert_eq!(store.roll_up(100).await.unwrap(), 1);
        assert_eq!(store.roll_up(100).await.unwrap(), 0, "each row once");
        assert_eq!(store.prune(week, far, far).await.unwrap().0, 2);
        let hourly = store.rollups(t.id, "hour", far).await.unwrap();
        assert_eq!(hourly.iter().map(|r| r.count).sum::<i64>(), 2);
        let p50 = hourly[0].latency_p50_ms.unwrap();
        assert!((90.0..=112.0).contains(&p50), "{p50}");
    }

    #[test]
    fn history_keeps_the_newest_points_in_order() {
        let mut blob = Vec::new();
        for i in 0..(HISTORY_KEEP as i64 + 5) {
            let class = (i % 3 == 0).then_some(ErrorClass::Timeout);
            blob = push_history(
                &blob,
                &(i, 1000 + i, (i % 3) as u8, 100 + i, Some(200), class),
            );
        }
        assert_eq!(blob.len(), HISTORY_KEEP * POINT);
        let all = parse_history(&blob, 1000);
        assert_eq!(all.len(), HISTORY_KEEP);
        assert_eq!(all.first().unwrap().0, 5);
        assert_eq!(all.last().unwrap().0, HISTORY_KEEP as i64 + 4);
        let last3 = parse_history(&blob, 3);
        let n = HISTORY_KEEP as i64;
        assert_eq!(
            last3.iter().map(|p| p.0).collect::<Vec<_>>(),
            [n + 2, n + 3, n + 4]
        );
        assert_eq!(
            last3[2],
            (
                n + 4,
                1000 + n + 4,
                ((n + 4) % 3) as u8,
                100 + n + 4,
                Some(200),
                ((n + 4) % 3 == 0).then_some(ErrorClass::Timeout)
            )
        );
        assert_eq!(parse_history(&[], 30), vec![]);
        let failed = push_history(&[], &(7, 9, 0, 5000, None, Some(ErrorClass::Upstream5xx)));
        assert_eq!(
            parse_history(&failed, 1),
            vec![(7, 9, 0, 5000, None, Some(ErrorClass::Upstream5xx))]
        );
    }
}
