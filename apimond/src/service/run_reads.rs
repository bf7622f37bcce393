//! What runs left behind: a target's runs and the model rows of one run (its logs).

use serde_json::{Value, json};

use super::query::{LogsQuery, Parsed, RunsQuery};
use super::{Caller, Core, ServiceError, ServiceResult};
use crate::store::runs::LogScope;

impl Core {
    pub async fn list_runs(
        &self,
        caller: &Caller,
        id: i64,
        query: Parsed<RunsQuery>,
    ) -> ServiceResult<Value> {
        caller.require_reader()?;
        let RunsQuery { limit } = query?;
        let t = self.load_target(id).await?;
        let runs = self.store.list_runs(id, limit).await?;
        let mut v = json!({ "items": runs, "target": self.target_item(&t, caller).await? });
        self.hide_relay_of(&t.base_url, caller, &mut v);
        Ok(v)
    }

    pub async fn run_logs(
        &self,
        caller: &Caller,
        id: i64,
        query: Parsed<LogsQuery>,
    ) -> ServiceResult<Value> {
        caller.require_reader()?;
        let LogsQuery {
            scope,
            filter,
            limit,
            offset,
        } = query?;
        let t = self.load_target(id).await?;
        let page = self
            .store
            .run_logs(id, scope, filter, limit, offset)
            .await?;
        if let (LogScope::Run(Some(r)), None) = (scope, &page.run) {
            return Err(ServiceError::NotFound(format!(
                "target {id} has no run {r}"
            )));
        }
        // `count` is the seed's (rows in this answer); `total` counts every page.
        let mut v = json!({
            "items": page.rows,
            "count": page.rows.len(),
            "total": page.total,
            "passed_means": page.passed_means,
            "offset": offset,
            "limit": limit,
            "facets": page.facets,
            "run": page.run,
            "target": self.target_item(&t, caller).await?,
        });
        self.hide_relay_of(&t.base_url, caller, &mut v);
        Ok(v)
    }
}
