//! The fake upstream's mutable state: its configuration as changed at runtime (models,
//! per-model failures and event gaps), the request counters and records tests read, and
//! the per-request guard that keeps `in_flight`, `peak_in_flight`, `dropped` and each
//! record's outcome honest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;

use crate::records::{Outcome, Records, ReportedUsage, unix_now};
use crate::{Discovery, Failure};

/// Everything the handlers and the `FakeUpstream` handle share.
pub(crate) struct Shared {
    pub api_key: String,
    pub probe_delay: Duration,
    pub slow_delay: Duration,
    pub event_gap: Duration,
    pub models: Mutex<Vec<String>>,
    pub discovery: Mutex<Discovery>,
    pub in_flight: AtomicUsize,
    pub peak: AtomicUsize,
    pub requests: AtomicUsize,
    pub dropped: AtomicUsize,
    pub per_model: Mutex<HashMap<String, usize>>,
    pub last_headers: Mutex<Option<HeaderMap>>,
    pub last_body: Mutex<Option<Value>>,
    pub records: Mutex<Records>,
    /// Failures switched on at runtime, by exact model name.
    pub failures: Mutex<HashMap<String, Failure>>,
    /// A failure for every model without one of its own.
    pub every_failure: Mutex<Option<Failure>>,
    /// Event gaps set at runtime, by exact model name (else `event_gap`).
    pub event_gaps: Mutex<HashMap<String, Duration>>,
    next_id: AtomicU64,
}

impl Shared {
    pub fn new(config: crate::FakeConfig) -> Shared {
        Shared {
            api_key: config.api_key,
            probe_delay: config.probe_delay,
            slow_delay: config.slow_delay,
            event_gap: config.event_gap,
            models: Mutex::new(config.models),
            discovery: Mutex::new(config.discovery),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            per_model: Mutex::new(HashMap::new()),
            last_headers: Mutex::new(None),
            last_body: Mutex::new(None),
            records: Mutex::new(Records::default()),
            failures: Mutex::new(HashMap::new()),
            every_failure: Mutex::new(None),
            event_gaps: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// A number unique within this upstream, for response ids.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a request for `model` and returns how many there have been, this one included.
    pub fn count_model(&self, model: &str) -> usize {
        let mut map = lock(&self.per_model);
        let n = map.entry(model.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    pub fn requests_for(&self, model: &str) -> usize {
        lock(&self.per_model).get(model).copied().unwrap_or(0)
    }

    pub fn failure_for(&self, model: &str) -> Option<Failure> {
        lock(&self.failures)
            .get(model)
            .copied()
            .or(*lock(&self.every_failure))
    }

    pub fn event_gap_for(&self, model: &str) -> Duration {
        lock(&self.event_gaps)
            .get(model)
            .copied()
            .unwrap_or(self.event_gap)
    }

    /// Changes record `seq` (a no-op once it was forgotten).
    pub fn update_record(&self, seq: u64, change: impl FnOnce(&mut crate::Received)) {
        if let Some(record) = lock(&self.records).get_mut(seq) {
            change(record);
        }
    }
}

/// Locks a mutex, ignoring poisoning: a panicking test thread must not make every
/// later assertion about the upstream panic too.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One generation request from arrival until its response body ended or was dropped.
/// Dropping it unfinished means the client went away early.
pub(crate) struct Flight {
    shared: Arc<Shared>,
    /// The request's record.
    seq: u64,
    gap: Duration,
    settled: bool,
}

impl Flight {
    pub fn start(shared: Arc<Shared>, seq: u64) -> Flight {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak.fetch_max(now, Ordering::SeqCst);
        let gap = shared.event_gap;
        Flight {
            shared,
            seq,
            gap,
            settled: false,
        }
    }

    /// Notes the model and stream switch the request asked for, and takes that model's
    /// event gap.
    pub fn asked_for(&mut self, model: &str, stream: bool) {
        self.gap = self.shared.event_gap_for(model);
        let model = (!model.is_empty()).then(|| model.to_string());
        self.shared.update_record(self.seq, |r| {
            r.model = model;
            r.stream = stream;
        });
    }

    /// The pause between two stream events (per model, else `FakeConfig::event_gap`).
    pub fn event_gap(&self) -> Duration {
        self.gap
    }

    /// Where a body's writer notes what it sent.
    pub fn log(&self) -> EventLog {
        EventLog {
            shared: self.shared.clone(),
            seq: self.seq,
        }
    }

    /// The body was sent to its end.
    pub fn finish(self) {
        self.settle(Outcome::Finished);
    }

    /// The fake cut the connection on purpose: not the client's doing.
    pub fn cut(self) {
        self.settle(Outcome::Cut);
    }

    fn settle(mut self, outcome: Outcome) {
        self.settled = true;
        let at = unix_now();
        self.shared.update_record(self.seq, |r| {
            r.outcome = outcome;
            r.ended_at = Some(at);
        });
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if !self.settled {
            self.shared.dropped.fetch_add(1, Ordering::SeqCst);
            let at = unix_now();
            self.shared.update_record(self.seq, |r| {
                r.outcome = Outcome::HungUp;
                r.ended_at = Some(at);
            });
        }
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A body writer's handle on its request's record.
#[derive(Clone)]
pub(crate) struct EventLog {
    shared: Arc<Shared>,
    seq: u64,
}

impl EventLog {
    pub fn event_sent(&self) {
        let at = unix_now();
        self.shared
            .update_record(self.seq, |r| r.events_sent_at.push(at));
    }

    pub fn usage(&self, usage: ReportedUsage) {
        self.shared
            .update_record(self.seq, |r| r.usage = Some(usage));
    }
}
