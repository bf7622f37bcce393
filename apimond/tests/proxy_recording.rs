//! Proxy keys at the proxy: a key reaches only its channels and models (403 and a model
//! list of its own), its key never reaches the upstream, and every request it makes is
//! recorded with the tokens the upstream reported (or an estimate, flagged).

mod common;
#[path = "common/forwarding.rs"]
mod forwarding;

use std::time::{Duration, Instant};

use apimond::testing::TestDaemon;
use forwarding::*;
use serde_json::json;

/// Creates a key over the admin API; returns the secret.
async fn make_key(d: &TestDaemon, name: &str, targets: Vec<i64>, models: Vec<String>) -> String {
    let (s, v) = d
        .admin(
            reqwest::Method::POST,
            "/api/proxy/keys",
            Some(&json!({"name": name, "allowed_target_ids": targets, "allowed_models": models})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["proxy_key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_key_reaches_only_its_channels_and_models() {
    let relay = relay(&["gpt-4o-mini", "gpt-4.1"], 0).await;
    let d = daemon_with(&[]).await;
    let a = channel(&d, "alpha", &relay.base_url(), &[]).await;
    let b = channel(&d, "beta", &relay.base_url(), &[]).await;
    wait_listed(&d, "beta/gpt-4.1", true).await;
    let only_alpha_mini = make_key(&d, "mini", vec![], vec!["alpha/gpt-4o-mini".into()]).await;
    let only_beta = make_key(&d, "beta", vec![b], vec![]).await;

    let mut ids = model_ids(&d, &only_alpha_mini).await;
    ids.sort();
    assert_eq!(ids, ["alpha/gpt-4o-mini", "gpt-4o-mini"]);
    for model in ["beta/gpt-4o-mini", "alpha/gpt-4.1", "gpt-4.1"] {
        let (s, _, t) = chat(&d, &only_alpha_mini, &ask(model), &[]).await;
        assert_eq!(s, 403, "{model}: {t}");
        assert!(t.contains("not allowed for this key"), "{t}");
    }
    for _ in 0..3 {
        let (s, h, t) = chat(&d, &only_alpha_mini, &ask("gpt-4o-mini"), &[]).await;
        assert_eq!(s, 200, "{t}");
        assert_eq!(header(&h, "x-proxy-target-id"), a.to_string());
    }
    let (s, _, t) = chat(
        &d,
        &only_beta,
        &ask("gpt-4.1"),
        &[("X-Target-Id", &a.to_string())],
    )
    .await;
    assert_eq!(s, 403, "{t}");
    let (s, h, t) = chat(&d, &only_beta, &ask("gpt-4.1"), &[]).await;
    assert_eq!(
        (s, header(&h, "x-proxy-target-id")),
        (200, b.to_string().as_str()),
        "{t}"
    );
    for rec in relay.received() {
        assert!(!rec.mentions(&only_alpha_mini) && !rec.mentions(&only_beta));
        assert!(!rec.mentions(MASTER));
    }
}

struct Row {
    key_id: Option<i64>,
    target_id: Option<i64>,
    endpoint: String,
    stream: bool,
    status: i64,
    attempts: i64,
    input: Option<i64>,
    output: Option<i64>,
    estimated: bool,
    ttft: Option<f64>,
}

fn rows(d: &TestDaemon) -> Vec<Row> {
    let conn = rusqlite::Connection::open(d.dir.join("registry.db")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT key_id, target_id, endpoint, stream, status, attempts, input_tokens, \
             output_tokens, tokens_estimated, ttft_ms FROM proxy_usage WHERE key_id IS NOT NULL \
             ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Row {
            key_id: r.get(0)?,
            target_id: r.get(1)?,
            endpoint: r.get(2)?,
            stream: r.get(3)?,
            status: r.get(4)?,
            attempts: r.get(5)?,
            input: r.get(6)?,
            output: r.get(7)?,
            estimated: r.get(8)?,
            ttft: r.get(9)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

async fn wait_rows(d: &TestDaemon, n: usize) -> Vec<Row> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = rows(d);
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "{} usage rows of {n}", got.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn usage_rows_match_the_requests_made() {
    let relay = relay(&["gpt-4o-mini", "claude-3-5-haiku", "gemini-2.0-flash"], 0).await;
    let d = daemon_with(&[]).await;
    let a = channel(&d, "alpha", &relay.base_url(), &[]).await;
    wait_listed(&d, "gemini-2.0-flash", true).await;
    let key = make_key(&d, "usage", vec![], vec![]).await;
    let key_id = d.core().store.list_proxy_keys().await.unwrap()[0].id;
    relay.clear_received();
    let msg = json!([{"role": "user", "content": "Say hello"}]);

    let (s, _, _) = chat(
        &d,
        &key,
        &json!({"model": "gpt-4o-mini", "messages": msg}),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = chat(
        &d,
        &key,
        &json!({"model": "gpt-4o-mini", "messages": msg, "stream": true}),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = chat(
        &d,
        &key,
        &json!({"model": "gpt-4o-mini", "messages": msg, "stream": true,
            "stream_options": {"include_usage": true}}),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = post(
        &d,
        "/v1/messages",
        &key,
        &json!({"model": "claude-3-5-haiku", "max_tokens": 16, "messages": msg, "stream": true}),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = post(
        &d,
        "/v1beta/models/gemini-2.0-flash:generateContent",
        &key,
        &json!({"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = chat(
        &d,
        &key,
        &json!({"model": "gpt-nowhere", "messages": msg}),
        &[],
    )
    .await;
    assert_eq!(s, 404);

    let got = wait_rows(&d, 6).await;
    assert_eq!(got.len(), 6);
    let reported: Vec<_> = relay.received().iter().map(|r| r.usage).collect();
    assert_eq!(reported.len(), 5);
    for r in &got {
        assert_eq!(r.key_id, Some(key_id));
    }
    let expect = [
        ("chat", false, 200, false),
        ("chat", true, 200, true),
        ("chat", true, 200, false),
        ("messages", true, 200, false),
        ("gemini_generate", false, 200, false),
    ];
    for (i, (endpoint, stream, status, estimated)) in expect.into_iter().enumerate() {
        let r = &got[i];
        assert_eq!(
            (r.endpoint.as_str(), r.stream, r.status, r.estimated),
            (endpoint, stream, status, estimated),
            "row {i}"
        );
        assert_eq!((r.target_id, r.attempts), (Some(a), 1), "row {i}");
        assert!(
            r.output.unwrap_or(0) > 0 && r.input.unwrap_or(0) > 0,
            "row {i}"
        );
        if !estimated {
            let u = reported[i].expect("the relay reported usage");
            assert_eq!(
                (r.input, r.output),
                (Some(u.input_tokens as i64), Some(u.output_tokens as i64)),
                "row {i}: the tokens the upstream reported"
            );
        }
        if stream {
            assert!(r.ttft.is_some(), "row {i}");
        }
    }
    let refused = &got[5];
    assert_eq!(
        (refused.status, refused.target_id, refused.attempts),
        (404, None, 0)
    );
}

/// A relay answering with `Content-Length` (as nginx or most real ones do), unlike
/// the fake relay's chunked replies.
async fn fixed_length_relay() -> String {
    use axum::routing::{get, post};
    let reply = json!({"id": "x", "object": "chat.completion", "model": "fixed-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."},
            "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}})
    .to_string();
    let app = axum::Router::new()
        .route(
            "/v1/models",
            get(|| async {
                axum::Json(json!({"object": "list", "data": [{"id": "fixed-model"}]}))
            }),
        )
        .route(
            "/v1/chat/completions",
            post(move || {
                let reply = reply.clone();
                async move { ([("content-type", "application/json")], reply) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn a_reply_with_a_content_length_is_recorded_as_a_success() {
    let base = fixed_length_relay().await;
    let d = daemon_with(&[]).await;
    let id = d
        .create_on(
            "fixed",
            &base,
            json!({"check_mode": "prompt", "probe_mode": "plain", "client_profile": "plain"}),
        )
        .await;
    d.trigger(id).await;
    d.wait_run(id).await;
    wait_listed(&d, "fixed-model", true).await;
    let key = make_key(&d, "fixed", vec![], vec![]).await;
    for _ in 0..3 {
        let (s, h, t) = chat(&d, &key, &ask("fixed-model"), &[]).await;
        assert_eq!(s, 200, "{t}");
        assert!(header(&h, "content-length").parse::<usize>().unwrap() > 0);
    }
    let got = wait_rows(&d, 3).await;
    let conn = rusqlite::Connection::open(d.dir.join("registry.db")).unwrap();
    let errors: Vec<Option<String>> = conn
        .prepare("SELECT error_class FROM proxy_usage WHERE key_id IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(errors, [None, None, None]);
    for r in &got {
        assert_eq!((r.status, r.input, r.output), (200, Some(11), Some(2)));
    }
}
