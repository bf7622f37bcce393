//! Model discovery: `GET {base}/v1/models` through `Prober::discover`, and the base-URL
//! normalisation every request to a relay starts from.

use serde_json::Value;

use super::classify::{ErrorClass, classify};
use super::protocol::{self, snippet};
use super::result::{DiscoveryError, Failure};
use super::route::Protocol;
use super::settings::{BODY_CAP, ProbeSettings};
use super::transport::{Outgoing, Prober, read_capped};

/// Removes trailing `/` and one trailing `/v1` from a base URL.
pub fn normalise_base_url(base: &str) -> String {
    let mut b = base.trim().trim_end_matches('/').to_string();
    if b.ends_with("/v1") {
        b.truncate(b.len() - 3);
    }
    b.trim_end_matches('/').to_string()
}

impl Prober {
    /// `GET {base}/v1/models`: the channel's model ids, in the order given.
    pub async fn discover(&self, s: &ProbeSettings) -> Result<Vec<String>, DiscoveryError> {
        let url = format!("{}/v1/models", normalise_base_url(&s.base_url));
        let deadline = tokio::time::Instant::now() + s.timeout;
        let fail = |f: Failure| DiscoveryError {
            class: f.class,
            message: s.scrub(&format!("model discovery failed: {}", f.message)),
            status_code: f.status,
        };
        let send = self.send(
            s,
            Outgoing {
                url: &url,
                headers: self.auth_headers(s, Protocol::Openai),
                json: None,
            },
        );
        let resp = match tokio::time::timeout_at(deadline, send).await {
            Err(_) => {
                return Err(fail(Failure::new(
                    ErrorClass::Timeout,
                    "GET /v1/models did not answer within timeout_s",
                )));
            }
            Ok(Err(f)) => return Err(fail(f)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status;
        let body = read_capped(resp, deadline, BODY_CAP * 4)
            .await
            .map_err(fail)?
            .ok_or_else(|| {
                fail(
                    Failure::new(
                        ErrorClass::BadResponse,
                        "the model list is larger than 8 MiB",
                    )
                    .answered(status),
                )
            })?;
        // Relays echo keys: scrub before anything is cut to a snippet.
        let text = s.scrub(&String::from_utf8_lossy(&body));
        if status != 200 {
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").map(protocol::error_message))
                .unwrap_or_else(|| snippet(&text));
            return Err(fail(
                Failure::new(
                    classify(status, &text),
                    format!("GET /v1/models answered HTTP {status}: {detail}"),
                )
                .answered(status),
            ));
        }
        let v: Value = serde_json::from_str(&text).map_err(|_| {
            fail(
                Failure::new(
                    ErrorClass::BadResponse,
                    format!("GET /v1/models did not answer JSON: {}", snippet(&text)),
                )
                .answered(status),
            )
        })?;
        if let Some(msg) = protocol::hidden_error(&v) {
            return Err(fail(
                Failure::new(
                    classify(200, &msg),
                    format!("GET /v1/models answered an error: {msg}"),
                )
                .answered(status),
            ));
        }
        let data = v.get("data").and_then(Value::as_array).ok_or_else(|| {
            fail(
                Failure::new(
                    ErrorClass::BadResponse,
                    "GET /v1/models answered without a data[] list",
                )
                .answered(status),
            )
        })?;
        let mut models: Vec<String> = Vec::with_capacity(data.len());
        let mut seen = std::collections::HashSet::new();
        for item in data {
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .or_else(|| item.as_str());
            if let Some(id) = id.map(str::trim).filter(|i| !i.is_empty())
                && seen.insert(id.to_string())
            {
                models.push(id.to_string());
            }
        }
        if models.is_empty() {
            return Err(fail(
                Failure::new(
                    ErrorClass::BadResponse,
                    "GET /v1/models answered an empty list",
                )
                .answered(status),
            ));
        }
        Ok(models)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised() {
        assert_eq!(
            normalise_base_url("https://r.example.com/v1/"),
            "https://r.example.com"
        );
        assert_eq!(
            normalise_base_url("https://r.example.com/"),
            "https://r.example.com"
        );
        assert_eq!(
            normalise_base_url("https://r.example.com/openai/v1"),
            "https://r.example.com/openai"
        );
        assert_eq!(
            normalise_base_url("https://r.example.com/v1beta"),
            "https://r.example.com/v1beta"
        );
    }
}
