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
            limit,
            offset,
        } = query?;
        let t = self.load_target(id).await?;
        let (run, rows) = self.store.run_logs(id, scope, limit, offset).await?;
        if let (LogScope::Run(Some(r)), None) = (scope, &run) {
            return Err(ServiceError::NotFound(format!(
                "target {id} has no run {r}"
            )));
        }
        let mut v = json!({
            "items": rows,
            "count": rows.len(),
            "offset": offset,
            "run": run,
            "target": self.target_item(&t, caller).await?,
        });
        self.hide_relay_of(&t.base_url, caller, &mut v);
        Ok(v)
    }
}
