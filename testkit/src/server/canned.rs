//! The fixed answers (error statuses, error bodies on 200, HTML) that misbehaviours give
//! instead of a reply.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::auth::auth_refusal;
use super::error_json;
use crate::behaviour::Behaviour;
use crate::body::fixed;
use crate::state::Flight;

/// A fixed answer some misbehaviours give instead of a reply.
pub(super) struct Canned {
    status: StatusCode,
    content_type: &'static str,
    extra: &'static [(&'static str, &'static str)],
    body: String,
}

impl Canned {
    pub(super) fn json(status: StatusCode, body: Value) -> Canned {
        Canned {
            status,
            content_type: "application/json",
            extra: &[],
            body: body.to_string(),
        }
    }

    fn rate_limited() -> Canned {
        let body = error_json(
            "Rate limit reached",
            "rate_limit_error",
            Some("rate_limit_exceeded"),
        );
        Canned {
            extra: &[("retry-after", "1")],
            ..Canned::json(StatusCode::TOO_MANY_REQUESTS, body)
        }
    }

    fn server_error() -> Canned {
        let body = error_json(
            "Internal server error",
            "server_error",
            Some("internal_error"),
        );
        Canned::json(StatusCode::INTERNAL_SERVER_ERROR, body)
    }

    pub(super) fn bad_request(message: &str) -> Canned {
        let body = error_json(message, "invalid_request_error", None);
        Canned::json(StatusCode::BAD_REQUEST, body)
    }

    pub(super) fn send(self, flight: Flight) -> Response {
        fixed(
            flight,
            self.status,
            self.content_type,
            self.extra,
            self.body,
        )
    }

    fn error200() -> Canned {
        let body = error_json("upstream channel error", "server_error", None);
        Canned::json(StatusCode::OK, body)
    }
}

/// The canned answer for `behaviour`, if it has one; `nth` counts this model's requests.
pub(super) fn canned(
    behaviour: Behaviour,
    stream: bool,
    nth: usize,
    model: &str,
    presented: &str,
) -> Option<Canned> {
    Some(match behaviour {
        Behaviour::Flaky if nth == 1 => Canned::server_error(),
        Behaviour::Flaky429 if nth == 1 => Canned::rate_limited(),
        Behaviour::Err500 => Canned::server_error(),
        Behaviour::Err503 => Canned::json(
            StatusCode::SERVICE_UNAVAILABLE,
            error_json(
                "Service temporarily unavailable",
                "server_error",
                Some("service_unavailable"),
            ),
        ),
        Behaviour::Err529 => Canned::json(
            StatusCode::from_u16(529).expect("valid status"),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
        Behaviour::Err429 => Canned::rate_limited(),
        Behaviour::Quota => Canned::json(
            StatusCode::TOO_MANY_REQUESTS,
            error_json(
                "You exceeded your current quota",
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
        ),
        Behaviour::Err401 => Canned::json(StatusCode::UNAUTHORIZED, auth_refusal(presented)),
        Behaviour::NotFound => Canned::json(
            StatusCode::NOT_FOUND,
            error_json(
                &format!("The model `{model}` does not exist"),
                "invalid_request_error",
                Some("model_not_found"),
            ),
        ),
        Behaviour::Err400 => Canned::json(
            StatusCode::BAD_REQUEST,
            error_json(
                "Invalid request: unsupported parameter",
                "invalid_request_error",
                Some("bad_request"),
            ),
        ),
        // LiteLLM's shape: its proxy's errors run over several lines.
        Behaviour::MultiLine => Canned::bad_request(&format!(
            "litellm.BadRequestError: OpenAIException - Error code: 400\n\
             Received Model Group={model}\n\tAvailable Model Group Fallbacks=None"
        )),
        Behaviour::Error200 => Canned::error200(),
        Behaviour::Midstream if !stream => Canned::error200(),
        Behaviour::CnFail => Canned::json(
            StatusCode::OK,
            json!({"success": false, "message": "余额不足"}),
        ),
        Behaviour::CodeFail => Canned::json(
            StatusCode::OK,
            json!({"code": 500, "message": "no available channel"}),
        ),
        Behaviour::NonJson => Canned {
            content_type: "text/html",
            body: "<html><body>Bad gateway</body></html>".to_string(),
            ..Canned::json(StatusCode::OK, Value::Null)
        },
        _ => return None,
    })
}

/// The answer of a model switched to fail with [`Failure::Status`] (the other failures
/// change how the reply is written, not what it is). A 401 echoes the presented key, as
/// real relays do.
pub(super) fn failure(status: u16, presented: &str, flight: Flight) -> Response {
    match status {
        429 => return Canned::rate_limited().send(flight),
        401 => return Canned::json(StatusCode::UNAUTHORIZED, auth_refusal(presented)).send(flight),
        _ => {}
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!("Failing on purpose with status {status}");
    Canned::json(code, error_json(&message, "server_error", None)).send(flight)
}
