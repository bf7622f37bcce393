//! What the log viewer and the analysis page read: a run's probe rows filtered by
//! status, error class, protocol, route and text, a page at a time with the matching
//! total and the counts per value; the most frequent errors; rollups with their error
//! classes. A real daemon probing the fake relay.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const MODELS: &[&str] = &[
    "gpt-4o",
    "claude-3-5-sonnet",
    "gemini-2.0-flash",
    "gpt-5-mini",
    "gpt-4o-err401",
    "claude-err401",
    "gemini-notfound",
];

async fn one_run() -> (testkit::FakeUpstream, TestDaemon, i64) {
    let up = fake_upstream(MODELS, 0).await;
    let d = TestDaemon::start().await;
    let id = d.create_on("relay", &up.base_url(), json!({})).await;
    let (s, v) = d.trigger(id).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(d.wait_run(id).await["status"], "completed");
    (up, d, id)
}

async fn logs(d: &TestDaemon, id: i64, query: &str) -> Value {
    let (s, v) = d
        .admin(
            Method::GET,
            &format!("/api/targets/{id}/logs?{query}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{query}: {v}");
    v
}

fn models(v: &Value) -> BTreeSet<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model"].as_str().unwrap().to_string())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn the_viewer_filters_a_run_by_status_class_protocol_route_and_text() {
    let (_up, d, id) = one_run().await;

    let all = logs(&d, id, "").await;
    assert_eq!(
        (all["count"].as_i64(), all["total"].as_i64()),
        (Some(7), Some(7))
    );
    // The counts a filter picker shows cover the whole run, whatever the filter.
    let f = logs(&d, id, "status=ok&q=nothing-matches").await;
    assert_eq!(f["total"], 0);
    assert_eq!(f["facets"]["status"], json!({"ok": 4, "fail": 3}));
    assert_eq!(
        f["facets"]["error_class"],
        json!({"auth": 2, "model_not_found": 1})
    );
    assert_eq!(
        f["facets"]["protocol"],
        json!({"openai": 3, "anthropic": 2, "gemini": 2})
    );
    assert_eq!(f["facets"]["route"]["responses"], 1);

    // Means over the passing rows the filter keeps; none when none passed.
    let rows = all["items"].as_array().unwrap();
    let passed: Vec<f64> = rows
        .iter()
        .filter(|r| r["success"] == true)
        .map(|r| r["total_ms"].as_f64().unwrap())
        .collect();
    let mean = passed.iter().sum::<f64>() / passed.len() as f64;
    let got = all["passed_means"]["total_ms"].as_f64().unwrap();
    assert!((got - mean).abs() < 1e-6, "{got} vs {mean}");
    assert!(all["passed_means"]["ttft_ms"].as_f64().is_some());
    let failed_only = logs(&d, id, "status=fail&limit=1").await;
    assert_eq!(failed_only["passed_means"]["total_ms"], Value::Null);

    let fail = logs(&d, id, "status=fail").await;
    assert_eq!(
        models(&fail),
        set(&["gpt-4o-err401", "claude-err401", "gemini-notfound"])
    );
    assert!(
        fail["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["success"] == false)
    );
    let auth = logs(&d, id, "error_class=auth").await;
    assert_eq!(models(&auth), set(&["gpt-4o-err401", "claude-err401"]));
    let row = &auth["items"][0];
    assert_eq!(row["status_code"], 401);
    assert!(row["error"].as_str().unwrap().len() > 3, "{row}");
    assert_eq!(
        models(&logs(&d, id, "error_class=auth&protocol=anthropic").await),
        set(&["claude-err401"])
    );
    assert_eq!(
        models(&logs(&d, id, "protocol=gemini").await),
        set(&["gemini-2.0-flash", "gemini-notfound"])
    );
    assert_eq!(
        models(&logs(&d, id, "route=responses").await),
        set(&["gpt-5-mini"])
    );
    // Text matches model names ignoring case, and error text.
    assert_eq!(
        models(&logs(&d, id, "q=CLAUDE-3").await),
        set(&["claude-3-5-sonnet"])
    );
    let by_error = logs(&d, id, &format!("q={}", "401")).await;
    assert!(models(&by_error).contains("claude-err401"), "{by_error}");

    // The latest run and the run named by id read alike.
    let run_id = all["run"]["id"].as_i64().unwrap();
    let named = logs(&d, id, &format!("run_id={run_id}&status=fail")).await;
    assert_eq!(named["total"], 3);
}

#[tokio::test]
async fn pages_of_a_run_are_disjoint_cover_it_and_keep_the_total() {
    let (_up, d, id) = one_run().await;
    let mut seen = Vec::new();
    for offset in [0, 3, 6] {
        let page = logs(&d, id, &format!("limit=3&offset={offset}")).await;
        assert_eq!(page["total"], 7);
        assert_eq!(page["limit"], 3);
        assert_eq!(page["offset"], offset);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
    }
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(sorted, seen, "newest first, each row once");
    let filtered = logs(&d, id, "status=fail&limit=2&offset=2").await;
    assert_eq!(
        (filtered["total"].as_i64(), filtered["count"].as_i64()),
        (Some(3), Some(1))
    );
}

#[tokio::test]
async fn bad_filters_are_refused_naming_the_field() {
    let (_up, d, id) = one_run().await;
    for (query, field) in [
        ("status=broken", "status"),
        ("error_class=oops", "error_class"),
        ("protocol=cohere", "protocol"),
        ("route=messages", "route"),
        ("offset=-1", "offset"),
    ] {
        let (s, v) = d
            .admin(
                Method::GET,
                &format!("/api/targets/{id}/logs?{query}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert!(
            v["detail"].as_str().unwrap().starts_with(field),
            "{query}: {v}"
        );
    }
    let long = "x".repeat(201);
    let (s, v) = d
        .admin(
            Method::GET,
            &format!("/api/targets/{id}/logs?q={long}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["detail"], "q: at most 200 characters");
}

#[tokio::test]
async fn top_errors_group_failures_by_class_and_text_with_their_models() {
    let (_up, d, id) = one_run().await;
    // A second run: every failure counts twice.
    d.trigger(id).await;
    d.wait_run(id).await;
    let (s, v) = d
        .admin(Method::GET, &format!("/api/targets/{id}/errors"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let items = v["items"].as_array().unwrap();
    let total: i64 = items.iter().map(|g| g["count"].as_i64().unwrap()).sum();
    assert_eq!(total, 6, "{v}");
    let auth: Vec<&Value> = items
        .iter()
        .filter(|g| g["error_class"] == "auth")
        .collect();
    let auth_models: BTreeSet<String> = auth
        .iter()
        .flat_map(|g| g["models"].as_array().unwrap().iter())
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    assert_eq!(auth_models, set(&["gpt-4o-err401", "claude-err401"]));
    assert!(items[0]["last_seen"].as_f64().unwrap() > 0.0);
    assert!(items[0]["error"].is_string());
    // Most frequent first.
    let counts: Vec<i64> = items.iter().map(|g| g["count"].as_i64().unwrap()).collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");

    let (s, v) = d
        .admin(
            Method::GET,
            &format!("/api/targets/{id}/errors?days=0"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["detail"], "days: must be an integer from 1 to 36500");
    let (s, _) = d.admin(Method::GET, "/api/targets/999/errors", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = d
        .send(
            Method::GET,
            &format!("/api/targets/{id}/errors"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rollups_carry_failures_by_error_class() {
    let (_up, d, id) = one_run().await;
    let (s, v) = d
        .admin(
            Method::GET,
            &format!("/api/targets/{id}/stats?period=hour"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let items = v["items"].as_array().unwrap();
    let of = |m: &str| {
        items
            .iter()
            .find(|r| r["model"] == m)
            .unwrap_or_else(|| panic!("{m} in {v}"))
    };
    assert_eq!(of("claude-err401")["error_classes"], json!({"auth": 1}));
    assert_eq!(
        of("gemini-notfound")["error_classes"],
        json!({"model_not_found": 1})
    );
    assert_eq!(of("gpt-4o")["error_classes"], json!({}));
}
