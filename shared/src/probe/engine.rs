//! The prober: discovers a channel's models and probes one model through its route,
//! measuring time to headers, time to first token, total time and tokens, checking
//! the answer, and classifying any failure. HTTP in, results out: no database, no
//! scheduling.

// The error side carries the partial reply for the record; it is built at most twice
// per probe, so its size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::challenge::Challenge;
use super::classify::{ErrorClass, classify};
use super::protocol::{self, Ask, Delta, Finish, Reply, snippet};
use super::route::{Protocol, RouteRule, route_for};
use super::sse::SseParser;
use super::status::ModelStatus;
use crate::Secret;

/// Connecting never takes longer than this, whatever `timeout_s` says.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest non-streamed body read; past it reading stops.
pub const BODY_CAP: usize = 2 * 1024 * 1024;
/// Largest streamed reply read.
pub const STREAM_CAP: usize = 8 * 1024 * 1024;
/// Error bodies are only read this far.
const ERROR_BODY_CAP: usize = 64 * 1024;
/// Longest wait before the in-run retry, whatever `Retry-After` asks.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
/// How much of the reply is kept.
const CONTENT_KEEP: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CheckMode {
    #[default]
    Challenge,
    Prompt,
}

impl CheckMode {
    pub fn parse(s: &str) -> Option<CheckMode> {
        match s {
            "challenge" => Some(CheckMode::Challenge),
            "prompt" => Some(CheckMode::Prompt),
            _ => None,
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
    pub extra_headers: BTreeMap<String, String>,
    pub user_agent: Option<String>,
    pub max_tokens: Option<u32>,
    pub check_mode: CheckMode,
    pub prompt: String,
    pub slow_ms: u64,
    pub route_overrides: Vec<RouteRule>,
}

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
struct Failure {
    class: ErrorClass,
    message: String,
    status: Option<u16>,
    retry_after: Option<Duration>,
    /// The upstream answered (the failure is in what it said).
    answered: bool,
}

impl Failure {
    fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Failure {
            class,
            message: message.into(),
            status: None,
            retry_after: None,
            answered: false,
        }
    }

    fn answered(mut self, status: u16) -> Self {
        self.status = Some(status);
        self.answered = true;
        self
    }
}

/// Removes trailing `/` and one trailing `/v1` from a base URL.
pub fn normalise_base_url(base: &str) -> String {
    let mut b = base.trim().trim_end_matches('/').to_string();
    if b.ends_with("/v1") {
        b.truncate(b.len() - 3);
    }
    b.trim_end_matches('/').to_string()
}

/// Whether the `model` a reply names is the one asked for: equal, or a dated or
/// suffixed form of it (`gpt-4o` and `gpt-4o-2024-08-06`), ignoring case and any
/// `provider/` or `models/` prefix.
pub fn models_match(asked: &str, returned: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim().to_lowercase();
        s.rsplit('/').next().unwrap_or(&s).to_string()
    };
    let (a, r) = (norm(asked), norm(returned));
    // A dated or versioned suffix: `-2024-08-06`, `-20241022`, `-0613`, `@20240620`,
    // `-latest`, `-preview`; not `-mini`, which names another model.
    let suffixed = |long: &str, short: &str| {
        long.strip_prefix(short).is_some_and(|rest| {
            rest.starts_with(['-', '@', ':', '_'])
                && rest[1..].split(['-', '@', ':', '_', '.']).all(|part| {
                    !part.is_empty()
                        && (part.chars().all(|c| c.is_ascii_digit())
                            || matches!(part, "latest" | "preview" | "exp" | "beta")
                            || (part.starts_with('v')
                                && part[1..].chars().all(|c| c.is_ascii_digit())))
                })
        })
    };
    a == r || suffixed(&a, &r) || suffixed(&r, &a)
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

/// Replaces every occurrence of the key in a text (relays echo keys in errors).
pub fn scrub(text: &str, key: &Secret) -> String {
    let k = key.expose();
    if k.len() < 4 || !text.contains(k) {
        return text.to_string();
    }
    text.replace(k, "[redacted]")
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn transport_failure(e: &reqwest::Error) -> Failure {
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

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Reads a body until its end, the cap or the deadline. `Ok(None)` means the cap was
/// passed and reading stopped.
async fn read_capped(
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

    fn client(&self, s: &ProbeSettings) -> &reqwest::Client {
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
                HeaderValue::from_str(v),
            ) {
                h.insert(name, value);
            }
        }
        h
    }

    fn auth_headers(&self, s: &ProbeSettings, protocol: Protocol) -> HeaderMap {
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

    /// `GET {base}/v1/models`: the channel's model ids, in the order given.
    pub async fn discover(&self, s: &ProbeSettings) -> Result<Vec<String>, DiscoveryError> {
        let url = format!("{}/v1/models", normalise_base_url(&s.base_url));
        let deadline = tokio::time::Instant::now() + s.timeout;
        let fail = |f: Failure| DiscoveryError {
            class: f.class,
            message: scrub(
                &format!("model discovery failed: {}", f.message),
                &s.api_key,
            ),
            status_code: f.status,
        };
        let send = self
            .client(s)
            .get(&url)
            .headers(self.auth_headers(s, Protocol::Openai))
            .send();
        let resp = match tokio::time::timeout_at(deadline, send).await {
            Err(_) => {
                return Err(fail(Failure::new(
                    ErrorClass::Timeout,
                    "GET /v1/models did not answer within timeout_s",
                )));
            }
            Ok(Err(e)) => return Err(fail(transport_failure(&e))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
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
        let text = scrub(&String::from_utf8_lossy(&body), &s.api_key);
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

    /// Probes one model, retrying once within the run when the failure is momentary
    /// (honouring `Retry-After`, at most [`MAX_RETRY_WAIT`]).
    pub async fn probe(&self, s: &ProbeSettings, model: &str, stream: bool) -> ProbeResult {
        let first = self.probe_once(s, model, stream).await;
        let Some((class, wait)) = first.1 else {
            return first.0;
        };
        if !class.is_retryable() {
            return first.0;
        }
        tokio::time::sleep(wait.unwrap_or(Duration::from_secs(1)).min(MAX_RETRY_WAIT)).await;
        let mut second = self.probe_once(s, model, stream).await.0;
        second.attempts = 2;
        second
    }

    /// One attempt; also returns the failure class and `Retry-After` for the retry
    /// decision.
    async fn probe_once(
        &self,
        s: &ProbeSettings,
        model: &str,
        stream: bool,
    ) -> (ProbeResult, Option<(ErrorClass, Option<Duration>)>) {
        let route = route_for(model, &s.route_overrides, &self.rules);
        let challenge = (s.check_mode == CheckMode::Challenge).then(Challenge::generate);
        let prompt = challenge
            .as_ref()
            .map(|c| c.prompt.clone())
            .unwrap_or_else(|| s.prompt.clone());
        let ask = Ask {
            model,
            prompt: &prompt,
            stream,
            max_tokens: s.max_tokens.unwrap_or_else(|| default_max_tokens(model)),
        };
        let call = protocol::build(route.protocol, &ask);
        let endpoint = call
            .path
            .split('?')
            .next()
            .unwrap_or(&call.path)
            .to_string();
        let started_at = now_unix();
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + s.timeout;
        let mut timing = Timing::default();
        let outcome = self
            .exchange(
                s,
                route.protocol,
                &call,
                stream,
                start,
                deadline,
                &mut timing,
            )
            .await
            .and_then(|mut reply| {
                // A reply that quotes the key (a key split across stream events
                // included) must not carry it into the judged text.
                reply.text = scrub(&reply.text, &s.api_key);
                judge(reply, challenge.as_ref())
            });
        let total = start.elapsed();

        let mut result = ProbeResult {
            model: model.to_string(),
            protocol: route.protocol,
            route: route.rule,
            endpoint,
            stream,
            success: false,
            status: ModelStatus::Fail,
            transport_success: false,
            status_code: timing.status,
            ttfb_ms: timing.headers.map(ms),
            ttft_ms: timing.first_token.map(ms),
            total_ms: ms(total),
            output_tokens: None,
            tokens_estimated: false,
            tokens_per_s: None,
            returned_model: None,
            model_mismatch: false,
            content: String::new(),
            error_class: None,
            error: None,
            attempts: 1,
            started_at,
        };
        let mut retry = None;
        match outcome {
            Ok(reply) => {
                result.success = true;
                result.transport_success = true;
                result.status = ModelStatus::of(true, result.total_ms, s.slow_ms);
                fill_reply(&mut result, &reply, &timing, total, &s.api_key);
            }
            Err((failure, reply)) => {
                result.transport_success = failure.answered;
                if let Some(reply) = &reply {
                    fill_reply(&mut result, reply, &timing, total, &s.api_key);
                }
                if result.status_code.is_none() {
                    result.status_code = failure.status;
                }
                result.error_class = Some(failure.class);
                result.error = Some(failure.message);
                retry = Some((failure.class, failure.retry_after));
            }
        }
        result.content = scrub(&result.content, &s.api_key);
        result.error = result.error.map(|e| scrub(&e, &s.api_key));
        (result, retry)
    }

    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        s: &ProbeSettings,
        protocol: Protocol,
        call: &protocol::Call,
        stream: bool,
        start: Instant,
        deadline: tokio::time::Instant,
        timing: &mut Timing,
    ) -> Result<Reply, (Failure, Option<Reply>)> {
        let url = format!("{}{}", normalise_base_url(&s.base_url), call.path);
        let send = self
            .client(s)
            .post(&url)
            .headers(self.auth_headers(s, protocol))
            .json(&call.body)
            .send();
        let resp = match tokio::time::timeout_at(deadline, send).await {
            Err(_) => {
                return Err((
                    Failure::new(
                        ErrorClass::Timeout,
                        format!(
                            "no response headers within timeout_s ({:.0} s)",
                            s.timeout.as_secs_f64()
                        ),
                    ),
                    None,
                ));
            }
            Ok(Err(e)) => return Err((transport_failure(&e), None)),
            Ok(Ok(r)) => r,
        };
        timing.headers = Some(start.elapsed());
        let status = resp.status().as_u16();
        timing.status = Some(status);
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_lowercase();

        if !(200..300).contains(&status) {
            let retry = retry_after(resp.headers());
            let body = read_capped(resp, deadline, ERROR_BODY_CAP)
                .await
                .map_err(|f| (f, None))?;
            let text = body
                .map(|b| scrub(&String::from_utf8_lossy(&b), &s.api_key))
                .unwrap_or_default();
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| protocol::hidden_error(&v))
                .unwrap_or_else(|| snippet(&text));
            let mut f = Failure::new(classify(status, &text), format!("HTTP {status}: {detail}"))
                .answered(status);
            f.retry_after = retry;
            return Err((f, None));
        }

        if stream && content_type.contains("text/event-stream") {
            return read_stream(resp, protocol, start, deadline, timing, &s.api_key).await;
        }
        let body = match read_capped(resp, deadline, BODY_CAP)
            .await
            .map_err(|f| (f, None))?
        {
            Some(b) => b,
            None => {
                return Err((
                    Failure::new(
                        ErrorClass::BadResponse,
                        format!(
                            "reply larger than {} MiB; stopped reading",
                            BODY_CAP / 1024 / 1024
                        ),
                    )
                    .answered(status),
                    None,
                ));
            }
        };
        timing.first_token = Some(start.elapsed());
        let text = scrub(&String::from_utf8_lossy(&body), &s.api_key);
        let v: Value = serde_json::from_str(&text).map_err(|_| {
            (
                Failure::new(
                    ErrorClass::BadResponse,
                    format!(
                        "reply is not JSON ({}): {}",
                        if content_type.is_empty() {
                            "no content-type"
                        } else {
                            &content_type
                        },
                        snippet(&text)
                    ),
                )
                .answered(status),
                None,
            )
        })?;
        if let Some(msg) = protocol::hidden_error(&v) {
            return Err((
                Failure::new(
                    classify(200, &msg),
                    format!("error inside a {status} reply: {msg}"),
                )
                .answered(status),
                None,
            ));
        }
        if stream {
            return Err((
                Failure::new(
                    ErrorClass::BadResponse,
                    "asked for a stream but the reply was a single JSON body",
                )
                .answered(status),
                None,
            ));
        }
        protocol::parse_body(protocol, &v).map_err(|m| {
            (
                Failure::new(ErrorClass::BadResponse, m).answered(status),
                None,
            )
        })
    }
}

#[derive(Default)]
struct Timing {
    status: Option<u16>,
    headers: Option<Duration>,
    first_token: Option<Duration>,
}

async fn read_stream(
    resp: reqwest::Response,
    protocol: Protocol,
    start: Instant,
    deadline: tokio::time::Instant,
    timing: &mut Timing,
    key: &Secret,
) -> Result<Reply, (Failure, Option<Reply>)> {
    let status = resp.status().as_u16();
    let mut body = resp.bytes_stream();
    let mut parser = SseParser::new();
    let mut reply = Reply::default();
    let mut read = 0usize;
    let mut done = false;
    let answered = |class, msg: String| Failure::new(class, msg).answered(status);
    loop {
        let next: Option<Result<Bytes, reqwest::Error>> =
            match tokio::time::timeout_at(deadline, body.next()).await {
                Ok(n) => n,
                Err(_) => {
                    let msg = if timing.first_token.is_some() {
                        "the stream did not finish within timeout_s"
                    } else {
                        "no token within timeout_s"
                    };
                    return Err((answered(ErrorClass::Timeout, msg.into()), Some(reply)));
                }
            };
        let (events, eof) = match next {
            Some(Ok(chunk)) => {
                read += chunk.len();
                if read > STREAM_CAP {
                    return Err((
                        answered(
                            ErrorClass::BadResponse,
                            format!(
                                "stream larger than {} MiB; stopped reading",
                                STREAM_CAP / 1024 / 1024
                            ),
                        ),
                        Some(reply),
                    ));
                }
                (parser.feed(&chunk), false)
            }
            Some(Err(e)) => {
                let mut f = transport_failure(&e);
                f.answered = true;
                f.status = Some(status);
                if f.class == ErrorClass::Network {
                    f.class = ErrorClass::StreamBroken;
                }
                return Err((f, Some(reply)));
            }
            None => (parser.finish().into_iter().collect(), true),
        };
        for event in &events {
            let event = &super::sse::SseEvent {
                event: event.event.clone(),
                data: scrub(&event.data, key),
            };
            let deltas = protocol::parse_event(protocol, event)
                .map_err(|m| (answered(ErrorClass::BadResponse, m), Some(reply.clone())))?;
            for d in deltas {
                match &d {
                    Delta::Text(t) | Delta::Reasoning(t)
                        if !t.is_empty() && timing.first_token.is_none() =>
                    {
                        timing.first_token = Some(start.elapsed());
                    }
                    Delta::Error(msg) => {
                        let class = if reply.text.is_empty() && reply.reasoning.is_empty() {
                            match classify(200, msg) {
                                // An unrecognised error event is a broken stream.
                                ErrorClass::Upstream5xx
                                    if !msg.to_lowercase().contains("overloaded") =>
                                {
                                    ErrorClass::StreamBroken
                                }
                                c => c,
                            }
                        } else {
                            ErrorClass::StreamBroken
                        };
                        return Err((
                            answered(class, format!("error event in the stream: {msg}")),
                            Some(reply),
                        ));
                    }
                    Delta::Done => done = true,
                    _ => {}
                }
                reply.apply(&d);
            }
            if done {
                // Stop reading: the reply is complete.
                return Ok(reply);
            }
        }
        if eof {
            break;
        }
    }
    if protocol::ends_on_close(protocol) && reply.finish.is_some() {
        return Ok(reply);
    }
    let terminator = match protocol {
        Protocol::Openai => "data: [DONE]",
        Protocol::Responses => "response.completed",
        Protocol::Anthropic => "message_stop",
        Protocol::Gemini => "a finishReason",
    };
    Err((
        answered(
            ErrorClass::StreamBroken,
            format!("the stream ended before {terminator}"),
        ),
        Some(reply),
    ))
}

/// Decides whether a complete reply passes: not empty, not filtered, and with the
/// challenge answer when one was asked.
fn judge(reply: Reply, challenge: Option<&Challenge>) -> Result<Reply, (Failure, Option<Reply>)> {
    let text = reply.text.trim();
    if text.is_empty() {
        let (class, msg) = match &reply.finish {
            Some(Finish::ContentFilter) => (
                ErrorClass::ContentFilter,
                "the reply was blocked by a content filter".to_string(),
            ),
            Some(Finish::Length) if !reply.reasoning.is_empty() => (
                ErrorClass::BadResponse,
                "empty reply: reasoning used the whole token budget; raise max_tokens".to_string(),
            ),
            _ if !reply.reasoning.is_empty() => (
                ErrorClass::BadResponse,
                "empty reply: only reasoning came back".to_string(),
            ),
            Some(Finish::Length) => (
                ErrorClass::BadResponse,
                "empty reply: the token budget ran out".to_string(),
            ),
            _ => (
                ErrorClass::BadResponse,
                "empty reply: no text came back".to_string(),
            ),
        };
        return Err((Failure::new(class, msg).answered(200), Some(reply)));
    }
    if let Some(c) = challenge
        && !c.passes(text)
    {
        let msg = format!(
            "wrong answer: the reply did not contain `{}` (reply: {})",
            c.expected,
            snippet(text)
        );
        return Err((
            Failure::new(ErrorClass::WrongAnswer, msg).answered(200),
            Some(reply),
        ));
    }
    Ok(reply)
}

fn fill_reply(
    result: &mut ProbeResult,
    reply: &Reply,
    timing: &Timing,
    total: Duration,
    key: &Secret,
) {
    // Scrub the whole text before cutting it, so no part of a key survives the cut.
    result.content = scrub(&reply.text, key).chars().take(CONTENT_KEEP).collect();
    result.returned_model = reply.model.clone();
    result.model_mismatch = reply
        .model
        .as_deref()
        .is_some_and(|m| !models_match(&result.model, m));
    let (tokens, estimated) = match reply.usage_tokens {
        Some(n) => (Some(n), false),
        None if !reply.text.is_empty() || !reply.reasoning.is_empty() => {
            // About four characters a token for Latin text: an estimate, flagged so.
            let chars = reply.text.chars().count() + reply.reasoning.chars().count();
            (Some(chars.div_ceil(4) as u64), true)
        }
        None => (None, false),
    };
    result.output_tokens = tokens;
    result.tokens_estimated = estimated;
    // Generation speed: tokens over the time from first token to the end when
    // streamed, over the whole time otherwise.
    let span = match (result.stream, timing.first_token) {
        (true, Some(ft)) if total > ft + Duration::from_millis(1) => total - ft,
        _ => total,
    };
    result.tokens_per_s = tokens
        .filter(|n| *n > 0)
        .map(|n| ((n as f64 / span.as_secs_f64().max(0.001)) * 10.0).round() / 10.0);
}

/// Applies `selected_models` (empty = all), `exclude_models` (globs) and `max_models`
/// (0 = all) to a discovered list, keeping its order.
pub fn select_models(
    discovered: &[String],
    selected: &[String],
    exclude: &[String],
    max_models: usize,
) -> Vec<String> {
    let mut out: Vec<String> = discovered
        .iter()
        .filter(|m| selected.is_empty() || selected.contains(m))
        .filter(|m| !super::route::matches_any(m, exclude))
        .cloned()
        .collect();
    if max_models > 0 {
        out.truncate(max_models);
    }
    out
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

    #[test]
    fn dated_and_suffixed_ids_are_not_mismatches() {
        assert!(models_match("gpt-4o", "gpt-4o-2024-08-06"));
        assert!(models_match("gpt-4o-2024-08-06", "gpt-4o"));
        assert!(models_match(
            "claude-3-5-sonnet",
            "claude-3-5-sonnet-20241022"
        ));
        assert!(models_match("GPT-4o", "openai/gpt-4o"));
        assert!(models_match("gemini-1.5-pro", "models/gemini-1.5-pro-002"));
        assert!(models_match("gpt-4-turbo", "gpt-4-turbo-preview"));
        assert!(models_match(
            "claude-3-5-sonnet",
            "claude-3-5-sonnet@20240620"
        ));
        assert!(
            !models_match("gpt-4o", "gpt-4o-mini"),
            "a smaller sibling is a different model"
        );
        assert!(!models_match("gpt-4o", "gpt-3.5-turbo"));
        assert!(!models_match("claude-3-opus", "claude-3-haiku"));
        assert!(
            !models_match("gpt-4", "gpt-4o"),
            "a different model, not a suffix"
        );
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
    fn model_selection_filters_in_order() {
        let d: Vec<String> = ["a", "b-embed", "c", "d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(select_models(&d, &[], &[], 0), d);
        assert_eq!(
            select_models(&d, &["c".into(), "a".into()], &[], 0),
            ["a", "c"]
        );
        assert_eq!(
            select_models(&d, &[], &["*embed*".into()], 0),
            ["a", "c", "d"]
        );
        assert_eq!(select_models(&d, &[], &["*embed*".into()], 2), ["a", "c"]);
    }

    #[test]
    fn reasoning_families_get_a_larger_default_budget() {
        assert_eq!(default_max_tokens("gpt-4o"), 512);
        assert_eq!(default_max_tokens("o3-mini"), 4096);
        assert_eq!(default_max_tokens("deepseek-r1"), 4096);
        assert_eq!(default_max_tokens("claude-3-7-sonnet-thinking"), 4096);
    }
}
