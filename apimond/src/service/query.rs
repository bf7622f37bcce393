//! The typed inputs of the read operations — the target list, a target's runs, logs
//! and stats — with each field's default and range. HTTP handlers read them from query
//! strings (`from_query`), RPC handlers build them from typed params (`new`); both go
//! through the checks here, so each field is validated in one place with one message.

use std::collections::HashMap;

use super::{ServiceError, ServiceResult};
use crate::store::log_reads::LogFilter;
use crate::store::runs::LogScope;

/// A query as an adapter read it: checked, or the first field that failed, in the
/// order the fields are documented. Operations open it after their permission check,
/// as they parse bodies, so a caller who may not read learns nothing from it.
pub type Parsed<Q> = ServiceResult<Q>;

/// A query string's fields, as axum's `Query` extracts them.
pub type QueryString = HashMap<String, String>;

fn bad(msg: String) -> ServiceError {
    ServiceError::BadRequest(msg)
}

/// An integer field: its default and accepted range.
struct IntField {
    name: &'static str,
    default: i64,
    min: i64,
    max: i64,
}

impl IntField {
    fn error(&self) -> ServiceError {
        bad(format!(
            "{}: must be an integer from {} to {}",
            self.name, self.min, self.max
        ))
    }

    /// A typed value: none is the default.
    fn check(&self, value: Option<i64>) -> ServiceResult<i64> {
        match value {
            None => Ok(self.default),
            Some(n) if (self.min..=self.max).contains(&n) => Ok(n),
            Some(_) => Err(self.error()),
        }
    }

    /// Query text: empty is absent, and text that is no integer gets the range error.
    fn parse(&self, q: &QueryString) -> ServiceResult<i64> {
        match q
            .get(self.name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
        {
            None => Ok(self.default),
            Some(s) => self.check(Some(s.parse().map_err(|_| self.error())?)),
        }
    }
}

/// How the target list encodes each model's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryFormat {
    /// Per target, the runs once; per model, results aligned with them. Asked for by
    /// apimon's own clients: 10,000 models stay under 3 MB.
    Compact,
    /// Per model, the seed's list of objects: the default, as the Go program answers.
    #[default]
    Full,
}

/// `GET /api/targets?history=&history_format=`, `targets.list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListTargetsQuery {
    /// History points per model.
    pub history: usize,
    pub format: HistoryFormat,
}

impl ListTargetsQuery {
    const HISTORY: IntField = IntField {
        name: "history",
        default: 30,
        min: 0,
        max: crate::store::history::HISTORY_KEEP as i64,
    };

    pub fn new(history: Option<i64>, format: Option<HistoryFormat>) -> Parsed<Self> {
        Ok(ListTargetsQuery {
            history: Self::HISTORY.check(history)? as usize,
            format: format.unwrap_or_default(),
        })
    }

    pub fn from_query(q: &QueryString) -> Parsed<Self> {
        let history = Self::HISTORY.parse(q)? as usize;
        let format = match q.get("history_format").map_or("full", String::as_str) {
            "compact" => HistoryFormat::Compact,
            "full" => HistoryFormat::Full,
            _ => return Err(bad("history_format: must be compact or full".into())),
        };
        Ok(ListTargetsQuery { history, format })
    }
}

/// `GET /api/targets/{id}/runs?limit=`, `runs.list`: the latest runs, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunsQuery {
    pub limit: i64,
}

impl RunsQuery {
    const LIMIT: IntField = IntField {
        name: "limit",
        default: 20,
        min: 1,
        max: 200,
    };

    pub fn new(limit: Option<i64>) -> Parsed<Self> {
        Ok(RunsQuery {
            limit: Self::LIMIT.check(limit)?,
        })
    }

    pub fn from_query(q: &QueryString) -> Parsed<Self> {
        Ok(RunsQuery {
            limit: Self::LIMIT.parse(q)?,
        })
    }
}

/// `GET /api/targets/{id}/logs?limit=&offset=&run_id=&scope=&status=&error_class=&protocol=&route=&q=`,
/// `runs.logs`: probe rows of one run (the latest unless `run_id` names one) or of all
/// runs (`scope=all`, ignored when `run_id` is given), those the filter keeps.
#[derive(Debug, Clone)]
pub struct LogsQuery {
    pub scope: LogScope,
    pub filter: LogFilter,
    pub limit: i64,
    pub offset: i64,
}

/// A filter field that takes one of a closed set of words.
fn one_of(q: &QueryString, name: &str, allowed: &[&str]) -> ServiceResult<Option<String>> {
    match q.get(name).map(String::as_str).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_string())),
        Some(_) => Err(bad(format!(
            "{name}: must be one of {}",
            allowed.join(", ")
        ))),
    }
}

impl LogsQuery {
    const LIMIT: IntField = IntField {
        name: "limit",
        default: 5000,
        min: 1,
        max: 20_000,
    };
    const OFFSET: IntField = IntField {
        name: "offset",
        default: 0,
        min: 0,
        max: i64::MAX / 2,
    };
    /// The longest text `q` searches for, in characters.
    pub const TEXT_MAX: usize = 200;

    /// The rows of one run, the latest when `run_id` is none, from the first.
    pub fn of_run(run_id: Option<i64>, limit: Option<i64>) -> Parsed<Self> {
        Ok(LogsQuery {
            limit: Self::LIMIT.check(limit)?,
            offset: Self::OFFSET.default,
            scope: LogScope::Run(run_id),
            filter: LogFilter::default(),
        })
    }

    pub fn from_query(q: &QueryString) -> Parsed<Self> {
        let limit = Self::LIMIT.parse(q)?;
        let offset = Self::OFFSET.parse(q)?;
        let run_id = match q.get("run_id").filter(|s| !s.is_empty()) {
            None => None,
            Some(r) => Some(
                r.parse::<i64>()
                    .map_err(|_| bad("run_id: must be an integer".into()))?,
            ),
        };
        let scope = match (q.get("scope").map_or("latest", String::as_str), run_id) {
            (_, Some(r)) => LogScope::Run(Some(r)),
            ("latest", None) => LogScope::Run(None),
            ("all", None) => LogScope::All,
            _ => return Err(bad("scope: must be latest or all".into())),
        };
        let classes: Vec<&str> = shared::probe::ErrorClass::ALL
            .iter()
            .map(|c| c.as_str())
            .collect();
        let text = q.get("q").map(|t| t.trim()).filter(|t| !t.is_empty());
        if text.is_some_and(|t| t.chars().count() > Self::TEXT_MAX) {
            return Err(bad(format!("q: at most {} characters", Self::TEXT_MAX)));
        }
        let filter = LogFilter {
            status: one_of(q, "status", &["ok", "slow", "fail"])?,
            error_class: one_of(q, "error_class", &classes)?,
            protocol: one_of(q, "protocol", &["openai", "anthropic", "gemini"])?,
            route: one_of(q, "route", &["chat", "responses", "anthropic", "gemini"])?,
            text: text.map(str::to_string),
        };
        Ok(LogsQuery {
            scope,
            filter,
            limit,
            offset,
        })
    }
}

/// The bucket of a target's rollups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Hour,
    Day,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
        }
    }

    /// How many days back a query may reach, and reaches by default.
    fn days(self) -> IntField {
        let (default, max) = match self {
            Period::Hour => (2, 3650),
            Period::Day => (30, 36_500),
        };
        IntField {
            name: "days",
            default,
            min: 1,
            max,
        }
    }
}

/// `GET /api/targets/{id}/stats?period=&days=`: rollups per model and hour (default
/// the last 2 days) or day (default the last 30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsQuery {
    pub period: Period,
    pub days: i64,
}

impl StatsQuery {
    pub fn from_query(q: &QueryString) -> Parsed<Self> {
        let period = match q.get("period").map_or("hour", String::as_str) {
            "hour" => Period::Hour,
            "day" => Period::Day,
            _ => return Err(bad("period: must be hour or day".into())),
        };
        let days = period.days().parse(q)?;
        Ok(StatsQuery { period, days })
    }
}

/// `GET /api/targets/{id}/errors?days=&limit=`: the most frequent failures of the
/// last days (raw probe rows, kept `RETENTION_RAW_DAYS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorsQuery {
    pub days: i64,
    pub limit: i64,
}

impl ErrorsQuery {
    const DAYS: IntField = IntField {
        name: "days",
        default: 7,
        min: 1,
        max: 36_500,
    };
    const LIMIT: IntField = IntField {
        name: "limit",
        default: 20,
        min: 1,
        max: 200,
    };

    pub fn from_query(q: &QueryString) -> Parsed<Self> {
        Ok(ErrorsQuery {
            days: Self::DAYS.parse(q)?,
            limit: Self::LIMIT.parse(q)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> QueryString {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn message<Q: std::fmt::Debug>(r: Parsed<Q>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn absent_and_empty_integers_take_the_default() {
        assert_eq!(RunsQuery::from_query(&query(&[])).unwrap().limit, 20);
        assert_eq!(
            RunsQuery::from_query(&query(&[("limit", "")]))
                .unwrap()
                .limit,
            20
        );
        assert_eq!(RunsQuery::new(None).unwrap().limit, 20);
    }

    #[test]
    fn text_and_typed_values_out_of_range_get_the_same_message() {
        let want = "limit: must be an integer from 1 to 200";
        assert_eq!(
            message(RunsQuery::from_query(&query(&[("limit", "0")]))),
            want
        );
        assert_eq!(
            message(RunsQuery::from_query(&query(&[("limit", "x")]))),
            want
        );
        assert_eq!(message(RunsQuery::new(Some(201))), want);
        assert_eq!(
            message(LogsQuery::of_run(None, Some(0))),
            "limit: must be an integer from 1 to 20000"
        );
    }

    #[test]
    fn log_fields_are_checked_in_order_and_run_id_wins_over_scope() {
        assert_eq!(
            message(LogsQuery::from_query(&query(&[
                ("limit", "999999"),
                ("offset", "x"),
                ("scope", "some"),
            ]))),
            "limit: must be an integer from 1 to 20000"
        );
        assert_eq!(
            message(LogsQuery::from_query(&query(&[("run_id", "x")]))),
            "run_id: must be an integer"
        );
        assert_eq!(
            message(LogsQuery::from_query(&query(&[("scope", "")]))),
            "scope: must be latest or all"
        );
        let q = LogsQuery::from_query(&query(&[("scope", "some"), ("run_id", "7")])).unwrap();
        assert!(matches!(q.scope, LogScope::Run(Some(7))));
        let q = LogsQuery::from_query(&query(&[("scope", "all"), ("run_id", "")])).unwrap();
        assert!(matches!(q.scope, LogScope::All));
    }

    #[test]
    fn log_filters_take_known_words_and_bounded_text() {
        let q = LogsQuery::from_query(&query(&[
            ("status", "fail"),
            ("error_class", "upstream_5xx"),
            ("protocol", "gemini"),
            ("route", "responses"),
            ("q", "  Boom "),
        ]))
        .unwrap();
        assert_eq!(
            q.filter,
            LogFilter {
                status: Some("fail".into()),
                error_class: Some("upstream_5xx".into()),
                protocol: Some("gemini".into()),
                route: Some("responses".into()),
                text: Some("Boom".into()),
            }
        );
        let q = LogsQuery::from_query(&query(&[("status", ""), ("q", " ")])).unwrap();
        assert_eq!(q.filter, LogFilter::default());
        assert_eq!(
            message(LogsQuery::from_query(&query(&[("status", "bad")]))),
            "status: must be one of ok, slow, fail"
        );
        assert!(
            message(LogsQuery::from_query(&query(&[("error_class", "nope")])))
                .starts_with("error_class: must be one of auth, quota,")
        );
        assert_eq!(
            message(LogsQuery::from_query(&query(&[("q", &"x".repeat(201))]))),
            "q: at most 200 characters"
        );
    }

    #[test]
    fn the_days_of_stats_depend_on_the_period() {
        let q = StatsQuery::from_query(&query(&[])).unwrap();
        assert_eq!((q.period, q.days), (Period::Hour, 2));
        let q = StatsQuery::from_query(&query(&[("period", "day")])).unwrap();
        assert_eq!(q.days, 30);
        assert_eq!(
            message(StatsQuery::from_query(&query(&[("days", "3651")]))),
            "days: must be an integer from 1 to 3650"
        );
        assert_eq!(
            message(StatsQuery::from_query(&query(&[
                ("period", "week"),
                ("days", "x")
            ]))),
            "period: must be hour or day"
        );
    }

    #[test]
    fn the_target_list_defaults_to_the_seeds_history_of_30() {
        let q = ListTargetsQuery::from_query(&query(&[])).unwrap();
        assert_eq!((q.history, q.format), (30, HistoryFormat::Full));
        assert_eq!(ListTargetsQuery::new(None, None).unwrap(), q);
        let q = ListTargetsQuery::from_query(&query(&[("history_format", "compact")])).unwrap();
        assert_eq!(q.format, HistoryFormat::Compact);
        assert_eq!(
            message(ListTargetsQuery::from_query(&query(&[(
                "history_format",
                ""
            )]))),
            "history_format: must be compact or full"
        );
        assert_eq!(
            message(ListTargetsQuery::from_query(&query(&[("history", "-1")]))),
            format!(
                "history: must be an integer from 0 to {}",
                crate::store::history::HISTORY_KEEP
            )
        );
    }
}
