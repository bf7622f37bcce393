//! A target read back and sent again, as the Go program's pages and scripts do: the
//! item exactly as GET answered it (masked key, read-only fields) changes nothing, each
//! field changed in it is stored, unknown fields are ignored and named, and a masked
//! key is never stored.

mod common;

use apimond::service::target_fields::READ_ONLY_FIELDS;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "sk-round-trip-original-key-0123456789";
const HEADER: &str = "header-secret-value-0123456789";

/// Every settable field away from its default.
fn full_body(name: &str, base_url: &str, key: &str) -> Value {
    json!({
        "name": name,
        "base_url": base_url,
        "api_key": key,
        "enabled": false,
        "interval_min": 17,
        "timeout_s": 21.5,
        "verify_ssl": false,
        "prompt": "Say hello.",
        "anthropic_version": "2024-10-22",
        "max_models": 40,
        "source_url": "https://relay.example.com/signup",
        "sort_order": 77,
        "visitor_channel_actions_enabled": true,
        "selected_models": ["gpt-4o"],
        "exclude_models": ["*embedding*"],
        "probe_mode": "plain",
        "check_mode": "prompt",
        "max_tokens": 300,
        "slow_ms": 4000,
        "extra_headers": {"x-relay-auth": HEADER},
        "user_agent": "round-trip/1.0",
        "route_overrides": [{"pattern": "gpt-4o*", "protocol": "openai"}],
    })
}

async fn item(d: &TestDaemon, id: i64) -> Value {
    let (s, v) = d
        .admin(Method::GET, &format!("/api/targets/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["item"].clone()
}

async fn patch(d: &TestDaemon, id: i64, body: &Value) -> (StatusCode, Value) {
    d.admin(Method::PATCH, &format!("/api/targets/{id}"), Some(body))
        .await
}

async fn revealed_key(d: &TestDaemon, id: i64) -> String {
    let (_, v) = d
        .admin(Method::POST, &format!("/api/targets/{id}/reveal_key"), None)
        .await;
    v["item"]["api_key"].as_str().unwrap().to_string()
}

/// The item without the one field a write always moves.
fn without_updated_at(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("updated_at");
    v
}

/// The fields a client may set: what a write can change.
fn settable(mut v: Value) -> Value {
    v.as_object_mut()
        .unwrap()
        .retain(|k, _| !READ_ONLY_FIELDS.contains(&k.as_str()));
    v
}

#[tokio::test]
async fn a_target_sent_back_exactly_as_read_changes_nothing_and_keeps_its_secrets() {
    let up = fake_upstream(&["gpt-4o"], 0).await;
    let d = TestDaemon::start().await;
    let (s, v) = d
        .admin(
            Method::POST,
            "/api/targets",
            Some(&full_body("relay", &up.base_url(), UPSTREAM_KEY)),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["item"]["id"].as_i64().unwrap();
    // A run fills last_* and latest_models; then credentials go into the URL (shown
    // masked) without running again.
    d.trigger(id).await;
    d.wait_run(id).await;
    let with_credentials = up.base_url().replace("http://", "http://user:pass@");
    let (s, v) = patch(&d, id, &json!({"base_url": with_credentials})).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let before = item(&d, id).await;
    assert_eq!(before["latest_models"].as_array().unwrap().len(), 1);
    assert!(before["last_run_at"].is_number());
    assert!(
        before["base_url"].as_str().unwrap().contains("***@"),
        "{before}"
    );
    assert!(before["api_key"].as_str().unwrap().contains('…'));

    let (s, v) = patch(&d, id, &before).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(
        v["ignored_fields"],
        json!([]),
        "read-only fields are not unknown"
    );
    let after = item(&d, id).await;
    assert_eq!(
        without_updated_at(after),
        without_updated_at(before.clone())
    );

    // The list item, history and all, goes back as well.
    let (_, list) = d.admin(Method::GET, "/api/targets", None).await;
    let (s, v) = patch(&d, id, &list["items"][0]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        without_updated_at(item(&d, id).await),
        without_updated_at(before)
    );

    // The secrets behind the masks are the ones first given.
    assert_eq!(revealed_key(&d, id).await, UPSTREAM_KEY);
    let stored = d.core().store.get_target(id).await.unwrap().unwrap();
    assert_eq!(stored.base_url, with_credentials);
    assert_eq!(stored.extra_headers["x-relay-auth"].expose(), HEADER);
}

#[tokio::test]
async fn each_target_field_changed_in_a_read_back_item_is_stored_and_read_back() {
    let d = TestDaemon::start().await;
    let (s, v) = d
        .admin(
            Method::POST,
            "/api/targets",
            Some(&full_body("relay", "http://127.0.0.1:9", KEY)),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["item"]["id"].as_i64().unwrap();
    let new_key = "sk-brand-new-key-abcdefghij-9876";
    let new_header = "new-header-value-abcdefghij";
    // field, value sent in the item, value the item shows afterwards
    let changes: Vec<(&str, Value, Value)> = vec![
        ("name", json!("renamed"), json!("renamed")),
        (
            "base_url",
            json!("http://127.0.0.1:10"),
            json!("http://127.0.0.1:10"),
        ),
        ("api_key", json!(new_key), json!("sk-br…9876")),
        ("enabled", json!(true), json!(true)),
        ("interval_min", json!(45), json!(45)),
        ("timeout_s", json!(42.5), json!(42.5)),
        ("verify_ssl", json!(true), json!(true)),
        ("prompt", json!("Another prompt"), json!("Another prompt")),
        (
            "anthropic_version",
            json!("2023-06-01"),
            json!("2023-06-01"),
        ),
        ("max_models", json!(7), json!(7)),
        (
            "source_url",
            json!("https://example.com/new"),
            json!("https://example.com/new"),
        ),
        ("source_url", Value::Null, Value::Null),
        ("sort_order", json!(9), json!(9)),
        (
            "visitor_channel_actions_enabled",
            json!(false),
            json!(false),
        ),
        ("selected_models", json!(["a", "b"]), json!(["a", "b"])),
        ("exclude_models", json!(["*x*"]), json!(["*x*"])),
        ("probe_mode", json!("both"), json!("both")),
        ("check_mode", json!("challenge"), json!("challenge")),
        ("max_tokens", json!(2048), json!(2048)),
        ("max_tokens", Value::Null, Value::Null),
        ("slow_ms", json!(2500), json!(2500)),
        (
            "extra_headers",
            json!({"x-new": new_header}),
            json!({"x-new": "new-h…ghij"}),
        ),
        ("user_agent", json!("agent/2.0"), json!("agent/2.0")),
        ("user_agent", Value::Null, Value::Null),
        (
            "route_overrides",
            json!([{"pattern": "x*", "protocol": "gemini"}]),
            json!([{"pattern": "x*", "protocol": "gemini"}]),
        ),
        ("client_profile", json!("plain"), json!("plain")),
        ("client_profile", json!("browser"), json!("browser")),
        (
            "proxy_url",
            json!("socks5://user:proxy-pass@127.0.0.1:1080"),
            json!("socks5://***@127.0.0.1:1080"),
        ),
        ("proxy_url", json!("direct"), json!("direct")),
        ("proxy_url", Value::Null, Value::Null),
    ];

    // Every field of the item is either read-only or changed here.
    let shown = item(&d, id).await;
    let mut uncovered: Vec<&String> = shown
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !READ_ONLY_FIELDS.contains(&k.as_str()))
        .filter(|k| !changes.iter().any(|c| c.0 == k.as_str()))
        .collect();
    uncovered.sort();
    assert_eq!(
        uncovered,
        Vec::<&String>::new(),
        "fields the test does not change"
    );

    for (field, sent, want) in &changes {
        let before = item(&d, id).await;
        let mut body = before.clone();
        body[*field] = sent.clone();
        let (s, v) = patch(&d, id, &body).await;
        assert_eq!(s, StatusCode::OK, "{field}: {v}");
        assert_eq!(v["ok"], true, "{field}");
        assert_eq!(v["item"][*field], *want, "{field} as answered");
        let after = item(&d, id).await;
        assert_eq!(after[*field], *want, "{field} read back");
        // No other field moved (a run the scheduler may start once the target is
        // enabled moves only read-only ones).
        let mut expected = before;
        expected[*field] = want.clone();
        assert_eq!(settable(after), settable(expected), "changing {field}");
    }
    assert_eq!(revealed_key(&d, id).await, new_key);
    let stored = d.core().store.get_target(id).await.unwrap().unwrap();
    assert_eq!(stored.extra_headers["x-new"].expose(), new_header);
}

#[tokio::test]
async fn unknown_fields_on_create_and_update_are_ignored_and_named() {
    let d = TestDaemon::start().await;
    let (s, v) = d
        .admin(
            Method::POST,
            "/api/targets",
            Some(&json!({
                "name": "relay", "base_url": "http://127.0.0.1:9", "api_key": KEY,
                "colour": "blue", "intervall_min": 5,
            })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ignored_fields"], json!(["colour", "intervall_min"]));
    assert_eq!(
        v["item"]["interval_min"], 30,
        "the misspelt field changed nothing"
    );
    assert!(v["item"].get("colour").is_none());
    let id = v["item"]["id"].as_i64().unwrap();

    let (s, v) = patch(&d, id, &json!({"interval_min": 20, "colour": "red"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ignored_fields"], json!(["colour"]));
    assert_eq!(v["item"]["interval_min"], 20);
    let (s, v) = patch(&d, id, &json!({"colour": "red"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ignored_fields"], json!(["colour"]));

    // A known field out of bounds is still refused, with nothing written.
    let (s, v) = patch(
        &d,
        id,
        &json!({"interval_min": 0, "name": "x", "colour": "red"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let after = item(&d, id).await;
    assert_eq!(
        (&after["interval_min"], &after["name"]),
        (&json!(20), &json!("relay"))
    );
    let (s, _) = patch(&d, id, &json!({})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "an empty body asks for nothing");
}

#[tokio::test]
async fn a_masked_key_is_never_stored() {
    let d = TestDaemon::start().await;
    let id = d.create_target("relay", KEY).await;
    let short = d.create_target("short", "sk-short-1").await;
    assert_eq!(item(&d, short).await["api_key"], "…****");

    // Sent back as shown: the key stays, for long and short keys alike.
    for (id, key) in [(id, KEY), (short, "sk-short-1")] {
        let shown = item(&d, id).await["api_key"].clone();
        let (s, v) = patch(&d, id, &json!({"api_key": shown})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(revealed_key(&d, id).await, key);
    }
    // Another key's mask, or the mask of this one edited, is refused.
    for masked in ["sk-ot…4321", "sk-ro…6789x", "…****"] {
        let (s, v) = patch(&d, id, &json!({"api_key": masked, "interval_min": 9})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{masked}: {v}");
        assert!(v["detail"].as_str().unwrap().starts_with("api_key:"), "{v}");
    }
    assert_eq!(revealed_key(&d, id).await, KEY);
    assert_eq!(item(&d, id).await["interval_min"], 30);
    // A new target cannot start from a mask.
    let (s, v) = d
        .admin(
            Method::POST,
            "/api/targets",
            Some(
                &json!({"name": "copy", "base_url": "http://127.0.0.1:9", "api_key": "sk-ro…6789"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (_, list) = d.admin(Method::GET, "/api/targets", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    // No stored key is a mask.
    for id in [id, short] {
        assert!(!revealed_key(&d, id).await.contains('…'));
    }
}

#[tokio::test]
async fn masked_header_values_and_proxy_credentials_are_never_stored() {
    let d = TestDaemon::start().await;
    let id = d.create_target("relay", KEY).await;
    let (s, v) = patch(
        &d,
        id,
        &json!({"extra_headers": {"x-auth": HEADER},
                "proxy_url": "socks5://bob:proxy-secret-77@127.0.0.1:1080"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let shown = item(&d, id).await;
    assert_eq!(shown["proxy_url"], "socks5://***@127.0.0.1:1080");

    // Another header's or another proxy's mask is refused, and nothing changes.
    for body in [
        json!({"extra_headers": {"x-auth": "other…mask"}, "interval_min": 9}),
        json!({"extra_headers": {"x-new": "…****"}, "interval_min": 9}),
        json!({"proxy_url": "socks5://***@127.0.0.1:1081", "interval_min": 9}),
    ] {
        let (s, v) = patch(&d, id, &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
    }
    let stored = d.core().store.get_target(id).await.unwrap().unwrap();
    assert_eq!(stored.extra_headers["x-auth"].expose(), HEADER);
    assert_eq!(stored.extra_headers.len(), 1);
    match &stored.proxy {
        shared::probe::ProxyChoice::Via(p) => {
            assert_eq!(p.expose(), "socks5://bob:proxy-secret-77@127.0.0.1:1080")
        }
        other => panic!("the proxy stays: {other:?}"),
    }
    assert_eq!(item(&d, id).await["interval_min"], 30);

    // Sent back exactly as shown, both stay.
    let (s, v) = patch(
        &d,
        id,
        &json!({"extra_headers": shown["extra_headers"], "proxy_url": shown["proxy_url"]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let stored = d.core().store.get_target(id).await.unwrap().unwrap();
    assert_eq!(stored.extra_headers["x-auth"].expose(), HEADER);
}
