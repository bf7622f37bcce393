//! What a probe is asked to do: the target's settings (`ProbeSettings`), how the answer
//! is checked (`CheckMode`), streamed or not (`ProbeMode`), the default output budget,
//! and the fixed limits no setting can lift.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::outbound::ProxyChoice;
use super::route::RouteRule;
use crate::Secret;

/// Connecting never takes longer than this, whatever `timeout_s` says.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest non-streamed body read; past it reading stops.
pub const BODY_CAP: usize = 2 * 1024 * 1024;
/// Largest streamed reply read.
pub const STREAM_CAP: usize = 8 * 1024 * 1024;
/// Error bodies are only read this far.
pub(super) const ERROR_BODY_CAP: usize = 64 * 1024;
/// Longest wait before the in-run retry, whatever `Retry-After` asks.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
/// How much of the reply is kept.
pub(super) const CONTENT_KEEP: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CheckMode {
    #[default]
    Challenge,
    Prompt,
}

impl CheckMode {
    /// Every mode, in the order they are listed to users.
    pub const ALL: [CheckMode; 2] = [CheckMode::Challenge, CheckMode::Prompt];

    pub fn parse(s: &str) -> Option<CheckMode> {
        match s {
            "challenge" => Some(CheckMode::Challenge),
            "prompt" => Some(CheckMode::Prompt),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CheckMode::Challenge => "challenge",
            CheckMode::Prompt => "prompt",
        }
    }
}

/// Whether a model is probed streamed, plain (one JSON body), or both ways per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProbeMode {
    #[default]
    Stream,
    Plain,
    Both,
}

impl ProbeMode {
    /// Every mode, in the order they are listed to users.
    pub const ALL: [ProbeMode; 3] = [ProbeMode::Stream, ProbeMode::Plain, ProbeMode::Both];

    pub fn parse(s: &str) -> Option<ProbeMode> {
        match s {
            "stream" => Some(ProbeMode::Stream),
            "plain" => Some(ProbeMode::Plain),
            "both" => Some(ProbeMode::Both),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeMode::Stream => "stream",
            ProbeMode::Plain => "plain",
            ProbeMode::Both => "both",
        }
    }

    /// The `stream` flag of each probe a run makes per model, in order.
    pub fn streams(self) -> &'static [bool] {
        match self {
            ProbeMode::Stream => &[true],
            ProbeMode::Plain => &[false],
            ProbeMode::Both => &[true, false],
        }
    }
}

/// Which HTTP client a target's probes use: `browser` looks like Chrome on the wire (TLS
/// ClientHello, HTTP/2 settings, header order, default headers), as the Go program
/// does, so relays behind bot protection answer; `plain` is apimon's own rustls client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientProfile {
    #[default]
    Browser,
    Plain,
}

impl ClientProfile {
    /// Every profile, in the order they are listed to users.
    pub const ALL: [ClientProfile; 2] = [ClientProfile::Browser, ClientProfile::Plain];

    pub fn parse(s: &str) -> Option<ClientProfile> {
        match s {
            "browser" => Some(ClientProfile::Browser),
            "plain" => Some(ClientProfile::Plain),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientProfile::Browser => "browser",
            ClientProfile::Plain => "plain",
        }
    }
}

/// Everything about a target that a probe needs.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub base_url: String,
    pub api_key: Secret,
    pub timeout: Duration,
    pub verify_ssl: bool,
    pub anthropic_version: String,
    /// Values often carry credentials: secrets, like the key.
    pub extra_headers: BTreeMap<String, Secret>,
    pub user_agent: Option<String>,
    pub max_tokens: Option<u32>,
    pub check_mode: CheckMode,
    pub prompt: String,
    pub slow_ms: u64,
    pub route_overrides: Vec<RouteRule>,
    /// How probes reach the relay: the global default proxy, directly, or through the
    /// target's own proxy.
    pub proxy: ProxyChoice,
    pub client_profile: ClientProfile,
}

/// Header values shorter than this are not scrubbed: replacing a two-letter value
/// would mangle the text and hides nothing worth hiding.
const SCRUB_MIN: usize = 8;

impl ProbeSettings {
    /// Removes the target's secrets (its key, and the values of its extra headers,
    /// which often carry credentials) from a text a relay sent back.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = super::scrub(text, &self.api_key);
        for value in self.extra_headers.values() {
            if value.expose().len() >= SCRUB_MIN {
                out = super::scrub(&out, value);
            }
        }
        out
    }
}

/// Default output budget: small, but larger for reasoning families, which spend
/// tokens thinking before they answer.
pub fn default_max_tokens(model: &str) -> u32 {
    let m = model.to_lowercase();
    let reasoning = ["o1", "o3", "o4", "gpt-5"].iter().any(|p| m.starts_with(p))
        || ["thinking", "reason", "-r1", "qwq", "gemini-2.5", "gemini-3"]
            .iter()
            .any(|s| m.contains(s));
    if reasoning { 4096 } else { 512 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_families_get_a_larger_default_budget() {
        assert_eq!(default_max_tokens("gpt-4o"), 512);
        assert_eq!(default_max_tokens("o3-mini"), 4096);
        assert_eq!(default_max_tokens("deepseek-r1"), 4096);
        assert_eq!(default_max_tokens("claude-3-7-sonnet-thinking"), 4096);
    }

    #[test]
    fn probe_modes_round_trip_and_say_which_probes_a_run_makes() {
        for mode in ProbeMode::ALL {
            assert_eq!(ProbeMode::parse(mode.as_str()), Some(mode));
            assert_eq!(
                serde_json::to_value(mode).unwrap(),
                serde_json::json!(mode.as_str())
            );
        }
        assert_eq!(ProbeMode::default(), ProbeMode::Stream);
        assert_eq!(ProbeMode::parse("Stream"), None);
        assert_eq!(ProbeMode::parse("streamed"), None);
        assert_eq!(ProbeMode::Stream.streams(), &[true]);
        assert_eq!(ProbeMode::Plain.streams(), &[false]);
        assert_eq!(ProbeMode::Both.streams(), &[true, false]);
        assert_eq!(
            serde_json::from_str::<ProbeMode>("\"both\"").unwrap(),
            ProbeMode::Both
        );
    }

    #[test]
    fn scrubbing_removes_the_key_and_long_header_values() {
        let s = ProbeSettings {
            base_url: "http://127.0.0.1:9".into(),
            api_key: Secret::new("sk-key-0123456789"),
            timeout: Duration::from_secs(5),
            verify_ssl: true,
            anthropic_version: "2023-06-01".into(),
            extra_headers: [
                ("x-auth".to_string(), Secret::new("tenant-secret-42")),
                ("x-team".to_string(), Secret::new("a")),
            ]
            .into(),
            user_agent: None,
            max_tokens: None,
            check_mode: CheckMode::Challenge,
            prompt: "hi".into(),
            slow_ms: 1000,
            route_overrides: Vec::new(),
            proxy: Default::default(),
            client_profile: ClientProfile::Plain,
        };
        assert_eq!(
            s.scrub("bad key sk-key-0123456789 for tenant-secret-42 (team a)"),
            "bad key [redacted] for [redacted] (team a)"
        );
    }

    #[test]
    fn client_profiles_round_trip_and_browser_is_the_default() {
        for p in ClientProfile::ALL {
            assert_eq!(ClientProfile::parse(p.as_str()), Some(p));
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::json!(p.as_str())
            );
        }
        assert_eq!(ClientProfile::default(), ClientProfile::Browser);
        assert_eq!(ClientProfile::parse("Browser"), None);
    }
}
