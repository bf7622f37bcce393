//! What the fake reads from a generation request: the prompt (text of the last user
//! message) and, for the OpenAI and Anthropic bodies, the stream switches.

use serde_json::Value;

use crate::wire::Protocol;

/// The text of a message `content`: a string, or the text of its text parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                _ => p.get("text").and_then(Value::as_str),
            })
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The last message with role `user` (or without a role), else the last one.
fn last_user(messages: &[Value]) -> Option<&Value> {
    messages
        .iter()
        .rev()
        .find(|m| {
            m.get("role")
                .and_then(Value::as_str)
                .is_none_or(|r| r == "user")
        })
        .or_else(|| messages.last())
}

pub(crate) fn prompt(protocol: Protocol, body: &Value) -> String {
    match protocol {
        Protocol::Chat | Protocol::Anthropic => body
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| last_user(m))
            .and_then(|m| m.get("content"))
            .map(content_text)
            .unwrap_or_default(),
        Protocol::Responses => match body.get("input") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => last_user(items)
                .and_then(|m| m.get("content"))
                .map(content_text)
                .unwrap_or_default(),
            _ => String::new(),
        },
        Protocol::Gemini => body
            .get("contents")
            .and_then(Value::as_array)
            .and_then(|c| last_user(c))
            .and_then(|c| c.get("parts"))
            .map(content_text)
            .unwrap_or_default(),
    }
}

pub(crate) fn wants_stream(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

pub(crate) fn include_usage(body: &Value) -> bool {
    body.pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_is_the_last_user_text_in_every_shape() {
        let chat = json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]},
        ]});
        assert_eq!(prompt(Protocol::Chat, &chat), "hi there");
        let responses =
            json!({"input": [{"role": "user", "content": [{"type": "input_text", "text": "q"}]}]});
        assert_eq!(prompt(Protocol::Responses, &responses), "q");
        assert_eq!(
            prompt(Protocol::Responses, &json!({"input": "plain"})),
            "plain"
        );
        let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "g"}]}]});
        assert_eq!(prompt(Protocol::Gemini, &gemini), "g");
        let gemini_no_role = json!({"contents": [{"parts": [{"text": "a"}, {"text": "b"}]}]});
        assert_eq!(prompt(Protocol::Gemini, &gemini_no_role), "ab");
    }
}
