//! The fleet at a glance: the dashboard counts and the health answer.

use serde_json::{Value, json};

use super::{Caller, Core, ServiceResult};

impl Core {
    pub async fn dashboard(&self, caller: &Caller) -> ServiceResult<Value> {
        caller.require_reader()?;
        let targets = self.store.list_targets().await?;
        let status = |s: &[&str]| {
            targets
                .iter()
                .filter(|t| t.last_status.as_deref().is_some_and(|v| s.contains(&v)))
                .count()
        };
        Ok(json!({
            "total_targets": targets.len(),
            "enabled_targets": targets.iter().filter(|t| t.enabled).count(),
            "running_targets": self.running_targets().len(),
            "queued_runs": self.scheduler.queued().len(),
            "scheduler_lag_s": self.scheduler.lag_s(),
            "healthy": status(&["healthy"]),
            "degraded": status(&["degraded"]),
            "down_or_error": status(&["down", "error"]),
            "no_models": status(&["no_models"]),
        }))
    }

    /// Live and ready, and the seed's fields. Anyone may ask (load balancers, the
    /// container's health check), so it names problems without paths or secrets.
    pub fn health(&self) -> (bool, Value) {
        let r = crate::health::readiness(&self.store, &self.scheduler);
        let v = json!({
            "ok": r.ready,
            "live": r.live,
            "ready": r.ready,
            "checks": {
                "store_writable": r.store_writable,
                "store_writer_alive": r.store_writer_alive,
                "scheduler_ticking": r.scheduler_ticking,
            },
            "problems": r.problems,
            "running_targets": self.running_targets(),
            "queued_targets": self.scheduler.queued(),
            "scheduler_lag_s": self.scheduler.lag_s(),
            "version": shared::VERSION,
            "uptime_s": self.started.elapsed().as_secs_f64(),
        });
        (r.ready, v)
    }
}
