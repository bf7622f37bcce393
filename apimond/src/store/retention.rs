//! Retention: deleting raw probe rows once the rollups hold them, finished runs left
//! without any, and rollups past their own horizon.

use rusqlite::params;

use super::runs::RunStatus;
use super::{Result, Store};

impl Store {
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
                    "DELETE FROM runs WHERE started_at < ?1 AND status != ?2 \
                     AND id NOT IN (SELECT MAX(id) FROM runs GROUP BY target_id) \
                     AND NOT EXISTS (SELECT 1 FROM run_models WHERE run_models.run_id = runs.id)",
                    params![raw_before, RunStatus::Running],
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

#[cfg(test)]
mod tests {
    use shared::probe::{ModelStatus, ProbeResult};

    use super::*;
    use crate::store::now;

    fn probe(model: &str, started_at: f64, total_ms: f64) -> ProbeResult {
        ProbeResult {
            model: model.into(),
            protocol: shared::probe::Protocol::Openai,
            route_rule: "default".into(),
            path: "/v1/chat/completions".into(),
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
}
