//! The circuit breaker per (channel, model), fed by live outcomes of proxied requests:
//! [`FAILURES_TO_TRIP`] failures in a row open it; after the cooldown one trial request
//! goes through (half-open); its success closes the breaker, its failure opens it again.
//! Routing skips open breakers. Every change is published on the event bus.

// foldhash (seeded per process) costs far less than SipHash per lookup; the keys
// are channel ids and the model ids their channels list.
use foldhash::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::events::{Bus, Event};
use crate::store::now;

/// Live failures in a row that open a breaker.
pub const FAILURES_TO_TRIP: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open {
        until: Instant,
    },
    /// One trial is allowed; `trial` says whether it is in flight.
    HalfOpen {
        trial: bool,
    },
}

#[derive(Debug, Clone)]
struct Breaker {
    state: State,
    failures: u32,
    opened_at: Option<f64>,
}

/// May a request go to this channel's model now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Yes,
    /// Yes, as the half-open trial; its outcome decides.
    Trial,
    /// No: the breaker is open (or its trial is in flight) for about this long.
    Open {
        retry_in: Duration,
    },
}

/// What a live request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Neither (the client went away, or a client error such as 400): a trial in
    /// flight is given back.
    Neutral,
}

/// A breaker as the API and the CLI show it.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerView {
    pub target_id: i64,
    pub target_name: String,
    pub model: String,
    pub state: &'static str,
    pub failures: u32,
    pub opened_at: Option<f64>,
    pub retry_at: Option<f64>,
}

pub struct Breakers {
    by_target: Mutex<HashMap<i64, HashMap<String, Breaker>>>,
    /// How many breakers `by_target` holds (changed under its lock). Usually none:
    /// then every request is admitted and its success recorded without the lock,
    /// which every request on every thread would otherwise take twice.
    count: AtomicUsize,
    cooldown: Duration,
    bus: Bus,
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Closed => "closed",
        State::Open { .. } => "open",
        State::HalfOpen { .. } => "half_open",
    }
}

impl Breakers {
    pub fn new(cooldown: Duration, bus: Bus) -> Breakers {
        Breakers {
            by_target: Mutex::default(),
            count: AtomicUsize::new(0),
            cooldown,
            bus,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, HashMap<String, Breaker>>> {
        self.by_target.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request may go to `model` on the target now, without taking a trial
    /// (for listings and refusal reasons).
    pub fn peek(&self, target_id: i64, model: &str) -> Admission {
        if self.count.load(Ordering::Acquire) == 0 {
            return Admission::Yes;
        }
        let map = self.lock();
        match map.get(&target_id).and_then(|m| m.get(model)) {
            None => Admission::Yes,
            Some(b) => match b.state {
                State::Closed => Admission::Yes,
                State::Open { until } => {
                    let now = Instant::now();
                    if now >= until {
                        Admission::Trial
                    } else {
                        Admission::Open {
                            retry_in: until - now,
                        }
                    }
                }
                State::HalfOpen { trial: false } => Admission::Trial,
                State::HalfOpen { trial: true } => Admission::Open {
                    retry_in: Duration::from_secs(1),
                },
            },
        }
    }

    /// Asks to send a request; a [`Admission::Trial`] must be followed by
    /// [`Breakers::record`].
    pub fn admit(&self, target_id: i64, target_name: &str, model: &str) -> Admission {
        if self.count.load(Ordering::Acquire) == 0 {
            return Admission::Yes;
        }
        let mut map = self.lock();
        let Some(b) = map.get_mut(&target_id).and_then(|m| m.get_mut(model)) else {
            return Admission::Yes;
        };
        let now = Instant::now();
        match b.state {
            State::Closed => Admission::Yes,
            State::Open { until } if now < until => Admission::Open {
                retry_in: until - now,
            },
            State::Open { .. } | State::HalfOpen { trial: false } => {
                let was = b.state;
                b.state = State::HalfOpen { trial: true };
                if !matches!(was, State::HalfOpen { .. }) {
                    let ev = self.event(target_id, target_name, model, b);
                    drop(map);
                    self.bus.publish(ev);
                }
                Admission::Trial
            }
            State::HalfOpen { trial: true } => Admission::Open {
                retry_in: Duration::from_secs(1),
            },
        }
    }

    /// Feeds a live outcome.
    pub fn record(&self, target_id: i64, target_name: &str, model: &str, outcome: Outcome) {
        // The common case: a success on a model that never failed changes nothing
        // and allocates nothing.
        let harmless = matches!(outcome, Outcome::Success | Outcome::Neutral);
        if harmless && self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut map = self.lock();
        let b = match (harmless, map.get(&target_id).and_then(|m| m.get(model))) {
            (true, None) => return,
            _ => match map.entry(target_id).or_default().entry(model.to_string()) {
                std::collections::hash_map::Entry::Occupied(b) => b.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    self.count.fetch_add(1, Ordering::Release);
                    v.insert(Breaker {
                        state: State::Closed,
                        failures: 0,
                        opened_at: None,
                    })
                }
            },
        };
        let before = b.state;
        match (outcome, b.state) {
            (Outcome::Neutral, State::HalfOpen { .. }) => {
                b.state = State::HalfOpen { trial: false }
            }
            (Outcome::Neutral, _) => {}
            (Outcome::Success, _) => {
                b.state = State::Closed;
                b.failures = 0;
                b.opened_at = None;
            }
            (Outcome::Failure, State::HalfOpen { .. }) => self.open(b),
            (Outcome::Failure, State::Closed) => {
                b.failures += 1;
                if b.failures >= FAILURES_TO_TRIP {
                    self.open(b);
                }
            }
            // Requests admitted before it opened: counted, the cooldown stands.
            (Outcome::Failure, State::Open { .. }) => b.failures += 1,
        }
        let changed = state_name(before) != state_name(b.state);
        let ev = changed.then(|| self.event(target_id, target_name, model, b));
        if b.state == State::Closed
            && b.failures == 0
            && let Some(m) = map.get_mut(&target_id)
            && m.remove(model).is_some()
        {
            self.count.fetch_sub(1, Ordering::Release);
        }
        drop(map);
        if let Some(ev) = ev {
            self.bus.publish(ev);
        }
    }

    fn open(&self, b: &mut Breaker) {
        b.state = State::Open {
            until: Instant::now() + self.cooldown,
        };
        b.opened_at = Some(now());
    }

    fn retry_at(b: &Breaker) -> Option<f64> {
        match b.state {
            State::Open { until } => Some(
                now()
                    + until
                        .saturating_duration_since(Instant::now())
                        .as_secs_f64(),
            ),
            _ => None,
        }
    }

    fn event(&self, target_id: i64, target_name: &str, model: &str, b: &Breaker) -> Event {
        Event::BreakerChanged {
            target_id,
            target_name: target_name.to_string(),
            model: model.to_string(),
            state: state_name(b.state),
            failures: b.failures,
            retry_at: Self::retry_at(b),
            ts: now(),
        }
    }

    /// Every breaker that is open, half-open, or closed with failures counted, with
    /// the channel names `name_of` gives.
    pub fn list(&self, name_of: impl Fn(i64) -> String) -> Vec<BreakerView> {
        let map = self.lock();
        let mut out: Vec<BreakerView> = map
            .iter()
            .flat_map(|(id, models)| {
                models.iter().map(|(model, b)| BreakerView {
                    target_id: *id,
                    target_name: name_of(*id),
                    model: model.clone(),
                    state: state_name(b.state),
                    failures: b.failures,
                    opened_at: b.opened_at,
                    retry_at: Self::retry_at(b),
                })
            })
            .collect();
        out.sort_by(|a, b| (a.target_id, &a.model).cmp(&(b.target_id, &b.model)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_after_repeated_failures_tries_once_after_the_cooldown_and_closes_on_success() {
        let bus = Bus::default();
        let mut events = bus.subscribe();
        let b = Breakers::new(Duration::from_millis(50), bus);
        for _ in 0..FAILURES_TO_TRIP - 1 {
            b.record(1, "a", "m", Outcome::Failure);
            assert_eq!(b.admit(1, "a", "m"), Admission::Yes);
        }
        b.record(1, "a", "m", Outcome::Failure);
        assert!(matches!(b.admit(1, "a", "m"), Admission::Open { .. }));
        assert_eq!(b.admit(1, "a", "other"), Admission::Yes);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit(1, "a", "m"), Admission::Trial);
        assert!(
            matches!(b.admit(1, "a", "m"), Admission::Open { .. }),
            "one trial at a time"
        );
        b.record(1, "a", "m", Outcome::Failure);
        assert!(matches!(b.admit(1, "a", "m"), Admission::Open { .. }));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit(1, "a", "m"), Admission::Trial);
        b.record(1, "a", "m", Outcome::Success);
        assert_eq!(b.admit(1, "a", "m"), Admission::Yes);
        assert!(b.list(|_| "a".into()).is_empty());
        assert_eq!(
            b.count.load(Ordering::Relaxed),
            0,
            "closed breakers are let go"
        );
        // Once none is held, admission skips the lock; a new run of failures trips
        // a breaker again all the same.
        for _ in 0..FAILURES_TO_TRIP {
            b.record(1, "a", "m", Outcome::Failure);
        }
        assert!(matches!(b.admit(1, "a", "m"), Admission::Open { .. }));
        assert!(matches!(b.peek(1, "m"), Admission::Open { .. }));
        assert_eq!(b.count.load(Ordering::Relaxed), 1);
        let mut states = Vec::new();
        while let Ok(crate::events::Received::Event(Event::BreakerChanged { state, .. })) =
            tokio_test_recv(&mut events)
        {
            states.push(state);
        }
        assert_eq!(
            states,
            ["open", "half_open", "open", "half_open", "closed", "open"]
        );
    }

    fn tokio_test_recv(
        sub: &mut crate::events::Subscription,
    ) -> Result<crate::events::Received, ()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(10), sub.recv())
                .await
                .map_err(|_| ())
        })
    }

    #[test]
    fn a_success_resets_the_count_and_a_trial_given_back_can_be_taken_again() {
        let b = Breakers::new(Duration::ZERO, Bus::default());
        b.record(1, "a", "m", Outcome::Failure);
        b.record(1, "a", "m", Outcome::Failure);
        b.record(1, "a", "m", Outcome::Success);
        b.record(1, "a", "m", Outcome::Failure);
        assert_eq!(b.admit(1, "a", "m"), Admission::Yes);
        b.record(1, "a", "m", Outcome::Failure);
        b.record(1, "a", "m", Outcome::Failure);
        assert_eq!(b.admit(1, "a", "m"), Admission::Trial);
        b.record(1, "a", "m", Outcome::Neutral);
        assert_eq!(b.peek(1, "m"), Admission::Trial);
        assert_eq!(b.admit(1, "a", "m"), Admission::Trial);
    }
}
