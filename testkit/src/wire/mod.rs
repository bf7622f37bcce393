//! The four protocols' reply formats, built the way the real APIs shape their plain
//! (non-stream) bodies and their stream events. This module holds what every protocol
//! shares (the reply's [`Meta`], why it ended, the [`StreamEncoder`] seam); each protocol's
//! shapes live in its own module.

mod anthropic;
mod chat;
mod gemini;
mod responses;

use serde_json::Value;

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
        Protocol::Chat => chat::plain(meta, reasoning, text, out_tokens),
        Protocol::Responses => responses::plain(meta, reasoning, text, out_tokens),
        Protocol::Anthropic => anthropic::plain(meta, reasoning, text, out_tokens),
        Protocol::Gemini => gemini::plain(meta, reasoning, text),
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
        Protocol::Chat => Box::new(chat::Chat::new(meta)),
        Protocol::Responses => Box::new(responses::Responses::new(meta)),
        Protocol::Anthropic => Box::new(anthropic::Anthropic::new(meta)),
        Protocol::Gemini => Box::new(gemini::Gemini::new(meta)),
    }
}

fn json_event(name: &'static str, data: &Value) -> Event {
    Event::named(name, data.to_string())
}
