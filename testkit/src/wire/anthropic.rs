//! Anthropic Messages: `message` bodies and the content-block stream events
//! (`message_start` ... `message_stop`).

use serde_json::{Value, json};

use super::{Finish, Meta, StreamEncoder, json_event, tokens};
use crate::body::Event;

/// A whole non-stream reply body.
pub(super) fn plain(meta: &Meta, reasoning: &str, text: &str, out_tokens: u64) -> Value {
    let mut content = Vec::new();
    if !reasoning.is_empty() {
        content.push(
            json!({"type": "thinking", "thinking": reasoning, "signature": "fake-signature"}),
        );
    }
    if meta.finish == Finish::Stop {
        content.push(json!({"type": "text", "text": text}));
    }
    json!({
        "id": format!("msg_fake{}", meta.id),
        "type": "message",
        "role": "assistant",
        "model": meta.model,
        "content": content,
        "stop_reason": anthropic_stop(meta.finish),
        "stop_sequence": null,
        "usage": {"input_tokens": meta.input_tokens, "output_tokens": out_tokens},
    })
}

fn anthropic_stop(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ContentFilter => "refusal",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Thinking,
    Text,
}

pub(super) struct Anthropic {
    meta: Meta,
    /// The open content block and its index.
    block: Option<(Block, usize)>,
    next_index: usize,
    had_text: bool,
    reasoning_chars: usize,
    text_chars: usize,
}

impl Anthropic {
    pub(super) fn new(meta: Meta) -> Anthropic {
        Anthropic {
            meta,
            block: None,
            next_index: 0,
            had_text: false,
            reasoning_chars: 0,
            text_chars: 0,
        }
    }

    fn close_block(&mut self, events: &mut Vec<Event>) {
        if let Some((kind, index)) = self.block.take() {
            if kind == Block::Thinking {
                events.push(json_event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "signature_delta", "signature": "fake-signature"}}),
                ));
            }
            events.push(json_event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn ensure_block(&mut self, kind: Block, events: &mut Vec<Event>) -> usize {
        if let Some((open, index)) = self.block
            && open == kind
        {
            return index;
        }
        self.close_block(events);
        let index = self.next_index;
        self.next_index += 1;
        self.block = Some((kind, index));
        let block = match kind {
            Block::Thinking => json!({"type": "thinking", "thinking": ""}),
            Block::Text => {
                self.had_text = true;
                json!({"type": "text", "text": ""})
            }
        };
        events.push(json_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn delta(&mut self, kind: Block, piece: &str) -> Vec<Event> {
        let mut events = Vec::new();
        let index = self.ensure_block(kind, &mut events);
        match kind {
            Block::Thinking => self.reasoning_chars += piece.len(),
            Block::Text => self.text_chars += piece.len(),
        }
        let delta = match kind {
            Block::Thinking => json!({"type": "thinking_delta", "thinking": piece}),
            Block::Text => json!({"type": "text_delta", "text": piece}),
        };
        events.push(json_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ));
        events
    }
}

impl StreamEncoder for Anthropic {
    fn open(&mut self) -> Vec<Event> {
        let message = json!({
            "id": format!("msg_fake{}", self.meta.id),
            "type": "message",
            "role": "assistant",
            "model": self.meta.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": self.meta.input_tokens, "output_tokens": 1},
        });
        vec![
            json_event(
                "message_start",
                &json!({"type": "message_start", "message": message}),
            ),
            json_event("ping", &json!({"type": "ping"})),
        ]
    }

    fn reasoning(&mut self, piece: &str) -> Vec<Event> {
        self.delta(Block::Thinking, piece)
    }

    fn text(&mut self, piece: &str) -> Vec<Event> {
        self.delta(Block::Text, piece)
    }

    fn finish(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        // An empty but complete reply still has its (empty) text block.
        if !self.had_text && self.meta.finish == Finish::Stop {
            self.ensure_block(Block::Text, &mut events);
        }
        self.close_block(&mut events);
        events.push(json_event(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": anthropic_stop(self.meta.finish), "stop_sequence": null},
                    "usage": {"output_tokens": tokens(self.reasoning_chars) + tokens(self.text_chars)}}),
        ));
        events.push(json_event("message_stop", &json!({"type": "message_stop"})));
        events
    }

    fn error(&mut self) -> Vec<Event> {
        vec![json_event(
            "error",
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        )]
    }
}
