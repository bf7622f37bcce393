//! The proxy's own error answers. Besides the API's `{"detail": ...}` they carry an
//! OpenAI-style `error` object, so each SDK shows the message as it shows a provider's.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    /// The error's `type`, e.g. `invalid_request_error`, `permission_error`.
    pub kind: &'static str,
    pub message: String,
    pub retry_after_s: Option<u64>,
}

impl Refusal {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            kind,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Refusal {
        self.retry_after_s = Some(secs.max(1));
        self
    }

    /// What the usage row records as the error class.
    pub fn error_class(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "auth",
            403 => "forbidden",
            404 => "model_not_found",
            413 => "too_large",
            429 => "rate_limit",
            400 => "bad_request",
            504 => "timeout",
            502 => "network",
            _ => "unavailable",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({
            "detail": self.message,
            "error": {
                "message": self.message,
                "type": self.kind,
                "code": self.status.as_u16(),
            },
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after_s {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
