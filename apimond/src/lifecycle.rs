//! One stop signal for the whole daemon: a tree of cancellation tokens under one root,
//! and a tracker of every task the daemon starts, so a shutdown can wait for all of
//! them. Each part of the daemon gets the one branch of the tree it reacts to; the
//! daemon's shutdown cancels the branches in order, and dropping a daemon without a
//! shutdown cancels the root, which ends everything.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The branches of the stop tree. Every token is a child of one root.
#[derive(Clone)]
pub struct Lifecycle {
    root: CancellationToken,
    /// No new runs start and runs in flight take no new probes.
    pub scheduling: CancellationToken,
    /// Runs still in flight after the grace period are cut short (and recorded as
    /// interrupted by the runner).
    pub runs: CancellationToken,
    /// Long-lived streams end: SSE responses, control-socket connections and their
    /// event subscriptions.
    pub streams: CancellationToken,
    /// The HTTP listener stops accepting and finishes open requests.
    pub http: CancellationToken,
    /// Periodic upkeep (rollups, retention, log pruning) stops.
    pub upkeep: CancellationToken,
    /// Proxy usage recording writes what is queued and ends: cancelled only with the
    /// root, after HTTP has finished, so the last requests are recorded.
    pub usage: CancellationToken,
    tracker: TaskTracker,
    /// The main runtime: tasks started from an HTTP connection's thread (a run a
    /// request triggered) belong here, not to that thread's runtime.
    main: Option<tokio::runtime::Handle>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        let root = CancellationToken::new();
        Lifecycle {
            scheduling: root.child_token(),
            runs: root.child_token(),
            streams: root.child_token(),
            http: root.child_token(),
            upkeep: root.child_token(),
            usage: root.child_token(),
            root,
            tracker: TaskTracker::new(),
            main: tokio::runtime::Handle::try_current().ok(),
        }
    }
}

impl Lifecycle {
    /// Starts a task the shutdown will wait for, on the main runtime.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.main {
            Some(main) => self.tracker.spawn_on(task, main),
            None => self.tracker.spawn(task),
        }
    }

    /// Cancels every branch at once.
    pub fn cancel_all(&self) {
        self.root.cancel();
    }

    /// Waits until every task started through [`Lifecycle::spawn`] has ended; tasks
    /// may still start others while it waits.
    pub async fn wait_for_tasks(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Tasks still running.
    pub fn tasks(&self) -> usize {
        self.tracker.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancelling_the_root_reaches_every_branch_and_waiting_sees_every_task_end() {
        let life = Lifecycle::default();
        for token in [
            life.scheduling.clone(),
            life.runs.clone(),
            life.streams.clone(),
            life.http.clone(),
            life.upkeep.clone(),
            life.usage.clone(),
        ] {
            life.spawn(async move { token.cancelled().await });
        }
        assert_eq!(life.tasks(), 6);
        life.cancel_all();
        tokio::time::timeout(std::time::Duration::from_secs(5), life.wait_for_tasks())
            .await
            .expect("every task ends once the root is cancelled");
        assert_eq!(life.tasks(), 0);
    }

    #[test]
    fn a_branch_does_not_cancel_its_siblings() {
        let life = Lifecycle::default();
        life.scheduling.cancel();
        assert!(!life.runs.is_cancelled() && !life.streams.is_cancelled());
    }
}
