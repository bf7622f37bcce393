//! The control API: the fake's runtime switches and records over HTTP, on a port of its
//! own (so it answers while the fake's port refuses connections), for tests written in
//! another language. No auth: it listens on 127.0.0.1 only, for tests.
//!
//! - `GET /requests` → `{"requests": [Received, ...]}` (optional `?model=` exact filter);
//!   `DELETE /requests` forgets them.
//! - `PUT /failures/{model}` with a [`Failure`] as JSON; `DELETE /failures/{model}`.
//! - `PUT /event-gaps/{model}` with `{"ms": 300}`; `DELETE /event-gaps/{model}`.
//! - `PUT /listening` with `{"on": false}` (refuse connections) or `{"on": true}`;
//!   answers once the port shows it.
//! - `GET /counters` → `{"requests", "in_flight", "dropped"}`.
//!
//! Writes answer `{"ok": true}`; a malformed body gets 4xx `{"detail": ...}`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Failure;
use crate::state::{Shared, lock};

pub(crate) fn set_failure(shared: &Shared, model: &str, failure: Option<Failure>) {
    let mut failures = lock(&shared.failures);
    match failure {
        Some(f) => failures.insert(model.to_string(), f),
        None => failures.remove(model),
    };
}

pub(crate) fn set_event_gap(shared: &Shared, model: &str, gap: Option<Duration>) {
    let mut gaps = lock(&shared.event_gaps);
    match gap {
        Some(g) => gaps.insert(model.to_string(), g),
        None => gaps.remove(model),
    };
}

#[derive(Clone)]
struct Control {
    shared: Arc<Shared>,
    listening: watch::Sender<bool>,
    addr: SocketAddr,
}

/// Binds 127.0.0.1 at a free port; returns the base URL and the serving task.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listening: watch::Sender<bool>,
    addr: SocketAddr,
) -> (String, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("bind the control API");
    let url = format!("http://{}", listener.local_addr().expect("a bound address"));
    let app = Router::new()
        .route("/requests", get(requests).delete(clear_requests))
        .route(
            "/failures/{*model}",
            put(put_failure).delete(delete_failure),
        )
        .route("/event-gaps/{*model}", put(put_gap).delete(delete_gap))
        .route("/listening", put(put_listening))
        .route("/counters", get(counters))
        .with_state(Control {
            shared,
            listening,
            addr,
        });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

fn ok() -> Response {
    Json(json!({"ok": true})).into_response()
}

fn refused(rejection: &JsonRejection) -> Response {
    let body = json!({"detail": rejection.body_text()});
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

async fn requests(
    State(control): State<Control>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut all = lock(&control.shared.records).all();
    if let Some(model) = query.get("model") {
        all.retain(|r| r.model.as_deref() == Some(model.as_str()));
    }
    Json(json!({ "requests": all })).into_response()
}

async fn clear_requests(State(control): State<Control>) -> Response {
    lock(&control.shared.records).clear();
    ok()
}

async fn put_failure(
    State(control): State<Control>,
    Path(model): Path<String>,
    body: Result<Json<Failure>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(failure)) => {
            set_failure(&control.shared, &model, Some(failure));
            ok()
        }
        Err(rejection) => refused(&rejection),
    }
}

async fn delete_failure(State(control): State<Control>, Path(model): Path<String>) -> Response {
    set_failure(&control.shared, &model, None);
    ok()
}

#[derive(Deserialize)]
struct Gap {
    ms: u64,
}

async fn put_gap(
    State(control): State<Control>,
    Path(model): Path<String>,
    body: Result<Json<Gap>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(gap)) => {
            set_event_gap(&control.shared, &model, Some(Duration::from_millis(gap.ms)));
            ok()
        }
        Err(rejection) => refused(&rejection),
    }
}

async fn delete_gap(State(control): State<Control>, Path(model): Path<String>) -> Response {
    set_event_gap(&control.shared, &model, None);
    ok()
}

#[derive(Deserialize)]
struct Listening {
    on: bool,
}

async fn put_listening(
    State(control): State<Control>,
    body: Result<Json<Listening>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(listening)) => {
            crate::server::set_listening(&control.listening, control.addr, listening.on).await;
            ok()
        }
        Err(rejection) => refused(&rejection),
    }
}

async fn counters(State(control): State<Control>) -> Response {
    let shared = &control.shared;
    Json(json!({
        "requests": shared.requests.load(Ordering::SeqCst),
        "in_flight": shared.in_flight.load(Ordering::SeqCst),
        "dropped": shared.dropped.load(Ordering::SeqCst),
    }))
    .into_response()
}
