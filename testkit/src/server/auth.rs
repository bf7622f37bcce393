//! Who may ask: the keys a request presents, the check against the one accepted key,
//! and the 401 body that echoes the presented key.

use std::collections::HashMap;

use axum::http::HeaderMap;
use serde_json::Value;

use super::error_json;
use crate::state::Shared;

/// Echoes the presented key, as real relays do, so tests can check it gets scrubbed.
pub(super) fn auth_refusal(presented: &str) -> Value {
    error_json(
        &format!("Incorrect API key provided: {presented}"),
        "invalid_request_error",
        Some("invalid_api_key"),
    )
}

/// The keys a request presents, in the order a refusal picks the one to echo.
pub(super) fn presented_keys<'a>(
    headers: &'a HeaderMap,
    query: &'a HashMap<String, String>,
) -> Vec<&'a str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut keys = Vec::new();
    if let Some(auth) = header("authorization") {
        keys.push(auth.strip_prefix("Bearer ").unwrap_or(auth).trim());
    }
    keys.extend(header("x-api-key"));
    keys.extend(header("x-goog-api-key"));
    keys.extend(query.get("key").map(String::as_str));
    keys
}

/// `Err` carries the key to echo in the refusal (empty when none was presented).
pub(super) fn check_auth(
    shared: &Shared,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(), String> {
    let keys = presented_keys(headers, query);
    if keys.contains(&shared.api_key.as_str()) {
        Ok(())
    } else {
        Err(keys.first().copied().unwrap_or_default().to_string())
    }
}
