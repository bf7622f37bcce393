//! One probe of one model: `Prober::probe` with its retry-once rule, a single attempt
//! (`probe_once`) and the request/reply exchange behind it, recorded as a
//! `ProbeResult`.

// The error side carries the partial reply for the record; it is built at most twice
// per probe, so its size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

use std::time::{Duration, Instant};

use serde_json::Value;

use super::challenge::Challenge;
use super::classify::{ErrorClass, classify};
use super::discovery::normalise_base_url;
use super::judge::{fill_reply, judge};
use super::protocol::{self, Ask, Reply, snippet};
use super::result::{Failure, ProbeResult};
use super::route::{Protocol, route_for};
use super::settings::{
    BODY_CAP, CheckMode, ERROR_BODY_CAP, MAX_RETRY_WAIT, ProbeSettings, default_max_tokens,
};
use super::status::ModelStatus;
use super::stream::{Timing, read_stream};
use super::transport::{Outgoing, Prober, read_capped, retry_after};

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

impl Prober {
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
        let route = route_for(model, &s.route_overrides, self.rules());
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
        let path = call
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
                reply.text = s.scrub(&reply.text);
                judge(reply, challenge.as_ref())
            });
        let total = start.elapsed();

        let mut result = ProbeResult {
            model: model.to_string(),
            protocol: route.protocol,
            route_rule: route.rule,
            path,
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
                fill_reply(&mut result, &reply, &timing, total, s);
            }
            Err((failure, reply)) => {
                result.transport_success = failure.answered;
                if let Some(reply) = &reply {
                    fill_reply(&mut result, reply, &timing, total, s);
                }
                if result.status_code.is_none() {
                    result.status_code = failure.status;
                }
                result.error_class = Some(failure.class);
                result.error = Some(failure.message);
                retry = Some((failure.class, failure.retry_after));
            }
        }
        result.content = s.scrub(&result.content);
        result.error = result.error.map(|e| s.scrub(&e));
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
        let send = self.send(
            s,
            Outgoing {
                url: &url,
                headers: self.auth_headers(s, protocol),
                json: Some(&call.body),
            },
        );
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
            Ok(Err(f)) => return Err((f, None)),
            Ok(Ok(r)) => r,
        };
        timing.headers = Some(start.elapsed());
        let status = resp.status;
        timing.status = Some(status);
        let content_type = resp
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_lowercase();

        if !(200..300).contains(&status) {
            let retry = retry_after(&resp.headers);
            let body = read_capped(resp, deadline, ERROR_BODY_CAP)
                .await
                .map_err(|f| (f, None))?;
            let text = body
                .map(|b| s.scrub(&String::from_utf8_lossy(&b)))
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
            return read_stream(resp, protocol, start, deadline, timing, s).await;
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
        let text = s.scrub(&String::from_utf8_lossy(&body));
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
