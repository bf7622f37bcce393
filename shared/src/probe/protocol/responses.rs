//! OpenAI Responses: `POST /v1/responses`.

use serde_json::{Value, json};

use super::{Ask, Call, Delta, Finish, Reply, error_message};

pub fn build(ask: &Ask<'_>) -> Call {
    Call {
        path: "/v1/responses".into(),
        body: json!({
            "model": ask.model,
            "input": ask.prompt,
            "max_output_tokens": ask.max_tokens,
            "stream": ask.stream,
        }),
    }
}

fn finish_of(response: &Value) -> Option<Finish> {
    match response.get("status").and_then(Value::as_str)? {
        "completed" => Some(Finish::Stop),
        "incomplete" => {
            let reason = response
                .pointer("/incomplete_details/reason")
                .and_then(Value::as_str)
                .unwrap_or("length");
            Some(match Finish::from_reason(reason) {
                Finish::Other(_) => Finish::Length,
                f => f,
            })
        }
        other => Some(Finish::Other(other.to_string())),
    }
}

pub fn parse_body(v: &Value) -> Result<Reply, String> {
    let output = v
        .get("output")
        .and_then(Value::as_array)
        .ok_or("reply has no output[]")?;
    let mut reply = Reply {
        model: v.get("model").and_then(Value::as_str).map(str::to_string),
        usage_tokens: v.pointer("/usage/output_tokens").and_then(Value::as_u64),
        finish: finish_of(v),
        ..Reply::default()
    };
    for item in output {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = part.get("text").and_then(Value::as_str) {
                        reply.text.push_str(t);
                    }
                    if part.get("type").and_then(Value::as_str) == Some("refusal") {
                        reply.finish = Some(Finish::ContentFilter);
                    }
                }
            }
            Some("reasoning") => {
                for part in item
                    .get("summary")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = part.get("text").and_then(Value::as_str) {
                        reply.reasoning.push_str(t);
                    }
                }
                // Reasoning may be hidden; count it as present all the same.
                if reply.reasoning.is_empty() {
                    reply.reasoning.push(' ');
                }
            }
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
    let delta = || {
        v.get("delta")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match kind {
        "response.created" | "response.in_progress" => v
            .pointer("/response/model")
            .and_then(Value::as_str)
            .map(|m| vec![Delta::Model(m.to_string())])
            .unwrap_or_default(),
        "response.output_text.delta" | "response.refusal.delta" => {
            let d = delta();
            if d.is_empty() {
                vec![]
            } else {
                vec![Delta::Text(d)]
            }
        }
        "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
            let d = delta();
            if d.is_empty() {
                vec![]
            } else {
                vec![Delta::Reasoning(d)]
            }
        }
        "response.completed" | "response.incomplete" => {
            let response = v.get("response").cloned().unwrap_or(Value::Null);
            let mut out = Vec::new();
            if let Some(m) = response.get("model").and_then(Value::as_str) {
                out.push(Delta::Model(m.to_string()));
            }
            if let Some(n) = response
                .pointer("/usage/output_tokens")
                .and_then(Value::as_u64)
            {
                out.push(Delta::Usage(n));
            }
            out.push(Delta::Finish(finish_of(&response).unwrap_or(Finish::Stop)));
            out.push(Delta::Done);
            out
        }
        "response.failed" => {
            let msg = v
                .pointer("/response/error")
                .map(error_message)
                .unwrap_or_else(|| "response.failed".into());
            vec![Delta::Error(msg)]
        }
        "error" => vec![Delta::Error(error_message(v))],
        _ => vec![],
    }
}
