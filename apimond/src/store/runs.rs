//! The `runs` and `run_models` tables: what each run found, and the run status.
//! `probe_runs` writes them as a run goes; this module reads them for the API and
//! recovers interrupted runs; `log_reads` reads a run's probe rows.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Row, params};
use serde::{Deserialize, Serialize};

use super::{Result, Store, now};

/// Where a run is in its life. Stored, and sent to clients, as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Completed,
    /// Discovery failed, or the run failed inside apimond.
    Error,
    /// apimond stopped before the run finished.
    Interrupted,
}

impl RunStatus {
    pub const ALL: [RunStatus; 4] = [
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Error,
        RunStatus::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Error => "error",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl ToSql for RunStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for RunStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        RunStatus::parse(text)
            .ok_or_else(|| FromSqlError::Other(format!("unknown run status {text:?}").into()))
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunRecord {
    pub id: i64,
    pub target_id: i64,
    pub started_at: f64,
    pub finished_at: Option<f64>,
    pub status: RunStatus,
    pub total: i64,
    pub success: i64,
    pub fail: i64,
    pub log_file: Option<String>,
    pub error: Option<String>,
    /// `schedule` or `manual`.
    pub trigger: String,
    /// The target status the run found (`healthy`, `degraded`, …); null while running.
    pub result: Option<String>,
}

pub(super) fn run_from_row(r: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: r.get(0)?,
        target_id: r.get(1)?,
        started_at: r.get(2)?,
        finished_at: r.get(3)?,
        status: r.get(4)?,
        total: r.get(5)?,
        success: r.get(6)?,
        fail: r.get(7)?,
        log_file: r.get(8)?,
        error: r.get(9)?,
        trigger: r.get(10)?,
        result: r.get(11)?,
    })
}

pub(super) const RUN_COLUMNS: &str = "id, target_id, started_at, finished_at, status, total, success, fail, log_file, error, trigger, result";

/// One probe row, with the seed's field names.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunModelRecord {
    pub id: i64,
    pub run_id: i64,
    pub target_id: i64,
    pub protocol: String,
    pub model: String,
    pub success: bool,
    pub duration: Option<f64>,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub content: Option<String>,
    /// The Go program's names of the API: `protocol` above, `route` and `endpoint`
    /// (`chat`, `responses`, `anthropic`/`messages`, `gemini`).
    pub route: Option<String>,
    pub endpoint: Option<String>,
    /// The route rule that chose the API, and the request path (none on the Go
    /// program's rows).
    pub route_rule: Option<String>,
    pub path: Option<String>,
    pub timestamp: f64,
    pub stream: bool,
    pub transport_success: bool,
    pub tool_calls_count: i64,
    /// Always a list, as the Go program answers (its rows store it as JSON text).
    pub tool_calls: Vec<serde_json::Value>,
    /// `ok`, `slow` or `fail` (null for rows from before the probe engine).
    pub status: Option<String>,
    pub error_class: Option<String>,
    pub ttfb_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub total_ms: Option<f64>,
    pub output_tokens: Option<i64>,
    pub tokens_estimated: bool,
    pub tokens_per_s: Option<f64>,
    pub returned_model: Option<String>,
    pub model_mismatch: bool,
    pub attempts: i64,
}

/// A row's stored `tool_calls` text as a list: none, `null` or text that is no JSON
/// list reads as an empty one.
pub(super) fn tool_calls_list(text: Option<&str>) -> Vec<serde_json::Value> {
    match text.map(serde_json::from_str::<serde_json::Value>) {
        Some(Ok(serde_json::Value::Array(calls))) => calls,
        _ => Vec::new(),
    }
}

/// Which probe rows a log query returns.
#[derive(Debug, Clone, Copy)]
pub enum LogScope {
    /// One run: the given one, else the latest.
    Run(Option<i64>),
    /// Every run of the target, newest first.
    All,
}

impl Store {
    pub async fn list_runs(&self, target_id: i64, limit: i64) -> Result<Vec<RunRecord>> {
        self.read(move |conn, _| {
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE target_id = ?1 ORDER BY id DESC LIMIT ?2"
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params![target_id, limit], run_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Marks runs left `running` by a crash as `interrupted`; returns how many.
    pub async fn recover_interrupted_runs(&self) -> Result<usize> {
        self.write(|txn, _| {
            let n = txn.execute(
                "UPDATE runs SET status = ?2, finished_at = ?1, \
                 error = COALESCE(error, 'apimond stopped before the run finished') \
                 WHERE status = ?3",
                params![now(), RunStatus::Interrupted, RunStatus::Running],
            )?;
            Ok(n)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_status_is_stored_and_serialised_as_the_same_lowercase_text() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(
            RunStatus::ALL.map(RunStatus::as_str),
            ["running", "completed", "error", "interrupted"]
        );
        assert_eq!(RunStatus::parse("Running"), None);
    }

    #[test]
    fn stored_tool_calls_always_read_as_a_list() {
        let call = serde_json::json!({"name": "f"});
        assert_eq!(tool_calls_list(Some(r#"[{"name": "f"}]"#)), vec![call]);
        for text in [None, Some("[]"), Some("null"), Some("{}"), Some("not json")] {
            assert_eq!(
                tool_calls_list(text),
                Vec::<serde_json::Value>::new(),
                "{text:?}"
            );
        }
    }
}
