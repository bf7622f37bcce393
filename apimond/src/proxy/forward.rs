//! One proxied generation request from arrival to the upstream's answer: the client's
//! key checked, the body read (capped), routed, then sent to the best candidate with
//! the channel's key; on a connect error, a timeout before headers, a 5xx or a 429 the
//! next candidate is tried (at most [`MAX_ATTEMPTS`], within twice the first-byte
//! limit). Once an answer's headers are passed on, it is the answer: no retry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Response, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use shared::probe::{ErrorClass, UpstreamResponse};

use super::Proxy;
use super::breaker::{Admission, Outcome};
use super::keys::KeyGrant;
use super::refusal::Refusal;
use super::relay::{Ledger, pass_answer, pass_error};
use super::request::{self, Api, BODY_LIMIT};
use super::select::{self, Ask};
use super::usage::Tokens;
use crate::http::extract::{client_behind, request_client};

/// Channels tried per request at most.
pub const MAX_ATTEMPTS: usize = 3;

/// Request headers the upstream gets from the client; everything else (its key, hop
/// headers, cookies) stays here. The channel's own headers are set from its settings.
const PASSED_REQUEST_HEADERS: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::ACCEPT,
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
    HeaderName::from_static("openai-beta"),
];

/// The key check: the presented key authenticated (shared failure limits per client).
/// `peer` is the connection's address when the request did not come through the
/// router (which puts it in the extensions).
pub fn authenticate(
    proxy: &Proxy,
    parts: &Parts,
    peer: Option<SocketAddr>,
) -> Result<KeyGrant, Refusal> {
    let key = request::presented_key(&parts.headers, parts.uri.query()).unwrap_or_default();
    let client = match peer {
        Some(peer) => client_behind(peer.ip(), &parts.headers, &proxy.core),
        None => request_client(parts, &proxy.core),
    };
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
/// path, `peer` as for [`authenticate`].
pub async fn serve(
    proxy: Arc<Proxy>,
    api: Api,
    req: Request,
    path_model: Option<String>,
    peer: Option<SocketAddr>,
) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let grant = match authenticate(&proxy, &parts, peer) {
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
    let mut last: Option<Failed> = None;
    for cand in candidates {
        let c = &view.channels[cand.channel];
        if Instant::now() >= deadline {
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
        let to = Upstream {
            channel: c,
            client,
            model: &cand.model,
        };
        match to.send(&incoming, &parts.headers, limits.0, deadline).await {
            Err(failed) => {
                proxy
                    .breakers
                    .record(c.id, &c.name, &cand.model, Outcome::Failure);
                last = Some(failed);
            }
            Ok(resp) if resp.status >= 400 => {
                // A client error: the answer, not a reason to try elsewhere.
                ledger.ttfb_ms = Some(ledger.elapsed_ms());
                let status = resp.status;
                let class = shared::probe::classify::classify(status, "").as_str();
                let resp = Box::pin(pass_error(c, &cand.model, resp, deadline)).await;
                ledger.close(
                    status,
                    Outcome::Neutral,
                    Some(class.to_string()),
                    Tokens::default(),
                    None,
                );
                return resp;
            }
            Ok(resp) => {
                ledger.ttfb_ms = Some(ledger.elapsed_ms());
                let usage_of = (api.protocol(), incoming.body.len());
                return pass_answer(c, &cand.model, resp, usage_of, limits, ledger);
            }
        }
    }
    let Some(failed) = last else {
        return refuse(
            ledger,
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                format!(
                    "no working channel for model {}: every candidate's circuit breaker is open",
                    incoming.requested
                ),
            ),
        );
    };
    ledger.close(
        failed.status,
        Outcome::Neutral,
        Some(failed.class),
        Tokens::default(),
        None,
    );
    failed.response
}

/// An attempt that may go to the next candidate: what the client gets if it was the
/// last one.
struct Failed {
    status: u16,
    class: String,
    response: Response<Body>,
}

/// One candidate channel and the model id it is sent.
struct Upstream<'a> {
    channel: &'a super::view::Channel,
    client: &'a shared::probe::UpstreamClient,
    model: &'a str,
}

impl Upstream<'_> {
    /// Sends the request; a connect error, no headers in time, a 5xx or a 429 is
    /// `Err` (the next candidate may be tried), any other answer is `Ok`.
    async fn send(
        &self,
        incoming: &Incoming,
        client_headers: &HeaderMap,
        first_byte: Duration,
        deadline: Instant,
    ) -> Result<UpstreamResponse, Failed> {
        let c = self.channel;
        let refused = |status: StatusCode, class: &str, message: String| Failed {
            status: status.as_u16(),
            class: class.to_string(),
            response: Refusal::new(status, "upstream_error", message).into_response(),
        };
        let Some(url) = c.upstream_url(incoming.api, self.model, incoming.query.as_deref()) else {
            return Err(refused(
                StatusCode::BAD_GATEWAY,
                "network",
                format!("channel {} has a base URL that cannot be parsed", c.name),
            ));
        };
        let body = match (&incoming.model_span, self.model != incoming.requested) {
            (Some(span), true) => request::with_model(&incoming.body, span, self.model),
            _ => incoming.body.clone(),
        };
        let headers = upstream_headers(c, incoming.api, client_headers);
        let wait = first_byte.min(deadline.saturating_duration_since(Instant::now()));
        // Boxed: the client's future is kilobytes (it can be any of the profiles'
        // clients), and this one is moved with the request's future at every step.
        let sent = tokio::time::timeout(
            wait,
            Box::pin(
                self.client
                    .send(axum::http::Method::POST, url, headers, Some(body)),
            ),
        )
        .await;
        match sent {
            Err(_) => Err(refused(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "channel {} sent no response headers within {} s",
                    c.name,
                    wait.as_secs()
                ),
            )),
            Ok(Err(e)) => Err(refused(
                if e.class == ErrorClass::Timeout {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                },
                e.class.as_str(),
                format!(
                    "channel {} could not be reached ({}): {}",
                    c.name,
                    e.class.as_str(),
                    c.settings.scrub(&e.message)
                ),
            )),
            Ok(Ok(resp)) if resp.status == 429 || resp.status >= 500 => {
                let status = resp.status;
                Err(Failed {
                    status,
                    class: if status == 429 {
                        "rate_limit"
                    } else {
                        "upstream_5xx"
                    }
                    .into(),
                    response: Box::pin(pass_error(c, self.model, resp, deadline)).await,
                })
            }
            Ok(Ok(resp)) => Ok(resp),
        }
    }
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

fn upstream_headers(c: &super::view::Channel, api: Api, client: &HeaderMap) -> HeaderMap {
    let mut h = c.upstream_headers(api.protocol()).clone();
    for name in PASSED_REQUEST_HEADERS {
        if let Some(v) = client.get(&name) {
            h.insert(name, v.clone());
        }
    }
    h
}
