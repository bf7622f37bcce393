//! One error type for every handler: a status and a JSON `{"detail": ...}` body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::service::ServiceError;

#[derive(Debug)]
pub struct AppError(pub ServiceError);

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        AppError(e)
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match &self.0 {
            ServiceError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServiceError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::Conflict(_) => StatusCode::CONFLICT,
            ServiceError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ServiceError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A response with a status and a detail message, for the few errors that do not come
/// from the service layer (body too large, unknown route).
pub fn detail(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "detail": message.into() }))).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self.0 {
            // Internal details stay in the log.
            ServiceError::Internal(_) => "internal error; see the apimond log".to_string(),
            other => other.to_string(),
        };
        let mut resp = detail(status, message);
        if let ServiceError::TooManyRequests { retry_after, .. } = &self.0 {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
