//! Runs end to end: a real daemon probing a fake relay over loopback, storing what it
//! found, serving it through the API, logging it to JSONL and streaming events.
//! One file for the run lifecycle, trigger to pruning, so a reader finds every pinned
//! behaviour of a run in one place.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|e| e.0.as_str()).collect()
}

#[tokio::test]
async fn a_triggered_run_probes_every_model_and_stores_what_it_found() {
    let up = fake_upstream(
        &[
            "gpt-4o",
            "claude-3-5-sonnet",
            "gpt-4o-err401",
            "gemini-2.0-flash",
        ],
        0,
    )
    .await;
    let d = TestDaemon::start().await;
    let id = d.create_on("relay", &up.base_url(), json!({})).await;
    let mut sse = d.events(Some(ADMIN_TOKEN)).await;
    assert_eq!(sse.next(5).await.unwrap().0, "connected");

    let (s, v) = d.trigger(id).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["message"], "run started");
    let events = sse.until("run_completed", 30).await;
    let run = d.wait_run(id).await;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["total"], 4);
    assert_eq!(run["success"], 3);
    assert_eq!(run["fail"], 1);

    // Events in order: started, one result per model, completed.
    let n = names(&events);
    assert_eq!(n.first(), Some(&"run_started"));
    assert_eq!(n.iter().filter(|e| **e == "model_result").count(), 4);
    assert_eq!(n.last(), Some(&"run_completed"));
    let done = &events.last().unwrap().1;
    // `status` is the target's health, as the Go program sends it; the run's own
    // state is `run_status`.
    assert_eq!(done["status"], "degraded");
    assert_eq!(done["run_status"], "completed");
    assert_eq!(done["target_status"], "degraded");
    assert_eq!(done["target_name"], "relay");
    assert_eq!(
        (
            done["total"].as_i64(),
            done["success"].as_i64(),
            done["fail"].as_i64()
        ),
        (Some(4), Some(3), Some(1))
    );
    let (next, data) = sse.next(5).await.unwrap();
    assert_eq!(next, "target_updated");
    assert_eq!(data["last_status"], "degraded");

    // The list: latest results with a compact history, asked for by name.
    let (_, list) = d
        .admin(Method::GET, "/api/targets?history_format=compact", None)
        .await;
    let t = &list["items"][0];
    assert_eq!(t["last_status"], "degraded");
    assert_eq!(t["last_success_rate"], 75.0);
    assert_eq!(t["history_runs"].as_array().unwrap().len(), 1);
    let latest = t["latest_models"].as_array().unwrap();
    assert_eq!(latest.len(), 4);
    let by = |m: &str| latest.iter().find(|x| x["model"] == m).unwrap().clone();
    let ok = by("claude-3-5-sonnet");
    assert_eq!(ok["protocol"], "anthropic");
    assert_eq!(ok["status"], "ok");
    assert_eq!(ok["history"]["s"], "1");
    assert!(ok["ttft_ms"].as_f64().unwrap() > 0.0);
    let bad = by("gpt-4o-err401");
    assert_eq!(bad["error_class"], "auth");
    assert_eq!(bad["history"]["s"], "0");
    assert_eq!(bad["history"]["e"]["0"], "auth");

    // Runs and logs.
    let (_, logs) = d
        .admin(Method::GET, &format!("/api/targets/{id}/logs"), None)
        .await;
    assert_eq!(logs["count"], 4);
    assert_eq!(logs["run"]["id"], run["id"]);
    let row = logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "gpt-4o")
        .unwrap()
        .clone();
    assert_eq!(row["success"], true);
    assert_eq!(row["protocol"], "openai");
    assert_eq!(row["route"], "chat");
    assert_eq!(row["endpoint"], "chat");
    assert_eq!(row["path"], "/v1/chat/completions");
    assert_eq!(row["route_rule"], "default");
    assert_eq!(row["stream"], true);
    assert_eq!(row["status_code"], 200);

    // Paging through the rows.
    let (_, page) = d
        .admin(
            Method::GET,
            &format!("/api/targets/{id}/logs?limit=2&offset=2"),
            None,
        )
        .await;
    assert_eq!(page["count"], 2);
    let first_two: Vec<Value> = logs["items"].as_array().unwrap()[2..4].to_vec();
    assert_eq!(page["items"].as_array().unwrap(), &first_two);

    // The JSONL file: one row per probe plus discovery and completion, ids on each.
    let file = d.dir.join(run["log_file"].as_str().unwrap());
    let text = std::fs::read_to_string(&file).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.iter().filter(|r| r["kind"] == "probe").count(), 4);
    assert!(
        rows.iter()
            .all(|r| r["target_id"] == id && r["run_id"] == run["id"])
    );
    assert_eq!(rows.first().unwrap()["kind"], "discovery");
    assert_eq!(rows.last().unwrap()["kind"], "run_completed");

    // The relay echoed the key in its 401; it is nowhere: not in the database, the WAL,
    // the JSONL log, the API or the events.
    for (path, bytes) in d.data_files() {
        assert!(
            !contains(&bytes, UPSTREAM_KEY),
            "{} holds the key",
            path.display()
        );
    }
    let all_events = serde_json::to_string(&events).unwrap();
    assert!(!all_events.contains(UPSTREAM_KEY));
    assert!(
        all_events.contains("[redacted]"),
        "the scrubbed error is there"
    );
    let (_, raw, _) = d
        .send(
            Method::GET,
            &format!("/api/targets/{id}/logs"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert!(!raw.contains(UPSTREAM_KEY));
}

#[tokio::test]
async fn visitors_get_the_same_events_without_secrets() {
    let up = fake_upstream(&["gpt-4o"], 0).await;
    let d = TestDaemon::start().await;
    let id = d.create_on("relay", &up.base_url(), json!({})).await;
    let mut sse = d.events(Some(VISITOR_TOKEN)).await;
    assert_eq!(sse.next(5).await.unwrap().0, "connected");
    d.trigger(id).await;
    let events = sse.until("run_completed", 30).await;
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(UPSTREAM_KEY));
    assert!(!text.contains(&up.base_url()), "no base URL in events");
    // No token, visitor mode off: refused.
    let resp = d.http.get(d.url("/api/events")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_stalled_event_reader_is_told_how_many_events_it_missed() {
    let d = TestDaemon::start().await;
    let mut sse = d.events(Some(ADMIN_TOKEN)).await;
    assert_eq!(sse.next(5).await.unwrap().0, "connected");
    // The reader stalls while far more events are published than the bus and the
    // socket buffers hold; publishing never waits for it.
    let started = Instant::now();
    for i in 0..60_000 {
        d.core().bus.publish(apimond::events::Event::TargetDeleted {
            target_id: i,
            ts: 0.0,
        });
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "publishing did not wait for the reader"
    );
    let mut lagged = None;
    let mut last_id = 0;
    while let Some((name, data)) = sse.next(5).await {
        match name.as_str() {
            "lagged" => lagged = data["missed"].as_u64(),
            "target_deleted" => last_id = data["target_id"].as_i64().unwrap(),
            other => panic!("unexpected {other}"),
        }
        if last_id == 59_999 {
            break;
        }
    }
    assert!(
        lagged.is_some_and(|n| n > 0),
        "a lagged event with the count"
    );
    assert_eq!(last_id, 59_999, "the reader goes on after lagging");
}

#[tokio::test]
async fn probes_per_run_stay_within_their_limit_and_manual_runs_start_at_once() {
    let models: Vec<String> = (0..12).map(|i| format!("gpt-4o-{i:02}")).collect();
    let refs: Vec<&str> = models.iter().map(String::as_str).collect();
    let up = fake_upstream(&refs, 300).await;
    let mut env = STANDARD.to_vec();
    env.extend([
        ("MONITOR_DETECT_CONCURRENCY", "3"),
        ("MONITOR_MAX_PARALLEL_TARGETS", "2"),
    ]);
    let d = TestDaemon::start_with(&env).await;
    let a = d.create_on("a", &up.base_url(), json!({})).await;
    let b = d.create_on("b", &up.base_url(), json!({})).await;
    let c = d.create_on("c", &up.base_url(), json!({})).await;

    // One run: exactly three probes at a time.
    d.trigger(a).await;
    d.wait_run(a).await;
    assert_eq!(
        up.peak_in_flight(),
        3,
        "MONITOR_DETECT_CONCURRENCY reached and held"
    );

    // Three manual triggers past a parallel limit of two: all three start at once, as
    // in the Go program, each still with three probes at a time.
    up.reset_peak();
    for id in [a, b, c] {
        let (s, v) = d.trigger(id).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["message"], "run started");
        assert_eq!(v["queued"], false, "{v}");
    }
    // A target never runs twice.
    let (s, v) = d.trigger(a).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["detail"], format!("target {a} is already running"));
    let (_, health) = d.admin(Method::GET, "/api/health", None).await;
    assert_eq!(health["queued_targets"], json!([]));
    assert_eq!(health["running_targets"], json!([a, b, c]));
    for id in [a, b, c] {
        let run = d.wait_run(id).await;
        assert_eq!(run["status"], "completed");
        assert_eq!(run["trigger"], "manual");
    }
    assert_eq!(
        up.peak_in_flight(),
        9,
        "three runs of three probes, never more"
    );
}

#[tokio::test]
async fn scheduled_runs_wait_while_manual_runs_fill_the_parallel_limit() {
    // The manual run takes a few seconds: 12 models, 3 at a time, 800 ms each.
    let models: Vec<String> = (0..12).map(|i| format!("gpt-4o-{i:02}")).collect();
    let refs: Vec<&str> = models.iter().map(String::as_str).collect();
    let slow = fake_upstream(&refs, 800).await;
    let quick = fake_upstream(&["gpt-4o"], 50).await;
    let mut env = STANDARD.to_vec();
    env.push(("MONITOR_MAX_PARALLEL_TARGETS", "1"));
    let d = TestDaemon::start_with(&env).await;
    let manual = d
        .create_on("manual", &slow.base_url(), json!({"enabled": false}))
        .await;
    let s1 = d
        .create_on("s1", &quick.base_url(), json!({"enabled": false}))
        .await;
    let s2 = d
        .create_on("s2", &quick.base_url(), json!({"enabled": false}))
        .await;
    let (_, v) = d.trigger(manual).await;
    assert_eq!(v["message"], "run started");

    // Two scheduled runs fall due while the manual run fills the limit of one.
    let now = apimond::store::now();
    for (id, late) in [(s1, 100.0), (s2, 50.0)] {
        let (s, v) = d
            .admin(
                Method::PATCH,
                &format!("/api/targets/{id}"),
                Some(&json!({"enabled": true})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        d.core().store.set_next_due(id, now - late).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, health) = d.admin(Method::GET, "/api/health", None).await;
        if health["queued_targets"] == json!([s1, s2]) {
            assert_eq!(health["running_targets"], json!([manual]), "{health}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduled runs never queued: {health}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A manual trigger of a queued target starts it now, in place of its queued run.
    let (s, v) = d.trigger(s2).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["message"], "run started");
    let (_, health) = d.admin(Method::GET, "/api/health", None).await;
    assert_eq!(health["queued_targets"], json!([s1]), "{health}");
    assert_eq!(health["running_targets"], json!([manual, s2]), "{health}");

    // The scheduled run starts only once both manual runs are over.
    let m = d.wait_run(manual).await;
    let r2 = d.wait_run(s2).await;
    let r1 = d.wait_run(s1).await;
    assert_eq!(m["trigger"], "manual");
    assert_eq!(r2["trigger"], "manual");
    assert_eq!(r1["trigger"], "schedule");
    let started = r1["started_at"].as_f64().unwrap();
    for other in [&m, &r2] {
        assert!(
            started >= other["finished_at"].as_f64().unwrap(),
            "the scheduled run started at {started} while {other} ran"
        );
    }
    let (_, runs) = d
        .admin(Method::GET, &format!("/api/targets/{s2}/runs"), None)
        .await;
    assert_eq!(
        runs["items"].as_array().unwrap().len(),
        1,
        "s2 ran once: its queued slot was taken over"
    );
}

#[tokio::test]
async fn a_stop_waits_for_manual_runs_past_the_parallel_limit() {
    let up = fake_upstream(&["gpt-4o"], 1500).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut env = STANDARD.to_vec();
    env.push(("MONITOR_MAX_PARALLEL_TARGETS", "1"));
    let mut d = TestDaemon::start_in(&dir, &env).await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(
            d.create_on(name, &up.base_url(), json!({"enabled": false}))
                .await,
        );
    }
    for id in &ids {
        d.trigger(*id).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.in_flight() < 3 {
        assert!(Instant::now() < deadline, "three probes never in flight");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Well within the grace period: every run ends on its own and is recorded whole.
    d.stop().await;
    d.restart_with(&env).await;
    for id in ids {
        let (_, runs) = d
            .admin(Method::GET, &format!("/api/targets/{id}/runs"), None)
            .await;
        let run = &runs["items"][0];
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(run["total"], 1, "{run}");
    }
}

#[tokio::test]
async fn the_per_host_cap_bounds_probes_across_runs() {
    let models: Vec<String> = (0..8).map(|i| format!("gpt-4o-{i}")).collect();
    let refs: Vec<&str> = models.iter().map(String::as_str).collect();
    let up = fake_upstream(&refs, 300).await;
    let mut env = STANDARD.to_vec();
    env.extend([
        ("MONITOR_DETECT_CONCURRENCY", "4"),
        ("MONITOR_MAX_PARALLEL_TARGETS", "3"),
        ("MONITOR_HOST_CONCURRENCY", "5"),
    ]);
    let d = TestDaemon::start_with(&env).await;
    let ids = [
        d.create_on("a", &up.base_url(), json!({})).await,
        d.create_on("b", &up.base_url(), json!({})).await,
        d.create_on("c", &up.base_url(), json!({})).await,
    ];
    for id in ids {
        d.trigger(id).await;
    }
    for id in ids {
        d.wait_run(id).await;
    }
    assert_eq!(
        up.peak_in_flight(),
        5,
        "one relay host gets at most MONITOR_HOST_CONCURRENCY"
    );
}

#[tokio::test]
async fn a_hanging_model_times_out_without_holding_up_the_rest() {
    let up = fake_upstream(&["gpt-4o", "gpt-4o-hang", "claude-3-haiku"], 0).await;
    let d = TestDaemon::start().await;
    let id = d
        .create_on("hangs", &up.base_url(), json!({"timeout_s": 3.0}))
        .await;
    let mut sse = d.events(Some(ADMIN_TOKEN)).await;
    sse.next(5).await;
    let started = Instant::now();
    d.trigger(id).await;
    let mut quick = Vec::new();
    let events = sse.until("run_completed", 30).await;
    for (name, data) in &events {
        if name == "model_result" && data["success"] == true {
            quick.push(data["ts"].as_f64().unwrap());
        }
    }
    assert_eq!(quick.len(), 2, "both working models passed");
    let hang = events
        .iter()
        .find(|e| e.1["model"] == "gpt-4o-hang")
        .unwrap();
    assert_eq!(hang.1["error_class"], "timeout");
    let run_ts = events[0].1["ts"].as_f64().unwrap();
    for ts in quick {
        assert!(
            ts - run_ts < 2.0,
            "a working model waited for the hanging one"
        );
    }
    // Two attempts of 3 s plus the pause between them.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(d.wait_run(id).await["status"], "completed");
}

#[tokio::test]
async fn discovery_failures_end_the_run_as_error_and_model_list_changes_are_events() {
    let up = fake_upstream(&["gpt-4o", "gpt-4o-old"], 0).await;
    let d = TestDaemon::start().await;
    let id = d.create_on("changing", &up.base_url(), json!({})).await;
    d.trigger(id).await;
    d.wait_run(id).await;

    up.set_models(vec!["gpt-4o".into(), "gpt-4o-new".into()]);
    let mut sse = d.events(Some(ADMIN_TOKEN)).await;
    sse.next(5).await;
    d.trigger(id).await;
    let events = sse.until("run_completed", 30).await;
    let changed = events
        .iter()
        .find(|e| e.0 == "models_changed")
        .expect("models_changed");
    assert_eq!(changed.1["added"], json!(["gpt-4o-new"]));
    assert_eq!(changed.1["removed"], json!(["gpt-4o-old"]));
    assert_eq!(changed.1["total"], 2);
    d.wait_run(id).await;
    let (_, v) = d
        .admin(Method::GET, &format!("/api/targets/{id}"), None)
        .await;
    let models: Vec<&str> = v["item"]["latest_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        ["gpt-4o", "gpt-4o-new"],
        "a model that left the channel leaves the list"
    );

    up.set_discovery(testkit::Discovery::Status(502));
    d.trigger(id).await;
    let run = d.wait_run(id).await;
    assert_eq!(run["status"], "error");
    assert!(run["error"].as_str().unwrap().contains("HTTP 502"), "{run}");
    let (_, v) = d
        .admin(Method::GET, &format!("/api/targets/{id}"), None)
        .await;
    assert_eq!(v["item"]["last_status"], "error");
    assert!(
        v["item"]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("model discovery failed")
    );
}

#[tokio::test]
async fn the_model_selection_decides_what_is_probed() {
    let up = fake_upstream(
        &[
            "gpt-4o",
            "claude-3-haiku",
            "text-embedding-3-small",
            "gemini-pro",
        ],
        0,
    )
    .await;
    let d = TestDaemon::start().await;
    let id = d
        .create_on(
            "select",
            &up.base_url(),
            json!({"exclude_models": ["*embedding*"]}),
        )
        .await;
    d.trigger(id).await;
    d.wait_run(id).await;
    assert_eq!(
        up.requests_for("text-embedding-3-small"),
        0,
        "excluded by glob"
    );
    let (s, v) = d
        .admin(Method::GET, &format!("/api/targets/{id}/models"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["item"]["discovered"].as_array().unwrap().len(), 4);
    assert_eq!(
        v["item"]["probed"],
        json!(["gpt-4o", "claude-3-haiku", "gemini-pro"])
    );
    let claude = v["item"]["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "claude-3-haiku")
        .unwrap()
        .clone();
    assert_eq!(claude["protocol"], "anthropic");
    assert_eq!(claude["latest"]["status"], "ok");

    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{id}/models"),
            Some(&json!({"selected_models": ["gpt-4o", "nope-1"]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["detail"],
        "selected_models: 1 not offered by this channel: nope-1"
    );
    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/admin/channels/{id}/models"),
            Some(&json!({"selected_models": ["gemini-pro"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["item"]["probed"], json!(["gemini-pro"]));
    let before = up.requests_for("gpt-4o");
    d.trigger(id).await;
    d.wait_run(id).await;
    assert_eq!(
        up.requests_for("gpt-4o"),
        before,
        "unselected models are not probed"
    );
    assert_eq!(up.requests_for("gemini-pro"), 2);
    let (s, _, _) = d
        .send(
            Method::PATCH,
            &format!("/api/targets/{id}/models"),
            Some(VISITOR_TOKEN),
            Some(&json!({"selected_models": []})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn visitors_may_run_only_targets_that_allow_it_and_are_rate_limited() {
    let up = fake_upstream(&["gpt-4o"], 0).await;
    let d = TestDaemon::start().await;
    let closed = d.create_on("closed", &up.base_url(), json!({})).await;
    let open = d
        .create_on(
            "open",
            &up.base_url(),
            json!({"visitor_channel_actions_enabled": true}),
        )
        .await;
    let (s, _, v) = d
        .send(
            Method::POST,
            &format!("/api/targets/{closed}/run"),
            Some(VISITOR_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    for i in 0..6 {
        let (s, _, v) = d
            .send(
                Method::POST,
                &format!("/api/targets/{open}/run"),
                Some(VISITOR_TOKEN),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "attempt {i}: {v}");
        d.wait_run(open).await;
    }
    let (s, _, v) = d
        .send(
            Method::POST,
            &format!("/api/targets/{open}/run"),
            Some(VISITOR_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    // Admins are not rate-limited.
    let (s, _) = d.trigger(open).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = d
        .send(
            Method::POST,
            &format!("/api/targets/{open}/run"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_most_overdue_target_runs_first_and_the_lag_is_visible() {
    // Each run lasts a second, so a loaded machine still sees the queue of two.
    let up = fake_upstream(&["gpt-4o"], 1000).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut env = STANDARD.to_vec();
    env.push(("MONITOR_MAX_PARALLEL_TARGETS", "1"));
    let mut d = TestDaemon::start_in(&dir, &env).await;
    let ids = [
        d.create_on("a", &up.base_url(), json!({"enabled": false}))
            .await,
        d.create_on("b", &up.base_url(), json!({"enabled": false}))
            .await,
        d.create_on("c", &up.base_url(), json!({"enabled": false}))
            .await,
    ];
    d.stop().await;
    // While stopped: enable them, overdue by 100, 300 and 200 seconds.
    let now = apimond::store::now();
    {
        let conn = rusqlite::Connection::open(dir.join("registry.db")).unwrap();
        for (id, late) in ids.iter().zip([100.0, 300.0, 200.0]) {
            conn.execute(
                "UPDATE targets SET enabled = 1, next_due_at = ?2 WHERE id = ?1",
                rusqlite::params![id, now - late],
            )
            .unwrap();
        }
    }
    d.restart_with(&env).await;
    // The first scheduling pass queues all three and starts the most overdue.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, dash) = d.admin(Method::GET, "/api/dashboard", None).await;
        if dash["queued_runs"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never saw two queued runs: {dash}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, health) = d.admin(Method::GET, "/api/health", None).await;
    assert!(
        health["scheduler_lag_s"].as_f64().unwrap() >= 99.0,
        "{health}"
    );
    let (_, dash) = d.admin(Method::GET, "/api/dashboard", None).await;
    assert!(dash["scheduler_lag_s"].as_f64().unwrap() >= 99.0, "{dash}");
    let mut started = Vec::new();
    for id in ids {
        let run = d.wait_run(id).await;
        started.push((run["started_at"].as_f64().unwrap(), id));
    }
    started.sort_by(|a, b| a.0.total_cmp(&b.0));
    let order: Vec<i64> = started.iter().map(|s| s.1).collect();
    assert_eq!(order, [ids[1], ids[2], ids[0]], "most overdue first");
    // Each next due time stays on its grid: previous due + interval.
    let schedule = d.core().store.schedule().await.unwrap();
    for (id, late) in ids.iter().zip([100.0, 300.0, 200.0]) {
        let next = schedule
            .iter()
            .find(|s| s.target_id == *id)
            .unwrap()
            .next_due
            .unwrap();
        assert!(
            (next - (now - late + 1800.0)).abs() < 0.01,
            "target {id}: {next}"
        );
    }
}

#[tokio::test]
async fn old_raw_rows_are_pruned_and_rollups_kept() {
    let up = fake_upstream(&["gpt-4o"], 0).await;
    let d = TestDaemon::start().await;
    let id = d.create_on("old", &up.base_url(), json!({})).await;
    d.trigger(id).await;
    let run = d.wait_run(id).await;
    let store = &d.core().store;
    // Back-date a probe to 10 days ago, as if it had been stored then.
    let s = shared::probe::ProbeSettings {
        base_url: up.base_url(),
        api_key: shared::Secret::new(UPSTREAM_KEY),
        timeout: Duration::from_secs(5),
        verify_ssl: true,
        anthropic_version: "2023-06-01".into(),
        extra_headers: Default::default(),
        user_agent: None,
        max_tokens: None,
        check_mode: shared::probe::CheckMode::Challenge,
        prompt: "hi".into(),
        slow_ms: 10_000,
        route_overrides: vec![],
        proxy: Default::default(),
        client_profile: Default::default(),
    };
    let mut old = d.core().prober.probe(&s, "gpt-4o", true).await;
    let ten_days = 10.0 * 86_400.0;
    old.started_at -= ten_days;
    let old_run = store.start_run(id, "schedule").await.unwrap();
    store
        .record_probes_now(old_run.id, id, vec![old.clone()])
        .await
        .unwrap();
    let (_, all) = d
        .admin(
            Method::GET,
            &format!("/api/targets/{id}/logs?scope=all"),
            None,
        )
        .await;
    assert_eq!(all["count"], 2);

    let now = apimond::store::now();
    d.core().upkeep.roll_up_all().await;
    let (rows, _, rollups) = store
        .prune(
            now - 7.0 * 86_400.0,
            now - 30.0 * 86_400.0,
            now - 400.0 * 86_400.0,
        )
        .await
        .unwrap();
    assert_eq!(
        (rows, rollups),
        (1, 0),
        "the 10-day-old row went, its rollups stayed"
    );
    let (_, all) = d
        .admin(
            Method::GET,
            &format!("/api/targets/{id}/logs?scope=all"),
            None,
        )
        .await;
    assert_eq!(all["count"], 1);
    assert_eq!(all["items"][0]["run_id"], run["id"]);
    let daily = store
        .rollups(id, "day", now - 30.0 * 86_400.0)
        .await
        .unwrap();
    assert_eq!(
        daily.iter().map(|r| r.count).sum::<i64>(),
        2,
        "both probes counted in daily rollups"
    );
    let p50 = daily
        .iter()
        .find(|r| r.bucket_start <= old.started_at && old.started_at < r.bucket_start + 86_400.0)
        .unwrap();
    assert!(p50.latency_p50_ms.is_some());
    // Rollups go only past their own window.
    let (_, _, rollups) = store
        .prune(
            now - 7.0 * 86_400.0,
            now - 5.0 * 86_400.0,
            now - 9.0 * 86_400.0,
        )
        .await
        .unwrap();
    assert_eq!(rollups, 2, "the old hourly and daily buckets");
}

#[tokio::test]
async fn stopping_mid_run_marks_the_run_interrupted_and_keeps_the_last_status() {
    let models: Vec<String> = (0..6).map(|i| format!("gpt-4o-{i}")).collect();
    let refs: Vec<&str> = models.iter().map(String::as_str).collect();
    let up = fake_upstream(&refs, 700).await;
    let mut env = STANDARD.to_vec();
    env.push(("MONITOR_DETECT_CONCURRENCY", "1"));
    let mut d = TestDaemon::start_with(&env).await;
    let id = d.create_on("long", &up.base_url(), json!({})).await;
    let mut sse = d.events(Some(ADMIN_TOKEN)).await;
    sse.next(5).await;
    d.trigger(id).await;
    sse.until("model_result", 10).await;
    d.restart_with(&env).await;
    let (_, runs) = d
        .admin(Method::GET, &format!("/api/targets/{id}/runs"), None)
        .await;
    let run = &runs["items"][0];
    assert_eq!(run["status"], "interrupted", "{run}");
    let total = run["total"].as_i64().unwrap();
    assert!((1..6).contains(&total), "partial counts: {run}");
    let (_, t) = d
        .admin(Method::GET, &format!("/api/targets/{id}"), None)
        .await;
    assert_eq!(
        t["item"]["last_status"],
        Value::Null,
        "an interrupted run does not set the status"
    );
}

#[tokio::test]
async fn global_route_rules_and_target_overrides_pick_the_protocol() {
    let up = fake_upstream(&["deepseek-chat", "claude-proxy-openai", "gpt-4o"], 0).await;
    let mut env = STANDARD.to_vec();
    env.push(("ROUTE_RULES", "*deepseek*=anthropic"));
    let d = TestDaemon::start_with(&env).await;
    let id = d
        .create_on(
            "routes",
            &up.base_url(),
            json!({"route_overrides": [{"pattern": "claude-proxy-*", "protocol": "openai"}]}),
        )
        .await;
    d.trigger(id).await;
    d.wait_run(id).await;
    let (_, v) = d
        .admin(Method::GET, &format!("/api/targets/{id}/models"), None)
        .await;
    let route = |m: &str| {
        let e = v["item"]["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["model"] == m)
            .unwrap()
            .clone();
        (
            e["protocol"].as_str().unwrap().to_string(),
            e["route_rule"].as_str().unwrap().to_string(),
            e["latest"]["status"].clone(),
        )
    };
    assert_eq!(
        route("deepseek-chat"),
        ("anthropic".into(), "*deepseek*".into(), json!("ok"))
    );
    assert_eq!(
        route("claude-proxy-openai"),
        ("openai".into(), "claude-proxy-*".into(), json!("ok"))
    );
    assert_eq!(
        route("gpt-4o"),
        ("openai".into(), "default".into(), json!("ok"))
    );
    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{id}"),
            Some(&json!({"route_overrides": [{"pattern": "x", "protocol": "cohere"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("route_overrides[0].protocol: must be one of")
    );
}

#[tokio::test]
async fn run_logs_are_pruned_beyond_the_cap_unless_cleanup_is_off() {
    let up = fake_upstream(&["gpt-4o"], 0).await;
    let mut env = STANDARD.to_vec();
    env.push(("LOG_MAX_SIZE_MB", "0"));
    let d = TestDaemon::start_with(&env).await;
    let id = d
        .create_on("logged", &up.base_url(), json!({"enabled": false}))
        .await;
    let jsonl = |d: &TestDaemon| -> usize {
        std::fs::read_dir(d.dir.join("logs"))
            .map(|r| {
                r.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
                    .count()
            })
            .unwrap_or(0)
    };
    d.trigger(id).await;
    d.wait_run(id).await;
    assert_eq!(jsonl(&d), 0, "a cap of 0 MB keeps no finished log");
    let (s, _) = d
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(&json!({"log_cleanup_enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    d.trigger(id).await;
    d.wait_run(id).await;
    assert_eq!(jsonl(&d), 1, "with cleanup off the log stays");
}

#[tokio::test]
async fn a_new_interval_or_enabling_again_places_the_next_run_afresh() {
    let d = TestDaemon::start().await;
    let id = d.create_target("sched", "sk-sched-000000000000000").await;
    let store = &d.core().store;
    store
        .set_next_due(id, apimond::store::now() + 86_400.0)
        .await
        .unwrap();
    let due = |s: &Vec<apimond::store::schedule::ScheduleEntry>| {
        s.iter().find(|r| r.target_id == id).unwrap().next_due
    };
    let (s, _) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{id}"),
            Some(&json!({"prompt": "hi"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        due(&store.schedule().await.unwrap()).is_some(),
        "other changes keep the slot"
    );
    d.admin(
        Method::PATCH,
        &format!("/api/targets/{id}"),
        Some(&json!({"interval_min": 5})),
    )
    .await;
    let next = due(&store.schedule().await.unwrap());
    // Cleared, or already re-placed by the scheduler within its first-run window.
    assert!(
        next.is_none_or(|t| t < apimond::store::now() + 301.0),
        "{next:?}"
    );
}

#[tokio::test]
async fn event_streams_end_when_settings_change_so_revoked_visitors_are_cut_off() {
    // The visitor token is set in the panel (one from the environment could not be revoked).
    let d = TestDaemon::start_with(&[("API_MONITOR_TOKEN", ADMIN_TOKEN)]).await;
    let (s, _) = d
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(&json!({"api_monitor_token_visitor": VISITOR_TOKEN})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut sse = d.events(Some(VISITOR_TOKEN)).await;
    assert_eq!(sse.next(5).await.unwrap().0, "connected");
    let (s, _) = d
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(&json!({"api_monitor_token_visitor": ""})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(sse.next(5).await.is_none(), "the stream ended");
    let resp = d
        .http
        .get(d.url(&format!("/api/events?token={VISITOR_TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "the revoked token cannot reconnect"
    );
}
