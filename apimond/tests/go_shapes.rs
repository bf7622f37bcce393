//! The Go program's response shapes, one test per shape its clients read: history
//! objects by default, the `(protocol, route, endpoint)` triples, the models view,
//! `ok` on writes, the resources keys, the SSE `connected` and `run_completed` data,
//! `latest_models` wherever one target is answered, and 400 for an id that is no
//! integer. The round trip of a target read back and sent again is in
//! `go_round_trip.rs`.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::probe::sse::{SseEvent, SseParser};

/// A history point has the seed's fields with the seed's JSON types.
fn assert_seed_point(p: &Value) {
    assert!(p["success"].is_boolean(), "{p}");
    assert!(p["duration"].is_number(), "{p}");
    assert!(p["timestamp"].is_number(), "{p}");
    assert!(p["error"].is_null() || p["error"].is_string(), "{p}");
    assert!(
        p["status_code"].is_null() || p["status_code"].is_u64(),
        "{p}"
    );
}

/// A `latest_models` entry has the seed's fields, `history` as objects.
fn assert_seed_model(m: &Value, points: usize) {
    assert!(m["protocol"].is_string(), "{m}");
    assert!(m["model"].is_string(), "{m}");
    assert!(m["success"].is_boolean(), "{m}");
    assert!(m["duration"].is_number(), "{m}");
    assert!(m.get("error").is_some(), "error is always there: {m}");
    let history = m["history"].as_array().expect("history is a list");
    assert_eq!(history.len(), points, "{m}");
    history.iter().for_each(assert_seed_point);
}

#[tokio::test]
async fn the_target_list_gives_30_history_objects_by_default_and_compact_only_on_request() {
    let up = fake_upstream(&["gpt-4o", "gpt-4o-err401"], 0).await;
    let d = TestDaemon::start().await;
    let id = d.create_on("relay", &up.base_url(), json!({})).await;
    let mut last_run = Value::Null;
    for _ in 0..32 {
        d.trigger(id).await;
        last_run = d.wait_run(id).await;
    }

    let (s, list) = d.admin(Method::GET, "/api/targets", None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["history_format"], "full");
    let item = &list["items"][0];
    assert!(item.get("history_runs").is_none(), "compact only");
    let models = item["latest_models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    for m in models {
        assert_seed_model(m, 30);
        let h = m["history"].as_array().unwrap();
        assert_eq!(h.last().unwrap()["run_id"], last_run["id"], "newest last");
        assert!(
            h.windows(2)
                .all(|w| w[0]["timestamp"].as_f64() <= w[1]["timestamp"].as_f64())
        );
    }
    let failing = models
        .iter()
        .find(|m| m["model"] == "gpt-4o-err401")
        .unwrap();
    assert_eq!(failing["history"][29]["success"], false);
    assert_eq!(failing["history"][29]["error"], "auth");
    assert_eq!(failing["history"][29]["status_code"], 401);
    let working = models.iter().find(|m| m["model"] == "gpt-4o").unwrap();
    assert_eq!(working["error"], Value::Null);
    assert_eq!(working["history"][0]["success"], true);

    let (_, compact) = d
        .admin(Method::GET, "/api/targets?history_format=compact", None)
        .await;
    assert_eq!(compact["history_format"], "compact");
    let item = &compact["items"][0];
    assert_eq!(item["history_runs"].as_array().unwrap().len(), 30);
    assert_eq!(
        item["latest_models"][0]["history"]["s"]
            .as_str()
            .unwrap()
            .len(),
        30
    );

    let (_, fewer) = d.admin(Method::GET, "/api/targets?history=5", None).await;
    assert_seed_model(&fewer["items"][0]["latest_models"][0], 5);
}

#[tokio::test]
async fn every_answer_carrying_one_target_carries_its_latest_models() {
    let up = fake_upstream(&["gpt-4o", "claude-3-haiku"], 0).await;
    let d = TestDaemon::start().await;
    let body = json!({"name": "relay", "base_url": up.base_url(), "api_key": UPSTREAM_KEY});
    let (s, created) = d.admin(Method::POST, "/api/targets", Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{created}");
    assert_eq!(
        created["item"]["latest_models"],
        json!([]),
        "not probed yet"
    );
    let id = created["item"]["id"].as_i64().unwrap();
    d.trigger(id).await;
    d.wait_run(id).await;

    let (_, updated) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{id}"),
            Some(&json!({"interval_min": 20})),
        )
        .await;
    let (_, runs) = d
        .admin(Method::GET, &format!("/api/targets/{id}/runs"), None)
        .await;
    let (_, logs) = d
        .admin(Method::GET, &format!("/api/targets/{id}/logs"), None)
        .await;
    let (_, got) = d
        .admin(Method::GET, &format!("/api/targets/{id}"), None)
        .await;
    for (what, target) in [
        ("update", &updated["item"]),
        ("runs", &runs["target"]),
        ("logs", &logs["target"]),
        ("get", &got["item"]),
    ] {
        let models = target["latest_models"].as_array().unwrap_or_else(|| {
            panic!("{what}: no latest_models in {target}");
        });
        assert_eq!(models.len(), 2, "{what}");
        for m in models {
            assert_seed_model(m, 1);
        }
    }
    assert_eq!(updated["item"]["interval_min"], 20);
}

#[tokio::test]
async fn log_and_model_rows_name_their_api_as_the_go_program_with_rule_and_path_beside() {
    let up = fake_upstream(
        &["gpt-4o", "gpt-5-mini", "claude-3-haiku", "gemini-2.0-flash"],
        0,
    )
    .await;
    let d = TestDaemon::start().await;
    let id = d.create_on("relay", &up.base_url(), json!({})).await;
    let mut sse = d.events(Some(ADMIN_TOKEN)).await;
    sse.next(5).await;
    d.trigger(id).await;
    let events = sse.until("run_completed", 30).await;
    let run = d.wait_run(id).await;

    // model, (protocol, route, endpoint), route rule, request path
    let want = [
        (
            "gpt-4o",
            ("openai", "chat", "chat"),
            "default",
            "/v1/chat/completions",
        ),
        (
            "gpt-5-mini",
            ("openai", "responses", "responses"),
            "gpt-5*",
            "/v1/responses",
        ),
        (
            "claude-3-haiku",
            ("anthropic", "anthropic", "messages"),
            "*claude*",
            "/v1/messages",
        ),
        (
            "gemini-2.0-flash",
            ("gemini", "gemini", "gemini"),
            "*gemini*",
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
        ),
    ];
    let triple = |v: &Value| {
        (
            v["protocol"].as_str().unwrap().to_string(),
            v["route"].as_str().unwrap().to_string(),
            v["endpoint"].as_str().unwrap().to_string(),
        )
    };
    let owned = |(p, r, e): (&str, &str, &str)| (p.to_string(), r.to_string(), e.to_string());
    let find = |rows: &[Value], model: &str| -> Value {
        rows.iter()
            .find(|r| r["model"] == model)
            .unwrap_or_else(|| panic!("no row of {model}"))
            .clone()
    };

    let (_, logs) = d
        .admin(Method::GET, &format!("/api/targets/{id}/logs"), None)
        .await;
    let rows = logs["items"].as_array().unwrap().clone();
    let (_, view) = d
        .admin(Method::GET, &format!("/api/targets/{id}/models"), None)
        .await;
    let models = view["item"]["models"].as_array().unwrap().clone();
    let (_, list) = d.admin(Method::GET, "/api/targets", None).await;
    let latest = list["items"][0]["latest_models"]
        .as_array()
        .unwrap()
        .clone();
    let (_, got) = d
        .admin(Method::GET, &format!("/api/targets/{id}"), None)
        .await;
    let got_latest = got["item"]["latest_models"].as_array().unwrap().clone();
    let results: Vec<Value> = events
        .iter()
        .filter(|e| e.0 == "model_result")
        .map(|e| e.1.clone())
        .collect();
    let file = d.dir.join(run["log_file"].as_str().unwrap());
    let jsonl: Vec<Value> = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "probe")
        .collect();

    for (model, names, rule, path) in want {
        let log = find(&rows, model);
        assert_eq!(triple(&log), owned(names), "log row of {model}");
        assert_eq!(log["route_rule"], rule, "{model}");
        assert_eq!(log["path"], path, "{model}");
        assert_eq!(log["tool_calls"], json!([]), "tool_calls is a list");
        assert_eq!(log["tool_calls_count"], 0);

        let m = find(&models, model);
        assert_eq!(triple(&m), owned(names), "model view of {model}");
        assert_eq!(m["route_rule"], rule, "{model}");
        assert_eq!(triple(&m["latest"]), owned(names), "{model}");
        assert_eq!(m["latest"]["path"], path, "{model}");

        assert_eq!(find(&latest, model)["protocol"], names.0, "list of {model}");
        assert_eq!(triple(&find(&got_latest, model)), owned(names), "{model}");
        assert_eq!(
            triple(&find(&results, model)),
            owned(names),
            "event of {model}"
        );
        let line = find(&jsonl, model);
        assert_eq!(triple(&line), owned(names), "JSONL row of {model}");
        assert_eq!(line["route_rule"], rule, "{model}");
        assert_eq!(line["path"], path, "{model}");
    }
}

#[tokio::test]
async fn the_models_view_has_available_models_and_target_name_and_patch_answers_ok() {
    let up = fake_upstream(
        &[
            "gpt-4o",
            "claude-3-haiku",
            "gpt-4o-err401",
            "text-embedding-3",
        ],
        0,
    )
    .await;
    let d = TestDaemon::start().await;
    let id = d
        .create_on(
            "relay",
            &up.base_url(),
            json!({"exclude_models": ["*embedding*"]}),
        )
        .await;
    d.trigger(id).await;
    d.wait_run(id).await;

    for path in [
        format!("/api/targets/{id}/models"),
        format!("/api/admin/channels/{id}/models"),
    ] {
        let (s, v) = d.admin(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["item"]["target_name"], "relay", "{path}");
        assert_eq!(
            v["item"]["available_models"],
            json!([
                {"model": "gpt-4o", "protocol": "openai", "success": true},
                {"model": "claude-3-haiku", "protocol": "anthropic", "success": true},
                {"model": "gpt-4o-err401", "protocol": "openai", "success": false},
                // Excluded, so never probed: not a success.
                {"model": "text-embedding-3", "protocol": "openai", "success": false},
            ]),
            "{path}"
        );

        let (s, v) = d
            .admin(
                Method::PATCH,
                &path,
                Some(&json!({"selected_models": ["gpt-4o", "claude-3-haiku"]})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["ok"], true, "{path}");
        assert_eq!(v["item"]["target_name"], "relay");
        assert_eq!(
            v["item"]["selected_models"],
            json!(["gpt-4o", "claude-3-haiku"])
        );
        assert_eq!(v["item"]["available_models"].as_array().unwrap().len(), 4);
    }
}

#[tokio::test]
async fn every_write_the_go_program_acknowledges_with_ok_carries_ok_true() {
    let d = TestDaemon::start().await;
    let id = d.create_target("relay", "sk-ok-writes-000000000000").await;
    for (path, body) in [
        (format!("/api/targets/{id}"), json!({"interval_min": 12})),
        (
            format!("/api/admin/channels/{id}/advanced"),
            json!({"max_models": 3}),
        ),
        (
            format!("/api/targets/{id}/models"),
            json!({"selected_models": []}),
        ),
        (
            format!("/api/admin/channels/{id}/models"),
            json!({"selected_models": []}),
        ),
        (
            "/api/admin/settings".to_string(),
            json!({"log_max_size_mb": 321}),
        ),
    ] {
        let (s, v) = d.admin(Method::PATCH, &path, Some(&body)).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["ok"], true, "{path}: {v}");
        assert!(v["item"].is_object(), "{path}: {v}");
    }
    let (_, settings) = d.admin(Method::GET, "/api/admin/settings", None).await;
    assert_eq!(settings["item"]["log_max_size_mb"], 321);
    let (_, t) = d
        .admin(Method::GET, &format!("/api/targets/{id}"), None)
        .await;
    assert_eq!(
        (&t["item"]["interval_min"], &t["item"]["max_models"]),
        (&json!(12), &json!(3))
    );
}

#[tokio::test]
async fn resources_carry_the_go_keys_beside_apimons() {
    let d = TestDaemon::start().await;
    let before = (apimond::store::now() * 1000.0) as i64;
    let (s, v) = d.admin(Method::GET, "/api/admin/resources", None).await;
    let after = (apimond::store::now() * 1000.0) as i64 + 1;
    assert_eq!(s, StatusCode::OK, "{v}");
    let sample = v["sample_time_ms"].as_i64().expect("an integer");
    assert!(
        (before..=after).contains(&sample),
        "{sample} not in {before}..{after}"
    );
    let c = &v["container"];
    let keys = [
        "available",
        "cgroup_version",
        "cpu_usage_seconds_total",
        "cpu_limit_cores",
        "memory_usage_bytes",
        "memory_limit_bytes",
    ];
    for k in keys {
        assert!(c.get(k).is_some(), "container.{k} missing: {c}");
    }
    assert!(c["available"].is_boolean());
    assert!(
        c["cgroup_version"].is_null() || [1, 2].contains(&c["cgroup_version"].as_u64().unwrap())
    );
    for k in ["cpu_usage_seconds_total", "cpu_limit_cores"] {
        assert!(
            c[k].is_null() || c[k].as_f64().is_some_and(|x| x >= 0.0),
            "{k}: {c}"
        );
    }
    for k in ["memory_usage_bytes", "memory_limit_bytes"] {
        assert!(c[k].is_null() || c[k].is_u64(), "{k}: {c}");
    }
    // Available means a cgroup was found and it sets a limit; otherwise no limit is
    // claimed.
    let limited = !c["cpu_limit_cores"].is_null() || !c["memory_limit_bytes"].is_null();
    assert_eq!(
        c["available"],
        json!(!c["cgroup_version"].is_null() && limited),
        "{c}"
    );
    // apimon's figures stay under `item`, with the same container.
    assert_eq!(&v["item"]["container"]["available"], &c["available"]);
    assert!(v["item"]["process"]["rss_bytes"].as_u64().unwrap() > 0);
    assert!(v["item"]["db_bytes"].as_u64().unwrap() > 0);
}

/// Server-sent events read raw: the name and the data text as sent.
struct RawEvents {
    resp: reqwest::Response,
    parser: SseParser,
    pending: VecDeque<SseEvent>,
}

impl RawEvents {
    async fn open(d: &TestDaemon) -> RawEvents {
        let url = d.url(&format!("/api/events?token={ADMIN_TOKEN}"));
        let resp = d.http.get(url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        RawEvents {
            resp,
            parser: SseParser::new(),
            pending: VecDeque::new(),
        }
    }

    async fn next(&mut self) -> SseEvent {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return e;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.resp.chunk())
                .await
                .expect("an event within 30 s")
                .unwrap()
                .expect("the stream goes on");
            self.pending.extend(self.parser.feed(&chunk));
        }
    }

    async fn until(&mut self, name: &str) -> Value {
        loop {
            let e = self.next().await;
            if e.event.as_deref() == Some(name) {
                return serde_json::from_str(&e.data).unwrap();
            }
        }
    }
}

#[tokio::test]
async fn sse_connected_data_is_ok_and_run_completed_status_is_the_targets_health() {
    let up = fake_upstream(&["gpt-4o", "gpt-4o-err401"], 0).await;
    let d = TestDaemon::start().await;
    let mut events = RawEvents::open(&d).await;
    let first = events.next().await;
    assert_eq!(first.event.as_deref(), Some("connected"));
    assert_eq!(first.data, "ok", "the plain text, not JSON");

    let id = d.create_on("relay", &up.base_url(), json!({})).await;
    d.trigger(id).await;
    let done = events.until("run_completed").await;
    assert_eq!(done["status"], "degraded", "{done}");
    assert_eq!(done["run_status"], "completed", "{done}");
    assert_eq!(done["target_status"], "degraded", "{done}");
    assert_eq!(done["target_name"], "relay");
    assert_eq!(
        (&done["total"], &done["success"], &done["fail"]),
        (&json!(2), &json!(1), &json!(1))
    );

    // A run that cannot even list the models: the target is in error, and so is the run.
    let dead = d.create_target("dead", "sk-dead-relay-00000000000").await;
    d.trigger(dead).await;
    let done = events.until("run_completed").await;
    assert_eq!(done["target_id"], dead);
    assert_eq!(
        (&done["status"], &done["run_status"]),
        (&json!("error"), &json!("error"))
    );
}

#[tokio::test]
async fn a_target_id_that_is_no_integer_is_a_bad_request() {
    let d = TestDaemon::start().await;
    let id = d.create_target("relay", "sk-id-checks-000000000000").await;
    for (method, path) in [
        (Method::GET, "/api/targets/abc"),
        (Method::PATCH, "/api/targets/abc"),
        (Method::DELETE, "/api/targets/1x"),
        (Method::GET, "/api/targets/abc/runs"),
        (Method::GET, "/api/targets/abc/logs"),
        (Method::GET, "/api/targets/abc/models"),
        (Method::POST, "/api/targets/abc/run"),
        (Method::GET, "/api/targets/99999999999999999999"),
        (Method::PATCH, "/api/admin/channels/abc/advanced"),
    ] {
        let (s, v) = d
            .admin(method.clone(), path, Some(&json!({"max_models": 5})))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{method} {path}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains("is not an integer"),
            "{method} {path}: {v}"
        );
    }
    for path in ["/api/targets/0", "/api/targets/-1", "/api/targets/999"] {
        let (s, _) = d.admin(Method::GET, path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    // Nothing was changed or deleted on the way.
    let (s, v) = d
        .admin(Method::GET, &format!("/api/targets/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["item"]["max_models"], 0);
}
