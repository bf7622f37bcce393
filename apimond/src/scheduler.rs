//! The scheduler: when each target is due, which run starts next, and the limits. It
//! decides; it does not run anything. A run that may start is handed, as a
//! [`RunSlot`] (the guard that marks the target finished and counts the run in flight
//! until it ends), to the launcher the daemon wired in at start.
//!
//! A target is due at its previous due time plus its interval (never "last run end
//! plus interval", which drifts), with a fixed per-target offset that spreads targets
//! out. Scheduled runs start, most overdue first, while fewer than
//! `MONITOR_MAX_PARALLEL_TARGETS` runs are in flight. Manual runs start at once (see
//! [`Scheduler::request_run`] for why). A target never runs twice at once and is
//! queued at most once, so the queue is bounded by the number of targets. The lag of
//! the most overdue waiting target is visible in `/api/health` and the dashboard.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::store::schedule::ScheduleEntry;
use crate::store::{Store, StoreError, now};

/// How often due times are checked when nothing wakes the scheduler earlier.
const TICK: Duration = Duration::from_secs(1);
/// No scheduling pass for this long means the scheduler is stuck (a pass comes every
/// [`TICK`] or sooner).
pub const STALL: Duration = Duration::from_secs(10);
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

/// A scheduled run waiting for room under the parallel limit.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    target_id: i64,
    /// When it became due.
    since: f64,
}

/// Why a manual trigger was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerRefused {
    AlreadyRunning,
    Stopping,
}

/// Starts the run a slot stands for; wired in by the daemon.
pub type Launcher = Box<dyn Fn(RunSlot) + Send + Sync>;

/// One run allowed to start: the mark that the target is running, cleared by
/// [`RunSlot::finished`] or on drop, whichever comes first (an error or a panic still
/// clears it), and the run's count among those in flight, which only the drop ends
/// (the shutdown waits for it).
pub struct RunSlot {
    pub target_id: i64,
    pub trigger: Trigger,
    scheduler: Arc<Scheduler>,
    done: bool,
}

impl RunSlot {
    /// The run is stored: the target may run again.
    pub fn finished(&mut self) {
        self.finished_announcing(|| {});
    }

    /// [`RunSlot::finished`], with `announce` called while the mark is cleared under
    /// the scheduler's lock: whoever sees the target no longer running has been sent
    /// the announcement, and whoever reacts to it may run the target again.
    pub fn finished_announcing(&mut self, announce: impl FnOnce()) {
        if !self.done {
            self.done = true;
            {
                let mut running = self.scheduler.running.lock().expect("poisoned");
                running.remove(&self.target_id);
                announce();
            }
            self.scheduler.wake.notify_one();
        }
    }
}

impl Drop for RunSlot {
    fn drop(&mut self) {
        self.finished();
        self.scheduler.in_flight.send_modify(|n| *n -= 1);
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
    /// Targets with a run in flight, manual or scheduled. Always locked before `queue`
    /// when both are needed; a run is counted in `in_flight` under this lock.
    running: Mutex<HashSet<i64>>,
    /// Scheduled runs only: manual runs never wait.
    queue: Mutex<VecDeque<Waiting>>,
    wake: Notify,
    /// Run slots alive, for the shutdown to wait on.
    in_flight: watch::Sender<usize>,
    /// `MONITOR_MAX_PARALLEL_TARGETS`: scheduled runs start only below it.
    max_parallel: usize,
    stop: CancellationToken,
    /// When the last scheduling pass began: the heartbeat health and the watchdog read.
    last_pass: Mutex<std::time::Instant>,
    /// Test hook: while set, the scheduling loop stands still.
    #[cfg(feature = "test-support")]
    wedged: std::sync::atomic::AtomicBool,
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
            in_flight: watch::Sender::new(0),
            max_parallel,
            stop,
            last_pass: Mutex::new(std::time::Instant::now()),
            #[cfg(feature = "test-support")]
            wedged: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// How long ago the last scheduling pass began.
    pub fn since_last_pass(&self) -> Duration {
        self.last_pass.lock().expect("poisoned").elapsed()
    }

    /// The scheduling loop has passed within [`STALL`] (or has stopped on purpose).
    pub fn ticking(&self) -> bool {
        self.stopping() || self.since_last_pass() < STALL
    }

    /// Test hook: stops (`true`) or frees the scheduling loop, as a bug that blocked
    /// it would.
    #[cfg(feature = "test-support")]
    pub fn wedge_for_tests(&self, wedged: bool) {
        self.wedged
            .store(wedged, std::sync::atomic::Ordering::SeqCst);
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
        // Read from the queue when asked, so it grows while runs wait and is never
        // behind the queue it describes.
        let t = now();
        let lag = self
            .queue
            .lock()
            .expect("poisoned")
            .iter()
            .map(|w| t - w.since)
            .fold(0.0, f64::max);
        (lag * 10.0).round() / 10.0
    }

    pub fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Starts a manual run of the target now, even past `MONITOR_MAX_PARALLEL_TARGETS`,
    /// as the Go program does. Someone asked and is waiting for the answer: queued
    /// behind a limit of 2, "run all" over 20 channels took 36 s against the Go
    /// program's 4 s. Raising the default limit instead would also raise the
    /// background load of every installation, which nobody asked for.
    ///
    /// What still bounds a burst of manual runs: a target never runs twice, so there
    /// is at most one run per target; each run keeps `MONITOR_DETECT_CONCURRENCY`
    /// probes; and every probe takes a permit of its upstream host
    /// (`MONITOR_HOST_CONCURRENCY`), so channels sharing a relay do not flood it.
    /// Manual runs in flight count against the limit for scheduled runs, so background
    /// runs wait until the total falls below it rather than piling on top.
    ///
    /// A scheduled run of the target still waiting is replaced by this one.
    pub fn request_run(self: &Arc<Self>, id: i64) -> Result<(), TriggerRefused> {
        let slot = {
            let mut running = self.running.lock().expect("poisoned");
            // Checked under the lock `drain` passes through, so a run either starts
            // before the drain looks at the runs in flight or not at all.
            if self.stopping() {
                return Err(TriggerRefused::Stopping);
            }
            if running.contains(&id) {
                return Err(TriggerRefused::AlreadyRunning);
            }
            self.queue
                .lock()
                .expect("poisoned")
                .retain(|w| w.target_id != id);
            running.insert(id);
            self.new_slot(id, Trigger::Manual)
        };
        (self.launcher)(slot);
        Ok(())
    }

    /// A slot for a target just marked running; called with `running` locked.
    fn new_slot(self: &Arc<Self>, target_id: i64, trigger: Trigger) -> RunSlot {
        self.in_flight.send_modify(|n| *n += 1);
        RunSlot {
            target_id,
            trigger,
            scheduler: self.clone(),
            done: false,
        }
    }

    /// Starts waiting scheduled runs, oldest first, while fewer than
    /// `MONITOR_MAX_PARALLEL_TARGETS` runs (manual ones included) are in flight.
    fn start_waiting_runs(self: &Arc<Self>) {
        loop {
            let slot = {
                // Lock order everywhere: `running`, then `queue`.
                let mut running = self.running.lock().expect("poisoned");
                if self.stopping() || running.len() >= self.max_parallel {
                    break;
                }
                let Some(w) = self.queue.lock().expect("poisoned").pop_front() else {
                    break;
                };
                running.insert(w.target_id);
                self.new_slot(w.target_id, Trigger::Schedule)
            };
            (self.launcher)(slot);
        }
    }

    /// One scheduling pass: queue every due target, most overdue first, then start
    /// what the limits allow.
    pub async fn schedule_due(self: &Arc<Self>) -> Result<(), StoreError> {
        // Runs that cannot be recorded wait until the disk takes writes again (the
        // store checks by itself and health says why).
        let unwritable = matches!(
            self.store.health().writability(),
            crate::store::Writability::Unwritable(_)
        );
        if self.stopping() || unwritable {
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
                // A target already running (a manual run, say) or waiting skips this
                // slot rather than running again right after.
                if !running.contains(&id) && !queue.iter().any(|w| w.target_id == id) {
                    queue.push_back(Waiting {
                        target_id: id,
                        since: at,
                    });
                }
            }
            // The next slot is fixed now, whenever this run gets to start.
            self.store
                .set_next_due(id, next_due(at, interval, t))
                .await?;
        }
        // The most overdue first.
        self.queue
            .lock()
            .expect("poisoned")
            .make_contiguous()
            .sort_by(|a, b| a.since.total_cmp(&b.since));
        self.start_waiting_runs();
        Ok(())
    }

    /// Runs scheduling passes until the stop token is cancelled.
    pub async fn run(self: Arc<Self>) {
        loop {
            #[cfg(feature = "test-support")]
            while self.wedged.load(std::sync::atomic::Ordering::SeqCst) && !self.stopping() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            *self.last_pass.lock().expect("poisoned") = std::time::Instant::now();
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
    /// waits up to `grace` for runs in flight, manual and scheduled, to end. False
    /// when some are still running.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.stop.cancel();
        {
            // Under `running`: a run starting now has been counted, or sees the stop.
            let _running = self.running.lock().expect("poisoned");
            self.queue.lock().expect("poisoned").clear();
        }
        let mut in_flight = self.in_flight.subscribe();
        tokio::time::timeout(grace, in_flight.wait_for(|n| *n == 0))
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
