//! `GET /v1/models`: the configured list, or the failure [`Discovery`] asks for.

use std::sync::Arc;

use axum::extract::{Query, State};
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
