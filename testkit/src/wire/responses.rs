//! OpenAI Responses: `response` objects and the typed, sequence-numbered stream events
//! (`response.created` ... `response.completed` / `response.incomplete`).

use serde_json::{Value, json};

use super::{Finish, Meta, StreamEncoder, json_event, tokens};
use crate::body::Event;

/// A whole non-stream reply body.
pub(super) fn plain(meta: &Meta, reasoning: &str, text: &str, out_tokens: u64) -> Value {
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

pub(super) struct Responses {
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
    pub(super) fn new(meta: Meta) -> Responses {
        Responses {
            meta,
            seq: 0,
            in_progress: false,
            output: Vec::new(),
            reasoning: None,
            message: None,
            reasoning_chars: 0,
        }
    }

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
