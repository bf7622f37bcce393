//! One proxied generation request from arrival to the upstream's answer: the client's
//! key checked, the body read (capped), routed, then sent to the best candidate with
//! the channel's key; on a connect error, a timeout before headers, a 5xx or a 429 the
//! next candidate is tried (at most [`MAX_ATTEMPTS`], within twice the first-byte
//! limit). Once an answer's headers are passed on, it is the answer: no retry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures_util::StreamExt;
use shared::probe::{ErrorClass, UpstreamResponse};

use super::Proxy;
use super::breaker::{Admission, Outcome};
use super::keys::KeyGrant;
use super::refusal::Refusal;
use super::relay::{Ledger, Relay};
use super::request::{self, Api, BODY_LIMIT};
use super::select::{self, Ask};
use super::usage::{Tokens, UsageReader};
use crate::http::extract::request_client;

/// Channels tried per request at most.
pub const MAX_ATTEMPTS: usize = 3;
/// Error bodies are read this far before they are passed on.
const ERROR_BODY_CAP: usize = 256 * 1024;

/// Request headers the upstream gets from the client; everything else (its key, hop
/// headers, cookies) stays here. The channel's own headers are set from its settings.
const PASSED_REQUEST_HEADERS: [HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::ACCEPT,
];
const PASSED_REQUEST_HEADER_NAMES: [&str; 3] =
    ["anthropic-version", "anthropic-beta", "openai-beta"];

/// Response headers that belong to one hop and are not passed on.
const HOP_HEADERS: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The key check: the presented key authenticated (shared failure limits per client).
pub fn authenticate(proxy: &Proxy, parts: &Parts) -> Result<KeyGrant, Refusal> {
    let key = request::presented_key(&parts.headers, parts.uri.query()).unwrap_or_default();
    let client = request_client(parts, &proxy.core);
    proxy
        .core
        .proxy_keys
        .authenticate(&key, client)
        .map_err(|r| {
            let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            let kind = match status.as_u16() {
                401 => "authentication_error",
                403 => "permission_error",
                _ => "rate_limit_error",
            };
            let mut refusal = Refusal::new(status, kind, r.to_string());
            if let Some(s) = r.retry_after_s() {
                refusal = refusal.retry_after(s);
            }
            refusal
        })
}

async fn read_body(body: Body, headers: &HeaderMap) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!(
                "request body is larger than {} MiB",
                BODY_LIMIT / 1024 / 1024
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| too_large())
}

/// What the client asked, once read.
struct Incoming {
    api: Api,
    requested: String,
    body: Bytes,
    model_span: Option<std::ops::Range<usize>>,
    stream: bool,
    query: Option<String>,
}

/// Serves one generation request of `api`; `path_model` is Gemini's model from the
/// path.
pub async fn serve(
    proxy: Arc<Proxy>,
    api: Api,
    req: Request,
    path_model: Option<String>,
) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let grant = match authenticate(&proxy, &parts) {
        Ok(g) => g,
        Err(r) => return r.into_response(),
    };
    let mut ledger = Ledger {
        proxy: proxy.clone(),
        started,
        at: crate::store::now(),
        key_id: grant.key_id,
        requested_model: path_model.clone().unwrap_or_default(),
        endpoint: api.endpoint(),
        stream: matches!(api, Api::Gemini { stream: true }),
        attempts: 0,
        target: None,
        upstream_model: None,
        ttfb_ms: None,
    };
    let incoming = match read_request(api, &parts, body, path_model).await {
        Ok(i) => i,
        Err(r) => return refuse(ledger, r),
    };
    ledger.requested_model.clone_from(&incoming.requested);
    ledger.stream = incoming.stream;
    let pinned = match request::pinned_target(&parts.headers, parts.uri.query()) {
        Ok(p) => p,
        Err(r) => return refuse(ledger, r),
    };
    let view = proxy.view.snapshot();
    let ask = Ask {
        requested: &incoming.requested,
        pinned,
        unprobed_ok: api == Api::Embeddings,
    };
    let candidates = match select::candidates(
        &view,
        &proxy.breakers,
        &grant,
        &ask,
        &proxy.turn,
        MAX_ATTEMPTS,
    ) {
        Ok(c) => c,
        Err(r) => return refuse(ledger, r),
    };
    let limits = (
        proxy.core.config.proxy.first_byte_timeout,
        proxy.core.config.proxy.idle_timeout,
    );
    let deadline = started + limits.0 * 2;
    let mut last: Option<Response<Body>> = None;
    let mut last_status = 0u16;
    let mut last_class: Option<String> = None;
    for cand in candidates {
        let c = &view.channels[cand.channel];
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let Ok(client) = &c.client else { continue };
        // A trial (half-open) is settled by this request's outcome like any other.
        if let Admission::Open { .. } = proxy.breakers.admit(c.id, &c.name, &cand.model) {
            continue;
        }
        ledger.attempts += 1;
        ledger.target = Some((c.id, c.name.clone()));
        ledger.upstream_model = Some(cand.model.clone());
        let mut url = format!("{}{}", c.base, api.upstream_path(&cand.model));
        if let Some(q) = &incoming.query {
            url.push('?');
            url.push_str(q);
        }
        let body = match (&incoming.model_span, cand.model != incoming.requested) {
            (Some(span), true) => request::with_model(&incoming.body, span, &cand.model),
            _ => incoming.body.clone(),
        };
        let headers = upstream_headers(&proxy, c, api, &parts.headers);
        let wait = limits.0.min(deadline - now);
        let sent = tokio::time::timeout(
            wait,
            client.send(axum::http::Method::POST, &url, headers, Some(body)),
        )
        .await;
        let resp = match sent {
            Err(_) => {
                proxy
                    .breakers
                    .record(c.id, &c.name, &cand.model, Outcome::Failure);
                last_status = 504;
                last_class = Some("timeout".into());
                last = Some(
                    Refusal::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "timeout_error",
                        format!(
                            "channel {} sent no response headers within {} s",
                            c.name,
                            wait.as_secs()
                        ),
                    )
                    .into_response(),
                );
                continue;
            }
            Ok(Err(e)) => {
                proxy
                    .breakers
                    .record(c.id, &c.name, &cand.model, Outcome::Failure);
                let status = if e.class == ErrorClass::Timeout {
                    504
                } else {
                    502
                };
                last_status = status;
                last_class = Some(e.class.as_str().to_string());
                last = Some(
                    Refusal::new(
                        StatusCode::from_u16(status).expect("valid"),
                        "upstream_error",
                        format!(
                            "channel {} could not be reached ({}): {}",
                            c.name,
                            e.class.as_str(),
                            c.settings.scrub(&e.message)
                        ),
                    )
                    .into_response(),
                );
                continue;
            }
            Ok(Ok(r)) => r,
        };
        ledger.ttfb_ms = Some(ledger.elapsed_ms());
        let status = resp.status;
        if status == 429 || status >= 500 {
            proxy
                .breakers
                .record(c.id, &c.name, &cand.model, Outcome::Failure);
            last_status = status;
            last_class = Some(
                if status == 429 {
                    "rate_limit"
                } else {
                    "upstream_5xx"
                }
                .into(),
            );
            last = Some(pass_error(c, &cand.model, resp, deadline).await);
            continue;
        }
        if status >= 400 {
            let class = shared::probe::classify::classify(status, "")
                .as_str()
                .to_string();
            let resp = pass_error(c, &cand.model, resp, deadline).await;
            ledger.close(
                status,
                Outcome::Neutral,
                Some(class),
                Tokens::default(),
                None,
            );
            return resp;
        }
        return pass_answer(c, &cand.model, resp, &incoming, limits, ledger);
    }
    let resp = last.unwrap_or_else(|| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            format!(
                "no working channel for model {}: every candidate's circuit breaker is open",
                incoming.requested
            ),
        )
        .into_response()
    });
    let status = if last_status == 0 { 503 } else { last_status };
    ledger.close(
        status,
        Outcome::Neutral,
        last_class.or(Some("unavailable".into())),
        Tokens::default(),
        None,
    );
    resp
}

/// Records a refusal made before any upstream was asked, and answers it.
fn refuse(ledger: Ledger, r: Refusal) -> Response<Body> {
    ledger.close(
        r.status.as_u16(),
        Outcome::Neutral,
        Some(r.error_class().to_string()),
        Tokens::default(),
        None,
    );
    r.into_response()
}

async fn read_request(
    api: Api,
    parts: &Parts,
    body: Body,
    path_model: Option<String>,
) -> Result<Incoming, Refusal> {
    let body = read_body(body, &parts.headers).await?;
    let (requested, model_span, stream) = match (api, path_model) {
        (Api::Gemini { stream }, Some(model)) => (model, None, stream),
        _ => {
            let f = request::read_fields(&body)?;
            let Some(model) = f.model.filter(|m| !m.is_empty()) else {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "model: required (`channel/model`, or a model id served by a working channel)",
                ));
            };
            (model, f.model_span, f.stream)
        }
    };
    Ok(Incoming {
        api,
        requested,
        body,
        model_span,
        stream,
        query: request::upstream_query(parts.uri.query()),
    })
}

fn upstream_headers(
    proxy: &Proxy,
    c: &super::view::Channel,
    api: Api,
    client: &HeaderMap,
) -> HeaderMap {
    let mut h = proxy
        .core
        .prober
        .upstream_headers(&c.settings, api.protocol());
    for name in PASSED_REQUEST_HEADERS {
        if let Some(v) = client.get(&name) {
            h.insert(name, v.clone());
        }
    }
    for name in PASSED_REQUEST_HEADER_NAMES {
        if let Some(v) = client.get(name) {
            h.insert(HeaderName::from_static(name), v.clone());
        }
    }
    h
}

/// The upstream's response headers minus hop-by-hop ones, plus which channel and
/// model answered.
fn answer_headers(mut h: HeaderMap, c: &super::view::Channel, model: &str) -> HeaderMap {
    for name in HOP_HEADERS {
        h.remove(name);
    }
    h.insert("x-proxy-target-id", HeaderValue::from(c.id));
    if let Ok(v) = HeaderValue::from_str(model) {
        h.insert("x-proxy-upstream-model", v);
    }
    h
}

/// An upstream error, passed on with its status and body (the channel's secrets
/// scrubbed out of it).
async fn pass_error(
    c: &super::view::Channel,
    model: &str,
    resp: UpstreamResponse,
    deadline: Instant,
) -> Response<Body> {
    let mut headers = answer_headers(resp.headers, c, model);
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

/// A 2xx answer, streamed on as it arrives.
fn pass_answer(
    c: &super::view::Channel,
    model: &str,
    resp: UpstreamResponse,
    incoming: &Incoming,
    limits: (Duration, Duration),
    mut ledger: Ledger,
) -> Response<Body> {
    let mut headers = answer_headers(resp.headers, c, model);
    let sse = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if sse {
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        ledger.stream = true;
    }
    let reader = UsageReader::new(
        incoming.api.protocol(),
        ledger.started,
        incoming.body.len(),
        sse,
    );
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
