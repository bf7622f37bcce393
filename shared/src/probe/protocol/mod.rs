//! The four wire protocols: how to ask a model one question, and how to read its
//! answer, plain or streamed. Each protocol lives in its own module; this one holds
//! what they share.

pub mod anthropic;
pub mod chat;
pub mod gemini;
pub mod responses;

use serde_json::Value;

use super::route::Protocol;
use super::sse::SseEvent;

/// How a reply ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Stop,
    /// The token budget ran out.
    Length,
    ContentFilter,
    Other(String),
}

impl Finish {
    pub fn from_reason(reason: &str) -> Finish {
        match reason.to_ascii_lowercase().as_str() {
            "stop" | "end_turn" | "stop_sequence" | "completed" | "finish_reason_stop" => {
                Finish::Stop
            }
            "length" | "max_tokens" | "max_output_tokens" | "incomplete" => Finish::Length,
            "content_filter" | "safety" | "refusal" | "prohibited_content" | "blocklist"
            | "recitation" => Finish::ContentFilter,
            other => Finish::Other(other.to_string()),
        }
    }
}

/// One piece of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Text(String),
    Reasoning(String),
    Model(String),
    /// Output tokens reported so far (cumulative where the protocol sends it so).
    Usage(u64),
    Finish(Finish),
    /// The protocol's terminator.
    Done,
    /// An error event inside the stream.
    Error(String),
}

/// A reply read whole (plain) or accumulated from deltas (stream).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub text: String,
    pub reasoning: String,
    pub model: Option<String>,
    pub usage_tokens: Option<u64>,
    pub finish: Option<Finish>,
}

impl Reply {
    pub fn apply(&mut self, d: &Delta) {
        match d {
            Delta::Text(t) => self.text.push_str(t),
            Delta::Reasoning(t) => self.reasoning.push_str(t),
            Delta::Model(m) => {
                if self.model.is_none() && !m.is_empty() {
                    self.model = Some(m.clone());
                }
            }
            Delta::Usage(n) => self.usage_tokens = Some(*n),
            Delta::Finish(f) => self.finish = Some(f.clone()),
            Delta::Done | Delta::Error(_) => {}
        }
    }
}

/// What to send: a path below the base URL (with query) and a JSON body.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub body: Value,
}

/// The parameters of one question.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub model: &'a str,
    pub prompt: &'a str,
    pub stream: bool,
    pub max_tokens: u32,
}

pub fn build(protocol: Protocol, ask: &Ask<'_>) -> Call {
    match protocol {
        Protocol::Openai => chat::build(ask),
        Protocol::Responses => responses::build(ask),
        Protocol::Anthropic => anthropic::build(ask),
        Protocol::Gemini => gemini::build(ask),
    }
}

/// Reads a whole (non-streamed) reply.
pub fn parse_body(protocol: Protocol, body: &Value) -> Result<Reply, String> {
    match protocol {
        Protocol::Openai => chat::parse_body(body),
        Protocol::Responses => responses::parse_body(body),
        Protocol::Anthropic => anthropic::parse_body(body),
        Protocol::Gemini => gemini::parse_body(body),
    }
}

/// Reads one stream event; `Err` when its data is not what the protocol sends.
pub fn parse_event(protocol: Protocol, event: &SseEvent) -> Result<Vec<Delta>, String> {
    if event.data.trim() == "[DONE]" {
        // Chat Completions' terminator. Relays sometimes append it to other protocols'
        // streams too; there it proves nothing, as each has its own terminator.
        return Ok(if protocol == Protocol::Openai {
            vec![Delta::Done]
        } else {
            vec![]
        });
    }
    let value: Value = serde_json::from_str(&event.data)
        .map_err(|_| format!("stream event is not JSON: {}", snippet(&event.data)))?;
    if let Some(msg) = hidden_error(&value) {
        return Ok(vec![Delta::Error(msg)]);
    }
    Ok(match protocol {
        Protocol::Openai => chat::parse_event(&value),
        Protocol::Responses => responses::parse_event(event.event.as_deref(), &value),
        Protocol::Anthropic => anthropic::parse_event(event.event.as_deref(), &value),
        Protocol::Gemini => gemini::parse_event(&value),
    })
}

/// Whether the protocol ends its stream by closing the connection after a finish
/// reason rather than with a terminator event.
pub fn ends_on_close(protocol: Protocol) -> bool {
    protocol == Protocol::Gemini
}

/// An error hidden in a successful response: `{"error": …}`, `{"success": false, …}`,
/// a non-zero `code` with a `message` (common in relays), or Anthropic's
/// `{"type": "error"}`. Returns a readable message.
pub fn hidden_error(v: &Value) -> Option<String> {
    let obj = v.as_object()?;
    if let Some(err) = obj.get("error").filter(|e| !e.is_null()) {
        return Some(error_message(err));
    }
    if obj.get("type").and_then(Value::as_str) == Some("error") {
        return Some(
            obj.get("error")
                .map(error_message)
                .unwrap_or_else(|| snippet(&v.to_string())),
        );
    }
    if obj.get("success") == Some(&Value::Bool(false)) {
        return Some(message_of(v).unwrap_or_else(|| snippet(&v.to_string())));
    }
    let code_nonzero = match obj.get("code") {
        Some(Value::Number(n)) => n.as_i64() != Some(0) && n.as_i64() != Some(200),
        Some(Value::String(s)) => !matches!(s.as_str(), "0" | "200" | "success" | "ok"),
        _ => false,
    };
    let normal = [
        "choices",
        "content",
        "candidates",
        "output",
        "data",
        "object",
        "id",
    ]
    .iter()
    .any(|k| obj.contains_key(*k));
    if code_nonzero && !normal && (obj.contains_key("message") || obj.contains_key("msg")) {
        return Some(message_of(v).unwrap_or_else(|| snippet(&v.to_string())));
    }
    None
}

fn message_of(v: &Value) -> Option<String> {
    ["message", "msg", "detail"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(str::to_string)
}

/// A readable message from an error object or string, with its type or code.
pub fn error_message(err: &Value) -> String {
    match err {
        Value::String(s) => s.clone(),
        Value::Object(_) => {
            let msg = message_of(err)
                .or_else(|| err.get("error").map(error_message))
                .unwrap_or_else(|| snippet(&err.to_string()));
            let kind = ["type", "code", "status"]
                .iter()
                .find_map(|k| match err.get(*k) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                });
            match kind {
                Some(k) if !msg.contains(&k) => format!("{msg} ({k})"),
                _ => msg,
            }
        }
        other => snippet(&other.to_string()),
    }
}

/// The first 300 characters of a text, for messages.
pub fn snippet(text: &str) -> String {
    let t = text.trim();
    let mut out: String = t.chars().take(300).collect();
    if t.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// Text of a JSON value that may be a string or a list of `{text}` parts.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str).or_else(|| p.as_str()))
            .collect(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn done_ends_only_chat_completions_streams() {
        let done = SseEvent {
            event: None,
            data: "[DONE]".into(),
        };
        assert_eq!(
            parse_event(Protocol::Openai, &done).unwrap(),
            vec![Delta::Done]
        );
        for p in [Protocol::Responses, Protocol::Anthropic, Protocol::Gemini] {
            assert_eq!(parse_event(p, &done).unwrap(), vec![], "{p:?}");
        }
    }

    #[test]
    fn errors_hidden_in_success_are_found() {
        assert_eq!(
            hidden_error(&json!({"error": {"message": "boom", "type": "server_error"}})).unwrap(),
            "boom (server_error)"
        );
        assert_eq!(
            hidden_error(&json!({"success": false, "message": "余额不足"})).unwrap(),
            "余额不足"
        );
        assert_eq!(
            hidden_error(&json!({"code": 500, "message": "no available channel"})).unwrap(),
            "no available channel"
        );
        assert!(hidden_error(&json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})).is_some());
        assert_eq!(
            hidden_error(&json!({"id": "x", "choices": [], "code": 0})),
            None
        );
        assert_eq!(hidden_error(&json!({"error": null, "choices": []})), None);
    }
}
