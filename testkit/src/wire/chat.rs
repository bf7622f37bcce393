//! OpenAI Chat Completions: `chat.completion` bodies and `chat.completion.chunk`
//! stream events ended by `data: [DONE]`.

use serde_json::{Value, json};

use super::{Finish, Meta, StreamEncoder, tokens};
use crate::body::Event;

/// A whole non-stream reply body.
pub(super) fn plain(meta: &Meta, reasoning: &str, text: &str, out_tokens: u64) -> Value {
    let mut message = json!({"role": "assistant", "content": text});
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    json!({
        "id": format!("chatcmpl-fake{}", meta.id),
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": chat_finish(meta.finish),
        }],
        "usage": chat_usage(meta, out_tokens, tokens(reasoning.len())),
    })
}

fn chat_finish(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ContentFilter => "content_filter",
    }
}

fn chat_usage(meta: &Meta, out_tokens: u64, reasoning_tokens: u64) -> Value {
    json!({
        "prompt_tokens": meta.input_tokens,
        "completion_tokens": out_tokens,
        "total_tokens": meta.input_tokens + out_tokens,
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    })
}

pub(super) struct Chat {
    meta: Meta,
    reasoning_chars: usize,
    text_chars: usize,
}

impl Chat {
    pub(super) fn new(meta: Meta) -> Chat {
        Chat {
            meta,
            reasoning_chars: 0,
            text_chars: 0,
        }
    }

    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": format!("chatcmpl-fake{}", self.meta.id),
            "object": "chat.completion.chunk",
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": choices,
        })
    }

    fn delta(&self, delta: Value, finish: Option<&str>) -> Event {
        let choices =
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        Event::data(self.chunk(choices).to_string())
    }
}

impl StreamEncoder for Chat {
    fn open(&mut self) -> Vec<Event> {
        vec![self.delta(json!({"role": "assistant", "content": ""}), None)]
    }

    fn reasoning(&mut self, piece: &str) -> Vec<Event> {
        self.reasoning_chars += piece.len();
        vec![self.delta(json!({"reasoning_content": piece}), None)]
    }

    fn text(&mut self, piece: &str) -> Vec<Event> {
        self.text_chars += piece.len();
        vec![self.delta(json!({"content": piece}), None)]
    }

    fn finish(&mut self) -> Vec<Event> {
        let mut events = vec![self.delta(json!({}), Some(chat_finish(self.meta.finish)))];
        if self.meta.include_usage {
            let reasoning = tokens(self.reasoning_chars);
            let out = reasoning + tokens(self.text_chars);
            let mut usage = self.chunk(json!([]));
            usage["usage"] = chat_usage(&self.meta, out, reasoning);
            events.push(Event::data(usage.to_string()));
        }
        events.push(Event::data("[DONE]".into()));
        events
    }

    fn error(&mut self) -> Vec<Event> {
        vec![Event::data(
            json!({"error": {
                "message": "upstream connection reset mid-stream",
                "type": "server_error",
                "code": "upstream_error",
            }})
            .to_string(),
        )]
    }
}
