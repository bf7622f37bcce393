//! The `model_latest` table: each model's latest result with a short history of its
//! last probes, which is what the target list shows. The history is a compact blob
//! appended to on every probe.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};
use shared::probe::{ErrorClass, ModelStatus, ProbeResult};

use super::{Result, Store};

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

impl Store {
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
}

/// Replaces the model's latest result with `r` and appends it to the model's history.
pub(super) fn record_latest(
    txn: &rusqlite::Connection,
    run_id: i64,
    target_id: i64,
    r: &ProbeResult,
) -> Result<()> {
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
