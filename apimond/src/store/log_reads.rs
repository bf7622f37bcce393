//! Reading probe rows back for the logs API and the log viewer: one run (or every run)
//! of a target, filtered by status, error class, protocol, route and text, a page at a
//! time, with the number of rows that match and the counts a filter picker shows.

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};
use serde::Serialize;

use super::runs::{
    LogScope, RUN_COLUMNS, RunModelRecord, RunRecord, run_from_row, tool_calls_list,
};
use super::{Result, Store, optional};

/// A row's status for filters and counts: rows from before the probe engine carry none,
/// and read as `ok` or `fail` from their success flag.
const STATUS_SQL: &str =
    "CASE WHEN status IS NOT NULL THEN status WHEN success THEN 'ok' ELSE 'fail' END";

/// Which of a scope's probe rows a log read keeps; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// `ok`, `slow` or `fail`.
    pub status: Option<String>,
    /// An error class (`timeout`, `auth`, …).
    pub error_class: Option<String>,
    /// `openai`, `anthropic` or `gemini`.
    pub protocol: Option<String>,
    /// The Go program's route names: `chat`, `responses`, `anthropic`, `gemini`.
    pub route: Option<String>,
    /// Text found, ignoring case, in the model, the model the reply named, the error or
    /// the reply.
    pub text: Option<String>,
}

impl LogFilter {
    /// SQL conditions (joined by AND) and their parameters, numbered from `first`.
    fn conditions(&self, first: usize) -> (String, Vec<SqlValue>) {
        let mut sql = String::new();
        let mut values = Vec::new();
        let mut push = |cond: String, v: &str| {
            values.push(SqlValue::Text(v.to_string()));
            let n = first + values.len() - 1;
            sql.push_str(&format!(" AND {}", cond.replace('?', &format!("?{n}"))));
        };
        if let Some(s) = &self.status {
            push(format!("({STATUS_SQL}) = ?"), s);
        }
        if let Some(c) = &self.error_class {
            push("error_class = ?".into(), c);
        }
        if let Some(p) = &self.protocol {
            push("protocol = ?".into(), p);
        }
        if let Some(r) = &self.route {
            push("route = ?".into(), r);
        }
        if let Some(t) = &self.text {
            // One parameter, used four times (`push` numbers every `?` alike).
            push(
                "(instr(lower(model), lower(?)) > 0 \
                 OR instr(lower(COALESCE(returned_model, '')), lower(?)) > 0 \
                 OR instr(lower(COALESCE(error, '')), lower(?)) > 0 \
                 OR instr(lower(COALESCE(content, '')), lower(?)) > 0)"
                    .into(),
                t,
            );
        }
        (sql, values)
    }
}

/// How many rows of the scope (before filtering) have each value: what a filter picker
/// offers.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LogFacets {
    pub status: BTreeMap<String, i64>,
    pub error_class: BTreeMap<String, i64>,
    pub protocol: BTreeMap<String, i64>,
    pub route: BTreeMap<String, i64>,
}

/// Means over the passing rows a filter keeps.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PassedMeans {
    pub total_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
}

/// One page of a log read.
#[derive(Debug, Clone)]
pub struct LogPage {
    /// The run read, when the scope is one run.
    pub run: Option<RunRecord>,
    pub rows: Vec<RunModelRecord>,
    /// Rows matching the filter, over every page.
    pub total: i64,
    /// Mean total time and time to first token of the matching rows that passed, over
    /// every page.
    pub passed_means: PassedMeans,
    pub facets: LogFacets,
}

const ROW_COLUMNS: &str = "id, run_id, target_id, protocol, model, success, duration, status_code, \
     error, content, route, endpoint, timestamp, stream, transport_success, \
     tool_calls_count, tool_calls, status, error_class, ttfb_ms, ttft_ms, total_ms, \
     output_tokens, tokens_estimated, tokens_per_s, returned_model, model_mismatch, \
     attempts, route_rule, path";

fn row_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunModelRecord> {
    let tool_calls: Option<String> = r.get(16)?;
    Ok(RunModelRecord {
        id: r.get(0)?,
        run_id: r.get(1)?,
        target_id: r.get(2)?,
        protocol: r.get(3)?,
        model: r.get(4)?,
        success: r.get(5)?,
        duration: r.get(6)?,
        status_code: r.get(7)?,
        error: r.get(8)?,
        content: r.get(9)?,
        route: r.get(10)?,
        endpoint: r.get(11)?,
        route_rule: r.get(28)?,
        path: r.get(29)?,
        timestamp: r.get(12)?,
        stream: r.get(13)?,
        transport_success: r.get(14)?,
        tool_calls_count: r.get(15)?,
        tool_calls: tool_calls_list(tool_calls.as_deref()),
        status: r.get(17)?,
        error_class: r.get(18)?,
        ttfb_ms: r.get(19)?,
        ttft_ms: r.get(20)?,
        total_ms: r.get(21)?,
        output_tokens: r.get(22)?,
        tokens_estimated: r.get(23)?,
        tokens_per_s: r.get(24)?,
        returned_model: r.get(25)?,
        model_mismatch: r.get(26)?,
        attempts: r.get(27)?,
    })
}

fn facets(conn: &Connection, scope_sql: &str, key: i64) -> Result<LogFacets> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {STATUS_SQL}, error_class, protocol, route, COUNT(*) FROM run_models \
         WHERE {scope_sql} GROUP BY 1, 2, 3, 4"
    ))?;
    let mut out = LogFacets::default();
    let mut q = stmt.query([key])?;
    while let Some(r) = q.next()? {
        let n: i64 = r.get(4)?;
        let add = |map: &mut BTreeMap<String, i64>, v: Option<String>| {
            if let Some(v) = v {
                *map.entry(v).or_default() += n;
            }
        };
        add(&mut out.status, r.get(0)?);
        add(&mut out.error_class, r.get(1)?);
        add(&mut out.protocol, r.get(2)?);
        add(&mut out.route, r.get(3)?);
    }
    Ok(out)
}

impl Store {
    /// A page of the probe rows of a run (its own or the target's latest) or of every
    /// run, newest first, that match `filter`; the run they belong to when one was
    /// chosen.
    pub async fn run_logs(
        &self,
        target_id: i64,
        scope: LogScope,
        filter: LogFilter,
        limit: i64,
        offset: i64,
    ) -> Result<LogPage> {
        self.read(move |conn, _| {
            let run = match scope {
                LogScope::All => None,
                LogScope::Run(Some(id)) => optional(conn.query_row(
                    &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1 AND target_id = ?2"),
                    rusqlite::params![id, target_id],
                    run_from_row,
                ))?,
                LogScope::Run(None) => optional(conn.query_row(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE target_id = ?1 ORDER BY id DESC LIMIT 1"
                    ),
                    [target_id],
                    run_from_row,
                ))?,
            };
            if matches!(scope, LogScope::Run(_)) && run.is_none() {
                return Ok(LogPage {
                    run: None,
                    rows: Vec::new(),
                    total: 0,
                    passed_means: PassedMeans::default(),
                    facets: LogFacets::default(),
                });
            }
            let (scope_sql, key) = match &run {
                Some(r) => ("run_id = ?1", r.id),
                None => ("target_id = ?1", target_id),
            };
            let (cond, values) = filter.conditions(2);
            let mut args: Vec<SqlValue> = vec![SqlValue::Integer(key)];
            args.extend(values);
            let total: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM run_models WHERE {scope_sql}{cond}"),
                params_from_iter(args.iter()),
                |r| r.get(0),
            )?;
            let passed_means = conn.query_row(
                &format!(
                    "SELECT AVG(total_ms), AVG(ttft_ms) FROM run_models \
                     WHERE {scope_sql}{cond} AND success = 1"
                ),
                params_from_iter(args.iter()),
                |r| {
                    Ok(PassedMeans {
                        total_ms: r.get(0)?,
                        ttft_ms: r.get(1)?,
                    })
                },
            )?;
            let n = args.len();
            let sql = format!(
                "SELECT {ROW_COLUMNS} FROM run_models WHERE {scope_sql}{cond} \
                 ORDER BY id DESC LIMIT ?{} OFFSET ?{}",
                n + 1,
                n + 2
            );
            args.push(SqlValue::Integer(limit));
            args.push(SqlValue::Integer(offset));
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), row_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let facets = facets(conn, scope_sql, key)?;
            Ok(LogPage {
                run,
                rows,
                total,
                passed_means,
                facets,
            })
        })
        .await
    }
}

/// One error text and how often failing probes gave it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorGroup {
    pub error_class: Option<String>,
    pub error: Option<String>,
    pub count: i64,
    pub last_seen: f64,
    /// The models that gave it, sorted, at most [`ERROR_GROUP_MODELS`].
    pub models: Vec<String>,
    /// How many models gave it in all.
    pub model_count: i64,
}

/// Models named per error group; the rest are only counted.
pub const ERROR_GROUP_MODELS: usize = 20;

impl Store {
    /// The most frequent failures of a target's probe rows since a time (raw rows, so
    /// at most the raw retention back), most frequent first.
    pub async fn top_errors(
        &self,
        target_id: i64,
        since: f64,
        limit: i64,
    ) -> Result<Vec<ErrorGroup>> {
        self.read(move |conn, _| {
            let mut stmt = conn.prepare(
                "SELECT error_class, error, COUNT(*), MAX(timestamp), \
                 json_group_array(DISTINCT model) FROM run_models \
                 WHERE target_id = ?1 AND success = 0 AND timestamp >= ?2 \
                 GROUP BY error_class, error ORDER BY 3 DESC, 4 DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(rusqlite::params![target_id, since, limit], |r| {
                let models: String = r.get(4)?;
                let mut models: Vec<String> = serde_json::from_str(&models).unwrap_or_default();
                models.sort();
                let model_count = models.len() as i64;
                models.truncate(ERROR_GROUP_MODELS);
                Ok(ErrorGroup {
                    error_class: r.get(0)?,
                    error: r.get(1)?,
                    count: r.get(2)?,
                    last_seen: r.get(3)?,
                    models,
                    model_count,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
