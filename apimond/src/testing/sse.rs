//! `/api/events` as a test reads it: opened with a token, then read event by event
//! with a deadline.

use std::collections::VecDeque;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use shared::probe::sse::{SseEvent, SseParser};

use super::TestDaemon;

impl TestDaemon {
    /// Opens `/api/events` with a token.
    pub async fn events(&self, token: Option<&str>) -> SseReader {
        let mut url = self.url("/api/events");
        if let Some(t) = token {
            url.push_str(&format!("?token={t}"));
        }
        let resp = self.http.get(url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        SseReader {
            resp,
            parser: SseParser::new(),
            pending: VecDeque::new(),
        }
    }
}

/// Reads server-sent events from a response.
pub struct SseReader {
    pub resp: reqwest::Response,
    parser: SseParser,
    pending: VecDeque<SseEvent>,
}

impl SseReader {
    /// The next event's name and JSON data, waiting at most `secs`.
    pub async fn next(&mut self, secs: u64) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(e) = self.pending.pop_front() {
                let data = serde_json::from_str(&e.data).unwrap_or(Value::Null);
                return Some((e.event.unwrap_or_default(), data));
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?
                .ok()??;
            self.pending.extend(self.parser.feed(&chunk));
        }
    }

    /// Events until one named `until` (included).
    pub async fn until(&mut self, until: &str, secs: u64) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        while let Some((name, data)) = self.next(secs).await {
            let done = name == until;
            out.push((name, data));
            if done {
                return out;
            }
        }
        panic!(
            "no `{until}` event within {secs} s; got {:?}",
            out.iter().map(|e| &e.0).collect::<Vec<_>>()
        );
    }
}
