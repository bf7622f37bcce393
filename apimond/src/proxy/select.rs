//! Which channels a request may go to, best first, or why none: `channel/model` and a
//! pinned channel name one; a bare model picks among the key's channels whose latest
//! probe of it passed and whose breaker is not open, healthy before slow, then lower
//! probe TTFT, taking turns among near-equals.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use shared::probe::ModelStatus;

use super::breaker::{Admission, Breakers};
use super::keys::KeyGrant;
use super::refusal::Refusal;
use super::view::{Channel, RoutingView};

/// TTFTs within this factor (plus [`EQUAL_SLACK_MS`]) of the best count as equal, and
/// share the load.
const EQUAL_FACTOR: f64 = 1.25;
const EQUAL_SLACK_MS: f64 = 50.0;

/// One channel to try: its index in the view and the model id to send it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub channel: usize,
    pub model: String,
}

/// What routing needs to know about a request.
pub struct Ask<'a> {
    pub requested: &'a str,
    pub pinned: Option<i64>,
    /// Models probes cannot test (embeddings) may go to channels that list them
    /// without a passing probe.
    pub unprobed_ok: bool,
}

fn index_of(view: &RoutingView, c: &Channel) -> usize {
    view.index_of(c.id).expect("the channel is in its view")
}

/// Why one channel cannot take the model now, or `None` when it can.
fn obstacle(
    c: &Channel,
    model: &str,
    grant: &KeyGrant,
    breakers: &Breakers,
    unprobed_ok: bool,
) -> Option<String> {
    if !grant.allows_target(c.id) || !grant.allows_model(&c.name, model) {
        return Some("not allowed for this key".into());
    }
    if !c.enabled {
        return Some("channel disabled".into());
    }
    match c.probe(model) {
        None if !unprobed_ok => return Some("not probed yet".into()),
        Some(p) if p.status == ModelStatus::Fail => {
            return Some(format!(
                "failed its latest probe ({})",
                p.error_class.as_deref().unwrap_or("error")
            ));
        }
        _ => {}
    }
    if let Admission::Open { retry_in } = breakers.peek(c.id, model) {
        return Some(format!(
            "circuit breaker open after live failures (next try in {} s)",
            retry_in.as_secs().max(1)
        ));
    }
    if let Err(e) = &c.client {
        return Some(format!("its client cannot be built: {e}"));
    }
    None
}

/// The status a refusal gets when every channel had a reason: 403 when the key is
/// what stands in the way everywhere, else 503.
fn refusal(requested: &str, reasons: Vec<(String, String)>) -> Refusal {
    let forbidden = reasons.iter().all(|(_, r)| r == "not allowed for this key");
    let list: Vec<String> = reasons
        .iter()
        .map(|(name, why)| format!("{name}: {why}"))
        .collect();
    if forbidden {
        Refusal::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            format!("model {requested} is not allowed for this key"),
        )
    } else {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            format!(
                "no working channel for model {requested}: {}",
                list.join("; ")
            ),
        )
    }
}

/// One named channel (by `channel/model` or a pin) with one model.
fn explicit(
    view: &RoutingView,
    c: &Channel,
    model: &str,
    requested: &str,
    grant: &KeyGrant,
    breakers: &Breakers,
) -> Result<Vec<Candidate>, Refusal> {
    if !grant.allows_target(c.id) || !grant.allows_model(&c.name, model) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            format!("model {requested} is not allowed for this key"),
        ));
    }
    if !c.lists(model) {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!(
                "channel {} does not list model {model}{}",
                c.name,
                if c.models.is_empty() {
                    " (it has not been probed yet, so its model list is unknown)"
                } else {
                    ""
                }
            ),
        ));
    }
    // Models probes cannot test stay usable by name: only a failing probe refuses.
    if let Some(why) = obstacle(c, model, grant, breakers, true) {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            format!("model {requested} cannot be used now: {}: {why}", c.name),
        ));
    }
    Ok(vec![Candidate {
        channel: index_of(view, c),
        model: model.to_string(),
    }])
}

/// The candidates for a request, best first; at most `max` of them.
pub fn candidates(
    view: &RoutingView,
    breakers: &Breakers,
    grant: &KeyGrant,
    ask: &Ask<'_>,
    turn: &AtomicUsize,
    max: usize,
) -> Result<Vec<Candidate>, Refusal> {
    let requested = ask.requested;
    if let Some((c, model)) = view.split_explicit(requested) {
        if let Some(pin) = ask.pinned
            && pin != c.id
        {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!(
                    "the model names channel {} but X-Target-Id / target_id pins channel {pin}",
                    c.name
                ),
            ));
        }
        return explicit(view, c, model, requested, grant, breakers);
    }
    if let Some(pin) = ask.pinned {
        let Some(c) = view.channel(pin) else {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                "not_found_error",
                format!("no channel with id {pin} (X-Target-Id / target_id)"),
            ));
        };
        if !grant.allows_target(pin) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                format!("channel {pin} is not allowed for this key"),
            ));
        }
        return explicit(view, c, requested, requested, grant, breakers);
    }
    let mut ranked: Vec<(u8, f64, usize)> = Vec::new();
    let mut reasons: Vec<(String, String)> = Vec::new();
    for c in view.offering(requested) {
        match obstacle(c, requested, grant, breakers, ask.unprobed_ok) {
            Some(why) => reasons.push((c.name.clone(), why)),
            None => {
                let (rank, ttft) = match c.probe(requested) {
                    Some(p) => (
                        if p.status == ModelStatus::Ok { 0 } else { 1 },
                        p.ttft_ms.unwrap_or(p.total_ms),
                    ),
                    None => (2, f64::MAX),
                };
                ranked.push((rank, ttft, index_of(view, c)));
            }
        }
    }
    if ranked.is_empty() {
        if reasons.is_empty() {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                "not_found_error",
                format!(
                    "no channel lists model {requested}; GET /v1/models lists what this key may use"
                ),
            ));
        }
        return Err(refusal(requested, reasons));
    }
    ranked.sort_by(|a, b| (a.0, a.1).partial_cmp(&(b.0, b.1)).expect("no NaN"));
    let (best_rank, best_ttft) = (ranked[0].0, ranked[0].1);
    let equals = ranked
        .iter()
        .take_while(|r| r.0 == best_rank && r.1 <= best_ttft * EQUAL_FACTOR + EQUAL_SLACK_MS)
        .count();
    if equals > 1 {
        let shift = turn.fetch_add(1, Ordering::Relaxed) % equals;
        ranked[..equals].rotate_left(shift);
    }
    Ok(ranked
        .into_iter()
        .take(max)
        .map(|(_, _, channel)| Candidate {
            channel,
            model: requested.to_string(),
        })
        .collect())
}

/// Whether the key may use `model` on `c` now (for `/v1/models`): as routing would
/// decide it for `channel/model` (`explicit`) or as a bare candidate.
pub fn usable(
    c: &Channel,
    model: &str,
    grant: &KeyGrant,
    breakers: &Breakers,
    explicit: bool,
) -> bool {
    obstacle(c, model, grant, breakers, explicit).is_none()
}
