//! What a probe hands back: `ProbeResult`, `DiscoveryError`, the internal `Failure`
//! an attempt fails with, and `scrub`, which keeps the key out of every text recorded.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::classify::ErrorClass;
use super::route::Protocol;
use super::status::ModelStatus;
use crate::Secret;

/// The outcome of probing one model once (after the in-run retry, if any).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeResult {
    pub model: String,
    pub protocol: Protocol,
    /// The route rule that chose the protocol.
    pub route: String,
    pub endpoint: String,
    pub stream: bool,
    pub success: bool,
    pub status: ModelStatus,
    /// The probe reached the upstream and got a reply, whatever the reply said.
    pub transport_success: bool,
    pub status_code: Option<u16>,
    pub ttfb_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
    pub output_tokens: Option<u64>,
    /// `output_tokens` was estimated from the text (no usage was sent).
    pub tokens_estimated: bool,
    pub tokens_per_s: Option<f64>,
    pub returned_model: Option<String>,
    pub model_mismatch: bool,
    /// The start of the reply.
    pub content: String,
    pub error_class: Option<ErrorClass>,
    pub error: Option<String>,
    pub attempts: u32,
    pub started_at: f64,
}

/// Why discovery failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct DiscoveryError {
    pub class: ErrorClass,
    pub message: String,
    pub status_code: Option<u16>,
}

/// A failure inside one attempt.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) class: ErrorClass,
    pub(super) message: String,
    pub(super) status: Option<u16>,
    pub(super) retry_after: Option<Duration>,
    /// The upstream answered (the failure is in what it said).
    pub(super) answered: bool,
}

impl Failure {
    pub(super) fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Failure {
            class,
            message: message.into(),
            status: None,
            retry_after: None,
            answered: false,
        }
    }

    pub(super) fn answered(mut self, status: u16) -> Self {
        self.status = Some(status);
        self.answered = true;
        self
    }
}

/// Replaces every occurrence of the key in a text (relays echo keys in errors).
pub fn scrub(text: &str, key: &Secret) -> String {
    let k = key.expose();
    if k.len() < 4 || !text.contains(k) {
        return text.to_string();
    }
    text.replace(k, "[redacted]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scrubbed_from_text() {
        let key = Secret::new("sk-secret-123456");
        assert_eq!(
            scrub("Incorrect API key provided: sk-secret-123456.", &key),
            "Incorrect API key provided: [redacted]."
        );
        assert_eq!(scrub("nothing here", &key), "nothing here");
    }
}
