//! The proxy's key check, as the forwarder calls it: keys in the Go program's format,
//! expiry, requests per minute and daily token budgets refusing with their status and
//! naming the limit, the master token, and unknown keys counted per client.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use apimond::service::proxy_keys::KeyRefusal;
use common::keys::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_key_in_the_go_programs_format_authenticates() {
    // The Go program stored the SHA-256 hex digest of the whole key and its first 12
    // characters; keys carried over from it look like this.
    let d = TestDaemon::start().await;
    let go_key = "sk-go-0123456789abcdefghijklmnopqrstuv";
    let fields = apimond::store::proxy_keys::ProxyKeyFields {
        name: "from-go".into(),
        description: String::new(),
        enabled: true,
        allowed_target_ids: vec![],
        allowed_models: vec![],
        expires_at: None,
        rpm_limit: None,
        daily_token_budget: None,
    };
    let record = d
        .core()
        .store
        .create_proxy_key(
            apimond::service::proxy_key_admin::key_digest(go_key).to_uppercase(),
            go_key[..12].into(),
            fields,
        )
        .await
        .unwrap()
        .unwrap();
    d.core()
        .proxy_keys
        .reload(&d.core().store, false)
        .await
        .unwrap();
    let grant = d.core().proxy_keys.authenticate(go_key, CLIENT).unwrap();
    assert_eq!(grant.key_id, Some(record.id));
    assert_eq!(grant.name, "from-go");
    let wrong = d
        .core()
        .proxy_keys
        .authenticate("sk-go-0123456789abcdefghijklmnopqrstuw", CLIENT);
    assert_eq!(wrong.unwrap_err(), KeyRefusal::Unknown);
}

#[tokio::test]
async fn expiry_rate_and_budget_refuse_with_their_status_and_name_the_limit() {
    let d = TestDaemon::start().await;
    let keys = &d.core().proxy_keys;

    let (_, rpm_key) = create_key(&d, json!({"name": "rpm", "rpm_limit": 2})).await;
    keys.authenticate(&rpm_key, CLIENT).unwrap();
    keys.authenticate(&rpm_key, CLIENT).unwrap();
    let r = keys.authenticate(&rpm_key, CLIENT).unwrap_err();
    assert_eq!(r.status(), 429);
    assert!(
        matches!(r, KeyRefusal::RateLimited { rpm_limit: 2, .. }),
        "{r:?}"
    );
    // One request every 30 s: the next is due within 30 s.
    let wait = r.retry_after_s().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    assert!(r.to_string().contains("2 requests per minute"), "{r}");

    let (budget_id, budget_key) =
        create_key(&d, json!({"name": "budget", "daily_token_budget": 100})).await;
    let grant = keys.authenticate(&budget_key, CLIENT).unwrap();
    keys.record(usage(grant.key_id, None, "gpt-4o", (60, 30)));
    keys.authenticate(&budget_key, CLIENT)
        .expect("90 of 100 tokens used");
    keys.record(usage(grant.key_id, None, "gpt-4o", (5, 5)));
    let r = keys.authenticate(&budget_key, CLIENT).unwrap_err();
    assert_eq!(r.status(), 429);
    assert!(r.to_string().contains("daily_token_budget"), "{r}");
    let renews = r.retry_after_s().unwrap();
    assert!(
        (1..=86_400).contains(&renews),
        "the budget renews at midnight UTC: {renews}"
    );
    let (_, v) = d
        .admin(Method::GET, &format!("/api/proxy/keys/{budget_id}"), None)
        .await;
    assert_eq!(
        v["item"]["usage_today"],
        json!({
            "requests": 2, "tokens": 100, "time_zone": "UTC",
            "day_start": v["item"]["usage_today"]["day_start"],
        })
    );
    // Raising the budget lets the key through again.
    d.admin(
        Method::PATCH,
        &format!("/api/proxy/keys/{budget_id}"),
        Some(&json!({"daily_token_budget": 1000})),
    )
    .await;
    keys.authenticate(&budget_key, CLIENT)
        .expect("budget raised");

    let (_, soon) = create_key(
        &d,
        json!({"name": "soon", "expires_at": apimond::store::now() + 1.0}),
    )
    .await;
    keys.authenticate(&soon, CLIENT).expect("not expired yet");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = keys.authenticate(&soon, CLIENT).unwrap_err();
    assert_eq!((r.clone(), r.status()), (KeyRefusal::Expired, 403));
    assert!(r.to_string().contains("expired"));
    let (_, v) = d.admin(Method::GET, "/api/proxy/keys", None).await;
    assert_eq!(v["items"][2]["status"], "expired", "{v}");
}

#[tokio::test]
async fn the_master_token_may_use_everything_and_unknown_keys_count_against_the_client() {
    let master = "proxy-master-token-0123456789";
    let mut env = STANDARD.to_vec();
    env.push(("PROXY_MASTER_TOKEN", master));
    let d = TestDaemon::start_with(&env).await;
    let keys = &d.core().proxy_keys;
    let g = keys.authenticate(master, CLIENT).unwrap();
    assert_eq!(g.key_id, None);
    assert!(g.allows_target(42) && g.allows_model("any", "model"));
    assert_eq!(keys.authenticate("", CLIENT).unwrap_err().status(), 401);

    let (_, good) = create_key(&d, json!({"name": "good"})).await;
    for _ in 0..10 {
        assert_eq!(
            keys.authenticate("sk-guess", CLIENT).unwrap_err(),
            KeyRefusal::Unknown
        );
    }
    let r = keys.authenticate("sk-guess", CLIENT).unwrap_err();
    assert!(matches!(r, KeyRefusal::TooManyFailures { .. }), "{r:?}");
    assert_eq!(r.status(), 429);
    // A valid key is never refused by the limit; another client is not limited.
    keys.authenticate(&good, CLIENT).expect("valid keys pass");
    keys.authenticate(master, CLIENT)
        .expect("the master token passes");
    let other: IpAddr = "127.0.0.8".parse().unwrap();
    assert_eq!(
        keys.authenticate("sk-guess", other).unwrap_err(),
        KeyRefusal::Unknown
    );
    // The API's tokens share the count: this client is limited there too.
    let (s, _, _) = send_with(
        &client_from("127.0.0.7"),
        Method::GET,
        &d.url("/api/targets"),
        Some("wrong-token-0000"),
        None,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_master_token_set_in_the_panel_works_at_once_and_can_be_cleared() {
    let d = TestDaemon::start().await;
    let keys = &d.core().proxy_keys;
    assert_eq!(
        keys.authenticate("panel-master-1234", CLIENT).unwrap_err(),
        KeyRefusal::Unknown
    );
    let (s, v) = d
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(&json!({"proxy_master_token": "panel-master-1234"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        keys.authenticate("panel-master-1234", CLIENT)
            .unwrap()
            .key_id,
        None
    );
    d.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(&json!({"proxy_master_token": ""})),
    )
    .await;
    assert!(keys.authenticate("panel-master-1234", CLIENT).is_err());
}

/// Over HTTP, on each of the proxy's endpoints: a wrong key counts against the address
/// the request came from (the generation endpoints are served before the router, which
/// must not lose it), and the limit then holds for that address only.
#[tokio::test]
async fn wrong_keys_sent_over_http_count_against_the_sending_address() {
    let d = TestDaemon::start_with(STANDARD).await;
    let guesser = client_from("127.0.0.21");
    let paths = [
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/messages",
        "/v1/embeddings",
        "/v1beta/models/m:generateContent",
    ];
    let body = json!({"model": "m", "messages": []});
    for i in 0..10 {
        let (s, text, _) = send_with(
            &guesser,
            Method::POST,
            &d.url(paths[i % paths.len()]),
            Some("sk-guess"),
            Some(&body),
            &[],
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "guess {i}: {text}");
    }
    for path in paths {
        let (s, text, _) = send_with(
            &guesser,
            Method::POST,
            &d.url(path),
            Some("sk-guess"),
            Some(&body),
            &[],
        )
        .await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{path}: {text}");
    }
    // Another address is not limited.
    let (s, _, _) = send_with(
        &client_from("127.0.0.22"),
        Method::POST,
        &d.url("/v1/chat/completions"),
        Some("sk-guess"),
        Some(&body),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
