//! Streams pass through as they arrive: not buffered, cancelled upstream the moment
//! the client leaves, cut by the first-byte and idle limits, and never retried once a
//! byte reached the client.

mod common;
#[path = "common/forwarding.rs"]
mod forwarding;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use forwarding::*;
use serde_json::json;
use testkit::{Failure, Outcome};

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn stream_ask(model: &str) -> serde_json::Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "Say hello"}]})
}

async fn open_stream(d: &apimond::testing::TestDaemon, model: &str) -> reqwest::Response {
    let resp = d
        .http
        .post(d.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&stream_ask(model))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp
}

#[tokio::test]
async fn a_stream_reaches_the_client_event_by_event() {
    let relay = relay(&["gpt-4o-mini"], 0).await;
    let d = daemon_with(&[]).await;
    channel(&d, "alpha", &relay.base_url(), &[]).await;
    wait_listed(&d, "gpt-4o-mini", true).await;
    relay.set_event_gap("gpt-4o-mini", Some(Duration::from_millis(300)));
    relay.clear_received();

    let mut resp = open_stream(&d, "gpt-4o-mini").await;
    let first = resp.chunk().await.unwrap().expect("a first event");
    let first_at = unix_now();
    assert!(first.starts_with(b"data: "), "{first:?}");
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    let rec = relay.received_for("gpt-4o-mini").pop().unwrap();
    let last_sent = *rec.events_sent_at.last().unwrap();
    assert!(rec.events_sent_at.len() >= 4, "{:?}", rec.events_sent_at);
    assert!(
        first_at + 0.6 < last_sent,
        "the first event arrived at {first_at}, the last was sent at {last_sent}: buffered"
    );
    // Nothing added: what the client got is what the relay sent.
    let mut all = first.to_vec();
    all.extend_from_slice(&rest);
    let text = String::from_utf8(all).unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(!text.contains("\n:"), "no comments added: {text}");
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_upstream_at_once() {
    let relay = relay(&["gpt-4o-mini"], 0).await;
    let d = daemon_with(&[]).await;
    channel(&d, "alpha", &relay.base_url(), &[]).await;
    wait_listed(&d, "gpt-4o-mini", true).await;
    relay.set_event_gap("gpt-4o-mini", Some(Duration::from_millis(500)));
    relay.clear_received();

    let mut resp = open_stream(&d, "gpt-4o-mini").await;
    resp.chunk().await.unwrap().expect("a first event");
    let left = Instant::now();
    drop(resp);
    loop {
        let rec = relay.received_for("gpt-4o-mini").pop().unwrap();
        if rec.outcome == Outcome::HungUp {
            break;
        }
        assert!(
            left.elapsed() < Duration::from_millis(1500),
            "the relay never saw the hang-up: {:?}",
            rec.outcome
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_first_byte_and_idle_limits_cut_a_silent_upstream() {
    let relay = relay(&["gpt-4o-mini", "gpt-roleonlyhang", "gpt-hang"], 0).await;
    let d = daemon_with(&[
        ("PROXY_FIRST_BYTE_TIMEOUT_S", "1"),
        ("PROXY_IDLE_TIMEOUT_S", "1"),
    ])
    .await;
    channel(&d, "alpha", &relay.base_url(), &["gpt-4o-mini"]).await;
    wait_listed(&d, "alpha/gpt-hang", true).await;

    // No headers within the first-byte limit: 504 (one channel, nothing to fail over to).
    let t = Instant::now();
    let (s, _, text) = chat(&d, MASTER, &ask("alpha/gpt-hang"), &[]).await;
    assert_eq!(s, 504, "{text}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    // Headers and an opening, then silence: the body is cut after the idle limit.
    let t = Instant::now();
    let mut resp = open_stream(&d, "alpha/gpt-roleonlyhang").await;
    let mut got = Vec::new();
    let ended = loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => break "end",
            Err(_) => break "error",
        }
    };
    assert_eq!(ended, "error", "a cut stream is not a complete one");
    assert!(!got.is_empty(), "the opening was passed on");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[tokio::test]
async fn an_answer_that_breaks_after_its_first_byte_is_not_retried() {
    let relay_a = relay(&["gpt-4o-mini"], 0).await;
    let relay_b = relay(&["gpt-4o-mini"], 0).await;
    let d = daemon_with(&[]).await;
    let a = channel(&d, "alpha", &relay_a.base_url(), &[]).await;
    channel(&d, "beta", &relay_b.base_url(), &[]).await;
    wait_listed(&d, "beta/gpt-4o-mini", true).await;
    relay_a.set_failure("gpt-4o-mini", Some(Failure::ErrorAfterFirstByte));

    // Equal channels take turns, so within two requests alpha answers first once.
    let mut hit = false;
    for _ in 0..4 {
        relay_b.clear_received();
        let mut resp = open_stream(&d, "gpt-4o-mini").await;
        let target = header(resp.headers(), "x-proxy-target-id").to_string();
        let mut broke = false;
        loop {
            match resp.chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    broke = true;
                    break;
                }
            }
        }
        if target == a.to_string() {
            hit = true;
            assert!(broke, "alpha's cut stream reached the client as it was");
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(
                relay_b.received().is_empty(),
                "retried on beta after the first byte"
            );
            break;
        }
    }
    assert!(hit, "alpha never answered first");
}

#[tokio::test]
async fn a_client_that_leaves_before_any_header_cancels_the_upstream_too() {
    let relay = relay(&["gpt-4o-mini"], 0).await;
    let d = daemon_with(&[]).await;
    channel(&d, "alpha", &relay.base_url(), &[]).await;
    wait_listed(&d, "gpt-4o-mini", true).await;
    relay.set_failure("gpt-4o-mini", Some(Failure::HangBeforeHeaders));
    relay.clear_received();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let sent = impatient
        .post(d.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&ask("gpt-4o-mini"))
        .send()
        .await;
    assert!(sent.is_err(), "the client gave up");
    let left = Instant::now();
    loop {
        let rec = relay.received_for("gpt-4o-mini").pop().unwrap();
        if rec.outcome == Outcome::HungUp {
            break;
        }
        assert!(
            left.elapsed() < Duration::from_secs(2),
            "the upstream request outlived its client: {:?}",
            rec.outcome
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
