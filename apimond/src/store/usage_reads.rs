//! Reading proxy usage back: totals and series grouped by key, channel, model and
//! time, from the raw rows, or from the rollups for whole buckets with the raw rows
//! for the rest, so a range's figures are exact wherever raw rows are still kept.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use super::proxy_usage::{UsageSums, watermark};
use super::{Result, Store};

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

/// Sums of raw rows in `[from, to)` matching the filter, optionally only rows not yet
/// folded into the rollups.
fn raw_part(
    conn: &Connection,
    f: &UsageFilter,
    g: UsageGrouping,
    from: f64,
    to: f64,
    after_id: Option<i64>,
) -> Result<Vec<(UsageGroup, UsageSums)>> {
    if from >= to {
        return Ok(Vec::new());
    }
    let part = UsageFilter {
        since: from,
        until: to,
        ..f.clone()
    };
    // Rows not folded yet are found by id (the newest few, a range of the rowid): `+at`
    // keeps SQLite from walking the time index over the whole range instead.
    let time_col = if after_id.is_some() { "+at" } else { "at" };
    let (mut conds, mut args) = conditions(&part, time_col, false);
    if let Some(id) = after_id {
        conds.push("id > ?".into());
        args.push(rusqlite::types::Value::Integer(id));
    }
    grouped(conn, "proxy_usage", "at", g, conds, args, RAW_SUMS)
}

impl Store {
    /// Usage grouped as asked, groups in order. From `Raw`: the rows in the range.
    /// From `Hour` or `Day`: that period's rollups for the whole buckets within the
    /// range, the rows not folded into them yet, and the raw rows of the partial
    /// buckets at either end. An end before `raw_kept_from` (raw rows there are
    /// pruned) is widened to its whole bucket instead.
    pub async fn usage(
        &self,
        filter: UsageFilter,
        grouping: UsageGrouping,
        source: UsageSource,
        raw_kept_from: f64,
    ) -> Result<Vec<(UsageGroup, UsageSums)>> {
        self.read(move |conn, _| {
            let (since, until) = (filter.since, filter.until);
            let size: f64 = match source {
                UsageSource::Raw => 0.0,
                UsageSource::Hour => 3600.0,
                UsageSource::Day => 86_400.0,
            };
            let whole_from = if since < raw_kept_from {
                (since / size.max(1.0)).floor() * size
            } else {
                (since / size.max(1.0)).ceil() * size
            };
            let whole_to = (until / size.max(1.0)).floor() * size;
            let mut parts = Vec::new();
            if source == UsageSource::Raw || whole_from >= whole_to {
                parts.extend(raw_part(conn, &filter, grouping, since, until, None)?);
            } else {
                let mark = watermark(conn)?;
                let (mut conds, mut args) = conditions(
                    &UsageFilter {
                        since: whole_from,
                        until: whole_to,
                        ..filter.clone()
                    },
                    "bucket_start",
                    true,
                );
                conds.push("period = ?".into());
                args.push(rusqlite::types::Value::Text(source.as_str().into()));
                parts.extend(grouped(
                    conn,
                    "proxy_usage_rollups",
                    "bucket_start",
                    grouping,
                    conds,
                    args,
                    ROLLUP_SUMS,
                )?);
                parts.extend(raw_part(
                    conn,
                    &filter,
                    grouping,
                    whole_from,
                    whole_to,
                    Some(mark),
                )?);
                parts.extend(raw_part(conn, &filter, grouping, since, whole_from, None)?);
                parts.extend(raw_part(conn, &filter, grouping, whole_to, until, None)?);
            }
            let mut merged: BTreeMap<UsageGroup, UsageSums> = BTreeMap::new();
            for (g, s) in parts {
                merged.entry(g).or_default().add(&s);
            }
            Ok(merged.into_iter().collect())
        })
        .await
    }
}
