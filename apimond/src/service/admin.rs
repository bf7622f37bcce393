//! Admin-only reads: the daemon's status, its credentials and the channel list of
//! the admin panel (the resources it uses are in `resources`).

use serde_json::{Value, json};
use shared::rpc::reply::StatusReply;

use super::{Caller, Core, ServiceResult};

impl Core {
    /// What `apimonctl status` shows: version, uptime, counts, runs, scheduler lag.
    pub async fn status(&self, caller: &Caller) -> ServiceResult<StatusReply> {
        caller.require_admin()?;
        let dashboard = self.dashboard(caller).await?;
        Ok(StatusReply {
            version: shared::VERSION.into(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            started_at: self.started_at,
            data_dir: self.config.paths.data_dir.display().to_string(),
            http: format!("{}:{}", self.config.listen.host, self.config.listen.port),
            running_targets: self.running_targets(),
            queued_targets: self.scheduler.queued(),
            scheduler_lag_s: self.scheduler.lag_s(),
            dashboard,
            health: Some(crate::health::readiness(&self.store, &self.scheduler)),
        })
    }

    /// The admin token and panel password in force, for `apimonctl credentials`.
    pub fn credentials(&self, caller: &Caller) -> ServiceResult<Value> {
        caller.require_admin()?;
        let s = self.settings();
        let source = |var: &str| {
            self.config
                .source_of(var)
                .map(|s| s.describe())
                .unwrap_or("generated and stored")
        };
        Ok(json!({
            "admin_token": s.admin_token.expose(),
            "admin_token_source": source("API_MONITOR_TOKEN"),
            "admin_panel_password": s.admin_password.expose(),
            "admin_panel_password_source": source("ADMIN_PANEL_PASSWORD"),
            "file": self.config.paths.data_dir.join(crate::service::settings::CREDENTIALS_FILE).display().to_string(),
        }))
    }

    pub async fn admin_channels(&self, caller: &Caller) -> ServiceResult<Value> {
        caller.require_admin()?;
        let items: Vec<Value> = self
            .store
            .list_targets()
            .await?
            .iter()
            .map(|t| {
                crate::service::targets::target_view(
                    t,
                    caller,
                    &self.settings(),
                    self.scheduler.is_running(t.id),
                )
            })
            .collect();
        Ok(json!({ "items": items }))
    }
}
