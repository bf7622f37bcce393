//! A target's rollups over long windows (counts, latency percentiles and error classes
//! per model) and its most frequent errors.

use serde_json::{Value, json};

use super::query::{ErrorsQuery, Parsed, StatsQuery};
use super::{Caller, Core, ServiceResult};

impl Core {
    /// Rollups of a target: per model and hour (`period=hour`, default last 2 days) or
    /// day (`period=day`, default last 30 days), with counts and p50/p95 of total time
    /// and time to first token.
    pub async fn target_stats(
        &self,
        caller: &Caller,
        id: i64,
        query: Parsed<StatsQuery>,
    ) -> ServiceResult<Value> {
        caller.require_reader()?;
        let StatsQuery { period, days } = query?;
        let period = period.as_str();
        self.load_target(id).await?;
        self.upkeep.roll_up_all().await;
        let since = crate::store::now() - days as f64 * 86_400.0;
        let items = self.store.rollups(id, period, since).await?;
        Ok(json!({ "items": items, "period": period, "since": since, "target_id": id }))
    }

    /// The most frequent failures of a target over the last days, grouped by error
    /// class and text.
    pub async fn target_errors(
        &self,
        caller: &Caller,
        id: i64,
        query: Parsed<ErrorsQuery>,
    ) -> ServiceResult<Value> {
        caller.require_reader()?;
        let ErrorsQuery { days, limit } = query?;
        self.load_target(id).await?;
        let since = crate::store::now() - days as f64 * 86_400.0;
        let items = self.store.top_errors(id, since, limit).await?;
        Ok(json!({ "items": items, "since": since, "target_id": id }))
    }
}
