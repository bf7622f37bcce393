//! Proxy usage: rows recorded in batches without waiting, read back filtered and
//! grouped, rolled up and pruned, counted against budgets across restarts, and
//! written before the daemon exits.

mod common;

use apimond::service::proxy_keys::{KeyRefusal, ProxyUsage};
use common::keys::*;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

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
    // A day is read from the hourly rollups and the raw rows around them.
    assert_eq!(v["source"], "hour");
    let (_, v) = d
        .admin(
            Method::GET,
            &format!("/api/proxy/usage?since={}", apimond::store::now() - 3600.0),
            None,
        )
        .await;
    assert_eq!(
        (&v["source"], &v["totals"]["requests"]),
        (&json!("raw"), &json!(n))
    );
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
        .admin(Method::GET, "/api/proxy/usage?group_by=target", None)
        .await;
    let relay_b = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["target_id"] == b)
        .unwrap();
    assert_eq!(relay_b["target_name"], "relay-b", "{v}");
    assert_eq!(relay_b["requests"], 2 * n / 3);
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
    record_at(&d, 0.0, Some(k), 3).await; // folded as written, the upkeep caught up
    let since = apimond::store::now() - 60.0 * 86_400.0;
    let v = wait_usage(&d, &format!("since={since}&group_by=day"), 15).await;
    assert_eq!(v["source"], "day");
    assert_eq!(v["totals"]["input_tokens"], 1500);
    // Within raw retention a range is exact to the second, rolled up or not.
    let three_days = apimond::store::now() - 3.0 * 86_400.0;
    wait_usage(&d, &format!("since={}", three_days - 60.0), 6).await;
    let v = wait_usage(&d, &format!("since={}", three_days + 60.0), 4).await;
    assert_eq!(v["source"], "hour");
    let v = wait_usage(
        &d,
        &format!("since={}&until={}", three_days - 60.0, three_days + 60.0),
        2,
    )
    .await;
    assert_eq!(v["source"], "raw");

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

#[tokio::test]
async fn usage_queued_when_the_daemon_stops_is_written_before_it_exits() {
    let mut d = TestDaemon::start().await;
    let (k, _) = create_key(&d, json!({"name": "k"})).await;
    for _ in 0..2000 {
        d.core()
            .proxy_keys
            .record(usage(Some(k), None, "m", (1, 1)));
    }
    d.restart_with(STANDARD).await;
    let (_, v) = d.admin(Method::GET, "/api/proxy/usage", None).await;
    assert_eq!(v["totals"]["requests"], 2000, "{v}");
    let (_, v) = d
        .admin(Method::GET, &format!("/api/proxy/keys/{k}"), None)
        .await;
    assert_eq!(
        v["item"]["usage_today"]["tokens"], 4000,
        "counted again from the store"
    );
}
