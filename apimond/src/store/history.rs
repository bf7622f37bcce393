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
    /// The Go program's `route` and `endpoint` of the API (beside `protocol`).
    pub route: String,
    pub endpoint: String,
    /// The route rule that chose the API and the request path; none on rows from
    /// before apimon recorded them.
    pub route_rule: Option<String>,
    pub path: Option<String>,
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

/// One probe in a model's history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryPoint {
    pub run_id: i64,
    /// When the probe started, Unix seconds.
    pub ts: i64,
    pub status: ModelStatus,
    /// Whole milliseconds, as stored.
    pub total_ms: u32,
    pub status_code: Option<u16>,
    pub error_class: Option<ErrorClass>,
}

/// History is stored as a blob of fixed 16-byte points (run id, time, total ms as
/// little-endian u32; status code u16; status u8; error class u8, 0 for none): cheap
/// to append to on every probe and to read the last few of for every model in the
/// target list.
const POINT: usize = 16;

/// The status byte: 0 fail, 1 ok, 2 slow.
fn status_byte(s: ModelStatus) -> u8 {
    match s {
        ModelStatus::Fail => 0,
        ModelStatus::Ok => 1,
        ModelStatus::Slow => 2,
    }
}

/// Reads a status byte; anything unknown reads as ok, as the list always showed it.
fn status_of_byte(b: u8) -> ModelStatus {
    match b {
        0 => ModelStatus::Fail,
        2 => ModelStatus::Slow,
        _ => ModelStatus::Ok,
    }
}

fn encode_point(p: &HistoryPoint, out: &mut Vec<u8>) {
    out.extend_from_slice(&(p.run_id.clamp(0, u32::MAX as i64) as u32).to_le_bytes());
    out.extend_from_slice(&(p.ts.clamp(0, u32::MAX as i64) as u32).to_le_bytes());
    out.extend_from_slice(&p.total_ms.to_le_bytes());
    out.extend_from_slice(&p.status_code.unwrap_or(0).to_le_bytes());
    out.push(status_byte(p.status));
    out.push(
        p.error_class
            .and_then(|c| ErrorClass::ALL.iter().position(|x| *x == c))
            .map(|i| i as u8 + 1)
            .unwrap_or(0),
    );
}

fn decode_point(b: &[u8]) -> HistoryPoint {
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let status_code = u16::from_le_bytes([b[12], b[13]]);
    HistoryPoint {
        run_id: u32_at(0) as i64,
        ts: u32_at(4) as i64,
        status: status_of_byte(b[14]),
        total_ms: u32_at(8),
        status_code: (status_code != 0).then_some(status_code),
        error_class: b[15]
            .checked_sub(1)
            .and_then(|i| ErrorClass::ALL.get(i as usize).copied()),
    }
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
                 model_mismatch, timestamp, history, route_rule, path FROM model_latest \
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
                        route_rule: row.get(19)?,
                        path: row.get(20)?,
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
    let point = HistoryPoint {
        run_id,
        ts: r.started_at as i64,
        status: r.status,
        // Saturates like the stored u32 (NaN and negatives read as 0).
        total_ms: r.total_ms.round() as u32,
        status_code: r.status_code,
        error_class: r.error_class,
    };
    let history = push_history(old.as_deref().unwrap_or(&[]), &point);
    let names = r.protocol.seed_names();
    txn.prepare_cached(
            "INSERT INTO model_latest (target_id, model, protocol, run_id, success, status, stream, \
             route, endpoint, total_ms, ttft_ms, tokens_per_s, status_code, error_class, error, \
             returned_model, model_mismatch, timestamp, history, route_rule, path) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
             ?20, ?21) \
             ON CONFLICT(target_id, model) DO UPDATE SET protocol = excluded.protocol, \
             run_id = excluded.run_id, success = excluded.success, status = excluded.status, \
             stream = excluded.stream, route = excluded.route, endpoint = excluded.endpoint, \
             total_ms = excluded.total_ms, ttft_ms = excluded.ttft_ms, \
             tokens_per_s = excluded.tokens_per_s, status_code = excluded.status_code, \
             error_class = excluded.error_class, error = excluded.error, \
             returned_model = excluded.returned_model, model_mismatch = excluded.model_mismatch, \
             timestamp = excluded.timestamp, history = excluded.history, \
             route_rule = excluded.route_rule, path = excluded.path",
        )?
        .execute(params![
            target_id,
            r.model,
            names.protocol,
            run_id,
            r.success,
            r.status.as_str(),
            r.stream,
            names.route,
            names.endpoint,
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
            r.route_rule,
            r.path,
        ])?;

    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status the test cycles through: 0 fail, 1 ok, 2 slow.
    fn status_of(i: i64) -> ModelStatus {
        [ModelStatus::Fail, ModelStatus::Ok, ModelStatus::Slow][(i % 3) as usize]
    }

    fn point(
        run_id: i64,
        ts: i64,
        status: ModelStatus,
        total_ms: u32,
        status_code: Option<u16>,
        error_class: Option<ErrorClass>,
    ) -> HistoryPoint {
        HistoryPoint {
            run_id,
            ts,
            status,
            total_ms,
            status_code,
            error_class,
        }
    }

    #[test]
    fn history_keeps_the_newest_points_in_order() {
        let mut blob = Vec::new();
        for i in 0..(HISTORY_KEEP as i64 + 5) {
            let class = (i % 3 == 0).then_some(ErrorClass::Timeout);
            blob = push_history(
                &blob,
                &point(i, 1000 + i, status_of(i), 100 + i as u32, Some(200), class),
            );
        }
        assert_eq!(blob.len(), HISTORY_KEEP * POINT);
        let all = parse_history(&blob, 1000);
        assert_eq!(all.len(), HISTORY_KEEP);
        assert_eq!(all.first().unwrap().run_id, 5);
        assert_eq!(all.last().unwrap().run_id, HISTORY_KEEP as i64 + 4);
        let last3 = parse_history(&blob, 3);
        let n = HISTORY_KEEP as i64;
        assert_eq!(
            last3.iter().map(|p| p.run_id).collect::<Vec<_>>(),
            [n + 2, n + 3, n + 4]
        );
        assert_eq!(
            last3[2],
            point(
                n + 4,
                1000 + n + 4,
                status_of(n + 4),
                100 + (n + 4) as u32,
                Some(200),
                ((n + 4) % 3 == 0).then_some(ErrorClass::Timeout)
            )
        );
        assert_eq!(parse_history(&[], 30), vec![]);
        let failed = point(
            7,
            9,
            ModelStatus::Fail,
            5000,
            None,
            Some(ErrorClass::Upstream5xx),
        );
        assert_eq!(parse_history(&push_history(&[], &failed), 1), vec![failed]);
    }

    #[test]
    fn a_history_point_keeps_its_16_byte_layout_on_disk() {
        let p = point(
            0x0102_0304,
            1_700_000_000,
            ModelStatus::Slow,
            1234,
            Some(503),
            Some(ErrorClass::Upstream5xx),
        );
        let blob = push_history(&[], &p);
        assert_eq!(
            blob,
            [
                0x04, 0x03, 0x02, 0x01, // run id, u32 LE
                0x00, 0xF1, 0x53, 0x65, // unix seconds, u32 LE
                0xD2, 0x04, 0x00, 0x00, // total ms, u32 LE
                0xF7, 0x01, // status code, u16 LE
                2,    // status: 0 fail, 1 ok, 2 slow
                6,    // error class: 1 + its index in ErrorClass::ALL, 0 for none
            ]
        );
        assert_eq!(parse_history(&blob, 1), vec![p]);
        let bare = point(1, 2, ModelStatus::Ok, 3, None, None);
        assert_eq!(&push_history(&[], &bare)[12..], [0, 0, 1, 0]);
    }
}
