//! The proxy forwards each API, streamed and not, to the channel routing picks, with
//! the channel's key in the protocol's header and the body unchanged but for the model;
//! upstream errors come back with their status and body, the channel key scrubbed.

mod common;
#[path = "common/forwarding.rs"]
mod forwarding;

use apimond::testing::UPSTREAM_KEY;
use forwarding::*;
use serde_json::{Value, json};

/// Every header value the relay last received, lower-cased names.
fn upstream_headers(relay: &testkit::FakeUpstream) -> Vec<(String, String)> {
    relay
        .last_headers()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}

fn assert_no_client_key(relay: &testkit::FakeUpstream) {
    for (k, v) in upstream_headers(relay) {
        assert!(
            !v.contains(MASTER),
            "the client's key reached the relay in {k}"
        );
    }
}

#[tokio::test]
async fn each_api_is_forwarded_plain_and_streamed_with_the_channels_key() {
    let relay = relay(
        &[
            "gpt-4o-mini",
            "gpt-5-mini",
            "claude-3-5-haiku",
            "gemini-2.0-flash",
        ],
        0,
    )
    .await;
    let d = daemon_with(&[]).await;
    let id = channel(&d, "alpha", &relay.base_url(), &[]).await;
    wait_listed(&d, "gemini-2.0-flash", true).await;

    for stream in [false, true] {
        // Chat Completions, by channel/model: the body reaches the relay unchanged but
        // for the model id.
        let body = json!({"model": "alpha/gpt-4o-mini", "stream": stream, "temperature": 0.5,
            "messages": [{"role": "user", "content": "Say hello"}]});
        let (s, h, text) = chat(&d, MASTER, &body, &[]).await;
        assert_eq!(s, 200, "{text}");
        assert_eq!(header(&h, "x-proxy-target-id"), id.to_string());
        assert_eq!(header(&h, "x-proxy-upstream-model"), "gpt-4o-mini");
        assert!(said(&text).contains("Hello from gpt-4o-mini"), "{text}");
        let mut sent = body.clone();
        sent["model"] = json!("gpt-4o-mini");
        assert_eq!(relay.last_body().unwrap(), sent);
        let auth = upstream_headers(&relay)
            .into_iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert_eq!(auth, format!("Bearer {UPSTREAM_KEY}"));
        assert_no_client_key(&relay);
        if stream {
            assert_eq!(header(&h, "content-type"), "text/event-stream");
            assert_eq!(header(&h, "x-accel-buffering"), "no");
            assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        }

        // Responses, by bare model.
        let (s, h, text) = post(
            &d,
            "/v1/responses",
            MASTER,
            &json!({"model": "gpt-5-mini", "input": "Say hello", "stream": stream}),
            &[],
        )
        .await;
        assert_eq!(s, 200, "{text}");
        assert_eq!(header(&h, "x-proxy-upstream-model"), "gpt-5-mini");
        assert!(said(&text).contains("Hello from gpt-5-mini"), "{text}");

        // Anthropic Messages: x-api-key and the target's anthropic-version, the
        // client's anthropic-beta passed.
        let resp = d
            .http
            .post(d.url("/v1/messages"))
            .header("x-api-key", MASTER)
            .header("anthropic-beta", "tools-2024-05-16")
            .json(
                &json!({"model": "claude-3-5-haiku", "max_tokens": 16, "stream": stream,
                "messages": [{"role": "user", "content": "Say hello"}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(
            said(&text).contains("Hello from claude-3-5-haiku"),
            "{text}"
        );
        let h = upstream_headers(&relay);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("x-api-key").as_deref(), Some(UPSTREAM_KEY));
        assert_eq!(get("anthropic-version").as_deref(), Some("2023-06-01"));
        assert_eq!(get("anthropic-beta").as_deref(), Some("tools-2024-05-16"));
        assert_no_client_key(&relay);

        // Gemini, both path families, key in x-goog-api-key or ?key=.
        for prefix in ["/v1beta/models", "/v1/models"] {
            let (method, query) = if stream {
                ("streamGenerateContent", "?alt=sse&key=")
            } else {
                ("generateContent", "?key=")
            };
            let url = d.url(&format!(
                "{prefix}/alpha/gemini-2.0-flash:{method}{query}{MASTER}"
            ));
            let resp = d
                .http
                .post(url)
                .json(&json!({"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(
                header(resp.headers(), "x-proxy-upstream-model"),
                "gemini-2.0-flash"
            );
            let text = resp.text().await.unwrap();
            assert!(
                said(&text).contains("Hello from gemini-2.0-flash"),
                "{text}"
            );
            if stream {
                assert!(
                    text.starts_with("data: "),
                    "SSE as the relay sent it: {text}"
                );
            }
            let h = upstream_headers(&relay);
            assert!(
                h.iter()
                    .any(|(k, v)| k == "x-goog-api-key" && v == UPSTREAM_KEY)
            );
            assert_no_client_key(&relay);
        }
    }
}

#[tokio::test]
async fn the_model_lists_show_what_the_key_may_use_in_each_sdks_shape() {
    let relay = relay(
        &[
            "gpt-4o-mini",
            "gemini-2.0-flash",
            "gpt-err500",
            "gpt-unprobed",
        ],
        0,
    )
    .await;
    let d = daemon_with(&[]).await;
    channel(
        &d,
        "alpha",
        &relay.base_url(),
        &["gpt-4o-mini", "gemini-2.0-flash", "gpt-err500"],
    )
    .await;
    wait_listed(&d, "gpt-4o-mini", true).await;
    let mut ids = model_ids(&d, MASTER).await;
    ids.sort();
    // The failing model is in neither form; the unprobed one only by channel/model.
    assert_eq!(
        ids,
        [
            "alpha/gemini-2.0-flash",
            "alpha/gpt-4o-mini",
            "alpha/gpt-unprobed",
            "gemini-2.0-flash",
            "gpt-4o-mini"
        ]
    );
    let (s, _, v) = d
        .send(
            reqwest::Method::GET,
            &format!("/v1beta/models?key={MASTER}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 200);
    let names: Vec<&str> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["models/alpha/gemini-2.0-flash", "models/gemini-2.0-flash"]
    );
    let (s, _, v) = d
        .send(
            reqwest::Method::GET,
            "/v1/models/alpha/gpt-4o-mini",
            Some(MASTER),
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["id"].as_str()),
        (200, Some("alpha/gpt-4o-mini"))
    );
    let (s, _, v) = d
        .send(
            reqwest::Method::GET,
            "/v1/chat/completions",
            Some(MASTER),
            None,
        )
        .await;
    assert_eq!(s, 405, "{v}");
    assert!(v["detail"].is_string(), "{v}");
    let (s, _, _) = d
        .send(reqwest::Method::GET, "/v1/models", Some("sk-wrong"), None)
        .await;
    assert_eq!(s, 401);
    let (s, _, v) = d.send(reqwest::Method::GET, "/v1/models", None, None).await;
    assert_eq!(s, 401);
    assert!(v["detail"].as_str().unwrap().contains("x-api-key"), "{v}");
}

#[tokio::test]
async fn upstream_errors_pass_through_with_the_channel_key_scrubbed() {
    let relay = relay(&["gpt-4o-mini", "gpt-err400", "gpt-err401"], 0).await;
    let d = daemon_with(&[]).await;
    let id = channel(&d, "alpha", &relay.base_url(), &["gpt-4o-mini"]).await;
    wait_listed(&d, "alpha/gpt-err401", true).await;

    let (s, h, text) = chat(&d, MASTER, &ask("alpha/gpt-err400"), &[]).await;
    assert_eq!(s, 400, "{text}");
    assert_eq!(header(&h, "x-proxy-target-id"), id.to_string());
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["error"]["type"], "invalid_request_error",
        "the relay's own body"
    );

    // The relay echoes the key it got (the channel's) in its 401: it never reaches
    // the client.
    let (s, _, text) = chat(&d, MASTER, &ask("alpha/gpt-err401"), &[]).await;
    assert_eq!(s, 401, "{text}");
    assert!(!text.contains(UPSTREAM_KEY), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
}

#[tokio::test]
async fn bodies_over_ten_mib_are_refused_with_413_and_never_sent() {
    let relay = relay(&["gpt-4o-mini"], 0).await;
    let d = daemon_with(&[]).await;
    channel(&d, "alpha", &relay.base_url(), &[]).await;
    let before = relay.requests();
    let big = "x".repeat(10 * 1024 * 1024 + 1);
    let (s, _, text) = chat(
        &d,
        MASTER,
        &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": big}]}),
        &[],
    )
    .await;
    assert_eq!(s, 413, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["detail"].as_str().unwrap().contains("10 MiB"), "{v}");
    assert_eq!(relay.requests(), before);
}

#[tokio::test]
async fn embeddings_go_to_channels_that_list_the_model_without_a_probe() {
    let relay_a = relay(&["gpt-4o-mini", "text-embedding-3-small"], 0).await;
    let relay_b = relay(&["gpt-4o-mini", "text-embedding-3-small"], 0).await;
    let d = daemon_with(&[]).await;
    // Probes cannot test embeddings: the channels probe only the chat model.
    let a = channel(&d, "alpha", &relay_a.base_url(), &["gpt-4o-mini"]).await;
    let b = channel(&d, "beta", &relay_b.base_url(), &["gpt-4o-mini"]).await;
    wait_listed(&d, "beta/text-embedding-3-small", true).await;

    let body = json!({"model": "text-embedding-3-small", "input": ["one", "two"]});
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..2 {
        let (s, h, t) = post(&d, "/v1/embeddings", MASTER, &body, &[]).await;
        assert_eq!(s, 200, "{t}");
        let v: Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2, "{t}");
        served.insert(header(&h, "x-proxy-target-id").to_string());
    }
    assert!(!served.is_empty());
    let (s, h, t) = post(
        &d,
        "/v1/embeddings",
        MASTER,
        &json!({"model": "beta/text-embedding-3-small", "input": "one"}),
        &[],
    )
    .await;
    assert_eq!(
        (s, header(&h, "x-proxy-target-id")),
        (200, b.to_string().as_str()),
        "{t}"
    );
    let sent = relay_b.received().last().unwrap().body_json().unwrap();
    assert_eq!(
        sent,
        json!({"model": "text-embedding-3-small", "input": "one"})
    );
    // Chat needs a passing probe: the unprobed embedding model is not a bare chat model.
    let (s, _, t) = chat(&d, MASTER, &ask("text-embedding-3-small"), &[]).await;
    assert_eq!(s, 503, "{t}");
    assert!(t.contains("not probed yet"), "{t}");
    let _ = a;
}
