//! The generation endpoints' handler: parse the request, pick the misbehaviour its model
//! names, and write the reply, plain or streamed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use super::auth::{auth_refusal, check_auth, presented_keys};
use super::canned::{Canned, canned, failure};
use super::{RecordSeq, forever, record_headers};
use crate::Failure;
use crate::behaviour::{Behaviour, relay_framing};
use crate::body::{Event, Framing, Out, fixed, produced};
use crate::records::ReportedUsage;
use crate::request;
use crate::state::{Flight, Shared, lock};
use crate::wire::{Finish, Meta, Protocol, encoder, plain, tokens};

const REASONING: &str = "Let me read the question carefully and find the answer.";
const CHUNK: usize = 64 * 1024;
const HUGE_CHUNKS: usize = 1024;
const ENDLESS_TICK: Duration = Duration::from_millis(20);

/// Splits a reply into 2–3 stream pieces on character boundaries.
fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 2 {
        return if text.is_empty() {
            vec![]
        } else {
            vec![text.to_string()]
        };
    }
    let n = if chars.len() >= 3 { 3 } else { 2 };
    let size = chars.len().div_ceil(n);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How a stream behaves after its opening events.
#[derive(Clone, Copy)]
struct StreamPlan {
    behaviour: Behaviour,
    framing: Framing,
    slow_delay: Duration,
}

#[allow(clippy::too_many_arguments)] // one per part of the request; a struct would only rename them
pub(super) async fn generate(
    shared: Arc<Shared>,
    seq: RecordSeq,
    protocol: Protocol,
    headers: HeaderMap,
    query: HashMap<String, String>,
    body: Bytes,
    gemini_route: Option<(String, bool)>,
) -> Response {
    record_headers(&shared, &headers);
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let mut flight = Flight::start(shared.clone(), seq.0);
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    if let Some(value) = &parsed {
        *lock(&shared.last_body) = Some(value.clone());
    }
    let (model, stream) = match gemini_route {
        Some(route) => route,
        None => {
            let model = parsed
                .as_ref()
                .and_then(|b| b.get("model"))
                .and_then(Value::as_str);
            let stream = parsed.as_ref().is_some_and(request::wants_stream);
            (model.unwrap_or_default().to_string(), stream)
        }
    };
    let nth = if model.is_empty() {
        0
    } else {
        shared.count_model(&model)
    };
    flight.asked_for(&model, stream);

    if !shared.probe_delay.is_zero() {
        tokio::time::sleep(shared.probe_delay).await;
    }
    let presented = match check_auth(&shared, &headers, &query) {
        Ok(()) => presented_keys(&headers, &query)
            .first()
            .copied()
            .unwrap_or_default()
            .to_string(),
        Err(key) => return Canned::json(StatusCode::UNAUTHORIZED, auth_refusal(&key)).send(flight),
    };
    let Some(parsed) = parsed else {
        return Canned::bad_request("Request body is not valid JSON").send(flight);
    };
    if model.is_empty() {
        return Canned::bad_request("you must provide a model parameter").send(flight);
    }

    let behaviour = match shared.failure_for(&model) {
        Some(Failure::HangBeforeHeaders) => return forever().await,
        Some(Failure::ErrorAfterFirstByte) => Behaviour::CutAfterFirstByte,
        Some(Failure::Status(status)) => return failure(status, &presented, flight),
        None => Behaviour::for_model(&model),
    };
    if behaviour == Behaviour::Hang || (behaviour == Behaviour::RoleOnlyHang && !stream) {
        return forever().await;
    }
    if let Some(canned) = canned(behaviour, stream, nth, &model, &presented) {
        return canned.send(flight);
    }

    let relay = relay_framing(&model);
    let prompt = request::prompt(protocol, &parsed);
    let text = match behaviour {
        Behaviour::WrongAnswer => "I am a helpful assistant.".to_string(),
        Behaviour::EmptyText | Behaviour::ReasoningOnly | Behaviour::Filter => String::new(),
        _ => shared::probe::challenge::solve(&prompt)
            .unwrap_or_else(|| format!("Hello from {model}")),
    };
    let reasoning = match behaviour {
        Behaviour::Reasoning | Behaviour::ReasoningOnly => REASONING,
        _ if relay && protocol == Protocol::Chat => REASONING,
        _ => "",
    };
    let reported = match behaviour {
        Behaviour::WrongModel => "some-other-model".to_string(),
        Behaviour::DatedModel => format!("{model}-2024-08-06"),
        _ => model.clone(),
    };
    let meta = Meta {
        id: shared.next_id(),
        model: reported,
        created: now_secs(),
        input_tokens: tokens(prompt.len()),
        finish: match behaviour {
            Behaviour::ReasoningOnly => Finish::Length,
            Behaviour::Filter => Finish::ContentFilter,
            _ => Finish::Stop,
        },
        include_usage: request::include_usage(&parsed),
    };

    let usage = ReportedUsage {
        input_tokens: meta.input_tokens,
        output_tokens: tokens(reasoning.len()) + tokens(text.len()),
    };
    if !stream {
        let mut body = plain(protocol, &meta, reasoning, &text).to_string();
        match behaviour {
            Behaviour::CutAfterFirstByte => return half_then_cut(flight, body),
            Behaviour::Huge => return huge_plain(flight, false),
            Behaviour::Endless => return huge_plain(flight, true),
            Behaviour::Slow => tokio::time::sleep(shared.slow_delay).await,
            Behaviour::Cut => {
                // Cut mid-JSON, as if the connection closed before the body ended.
                let half = (0..=body.len() / 2)
                    .rev()
                    .find(|&i| body.is_char_boundary(i))
                    .unwrap_or(0);
                body.truncate(half);
            }
            _ => {}
        }
        if behaviour != Behaviour::Cut {
            flight.log().usage(usage);
        }
        return fixed(flight, StatusCode::OK, "application/json", &[], body);
    }
    // Streamed chat completions report usage only when asked to.
    let usage = (protocol != Protocol::Chat || meta.include_usage).then_some(usage);

    let sse = protocol != Protocol::Gemini || query.get("alt").is_some_and(|a| a == "sse");
    let framing = match (sse, relay) {
        (false, _) => Framing::JsonArray,
        (true, true) => Framing::RelaySse,
        (true, false) => Framing::Sse,
    };
    let plan = StreamPlan {
        behaviour,
        framing,
        slow_delay: shared.slow_delay,
    };
    let reasoning = reasoning.to_string();
    produced(
        flight,
        StatusCode::OK,
        framing.content_type(),
        framing,
        &[],
        move |out| write_stream(out, protocol, meta, plan, reasoning, text, usage),
    )
}

/// Half of a plain body, then the connection is cut.
pub(super) fn half_then_cut(flight: Flight, body: String) -> Response {
    produced(
        flight,
        StatusCode::OK,
        "application/json",
        Framing::Sse,
        &[],
        move |mut out| async move {
            let half = (1..=body.len() / 2)
                .rev()
                .find(|&i| body.is_char_boundary(i))
                .unwrap_or(body.len());
            out.raw(Bytes::copy_from_slice(&body.as_bytes()[..half]))
                .await?;
            out.cut().await
        },
    )
}

/// A non-stream body that never fits a size cap: `{"choices":[{"message":{"content":"`
/// and then `a`s, 64 MiB of them, or, `endless`, a KiB every tick forever.
fn huge_plain(flight: Flight, endless: bool) -> Response {
    produced(
        flight,
        StatusCode::OK,
        "application/json",
        Framing::Sse,
        &[],
        move |mut out| async move {
            out.raw(r#"{"choices":[{"message":{"content":""#).await?;
            if endless {
                let chunk = Bytes::from(vec![b'a'; 1024]);
                loop {
                    tokio::time::sleep(ENDLESS_TICK).await;
                    out.raw(chunk.clone()).await?;
                }
            }
            let chunk = Bytes::from(vec![b'a'; CHUNK]);
            for _ in 0..HUGE_CHUNKS {
                out.raw(chunk.clone()).await?;
            }
            out.raw(r#""}}]}"#).await
        },
    )
}

async fn write_stream(
    mut out: Out,
    protocol: Protocol,
    meta: Meta,
    plan: StreamPlan,
    reasoning: String,
    text: String,
    usage: Option<ReportedUsage>,
) -> Result<(), crate::body::Gone> {
    let mut enc = encoder(protocol, meta);
    match plan.behaviour {
        Behaviour::Garbage => {
            for _ in 0..3 {
                out.event(&Event::data("not json at all".into())).await?;
            }
            return match plan.framing {
                Framing::JsonArray => out.close().await,
                Framing::Sse | Framing::RelaySse => out.event(&Event::data("[DONE]".into())).await,
            };
        }
        Behaviour::RoleOnlyHang => {
            out.events(enc.open()).await?;
            return forever().await;
        }
        _ => {}
    }

    out.events(enc.open()).await?;
    match plan.behaviour {
        Behaviour::Slow => tokio::time::sleep(plan.slow_delay).await,
        Behaviour::Huge => {
            let chunk = "a".repeat(CHUNK);
            for _ in 0..HUGE_CHUNKS {
                out.events(enc.text(&chunk)).await?;
            }
            out.events(enc.finish()).await?;
            return out.close().await;
        }
        Behaviour::Endless => loop {
            tokio::time::sleep(ENDLESS_TICK).await;
            out.events(enc.text("tick ")).await?;
        },
        _ => {}
    }
    for piece in pieces(&reasoning) {
        out.events(enc.reasoning(&piece)).await?;
    }
    let text_pieces = pieces(&text);
    match plan.behaviour {
        // Both end without the protocol's terminator (and, for Gemini's array, without `]`).
        Behaviour::Midstream => {
            if let Some(first) = text_pieces.first() {
                out.events(enc.text(first)).await?;
            }
            out.events(enc.error()).await
        }
        Behaviour::Cut => {
            for piece in &text_pieces {
                out.events(enc.text(piece)).await?;
            }
            Ok(())
        }
        Behaviour::CutAfterFirstByte => {
            if let Some(first) = text_pieces.first() {
                out.events(enc.text(first)).await?;
            }
            out.cut().await
        }
        _ => {
            for piece in &text_pieces {
                out.events(enc.text(piece)).await?;
            }
            out.events(enc.finish()).await?;
            if let Some(usage) = usage {
                out.reported(usage);
            }
            out.close().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn replies_split_into_two_or_three_pieces() {
        assert_eq!(pieces("mango"), ["ma", "ng", "o"]);
        assert_eq!(pieces("ab"), ["a", "b"]);
        assert_eq!(pieces("余额不足"), ["余额", "不足"]);
        assert_eq!(pieces("Hello from gpt-4o").concat(), "Hello from gpt-4o");
        assert!(pieces("").is_empty());
    }
}
