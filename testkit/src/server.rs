//! The HTTP side: routes, authentication, `/v1/models` discovery, and the
//! generation handler that picks a misbehaviour and writes the reply.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::Discovery;
use crate::behaviour::{Behaviour, relay_framing};
use crate::body::{Event, Framing, Out, fixed, produced};
use crate::request;
use crate::state::{Flight, Shared, lock};
use crate::wire::{Finish, Meta, Protocol, encoder, plain, tokens};

type Params = Query<HashMap<String, String>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/responses", post(responses))
        .route("/v1/messages", post(messages))
        .route("/v1beta/models/{target}", post(gemini))
        .route("/v1/models/{target}", post(gemini))
        .fallback(not_found)
        .with_state(shared)
}

/// Waits forever; the request ends only when the client gives up.
async fn forever<T>() -> T {
    let never: Infallible = std::future::pending().await;
    match never {}
}

fn error_json(message: &str, kind: &str, code: Option<&str>) -> Value {
    let mut error = json!({"message": message, "type": kind});
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    json!({ "error": error })
}

/// Echoes the presented key, as real relays do, so tests can check it gets scrubbed.
fn auth_refusal(presented: &str) -> Value {
    error_json(
        &format!("Incorrect API key provided: {presented}"),
        "invalid_request_error",
        Some("invalid_api_key"),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &error_json(
            "Unknown endpoint",
            "invalid_request_error",
            Some("not_found"),
        ),
    )
}

/// The keys a request presents, in the order a refusal picks the one to echo.
fn presented_keys<'a>(headers: &'a HeaderMap, query: &'a HashMap<String, String>) -> Vec<&'a str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut keys = Vec::new();
    if let Some(auth) = header("authorization") {
        keys.push(auth.strip_prefix("Bearer ").unwrap_or(auth).trim());
    }
    keys.extend(header("x-api-key"));
    keys.extend(header("x-goog-api-key"));
    keys.extend(query.get("key").map(String::as_str));
    keys
}

/// `Err` carries the key to echo in the refusal (empty when none was presented).
fn check_auth(
    shared: &Shared,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(), String> {
    let keys = presented_keys(headers, query);
    if keys.contains(&shared.api_key.as_str()) {
        Ok(())
    } else {
        Err(keys.first().copied().unwrap_or_default().to_string())
    }
}

fn record_headers(shared: &Shared, headers: &HeaderMap) {
    *lock(&shared.last_headers) = Some(headers.clone());
}

async fn models(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Params,
) -> Response {
    record_headers(&shared, &headers);
    if let Err(key) = check_auth(&shared, &headers, &query) {
        return json_response(StatusCode::UNAUTHORIZED, &auth_refusal(&key));
    }
    let discovery = *lock(&shared.discovery);
    match discovery {
        Discovery::Ok => {
            let data: Vec<Value> = lock(&shared.models)
                .iter()
                .map(|m| json!({"id": m, "object": "model", "owned_by": "fake"}))
                .collect();
            json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
        }
        Discovery::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = format!("model listing failed with status {code}");
            json_response(status, &error_json(&message, "server_error", None))
        }
        Discovery::NonJson => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<html>oops</html>",
        )
            .into_response(),
        Discovery::MissingData => json_response(StatusCode::OK, &json!({"object": "list"})),
        Discovery::Empty => json_response(StatusCode::OK, &json!({"object": "list", "data": []})),
        Discovery::Hang => forever().await,
    }
}

async fn chat(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Params,
    body: Bytes,
) -> Response {
    generate(shared, Protocol::Chat, headers, query, body, None).await
}

async fn responses(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Params,
    body: Bytes,
) -> Response {
    generate(shared, Protocol::Responses, headers, query, body, None).await
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Params,
    body: Bytes,
) -> Response {
    generate(shared, Protocol::Anthropic, headers, query, body, None).await
}

/// Gemini puts model and method in one path segment: `{model}:generateContent`.
async fn gemini(
    State(shared): State<Arc<Shared>>,
    Path(target): Path<String>,
    headers: HeaderMap,
    Query(query): Params,
    body: Bytes,
) -> Response {
    let route = match target.rsplit_once(':') {
        Some((model, "generateContent")) => (model.to_string(), false),
        Some((model, "streamGenerateContent")) => (model.to_string(), true),
        _ => return not_found().await,
    };
    generate(shared, Protocol::Gemini, headers, query, body, Some(route)).await
}

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

/// A fixed answer some misbehaviours give instead of a reply.
struct Canned {
    status: StatusCode,
    content_type: &'static str,
    extra: &'static [(&'static str, &'static str)],
    body: String,
}

impl Canned {
    fn json(status: StatusCode, body: Value) -> Canned {
        Canned {
            status,
            content_type: "application/json",
            extra: &[],
            body: body.to_string(),
        }
    }

    fn rate_limited() -> Canned {
        let body = error_json(
            "Rate limit reached",
            "rate_limit_error",
            Some("rate_limit_exceeded"),
        );
        Canned {
            extra: &[("retry-after", "1")],
            ..Canned::json(StatusCode::TOO_MANY_REQUESTS, body)
        }
    }

    fn server_error() -> Canned {
        let body = error_json(
            "Internal server error",
            "server_error",
            Some("internal_error"),
        );
        Canned::json(StatusCode::INTERNAL_SERVER_ERROR, body)
    }

    fn bad_request(message: &str) -> Canned {
        let body = error_json(message, "invalid_request_error", None);
        Canned::json(StatusCode::BAD_REQUEST, body)
    }

    fn send(self, flight: Flight) -> Response {
        fixed(
            flight,
            self.status,
            self.content_type,
            self.extra,
            self.body,
        )
    }

    fn error200() -> Canned {
        let body = error_json("upstream channel error", "server_error", None);
        Canned::json(StatusCode::OK, body)
    }
}

/// The canned answer for `behaviour`, if it has one; `nth` counts this model's requests.
fn canned(
    behaviour: Behaviour,
    stream: bool,
    nth: usize,
    model: &str,
    presented: &str,
) -> Option<Canned> {
    Some(match behaviour {
        Behaviour::Flaky if nth == 1 => Canned::server_error(),
        Behaviour::Flaky429 if nth == 1 => Canned::rate_limited(),
        Behaviour::Err500 => Canned::server_error(),
        Behaviour::Err503 => Canned::json(
            StatusCode::SERVICE_UNAVAILABLE,
            error_json(
                "Service temporarily unavailable",
                "server_error",
                Some("service_unavailable"),
            ),
        ),
        Behaviour::Err529 => Canned::json(
            StatusCode::from_u16(529).expect("valid status"),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
        Behaviour::Err429 => Canned::rate_limited(),
        Behaviour::Quota => Canned::json(
            StatusCode::TOO_MANY_REQUESTS,
            error_json(
                "You exceeded your current quota",
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
        ),
        Behaviour::Err401 => Canned::json(StatusCode::UNAUTHORIZED, auth_refusal(presented)),
        Behaviour::NotFound => Canned::json(
            StatusCode::NOT_FOUND,
            error_json(
                &format!("The model `{model}` does not exist"),
                "invalid_request_error",
                Some("model_not_found"),
            ),
        ),
        Behaviour::Err400 => Canned::json(
            StatusCode::BAD_REQUEST,
            error_json(
                "Invalid request: unsupported parameter",
                "invalid_request_error",
                Some("bad_request"),
            ),
        ),
        Behaviour::Error200 => Canned::error200(),
        Behaviour::Midstream if !stream => Canned::error200(),
        Behaviour::CnFail => Canned::json(
            StatusCode::OK,
            json!({"success": false, "message": "余额不足"}),
        ),
        Behaviour::CodeFail => Canned::json(
            StatusCode::OK,
            json!({"code": 500, "message": "no available channel"}),
        ),
        Behaviour::NonJson => Canned {
            content_type: "text/html",
            body: "<html><body>Bad gateway</body></html>".to_string(),
            ..Canned::json(StatusCode::OK, Value::Null)
        },
        _ => return None,
    })
}

/// How a stream behaves after its opening events.
#[derive(Clone, Copy)]
struct StreamPlan {
    behaviour: Behaviour,
    framing: Framing,
    slow_delay: Duration,
}

async fn generate(
    shared: Arc<Shared>,
    protocol: Protocol,
    headers: HeaderMap,
    query: HashMap<String, String>,
    body: Bytes,
    gemini_route: Option<(String, bool)>,
) -> Response {
    record_headers(&shared, &headers);
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let flight = Flight::start(shared.clone());
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

    let behaviour = Behaviour::for_model(&model);
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

    if !stream {
        let mut body = plain(protocol, &meta, reasoning, &text).to_string();
        match behaviour {
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
        return fixed(flight, StatusCode::OK, "application/json", &[], body);
    }

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
        move |out| write_stream(out, protocol, meta, plan, reasoning, text),
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
        _ => {
            for piece in &text_pieces {
                out.events(enc.text(piece)).await?;
            }
            out.events(enc.finish()).await?;
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
