//! An upstream answer on its way to the client: its headers (hop-by-hop ones dropped,
//! the channel and model named), an error body passed on scrubbed, and the body of a
//! success: each chunk is handed on as the same
//! `Bytes` the moment it arrives (no copy, no re-framing, nothing added), read on the
//! side for usage, and timed against the idle limits (first byte, then between
//! chunks). When the body ends, breaks, times out or the client goes away (the relay
//! is dropped, which drops the upstream request at once), its [`Ledger`] records the
//! request and feeds the breaker.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use shared::probe::{UpstreamBody, UpstreamResponse};
use tokio::time::Sleep;

use super::Proxy;
use super::breaker::Outcome;
use super::keys::{ProxyEndpoint, ProxyUsage};
use super::usage::{Tokens, UsageReader};

/// Error bodies are read this far before they are passed on.
const ERROR_BODY_CAP: usize = 256 * 1024;

/// Everything known about one proxied request, to record when it ends.
pub struct Ledger {
    pub proxy: Arc<Proxy>,
    pub started: Instant,
    pub at: f64,
    pub key_id: Option<i64>,
    pub requested_model: String,
    pub endpoint: ProxyEndpoint,
    pub stream: bool,
    pub attempts: u8,
    /// The channel answering (id, name) and the model id it was sent.
    pub target: Option<(i64, String)>,
    pub upstream_model: Option<String>,
    pub ttfb_ms: Option<f64>,
}

impl Ledger {
    pub fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// Records the request; `outcome` feeds the breaker of the channel that answered.
    pub fn close(
        self,
        status: u16,
        outcome: Outcome,
        error_class: Option<String>,
        tokens: Tokens,
        ttft_ms: Option<f64>,
    ) {
        if let (Some((id, name)), Some(model)) = (&self.target, &self.upstream_model) {
            self.proxy.breakers.record(*id, name, model, outcome);
        }
        let usage = ProxyUsage {
            at: self.at,
            key_id: self.key_id,
            target_id: self.target.as_ref().map(|t| t.0),
            total_ms: self.elapsed_ms(),
            requested_model: self.requested_model,
            upstream_model: self.upstream_model,
            endpoint: self.endpoint,
            stream: self.stream,
            status,
            attempts: self.attempts,
            ttfb_ms: self.ttfb_ms,
            ttft_ms,
            input_tokens: tokens.input,
            output_tokens: tokens.output,
            tokens_estimated: tokens.estimated,
            error_class,
        };
        self.proxy.core.proxy_keys.record(usage);
    }
}

/// The upstream body as the client's response body.
pub struct Relay {
    upstream: UpstreamBody,
    status: u16,
    first_byte: Duration,
    idle: Duration,
    /// Set the first time the upstream has nothing ready: an answer that is all there
    /// when first polled (most non-streamed ones) never touches the timer wheel.
    timer: Option<Pin<Box<Sleep>>>,
    last_chunk: Instant,
    seen_bytes: bool,
    /// Bytes still due by the upstream's `Content-Length`: the server stops polling a
    /// body once that many were sent, so the end is recorded when they were seen.
    remaining: Option<u64>,
    reader: UsageReader,
    ledger: Option<Ledger>,
}

impl Relay {
    pub fn new(
        upstream: UpstreamBody,
        content_length: Option<u64>,
        status: u16,
        limits: (Duration, Duration),
        reader: UsageReader,
        ledger: Ledger,
    ) -> Relay {
        let now = Instant::now();
        let mut relay = Relay {
            upstream,
            status,
            first_byte: limits.0,
            idle: limits.1,
            timer: None,
            last_chunk: now,
            seen_bytes: false,
            remaining: content_length,
            reader,
            ledger: Some(ledger),
        };
        if content_length == Some(0) {
            relay.end(Outcome::Success, None);
        }
        relay
    }

    fn end(&mut self, outcome: Outcome, error_class: Option<String>) {
        if let Some(ledger) = self.ledger.take() {
            let tokens = self.reader.finish();
            let ttft = self.reader.first_token_ms.or(if ledger.stream {
                self.reader.first_byte_ms
            } else {
                None
            });
            ledger.close(self.status, outcome, error_class, tokens, ttft);
        }
    }
}

impl Stream for Relay {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ledger.is_none() {
            return Poll::Ready(None);
        }
        match this.upstream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                // The timer is not reset per chunk (that costs a timer-wheel update);
                // when it fires, it is moved on from the last chunk's time.
                this.last_chunk = Instant::now();
                this.seen_bytes = true;
                this.reader.see(&chunk);
                if let Some(left) = this.remaining.as_mut() {
                    *left = left.saturating_sub(chunk.len() as u64);
                    if *left == 0 {
                        this.end(Outcome::Success, None);
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                let class = e.class.as_str().to_string();
                this.end(Outcome::Failure, Some(class));
                Poll::Ready(Some(Err(std::io::Error::other(e.message))))
            }
            Poll::Ready(None) => {
                this.end(Outcome::Success, None);
                Poll::Ready(None)
            }
            Poll::Pending => loop {
                let limit = if this.seen_bytes {
                    this.idle
                } else {
                    this.first_byte
                };
                let deadline = this.last_chunk + limit;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
                match timer.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => {
                        if Instant::now() >= deadline {
                            this.end(Outcome::Failure, Some("timeout".into()));
                            return Poll::Ready(Some(Err(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                format!("the upstream sent nothing for {} s", limit.as_secs()),
                            ))));
                        }
                        timer.as_mut().reset(deadline.into());
                    }
                }
            },
        }
    }
}

impl Drop for Relay {
    /// The client went away before the end: dropping `upstream` (right after this)
    /// cancels the upstream request.
    fn drop(&mut self) {
        self.end(Outcome::Neutral, Some("client_closed".into()));
    }
}

/// Response headers that belong to one hop and are not passed on.
/// Header names as constants: a `&str` name is parsed again on every use.
const HOP_HEADERS: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
const X_PROXY_TARGET_ID: HeaderName = HeaderName::from_static("x-proxy-target-id");
const X_PROXY_UPSTREAM_MODEL: HeaderName = HeaderName::from_static("x-proxy-upstream-model");
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// The upstream's response headers minus hop-by-hop ones, plus which channel and
/// model answered.
fn answer_headers(mut h: HeaderMap, channel_id: &HeaderValue, model: &str) -> HeaderMap {
    // One pass over the few headers an upstream sends, then a removal for each hop
    // header found, rather than a lookup for every hop header name.
    let mut found = 0u16;
    for name in h.keys() {
        if let Some(i) = HOP_HEADERS.iter().position(|hop| hop == name) {
            found |= 1 << i;
        }
    }
    for (i, name) in HOP_HEADERS.iter().enumerate() {
        if found & (1 << i) != 0 {
            h.remove(name);
        }
    }
    h.insert(X_PROXY_TARGET_ID, channel_id.clone());
    if let Ok(v) = HeaderValue::from_str(model) {
        h.insert(X_PROXY_UPSTREAM_MODEL, v);
    }
    h
}

/// An upstream error, passed on with its status and body (the channel's secrets
/// scrubbed out of it).
pub async fn pass_error(
    c: &super::view::Channel,
    model: &str,
    resp: UpstreamResponse,
    deadline: Instant,
) -> Response<Body> {
    let mut headers = answer_headers(resp.headers, &c.id_header, model);
    headers.remove(header::CONTENT_LENGTH);
    let mut body = resp.body;
    let mut out = Vec::new();
    let read = async {
        while let Some(Ok(chunk)) = body.next().await {
            out.extend_from_slice(&chunk);
            if out.len() >= ERROR_BODY_CAP {
                out.truncate(ERROR_BODY_CAP);
                break;
            }
        }
    };
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    let _ = tokio::time::timeout(wait, read).await;
    let text = String::from_utf8_lossy(&out);
    let scrubbed = c.settings.scrub(&text);
    let mut r = Response::new(Body::from(scrubbed));
    *r.status_mut() = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY);
    *r.headers_mut() = headers;
    r
}

/// A 2xx answer, streamed on as it arrives; `protocol` and `request_bytes` are for
/// reading its usage.
pub fn pass_answer(
    c: &super::view::Channel,
    model: &str,
    resp: UpstreamResponse,
    (protocol, request_bytes): (shared::probe::Protocol, usize),
    limits: (Duration, Duration),
    mut ledger: Ledger,
) -> Response<Body> {
    let mut headers = answer_headers(resp.headers, &c.id_header, model);
    let sse = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if sse {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        ledger.stream = true;
    }
    if ledger.stream {
        // Also for Gemini's JSON-array stream: no proxy in front may hold it back.
        headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    }
    let reader = UsageReader::new(protocol, ledger.started, request_bytes, sse);
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let relay = Relay::new(resp.body, length, resp.status, limits, reader, ledger);
    let mut r = Response::new(Body::from_stream(relay));
    *r.status_mut() = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::OK);
    *r.headers_mut() = headers;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped_and_the_answering_channel_named() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-request-id", HeaderValue::from_static("abc"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        let out = answer_headers(h, &HeaderValue::from(7), "gpt-4o");
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-type",
                "x-proxy-target-id",
                "x-proxy-upstream-model",
                "x-request-id"
            ]
        );
        assert_eq!(out["x-proxy-target-id"], "7");
        assert_eq!(out["x-proxy-upstream-model"], "gpt-4o");
    }
}
