//! Proxy keys and usage, as an admin manages them over HTTP and the control socket and
//! as the proxy's key check sees them: secrets shown once, limits that refuse with the
//! right status, usage written in batches, rolled up and pruned.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use apimond::service::proxy_keys::{KeyRefusal, ProxyEndpoint, ProxyUsage};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The client the key checks below come from; a loopback address, so the API can be
/// called from it too.
const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 7));

async fn create_key(d: &TestDaemon, body: Value) -> (i64, String) {
    let (s, v) = d.admin(Method::POST, "/api/proxy/keys", Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (
        v["item"]["id"].as_i64().unwrap(),
        v["proxy_key"].as_str().unwrap().to_string(),
    )
}

fn usage(
    key_id: Option<i64>,
    target_id: Option<i64>,
    model: &str,
    tokens: (u64, u64),
) -> ProxyUsage {
    ProxyUsage {
        at: apimond::store::now(),
        key_id,
        target_id,
        requested_model: model.into(),
        upstream_model: Some(model.rsplit('/').next().unwrap().into()),
        endpoint: ProxyEndpoint::Chat,
        stream: false,
        status: 200,
        attempts: 1,
        ttfb_ms: Some(5.0),
        ttft_ms: None,
        total_ms: 10.0,
        input_tokens: Some(tokens.0),
        output_tokens: Some(tokens.1),
        tokens_estimated: false,
        error_class: None,
    }
}

/// Waits until the usage API counts `n` requests for the query.
async fn wait_usage(d: &TestDaemon, query: &str, n: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = d
            .admin(Method::GET, &format!("/api/proxy/usage?{query}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["totals"]["requests"] == n {
            return v;
        }
        assert!(Instant::now() < deadline, "usage never reached {n}: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_key_is_created_listed_patched_and_revoked_and_its_secret_is_shown_once() {
    let d = TestDaemon::start().await;
    let target = d
        .create_target("relay-a", "sk-channel-key-0123456789")
        .await;
    let (s, v) = d
        .admin(
            Method::POST,
            "/api/proxy/keys",
            Some(&json!({
                "name": "ci", "description": "for CI",
                "allowed_target_ids": [target], "allowed_models": ["relay-a/gpt-4o"],
            })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let secret = v["proxy_key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("sk-") && secret.len() >= 35, "{secret}");
    let item = &v["item"];
    let id = item["id"].as_i64().unwrap();
    assert_eq!(item["key_prefix"], secret[..12]);
    for field in [
        "id",
        "name",
        "key_prefix",
        "allowed_target_ids",
        "allowed_models",
        "description",
        "enabled",
        "created_at",
        "revoked_at",
        "last_used_at",
        "last_used_target_id",
    ] {
        assert!(
            item.get(field).is_some(),
            "seed field {field} missing: {item}"
        );
    }
    assert_eq!(item["status"], "active");
    assert_eq!(item["usage_today"]["requests"], 0);

    // The secret works at once, and appears nowhere else.
    let grant = d.core().proxy_keys.authenticate(&secret, CLIENT).unwrap();
    assert_eq!(grant.key_id, Some(id));
    assert!(grant.allows_target(target) && !grant.allows_target(target + 1));
    assert!(grant.allows_model("relay-a", "gpt-4o") && !grant.allows_model("relay-a", "o3"));
    let (_, list, _) = d
        .send(Method::GET, "/api/proxy/keys", Some(ADMIN_TOKEN), None)
        .await;
    let (_, one, _) = d
        .send(
            Method::GET,
            &format!("/api/proxy/keys/{id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    for text in [&list, &one] {
        assert!(text.contains("\"ci\"") && !text.contains(&secret), "{text}");
        assert!(!text.contains(&apimond::service::proxy_key_admin::key_digest(&secret)));
    }
    let record = d.core().store.get_proxy_key(id).await.unwrap().unwrap();
    assert!(!format!("{record:?}").contains(&record.key_hash));

    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/proxy/keys/{id}"),
            Some(&json!({
                "name": "ci-2", "description": null, "allowed_target_ids": [],
                "allowed_models": [], "rpm_limit": 600, "daily_token_budget": 100000,
                "expires_at": apimond::store::now() + 86_400.0,
            })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["item"]["name"], "ci-2");
    assert_eq!(v["item"]["description"], "");
    assert_eq!(v["item"]["rpm_limit"], 600);
    assert_eq!(v["item"]["daily_token_budget"], 100000);
    assert!(
        d.core()
            .proxy_keys
            .authenticate(&secret, CLIENT)
            .unwrap()
            .allows_target(target + 1)
    );

    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/proxy/keys/{id}"),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(
        (s, &v["item"]["status"]),
        (StatusCode::OK, &json!("disabled"))
    );
    let refusal = d
        .core()
        .proxy_keys
        .authenticate(&secret, CLIENT)
        .unwrap_err();
    assert_eq!(
        (refusal.clone(), refusal.status()),
        (KeyRefusal::Disabled, 403)
    );
    d.admin(
        Method::PATCH,
        &format!("/api/proxy/keys/{id}"),
        Some(&json!({"enabled": true})),
    )
    .await;

    let (s, v) = d
        .admin(Method::DELETE, &format!("/api/proxy/keys/{id}"), None)
        .await;
    assert_eq!((s, &v["ok"]), (StatusCode::OK, &json!(true)), "{v}");
    let refusal = d
        .core()
        .proxy_keys
        .authenticate(&secret, CLIENT)
        .unwrap_err();
    assert_eq!(
        (refusal.clone(), refusal.status()),
        (KeyRefusal::Revoked, 403)
    );
    let (_, v) = d.admin(Method::GET, "/api/proxy/keys", None).await;
    assert!(v["items"][0]["revoked_at"].is_f64(), "{v}");
    assert_eq!(v["items"][0]["status"], "revoked");
    // Revocation is final.
    let (s, _) = d
        .admin(
            Method::PATCH,
            &format!("/api/proxy/keys/{id}"),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // No file under the data directory holds the secret: only its digest is stored.
    d.core().store.checkpoint().await.unwrap();
    for (path, bytes) in d.data_files() {
        assert!(
            !contains(&bytes, &secret),
            "{} holds the key",
            path.display()
        );
    }
}

#[tokio::test]
async fn keys_are_for_admins_only_and_bad_input_is_refused_naming_the_field() {
    let d = TestDaemon::start().await;
    let target = d
        .create_target("relay-a", "sk-channel-key-0123456789")
        .await;
    let (_, _) = create_key(&d, json!({"name": "kept"})).await;
    for (token, status) in [(Some(VISITOR_TOKEN), 403), (None, 401)] {
        for (method, path) in [
            (Method::GET, "/api/proxy/keys"),
            (Method::POST, "/api/proxy/keys"),
            (Method::PATCH, "/api/proxy/keys/1"),
            (Method::DELETE, "/api/proxy/keys/1"),
            (Method::GET, "/api/proxy/usage"),
        ] {
            let (s, _, v) = d
                .send(method.clone(), path, token, Some(&json!({"name": "x"})))
                .await;
            assert_eq!(s.as_u16(), status, "{method} {path}: {v}");
        }
    }
    let cases = [
        (json!({}), "name:"),
        (json!({"name": ""}), "name:"),
        (json!({"name": "x".repeat(129)}), "name:"),
        (
            json!({"name": "k", "description": "d".repeat(513)}),
            "description:",
        ),
        (
            json!({"name": "k", "allowed_target_ids": [target + 100]}),
            "allowed_target_ids:",
        ),
        (
            json!({"name": "k", "allowed_target_ids": "1"}),
            "allowed_target_ids:",
        ),
        (
            json!({"name": "k", "allowed_models": ["gpt-4o"]}),
            "allowed_models[0]:",
        ),
        (
            json!({"name": "k", "allowed_models": ["/gpt-4o"]}),
            "allowed_models[0]:",
        ),
        (json!({"name": "k", "rpm_limit": 0}), "rpm_limit:"),
        (
            json!({"name": "k", "daily_token_budget": -5}),
            "daily_token_budget:",
        ),
        (json!({"name": "k", "expires_at": 1000}), "expires_at:"),
        (
            json!({"name": "k", "expires_at": "tomorrow"}),
            "expires_at:",
        ),
        (json!({"name": "k", "enabled": "yes"}), "enabled:"),
        (json!({"name": "k", "colour": "red"}), "colour:"),
    ];
    for (body, field) in &cases {
        let (s, v) = d.admin(Method::POST, "/api/proxy/keys", Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.starts_with(field), "{body}: {detail}");
        let (s, v) = d
            .admin(Method::PATCH, "/api/proxy/keys/1", Some(body))
            .await;
        if *field != "name:" || body.get("name").is_some() {
            assert_eq!(s, StatusCode::BAD_REQUEST, "PATCH {body}: {v}");
        }
    }
    let (s, _, _) = d
        .send(Method::POST, "/api/proxy/keys", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for (method, path, status) in [
        (Method::PATCH, "/api/proxy/keys/99", 404),
        (Method::DELETE, "/api/proxy/keys/99", 404),
        (Method::GET, "/api/proxy/keys/99", 404),
        (Method::GET, "/api/proxy/keys/abc", 400),
        (Method::DELETE, "/api/proxy/keys/0", 404),
    ] {
        let (s, v) = d
            .admin(method.clone(), path, Some(&json!({"name": "n"})))
            .await;
        assert_eq!(s.as_u16(), status, "{method} {path}: {v}");
        assert!(v["detail"].is_string(), "{v}");
    }
    for (query, field) in [
        ("key_id=x", "key_id:"),
        ("target_id=-1", "target_id:"),
        ("since=yesterday", "since:"),
        ("since=200&until=100", "since:"),
        ("group_by=colour", "group_by:"),
        ("group_by=hour,day", "group_by:"),
        ("colour=red", "colour:"),
    ] {
        let (s, v) = d
            .admin(Method::GET, &format!("/api/proxy/usage?{query}"), None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert!(
            v["detail"].as_str().unwrap().starts_with(field),
            "{query}: {v}"
        );
    }
    // Nothing was written: the one key is as it was.
    let (_, v) = d.admin(Method::GET, "/api/proxy/keys", None).await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["name"], "kept");
    assert_eq!(items[0]["allowed_models"], json!([]));
    assert_eq!(items[0]["rpm_limit"], Value::Null);
}

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
async fn the_budget_counts_what_was_recorded_before_a_restart() {
    let mut d = TestDaemon::start().await;
    let (id, key) = create_key(&d, json!({"name": "b", "daily_token_budget": 50})).await;
    let grant = d.core().proxy_keys.authenticate(&key, CLIENT).unwrap();
    let mut u = usage(grant.key_id, None, "m", (40, 0));
    u.tokens_estimated = true;
    u.input_tokens = None;
    u.output_tokens = Some(60);
    d.core().proxy_keys.record(u);
    wait_usage(&d, &format!("key_id={id}"), 1).await;
    d.restart_with(STANDARD).await;
    let r = d.core().proxy_keys.authenticate(&key, CLIENT).unwrap_err();
    assert!(
        matches!(
            r,
            KeyRefusal::BudgetSpent {
                daily_token_budget: 50,
                ..
            }
        ),
        "{r:?}"
    );
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

#[tokio::test]
async fn usage_is_recorded_in_batches_and_read_back_filtered_and_grouped() {
    let d = TestDaemon::start().await;
    let a = d
        .create_target("relay-a", "sk-channel-key-0123456789")
        .await;
    let b = d
        .create_target("relay-b", "sk-channel-key-0123456789")
        .await;
    let (k1, s1) = create_key(&d, json!({"name": "one"})).await;
    let (k2, _) = create_key(&d, json!({"name": "two"})).await;
    let keys = &d.core().proxy_keys;
    keys.authenticate(&s1, CLIENT).unwrap();
    let n = 3000;
    for i in 0..n {
        let (key, target, model) = match i % 3 {
            0 => (Some(k1), Some(a), "relay-a/gpt-4o"),
            1 => (Some(k2), Some(b), "gpt-4o"),
            _ => (None, Some(b), "claude-x"),
        };
        let mut u = usage(key, target, model, (10, 5));
        if i % 10 == 0 {
            u.status = 502;
            u.error_class = Some("upstream_5xx".into());
        }
        keys.record(u);
    }
    let v = wait_usage(&d, "", n).await;
    assert_eq!(v["source"], "raw");
    assert_eq!(v["totals"]["tokens"], n * 15);
    assert_eq!(v["totals"]["errors"], n / 10);
    assert_eq!(v["items"], json!([]));
    assert_eq!(keys.dropped_rows(), 0);

    let v = wait_usage(&d, &format!("key_id={k1}"), n / 3).await;
    assert_eq!(v["totals"]["input_tokens"], n / 3 * 10);
    wait_usage(&d, "key_id=master", n / 3).await;
    wait_usage(&d, &format!("target_id={b}"), 2 * n / 3).await;
    // `relay-a/gpt-4o` and bare `gpt-4o` both count as the upstream model gpt-4o.
    wait_usage(&d, "model=gpt-4o", 2 * n / 3).await;

    let (_, v) = d
        .admin(Method::GET, "/api/proxy/usage?group_by=key,model", None)
        .await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{v}");
    let master = items.iter().find(|i| i["key_name"] == "master").unwrap();
    assert_eq!(
        (&master["key_id"], &master["model"]),
        (&Value::Null, &json!("claude-x"))
    );
    let one = items.iter().find(|i| i["key_id"] == k1).unwrap();
    assert_eq!(
        (&one["key_name"], &one["requests"]),
        (&json!("one"), &json!(n / 3))
    );
    assert_eq!(one["avg_total_ms"], 10.0);
    let (_, v) = d
        .admin(Method::GET, "/api/proxy/usage?group_by=hour", None)
        .await;
    assert!(
        v["items"][0]["bucket_start"].as_f64().unwrap() % 3600.0 == 0.0,
        "{v}"
    );

    // Each key shows its last use and today's count.
    let (_, v) = d
        .admin(Method::GET, &format!("/api/proxy/keys/{k2}"), None)
        .await;
    assert_eq!(v["item"]["last_used_target_id"], b);
    assert!(v["item"]["last_used_at"].is_f64());
    assert_eq!(v["item"]["usage_today"]["requests"], n / 3);
    let stored = d.core().store.get_proxy_key(k2).await.unwrap().unwrap();
    assert_eq!(
        stored.last_used_target_id,
        Some(b),
        "persisted with the batch"
    );
}

/// Rows written straight to the store at a given age.
async fn record_at(d: &TestDaemon, age_days: f64, key_id: Option<i64>, rows: usize) {
    let at = apimond::store::now() - age_days * 86_400.0;
    let batch = (0..rows)
        .map(|_| ProxyUsage {
            at,
            ..usage(key_id, Some(1), "m", (100, 1))
        })
        .collect();
    d.core().store.record_usage(batch).await.unwrap();
}

fn raw_rows(d: &TestDaemon) -> i64 {
    let conn = rusqlite::Connection::open(d.dir.join("registry.db")).unwrap();
    conn.query_row("SELECT COUNT(*) FROM proxy_usage", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn usage_is_rolled_up_and_old_raw_rows_and_rollups_are_pruned() {
    let d = TestDaemon::start().await;
    let (k, _) = create_key(&d, json!({"name": "k"})).await;
    record_at(&d, 10.0, Some(k), 4).await; // past raw retention (7 days)
    record_at(&d, 3.0, Some(k), 2).await;
    record_at(&d, 0.0, None, 1).await;
    record_at(&d, 45.0, Some(k), 5).await; // past hourly retention (30 days)
    let upkeep = &d.core().upkeep;
    upkeep.roll_up_all().await;
    record_at(&d, 0.0, Some(k), 3).await; // not rolled up yet: read from raw rows
    let since = apimond::store::now() - 60.0 * 86_400.0;
    let v = wait_usage(&d, &format!("since={since}&group_by=day"), 15).await;
    assert_eq!(v["source"], "day");
    assert_eq!(v["totals"]["input_tokens"], 1500);

    upkeep.prune_old_data().await;
    assert_eq!(
        raw_rows(&d),
        6,
        "rows past RETENTION_RAW_DAYS go once rolled up"
    );
    let v = wait_usage(&d, &format!("since={since}"), 15).await;
    assert_eq!(v["source"], "day", "{v}");
    // Hourly rollups past 30 days are gone: an hourly read finds only the younger ones.
    let v = wait_usage(&d, &format!("since={since}&group_by=hour"), 10).await;
    assert_eq!(v["source"], "hour");
    let v = wait_usage(&d, &format!("key_id={k}&since={since}&group_by=key"), 14).await;
    assert_eq!(v["items"][0]["key_name"], "k");
    // Rows are counted once, however often the upkeep runs.
    upkeep.roll_up_all().await;
    upkeep.roll_up_all().await;
    wait_usage(&d, &format!("since={since}"), 15).await;
}
