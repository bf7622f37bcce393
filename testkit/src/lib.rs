//! Test support: [`FakeUpstream`], a fake LLM relay on 127.0.0.1 that speaks the four
//! protocols the prober uses and misbehaves on demand, counting what it served; and
//! local outbound proxies ([`HttpProxy`], [`Socks5Proxy`]) that count what they relay;
//! and a [`HelloRecorder`] that reads the JA4 ([`ja4`]) of a client's TLS ClientHello.
//!
//! # Endpoints
//!
//! `GET /v1/models` (shaped by [`Discovery`]), `POST /v1/chat/completions`,
//! `POST /v1/responses`, `POST /v1/messages`, `POST /v1/embeddings` (floats, or base64
//! little-endian `f32`s with `encoding_format: "base64"`, as the openai SDK asks), and
//! Gemini's `POST /v1beta/models/{model}:generateContent` / `:streamGenerateContent`
//! (also under `/v1/models/`; SSE with `?alt=sse`, else a progressively streamed JSON
//! array), `GET /v1beta/models` (Gemini's list of the same models) and
//! `GET /v1beta/models/{model}`.
//! The key is accepted as `Authorization: Bearer`, `x-api-key`, `x-goog-api-key` or
//! `?key=`; anything else gets a 401 whose message echoes the presented key, like real
//! relays (`{"error":{"message":"Incorrect API key provided: <key>","type":
//! "invalid_request_error","code":"invalid_api_key"}}`).
//!
//! A well-formed reply answers a challenge prompt (`shared::probe::challenge::solve`)
//! with its word, and anything else with `Hello from <model>`. Streams split it into
//! 2–3 deltas and end with the protocol's terminator.
//!
//! # Misbehaviour, chosen by a substring of the requested model
//!
//! Checked in this order; error bodies are OpenAI-style JSON on every protocol.
//!
//! - `roleonlyhang`: streams send headers and the opening only (chat role chunk,
//!   Anthropic `message_start` + `ping`, `response.created`, nothing for Gemini), then
//!   hang; non-stream requests hang before headers.
//! - `reasoningonly`: reasoning only and an empty answer, ended for length (`length`,
//!   `max_tokens`, `MAX_TOKENS`, `response.incomplete` with `max_output_tokens`).
//! - `flaky429` / `flaky`: the first request for that exact model gets 429 with
//!   `Retry-After: 1` / 500, later ones a normal reply.
//! - `err500`, `err503`: that status with a `server_error` body.
//! - `err529`: 529 with Anthropic's `overloaded_error` body.
//! - `err429`: 429, `Retry-After: 1`, `rate_limit_exceeded`.
//! - `quota`: 429 with `insufficient_quota`, "You exceeded your current quota".
//! - `err401`: 401 `invalid_api_key`, echoing the key.
//! - `notfound`: 404 `model_not_found`, "The model `X` does not exist".
//! - `err400`: 400 `invalid_request_error`.
//! - `multiline`: 400 whose message runs over three lines, as LiteLLM's do.
//! - `error200`: 200 `{"error":{"message":"upstream channel error",...}}`, also for
//!   stream requests (as `application/json`).
//! - `cnfail`: 200 `{"success":false,"message":"余额不足"}`.
//! - `codefail`: 200 `{"code":500,"message":"no available channel"}`.
//! - `midstream`: a stream with one content delta, then an error event (chat
//!   `data: {"error":..}`, Anthropic `event: error` overloaded, Responses `event: error`,
//!   Gemini an `{"error":..}` element), then the body ends; non-stream as `error200`.
//! - `nonjson`: 200 `text/html` `<html><body>Bad gateway</body></html>`.
//! - `emptytext`: a complete reply with empty text (streams: no content deltas).
//! - `reasoning`: reasoning deltas (`reasoning_content`, `thinking_delta`, reasoning
//!   summary, `thought: true` parts) before the normal reply.
//! - `slow`: waits `slow_delay` before the first content; streams send headers and
//!   the opening at once, non-stream requests wait before headers.
//! - `hang`: never answers, not even headers.
//! - `huge`: non-stream, 64 MiB of `{"choices":[{"message":{"content":"aaaa…` in 64 KiB
//!   chunks; streams, 1024 content deltas of 64 KiB each.
//! - `endless`: streams, a `tick ` delta every 20 ms forever; non-stream, the `huge`
//!   prefix then 1 KiB of `a` every 20 ms forever.
//! - `cut`: streams carry the content and end without terminator (no finish chunk or
//!   `[DONE]`, no `message_delta`/`message_stop`, no `response.completed`, no Gemini
//!   `finishReason` nor closing `]`); non-stream bodies are cut in the middle of the JSON.
//! - `wrongmodel`: the reply's model field is `some-other-model`.
//! - `datedmodel`: the model field is `<requested>-2024-08-06`.
//! - `wronganswer`: replies `I am a helpful assistant.` whatever the prompt.
//! - `filter`: empty text ended by the content filter (`content_filter`, `refusal`,
//!   `SAFETY`, `response.incomplete` with `content_filter`).
//! - `garbage`: streams send three `data: not json at all` then `data: [DONE]`
//!   (Gemini's array: the same garbage as elements); non-stream replies normally.
//!
//! Independently, `relay` switches streams to relay framing: `data:` without a space,
//! CRLF line endings, `: keep-alive` comments between events; chat replies (stream or
//! not) also carry `reasoning_content` before the content.
//!
//! # Misbehaviour switched on at runtime, by exact model name
//!
//! [`FakeUpstream::set_failure`] makes one model fail as a [`Failure`] says (after the
//! model passed its probes, say), taking precedence over the name markers;
//! [`FakeUpstream::set_event_gap`] spaces that model's stream events;
//! [`FakeUpstream::stop_listening`] closes the port so connections are refused until
//! [`FakeUpstream::resume_listening`]. [`FakeUpstream::serve_control`] offers the same
//! switches and the records over HTTP on a port of their own, for tests in another
//! language (see `control`).
//!
//! # Usage
//!
//! Answers report usage as the real APIs do: chat `usage` (streams only with
//! `stream_options.include_usage`, in a last chunk with empty `choices`), Responses
//! `usage` (streams: in `response.completed`), Anthropic `usage` (streams: input in
//! `message_start`, output in `message_delta`), Gemini `usageMetadata` (streams: on the
//! last chunk). Input tokens are the prompt's characters / 4, output tokens the reply's.
//! The record of each request ([`Received::usage`]) holds what was reported.
//!
//! # Records
//!
//! Every request is recorded ([`FakeUpstream::received`]): method, path, query, headers,
//! body, and for generation requests the model, the instants each stream event left, how
//! the answer ended ([`Outcome`]: finished, client hung up, cut by the fake) and the usage
//! reported. The last 4096 are kept.
//!
//! # Counting
//!
//! A generation request is in flight from arrival until its body was sent to the end
//! or abandoned; abandoned ones (client dropped the body or the connection, including
//! before headers) count in [`FakeUpstream::dropped`]. `probe_delay` is waited before
//! any byte of every generation response, errors included.

mod behaviour;
mod body;
mod control;
mod hello_recorder;
pub mod ja4;
mod proxies;
mod records;
mod request;
mod server;
mod state;
mod tls;
mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use hello_recorder::HelloRecorder;
pub use proxies::{HttpProxy, Socks5Proxy};
pub use records::{Outcome, Received, ReportedUsage};
use state::{Shared, lock};

/// How one model fails when switched on with [`FakeUpstream::set_failure`]. In JSON (the
/// control API): `{"kind":"status","status":503}`, `{"kind":"hang_before_headers"}`,
/// `{"kind":"error_after_first_byte"}`. A refused connection is the whole port's
/// doing: [`FakeUpstream::stop_listening`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "status", rename_all = "snake_case")]
pub enum Failure {
    /// That status with an OpenAI-style error body; 429 also carries `Retry-After: 1`,
    /// and 401's message echoes the presented key, as real relays do.
    Status(u16),
    /// Never answers, not even headers, until the client leaves.
    HangBeforeHeaders,
    /// Answers 200 and the first part of the body (streams: the opening events and the
    /// first content delta; plain: half of the JSON), then cuts the connection.
    ErrorAfterFirstByte,
}

/// How `GET /v1/models` behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Discovery {
    /// The configured list.
    #[default]
    Ok,
    /// That HTTP status with an OpenAI-style error body.
    Status(u16),
    /// 200 `text/html` `<html>oops</html>`.
    NonJson,
    /// 200 `{"object":"list"}`.
    MissingData,
    /// 200 with `"data": []`.
    Empty,
    /// Never answers.
    Hang,
}

#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// What `GET /v1/models` lists.
    pub models: Vec<String>,
    /// The only key accepted.
    pub api_key: String,
    pub discovery: Discovery,
    /// Waited before the first byte of every generation response.
    pub probe_delay: Duration,
    /// First-content delay of models whose name contains `slow`.
    pub slow_delay: Duration,
    /// Pause between two events of a stream, so each leaves in its own TCP segment
    /// (zero: written back to back).
    pub event_gap: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            models: ["gpt-4o-mini", "claude-3-5-haiku", "gemini-2.0-flash"]
                .map(String::from)
                .to_vec(),
            api_key: "sk-fake-upstream-key-0123456789".to_string(),
            discovery: Discovery::Ok,
            probe_delay: Duration::ZERO,
            slow_delay: Duration::from_millis(1500),
            event_gap: Duration::ZERO,
        }
    }
}

/// A running fake upstream. Dropping it stops accepting connections.
pub struct FakeUpstream {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
    tls: bool,
    /// Whether the port should accept connections (plain HTTP only).
    listening: watch::Sender<bool>,
    control: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl FakeUpstream {
    /// Starts on `127.0.0.1` at a free port, on the current tokio runtime.
    ///
    /// # Panics
    /// If no port can be bound.
    pub async fn start(config: FakeConfig) -> FakeUpstream {
        FakeUpstream::bind(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("bind the fake upstream")
    }

    /// Starts at `addr`, on the current tokio runtime.
    pub async fn bind(config: FakeConfig, addr: SocketAddr) -> std::io::Result<FakeUpstream> {
        let listener = shared::listen::listen(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let app = server::router(shared.clone());
        let (listening, wanted) = watch::channel(true);
        let server = tokio::spawn(server::serve_while_wanted(listener, app, wanted));
        Ok(FakeUpstream {
            shared,
            addr,
            server,
            tls: false,
            listening,
            control: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Starts on `127.0.0.1` over HTTPS with a fresh self-signed certificate.
    ///
    /// # Panics
    /// If no port can be bound or the certificate cannot be made.
    pub async fn start_tls(config: FakeConfig) -> FakeUpstream {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("bind the fake upstream");
        let addr = listener.local_addr().expect("a bound address");
        let listener = tls::TlsListener::new(listener).expect("a self-signed certificate");
        let shared = Arc::new(Shared::new(config));
        let app = server::router(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeUpstream {
            shared,
            addr,
            server,
            tls: true,
            listening: watch::channel(true).0,
            control: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// `http://127.0.0.1:PORT` (`https://` for [`FakeUpstream::start_tls`]), no
    /// trailing slash.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_models(&self, models: Vec<String>) {
        *lock(&self.shared.models) = models;
    }

    pub fn set_discovery(&self, discovery: Discovery) {
        *lock(&self.shared.discovery) = discovery;
    }

    /// Generation requests currently being served.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most generation requests ever in flight at once (since `reset_peak`).
    pub fn peak_in_flight(&self) -> usize {
        self.shared.peak.load(Ordering::SeqCst)
    }

    /// Restarts peak tracking from the current in-flight count.
    pub fn reset_peak(&self) {
        self.shared.peak.store(self.in_flight(), Ordering::SeqCst);
    }

    /// All generation requests received (not `/v1/models`), refused ones included.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Generation requests that named exactly `model`.
    pub fn requests_for(&self, model: &str) -> usize {
        self.shared.requests_for(model)
    }

    /// Generation responses the client abandoned before their end.
    pub fn dropped(&self) -> usize {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    /// Headers of the most recent request of any kind.
    pub fn last_headers(&self) -> Option<HeaderMap> {
        lock(&self.shared.last_headers).clone()
    }

    /// JSON body of the most recent generation request that had one.
    pub fn last_body(&self) -> Option<Value> {
        lock(&self.shared.last_body).clone()
    }

    /// The requests received (the last 4096), oldest first.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.records).all()
    }

    /// The generation requests that asked for exactly `model`, oldest first.
    pub fn received_for(&self, model: &str) -> Vec<Received> {
        let mut all = self.received();
        all.retain(|r| r.model.as_deref() == Some(model));
        all
    }

    /// Forgets the records (counters are kept).
    pub fn clear_received(&self) {
        lock(&self.shared.records).clear();
    }

    /// Makes `model` fail as `failure` says from its next request on (`None`: answer
    /// normally again).
    pub fn set_failure(&self, model: &str, failure: Option<Failure>) {
        control::set_failure(&self.shared, model, failure);
    }

    /// Makes every model without a failure of its own fail as `failure` says (`None`:
    /// stop).
    pub fn set_failure_for_every_model(&self, failure: Option<Failure>) {
        *lock(&self.shared.every_failure) = failure;
    }

    /// Clears every failure switched on, per model and for every model.
    pub fn clear_failures(&self) {
        lock(&self.shared.failures).clear();
        *lock(&self.shared.every_failure) = None;
    }

    /// Spaces `model`'s stream events `gap` apart (`None`: back to `FakeConfig::event_gap`).
    pub fn set_event_gap(&self, model: &str, gap: Option<Duration>) {
        control::set_event_gap(&self.shared, model, gap);
    }

    /// Closes the port: new connections are refused, idle keep-alive ones are closed,
    /// requests being answered go on. Returns once a connection attempt is refused.
    ///
    /// # Panics
    /// On an HTTPS upstream, which cannot stop.
    pub async fn stop_listening(&self) {
        assert!(!self.tls, "an HTTPS fake upstream cannot stop listening");
        server::set_listening(&self.listening, self.addr, false).await;
    }

    /// Opens the port again after [`FakeUpstream::stop_listening`]; returns once it accepts.
    pub async fn resume_listening(&self) {
        server::set_listening(&self.listening, self.addr, true).await;
    }

    /// Serves the control API (see the `control` module docs) on a port of its own and
    /// returns its base URL, `http://127.0.0.1:PORT`.
    ///
    /// # Panics
    /// If no port can be bound.
    pub async fn serve_control(&self) -> String {
        let (url, task) =
            control::serve(self.shared.clone(), self.listening.clone(), self.addr).await;
        lock(&self.control).push(task);
        url
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.server.abort();
        // Stops the port's current server too (it runs in a task of its own).
        self.listening.send_replace(false);
        for task in lock(&self.control).drain(..) {
            task.abort();
        }
    }
}
