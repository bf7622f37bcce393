//! The fake's HTTP side: the route table, the recording of every request, the port that
//! can stop and resume listening, and the error replies every handler shares.
//! Who may ask lives in `auth`, the model lists in `discovery`, the generation endpoints'
//! replies in `generation` (with the fixed answers misbehaviours give in `canned`),
//! embeddings in `embeddings`.

mod auth;
mod canned;
mod discovery;
mod embeddings;
mod generation;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::{Shared, lock};
use crate::wire::Protocol;
use discovery::{gemini_model, gemini_models, models};
use embeddings::embeddings;
use generation::generate;

/// The request's record, put in its extensions by `record`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordSeq(pub u64);

/// Bodies bigger than this are refused (and still recorded, without the body).
const BODY_LIMIT: usize = 80 << 20;

type Params = Query<HashMap<String, String>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/responses", post(responses))
        .route("/v1/messages", post(messages))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1beta/models", get(gemini_models))
        .route("/v1beta/models/{target}", post(gemini).get(gemini_model))
        .route("/v1/models/{target}", post(gemini))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

/// Records every request before its handler runs, and its status after.
async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, BODY_LIMIT).await;
    let seq = lock(&shared.records).add(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or_default(),
        &parts.headers,
        body.as_ref().cloned().unwrap_or_default(),
    );
    let Ok(body) = body else {
        shared.update_record(seq, |r| r.status = Some(413));
        return json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &error_json("Request body too large", "invalid_request_error", None),
        );
    };
    parts.extensions.insert(RecordSeq(seq));
    let response = next
        .run(Request::from_parts(parts, axum::body::Body::from(body)))
        .await;
    let status = response.status().as_u16();
    shared.update_record(seq, |r| r.status = Some(status));
    response
}

/// Serves `app` on `listener` while `wanted` says so; when it turns false, stops
/// accepting (the port then refuses connections) and closes idle connections, and when
/// it turns true again, binds the same address anew. Ends when the sender is dropped.
pub(crate) async fn serve_while_wanted(
    listener: TcpListener,
    app: Router,
    mut wanted: watch::Receiver<bool>,
) {
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let mut listener = Some(listener);
    loop {
        let current = match listener.take() {
            Some(l) => l,
            None => match rebind(addr).await {
                Some(l) => l,
                None => return,
            },
        };
        let mut stop = wanted.clone();
        let app = app.clone();
        // Its own task: requests still being answered (a hang) must not keep the port
        // from opening again.
        tokio::spawn(async move {
            // Without TCP_NODELAY, a reply written in pieces waits for delayed ACKs.
            let current = axum::serve::ListenerExt::tap_io(current, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            // Only fails if the listener breaks; a test then sees connection errors.
            let _ = axum::serve(current, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|on| !*on).await;
                })
                .await;
        });
        if wanted.wait_for(|on| !*on).await.is_err() || wanted.wait_for(|on| *on).await.is_err() {
            return;
        }
    }
}

/// The old listener is dropped a moment after the stop signal: retry for a while.
async fn rebind(addr: SocketAddr) -> Option<TcpListener> {
    for _ in 0..200 {
        if let Ok(listener) = shared::listen::listen(addr) {
            return Some(listener);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Switches listening on or off and waits until connecting to `addr` shows it.
pub(crate) async fn set_listening(wanted: &watch::Sender<bool>, addr: SocketAddr, on: bool) {
    wanted.send_replace(on);
    for _ in 0..500 {
        let accepts = tokio::net::TcpStream::connect(addr).await.is_ok();
        if accepts == on {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the fake upstream at {addr} did not turn listening {on}");
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
    Extension(seq): Extension<RecordSeq>,
    headers: HeaderMap,
    Query(query): Params,
    body: Bytes,
) -> Response {
    generate(shared, seq, Protocol::Chat, headers, query, body, None).await
}

async fn responses(
    State(shared): State<Arc<Shared>>,
    Extension(seq): Extension<RecordSeq>,
    headers: HeaderMap,
    Query(query): Params,
    body: Bytes,
) -> Response {
    generate(shared, seq, Protocol::Responses, headers, query, body, None).await
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Extension(seq): Extension<RecordSeq>,
    headers: HeaderMap,
    Query(query): Params,
    body: Bytes,
) -> Response {
    generate(shared, seq, Protocol::Anthropic, headers, query, body, None).await
}

/// Gemini puts model and method in one path segment: `{model}:generateContent`.
async fn gemini(
    State(shared): State<Arc<Shared>>,
    Extension(seq): Extension<RecordSeq>,
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
    generate(
        shared,
        seq,
        Protocol::Gemini,
        headers,
        query,
        body,
        Some(route),
    )
    .await
}
