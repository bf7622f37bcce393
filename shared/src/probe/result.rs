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
    /// The API the model was probed through, written as the Go program's
    /// `protocol`, `route` and `endpoint` ([`Protocol::seed_names`]).
    #[serde(flatten, with = "seed_names")]
    pub protocol: Protocol,
    /// The route rule that chose the API (`default` when none matched).
    pub route_rule: String,
    /// The request path the probe was sent to.
    pub path: String,
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

/// A [`Protocol`] as its seed names, and back.
mod seed_names {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Protocol;

    pub fn serialize<S: Serializer>(p: &Protocol, s: S) -> Result<S::Ok, S::Error> {
        p.seed_names().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
        #[derive(Deserialize)]
        struct Names {
            protocol: String,
            route: String,
        }
        let n = Names::deserialize(d)?;
        Protocol::from_seed_names(&n.protocol, &n.route).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "no API is named protocol `{}`, route `{}`",
                n.protocol, n.route
            ))
        })
    }
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

    fn result(protocol: Protocol) -> ProbeResult {
        ProbeResult {
            model: "gpt-5".into(),
            protocol,
            route_rule: "gpt-5*".into(),
            path: "/v1/responses".into(),
            stream: true,
            success: true,
            status: ModelStatus::Ok,
            transport_success: true,
            status_code: Some(200),
            ttfb_ms: None,
            ttft_ms: None,
            total_ms: 1.0,
            output_tokens: None,
            tokens_estimated: false,
            tokens_per_s: None,
            returned_model: None,
            model_mismatch: false,
            content: String::new(),
            error_class: None,
            error: None,
            attempts: 1,
            started_at: 0.0,
        }
    }

    #[test]
    fn a_result_is_written_with_the_go_names_and_apimons_rule_and_path_beside_them() {
        let v = serde_json::to_value(result(Protocol::Responses)).unwrap();
        assert_eq!(v["protocol"], "openai");
        assert_eq!(v["route"], "responses");
        assert_eq!(v["endpoint"], "responses");
        assert_eq!(v["route_rule"], "gpt-5*");
        assert_eq!(v["path"], "/v1/responses");
        for p in Protocol::ALL {
            let back: ProbeResult =
                serde_json::from_value(serde_json::to_value(result(p)).unwrap()).unwrap();
            assert_eq!(back.protocol, p);
        }
    }

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
