//! The fake upstream's mutable state: its configuration as changed at runtime, the
//! request counters tests read, and the per-request guard that keeps `in_flight`,
//! `peak_in_flight` and `dropped` honest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;

use crate::Discovery;

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
    finished: bool,
}

impl Flight {
    pub fn start(shared: Arc<Shared>) -> Flight {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak.fetch_max(now, Ordering::SeqCst);
        Flight {
            shared,
            finished: false,
        }
    }

    /// The pause between two stream events (`FakeConfig::event_gap`).
    pub fn event_gap(&self) -> Duration {
        self.shared.event_gap
    }

    /// The body was sent to its end.
    pub fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.dropped.fetch_add(1, Ordering::SeqCst);
        }
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
