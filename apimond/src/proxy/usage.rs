//! Reading a reply on the side as it passes: time to first token and the token usage
//! the upstream reports, from stream events or from the whole body at its end. It sees
//! every chunk after the client got it and never holds one back. A streamed reply
//! without usage (Chat Completions unless the client asked for
//! `stream_options.include_usage`) is estimated from its text and flagged.

use std::time::Instant;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use shared::probe::Protocol;
use shared::probe::protocol::{Delta, parse_event};
use shared::probe::sse::SseParser;

/// Whole bodies are kept (as shared chunks, not copies) up to this size to read their
/// usage at the end; past it the usage is left unknown.
const KEEP_BODY: usize = 4 * 1024 * 1024;
/// Characters per token, for estimates.
const CHARS_PER_TOKEN: usize = 4;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tokens {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub estimated: bool,
}

pub struct UsageReader {
    protocol: Protocol,
    started: Instant,
    /// Request body size, for the input estimate.
    request_bytes: usize,
    sse: Option<SseParser>,
    /// The body so far (not SSE): its first chunk, then any more. Most replies are
    /// one chunk and need no vector.
    first: Option<Bytes>,
    chunks: Vec<Bytes>,
    kept: usize,
    pub first_byte_ms: Option<f64>,
    pub first_token_ms: Option<f64>,
    text_chars: usize,
    tokens: Tokens,
}

fn as_u64(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// Reads the usage a reply (or one event of it) reports into `t`: OpenAI
/// (`prompt_tokens`/`completion_tokens`), Responses and Anthropic
/// (`input_tokens`/`output_tokens`, under `response` or `message` in events), Gemini
/// (`usageMetadata`).
pub fn read_usage(v: &Value, t: &mut Tokens) {
    let places = [
        v.get("usage"),
        v.get("response").and_then(|r| r.get("usage")),
        v.get("message").and_then(|m| m.get("usage")),
    ];
    for u in places.into_iter().flatten().filter(|u| u.is_object()) {
        if let Some(n) = as_u64(u, "prompt_tokens").or_else(|| as_u64(u, "input_tokens")) {
            t.input = Some(n);
        }
        if let Some(n) = as_u64(u, "completion_tokens").or_else(|| as_u64(u, "output_tokens")) {
            t.output = Some(n);
        }
    }
    if let Some(u) = v.get("usageMetadata") {
        if let Some(n) = as_u64(u, "promptTokenCount") {
            t.input = Some(n);
        }
        let out = as_u64(u, "candidatesTokenCount").unwrap_or(0)
            + as_u64(u, "thoughtsTokenCount").unwrap_or(0);
        if out > 0 || u.get("candidatesTokenCount").is_some() {
            t.output = Some(out);
        }
    }
}

/// The parts of a whole reply that can hold usage; everything else is skipped
/// without being built.
#[derive(Deserialize)]
struct UsagePlaces {
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    response: Option<Nested>,
    #[serde(default)]
    message: Option<Nested>,
    #[serde(default, rename = "usageMetadata")]
    usage_metadata: Option<Value>,
}

#[derive(Deserialize)]
struct Nested {
    #[serde(default)]
    usage: Option<Value>,
}

impl UsagePlaces {
    fn read_into(self, t: &mut Tokens) {
        let mut v = serde_json::Map::new();
        let nested = |n: Option<Nested>| {
            n.and_then(|n| n.usage)
                .map(|u| serde_json::json!({"usage": u}))
        };
        if let Some(u) = self.usage {
            v.insert("usage".into(), u);
        }
        if let Some(r) = nested(self.response) {
            v.insert("response".into(), r);
        }
        if let Some(m) = nested(self.message) {
            v.insert("message".into(), m);
        }
        if let Some(u) = self.usage_metadata {
            v.insert("usageMetadata".into(), u);
        }
        read_usage(&Value::Object(v), t);
    }
}

/// The usage a whole JSON reply reports, found without parsing the rest of it: the
/// last `"usage"` or `"usageMetadata"` key (replies put it at or near their end) and
/// the counts in the object after it. `None` when there is no such key, it is
/// inside a string, or its value is not an object: the caller then parses the whole.
fn last_usage(whole: &[u8]) -> Option<LastUsage> {
    let mut end = whole.len();
    while let Some(at) = rfind_usage_key(&whole[..end]) {
        end = at;
        let gemini = whole[at..].starts_with(b"\"usageMetadata\"");
        let key_len = if gemini { 15 } else { 7 };
        // An escaped quote is text inside a string, not a key.
        if at > 0 && whole[at - 1] == b'\\' {
            continue;
        }
        let rest = &whole[at + key_len..];
        let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        if rest[colon] != b':' {
            continue;
        }
        let mut values =
            serde_json::Deserializer::from_slice(&rest[colon + 1..]).into_iter::<Counts>();
        let counts = values.next()?.ok()?;
        return Some(if gemini {
            LastUsage::Gemini(counts)
        } else {
            LastUsage::Usage(counts)
        });
    }
    None
}

/// The usage object found at a reply's end, by the key it was under.
#[derive(Debug)]
enum LastUsage {
    /// `"usage"`: OpenAI's, Anthropic's and Responses' names.
    Usage(Counts),
    /// `"usageMetadata"`: Gemini's.
    Gemini(Counts),
}

/// The counts a usage object holds; its other fields (details, cache figures) are
/// skipped unread, and a count that is not a whole number counts as absent, as in
/// [`read_usage`]. Numbers are read without allocating.
#[derive(Debug, Deserialize)]
struct Counts {
    prompt_tokens: Option<Value>,
    completion_tokens: Option<Value>,
    input_tokens: Option<Value>,
    output_tokens: Option<Value>,
    #[serde(rename = "promptTokenCount")]
    prompt_token_count: Option<Value>,
    #[serde(rename = "candidatesTokenCount")]
    candidates_token_count: Option<Value>,
    #[serde(rename = "thoughtsTokenCount")]
    thoughts_token_count: Option<Value>,
}

impl LastUsage {
    /// The same reading as [`read_usage`] gives the object under its key.
    fn read_into(&self, t: &mut Tokens) {
        let n = |v: &Option<Value>| v.as_ref().and_then(Value::as_u64);
        match self {
            LastUsage::Usage(c) => {
                if let Some(v) = n(&c.prompt_tokens).or_else(|| n(&c.input_tokens)) {
                    t.input = Some(v);
                }
                if let Some(v) = n(&c.completion_tokens).or_else(|| n(&c.output_tokens)) {
                    t.output = Some(v);
                }
            }
            LastUsage::Gemini(c) => {
                if let Some(v) = n(&c.prompt_token_count) {
                    t.input = Some(v);
                }
                let out = n(&c.candidates_token_count).unwrap_or(0)
                    + n(&c.thoughts_token_count).unwrap_or(0);
                if out > 0 || c.candidates_token_count.is_some() {
                    t.output = Some(out);
                }
            }
        }
    }
}

/// Where the last `"usage"` or `"usageMetadata"` (with its quotes) starts.
fn rfind_usage_key(hay: &[u8]) -> Option<usize> {
    let mut i = hay.len();
    while i >= 7 {
        i -= 1;
        if hay[i] != b'"' || i < 6 {
            continue;
        }
        // `hay[i]` is a closing quote: does a key end here?
        if hay[..=i].ends_with(b"\"usage\"") {
            return Some(i - 6);
        }
        if hay[..=i].ends_with(b"\"usageMetadata\"") {
            return Some(i - 14);
        }
    }
    None
}

impl UsageReader {
    pub fn new(protocol: Protocol, started: Instant, request_bytes: usize, sse: bool) -> Self {
        UsageReader {
            protocol,
            started,
            request_bytes,
            sse: sse.then(SseParser::new),
            first: None,
            chunks: Vec::new(),
            kept: 0,
            first_byte_ms: None,
            first_token_ms: None,
            text_chars: 0,
            tokens: Tokens::default(),
        }
    }

    fn since_start(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// Sees one chunk the client was sent.
    pub fn see(&mut self, chunk: &Bytes) {
        if self.first_byte_ms.is_none() {
            self.first_byte_ms = Some(self.since_start());
        }
        let Some(parser) = self.sse.as_mut() else {
            if self.kept + chunk.len() <= KEEP_BODY {
                self.kept += chunk.len();
                if self.first.is_none() {
                    self.first = Some(chunk.clone());
                } else {
                    self.chunks.push(chunk.clone());
                }
            } else {
                self.kept = usize::MAX / 2;
                self.first = None;
                self.chunks.clear();
            }
            return;
        };
        for event in parser.feed(chunk) {
            // Parsing every event costs little next to the network, and the text
            // length is what an estimate needs.
            if let Ok(deltas) = parse_event(self.protocol, &event) {
                for d in deltas {
                    if let Delta::Text(t) | Delta::Reasoning(t) = &d {
                        self.text_chars += t.chars().count();
                        if self.first_token_ms.is_none() && !t.is_empty() {
                            self.first_token_ms = Some(self.since_start());
                        }
                    }
                }
            }
            if event.data.contains("sage")
                && let Ok(v) = serde_json::from_str::<Value>(&event.data)
            {
                read_usage(&v, &mut self.tokens);
            }
        }
    }

    /// The tokens once the reply ended (or was cut).
    pub fn finish(&mut self) -> Tokens {
        if self.sse.is_none()
            && let Some(first) = self.first.take()
        {
            let joined;
            let whole: &[u8] = if self.chunks.is_empty() {
                &first
            } else {
                let mut all = Vec::with_capacity(self.kept);
                all.extend_from_slice(&first);
                for c in &self.chunks {
                    all.extend_from_slice(c);
                }
                joined = all;
                &joined
            };
            if let Some(u) = last_usage(whole) {
                u.read_into(&mut self.tokens);
                self.chunks.clear();
                return self.estimate();
            }
            // Gemini's stream without `alt=sse` is a JSON array of replies. Told apart
            // by the first byte: an untagged enum would buffer the whole body first.
            let array = whole.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
            if array {
                if let Ok(items) = serde_json::from_slice::<Vec<UsagePlaces>>(whole) {
                    for p in items {
                        p.read_into(&mut self.tokens);
                    }
                }
            } else if let Ok(p) = serde_json::from_slice::<UsagePlaces>(whole) {
                p.read_into(&mut self.tokens);
            }
            self.chunks.clear();
        }
        self.estimate()
    }

    /// The tokens read, with an estimate where the upstream reported none.
    fn estimate(&self) -> Tokens {
        let mut t = self.tokens;
        if t.output.is_none() && self.text_chars > 0 {
            t.output = Some(self.text_chars.div_ceil(CHARS_PER_TOKEN) as u64);
            t.estimated = true;
        }
        if t.input.is_none() && t.estimated {
            t.input = Some(self.request_bytes.div_ceil(CHARS_PER_TOKEN) as u64);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_from_each_protocols_place() {
        let mut t = Tokens::default();
        read_usage(
            &serde_json::json!({"usage": {"prompt_tokens": 5, "completion_tokens": 7}}),
            &mut t,
        );
        assert_eq!((t.input, t.output), (Some(5), Some(7)));
        let mut t = Tokens::default();
        read_usage(
            &serde_json::json!({"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}}),
            &mut t,
        );
        read_usage(
            &serde_json::json!({"type": "message_delta", "usage": {"output_tokens": 12}}),
            &mut t,
        );
        assert_eq!((t.input, t.output), (Some(9), Some(12)));
        let mut t = Tokens::default();
        read_usage(
            &serde_json::json!({"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "thoughtsTokenCount": 2}}),
            &mut t,
        );
        assert_eq!((t.input, t.output), (Some(3), Some(6)));
    }

    #[test]
    fn a_chat_stream_without_usage_is_estimated_and_flagged() {
        let mut r = UsageReader::new(Protocol::Openai, Instant::now(), 40, true);
        r.see(&Bytes::from_static(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"Hello wor\"}}]}\n\n",
        ));
        r.see(&Bytes::from_static(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"ld!\"}}]}\n\ndata: [DONE]\n\n",
        ));
        let t = r.finish();
        assert!(r.first_token_ms.is_some());
        assert_eq!(t.output, Some(3));
        assert_eq!(t.input, Some(10));
        assert!(t.estimated);
    }

    #[test]
    fn a_gemini_array_and_a_responses_body_are_read_whole() {
        let mut r = UsageReader::new(Protocol::Gemini, Instant::now(), 40, false);
        r.see(&Bytes::from_static(
            b"[{\"candidates\":[]},{\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":5}}]",
        ));
        assert_eq!((r.finish().input, r.finish().output), (Some(4), Some(5)));
        let mut r = UsageReader::new(Protocol::Responses, Instant::now(), 40, false);
        r.see(&Bytes::from_static(
            b"{\"output\":[{\"content\":[{\"text\":\"hi\"}]}],\"usage\":{\"input_tokens\":6,\"output_tokens\":1}}",
        ));
        let t = r.finish();
        assert_eq!((t.input, t.output, t.estimated), (Some(6), Some(1), false));
    }

    #[test]
    fn a_whole_body_is_read_at_its_end() {
        let mut r = UsageReader::new(Protocol::Openai, Instant::now(), 40, false);
        r.see(&Bytes::from_static(b"{\"usage\":{\"prompt_tokens\":"));
        r.see(&Bytes::from_static(b"2,\"completion_"));
        r.see(&Bytes::from_static(b"tokens\":3}}"));
        assert_eq!(
            r.finish(),
            Tokens {
                input: Some(2),
                output: Some(3),
                estimated: false
            }
        );
    }

    #[test]
    fn usage_is_found_at_a_replys_end_and_never_inside_its_text() {
        let body = br#"{"choices":[{"message":{"content":"the \"usage\": {\"prompt_tokens\": 99} is text"}}],"usage" : {"prompt_tokens":9,"completion_tokens":5}}"#;
        let mut t = Tokens::default();
        last_usage(body).unwrap().read_into(&mut t);
        assert_eq!((t.input, t.output), (Some(9), Some(5)));
        // Fields besides the counts are skipped; a count that is no whole number is
        // absent, as in the event reading.
        let mut t = Tokens::default();
        last_usage(br#"{"usage":{"input_tokens":"7","output_tokens":2,"cache":{"a":[1]}}}"#)
            .unwrap()
            .read_into(&mut t);
        assert_eq!((t.input, t.output), (None, Some(2)));
        // Only text mentions usage: no usage, and the whole-body read finds none.
        let text_only = br#"{"content":"\"usage\": {\"input_tokens\": 3}"}"#;
        assert!(last_usage(text_only).is_none());
        let mut r = UsageReader::new(Protocol::Anthropic, Instant::now(), 40, false);
        r.see(&Bytes::from_static(text_only));
        assert_eq!((r.finish().input, r.finish().output), (None, None));
        // A value named usage is not a key; a null usage falls back to the whole read.
        assert!(last_usage(br#"{"type":"usage","n":1}"#).is_none());
        assert!(last_usage(br#"{"usage":null}"#).is_none());
        // Gemini's array: the last usageMetadata is the final count.
        let u = last_usage(br#"[{"usageMetadata":{"promptTokenCount":4}},{"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":7,"thoughtsTokenCount":2}}]"#).unwrap();
        let mut t = Tokens::default();
        u.read_into(&mut t);
        assert_eq!((t.input, t.output), (Some(4), Some(9)));
    }
}
