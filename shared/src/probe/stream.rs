//! Reading a streamed (SSE) reply to its terminator, the cap or the deadline, noting
//! when the first token came (`Timing`) and turning error events into failures.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

use super::classify::{ErrorClass, classify};
use super::clients::Response;
use super::protocol::{self, Delta, Reply};
use super::result::Failure;
use super::route::Protocol;
use super::settings::{ProbeSettings, STREAM_CAP};
use super::sse::SseParser;

/// When the parts of one attempt's reply arrived, measured from the request's start.
#[derive(Default)]
pub(super) struct Timing {
    pub(super) status: Option<u16>,
    pub(super) headers: Option<Duration>,
    pub(super) first_token: Option<Duration>,
}

/// Reads a streamed reply until its terminator, the cap, the deadline or an error
/// event; a failure carries what had arrived, for the record.
pub(super) async fn read_stream(
    resp: Response,
    protocol: Protocol,
    start: Instant,
    deadline: tokio::time::Instant,
    timing: &mut Timing,
    settings: &ProbeSettings,
) -> Result<Reply, (Failure, Option<Reply>)> {
    let status = resp.status;
    let mut body = resp.body;
    let mut parser = SseParser::new();
    let mut reply = Reply::default();
    let mut read = 0usize;
    let mut done = false;
    let answered = |class, msg: String| Failure::new(class, msg).answered(status);
    loop {
        let next: Option<Result<Bytes, Failure>> =
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
            Some(Err(mut f)) => {
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
                data: settings.scrub(&event.data),
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
