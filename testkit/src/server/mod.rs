//! The fake's HTTP side: the route table and the error replies every handler shares.
//! Who may ask lives in `auth`, `/v1/models` in `discovery`, the generation endpoints'
//! replies in `generation` (with the fixed answers misbehaviours give in `canned`).

mod auth;
mod canned;
mod discovery;
mod generation;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::state::{Shared, lock};
use crate::wire::Protocol;
use discovery::models;
use generation::generate;

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

fn record_headers(shared: &Shared, headers: &HeaderMap) {
    *lock(&shared.last_headers) = Some(headers.clone());
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
