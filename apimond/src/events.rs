//! The event bus: one broadcast channel every subscriber (SSE, RPC) reads. Events
//! carry ids, names, statuses and (scrubbed) probe outcomes, never keys, tokens or
//! base URLs, so they are safe for visitors too. A subscriber that falls behind loses
//! the oldest events and is told how many; it never slows the publishers.

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

/// Events kept for slow subscribers before they start losing them.
pub const BUS_CAPACITY: usize = 4096;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        target_id: i64,
        target_name: String,
        run_id: i64,
        trigger: &'static str,
        ts: f64,
    },
    ModelResult {
        target_id: i64,
        run_id: i64,
        model: String,
        /// The Go program's names of the API the model was probed through.
        protocol: &'static str,
        route: &'static str,
        endpoint: &'static str,
        stream: bool,
        success: bool,
        status: &'static str,
        status_code: Option<u16>,
        ttft_ms: Option<f64>,
        total_ms: f64,
        tokens_per_s: Option<f64>,
        error_class: Option<&'static str>,
        error: Option<String>,
        model_mismatch: bool,
        ts: f64,
    },
    RunCompleted {
        target_id: i64,
        target_name: String,
        run_id: i64,
        /// The target's health as the run found it — `healthy`, `degraded`, `down`,
        /// `no_models` or `error` — as the Go program sends it.
        status: &'static str,
        /// The same, under the name apimon's clients read before `status` carried it.
        target_status: &'static str,
        /// The run's own state: `completed`, `error` or `interrupted`.
        run_status: &'static str,
        total: i64,
        success: i64,
        fail: i64,
        error: Option<String>,
        ts: f64,
    },
    TargetUpdated {
        target_id: i64,
        target_name: String,
        last_status: Option<String>,
        enabled: bool,
        ts: f64,
    },
    TargetDeleted {
        target_id: i64,
        ts: f64,
    },
    ModelsChanged {
        target_id: i64,
        target_name: String,
        added: Vec<String>,
        removed: Vec<String>,
        total: usize,
        ts: f64,
    },
    /// The proxy's circuit breaker for one model of one channel changed state
    /// (`open`, `half_open` or `closed`), fed by live outcomes.
    BreakerChanged {
        target_id: i64,
        target_name: String,
        model: String,
        state: &'static str,
        /// Consecutive live failures counted when it changed.
        failures: u32,
        /// When an open breaker lets a trial request through, Unix seconds.
        retry_at: Option<f64>,
        ts: f64,
    },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::RunStarted { .. } => "run_started",
            Event::ModelResult { .. } => "model_result",
            Event::RunCompleted { .. } => "run_completed",
            Event::TargetUpdated { .. } => "target_updated",
            Event::TargetDeleted { .. } => "target_deleted",
            Event::ModelsChanged { .. } => "models_changed",
            Event::BreakerChanged { .. } => "breaker_changed",
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("events serialise")
    }
}

#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<Event>,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new(BUS_CAPACITY)
    }
}

/// What a subscriber receives next.
pub enum Received {
    Event(Event),
    /// The subscriber fell behind and missed this many events.
    Lagged(u64),
    Closed,
}

pub struct Subscription {
    rx: broadcast::Receiver<Event>,
}

impl Subscription {
    pub async fn recv(&mut self) -> Received {
        match self.rx.recv().await {
            Ok(e) => Received::Event(e),
            Err(broadcast::error::RecvError::Lagged(n)) => Received::Lagged(n),
            Err(broadcast::error::RecvError::Closed) => Received::Closed,
        }
    }
}

impl Bus {
    pub fn new(capacity: usize) -> Self {
        Bus {
            tx: broadcast::channel(capacity).0,
        }
    }

    /// Publishes to whoever listens; never waits.
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// How many subscribers are listening now.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_subscriber_is_told_how_many_it_missed() {
        let bus = Bus::new(4);
        let mut sub = bus.subscribe();
        for id in 0..10 {
            bus.publish(Event::TargetDeleted {
                target_id: id,
                ts: 0.0,
            });
        }
        match sub.recv().await {
            Received::Lagged(n) => assert_eq!(n, 6),
            _ => panic!("expected lagged"),
        }
        match sub.recv().await {
            Received::Event(Event::TargetDeleted { target_id, .. }) => assert_eq!(target_id, 6),
            _ => panic!("expected the oldest kept event"),
        }
    }

    #[test]
    fn events_serialise_with_their_type() {
        let v = Event::TargetDeleted {
            target_id: 3,
            ts: 1.0,
        }
        .to_json();
        assert_eq!(v["type"], "target_deleted");
        assert_eq!(v["target_id"], 3);
    }
}
