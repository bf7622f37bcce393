//! `/api/*` handlers for health, dashboard, targets, runs and logs: parse (queries into
//! the service's typed queries), call the service, return its JSON.

use axum::Json;
use axum::extract::{Query, State};
use serde_json::Value;

use super::error::AppError;
use super::extract::{ApiBody, AppState};
use crate::service::Caller;
use crate::service::query::{
    ErrorsQuery, ListTargetsQuery, LogsQuery, QueryString, RunsQuery, StatsQuery,
};
use shared::rpc::reply::TriggerReply;

type ApiResult = Result<Json<Value>, AppError>;
type RawResult = Result<Json<Box<serde_json::value::RawValue>>, AppError>;

/// Target ids in paths: text that is no integer is a bad request (400, as the Go
/// program answers); an integer below 1 names no target (404).
pub struct TargetId(pub i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for TargetId {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        super::extract::path_id(parts, state, "target")
            .await
            .map(TargetId)
    }
}

/// 200 when ready; 503 (same body) when alive but not ready, so a load balancer or
/// container health check stops sending work.
pub async fn health(State(core): State<AppState>) -> (axum::http::StatusCode, Json<Value>) {
    let (ready, v) = core.health();
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(v))
}

pub async fn dashboard(State(core): State<AppState>, caller: Caller) -> ApiResult {
    Ok(Json(core.dashboard(&caller).await?))
}

pub async fn list_targets(
    State(core): State<AppState>,
    caller: Caller,
    Query(q): Query<QueryString>,
) -> RawResult {
    let query = ListTargetsQuery::from_query(&q);
    Ok(Json(core.list_targets(&caller, query).await?))
}

pub async fn trigger_run(
    State(core): State<AppState>,
    caller: Caller,
    TargetId(id): TargetId,
) -> ApiResult {
    core.trigger_run(&caller, id).await?;
    // Manual runs never queue; `queued` stays in the reply for older clients.
    Ok(Json(
        serde_json::to_value(TriggerReply::new(id, false)).expect("replies serialise"),
    ))
}

pub async fn target_models(
    State(core): State<AppState>,
    caller: Caller,
    TargetId(id): TargetId,
) -> ApiResult {
    Ok(Json(core.target_models(&caller, id).await?))
}

pub async fn set_target_models(
    State(core): State<AppState>,
    caller: Caller,
    TargetId(id): TargetId,
    ApiBody(body): ApiBody,
) -> ApiResult {
    Ok(Json(core.set_target_models(&caller, id, &body).await?))
}

pub async fn create_target(
    State(core): State<AppState>,
    caller: Caller,
    ApiBody(body): ApiBody,
) -> ApiResult {
    Ok(Json(core.create_target(&caller, &body).await?))
}

pub async fn get_target(
    State(core): State<AppState>,
    caller: Caller,
    TargetId(id): TargetId,
) -> ApiResult {
    Ok(Json(core.get_target(&caller, id).await?))
}

pub async fn update_target(
    State(core): State<AppState>,
    caller: Caller,
    TargetId(id): TargetId,
    ApiBody(body): ApiBody,
) -> ApiResult {
    Ok(Json(core.update_target(&caller, id, &body).await?))
}

pub async fn delete_target(
    State(core): State<AppState>,
    caller: Caller,
    TargetId(id): TargetId,
) -> ApiResult {
    Ok(Json(core.delete_target(&caller, id).await?))
}

pub async fn reorder_targets(
    State(core): State<AppState>,
    caller: Caller,
    ApiBody(body): ApiBody,
) -> ApiResult {
    Ok(Json(core.reorder_targets(&caller, &body).await?))
}

pub async fn reveal_key(
    State(core): State<AppState>,
    caller: Caller,
    TargetId(id): TargetId,
) -> ApiResult {
    Ok(Json(core.reveal_key(&caller, id).await?))
}

pub async fn list_runs(
    State(core): State<AppState>,
    caller: Caller,
    TargetId(id): TargetId,
    Query(q): Query<QueryString>,
) -> ApiResult {
    let query = RunsQuery::from_query(&q);
    Ok(Json(core.list_runs(&caller, id, query).await?))
}

pub async fn run_logs(
    State(core): State<AppState>,
    caller: Caller,
    TargetId(id): TargetId,
    Query(q): Query<QueryString>,
) -> ApiResult {
    let query = LogsQuery::from_query(&q);
    Ok(Json(core.run_logs(&caller, id, query).await?))
}

pub async fn target_stats(
    State(core): State<AppState>,
    caller: Caller,
    TargetId(id): TargetId,
    Query(q): Query<QueryString>,
) -> ApiResult {
    let query = StatsQuery::from_query(&q);
    Ok(Json(core.target_stats(&caller, id, query).await?))
}

pub async fn target_errors(
    State(core): State<AppState>,
    caller: Caller,
    TargetId(id): TargetId,
    Query(q): Query<QueryString>,
) -> ApiResult {
    let query = ErrorsQuery::from_query(&q);
    Ok(Json(core.target_errors(&caller, id, query).await?))
}
