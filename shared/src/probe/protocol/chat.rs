//! OpenAI Chat Completions: `POST /v1/chat/completions`.

use serde_json::{Value, json};

use super::{Ask, Call, Delta, Finish, Reply, text_of};

/// Reasoning families take `max_completion_tokens` instead of `max_tokens`.
fn is_reasoning_family(model: &str) -> bool {
    let m = model.to_lowercase();
    ["o1", "o3", "o4", "gpt-5"].iter().any(|p| m.starts_with(p))
}

pub fn build(ask: &Ask<'_>) -> Call {
    let mut body = json!({
        "model": ask.model,
        "messages": [{"role": "user", "content": ask.prompt}],
        "stream": ask.stream,
    });
    let key = if is_reasoning_family(ask.model) {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    body[key] = json!(ask.max_tokens);
    if ask.stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    Call {
        path: "/v1/chat/completions".into(),
        body,
    }
}

pub fn parse_body(v: &Value) -> Result<Reply, String> {
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or("reply has no choices[0]")?;
    let message = choice
        .get("message")
        .ok_or("reply has no choices[0].message")?;
    let text = message.get("content").map(text_of).unwrap_or_default();
    let reasoning = ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| message.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    let refusal = message
        .get("refusal")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty());
    let mut finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(Finish::from_reason);
    if refusal.is_some() && text.is_empty() {
        finish = Some(Finish::ContentFilter);
    }
    Ok(Reply {
        text,
        reasoning,
        model: v.get("model").and_then(Value::as_str).map(str::to_string),
        usage_tokens: v
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64),
        finish,
    })
}

pub fn parse_event(v: &Value) -> Vec<Delta> {
    let mut out = Vec::new();
    if let Some(m) = v.get("model").and_then(Value::as_str) {
        out.push(Delta::Model(m.to_string()));
    }
    if let Some(choice) = v.get("choices").and_then(|c| c.get(0)) {
        if let Some(delta) = choice.get("delta") {
            for k in ["reasoning_content", "reasoning"] {
                if let Some(r) = delta
                    .get(k)
                    .and_then(Value::as_str)
                    .filter(|r| !r.is_empty())
                {
                    out.push(Delta::Reasoning(r.to_string()));
                }
            }
            let text = delta.get("content").map(text_of).unwrap_or_default();
            if !text.is_empty() {
                out.push(Delta::Text(text));
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            out.push(Delta::Finish(Finish::from_reason(f)));
        }
    }
    if let Some(n) = v
        .pointer("/usage/completion_tokens")
        .and_then(Value::as_u64)
    {
        out.push(Delta::Usage(n));
    }
    out
}
