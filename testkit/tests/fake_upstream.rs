//! The fake upstream seen from a real HTTP client: discovery, auth, each protocol's
//! happy path, and the counters tests elsewhere rely on.
//! One file for the fake's contract as seen from outside, so a test author finds every
//! behaviour they may rely on in one place.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use shared::probe::challenge::Challenge;
use testkit::{Discovery, FakeConfig, FakeUpstream};

fn key() -> String {
    FakeConfig::default().api_key
}

async fn start() -> FakeUpstream {
    FakeUpstream::start(FakeConfig::default()).await
}

/// Polls `check` until it holds, failing after a second.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

async fn post(up: &FakeUpstream, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", up.base_url()))
        .bearer_auth(key())
        .json(&body)
        .send()
        .await
        .expect("send")
}

fn sse_data(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("json event"))
        .collect()
}

fn chat_body(model: &str, prompt: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "stream_options": {"include_usage": true},
           "messages": [{"role": "user", "content": prompt}]})
}

#[tokio::test]
async fn models_list_follows_runtime_changes() {
    let up = start().await;
    let client = reqwest::Client::new();
    let get = || {
        client
            .get(format!("{}/v1/models", up.base_url()))
            .bearer_auth(key())
            .send()
    };
    let list: Value = get().await.unwrap().json().await.unwrap();
    assert_eq!(list["data"][0]["id"], "gpt-4o-mini");
    assert_eq!(list["data"][0]["owned_by"], "fake");
    assert_eq!(up.requests(), 0, "discovery is not a generation request");
    assert!(up.last_headers().unwrap().contains_key("authorization"));

    up.set_models(vec!["only-one".into()]);
    let list: Value = get().await.unwrap().json().await.unwrap();
    assert_eq!(
        list["data"],
        json!([{"id": "only-one", "object": "model", "owned_by": "fake"}])
    );

    up.set_discovery(Discovery::Status(503));
    assert_eq!(get().await.unwrap().status(), 503);
    up.set_discovery(Discovery::NonJson);
    assert_eq!(
        get().await.unwrap().text().await.unwrap(),
        "<html>oops</html>"
    );
    up.set_discovery(Discovery::MissingData);
    assert_eq!(
        get().await.unwrap().json::<Value>().await.unwrap(),
        json!({"object": "list"})
    );
    up.set_discovery(Discovery::Empty);
    assert_eq!(
        get().await.unwrap().json::<Value>().await.unwrap()["data"],
        json!([])
    );
    up.set_discovery(Discovery::Hang);
    let hung = tokio::time::timeout(Duration::from_millis(100), get()).await;
    assert!(hung.is_err());
}

#[tokio::test]
async fn refusal_echoes_the_presented_key_and_every_key_place_works() {
    let up = start().await;
    let client = reqwest::Client::new();
    let body = chat_body("gpt-4o-mini", "hi", false);
    let refused = client
        .post(format!("{}/v1/chat/completions", up.base_url()))
        .bearer_auth("sk-wrong-key-42")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_api_key");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sk-wrong-key-42")
    );

    let models = client
        .get(format!("{}/v1/models", up.base_url()))
        .header("x-api-key", "sk-other")
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 401);
    assert!(models.text().await.unwrap().contains("sk-other"));

    let url = format!("{}/v1/chat/completions", up.base_url());
    for request in [
        client.post(&url).header("x-api-key", key()),
        client.post(&url).header("x-goog-api-key", key()),
        client.post(format!("{url}?key={}", key())),
    ] {
        assert_eq!(request.json(&body).send().await.unwrap().status(), 200);
    }
}

/// Sends the challenge over one protocol, plain and streamed, and returns both replies' text.
async fn both_ways(up: &FakeUpstream, protocol: &str, prompt: &str) -> [String; 2] {
    let model = "gpt-4o-mini";
    let mut texts = [String::new(), String::new()];
    for (i, stream) in [false, true].into_iter().enumerate() {
        let (path, body) = match protocol {
            "chat" => (
                "/v1/chat/completions".to_string(),
                chat_body(model, prompt, stream),
            ),
            "responses" => (
                "/v1/responses".to_string(),
                json!({"model": model, "stream": stream,
                       "input": [{"role": "user", "content": [{"type": "input_text", "text": prompt}]}]}),
            ),
            "anthropic" => (
                "/v1/messages".to_string(),
                json!({"model": model, "stream": stream, "max_tokens": 16,
                       "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]}),
            ),
            _ => {
                let method = if stream {
                    "streamGenerateContent"
                } else {
                    "generateContent"
                };
                let alt = if protocol == "gemini-sse" {
                    "?alt=sse"
                } else {
                    ""
                };
                (
                    format!("/v1beta/models/{model}:{method}{alt}"),
                    json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]}),
                )
            }
        };
        let response = post(up, &path, body).await;
        assert_eq!(response.status(), 200, "{protocol} stream={stream}");
        let raw = response.text().await.unwrap();
        texts[i] = extract(protocol, stream, &raw);
    }
    texts
}

/// The reply text, checking the protocol's usage and terminator on the way.
fn extract(protocol: &str, stream: bool, raw: &str) -> String {
    let gemini_parts = |v: &Value| -> String {
        v["candidates"][0]["content"]["parts"]
            .as_array()
            .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect())
            .unwrap_or_default()
    };
    match (protocol, stream) {
        ("chat", false) => {
            let v: Value = serde_json::from_str(raw).unwrap();
            assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        }
        ("chat", true) => {
            assert!(raw.trim_end().ends_with("data: [DONE]"));
            let events = sse_data(raw);
            assert_eq!(
                events[0]["choices"][0]["delta"],
                json!({"role": "assistant", "content": ""})
            );
            let usage = events.last().unwrap();
            assert_eq!(usage["choices"], json!([]));
            assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
            events
                .iter()
                .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
                .collect()
        }
        ("responses", false) => {
            let v: Value = serde_json::from_str(raw).unwrap();
            assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
            v["output"][0]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        }
        ("responses", true) => {
            assert!(raw.contains("event: response.completed"));
            let events = sse_data(raw);
            let seq: Vec<u64> = events
                .iter()
                .map(|e| e["sequence_number"].as_u64().unwrap())
                .collect();
            assert_eq!(seq, (0..events.len() as u64).collect::<Vec<_>>());
            assert!(
                events.last().unwrap()["response"]["usage"]["output_tokens"]
                    .as_u64()
                    .unwrap()
                    > 0
            );
            events
                .iter()
                .filter(|e| e["type"] == "response.output_text.delta")
                .filter_map(|e| e["delta"].as_str())
                .collect()
        }
        ("anthropic", false) => {
            let v: Value = serde_json::from_str(raw).unwrap();
            assert_eq!(v["stop_reason"], "end_turn");
            v["content"][0]["text"].as_str().unwrap().to_string()
        }
        ("anthropic", true) => {
            assert!(
                raw.trim_end()
                    .ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}")
            );
            assert!(raw.contains("event: ping"));
            let events = sse_data(raw);
            assert_eq!(events[0]["message"]["model"], "gpt-4o-mini");
            events
                .iter()
                .filter(|e| e["delta"]["type"] == "text_delta")
                .filter_map(|e| e["delta"]["text"].as_str())
                .collect()
        }
        (_, false) => {
            let v: Value = serde_json::from_str(raw).unwrap();
            assert_eq!(v["modelVersion"], "gpt-4o-mini");
            gemini_parts(&v)
        }
        (_, true) => {
            let chunks = if protocol == "gemini-sse" {
                sse_data(raw)
            } else {
                serde_json::from_str::<Vec<Value>>(raw).unwrap()
            };
            let last = chunks.last().unwrap();
            assert_eq!(last["candidates"][0]["finishReason"], "STOP");
            assert!(
                last["usageMetadata"]["candidatesTokenCount"]
                    .as_u64()
                    .unwrap()
                    > 0
            );
            chunks.iter().map(gemini_parts).collect()
        }
    }
}

#[tokio::test]
async fn every_protocol_answers_the_challenge_plain_and_streamed() {
    let up = start().await;
    for protocol in ["chat", "responses", "anthropic", "gemini", "gemini-sse"] {
        let challenge = Challenge::generate();
        for text in both_ways(&up, protocol, &challenge.prompt).await {
            assert!(
                challenge.passes(&text),
                "{protocol}: {text:?} for {}",
                challenge.prompt
            );
        }
    }
    let texts = both_ways(&up, "chat", "who are you?").await;
    assert_eq!(texts, ["Hello from gpt-4o-mini", "Hello from gpt-4o-mini"]);
    assert_eq!(
        up.last_body().unwrap()["messages"][0]["content"],
        "who are you?"
    );
    assert_eq!(up.requests(), 12);
    assert_eq!(up.requests_for("gpt-4o-mini"), 12);
    assert_eq!((up.dropped(), up.in_flight()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_and_peak_count_concurrent_requests() {
    let up = FakeUpstream::start(FakeConfig {
        probe_delay: Duration::from_millis(300),
        ..FakeConfig::default()
    })
    .await;
    let calls: Vec<_> = (0..5)
        .map(|i| {
            let url = format!("{}/v1/chat/completions", up.base_url());
            tokio::spawn(async move {
                let body = chat_body(&format!("m{i}"), "hi", i % 2 == 0);
                let response = reqwest::Client::new()
                    .post(url)
                    .bearer_auth(key())
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                response.text().await.unwrap()
            })
        })
        .collect();
    eventually("5 in flight", || up.in_flight() == 5).await;
    for call in calls {
        let reply = call.await.unwrap();
        assert!(
            reply.contains("Hello from m") || reply.ends_with("data: [DONE]\n\n"),
            "{reply}"
        );
    }
    assert_eq!(
        (up.in_flight(), up.peak_in_flight(), up.requests()),
        (0, 5, 5)
    );
    assert_eq!(up.requests_for("m3"), 1);
    assert_eq!(up.dropped(), 0);
    up.reset_peak();
    assert_eq!(up.peak_in_flight(), 0);
}

#[tokio::test]
async fn dropping_an_endless_stream_counts_as_dropped() {
    let up = start().await;
    let response = post(
        &up,
        "/v1/chat/completions",
        chat_body("x-endless", "hi", true),
    )
    .await;
    let mut body = response.bytes_stream();
    for _ in 0..3 {
        body.next().await.unwrap().unwrap();
    }
    assert_eq!(up.in_flight(), 1);
    drop(body);
    eventually("endless stream dropped", || {
        up.dropped() == 1 && up.in_flight() == 0
    })
    .await;
}

#[tokio::test]
async fn huge_body_dropped_early_counts_as_dropped() {
    let up = start().await;
    let response = post(
        &up,
        "/v1/chat/completions",
        chat_body("x-huge", "hi", false),
    )
    .await;
    let mut body = response.bytes_stream();
    let mut read = 0;
    while read < 1 << 20 {
        read += body.next().await.unwrap().unwrap().len();
    }
    drop(body);
    eventually("huge body dropped", || {
        up.dropped() == 1 && up.in_flight() == 0
    })
    .await;
}

#[tokio::test]
async fn hang_holds_the_request_until_the_client_leaves() {
    let up = start().await;
    let call = post(
        &up,
        "/v1/chat/completions",
        chat_body("x-hang", "hi", false),
    );
    let outcome = tokio::time::timeout(Duration::from_millis(300), call).await;
    assert!(outcome.is_err(), "hang answered");
    eventually("hung request released", || {
        up.in_flight() == 0 && up.dropped() == 1
    })
    .await;

    // A stream that shows its role chunk, then nothing.
    let response = post(
        &up,
        "/v1/chat/completions",
        chat_body("x-roleonlyhang", "hi", true),
    )
    .await;
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains(r#""role":"assistant""#));
    let next = tokio::time::timeout(Duration::from_millis(200), body.next()).await;
    assert!(next.is_err(), "roleonlyhang sent more");
    assert_eq!(up.in_flight(), 1);
}

#[tokio::test]
async fn error_misbehaviours_answer_as_documented() {
    let up = start().await;
    let chat = |model: &str| post(&up, "/v1/chat/completions", chat_body(model, "hi", false));

    let limited = chat("x-err429").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(chat("x-err529").await.status(), 529);
    let quota: Value = chat("x-quota").await.json().await.unwrap();
    assert_eq!(quota["error"]["code"], "insufficient_quota");
    assert_eq!(chat("x-notfound").await.status(), 404);
    let cn: Value = chat("x-cnfail").await.json().await.unwrap();
    assert_eq!(cn["message"], "余额不足");

    assert_eq!(chat("x-flaky").await.status(), 500);
    assert_eq!(chat("x-flaky").await.status(), 200);
    assert_eq!(chat("x-flaky429").await.status(), 429);
    assert_eq!(chat("x-flaky429").await.status(), 200);

    let wrong: Value = chat("x-wrongmodel").await.json().await.unwrap();
    assert_eq!(wrong["model"], "some-other-model");
    let dated: Value = chat("x-datedmodel").await.json().await.unwrap();
    assert_eq!(dated["model"], "x-datedmodel-2024-08-06");
    assert_eq!((up.dropped(), up.in_flight()), (0, 0));
}

#[tokio::test]
async fn broken_streams_lack_their_terminators() {
    let up = start().await;
    let stream = |model: &str| {
        let up = &up;
        let model = model.to_string();
        async move {
            let response = post(up, "/v1/chat/completions", chat_body(&model, "hi", true)).await;
            response.text().await.unwrap()
        }
    };
    let midstream = stream("x-midstream").await;
    assert!(midstream.contains(r#"data: {"error""#) && !midstream.contains("[DONE]"));
    let cut = stream("x-cut").await;
    assert!(
        cut.contains("Hello") && !cut.contains("[DONE]") && !cut.contains("finish_reason\":\"stop")
    );
    let relay = stream("x-relay").await;
    assert!(relay.starts_with("data:{") && relay.contains("\r\n: keep-alive\r\n"));
    assert!(relay.contains("reasoning_content") && relay.ends_with("data:[DONE]\r\n\r\n"));
    let garbage = stream("x-garbage").await;
    assert!(
        garbage.starts_with("data: not json at all\n\n") && garbage.ends_with("data: [DONE]\n\n")
    );

    let anthropic = post(
        &up,
        "/v1/messages",
        json!({"model": "x-reasoningonly", "stream": true, "max_tokens": 8,
               "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(anthropic.contains("thinking_delta") && !anthropic.contains("text_delta"));
    assert!(anthropic.contains(r#""stop_reason":"max_tokens""#));
}
