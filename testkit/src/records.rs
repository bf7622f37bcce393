//! What the fake received and how each answer went: one [`Received`] per request (method,
//! path, query, headers, body), with the instants its stream events were handed to the
//! connection, how it ended (to the end, the client hung up, or the fake cut it), and
//! the token usage the answer reported. Tests read these to check what reached the
//! upstream (which key, which body) and how a proxy in front of the fake behaved.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use bytes::Bytes;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// The most records kept; older ones are forgotten so a long benchmark stays small.
const KEPT: usize = 4096;

/// Seconds since the Unix epoch, so a test in another process can compare instants.
pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still being answered (or not a generation request, which is not followed).
    Open,
    /// The whole body was handed to the connection.
    Finished,
    /// The client went away (closed the connection or dropped the body) before the end.
    HungUp,
    /// The fake cut the connection itself ([`crate::Failure::ErrorAfterFirstByte`]).
    Cut,
}

/// Token usage as the answer reported it (absent where the protocol reports none, e.g. a
/// streamed chat completion without `stream_options.include_usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReportedUsage {
    pub input_tokens: u64,
    /// Output tokens, reasoning included (Gemini: candidates + thoughts).
    pub output_tokens: u64,
}

/// One request the fake received.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    /// Increases by one per request, from 1.
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// The raw query string, empty when there is none.
    pub query: String,
    /// Header names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    #[serde(serialize_with = "lossy_text")]
    pub body: Bytes,
    /// The model asked for (body `model`, or Gemini's path), when there is one.
    pub model: Option<String>,
    pub stream: bool,
    /// Unix seconds.
    pub arrived_at: f64,
    /// The response status, once the handler answered.
    pub status: Option<u16>,
    /// Unix seconds at which each stream event was handed to the connection.
    pub events_sent_at: Vec<f64>,
    pub outcome: Outcome,
    /// Unix seconds at which the outcome was settled.
    pub ended_at: Option<f64>,
    pub usage: Option<ReportedUsage>,
}

fn lossy_text<S: Serializer>(body: &Bytes, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(body))
}

impl Received {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, when it is JSON.
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether `needle` appears anywhere in the request: path, query, a header value
    /// or the body. For "this secret never reached the upstream" checks.
    pub fn mentions(&self, needle: &str) -> bool {
        self.path.contains(needle)
            || self.query.contains(needle)
            || self.headers.iter().any(|(_, v)| v.contains(needle))
            || String::from_utf8_lossy(&self.body).contains(needle)
    }
}

/// The kept records, oldest first, with consecutive `seq`s.
#[derive(Default)]
pub(crate) struct Records {
    kept: VecDeque<Received>,
    next_seq: u64,
}

impl Records {
    pub fn add(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> u64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        if self.kept.len() == KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(Received {
            seq,
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
            model: None,
            stream: false,
            arrived_at: unix_now(),
            status: None,
            events_sent_at: Vec::new(),
            outcome: Outcome::Open,
            ended_at: None,
            usage: None,
        });
        seq
    }

    /// The record `seq`, unless it was forgotten.
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Received> {
        let first = self.kept.front()?.seq;
        let index = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.kept.get_mut(index)
    }

    pub fn all(&self) -> Vec<Received> {
        self.kept.iter().cloned().collect()
    }

    pub fn clear(&mut self) {
        self.kept.clear();
    }
}
