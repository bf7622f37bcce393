//! Failure classes: every failed probe gets exactly one, decided here from the HTTP
//! status and the error text (their names are a stable contract; the README lists them).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Auth,
    Quota,
    RateLimit,
    ModelNotFound,
    BadRequest,
    #[serde(rename = "upstream_5xx")]
    Upstream5xx,
    Timeout,
    Network,
    Tls,
    BadResponse,
    StreamBroken,
    WrongAnswer,
    ContentFilter,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 13] = [
        ErrorClass::Auth,
        ErrorClass::Quota,
        ErrorClass::RateLimit,
        ErrorClass::ModelNotFound,
        ErrorClass::BadRequest,
        ErrorClass::Upstream5xx,
        ErrorClass::Timeout,
        ErrorClass::Network,
        ErrorClass::Tls,
        ErrorClass::BadResponse,
        ErrorClass::StreamBroken,
        ErrorClass::WrongAnswer,
        ErrorClass::ContentFilter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Auth => "auth",
            ErrorClass::Quota => "quota",
            ErrorClass::RateLimit => "rate_limit",
            ErrorClass::ModelNotFound => "model_not_found",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::Upstream5xx => "upstream_5xx",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Network => "network",
            ErrorClass::Tls => "tls",
            ErrorClass::BadResponse => "bad_response",
            ErrorClass::StreamBroken => "stream_broken",
            ErrorClass::WrongAnswer => "wrong_answer",
            ErrorClass::ContentFilter => "content_filter",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorClass> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Failures worth one more try within the run: they are often momentary.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimit
                | ErrorClass::Upstream5xx
                | ErrorClass::Network
                | ErrorClass::Timeout
        )
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const QUOTA: &[&str] = &[
    "insufficient_quota",
    "credit balance is too low",
    "exceeded your current quota",
    "余额不足",
    "已欠费",
    "billing_not_active",
    "insufficient balance",
    "quota exceeded",
];
const AUTH: &[&str] = &[
    "invalid_api_key",
    "authentication_error",
    "api key not valid",
    "incorrect api key",
    "invalid api key",
    "unauthorized",
    "permission_denied",
];
const NOT_FOUND: &[&str] = &[
    "model_not_found",
    "does not exist",
    "no available channel",
    "model not found",
    "not_found_error",
    "unknown model",
];
const FILTER: &[&str] = &[
    "content_filter",
    "content policy",
    "safety",
    "content_policy",
];
const OVERLOADED: &[&str] = &["overloaded_error", "server_error", "internal server error"];

fn any(text: &str, signals: &[&str]) -> bool {
    signals.iter().any(|s| text.contains(s))
}

/// Classifies an upstream error from its HTTP status (when there was one) and its
/// text (body or error message). An error with status 200 is one hidden in a
/// successful response.
pub fn classify(status: u16, text: &str) -> ErrorClass {
    let t = text.to_lowercase();
    if any(&t, QUOTA) {
        return ErrorClass::Quota;
    }
    if status == 401 || any(&t, AUTH) {
        return ErrorClass::Auth;
    }
    if status == 403 {
        // Gemini answers a bad key with 403 and a key message (caught above); other
        // 403s are usually a relay refusing this model or region.
        return ErrorClass::Auth;
    }
    if status == 429 || t.contains("rate_limit") || t.contains("rate limit") {
        return ErrorClass::RateLimit;
    }
    if status == 404 || any(&t, NOT_FOUND) {
        return ErrorClass::ModelNotFound;
    }
    if any(&t, FILTER) {
        return ErrorClass::ContentFilter;
    }
    if (500..=599).contains(&status) || any(&t, OVERLOADED) {
        return ErrorClass::Upstream5xx;
    }
    if status == 402 {
        return ErrorClass::Quota;
    }
    if (400..=499).contains(&status) {
        return ErrorClass::BadRequest;
    }
    // An error inside a 200 body with no recognisable signal: the upstream failed.
    ErrorClass::Upstream5xx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_to_their_classes() {
        let cases: &[(u16, &str, ErrorClass)] = &[
            (401, "{}", ErrorClass::Auth),
            (
                400,
                "API key not valid. Please pass a valid API key.",
                ErrorClass::Auth,
            ),
            (
                403,
                "{\"error\":{\"message\":\"API key not valid\"}}",
                ErrorClass::Auth,
            ),
            (429, "You exceeded your current quota", ErrorClass::Quota),
            (400, "Your credit balance is too low", ErrorClass::Quota),
            (
                200,
                "{\"success\":false,\"message\":\"余额不足\"}",
                ErrorClass::Quota,
            ),
            (403, "账户已欠费", ErrorClass::Quota),
            (429, "Rate limit reached", ErrorClass::RateLimit),
            (404, "{}", ErrorClass::ModelNotFound),
            (
                400,
                "The model `x` does not exist",
                ErrorClass::ModelNotFound,
            ),
            (
                200,
                "{\"code\":500,\"message\":\"no available channel\"}",
                ErrorClass::ModelNotFound,
            ),
            (400, "blocked by content_filter", ErrorClass::ContentFilter),
            (500, "boom", ErrorClass::Upstream5xx),
            (
                529,
                "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}",
                ErrorClass::Upstream5xx,
            ),
            (
                200,
                "{\"error\":{\"type\":\"overloaded_error\"}}",
                ErrorClass::Upstream5xx,
            ),
            (400, "max_tokens must be positive", ErrorClass::BadRequest),
            (422, "bad", ErrorClass::BadRequest),
        ];
        for (status, text, want) in cases {
            assert_eq!(classify(*status, text), *want, "{status} {text}");
        }
    }

    #[test]
    fn names_round_trip_and_only_momentary_failures_retry() {
        for c in ErrorClass::ALL {
            assert_eq!(ErrorClass::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        let retryable: Vec<_> = ErrorClass::ALL
            .into_iter()
            .filter(|c| c.is_retryable())
            .collect();
        assert_eq!(
            retryable,
            [
                ErrorClass::RateLimit,
                ErrorClass::Upstream5xx,
                ErrorClass::Timeout,
                ErrorClass::Network
            ]
        );
    }
}
