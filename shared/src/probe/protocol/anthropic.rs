//! Anthropic Messages: `POST /v1/messages`.

use serde_json::{Value, json};

use super::{Ask, Call, Delta, Finish, Reply, error_message};

pub fn build(ask: &Ask<'_>) -> Call {
    Call {
        path: "/v1/messages".into(),
        body: json!({
            "model": ask.model,
            "max_tokens": ask.max_tokens,
            "messages": [{"role": "user", "content": ask.prompt}],
            "stream": ask.stream,
        }),
    }
}

pub fn parse_body(v: &Value) -> Result<Reply, String> {
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or("reply has no content[]")?;
    let mut reply = Reply {
        model: v.get("model").and_then(Value::as_str).map(str::to_string),
        usage_tokens: v.pointer("/usage/output_tokens").and_then(Value::as_u64),
        finish: v
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(Finish::from_reason),
        ..Reply::default()
    };
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => reply
                .text
                .push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => reply
                .reasoning
                .push_str(b.get("thinking").and_then(Value::as_str).unwrap_or(" ")),
            Some("redacted_thinking") => reply.reasoning.push(' '),
            _ => {}
        }
    }
    Ok(reply)
}

pub fn parse_event(event: Option<&str>, v: &Value) -> Vec<Delta> {
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .or(event)
        .unwrap_or("");
    match kind {
        "message_start" => {
            let mut out = Vec::new();
            if let Some(m) = v.pointer("/message/model").and_then(Value::as_str) {
                out.push(Delta::Model(m.to_string()));
            }
            out
        }
        "content_block_delta" => {
            let d = v.get("delta").cloned().unwrap_or(Value::Null);
            match d.get("type").and_then(Value::as_str) {
                Some("text_delta") => d
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(|t| vec![Delta::Text(t.to_string())])
                    .unwrap_or_default(),
                Some("thinking_delta") => d
                    .get("thinking")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(|t| vec![Delta::Reasoning(t.to_string())])
                    .unwrap_or_default(),
                _ => vec![],
            }
        }
        "message_delta" => {
            let mut out = Vec::new();
            if let Some(n) = v.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                out.push(Delta::Usage(n));
            }
            if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                out.push(Delta::Finish(Finish::from_reason(r)));
            }
            out
        }
        "message_stop" => vec![Delta::Done],
        "error" => vec![Delta::Error(error_message(v.get("error").unwrap_or(v)))],
        // ping, content_block_start/stop and unknown events carry nothing we need.
        _ => vec![],
    }
}
