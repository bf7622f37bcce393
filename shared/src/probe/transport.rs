//! The HTTP side of a probe: the `Prober` and its shared clients, the common and
//! per-protocol auth headers, capped body reads, `Retry-After`, and turning transport
//! errors into failures. Discovery and probe attempts add `impl Prober` blocks in
//! their own modules.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::classify::ErrorClass;
use super::result::Failure;
use super::route::{Protocol, RouteRule};
use super::settings::{CONNECT_TIMEOUT, ProbeSettings};

pub(super) fn transport_failure(e: &reqwest::Error) -> Failure {
    // The chain's messages tell TLS problems apart from other connection failures.
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        chain.push_str(&s.to_string().to_lowercase());
        chain.push_str(": ");
        source = s.source();
    }
    // The relay's URL stays out of the message: it is shown where the URL itself may
    // not be (visitors without `visitor_show_base_url`).
    if let Some(url) = e.url() {
        let url = url.as_str().to_lowercase();
        chain = chain
            .replace(&format!(" for url ({url})"), "")
            .replace(&url, "[url]");
    }
    let class = if ["certificate", "tls", "ssl", "handshake", "unknownissuer"]
        .iter()
        .any(|w| chain.contains(w))
    {
        ErrorClass::Tls
    } else if e.is_timeout() {
        ErrorClass::Timeout
    } else if e.is_body() || e.is_decode() {
        ErrorClass::StreamBroken
    } else {
        ErrorClass::Network
    };
    Failure::new(class, chain.trim_end_matches(": ").to_string())
}

pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Reads a body until its end, the cap or the deadline. `Ok(None)` means the cap was
/// passed and reading stopped.
pub(super) async fn read_capped(
    resp: reqwest::Response,
    deadline: tokio::time::Instant,
    cap: usize,
) -> Result<Option<Vec<u8>>, Failure> {
    let mut stream = resp.bytes_stream();
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| {
                Failure::new(
                    ErrorClass::Timeout,
                    "the reply did not finish within timeout_s",
                )
            })?;
        match next {
            None => return Ok(Some(out)),
            Some(Err(e)) => return Err(transport_failure(&e)),
            Some(Ok(chunk)) => {
                if out.len() + chunk.len() > cap {
                    return Ok(None);
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
}

/// Builds HTTP clients; one per `verify_ssl` value, shared by every probe.
#[derive(Clone)]
pub struct Prober {
    verified: reqwest::Client,
    unverified: reqwest::Client,
    rules: Vec<RouteRule>,
}

impl Prober {
    /// A prober routing with `rules` (the global table; targets add their overrides).
    pub fn new(rules: Vec<RouteRule>) -> Prober {
        let build = |verify: bool| {
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .danger_accept_invalid_certs(!verify)
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
                .expect("the HTTP client builds with rustls")
        };
        Prober {
            verified: build(true),
            unverified: build(false),
            rules,
        }
    }

    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    pub(super) fn client(&self, s: &ProbeSettings) -> &reqwest::Client {
        if s.verify_ssl {
            &self.verified
        } else {
            &self.unverified
        }
    }

    fn common_headers(&self, s: &ProbeSettings) -> HeaderMap {
        let mut h = HeaderMap::new();
        let ua = s
            .user_agent
            .clone()
            .unwrap_or_else(|| format!("apimon/{}", crate::VERSION));
        if let Ok(v) = HeaderValue::from_str(&ua) {
            h.insert(reqwest::header::USER_AGENT, v);
        }
        for (k, v) in &s.extra_headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v.expose()),
            ) {
                h.insert(name, value);
            }
        }
        h
    }

    pub(super) fn auth_headers(&self, s: &ProbeSettings, protocol: Protocol) -> HeaderMap {
        let mut h = self.common_headers(s);
        let key = s.api_key.expose();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(mut v) = HeaderValue::from_str(value) {
                v.set_sensitive(true);
                h.insert(name, v);
            }
        };
        match protocol {
            Protocol::Openai | Protocol::Responses => {
                put("authorization", &format!("Bearer {key}"))
            }
            Protocol::Anthropic => {
                put("x-api-key", key);
                put("anthropic-version", &s.anthropic_version);
            }
            Protocol::Gemini => put("x-goog-api-key", key),
        }
        h
    }
}
