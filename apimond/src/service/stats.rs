//! A target's rollups over long windows: counts and latency percentiles per model.

use serde_json::{Value, json};

use super::query::{Parsed, StatsQuery};
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
}
