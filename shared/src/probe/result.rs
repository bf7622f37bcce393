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

/// Shortest piece of a secret that is hidden wherever it appears: relays echo keys
/// upper-cased, without their `sk-` prefix or cut short.
pub const SCRUB_FRAGMENT: usize = 8;

/// Replaces the secret in a text (relays echo keys in errors), ignoring ASCII case:
/// every run of the text made of pieces of at least [`SCRUB_FRAGMENT`] characters of
/// the secret becomes `[redacted]`. A secret shorter than that is replaced only whole.
/// [`crate::probe::ProbeSettings::scrub`] applies it to all of a target's secrets.
pub fn scrub(text: &str, key: &Secret) -> String {
    let k = key.expose().to_ascii_lowercase();
    let k = k.as_bytes();
    if k.len() < 4 || text.len() < k.len().min(SCRUB_FRAGMENT) {
        return text.to_string();
    }
    let hay = text.to_ascii_lowercase();
    let hay = hay.as_bytes();
    let spans: Vec<(usize, usize)> = if k.len() < SCRUB_FRAGMENT {
        let mut spans = Vec::new();
        let mut i = 0;
        while i + k.len() <= hay.len() {
            if &hay[i..i + k.len()] == k {
                spans.push((i, i + k.len()));
                i += k.len();
            } else {
                i += 1;
            }
        }
        spans
    } else {
        fragment_spans(hay, k)
    };
    if spans.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        // Widen to character boundaries: a key is ASCII, the text may not be.
        let start = (0..=start)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        let end = (end..=text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        if start < at {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str("[redacted]");
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// The byte ranges of `hay` covered by windows of [`SCRUB_FRAGMENT`] bytes that occur
/// in `key` (both lower-cased), overlapping windows merged.
fn fragment_spans(hay: &[u8], key: &[u8]) -> Vec<(usize, usize)> {
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("8 bytes"));
    let mut windows: Vec<u64> = key.windows(SCRUB_FRAGMENT).map(word).collect();
    windows.sort_unstable();
    windows.dedup();
    let mut starts = [false; 256];
    for w in key.windows(SCRUB_FRAGMENT) {
        starts[w[0] as usize] = true;
    }
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for (i, w) in hay.windows(SCRUB_FRAGMENT).enumerate() {
        if starts[w[0] as usize] && windows.binary_search(&word(w)).is_ok() {
            match spans.last_mut() {
                Some((_, end)) if *end >= i => *end = i + SCRUB_FRAGMENT,
                _ => spans.push((i, i + SCRUB_FRAGMENT)),
            }
        }
    }
    spans
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

    #[test]
    fn a_key_echoed_in_another_case_or_in_pieces_is_scrubbed() {
        let key = Secret::new("sk-Fake-Upstream-Key-0123456789");
        for echoed in [
            "SK-FAKE-UPSTREAM-KEY-0123456789",
            "Fake-Upstream-Key-0123456789",
            "sk-fake-upstream",
            "key-0123456789",
            "…upstream-key-01234…",
        ] {
            let out = scrub(&format!("bad key «{echoed}» given"), &key);
            assert!(out.contains("[redacted]"), "{echoed}: {out}");
            assert!(!out.to_lowercase().contains("upstream"), "{out}");
            assert!(!out.contains("0123"), "{out}");
            assert!(
                out.starts_with("bad key «") && out.ends_with("» given"),
                "{out}"
            );
        }
        // Seven characters in a row of the key are not a fragment.
        assert_eq!(scrub("sk-fake and 0123456", &key), "sk-fake and 0123456");
        // A short key is replaced whole, in any case.
        assert_eq!(
            scrub("key ABCDE.", &Secret::new("abcde")),
            "key [redacted]."
        );
    }
}
