//! Routing: refusals that say why, `channel/model` and pinning, load spread among equal
//! channels, failover from a channel that cannot be reached, and the circuit breaker
//! that keeps it out until a trial succeeds.

mod common;
#[path = "common/forwarding.rs"]
mod forwarding;

use std::time::{Duration, Instant};

use forwarding::*;
use reqwest::Method;
use serde_json::{Value, json};

fn detail(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    v["detail"].as_str().unwrap_or(text).to_string()
}

#[tokio::test]
async fn a_model_without_a_working_channel_is_refused_saying_why() {
    let relay = relay(&["gpt-4o-mini", "gpt-err500", "gpt-unprobed"], 0).await;
    let d = daemon_with(&[]).await;
    let id = channel(
        &d,
        "alpha",
        &relay.base_url(),
        &["gpt-4o-mini", "gpt-err500"],
    )
    .await;
    wait_listed(&d, "gpt-4o-mini", true).await;
    let before = relay.requests();

    let (s, _, t) = chat(&d, MASTER, &ask("gpt-unprobed"), &[]).await;
    assert_eq!(s, 503, "{t}");
    assert!(detail(&t).contains("alpha: not probed yet"), "{t}");

    for model in ["gpt-err500", "alpha/gpt-err500"] {
        let (s, _, t) = chat(&d, MASTER, &ask(model), &[]).await;
        assert_eq!(s, 503, "{t}");
        assert!(
            detail(&t).contains("failed its latest probe (upstream_5xx)"),
            "{model}: {t}"
        );
    }
    let (s, _, t) = chat(&d, MASTER, &ask("gpt-nowhere"), &[]).await;
    assert_eq!(s, 404, "{t}");
    assert!(
        detail(&t).contains("no channel lists model gpt-nowhere"),
        "{t}"
    );
    let (s, _, t) = chat(&d, MASTER, &ask("alpha/gpt-nowhere"), &[]).await;
    assert_eq!(s, 404, "{t}");
    assert!(
        detail(&t).contains("channel alpha does not list model gpt-nowhere"),
        "{t}"
    );
    let (s, _, t) = chat(&d, MASTER, &json!({"messages": []}), &[]).await;
    assert_eq!(s, 400, "{t}");
    assert!(detail(&t).contains("model: required"), "{t}");
    let (s, _, t) = chat(&d, "sk-not-a-key", &ask("gpt-4o-mini"), &[]).await;
    assert_eq!(s, 401, "{t}");
    assert_eq!(
        relay.requests(),
        before,
        "no refused request reached the relay"
    );

    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{id}"),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    wait_listed(&d, "gpt-4o-mini", false).await;
    let (s, _, t) = chat(&d, MASTER, &ask("gpt-4o-mini"), &[]).await;
    assert_eq!(s, 503, "{t}");
    assert!(detail(&t).contains("alpha: channel disabled"), "{t}");
    assert_eq!(relay.requests(), before);
}

#[tokio::test]
async fn channels_are_pinned_by_header_or_query_and_equals_share_the_load() {
    let relay = relay(&["gpt-4o-mini"], 0).await;
    let d = daemon_with(&[]).await;
    let a = channel(&d, "alpha", &relay.base_url(), &[]).await;
    let b = channel(&d, "beta", &relay.base_url(), &[]).await;
    wait_listed(&d, "beta/gpt-4o-mini", true).await;

    let (s, h, t) = chat(
        &d,
        MASTER,
        &ask("gpt-4o-mini"),
        &[("X-Target-Id", &b.to_string())],
    )
    .await;
    assert_eq!(
        (s, header(&h, "x-proxy-target-id")),
        (200, b.to_string().as_str()),
        "{t}"
    );
    let path = format!("/v1/chat/completions?target_id={a}");
    let (s, h, t) = post(&d, &path, MASTER, &ask("gpt-4o-mini"), &[]).await;
    assert_eq!(
        (s, header(&h, "x-proxy-target-id")),
        (200, a.to_string().as_str()),
        "{t}"
    );
    let (s, _, t) = chat(
        &d,
        MASTER,
        &ask("alpha/gpt-4o-mini"),
        &[("X-Target-Id", &b.to_string())],
    )
    .await;
    assert_eq!(s, 400, "{t}");
    let (s, _, t) = chat(&d, MASTER, &ask("gpt-4o-mini"), &[("X-Target-Id", "abc")]).await;
    assert_eq!(s, 400, "{t}");
    let (s, _, t) = chat(&d, MASTER, &ask("gpt-4o-mini"), &[("X-Target-Id", "999")]).await;
    assert_eq!(s, 404, "{t}");

    // Both passed their probe with near-equal TTFT: they take turns.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (s, h, t) = chat(&d, MASTER, &ask("gpt-4o-mini"), &[]).await;
        assert_eq!(s, 200, "{t}");
        seen.insert(header(&h, "x-proxy-target-id").to_string());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// A port nothing listens on.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

async fn breakers(d: &apimond::testing::TestDaemon) -> Vec<Value> {
    let (s, v) = d.admin(Method::GET, "/api/proxy/breakers", None).await;
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_unreachable_channel_fails_over_trips_its_breaker_and_recovers_after_a_trial() {
    let relay_a = relay(&["gpt-4o-mini"], 0).await;
    let relay_b = relay(&["gpt-4o-mini"], 0).await;
    let d = daemon_with(&[("PROXY_BREAKER_COOLDOWN_S", "1")]).await;
    let a = channel(&d, "alpha", &relay_a.base_url(), &[]).await;
    let b = channel(&d, "beta", &relay_b.base_url(), &[]).await;
    wait_listed(&d, "beta/gpt-4o-mini", true).await;
    let mut events = d.events(Some(apimond::testing::ADMIN_TOKEN)).await;

    // Alpha's relay goes away (its probe result still says it works).
    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{a}"),
            Some(&json!({"base_url": dead_url()})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..8 {
        let (s, h, t) = chat(&d, MASTER, &ask("gpt-4o-mini"), &[]).await;
        assert_eq!(s, 200, "every request is served: {t}");
        assert_eq!(header(&h, "x-proxy-target-id"), b.to_string());
    }
    let open = breakers(&d).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["target_id"], a);
    assert_eq!(open[0]["state"], "open");
    assert_eq!(open[0]["model"], "gpt-4o-mini");
    let ev = events.until("breaker_changed", 5).await.pop().unwrap().1;
    assert_eq!(
        (ev["target_id"].as_i64(), ev["state"].as_str()),
        (Some(a), Some("open"))
    );
    // Routing keeps it out while open: alpha/… names it and is refused.
    let (s, _, t) = chat(&d, MASTER, &ask("alpha/gpt-4o-mini"), &[]).await;
    assert_eq!(s, 503, "{t}");
    assert!(detail(&t).contains("circuit breaker open"), "{t}");

    // The relay is back: after the cooldown a trial request goes through and closes it.
    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{a}"),
            Some(&json!({"base_url": relay_a.base_url()})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, h, t) = chat(&d, MASTER, &ask("gpt-4o-mini"), &[]).await;
        assert_eq!(s, 200, "{t}");
        if header(&h, "x-proxy-target-id") == a.to_string() {
            break;
        }
        assert!(Instant::now() < deadline, "alpha never got a trial");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(breakers(&d).await.is_empty());
    let ev = events.until("breaker_changed", 5).await.pop().unwrap().1;
    assert_eq!(ev["state"], "half_open");
    let ev = events.until("breaker_changed", 5).await.pop().unwrap().1;
    assert_eq!(ev["state"], "closed");
}
