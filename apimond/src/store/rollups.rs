//! The `rollups` table: probe rows folded into hourly and daily buckets per target and
//! model (counts and latency sketches), so long windows stay cheap after the raw rows
//! are pruned.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Result, Store};
use crate::sketch::Sketch;

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
    /// Failures by error class (`timeout` → 3); empty for buckets folded before
    /// apimon counted them.
    pub error_classes: BTreeMap<String, i64>,
}

fn bucket_start(ts: f64, period: &str) -> f64 {
    let size = if period == "hour" { 3600.0 } else { 86_400.0 };
    (ts / size).floor() * size
}

impl Store {
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
                errors: BTreeMap<String, i64>,
            }
            let mut aggs: HashMap<Key, Agg> = HashMap::new();
            let mut last = mark;
            let mut rows = 0usize;
            {
                let mut stmt = txn.prepare_cached(
                    "SELECT id, target_id, model, timestamp, success, status, total_ms, ttft_ms, \
                     error_class FROM run_models WHERE id > ?1 ORDER BY id LIMIT ?2",
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
                    let class: Option<String> = row.get(8)?;
                    last = id;
                    rows += 1;
                    for period in ["hour", "day"] {
                        let a = aggs
                            .entry((period, bucket_start(ts, period) as i64, target_id, model.clone()))
                            .or_default();
                        a.count += 1;
                        a.success += success as i64;
                        a.slow += (status.as_deref() == Some("slow")) as i64;
                        if let (false, Some(c)) = (success, &class) {
                            *a.errors.entry(c.clone()).or_default() += 1;
                        }
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
                let existing: Option<(String, String, String)> = txn
                    .prepare_cached(
                        "SELECT latency_sketch, ttft_sketch, error_classes FROM rollups WHERE \
                         period = ?1 AND target_id = ?2 AND model = ?3 AND bucket_start = ?4",
                    )?
                    .query_row(params![period, target_id, model, bucket as f64], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .optional()?;
                let (mut latency, mut ttft, mut errors) = (a.latency, a.ttft, a.errors);
                if let Some((l, t, e)) = existing {
                    latency.merge(&serde_json::from_str(&l).unwrap_or_default());
                    ttft.merge(&serde_json::from_str(&t).unwrap_or_default());
                    let before: BTreeMap<String, i64> = serde_json::from_str(&e).unwrap_or_default();
                    for (class, n) in before {
                        *errors.entry(class).or_default() += n;
                    }
                }
                txn.prepare_cached(
                    "INSERT INTO rollups (period, bucket_start, target_id, model, count, success, slow, \
                     latency_sketch, ttft_sketch, error_classes) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                     ON CONFLICT(period, target_id, model, bucket_start) DO UPDATE SET \
                     count = count + excluded.count, success = success + excluded.success, \
                     slow = slow + excluded.slow, latency_sketch = excluded.latency_sketch, \
                     ttft_sketch = excluded.ttft_sketch, error_classes = excluded.error_classes",
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
                    serde_json::to_string(&errors).expect("plain data"),
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

    /// Rollups of a target since a time, oldest first.
    pub async fn rollups(
        &self,
        target_id: i64,
        period: &'static str,
        since: f64,
    ) -> Result<Vec<Rollup>> {
        self.read(move |conn, _| {
            let mut stmt = conn.prepare(
                "SELECT period, bucket_start, model, count, success, slow, latency_sketch, ttft_sketch, \
                 error_classes FROM rollups WHERE target_id = ?1 AND period = ?2 AND bucket_start >= ?3 \
                 ORDER BY bucket_start, model",
            )?;
            let rows = stmt.query_map(params![target_id, period, since], |r| {
                let lat: String = r.get(6)?;
                let ttft: String = r.get(7)?;
                let lat: Sketch = serde_json::from_str(&lat).unwrap_or_default();
                let ttft: Sketch = serde_json::from_str(&ttft).unwrap_or_default();
                let errors: String = r.get(8)?;
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
                    error_classes: serde_json::from_str(&errors).unwrap_or_default(),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use shared::probe::{ErrorClass, ModelStatus, ProbeResult};

    use super::*;
    use crate::store::now;

    fn failed(model: &str, started_at: f64, class: Option<ErrorClass>) -> ProbeResult {
        ProbeResult {
            model: model.into(),
            protocol: shared::probe::Protocol::Openai,
            route_rule: "default".into(),
            path: "/v1/chat/completions".into(),
            stream: true,
            success: class.is_none(),
            status: if class.is_none() {
                ModelStatus::Ok
            } else {
                ModelStatus::Fail
            },
            transport_success: true,
            status_code: Some(if class.is_none() { 200 } else { 500 }),
            ttfb_ms: Some(10.0),
            ttft_ms: Some(20.0),
            total_ms: 100.0,
            output_tokens: Some(3),
            tokens_estimated: false,
            tokens_per_s: Some(30.0),
            returned_model: Some(model.into()),
            model_mismatch: false,
            content: String::new(),
            error_class: class,
            error: class.map(|_| "boom".to_string()),
            attempts: 1,
            started_at,
        }
    }

    #[tokio::test]
    async fn rollups_count_failures_by_class_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::store::SecretBox::from_key([1; 32])).unwrap();
        let t = store
            .create_target(crate::store::targets::tests_support::record("t"))
            .await
            .unwrap();
        let run = store.start_run(t.id, "manual").await.unwrap();
        let hour_ago = (now() / 3600.0).floor() * 3600.0 - 1800.0;
        let rows = vec![
            failed("m", hour_ago, Some(ErrorClass::Timeout)),
            failed("m", hour_ago + 1.0, Some(ErrorClass::Auth)),
            failed("m", hour_ago + 2.0, None),
            failed("m", hour_ago + 3.0, Some(ErrorClass::Timeout)),
        ];
        store.record_probes_now(run.id, t.id, rows).await.unwrap();
        // Two batches fold into the same bucket: the counts add up.
        assert_eq!(store.roll_up(2).await.unwrap(), 2);
        assert_eq!(store.roll_up(10).await.unwrap(), 2);
        let hourly = store.rollups(t.id, "hour", 0.0).await.unwrap();
        assert_eq!(hourly.len(), 1);
        let want: BTreeMap<String, i64> = [("auth".to_string(), 1), ("timeout".to_string(), 2)]
            .into_iter()
            .collect();
        assert_eq!(hourly[0].error_classes, want);
        assert_eq!((hourly[0].count, hourly[0].success), (4, 1));
        let daily = store.rollups(t.id, "day", 0.0).await.unwrap();
        assert_eq!(daily[0].error_classes, want);
    }
}
