//! The scheduler: when each target is due, which run starts next, and the limits.
//!
//! A target is due at its previous due time plus its interval (never "last run end
//! plus interval", which drifts), with a fixed per-target offset that spreads targets
//! out. Runs start while fewer than `MONITOR_MAX_PARALLEL_TARGETS` are in flight:
//! manual triggers first, then the most overdue. A target never runs twice at once
//! and is queued at most once, so the queue is bounded by the number of targets. The
//! lag of the most overdue waiting target is visible in `/api/health` and the
//! dashboard.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use crate::service::{Core, ServiceError, ServiceResult};
use crate::store::now;
use crate::store::schedule::ScheduleEntry;

/// How often due times are checked when nothing wakes the scheduler earlier.
const TICK: Duration = Duration::from_secs(1);
/// New targets run for the first time within this window, spread by id.
const FIRST_RUN_SPREAD_S: f64 = 300.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    target_id: i64,
    trigger: Trigger,
    /// When it became due (scheduled) or was asked for (manual).
    since: f64,
}

/// Shared scheduling state: what runs, what waits, the limits.
pub struct SchedulerState {
    /// Always locked before `queue` when both are needed.
    running: Mutex<HashSet<i64>>,
    queue: Mutex<VecDeque<Waiting>>,
    wake: Notify,
    run_permits: Arc<Semaphore>,
    max_parallel: usize,
    host_permits: Mutex<HashMap<String, Arc<Semaphore>>>,
    host_limit: usize,
    lag: Mutex<f64>,
    stop: watch::Sender<bool>,
}

/// What `POST /api/targets/{id}/run` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerOutcome {
    Started,
    Queued,
}

impl SchedulerState {
    pub fn new(max_parallel: usize, host_limit: usize) -> SchedulerState {
        SchedulerState {
            running: Mutex::new(HashSet::new()),
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            run_permits: Arc::new(Semaphore::new(max_parallel)),
            max_parallel,
            host_permits: Mutex::new(HashMap::new()),
            host_limit,
            lag: Mutex::new(0.0),
            stop: watch::channel(false).0,
        }
    }

    pub fn running(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .running
            .lock()
            .expect("poisoned")
            .iter()
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }

    pub fn is_running(&self, id: i64) -> bool {
        self.running.lock().expect("poisoned").contains(&id)
    }

    pub fn queued(&self) -> Vec<i64> {
        self.queue
            .lock()
            .expect("poisoned")
            .iter()
            .map(|w| w.target_id)
            .collect()
    }

    /// Seconds the most overdue waiting target has waited.
    pub fn lag_s(&self) -> f64 {
        *self.lag.lock().expect("poisoned")
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// The permit for one probe to `host`; at most `MONITOR_HOST_CONCURRENCY` at once.
    pub async fn host_permit(&self, host: &str) -> OwnedSemaphorePermit {
        let sem = {
            let mut map = self.host_permits.lock().expect("poisoned");
            map.entry(host.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.host_limit)))
                .clone()
        };
        sem.acquire_owned()
            .await
            .expect("host semaphores are never closed")
    }

    pub(crate) fn finished(&self, target_id: i64) {
        self.running.lock().expect("poisoned").remove(&target_id);
        self.wake.notify_one();
    }
}

/// The scheduler's fixed offset for a target: spreads first runs over a few minutes
/// and keeps each target's phase stable afterwards.
fn offset_s(target_id: i64, window: f64) -> f64 {
    // A multiplicative hash spreads consecutive ids evenly.
    let h = (target_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    (h as f64 / (1u64 << 53) as f64) * window
}

/// The due time after `due` for an interval, skipping slots already past so a daemon
/// that was down does not replay them, and keeping the phase.
pub fn next_due(due: f64, interval_s: f64, now: f64) -> f64 {
    let mut next = due + interval_s;
    if next <= now {
        let missed = ((now - next) / interval_s).floor() + 1.0;
        next += missed * interval_s;
    }
    next
}

impl Core {
    /// Starts a run of the target now, or queues it behind the parallel limit.
    pub async fn trigger_run(
        &self,
        caller: &crate::service::Caller,
        id: i64,
    ) -> ServiceResult<TriggerOutcome> {
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
            let wait = self.visitor_runs.lock().expect("limiter poisoned").hit(
                crate::service::limiter::ClientKey::of(caller.client),
                std::time::Instant::now(),
            );
            if let Some(retry_after) = wait {
                return Err(ServiceError::TooManyRequests {
                    message: "too many run requests from this client; try again later".into(),
                    retry_after,
                });
            }
        }
        let s = &self.scheduler;
        if s.stopping() {
            return Err(ServiceError::Conflict("apimond is stopping".into()));
        }
        {
            let running = s.running.lock().expect("poisoned");
            let mut queue = s.queue.lock().expect("poisoned");
            if running.contains(&id) {
                return Err(ServiceError::Conflict(format!(
                    "target {id} is already running"
                )));
            }
            if queue.iter().any(|w| w.target_id == id) {
                return Err(ServiceError::Conflict(format!(
                    "target {id} is already queued"
                )));
            }
            // Manual triggers go ahead of scheduled runs, in the order asked.
            let pos = queue
                .iter()
                .position(|w| w.trigger == Trigger::Schedule)
                .unwrap_or(queue.len());
            queue.insert(
                pos,
                Waiting {
                    target_id: id,
                    trigger: Trigger::Manual,
                    since: now(),
                },
            );
        }
        let started = self.start_waiting_runs().await;
        Ok(if started.contains(&id) {
            TriggerOutcome::Started
        } else {
            TriggerOutcome::Queued
        })
    }

    /// Pops waiting runs while permits last and starts them. Returns the targets
    /// started.
    async fn start_waiting_runs(self: &Core) -> Vec<i64> {
        let mut started = Vec::new();
        loop {
            if self.scheduler.stopping() {
                break;
            }
            let Ok(permit) = self.scheduler.run_permits.clone().try_acquire_owned() else {
                break;
            };
            let next = {
                // Lock order everywhere: `running`, then `queue`.
                let mut running = self.scheduler.running.lock().expect("poisoned");
                let mut queue = self.scheduler.queue.lock().expect("poisoned");
                let w = queue.pop_front();
                if let Some(w) = &w {
                    running.insert(w.target_id);
                }
                w
            };
            let Some(w) = next else { break };
            started.push(w.target_id);
            let core = self.self_ref();
            tokio::spawn(async move {
                crate::runner::run_target(core, w.target_id, w.trigger, permit).await;
            });
        }
        self.update_lag();
        started
    }

    fn update_lag(&self) {
        let t = now();
        let lag = self
            .scheduler
            .queue
            .lock()
            .expect("poisoned")
            .iter()
            .map(|w| t - w.since)
            .fold(0.0, f64::max);
        *self.scheduler.lag.lock().expect("poisoned") = (lag * 10.0).round() / 10.0;
    }

    /// One scheduling pass: queue every due target, most overdue first, then start
    /// what the limits allow.
    pub async fn schedule_due(&self) -> ServiceResult<()> {
        if self.scheduler.stopping() {
            return Ok(());
        }
        let t = now();
        let schedule = self.store.schedule().await?;
        let mut due: Vec<(f64, i64, f64)> = Vec::new();
        for ScheduleEntry {
            target_id: id,
            enabled,
            interval_min,
            next_due: next,
        } in schedule
        {
            if !enabled {
                continue;
            }
            let interval = interval_min as f64 * 60.0;
            let at = match next {
                Some(at) => at,
                None => {
                    let first = t + offset_s(id, interval.min(FIRST_RUN_SPREAD_S));
                    self.store.set_next_due(id, first).await?;
                    first
                }
            };
            if at <= t {
                due.push((at, id, interval));
            }
        }
        due.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (at, id, interval) in due {
            {
                let running = self.scheduler.running.lock().expect("poisoned");
                let mut queue = self.scheduler.queue.lock().expect("poisoned");
                // A target already running or waiting (a manual trigger) skips this
                // slot rather than running again right after.
                if !running.contains(&id) && !queue.iter().any(|w| w.target_id == id) {
                    queue.push_back(Waiting {
                        target_id: id,
                        trigger: Trigger::Schedule,
                        since: at,
                    });
                }
            }
            // The next slot is fixed now, whenever this run gets to start.
            self.store
                .set_next_due(id, next_due(at, interval, t))
                .await?;
        }
        // Manual triggers first in the order asked, then the most overdue.
        {
            let mut queue = self.scheduler.queue.lock().expect("poisoned");
            let (manual, mut scheduled): (Vec<Waiting>, Vec<Waiting>) =
                queue.drain(..).partition(|w| w.trigger == Trigger::Manual);
            scheduled.sort_by(|a, b| a.since.total_cmp(&b.since));
            queue.extend(manual);
            queue.extend(scheduled);
        }
        self.start_waiting_runs().await;
        Ok(())
    }

    /// Runs the scheduling loop until the stop signal.
    pub async fn scheduler_loop(self: Arc<Core>) {
        let mut stop = self.scheduler.stop_signal();
        loop {
            if let Err(e) = self.schedule_due().await {
                tracing::error!(error = %e, "scheduling pass failed");
            }
            tokio::select! {
                _ = self.scheduler.wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }

    /// Stops scheduling and waits up to `grace` for runs in flight to end.
    pub async fn stop_scheduler(&self, grace: Duration) -> bool {
        let _ = self.scheduler.stop.send(true);
        self.scheduler.queue.lock().expect("poisoned").clear();
        let all = self.scheduler.max_parallel as u32;
        tokio::time::timeout(grace, self.scheduler.run_permits.acquire_many(all))
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_advance_by_the_interval_without_drift() {
        let interval = 600.0;
        let mut due = 1000.0;
        // Each run starts late and takes long; the slots stay on the grid.
        for k in 1..=5 {
            let started_late = due + 37.0;
            due = next_due(due, interval, started_late);
            assert_eq!(due, 1000.0 + k as f64 * interval);
        }
    }

    #[test]
    fn missed_slots_are_skipped_keeping_the_phase() {
        let next = next_due(1000.0, 600.0, 1000.0 + 3.5 * 600.0);
        assert_eq!(next, 1000.0 + 4.0 * 600.0);
    }

    #[test]
    fn offsets_are_fixed_and_spread() {
        assert_eq!(offset_s(7, 300.0), offset_s(7, 300.0));
        let offsets: Vec<f64> = (1..=100).map(|id| offset_s(id, 300.0)).collect();
        assert!(offsets.iter().all(|o| (0.0..300.0).contains(o)));
        let early = offsets.iter().filter(|o| **o < 150.0).count();
        assert!(
            (30..=70).contains(&early),
            "{early} of 100 in the first half"
        );
    }
}
