//! Gemini `generateContent`: candidate objects with `usageMetadata`, streamed as one
//! object per chunk (the caller frames them as SSE or a JSON array).

use serde_json::{Value, json};

use super::{Finish, Meta, StreamEncoder, tokens};
use crate::body::Event;

/// A whole non-stream reply body.
pub(super) fn plain(meta: &Meta, reasoning: &str, text: &str) -> Value {
    let mut parts = Vec::new();
    if !reasoning.is_empty() {
        parts.push(json!({"text": reasoning, "thought": true}));
    }
    parts.push(json!({"text": text}));
    gemini_object(
        meta,
        gemini_candidate(Some(parts), Some(meta.finish)),
        Some((tokens(text.len()), tokens(reasoning.len()))),
    )
}

fn gemini_finish(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "STOP",
        Finish::Length => "MAX_TOKENS",
        Finish::ContentFilter => "SAFETY",
    }
}

fn gemini_candidate(parts: Option<Vec<Value>>, finish: Option<Finish>) -> Value {
    let mut candidate = json!({"index": 0});
    // A blocked candidate comes without content.
    if let Some(parts) = parts
        && finish != Some(Finish::ContentFilter)
    {
        candidate["content"] = json!({"parts": parts, "role": "model"});
    }
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(gemini_finish(finish));
    }
    candidate
}

/// `usage` is `(candidates_tokens, thoughts_tokens)`.
fn gemini_object(meta: &Meta, candidate: Value, usage: Option<(u64, u64)>) -> Value {
    let mut object = json!({
        "candidates": [candidate],
        "modelVersion": meta.model,
        "responseId": format!("fake{}", meta.id),
    });
    if let Some((candidates, thoughts)) = usage {
        let mut usage = json!({
            "promptTokenCount": meta.input_tokens,
            "candidatesTokenCount": candidates,
            "totalTokenCount": meta.input_tokens + candidates + thoughts,
        });
        if thoughts > 0 {
            usage["thoughtsTokenCount"] = json!(thoughts);
        }
        object["usageMetadata"] = usage;
    }
    object
}

pub(super) struct Gemini {
    meta: Meta,
    reasoning_chars: usize,
    text_chars: usize,
}

impl Gemini {
    pub(super) fn new(meta: Meta) -> Gemini {
        Gemini {
            meta,
            reasoning_chars: 0,
            text_chars: 0,
        }
    }

    fn chunk(&self, part: Value) -> Event {
        Event::data(
            gemini_object(&self.meta, gemini_candidate(Some(vec![part]), None), None).to_string(),
        )
    }
}

impl StreamEncoder for Gemini {
    fn open(&mut self) -> Vec<Event> {
        Vec::new()
    }

    fn reasoning(&mut self, piece: &str) -> Vec<Event> {
        self.reasoning_chars += piece.len();
        vec![self.chunk(json!({"text": piece, "thought": true}))]
    }

    fn text(&mut self, piece: &str) -> Vec<Event> {
        self.text_chars += piece.len();
        vec![self.chunk(json!({"text": piece}))]
    }

    fn finish(&mut self) -> Vec<Event> {
        let candidate = gemini_candidate(Some(vec![json!({"text": ""})]), Some(self.meta.finish));
        let usage = (tokens(self.text_chars), tokens(self.reasoning_chars));
        vec![Event::data(
            gemini_object(&self.meta, candidate, Some(usage)).to_string(),
        )]
    }

    fn error(&mut self) -> Vec<Event> {
        vec![Event::data(
            json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                             "status": "UNAVAILABLE"}})
            .to_string(),
        )]
    }
}
