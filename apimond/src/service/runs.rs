//! Run requests: who may start a run of a target and how often. The scheduler decides
//! when it starts; this decides whether the caller may ask.

use std::time::Instant;

use crate::scheduler::TriggerRefused;

use super::limiter::ClientKey;
use super::{Caller, Core, ServiceError, ServiceResult};

impl Core {
    /// Starts a run of the target now: manual runs never queue (see
    /// `Scheduler::request_run`), so 409 when one is already running is the only wait.
    pub async fn trigger_run(&self, caller: &Caller, id: i64) -> ServiceResult<()> {
        caller.require_reader()?;
        let target = self
            .store
            .get_target(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no target with id {id}")))?;
        if !caller.is_admin() {
            if !target.visitor_channel_actions_enabled {
                return Err(ServiceError::Forbidden(
                    "visitors may not run this target (visitor_channel_actions_enabled is off)"
                        .into(),
                ));
            }
            let wait = self
                .visitor_runs
                .lock()
                .expect("limiter poisoned")
                .hit(ClientKey::of(caller.client), Instant::now());
            if let Some(retry_after) = wait {
                return Err(ServiceError::TooManyRequests {
                    message: "too many run requests from this client; try again later".into(),
                    retry_after,
                });
            }
        }
        // A run that could not record itself would vanish: refuse it while the disk
        // refuses writes.
        if let crate::store::Writability::Unwritable(why) = self.store.health().writability() {
            return Err(ServiceError::Unavailable(format!(
                "cannot start a run now: {why}"
            )));
        }
        self.scheduler.request_run(id).map_err(|refused| {
            ServiceError::Conflict(match refused {
                TriggerRefused::Stopping => "apimond is stopping".into(),
                TriggerRefused::AlreadyRunning => format!("target {id} is already running"),
            })
        })
    }
}
