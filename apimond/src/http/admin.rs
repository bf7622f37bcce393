//! `/api/admin/*` handlers: login and logout (the session cookie), settings, the
//! channel list and advanced form, resources.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{AppendHeaders, IntoResponse, Response};
use serde_json::{Value, json};

use super::api::TargetId;
use super::error::AppError;
use super::extract::{ApiBody, AppState, cookie, is_https, request_client};
use crate::service::Caller;
use crate::service::auth::{SESSION_COOKIE, SESSION_TTL};

type ApiResult = Result<Json<Value>, AppError>;

fn session_cookie(value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

pub async fn login(
    State(core): State<AppState>,
    req: axum::extract::Request,
) -> Result<Response, AppError> {
    let (parts, body) = req.into_parts();
    let client = request_client(&parts, &core);
    let secure = is_https(&parts, &core);
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.map_err(|_| {
        AppError(crate::service::ServiceError::BadRequest(
            "request body is unreadable or larger than 64 KiB".into(),
        ))
    })?;
    let session = core.login_request(client, &bytes)?;
    let cookie = session_cookie(&session, SESSION_TTL.as_secs(), secure);
    Ok((
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Json(json!({ "ok": true, "expires_in": SESSION_TTL.as_secs() })),
    )
        .into_response())
}

pub async fn logout(State(core): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    core.logout(cookie(&headers, SESSION_COOKIE));
    (
        AppendHeaders([(header::SET_COOKIE, session_cookie("", 0, false))]),
        Json(json!({ "ok": true })),
    )
        .into_response()
}

pub async fn get_settings(State(core): State<AppState>, caller: Caller) -> ApiResult {
    Ok(Json(core.settings_view(&caller)?))
}

pub async fn update_settings(
    State(core): State<AppState>,
    caller: Caller,
    ApiBody(body): ApiBody,
) -> ApiResult {
    Ok(Json(core.update_settings(&caller, &body).await?))
}

pub async fn reveal_setting(
    State(core): State<AppState>,
    caller: Caller,
    ApiBody(body): ApiBody,
) -> ApiResult {
    Ok(Json(core.reveal_setting(&caller, &body)?))
}

pub async fn channels(State(core): State<AppState>, caller: Caller) -> ApiResult {
    Ok(Json(core.admin_channels(&caller).await?))
}

pub async fn update_channel_advanced(
    State(core): State<AppState>,
    caller: Caller,
    TargetId(id): TargetId,
    ApiBody(body): ApiBody,
) -> ApiResult {
    Ok(Json(core.update_target_advanced(&caller, id, &body).await?))
}

pub async fn resources(State(core): State<AppState>, caller: Caller) -> ApiResult {
    Ok(Json(core.resources(&caller).await?))
}

/// The admin panel's view of a channel's models: the same as the target's, admin only.
pub async fn channel_models(
    State(core): State<AppState>,
    caller: Caller,
    TargetId(id): TargetId,
) -> ApiResult {
    caller.require_admin()?;
    Ok(Json(core.target_models(&caller, id).await?))
}
