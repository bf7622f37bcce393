//! The fake upstream's parts a proxy test leans on, seen from a real HTTP client:
//! embeddings, Gemini's model list, the records of what arrived (headers, bodies, event
//! instants, hang-ups, reported usage), per-model failures switched at runtime, a port
//! that stops and resumes listening, and the control API that offers all of it over HTTP.

use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::StreamExt;
use serde_json::{Value, json};
use testkit::{Failure, FakeConfig, FakeUpstream, Outcome, ReportedUsage};

fn key() -> String {
    FakeConfig::default().api_key
}

async fn start() -> FakeUpstream {
    FakeUpstream::start(FakeConfig::default()).await
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

fn client() -> reqwest::Client {
    // No pooling: a test that stops the port must not reuse a connection.
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

async fn post(up: &FakeUpstream, path: &str, body: Value) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}{path}", up.base_url()))
        .bearer_auth(key())
        .json(&body)
        .send()
        .await
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello there"}]})
}

#[tokio::test]
async fn embeddings_answer_floats_or_base64_and_report_usage() {
    let up = start().await;
    let body = json!({"model": "text-embedding-3-small", "input": ["one", "two"]});
    let floats: Value = post(&up, "/v1/embeddings", body)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["data"].as_array().unwrap().len(), 2);
    let first: Vec<f32> = serde_json::from_value(floats["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(floats["usage"]["prompt_tokens"], 2);

    let body =
        json!({"model": "text-embedding-3-small", "input": "one", "encoding_format": "base64"});
    let b64: Value = post(&up, "/v1/embeddings", body)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = raw
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        decoded, first,
        "the same text gets the same vector either way"
    );

    let records = up.received_for("text-embedding-3-small");
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[1].usage,
        Some(ReportedUsage {
            input_tokens: 1,
            output_tokens: 0
        })
    );
    let bad = post(&up, "/v1/embeddings", json!({"model": "e", "input": 3}))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn gemini_lists_the_same_models_under_v1beta() {
    let up = start().await;
    let list: Value = client()
        .get(format!("{}/v1beta/models", up.base_url()))
        .header("x-goog-api-key", key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "models/gpt-4o-mini",
            "models/claude-3-5-haiku",
            "models/gemini-2.0-flash"
        ]
    );
    let one = client()
        .get(format!(
            "{}/v1beta/models/gemini-2.0-flash?key={}",
            up.base_url(),
            key()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let missing = client()
        .get(format!(
            "{}/v1beta/models/nope?key={}",
            up.base_url(),
            key()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let refused = client()
        .get(format!("{}/v1beta/models", up.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn every_request_is_recorded_with_headers_body_and_reported_usage() {
    let up = start().await;
    let response = client()
        .post(format!("{}/v1/chat/completions?x=1", up.base_url()))
        .bearer_auth(key())
        .header("openai-beta", "assistants=v2")
        .json(&chat("gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    // Streamed chat reports usage only when asked.
    post(&up, "/v1/chat/completions", chat("gpt-4o-mini", true))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut asked = chat("gpt-4o-mini", true);
    asked["stream_options"] = json!({"include_usage": true});
    post(&up, "/v1/chat/completions", asked)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    eventually("three answers settled", || {
        up.received_for("gpt-4o-mini")
            .iter()
            .all(|r| r.outcome == Outcome::Finished)
    })
    .await;
    let records = up.received_for("gpt-4o-mini");
    assert_eq!(records.len(), 3);
    let plain = &records[0];
    assert_eq!(
        (plain.method.as_str(), plain.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(plain.query, "x=1");
    assert_eq!(plain.status, Some(200));
    assert_eq!(
        plain.header("Authorization"),
        Some(format!("Bearer {}", key()).as_str())
    );
    assert_eq!(plain.header("openai-beta"), Some("assistants=v2"));
    assert!(plain.mentions(&key()));
    assert!(!plain.mentions("sk-never-sent"));
    assert_eq!(plain.body_json().unwrap()["model"], "gpt-4o-mini");
    let usage = ReportedUsage {
        input_tokens: 3,
        output_tokens: 6,
    };
    assert_eq!(plain.usage, Some(usage));
    assert!(records[1].stream && records[1].usage.is_none());
    assert_eq!(records[2].usage, Some(usage));
    assert!(records[2].events_sent_at.len() >= 5);

    up.clear_received();
    assert!(up.received().is_empty());
}

#[tokio::test]
async fn a_spaced_stream_records_when_each_event_left_and_the_client_sees_them_as_they_go() {
    let up = start().await;
    up.set_event_gap("gpt-4o-mini", Some(Duration::from_millis(150)));
    let started = Instant::now();
    let response = post(&up, "/v1/chat/completions", chat("gpt-4o-mini", true))
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    let first_seen = started.elapsed();
    while body.next().await.is_some() {}
    let total = started.elapsed();
    // Five gaps of 150 ms follow the first event.
    assert!(total >= Duration::from_millis(750), "{total:?}");
    assert!(
        first_seen + Duration::from_millis(500) < total,
        "{first_seen:?} of {total:?}"
    );

    let record = &up.received_for("gpt-4o-mini")[0];
    let sent = &record.events_sent_at;
    assert_eq!(sent.len(), 6, "{sent:?}");
    for pair in sent.windows(2) {
        assert!(
            pair[1] - pair[0] >= 0.14,
            "events closer than the gap: {sent:?}"
        );
    }
    // Other models keep the configured gap (none).
    post(&up, "/v1/chat/completions", chat("claude-3-5-haiku", true))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let other = &up.received_for("claude-3-5-haiku")[0].events_sent_at;
    let span = other[other.len() - 1] - other[0];
    assert!(span < 0.15 * (other.len() - 1) as f64, "{other:?}");
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_stream_is_recorded() {
    let up = start().await;
    up.set_event_gap("gpt-4o-mini", Some(Duration::from_millis(200)));
    let response = post(&up, "/v1/chat/completions", chat("gpt-4o-mini", true))
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    eventually("hang-up recorded", || {
        up.received_for("gpt-4o-mini")
            .first()
            .is_some_and(|r| r.outcome == Outcome::HungUp && r.ended_at.is_some())
    })
    .await;
    assert_eq!(up.dropped(), 1);
}

#[tokio::test]
async fn failures_switch_on_and_off_per_model() {
    let up = start().await;
    up.set_failure("gpt-4o-mini", Some(Failure::Status(503)));
    let failed = post(&up, "/v1/chat/completions", chat("gpt-4o-mini", false))
        .await
        .unwrap();
    assert_eq!(failed.status(), 503);
    let other = post(&up, "/v1/chat/completions", chat("claude-3-5-haiku", false))
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "other models are untouched");

    up.set_failure("gpt-4o-mini", Some(Failure::Status(401)));
    let refused = post(&up, "/v1/chat/completions", chat("gpt-4o-mini", false))
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        refused.text().await.unwrap().contains(&key()),
        "the key is echoed"
    );

    up.set_failure("gpt-4o-mini", Some(Failure::Status(429)));
    let limited = post(&up, "/v1/chat/completions", chat("gpt-4o-mini", true))
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");

    up.set_failure("gpt-4o-mini", Some(Failure::HangBeforeHeaders));
    let hung = tokio::time::timeout(
        Duration::from_millis(300),
        post(&up, "/v1/chat/completions", chat("gpt-4o-mini", false)),
    )
    .await;
    assert!(hung.is_err(), "answered a hang");

    up.set_failure("gpt-4o-mini", Some(Failure::ErrorAfterFirstByte));
    let cut = post(&up, "/v1/chat/completions", chat("gpt-4o-mini", true))
        .await
        .unwrap();
    assert_eq!(cut.status(), 200);
    let mut body = cut.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("chat.completion.chunk"));
    let mut ended_in_error = false;
    while let Some(chunk) = body.next().await {
        if chunk.is_err() {
            ended_in_error = true;
        }
    }
    assert!(ended_in_error, "the cut stream ended cleanly");
    let plain = post(&up, "/v1/chat/completions", chat("gpt-4o-mini", false))
        .await
        .unwrap();
    assert!(plain.text().await.is_err(), "a cut plain body read whole");
    eventually("cuts recorded", || {
        up.received_for("gpt-4o-mini")
            .iter()
            .filter(|r| r.outcome == Outcome::Cut)
            .count()
            == 2
    })
    .await;

    up.set_failure_for_every_model(Some(Failure::Status(500)));
    let every = post(&up, "/v1/chat/completions", chat("claude-3-5-haiku", false))
        .await
        .unwrap();
    assert_eq!(every.status(), 500);
    up.clear_failures();
    let back = post(&up, "/v1/chat/completions", chat("gpt-4o-mini", false))
        .await
        .unwrap();
    assert_eq!(back.status(), 200);
}

#[tokio::test]
async fn a_stopped_port_refuses_connections_until_it_resumes() {
    let up = start().await;
    up.stop_listening().await;
    let refused = post(&up, "/v1/chat/completions", chat("gpt-4o-mini", false)).await;
    assert!(refused.unwrap_err().is_connect());
    up.resume_listening().await;
    let back = post(&up, "/v1/chat/completions", chat("gpt-4o-mini", false))
        .await
        .unwrap();
    assert_eq!(back.status(), 200);
}

#[tokio::test]
async fn the_control_api_offers_the_switches_and_records_over_http() {
    let up = start().await;
    let control = up.serve_control().await;
    let http = client();
    let put = |path: &str, body: Value| http.put(format!("{control}{path}")).json(&body).send();
    let answer = put(
        "/failures/gpt-4o-mini",
        json!({"kind": "status", "status": 500}),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    let failed = post(&up, "/v1/chat/completions", chat("gpt-4o-mini", false))
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);
    let bad = put("/failures/gpt-4o-mini", json!({"kind": "explode"}))
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert!(bad.json::<Value>().await.unwrap()["detail"].is_string());
    http.delete(format!("{control}/failures/gpt-4o-mini"))
        .send()
        .await
        .unwrap();

    put("/listening", json!({"on": false})).await.unwrap();
    assert!(
        post(&up, "/v1/chat/completions", chat("gpt-4o-mini", false))
            .await
            .is_err()
    );
    put("/listening", json!({"on": true})).await.unwrap();
    put("/event-gaps/gpt-4o-mini", json!({"ms": 50}))
        .await
        .unwrap();
    post(&up, "/v1/chat/completions", chat("gpt-4o-mini", true))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let records: Value = http
        .get(format!("{control}/requests?model=gpt-4o-mini"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = records["requests"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["status"], 500);
    assert_eq!(records[1]["stream"], true);
    assert!(records[1]["events_sent_at"].as_array().unwrap().len() >= 5);
    assert!(records[1]["body"].as_str().unwrap().contains("hello there"));
    let counters: Value = http
        .get(format!("{control}/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["requests"], 2);
}
