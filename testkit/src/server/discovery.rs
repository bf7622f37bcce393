//! The model lists: OpenAI's `GET /v1/models` and Gemini's `GET /v1beta/models` (and
//! `GET /v1beta/models/{model}`), the configured models, or the failure [`Discovery`]
//! asks for.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{auth_refusal, check_auth};
use super::{Params, error_json, forever, json_response, record_headers};
use crate::Discovery;
use crate::state::{Shared, lock};

pub(super) async fn models(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Params,
) -> Response {
    let list = |models: &[String]| {
        let data: Vec<Value> = models
            .iter()
            .map(|m| json!({"id": m, "object": "model", "owned_by": "fake"}))
            .collect();
        json!({"object": "list", "data": data})
    };
    listing(&shared, &headers, &query, list).await
}

/// One model as Gemini's list describes it.
fn gemini_entry(model: &str) -> Value {
    json!({
        "name": format!("models/{model}"),
        "version": "001",
        "displayName": model,
        "description": "A model of the fake upstream",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 8192,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    })
}

pub(super) async fn gemini_models(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Params,
) -> Response {
    let list = |models: &[String]| {
        let entries: Vec<Value> = models.iter().map(|m| gemini_entry(m)).collect();
        json!({ "models": entries })
    };
    listing(&shared, &headers, &query, list).await
}

/// `GET /v1beta/models/{model}`: that model's entry, or 404 when it is not listed.
pub(super) async fn gemini_model(
    State(shared): State<Arc<Shared>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    Query(query): Params,
) -> Response {
    let model = model.strip_prefix("models/").unwrap_or(&model).to_string();
    let response = listing(&shared, &headers, &query, |models| {
        if models.contains(&model) {
            gemini_entry(&model)
        } else {
            Value::Null
        }
    })
    .await;
    let missing = response.status() == StatusCode::OK && !lock(&shared.models).contains(&model);
    if missing {
        let message = format!("models/{model} is not found");
        return json_response(
            StatusCode::NOT_FOUND,
            &error_json(&message, "NOT_FOUND", None),
        );
    }
    response
}

/// A model list in the shape `list` gives it, or the failure [`Discovery`] asks for.
async fn listing(
    shared: &Shared,
    headers: &HeaderMap,
    query: &std::collections::HashMap<String, String>,
    list: impl FnOnce(&[String]) -> Value,
) -> Response {
    record_headers(shared, headers);
    if let Err(key) = check_auth(shared, headers, query) {
        return json_response(StatusCode::UNAUTHORIZED, &auth_refusal(&key));
    }
    let discovery = *lock(&shared.discovery);
    match discovery {
        Discovery::Ok => {
            let models = lock(&shared.models).clone();
            json_response(StatusCode::OK, &list(&models))
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
