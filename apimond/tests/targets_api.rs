//! The targets API end to end: CRUD, validation bounds, conflicts, unknown ids, body
//! limits, reorder and the key reveal, against a real daemon over loopback HTTP.
//! One file per API surface, so a reader finds every pinned behaviour of the targets
//! API in one place.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn a_target_round_trips_through_create_read_update_and_delete() {
    let d = TestDaemon::start().await;
    let (s, created) = d
        .admin(
            Method::POST,
            "/api/targets",
            Some(&json!({
                "name": "relay-one",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": "sk-round-trip-key-0000000001",
                "interval_min": 15,
                "timeout_s": 12.5,
                "selected_models": ["gpt-4o", "claude-3-5-sonnet", "gpt-4o"],
                "source_url": "https://relay.example.com/signup",
            })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{created}");
    let item = &created["item"];
    let id = item["id"].as_i64().unwrap();
    assert_eq!(item["name"], "relay-one");
    assert_eq!(item["interval_min"], 15);
    assert_eq!(item["timeout_s"], 12.5);
    assert_eq!(item["enabled"], true);
    assert_eq!(item["verify_ssl"], true);
    assert_eq!(item["anthropic_version"], "2023-06-01");
    assert_eq!(item["api_key"], "sk-ro…0001", "admins see a masked key");
    assert_eq!(
        item["selected_models"],
        json!(["gpt-4o", "claude-3-5-sonnet"])
    );
    assert_eq!(item["sort_order"], 1);
    assert!(item["created_at"].as_f64().unwrap() > 1.7e9);

    let (s, got) = d
        .admin(Method::GET, &format!("/api/targets/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(item["latest_models"], json!([]), "not probed yet");
    assert_eq!(
        got["item"], *item,
        "create answers with the item as GET shows it"
    );

    let (s, list) = d.admin(Method::GET, "/api/targets", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["permissions"]["role"], "admin");
    assert_eq!(list["items"][0]["can_operate"], true);
    assert_eq!(list["items"][0]["running"], false);

    let (s, patched) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{id}"),
            Some(&json!({"name": "relay-renamed", "enabled": false, "source_url": null, "max_tokens": 512})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["ok"], true);
    assert_eq!(patched["item"]["name"], "relay-renamed");
    assert_eq!(patched["item"]["enabled"], false);
    assert_eq!(patched["item"]["source_url"], Value::Null);
    assert_eq!(patched["item"]["max_tokens"], 512);
    assert_eq!(patched["item"]["interval_min"], 15, "untouched fields stay");
    assert!(patched["item"]["updated_at"].as_f64() >= item["updated_at"].as_f64());

    let (s, del) = d
        .admin(Method::DELETE, &format!("/api/targets/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(del["ok"], true);
    let (s, _) = d
        .admin(Method::GET, &format!("/api/targets/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

fn long(n: usize, c: char) -> String {
    std::iter::repeat_n(c, n).collect()
}

#[tokio::test]
async fn every_bound_is_enforced_and_a_rejected_request_writes_nothing() {
    let d = TestDaemon::start().await;
    let id = d
        .create_target("bounded", "sk-bounded-key-000000000001")
        .await;
    let (_, before) = d.admin(Method::GET, "/api/targets", None).await;

    let base = || json!({"name": "new-one", "base_url": "http://127.0.0.1:9", "api_key": "sk-new"});
    // (field, bad value, words the detail must contain)
    let bad: Vec<(&str, Value, &str)> = vec![
        ("name", json!(""), "name: must be 1 to 128 characters"),
        (
            "name",
            json!(long(129, 'é')),
            "name: must be 1 to 128 characters, got 129",
        ),
        ("name", json!(42), "name: must be a string"),
        (
            "base_url",
            json!("ab"),
            "base_url: must be 3 to 512 characters",
        ),
        (
            "base_url",
            json!(format!("https://{}.com", long(510, 'a'))),
            "base_url: must be 3 to 512",
        ),
        (
            "base_url",
            json!("ftp://relay.example.com"),
            "base_url: must be an http",
        ),
        ("base_url", json!("not a url"), "base_url: not a valid URL"),
        (
            "api_key",
            json!(""),
            "api_key: must be 1 to 2048 characters",
        ),
        (
            "api_key",
            json!(long(2049, 'k')),
            "api_key: must be 1 to 2048 characters",
        ),
        (
            "api_key",
            json!("sk with space"),
            "api_key: must be printable ASCII",
        ),
        (
            "interval_min",
            json!(0),
            "interval_min: must be an integer from 1 to 1440",
        ),
        (
            "interval_min",
            json!(1441),
            "interval_min: must be an integer from 1 to 1440",
        ),
        (
            "interval_min",
            json!(2.5),
            "interval_min: must be an integer",
        ),
        (
            "interval_min",
            json!("5"),
            "interval_min: must be an integer",
        ),
        (
            "timeout_s",
            json!(2.9),
            "timeout_s: must be a number from 3.0 to 300.0",
        ),
        (
            "timeout_s",
            json!(300.1),
            "timeout_s: must be a number from 3.0 to 300.0",
        ),
        (
            "max_models",
            json!(-1),
            "max_models: must be an integer from 0 to 5000",
        ),
        (
            "max_models",
            json!(5001),
            "max_models: must be an integer from 0 to 5000",
        ),
        (
            "sort_order",
            json!(0),
            "sort_order: must be an integer from 1 to 1000000",
        ),
        (
            "sort_order",
            json!(1_000_001),
            "sort_order: must be an integer from 1 to 1000000",
        ),
        ("prompt", json!(""), "prompt: must be 1 to 4000 characters"),
        (
            "prompt",
            json!(long(4001, '字')),
            "prompt: must be 1 to 4000 characters, got 4001",
        ),
        (
            "anthropic_version",
            json!("abc"),
            "anthropic_version: must be 4 to 64 characters",
        ),
        (
            "anthropic_version",
            json!(long(65, '1')),
            "anthropic_version: must be 4 to 64 characters",
        ),
        (
            "source_url",
            json!(long(1025, 'u')),
            "source_url: must be 1 to 1024 characters",
        ),
        (
            "verify_ssl",
            json!("yes"),
            "verify_ssl: must be true or false",
        ),
        ("enabled", json!(1), "enabled: must be true or false"),
        (
            "visitor_channel_actions_enabled",
            json!(null),
            "visitor_channel_actions_enabled: must be true or false",
        ),
        (
            "selected_models",
            json!("gpt-4o"),
            "selected_models: must be a list of strings",
        ),
        (
            "selected_models",
            json!(vec!["m"; 5001]),
            "selected_models: at most 5000 items",
        ),
        (
            "selected_models",
            json!([long(257, 'm')]),
            "selected_models[0]: must be 1 to 256 characters",
        ),
        (
            "selected_models",
            json!(["ok", 3]),
            "selected_models[1]: must be a string",
        ),
        (
            "probe_mode",
            json!("sometimes"),
            "probe_mode: must be one of stream, plain, both",
        ),
        (
            "check_mode",
            json!("vibes"),
            "check_mode: must be one of challenge, prompt",
        ),
        (
            "max_tokens",
            json!(8),
            "max_tokens: must be an integer from 16 to 65536",
        ),
        (
            "slow_ms",
            json!(50),
            "slow_ms: must be an integer from 100 to 600000",
        ),
        (
            "extra_headers",
            json!({"bad header": "x"}),
            "extra_headers: `bad header` is not a valid header name",
        ),
        (
            "extra_headers",
            json!({"x-a": "line\nbreak"}),
            "extra_headers.x-a: must be at most 1024",
        ),
    ];
    for (field, value, want) in &bad {
        let mut create = base();
        create[*field] = value.clone();
        let (s, v) = d.admin(Method::POST, "/api/targets", Some(&create)).await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "create with {field}={value}: {v}"
        );
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail.contains(want),
            "create {field}: `{detail}` lacks `{want}`"
        );

        // A valid field beside the bad one must not be written either.
        let patch = json!({ *field: value.clone(), "user_agent": "companion-change" });
        let (s, v) = d
            .admin(Method::PATCH, &format!("/api/targets/{id}"), Some(&patch))
            .await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "patch with {field}={value}: {v}"
        );
    }
    for missing in ["name", "base_url", "api_key"] {
        let mut create = base();
        create.as_object_mut().unwrap().remove(missing);
        let (s, v) = d.admin(Method::POST, "/api/targets", Some(&create)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["detail"], format!("{missing}: required"));
    }
    // Bodies that are not a JSON object.
    for raw in ["", "{", "[1,2]", "\"text\"", "{\"name\": }"] {
        let resp = d
            .http
            .post(d.url("/api/targets"))
            .bearer_auth(ADMIN_TOKEN)
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "body {raw:?}");
        let v: Value = resp.json().await.unwrap();
        assert!(v["detail"].is_string());
    }
    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{id}"),
            Some(&json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    let (_, after) = d.admin(Method::GET, "/api/targets", None).await;
    assert_eq!(before, after, "no rejected request changed anything");
}

#[tokio::test]
async fn lengths_are_counted_in_characters_not_bytes() {
    let d = TestDaemon::start().await;
    let name = long(128, '渠');
    let (s, v) = d
        .admin(
            Method::POST,
            "/api/targets",
            Some(&json!({"name": name, "base_url": "http://127.0.0.1:9", "api_key": "k", "prompt": long(4000, '字')})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["item"]["name"], name);
}

#[tokio::test]
async fn a_duplicate_name_is_a_conflict_on_create_and_rename() {
    let d = TestDaemon::start().await;
    d.create_target("taken", "sk-key-a-00000000000000").await;
    let other = d.create_target("free", "sk-key-b-00000000000000").await;
    let (s, v) = d
        .admin(
            Method::POST,
            "/api/targets",
            Some(&json!({"name": "taken", "base_url": "http://127.0.0.1:9", "api_key": "k2"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["detail"], "a target named `taken` already exists");
    let (s, _) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{other}"),
            Some(&json!({"name": "taken"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, v) = d
        .admin(Method::GET, &format!("/api/targets/{other}"), None)
        .await;
    assert_eq!(v["item"]["name"], "free");
}

#[tokio::test]
async fn unknown_ids_are_404_with_a_detail() {
    let d = TestDaemon::start().await;
    for (method, path) in [
        (Method::GET, "/api/targets/999"),
        (Method::PATCH, "/api/targets/999"),
        (Method::DELETE, "/api/targets/999"),
        (Method::POST, "/api/targets/999/reveal_key"),
        (Method::GET, "/api/targets/999/runs"),
        (Method::GET, "/api/targets/999/logs"),
        (Method::GET, "/api/targets/-1"),
        (Method::PATCH, "/api/admin/channels/999/advanced"),
        (Method::GET, "/api/no-such-thing"),
    ] {
        let body = json!({"max_models": 5});
        let (s, v) = d.admin(method.clone(), path, Some(&body)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {v}");
        assert!(v["detail"].is_string(), "{method} {path}: {v}");
    }
}

#[tokio::test]
async fn bodies_over_two_mebibytes_are_refused_with_413_and_a_full_selection_fits() {
    let d = TestDaemon::start().await;
    let id = d.create_target("big", "sk-big-0000000000000000").await;
    let huge = json!({"prompt": long(2 * 1024 * 1024 + 10, 'x')});
    let (s, _, v) = d
        .send(
            Method::PATCH,
            &format!("/api/targets/{id}"),
            Some(ADMIN_TOKEN),
            Some(&huge),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["detail"], "request body is larger than 2 MiB");

    let models: Vec<String> = (0..5000)
        .map(|i| format!("{i:05}-{}", long(250, 'm')))
        .collect();
    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{id}"),
            Some(&json!({"selected_models": models})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["item"]["selected_models"].as_array().unwrap().len(), 5000);
}

#[tokio::test]
async fn reorder_sets_many_sort_orders_at_once_or_none() {
    let d = TestDaemon::start().await;
    let a = d.create_target("a", "sk-a-000000000000000000").await;
    let b = d.create_target("b", "sk-b-000000000000000000").await;
    let c = d.create_target("c", "sk-c-000000000000000000").await;
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, v) = d
        .admin(
            Method::POST,
            "/api/targets/reorder",
            Some(&json!({"ids": [c, a, b]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, list) = d.admin(Method::GET, "/api/targets", None).await;
    assert_eq!(names(&list), ["c", "a", "b"]);

    let (s, _) = d
        .admin(
            Method::POST,
            "/api/targets/reorder",
            Some(&json!({"items": [{"id": b, "sort_order": 1}, {"id": c, "sort_order": 50}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, list) = d.admin(Method::GET, "/api/targets", None).await;
    assert_eq!(names(&list), ["b", "a", "c"]);

    // An unknown id anywhere rolls the whole request back.
    let (s, v) = d
        .admin(
            Method::POST,
            "/api/targets/reorder",
            Some(&json!({"ids": [a, 424242, b]})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (_, after) = d.admin(Method::GET, "/api/targets", None).await;
    assert_eq!(names(&after), ["b", "a", "c"]);
    for bad in [
        json!({}),
        json!({"ids": [a, a]}),
        json!({"ids": "a"}),
        json!({"items": [{"id": a}]}),
    ] {
        let (s, _) = d
            .admin(Method::POST, "/api/targets/reorder", Some(&bad))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn only_the_reveal_call_returns_the_whole_key() {
    let d = TestDaemon::start().await;
    let key = "sk-reveal-me-0123456789abcdef";
    let id = d.create_target("secret", key).await;
    let (_, raw, _) = d
        .send(Method::GET, "/api/targets", Some(ADMIN_TOKEN), None)
        .await;
    assert!(!raw.contains(key));
    let (s, v) = d
        .admin(Method::POST, &format!("/api/targets/{id}/reveal_key"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["item"]["api_key"], key);
    let (s, _, _) = d
        .send(
            Method::POST,
            &format!("/api/targets/{id}/reveal_key"),
            Some(VISITOR_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn runs_and_logs_of_a_new_target_are_empty_lists_in_the_seed_shape() {
    let d = TestDaemon::start().await;
    let id = d.create_target("fresh", "sk-fresh-000000000000000").await;
    let (s, v) = d
        .admin(
            Method::GET,
            &format!("/api/targets/{id}/runs?limit=200"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"], json!([]));
    assert_eq!(v["target"]["id"], id);
    let (s, v) = d
        .admin(Method::GET, &format!("/api/targets/{id}/logs"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"], json!([]));
    assert_eq!(v["count"], 0);
    assert_eq!(v["run"], Value::Null);
    let (s, _) = d
        .admin(
            Method::GET,
            &format!("/api/targets/{id}/runs?limit=201"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = d
        .admin(
            Method::GET,
            &format!("/api/targets/{id}/logs?scope=some"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = d
        .admin(
            Method::GET,
            &format!("/api/targets/{id}/logs?run_id=77"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_advanced_form_changes_only_its_fields() {
    let d = TestDaemon::start().await;
    let id = d.create_target("adv", "sk-adv-00000000000000000").await;
    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/admin/channels/{id}/advanced"),
            Some(&json!({"verify_ssl": false, "max_models": 7, "prompt": "hi", "probe_mode": "both"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["item"]["verify_ssl"], false);
    assert_eq!(v["item"]["max_models"], 7);
    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/admin/channels/{id}/advanced"),
            Some(&json!({"name": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("name: not an advanced field")
    );
    let (s, v) = d.admin(Method::GET, "/api/admin/channels", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"][0]["name"], "adv");
}

#[tokio::test]
async fn dashboard_and_health_count_targets() {
    let d = TestDaemon::start().await;
    d.create_target("one", "sk-one-00000000000000000").await;
    let two = d.create_target("two", "sk-two-00000000000000000").await;
    d.admin(
        Method::PATCH,
        &format!("/api/targets/{two}"),
        Some(&json!({"enabled": false})),
    )
    .await;
    let (s, v) = d.admin(Method::GET, "/api/dashboard", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["total_targets"], 2);
    assert_eq!(v["enabled_targets"], 1);
    assert_eq!(v["running_targets"], 0);
    for k in ["healthy", "degraded", "down_or_error"] {
        assert_eq!(v[k], 0, "{k}");
    }
    let (s, _, v) = d.send(Method::GET, "/api/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], true);
    assert_eq!(v["running_targets"], json!([]));
}
