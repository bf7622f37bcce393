//! Gemini: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`. The stream has no terminator event: it ends when
//! the connection closes after a candidate with a `finishReason`.

use serde_json::{Value, json};

use super::{Ask, Call, Delta, Finish, Reply};

pub fn build(ask: &Ask<'_>) -> Call {
    let model = ask.model.strip_prefix("models/").unwrap_or(ask.model);
    let method = if ask.stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    Call {
        path: format!("/v1beta/models/{model}:{method}"),
        body: json!({
            "contents": [{"role": "user", "parts": [{"text": ask.prompt}]}],
            "generationConfig": {"maxOutputTokens": ask.max_tokens},
        }),
    }
}

fn deltas(v: &Value) -> Vec<Delta> {
    let mut out = Vec::new();
    if let Some(m) = v.get("modelVersion").and_then(Value::as_str) {
        out.push(Delta::Model(m.to_string()));
    }
    if let Some(c) = v.get("candidates").and_then(|c| c.get(0)) {
        for part in c
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(t) = part
                .get("text")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            else {
                continue;
            };
            if part.get("thought") == Some(&Value::Bool(true)) {
                out.push(Delta::Reasoning(t.to_string()));
            } else {
                out.push(Delta::Text(t.to_string()));
            }
        }
        if let Some(f) = c.get("finishReason").and_then(Value::as_str) {
            out.push(Delta::Finish(Finish::from_reason(f)));
        }
    }
    if let Some(n) = v
        .pointer("/usageMetadata/candidatesTokenCount")
        .and_then(Value::as_u64)
    {
        out.push(Delta::Usage(n));
    }
    if v.pointer("/promptFeedback/blockReason").is_some() {
        out.push(Delta::Finish(Finish::ContentFilter));
    }
    out
}

pub fn parse_body(v: &Value) -> Result<Reply, String> {
    if v.get("candidates").is_none() && v.get("promptFeedback").is_none() {
        return Err("reply has no candidates[]".into());
    }
    let mut reply = Reply::default();
    for d in deltas(v) {
        reply.apply(&d);
    }
    Ok(reply)
}

pub fn parse_event(v: &Value) -> Vec<Delta> {
    deltas(v)
}
