//! The `proxy_usage` table (one row per proxied request) and its hourly and daily
//! rollups `proxy_usage_rollups`: written in batches, folded, pruned. Reading them back
//! is `usage_reads`.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Statement, params};
use serde::{Deserialize, Serialize};

use super::{Result, Store};

/// Which proxy endpoint a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyEndpoint {
    Chat,
    Responses,
    Messages,
    GeminiGenerate,
    GeminiStream,
    Embeddings,
    Models,
}

impl ProxyEndpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyEndpoint::Chat => "chat",
            ProxyEndpoint::Responses => "responses",
            ProxyEndpoint::Messages => "messages",
            ProxyEndpoint::GeminiGenerate => "gemini_generate",
            ProxyEndpoint::GeminiStream => "gemini_stream",
            ProxyEndpoint::Embeddings => "embeddings",
            ProxyEndpoint::Models => "models",
        }
    }
}

/// One proxied request, as the forwarder reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyUsage {
    /// When the request arrived, Unix seconds.
    pub at: f64,
    /// `None` for the master token.
    pub key_id: Option<i64>,
    /// The channel that answered (or was tried last); `None` when none was chosen.
    pub target_id: Option<i64>,
    /// The model as the client asked for it (`channel/model` or bare).
    pub requested_model: String,
    /// The model id sent upstream.
    pub upstream_model: Option<String>,
    pub endpoint: ProxyEndpoint,
    pub stream: bool,
    /// The status the client got.
    pub status: u16,
    pub attempts: u8,
    pub ttfb_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// The token counts are estimates (the upstream reported none).
    pub tokens_estimated: bool,
    pub error_class: Option<String>,
}

impl ProxyUsage {
    /// Input plus output tokens, estimates included: what budgets count.
    pub fn tokens(&self) -> u64 {
        self.input_tokens
            .unwrap_or(0)
            .saturating_add(self.output_tokens.unwrap_or(0))
    }

    /// The model usage is counted under: the upstream model when known (the same model
    /// reached as `channel/model` or bare counts once), else the requested name.
    pub fn model(&self) -> &str {
        self.upstream_model
            .as_deref()
            .unwrap_or(&self.requested_model)
    }
}

/// Sums over a group of requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct UsageSums {
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub estimated_requests: i64,
    pub total_ms_sum: f64,
}

impl UsageSums {
    pub(super) fn add(&mut self, o: &UsageSums) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.estimated_requests += o.estimated_requests;
        self.total_ms_sum += o.total_ms_sum;
    }
}

pub(super) const WATERMARK: &str = "proxy_usage_rollup_watermark";

pub(super) fn watermark(conn: &Connection) -> Result<i64> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [WATERMARK], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

fn tokens_i64(n: Option<u64>) -> Option<i64> {
    n.map(|n| n.min(i64::MAX as u64) as i64)
}

/// The columns of a usage row, in insert order.
const COLUMNS: &str = "at, key_id, target_id, requested_model, upstream_model, model, \
     endpoint, stream, status, attempts, ttfb_ms, ttft_ms, total_ms, input_tokens, \
     output_tokens, tokens_estimated, error_class";
const COLUMN_COUNT: usize = 17;

/// Rows per multi-row INSERT: one statement step (and one `sqlite_sequence` update for
/// the AUTOINCREMENT id) per this many rows instead of per row.
const ROWS_PER_INSERT: usize = 32;

/// `INSERT INTO proxy_usage (…) VALUES (?, …), …` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; COLUMN_COUNT].join(", "));
    format!(
        "INSERT INTO proxy_usage ({COLUMNS}) VALUES {}",
        vec![one; rows].join(", ")
    )
}

static INSERT_ONE: LazyLock<String> = LazyLock::new(|| insert_sql(1));
static INSERT_MANY: LazyLock<String> = LazyLock::new(|| insert_sql(ROWS_PER_INSERT));

/// Binds `u` to the parameters after the first `before` of `stmt`.
fn bind_row(stmt: &mut Statement<'_>, before: usize, u: &ProxyUsage) -> rusqlite::Result<()> {
    let mut i = before;
    let mut bind = |v: &dyn rusqlite::ToSql| {
        i += 1;
        stmt.raw_bind_parameter(i, v)
    };
    bind(&u.at)?;
    bind(&u.key_id)?;
    bind(&u.target_id)?;
    bind(&u.requested_model)?;
    bind(&u.upstream_model)?;
    bind(&u.model())?;
    bind(&u.endpoint.as_str())?;
    bind(&u.stream)?;
    bind(&u.status)?;
    bind(&u.attempts)?;
    bind(&u.ttfb_ms)?;
    bind(&u.ttft_ms)?;
    bind(&u.total_ms)?;
    bind(&tokens_i64(u.input_tokens))?;
    bind(&tokens_i64(u.output_tokens))?;
    bind(&u.tokens_estimated)?;
    bind(&u.error_class)
}

/// Usage sums per hour bucket start, key (0 = master token), target (0 = none) and
/// model; a day's rollups are the sums of its hours.
type Hourly<M> = HashMap<(i64, i64, i64, M), UsageSums>;

/// Adds one request to its hour.
fn fold<M: Hash + Eq>(
    hours: &mut Hourly<M>,
    at: f64,
    key: i64,
    target: i64,
    model: M,
    row: &UsageSums,
) {
    let hour = ((at / 3600.0).floor() * 3600.0) as i64;
    hours
        .entry((hour, key, target, model))
        .or_default()
        .add(row);
}

/// Adds the sums to the stored hourly and daily rollups.
fn upsert_rollups<M: AsRef<str> + Hash + Eq>(txn: &Connection, hours: Hourly<M>) -> Result<()> {
    let mut days: Hourly<&str> = HashMap::new();
    for ((hour, key, target, model), s) in &hours {
        let day = hour.div_euclid(86_400) * 86_400;
        days.entry((day, *key, *target, model.as_ref()))
            .or_default()
            .add(s);
    }
    let mut upsert = txn.prepare_cached(
        "INSERT INTO proxy_usage_rollups (period, bucket_start, key_id, target_id, \
         model, requests, errors, input_tokens, output_tokens, estimated_requests, \
         total_ms_sum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT(period, key_id, target_id, model, bucket_start) DO UPDATE SET \
         requests = requests + excluded.requests, errors = errors + excluded.errors, \
         input_tokens = input_tokens + excluded.input_tokens, \
         output_tokens = output_tokens + excluded.output_tokens, \
         estimated_requests = estimated_requests + excluded.estimated_requests, \
         total_ms_sum = total_ms_sum + excluded.total_ms_sum",
    )?;
    let hourly = hours
        .iter()
        .map(|((b, k, t, m), s)| ("hour", *b, *k, *t, m.as_ref(), s));
    let daily = days
        .iter()
        .map(|((b, k, t, m), s)| ("day", *b, *k, *t, *m, s));
    for (period, bucket, key, target, model, s) in hourly.chain(daily) {
        upsert.execute(params![
            period,
            bucket as f64,
            key,
            target,
            model,
            s.requests,
            s.errors,
            s.input_tokens,
            s.output_tokens,
            s.estimated_requests,
            s.total_ms_sum,
        ])?;
    }
    Ok(())
}

fn set_watermark(txn: &Connection, last: i64) -> Result<()> {
    txn.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![WATERMARK, last.to_string()],
    )?;
    Ok(())
}

impl Store {
    /// Writes a batch of usage rows and moves each key's `last_used_at` and
    /// `last_used_target_id` forward, in one transaction. When every earlier row is
    /// folded into the rollups already (the usual case), the batch is folded in the
    /// same transaction, so the upkeep's pass has nothing to read back; otherwise that
    /// pass folds the rows in id order.
    pub async fn record_usage(&self, rows: Vec<ProxyUsage>) -> Result<()> {
        self.write(move |txn, _| {
            let mark = watermark(txn)?;
            let newest: i64 =
                txn.query_row("SELECT COALESCE(MAX(id), 0) FROM proxy_usage", [], |r| {
                    r.get(0)
                })?;
            // AUTOINCREMENT: new ids are above every id ever used, the mark included.
            let fold_now = newest <= mark;
            let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
            if chunks.len() > 0 {
                let mut many = txn.prepare_cached(&INSERT_MANY)?;
                for chunk in &mut chunks {
                    for (n, u) in chunk.iter().enumerate() {
                        bind_row(&mut many, n * COLUMN_COUNT, u)?;
                    }
                    many.raw_execute()?;
                }
            }
            let mut one = txn.prepare_cached(&INSERT_ONE)?;
            for u in chunks.remainder() {
                bind_row(&mut one, 0, u)?;
                one.raw_execute()?;
            }
            let last_id = txn.last_insert_rowid();
            if fold_now && !rows.is_empty() {
                let mut hours: Hourly<&str> = HashMap::new();
                for u in &rows {
                    let row = UsageSums {
                        requests: 1,
                        errors: i64::from(u.status >= 400 || u.error_class.is_some()),
                        input_tokens: tokens_i64(u.input_tokens).unwrap_or(0),
                        output_tokens: tokens_i64(u.output_tokens).unwrap_or(0),
                        estimated_requests: i64::from(u.tokens_estimated),
                        total_ms_sum: u.total_ms,
                    };
                    let (key, target) = (u.key_id.unwrap_or(0), u.target_id.unwrap_or(0));
                    fold(&mut hours, u.at, key, target, u.model(), &row);
                }
                upsert_rollups(txn, hours)?;
                set_watermark(txn, last_id)?;
            }
            let mut last: HashMap<i64, (f64, Option<i64>)> = HashMap::new();
            for u in &rows {
                if let Some(k) = u.key_id {
                    let e = last.entry(k).or_insert((u.at, u.target_id));
                    if u.at >= e.0 {
                        *e = (u.at, u.target_id);
                    }
                }
            }
            let mut touch = txn.prepare_cached(
                "UPDATE proxy_keys SET last_used_at = ?2, last_used_target_id = ?3 \
                 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at <= ?2)",
            )?;
            for (k, (at, target)) in last {
                touch.execute(params![k, at, target])?;
            }
            Ok(())
        })
        .await
    }

    /// Requests and tokens (estimates included) per key since a time: what the budget
    /// counters start from when the daemon starts. The master token is left out.
    pub async fn usage_per_key_since(&self, since: f64) -> Result<HashMap<i64, (u64, u64)>> {
        self.read(move |conn, _| {
            let mut stmt = conn.prepare(
                "SELECT key_id, COUNT(*), COALESCE(SUM(COALESCE(input_tokens, 0) + \
                 COALESCE(output_tokens, 0)), 0) FROM proxy_usage \
                 WHERE at >= ?1 AND key_id IS NOT NULL GROUP BY key_id",
            )?;
            let rows = stmt.query_map([since], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    (
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)?.max(0) as u64,
                    ),
                ))
            })?;
            Ok(rows.collect::<rusqlite::Result<HashMap<_, _>>>()?)
        })
        .await
    }

    /// Folds usage rows not yet counted into the hourly and daily rollups, at most
    /// `max_rows` of them; a watermark on the row id counts each row once. Returns the
    /// rows folded in.
    pub async fn roll_up_usage(&self, max_rows: i64) -> Result<usize> {
        self.write(move |txn, _| {
            let mark = watermark(txn)?;
            let mut hours: Hourly<String> = HashMap::new();
            let mut last = mark;
            let mut n = 0usize;
            {
                let mut stmt = txn.prepare_cached(
                    "SELECT id, at, COALESCE(key_id, 0), COALESCE(target_id, 0), model, \
                     status >= 400 OR error_class IS NOT NULL, COALESCE(input_tokens, 0), \
                     COALESCE(output_tokens, 0), tokens_estimated, total_ms \
                     FROM proxy_usage WHERE id > ?1 ORDER BY id LIMIT ?2",
                )?;
                let mut q = stmt.query(params![mark, max_rows])?;
                while let Some(r) = q.next()? {
                    last = r.get(0)?;
                    n += 1;
                    let row = UsageSums {
                        requests: 1,
                        errors: r.get(5)?,
                        input_tokens: r.get(6)?,
                        output_tokens: r.get(7)?,
                        estimated_requests: r.get(8)?,
                        total_ms_sum: r.get(9)?,
                    };
                    let model: String = r.get(4)?;
                    fold(&mut hours, r.get(1)?, r.get(2)?, r.get(3)?, model, &row);
                }
            }
            upsert_rollups(txn, hours)?;
            if last > mark {
                set_watermark(txn, last)?;
            }
            Ok(n)
        })
        .await
    }

    /// Deletes usage rows older than `raw_before` once rolled up, hourly rollups older
    /// than `hourly_before` and daily ones older than `daily_before`. Returns (rows,
    /// rollups) deleted.
    pub async fn prune_usage(
        &self,
        raw_before: f64,
        hourly_before: f64,
        daily_before: f64,
    ) -> Result<(usize, usize)> {
        self.write(move |txn, _| {
            let mark = watermark(txn)?;
            let rows = txn.execute(
                "DELETE FROM proxy_usage WHERE at < ?1 AND id <= ?2",
                params![raw_before, mark],
            )?;
            let rollups = txn.execute(
                "DELETE FROM proxy_usage_rollups WHERE (period = 'hour' AND bucket_start < ?1) \
                 OR (period = 'day' AND bucket_start < ?2)",
                params![hourly_before, daily_before],
            )?;
            Ok((rows, rollups))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: usize) -> ProxyUsage {
        ProxyUsage {
            at: 1_800_000_000.0 + i as f64 * 60.0,
            key_id: if i.is_multiple_of(3) {
                None
            } else {
                Some(1 + i as i64 % 2)
            },
            target_id: Some(7),
            requested_model: format!("alpha/m{}", i % 2),
            upstream_model: Some(format!("m{}", i % 2)),
            endpoint: ProxyEndpoint::Chat,
            stream: i.is_multiple_of(2),
            status: if i.is_multiple_of(5) { 502 } else { 200 },
            attempts: 1 + (i % 3) as u8,
            ttfb_ms: Some(i as f64),
            ttft_ms: None,
            total_ms: 10.0 + i as f64,
            input_tokens: Some(i as u64),
            output_tokens: if i.is_multiple_of(4) { None } else { Some(2) },
            tokens_estimated: i.is_multiple_of(7),
            error_class: (i.is_multiple_of(5)).then(|| "server_error".to_string()),
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::store::SecretBox::from_key([1; 32])).unwrap();
        (dir, store)
    }

    /// Every stored row, in id order, read back column by column.
    async fn stored(store: &Store) -> Vec<ProxyUsage> {
        store
            .read(|conn, _| {
                let mut stmt = conn.prepare(&format!(
                    "SELECT {COLUMNS}, model FROM proxy_usage ORDER BY id"
                ))?;
                let rows = stmt.query_map([], |r| {
                    let endpoint: String = r.get(6)?;
                    assert_eq!(endpoint, "chat");
                    let u = ProxyUsage {
                        at: r.get(0)?,
                        key_id: r.get(1)?,
                        target_id: r.get(2)?,
                        requested_model: r.get(3)?,
                        upstream_model: r.get(4)?,
                        endpoint: ProxyEndpoint::Chat,
                        stream: r.get(7)?,
                        status: r.get(8)?,
                        attempts: r.get(9)?,
                        ttfb_ms: r.get(10)?,
                        ttft_ms: r.get(11)?,
                        total_ms: r.get(12)?,
                        input_tokens: r.get::<_, Option<i64>>(13)?.map(|n| n as u64),
                        output_tokens: r.get::<_, Option<i64>>(14)?.map(|n| n as u64),
                        tokens_estimated: r.get(15)?,
                        error_class: r.get(16)?,
                    };
                    assert_eq!(r.get::<_, String>(5)?, u.model());
                    Ok(u)
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
            .unwrap()
    }

    /// (requests, errors, input, output, estimated) summed over a period's rollups.
    async fn rolled(store: &Store, period: &'static str) -> (i64, i64, i64, i64, i64) {
        store
            .read(move |conn, _| {
                Ok(conn.query_row(
                    "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(errors), 0), \
                     COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), \
                     COALESCE(SUM(estimated_requests), 0) FROM proxy_usage_rollups \
                     WHERE period = ?1",
                    [period],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )?)
            })
            .await
            .unwrap()
    }

    fn sums(rows: &[ProxyUsage]) -> (i64, i64, i64, i64, i64) {
        let n = |f: &dyn Fn(&ProxyUsage) -> bool| rows.iter().filter(|u| f(u)).count() as i64;
        (
            rows.len() as i64,
            n(&|u| u.status >= 400),
            rows.iter()
                .map(|u| u.input_tokens.unwrap_or(0) as i64)
                .sum(),
            rows.iter()
                .map(|u| u.output_tokens.unwrap_or(0) as i64)
                .sum(),
            n(&|u| u.tokens_estimated),
        )
    }

    #[tokio::test]
    async fn a_batch_is_stored_as_sent_and_folded_into_the_rollups_in_the_same_write() {
        let (_dir, store) = open();
        // Two full multi-row statements and a rest of six rows.
        let batch: Vec<ProxyUsage> = (0..2 * ROWS_PER_INSERT + 6).map(row).collect();
        store.record_usage(batch.clone()).await.unwrap();
        assert_eq!(stored(&store).await, batch);
        assert_eq!(rolled(&store, "hour").await, sums(&batch));
        assert_eq!(rolled(&store, "day").await, sums(&batch));
        assert_eq!(
            store.roll_up_usage(10_000).await.unwrap(),
            0,
            "nothing left for the upkeep to read back"
        );

        let more: Vec<ProxyUsage> = (100..103).map(row).collect();
        store.record_usage(more.clone()).await.unwrap();
        let all: Vec<ProxyUsage> = batch.iter().chain(&more).cloned().collect();
        assert_eq!(rolled(&store, "hour").await, sums(&all));
        assert_eq!(store.roll_up_usage(10_000).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_writer_keeps_its_savepoint_journals_in_memory() {
        let (_dir, store) = open();
        // 2 = MEMORY: a batch's savepoint journal is not spilled to a temporary file.
        let temp_store: i64 = store
            .write(|txn, _| Ok(txn.pragma_query_value(None, "temp_store", |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(temp_store, 2);
    }

    #[tokio::test]
    async fn rows_recorded_while_the_rollups_are_behind_are_folded_by_the_upkeep_once() {
        let (_dir, store) = open();
        let first: Vec<ProxyUsage> = (0..3).map(row).collect();
        store.record_usage(first.clone()).await.unwrap();
        // A row the rollups have not counted yet (written by an apimond that left
        // folding to the upkeep, or before a crash of its pass).
        let behind = row(3);
        let (at, key) = (behind.at, behind.key_id);
        store
            .write(move |txn, _| {
                txn.execute(
                    "INSERT INTO proxy_usage (at, key_id, target_id, requested_model, model, \
                     endpoint, stream, status, attempts, total_ms, input_tokens, output_tokens, \
                     tokens_estimated) VALUES (?1, ?2, 7, 'alpha/m1', 'm1', 'chat', 0, 200, 2, \
                     13.0, 3, 2, 0)",
                    params![at, key],
                )?;
                Ok(())
            })
            .await
            .unwrap();
        let later: Vec<ProxyUsage> = (4..40).map(row).collect();
        store.record_usage(later.clone()).await.unwrap();
        assert_eq!(
            rolled(&store, "hour").await,
            sums(&first),
            "later rows wait behind the uncounted one"
        );
        assert_eq!(store.roll_up_usage(10_000).await.unwrap(), 37);
        let all: Vec<ProxyUsage> = (0..40).map(row).collect();
        assert_eq!(rolled(&store, "hour").await, sums(&all));
        assert_eq!(rolled(&store, "day").await, sums(&all));
        assert_eq!(
            store.roll_up_usage(10_000).await.unwrap(),
            0,
            "each row once"
        );
    }
}
