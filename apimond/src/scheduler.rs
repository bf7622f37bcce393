//! The scheduler: when each target is due, which run starts next, and the limits. It
//! decides; it does not run anything. A run that may start is handed, as a
//! [`RunSlot`] (its place among the parallel runs, and the guard that marks the target
//! finished), to the launcher the daemon wired in at start.
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

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::store::schedule::ScheduleEntry;
use crate::store::{Store, StoreError, now};

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

/// What a manual trigger did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerOutcome {
    Started,
    Queued,
}

/// Why a manual trigger was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerRefused {
    AlreadyRunning,
    AlreadyQueued,
    Stopping,
}

/// Starts the run a slot stands for; wired in by the daemon.
pub type Launcher = Box<dyn Fn(RunSlot) + Send + Sync>;

/// One run allowed to start: its place among the parallel runs, released when the
/// slot is dropped, and the mark that the target is running, cleared by
/// [`RunSlot::finished`] or on drop, whichever comes first (an error or a panic still
/// clears it).
pub struct RunSlot {
    pub target_id: i64,
    pub trigger: Trigger,
    scheduler: Arc<Scheduler>,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

impl RunSlot {
    /// The run is stored: the target may run again.
    pub fn finished(&mut self) {
        if !self.done {
            self.done = true;
            self.scheduler
                .running
                .lock()
                .expect("poisoned")
                .remove(&self.target_id);
            self.scheduler.wake.notify_one();
        }
    }
}

impl Drop for RunSlot {
    fn drop(&mut self) {
        self.finished();
    }
}

/// At most `MONITOR_HOST_CONCURRENCY` probes at once to one upstream host and port
/// (several targets often share one relay).
pub struct HostLimits {
    limit: usize,
    permits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl HostLimits {
    pub fn new(limit: usize) -> HostLimits {
        HostLimits {
            limit,
            permits: Mutex::new(HashMap::new()),
        }
    }

    /// The permit for one probe to `host`.
    pub async fn permit(&self, host: &str) -> OwnedSemaphorePermit {
        let sem = {
            let mut map = self.permits.lock().expect("poisoned");
            map.entry(host.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.limit)))
                .clone()
        };
        sem.acquire_owned()
            .await
            .expect("host semaphores are never closed")
    }
}

/// What runs, what waits, the limits.
pub struct Scheduler {
    store: Store,
    launcher: Launcher,
    /// Always locked before `queue` when both are needed.
    running: Mutex<HashSet<i64>>,
    queue: Mutex<VecDeque<Waiting>>,
    wake: Notify,
    run_permits: Arc<Semaphore>,
    max_parallel: usize,
    lag: Mutex<f64>,
    stop: CancellationToken,
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

impl Scheduler {
    /// `stop` ends scheduling: nothing starts after it is cancelled.
    pub fn new(
        store: Store,
        max_parallel: usize,
        launcher: Launcher,
        stop: CancellationToken,
    ) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            store,
            launcher,
            running: Mutex::new(HashSet::new()),
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            run_permits: Arc::new(Semaphore::new(max_parallel)),
            max_parallel,
            lag: Mutex::new(0.0),
            stop,
        })
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
        self.stop.is_cancelled()
    }

    /// Starts a run of the target now, or queues it behind the parallel limit, ahead
    /// of scheduled runs.
    pub fn request_run(self: &Arc<Self>, id: i64) -> Result<TriggerOutcome, TriggerRefused> {
        if self.stopping() {
            return Err(TriggerRefused::Stopping);
        }
        {
            let running = self.running.lock().expect("poisoned");
            let mut queue = self.queue.lock().expect("poisoned");
            if running.contains(&id) {
                return Err(TriggerRefused::AlreadyRunning);
            }
            if queue.iter().any(|w| w.target_id == id) {
                return Err(TriggerRefused::AlreadyQueued);
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
        let started = self.start_waiting_runs();
        Ok(if started.contains(&id) {
            TriggerOutcome::Started
        } else {
            TriggerOutcome::Queued
        })
    }

    /// Pops waiting runs while permits last and hands them to the launcher. Returns
    /// the targets started.
    fn start_waiting_runs(self: &Arc<Self>) -> Vec<i64> {
        let mut started = Vec::new();
        loop {
            if self.stopping() {
                break;
            }
            let Ok(permit) = self.run_permits.clone().try_acquire_owned() else {
                break;
            };
            let next = {
                // Lock order everywhere: `running`, then `queue`.
                let mut running = self.running.lock().expect("poisoned");
                let mut queue = self.queue.lock().expect("poisoned");
                let w = queue.pop_front();
                if let Some(w) = &w {
                    running.insert(w.target_id);
                }
                w
            };
            let Some(w) = next else { break };
            started.push(w.target_id);
            (self.launcher)(RunSlot {
                target_id: w.target_id,
                trigger: w.trigger,
                scheduler: self.clone(),
                done: false,
                _permit: permit,
            });
        }
        self.update_lag();
        started
    }

    fn update_lag(&self) {
        let t = now();
        let lag = self
            .queue
            .lock()
            .expect("poisoned")
            .iter()
            .map(|w| t - w.since)
            .fold(0.0, f64::max);
        *self.lag.lock().expect("poisoned") = (lag * 10.0).round() / 10.0;
    }

    /// One scheduling pass: queue every due target, most overdue first, then start
    /// what the limits allow.
    pub async fn schedule_due(self: &Arc<Self>) -> Result<(), StoreError> {
        if self.stopping() {
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
                let running = self.running.lock().expect("poisoned");
                let mut queue = self.queue.lock().expect("poisoned");
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
            let mut queue = self.queue.lock().expect("poisoned");
            let (manual, mut scheduled): (Vec<Waiting>, Vec<Waiting>) =
                queue.drain(..).partition(|w| w.trigger == Trigger::Manual);
            scheduled.sort_by(|a, b| a.since.total_cmp(&b.since));
            queue.extend(manual);
            queue.extend(scheduled);
        }
        self.start_waiting_runs();
        Ok(())
    }

    /// Runs scheduling passes until the stop token is cancelled.
    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(e) = self.schedule_due().await {
                tracing::error!(error = %e, "scheduling pass failed");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
                _ = self.stop.cancelled() => break,
            }
        }
    }

    /// Stops scheduling (if the stop token is not cancelled yet), drops the queue and
    /// waits up to `grace` for runs in flight to end. False when some are still
    /// running.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.queue.lock().expect("poisoned").clear();
        let all = self.max_parallel as u32;
        tokio::time::timeout(grace, self.run_permits.acquire_many(all))
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
