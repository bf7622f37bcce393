//! The four protocols' reply formats: plain (non-stream) bodies and the stream
//! events, built the way the real APIs shape them (see `PROTOCOLS.md`).

use serde_json::{Value, json};

use crate::body::Event;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Chat,
    Responses,
    Anthropic,
    Gemini,
}

/// Why a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    Stop,
    /// The token budget ran out (here: spent on reasoning).
    Length,
    ContentFilter,
}

/// What every reply of one request shares.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub id: u64,
    /// The `model` the reply reports (not necessarily the one requested).
    pub model: String,
    pub created: u64,
    pub input_tokens: u64,
    pub finish: Finish,
    /// Chat only: `stream_options.include_usage`.
    pub include_usage: bool,
}

/// A rough token count, good enough for fields that must be present and plausible.
pub(crate) fn tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

/// A whole non-stream reply body.
pub(crate) fn plain(protocol: Protocol, meta: &Meta, reasoning: &str, text: &str) -> Value {
    let out_tokens = tokens(reasoning.len()) + tokens(text.len());
    match protocol {
        Protocol::Chat => {
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
        Protocol::Responses => {
            let mut output = Vec::new();
            if !reasoning.is_empty() {
                output.push(reasoning_item(meta, reasoning));
            }
            output.push(message_item(meta, text, "completed"));
            response_object(
                meta,
                responses_status(meta.finish),
                output,
                Some((out_tokens, tokens(reasoning.len()))),
            )
        }
        Protocol::Anthropic => {
            let mut content = Vec::new();
            if !reasoning.is_empty() {
                content.push(json!({"type": "thinking", "thinking": reasoning, "signature": "fake-signature"}));
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
        Protocol::Gemini => {
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
    }
}

/// Turns reply pieces into stream events, remembering what is open.
pub(crate) trait StreamEncoder: Send {
    /// What goes out before any content (chat role chunk, `message_start`, ...).
    fn open(&mut self) -> Vec<Event>;
    fn reasoning(&mut self, piece: &str) -> Vec<Event>;
    fn text(&mut self, piece: &str) -> Vec<Event>;
    /// Everything after the content, terminator included.
    fn finish(&mut self) -> Vec<Event>;
    /// An error event in the middle of the stream.
    fn error(&mut self) -> Vec<Event>;
}

pub(crate) fn encoder(protocol: Protocol, meta: Meta) -> Box<dyn StreamEncoder> {
    match protocol {
        Protocol::Chat => Box::new(Chat {
            meta,
            reasoning_chars: 0,
            text_chars: 0,
        }),
        Protocol::Responses => Box::new(Responses {
            meta,
            seq: 0,
            in_progress: false,
            output: Vec::new(),
            reasoning: None,
            message: None,
            reasoning_chars: 0,
        }),
        Protocol::Anthropic => Box::new(Anthropic {
            meta,
            block: None,
            next_index: 0,
            had_text: false,
            out_chars: 0,
        }),
        Protocol::Gemini => Box::new(Gemini {
            meta,
            reasoning_chars: 0,
            text_chars: 0,
        }),
    }
}

fn json_event(name: &'static str, data: &Value) -> Event {
    Event::named(name, data.to_string())
}

// ---- OpenAI Chat Completions ----

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

struct Chat {
    meta: Meta,
    reasoning_chars: usize,
    text_chars: usize,
}

impl Chat {
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

// ---- OpenAI Responses ----

fn responses_status(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "completed",
        Finish::Length | Finish::ContentFilter => "incomplete",
    }
}

fn reasoning_item(meta: &Meta, text: &str) -> Value {
    json!({
        "id": format!("rs_fake{}", meta.id),
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}],
    })
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

fn message_item(meta: &Meta, text: &str, status: &str) -> Value {
    let content = if status == "in_progress" {
        json!([])
    } else {
        json!([output_text(text)])
    };
    json!({
        "id": format!("msg_fake{}", meta.id),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    })
}

/// `usage` is `(output_tokens, reasoning_tokens)`, absent while in progress.
fn response_object(
    meta: &Meta,
    status: &str,
    output: Vec<Value>,
    usage: Option<(u64, u64)>,
) -> Value {
    let incomplete = match (status, meta.finish) {
        ("incomplete", Finish::Length) => json!({"reason": "max_output_tokens"}),
        ("incomplete", Finish::ContentFilter) => json!({"reason": "content_filter"}),
        _ => Value::Null,
    };
    let usage = match usage {
        Some((out, reasoning)) => json!({
            "input_tokens": meta.input_tokens,
            "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": meta.input_tokens + out,
        }),
        None => Value::Null,
    };
    json!({
        "id": format!("resp_fake{}", meta.id),
        "object": "response",
        "created_at": meta.created,
        "status": status,
        "model": meta.model,
        "output": output,
        "incomplete_details": incomplete,
        "usage": usage,
    })
}

struct Responses {
    meta: Meta,
    seq: u64,
    in_progress: bool,
    /// Finished output items, for the terminal event.
    output: Vec<Value>,
    /// The reasoning text so far while a reasoning item is open.
    reasoning: Option<String>,
    /// The message text so far while a message item is open.
    message: Option<String>,
    reasoning_chars: usize,
}

impl Responses {
    fn ev(&mut self, name: &'static str, mut data: Value) -> Event {
        data["type"] = json!(name);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        json_event(name, &data)
    }

    fn ensure_in_progress(&mut self, events: &mut Vec<Event>) {
        if !self.in_progress {
            self.in_progress = true;
            let response = response_object(&self.meta, "in_progress", vec![], None);
            events.push(self.ev("response.in_progress", json!({"response": response})));
        }
    }

    fn close_reasoning(&mut self, events: &mut Vec<Event>) {
        if let Some(text) = self.reasoning.take() {
            let item_id = format!("rs_fake{}", self.meta.id);
            let index = self.output.len();
            events.push(self.ev(
                "response.reasoning_summary_text.done",
                json!({"item_id": item_id, "output_index": index, "summary_index": 0, "text": text}),
            ));
            let item = reasoning_item(&self.meta, &text);
            events.push(self.ev(
                "response.output_item.done",
                json!({"output_index": index, "item": item}),
            ));
            self.output.push(item);
        }
    }

    fn ensure_message(&mut self, events: &mut Vec<Event>) {
        self.close_reasoning(events);
        if self.message.is_none() {
            self.message = Some(String::new());
            let index = self.output.len();
            let item = message_item(&self.meta, "", "in_progress");
            events.push(self.ev(
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
            ));
            let item_id = format!("msg_fake{}", self.meta.id);
            events.push(self.ev(
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": output_text("")}),
            ));
        }
    }
}

impl StreamEncoder for Responses {
    fn open(&mut self) -> Vec<Event> {
        let response = response_object(&self.meta, "in_progress", vec![], None);
        vec![self.ev("response.created", json!({"response": response}))]
    }

    fn reasoning(&mut self, piece: &str) -> Vec<Event> {
        let mut events = Vec::new();
        self.ensure_in_progress(&mut events);
        let index = self.output.len();
        let item_id = format!("rs_fake{}", self.meta.id);
        if self.reasoning.is_none() {
            self.reasoning = Some(String::new());
            let item = json!({"id": item_id, "type": "reasoning", "summary": []});
            events.push(self.ev(
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
            ));
        }
        self.reasoning.get_or_insert_default().push_str(piece);
        self.reasoning_chars += piece.len();
        events.push(self.ev(
            "response.reasoning_summary_text.delta",
            json!({"item_id": item_id, "output_index": index, "summary_index": 0, "delta": piece}),
        ));
        events
    }

    fn text(&mut self, piece: &str) -> Vec<Event> {
        let mut events = Vec::new();
        self.ensure_in_progress(&mut events);
        self.ensure_message(&mut events);
        self.message.get_or_insert_default().push_str(piece);
        let item_id = format!("msg_fake{}", self.meta.id);
        let index = self.output.len();
        events.push(self.ev(
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": index, "content_index": 0, "delta": piece}),
        ));
        events
    }

    fn finish(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        self.ensure_in_progress(&mut events);
        self.ensure_message(&mut events);
        let text = self.message.take().unwrap_or_default();
        let item_id = format!("msg_fake{}", self.meta.id);
        let index = self.output.len();
        let at = json!({"item_id": item_id, "output_index": index, "content_index": 0});
        let mut done = at.clone();
        done["text"] = json!(text);
        events.push(self.ev("response.output_text.done", done));
        let mut part_done = at;
        part_done["part"] = output_text(&text);
        events.push(self.ev("response.content_part.done", part_done));
        let item = message_item(&self.meta, &text, "completed");
        events.push(self.ev(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        ));
        self.output.push(item);

        let status = responses_status(self.meta.finish);
        let reasoning = tokens(self.reasoning_chars);
        let usage = (reasoning + tokens(text.len()), reasoning);
        let response = response_object(
            &self.meta,
            status,
            std::mem::take(&mut self.output),
            Some(usage),
        );
        let name = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        events.push(self.ev(name, json!({"response": response})));
        events
    }

    fn error(&mut self) -> Vec<Event> {
        vec![self.ev(
            "error",
            json!({"code": "server_error", "message": "upstream connection reset mid-stream", "param": null}),
        )]
    }
}

// ---- Anthropic Messages ----

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

struct Anthropic {
    meta: Meta,
    /// The open content block and its index.
    block: Option<(Block, usize)>,
    next_index: usize,
    had_text: bool,
    out_chars: usize,
}

impl Anthropic {
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
        self.out_chars += piece.len();
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
                    "usage": {"output_tokens": tokens(self.out_chars)}}),
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

// ---- Gemini ----

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

struct Gemini {
    meta: Meta,
    reasoning_chars: usize,
    text_chars: usize,
}

impl Gemini {
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
