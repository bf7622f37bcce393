//! `/api/proxy/keys` and `/api/proxy/usage` handlers (admin only): parse, call the
//! service, return its JSON.

use axum::Json;
use axum::extract::{Query, State};
use serde_json::Value;

use super::error::AppError;
use super::extract::{ApiBody, AppState};
use crate::service::Caller;
use crate::service::proxy_usage::UsageQuery;
use crate::service::query::QueryString;

type ApiResult = Result<Json<Value>, AppError>;

/// Key ids in paths: text that is no integer is a bad request; an integer below 1
/// names no key.
pub struct KeyId(pub i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for KeyId {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        super::extract::path_id(parts, state, "proxy key")
            .await
            .map(KeyId)
    }
}

pub async fn list(State(core): State<AppState>, caller: Caller) -> ApiResult {
    Ok(Json(core.list_proxy_keys(&caller).await?))
}

pub async fn create(
    State(core): State<AppState>,
    caller: Caller,
    ApiBody(body): ApiBody,
) -> ApiResult {
    Ok(Json(core.create_proxy_key(&caller, &body).await?))
}

pub async fn show(State(core): State<AppState>, caller: Caller, KeyId(id): KeyId) -> ApiResult {
    Ok(Json(core.get_proxy_key(&caller, id).await?))
}

pub async fn update(
    State(core): State<AppState>,
    caller: Caller,
    KeyId(id): KeyId,
    ApiBody(body): ApiBody,
) -> ApiResult {
    Ok(Json(core.update_proxy_key(&caller, id, &body).await?))
}

pub async fn revoke(State(core): State<AppState>, caller: Caller, KeyId(id): KeyId) -> ApiResult {
    Ok(Json(core.revoke_proxy_key(&caller, id).await?))
}

pub async fn usage(
    State(core): State<AppState>,
    caller: Caller,
    Query(q): Query<QueryString>,
) -> ApiResult {
    // The permission check comes first: a visitor learns nothing from the query.
    caller.require_admin()?;
    let query = UsageQuery::from_query(&q)?;
    Ok(Json(core.proxy_usage(&caller, query).await?))
}
