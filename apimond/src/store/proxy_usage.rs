//! The `proxy_usage` table (one row per proxied request) and its hourly and daily
//! rollups `proxy_usage_rollups`: written in batches, read back as totals and series
//! grouped by key, channel, model and time.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, params};
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

/// Rollup periods, by bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    /// Raw rows.
    Raw,
    Hour,
    Day,
}

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::Raw => "raw",
            UsageSource::Hour => "hour",
            UsageSource::Day => "day",
        }
    }
}

/// How usage is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageGrouping {
    pub key: bool,
    pub target: bool,
    pub model: bool,
    /// Buckets of this size in seconds (3600 or 86400), UTC.
    pub bucket_s: Option<i64>,
}

/// What to read.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageFilter {
    /// `Some(None)` is the master token.
    pub key_id: Option<Option<i64>>,
    pub target_id: Option<i64>,
    pub model: Option<String>,
    pub since: f64,
    pub until: f64,
}

/// The group a usage figure belongs to; a field is `None` when not grouped by it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsageGroup {
    pub bucket_start: Option<i64>,
    /// `Some(0)` stands for the master token.
    pub key_id: Option<i64>,
    /// `Some(0)` stands for requests that reached no channel.
    pub target_id: Option<i64>,
    pub model: Option<String>,
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
    fn add(&mut self, o: &UsageSums) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.estimated_requests += o.estimated_requests;
        self.total_ms_sum += o.total_ms_sum;
    }
}

const WATERMARK: &str = "proxy_usage_rollup_watermark";

fn watermark(conn: &Connection) -> Result<i64> {
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

/// Builds `WHERE` conditions and their parameters for a filter over a table whose
/// key and target columns hold 0 for "none" (`zero_for_none`, the rollups) or NULL.
fn conditions(
    f: &UsageFilter,
    time_col: &str,
    zero_for_none: bool,
) -> (Vec<String>, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut conds = vec![format!("{time_col} >= ?"), format!("{time_col} < ?")];
    let mut args = vec![V::Real(f.since), V::Real(f.until)];
    match f.key_id {
        None => {}
        Some(Some(id)) => {
            conds.push("key_id = ?".into());
            args.push(V::Integer(id));
        }
        Some(None) if zero_for_none => conds.push("key_id = 0".into()),
        Some(None) => conds.push("key_id IS NULL".into()),
    }
    if let Some(t) = f.target_id {
        conds.push("target_id = ?".into());
        args.push(V::Integer(t));
    }
    if let Some(m) = &f.model {
        conds.push("model = ?".into());
        args.push(V::Text(m.clone()));
    }
    (conds, args)
}

/// Runs a grouped sum query; the select list is the group columns (in `UsageGroup`
/// order) then the six sums.
fn grouped(
    conn: &Connection,
    table: &str,
    time_col: &str,
    g: UsageGrouping,
    conds: Vec<String>,
    args: Vec<rusqlite::types::Value>,
    sums: &str,
) -> Result<Vec<(UsageGroup, UsageSums)>> {
    let bucket = match g.bucket_s {
        Some(s) => format!("CAST({time_col} / {s} AS INTEGER) * {s}"),
        None => "NULL".into(),
    };
    let key = if g.key { "COALESCE(key_id, 0)" } else { "NULL" };
    let target = if g.target {
        "COALESCE(target_id, 0)"
    } else {
        "NULL"
    };
    let model = if g.model { "model" } else { "NULL" };
    let sql = format!(
        "SELECT {bucket}, {key}, {target}, {model}, {sums} FROM {table} WHERE {} \
         GROUP BY 1, 2, 3, 4",
        conds.join(" AND ")
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok((
            UsageGroup {
                bucket_start: r.get(0)?,
                key_id: r.get(1)?,
                target_id: r.get(2)?,
                model: r.get(3)?,
            },
            UsageSums {
                requests: r.get(4)?,
                errors: r.get(5)?,
                input_tokens: r.get(6)?,
                output_tokens: r.get(7)?,
                estimated_requests: r.get(8)?,
                total_ms_sum: r.get(9)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

const RAW_SUMS: &str = "COUNT(*), COALESCE(SUM(status >= 400 OR error_class IS NOT NULL), 0), \
    COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), \
    COALESCE(SUM(tokens_estimated), 0), COALESCE(SUM(total_ms), 0.0)";
const ROLLUP_SUMS: &str = "COALESCE(SUM(requests), 0), COALESCE(SUM(errors), 0), \
    COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), \
    COALESCE(SUM(estimated_requests), 0), COALESCE(SUM(total_ms_sum), 0.0)";

impl Store {
    /// Writes a batch of usage rows and moves each key's `last_used_at` and
    /// `last_used_target_id` forward, in one transaction.
    pub async fn record_usage(&self, rows: Vec<ProxyUsage>) -> Result<()> {
        self.write(move |txn, _| {
            let mut insert = txn.prepare_cached(
                "INSERT INTO proxy_usage (at, key_id, target_id, requested_model, \
                 upstream_model, model, endpoint, stream, status, attempts, ttfb_ms, ttft_ms, \
                 total_ms, input_tokens, output_tokens, tokens_estimated, error_class) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?;
            let mut last: HashMap<i64, (f64, Option<i64>)> = HashMap::new();
            for u in &rows {
                insert.execute(params![
                    u.at,
                    u.key_id,
                    u.target_id,
                    u.requested_model,
                    u.upstream_model,
                    u.model(),
                    u.endpoint.as_str(),
                    u.stream,
                    u.status,
                    u.attempts,
                    u.ttfb_ms,
                    u.ttft_ms,
                    u.total_ms,
                    tokens_i64(u.input_tokens),
                    tokens_i64(u.output_tokens),
                    u.tokens_estimated,
                    u.error_class,
                ])?;
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

    /// Usage grouped as asked, from raw rows or from the rollups of `source` (plus the
    /// raw rows not folded into them yet). Groups come out in order.
    pub async fn usage(
        &self,
        filter: UsageFilter,
        grouping: UsageGrouping,
        source: UsageSource,
    ) -> Result<Vec<(UsageGroup, UsageSums)>> {
        self.read(move |conn, _| {
            let (conds, args) = conditions(&filter, "at", false);
            if source == UsageSource::Raw {
                let mut rows = grouped(conn, "proxy_usage", "at", grouping, conds, args, RAW_SUMS)?;
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                return Ok(rows);
            }
            let mark = watermark(conn)?;
            let (mut conds, mut args) = (conds, args);
            conds.push("id > ?".into());
            args.push(rusqlite::types::Value::Integer(mark));
            let fresh = grouped(conn, "proxy_usage", "at", grouping, conds, args, RAW_SUMS)?;
            // Buckets that start within the range (the range is widened to whole
            // buckets).
            let size = if source == UsageSource::Hour {
                3600.0
            } else {
                86_400.0
            };
            let aligned = UsageFilter {
                since: (filter.since / size).floor() * size,
                ..filter.clone()
            };
            let (mut conds, mut args) = conditions(&aligned, "bucket_start", true);
            conds.push("period = ?".into());
            args.push(rusqlite::types::Value::Text(source.as_str().into()));
            let rolled = grouped(
                conn,
                "proxy_usage_rollups",
                "bucket_start",
                grouping,
                conds,
                args,
                ROLLUP_SUMS,
            )?;
            let mut merged: BTreeMap<UsageGroup, UsageSums> = BTreeMap::new();
            for (g, s) in rolled.into_iter().chain(fresh) {
                merged.entry(g).or_default().add(&s);
            }
            Ok(merged.into_iter().collect())
        })
        .await
    }

    /// Folds usage rows not yet counted into the hourly and daily rollups, at most
    /// `max_rows` of them; a watermark on the row id counts each row once. Returns the
    /// rows folded in.
    pub async fn roll_up_usage(&self, max_rows: i64) -> Result<usize> {
        self.write(move |txn, _| {
            let mark = watermark(txn)?;
            type Key = (&'static str, i64, i64, i64, String);
            let mut aggs: HashMap<Key, UsageSums> = HashMap::new();
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
                    let at: f64 = r.get(1)?;
                    let row = UsageSums {
                        requests: 1,
                        errors: r.get(5)?,
                        input_tokens: r.get(6)?,
                        output_tokens: r.get(7)?,
                        estimated_requests: r.get(8)?,
                        total_ms_sum: r.get(9)?,
                    };
                    for (period, size) in [("hour", 3600.0), ("day", 86_400.0)] {
                        let bucket = ((at / size).floor() * size) as i64;
                        aggs.entry((period, bucket, r.get(2)?, r.get(3)?, r.get(4)?))
                            .or_default()
                            .add(&row);
                    }
                }
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
            for ((period, bucket, key, target, model), s) in aggs {
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
            if last > mark {
                txn.execute(
                    "INSERT INTO meta(key, value) VALUES (?1, ?2) \
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![WATERMARK, last.to_string()],
                )?;
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
