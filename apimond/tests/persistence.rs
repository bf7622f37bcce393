//! What survives a restart, what configuration pins, and what the data directory
//! never holds: restarts, environment precedence, the data-dir lock, the secret key
//! check, schema upgrades, and the plaintext channel key absent from every file.
//! One file for what outlives a daemon process, so every pinned behaviour of the data
//! directory and its configuration sits in one place.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

const FIXTURE_KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";

fn credentials(dir: &std::path::Path) -> toml::Table {
    let text = std::fs::read_to_string(dir.join("credentials.toml")).expect("credentials file");
    toml::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_restart_keeps_targets_generated_credentials_and_settings() {
    // No tokens configured: both are generated and written to the credentials file.
    let mut d = TestDaemon::start_with(&[]).await;
    let creds = credentials(&d.dir);
    let token = creds["admin_token"].as_str().unwrap().to_string();
    let password = creds["admin_panel_password"].as_str().unwrap().to_string();
    assert!(token.len() >= 32 && password.len() >= 16);
    use std::os::unix::fs::PermissionsExt;
    for (file, mode) in [
        ("credentials.toml", 0o600),
        ("secret.key", 0o600),
        ("registry.db", 0o600),
    ] {
        let m = std::fs::metadata(d.dir.join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(m, mode, "{file}");
    }
    assert_eq!(
        std::fs::metadata(&d.dir).unwrap().permissions().mode() & 0o777,
        0o700
    );

    let (s, _, v) = d
        .send(
            Method::POST,
            "/api/targets",
            Some(&token),
            Some(&json!({"name": "kept", "base_url": "http://127.0.0.1:9", "api_key": "sk-kept-across-restarts-1"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["item"]["id"].as_i64().unwrap();
    let (s, _, v) = d
        .send(
            Method::PATCH,
            "/api/admin/settings",
            Some(&token),
            Some(&json!({"visitor_mode_enabled": true, "log_max_size_mb": 77, "api_monitor_token_visitor": "visitor-token-kept-1"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    d.restart_with(&[]).await;
    assert_eq!(
        credentials(&d.dir)["admin_token"].as_str().unwrap(),
        token,
        "the token is not regenerated"
    );
    let (s, _, v) = d
        .send(
            Method::POST,
            &format!("/api/targets/{id}/reveal_key"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["item"]["api_key"], "sk-kept-across-restarts-1");
    let (_, _, v) = d
        .send(Method::GET, "/api/admin/settings", Some(&token), None)
        .await;
    assert_eq!(v["item"]["visitor_mode_enabled"], true);
    assert_eq!(v["item"]["log_max_size_mb"], 77);
    let (s, _, _) = d
        .send(
            Method::GET,
            "/api/targets",
            Some("visitor-token-kept-1"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let resp = d
        .http
        .post(d.url("/api/admin/login"))
        .json(&json!({"password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the generated password still works"
    );

    // Any password character survives the credentials file (it is real TOML).
    let odd = r#"pa"ss\word'#=1"#;
    let (s, _, _) = d
        .send(
            Method::PATCH,
            "/api/admin/settings",
            Some(&token),
            Some(&json!({"admin_panel_password": odd})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        credentials(&d.dir)["admin_panel_password"]
            .as_str()
            .unwrap(),
        odd
    );

    // Changing the admin token in the panel takes effect at once and updates the file.
    let (s, _, _) = d
        .send(
            Method::PATCH,
            "/api/admin/settings",
            Some(&token),
            Some(&json!({"api_monitor_token_admin": "a-brand-new-admin-token"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = d
        .send(Method::GET, "/api/targets", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        credentials(&d.dir)["admin_token"].as_str().unwrap(),
        "a-brand-new-admin-token"
    );
    d.restart_with(&[]).await;
    let (s, _, _) = d
        .send(
            Method::GET,
            "/api/targets",
            Some("a-brand-new-admin-token"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn an_environment_value_wins_over_the_stored_one_and_is_read_only() {
    let mut d = TestDaemon::start().await;
    let (s, v) = d
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(&json!({"log_max_size_mb": 50, "default_interval_min": 45})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let mut env = STANDARD.to_vec();
    env.push(("LOG_MAX_SIZE_MB", "900"));
    d.restart_with(&env).await;
    let (_, v) = d.admin(Method::GET, "/api/admin/settings", None).await;
    assert_eq!(v["item"]["log_max_size_mb"], 900, "environment wins");
    assert_eq!(
        v["item"]["default_interval_min"], 45,
        "stored value wins over the default"
    );
    assert_eq!(v["read_only"]["log_max_size_mb"], "LOG_MAX_SIZE_MB");
    assert_eq!(
        v["read_only"]["api_monitor_token_admin"],
        "API_MONITOR_TOKEN"
    );
    assert!(v["read_only"].get("visitor_mode_enabled").is_none());

    let before = v.clone();
    let (s, v) = d
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(&json!({"visitor_mode_enabled": true, "log_max_size_mb": 10})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(
        v["detail"],
        "log_max_size_mb: set by LOG_MAX_SIZE_MB in the environment; change it there and restart"
    );
    let (_, after) = d.admin(Method::GET, "/api/admin/settings", None).await;
    assert_eq!(
        before, after,
        "a refused change writes nothing, not even the valid field"
    );
    let (s, _) = d
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(&json!({"api_monitor_token_admin": "another-admin-token"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Sending a settings object back unchanged (masked secrets included) is fine.
    let (s, v) = d
        .admin(Method::PATCH, "/api/admin/settings", Some(&before["item"]))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // New targets take the default interval from the settings.
    let id = d
        .create_target("interval", "sk-interval-000000000000")
        .await;
    let (_, v) = d
        .admin(Method::GET, &format!("/api/targets/{id}"), None)
        .await;
    assert_eq!(v["item"]["interval_min"], 45);
}

#[tokio::test]
async fn bad_settings_are_refused_with_the_field_named() {
    let d = TestDaemon::start_with(&[
        ("ADMIN_PANEL_PASSWORD", PASSWORD),
        ("API_MONITOR_TOKEN", ADMIN_TOKEN),
    ])
    .await;
    for (body, want) in [
        (
            json!({"log_max_size_mb": 102401}),
            "log_max_size_mb: must be an integer from 0 to 102400",
        ),
        (
            json!({"default_interval_min": 0}),
            "default_interval_min: must be an integer from 1 to 1440",
        ),
        (
            json!({"visitor_mode_enabled": "yes"}),
            "visitor_mode_enabled: must be true or false",
        ),
        (
            json!({"api_monitor_token_visitor": "short"}),
            "api_monitor_token_visitor: must be 8 to 256",
        ),
        (
            json!({"api_monitor_token_visitor": "x".repeat(257)}),
            "api_monitor_token_visitor: must be 8 to 256",
        ),
        (
            json!({"api_monitor_token_visitor": ADMIN_TOKEN}),
            "api_monitor_token_visitor: must differ",
        ),
        (
            json!({"proxy_master_token": "has spaces in it"}),
            "proxy_master_token: must be 8 to 256",
        ),
        (json!({"surprise": 1}), "surprise: unknown field"),
    ] {
        let (s, v) = d
            .admin(Method::PATCH, "/api/admin/settings", Some(&body))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            v["detail"].as_str().unwrap().starts_with(want),
            "{body}: {v}"
        );
    }
    let (s, v) = d
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(&json!({"proxy_master_token": "proxy-master-1234"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["item"]["proxy_master_token_set"], true);
    let (_, v) = d
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(&json!({"proxy_master_token": ""})),
        )
        .await;
    assert_eq!(
        v["item"]["proxy_master_token_set"], false,
        "an empty value clears an optional token"
    );
}

#[tokio::test]
async fn a_second_daemon_on_the_same_data_dir_refuses_to_start() {
    let d = TestDaemon::start().await;
    let err = start_raw(&d.dir, STANDARD)
        .await
        .err()
        .expect("second daemon refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("another apimond is already using DATA_DIR"),
        "{msg}"
    );
    assert!(
        msg.contains(&std::process::id().to_string()),
        "names the holder: {msg}"
    );
    // The first one is unharmed.
    let (s, _, _) = d.send(Method::GET, "/api/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_secret_key_stops_the_start() {
    let mut env = STANDARD.to_vec();
    env.push(("APIMON_SECRET_KEY", FIXTURE_KEY));
    let mut d = TestDaemon::start_with(&env).await;
    d.create_target("sealed", "sk-sealed-with-key-one-0000")
        .await;
    d.stop().await;

    let mut wrong = STANDARD.to_vec();
    let other = "22".repeat(32);
    wrong.push(("APIMON_SECRET_KEY", &other));
    let err = start_raw(&d.dir, &wrong)
        .await
        .err()
        .expect("wrong key refused");
    assert!(
        format!("{err:#}").contains("is not the one this database was encrypted with"),
        "{err:#}"
    );
    // Without the variable there is no key at all: refused, and no new key is made.
    let err = start_raw(&d.dir, STANDARD)
        .await
        .err()
        .expect("missing key refused");
    assert!(
        format!("{err:#}")
            .contains("secret.key is missing; set APIMON_SECRET_KEY to the original key"),
        "{err:#}"
    );
    assert!(!d.dir.join("secret.key").exists());
    // The right key still works.
    d.restart_with(&env).await;
    let (_, v) = d.admin(Method::GET, "/api/targets", None).await;
    assert_eq!(v["items"][0]["name"], "sealed");
}

#[tokio::test]
async fn a_version_one_database_upgrades_without_losing_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    {
        let conn = rusqlite::Connection::open(dir.join("registry.db")).unwrap();
        conn.execute_batch(include_str!("fixtures/registry_v1.sql"))
            .unwrap();
    }
    // The fixture's probe rows are from 2023: keep them inside the raw-row window.
    let mut env = vec![
        ("APIMON_SECRET_KEY", FIXTURE_KEY),
        ("ADMIN_PANEL_PASSWORD", PASSWORD),
        ("RETENTION_RAW_DAYS", "3650"),
    ];
    let mut d = TestDaemon::start_in(&dir, &env).await;
    let token = "fixture-admin-token-123456";

    let (s, _, v) = d.send(Method::GET, "/api/targets", Some(token), None).await;
    assert_eq!(s, StatusCode::OK, "the stored admin token still works: {v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let old = &items[1];
    assert_eq!(old["name"], "old-relay");
    assert_eq!(old["interval_min"], 20);
    assert_eq!(old["timeout_s"], 45.0);
    assert_eq!(old["max_models"], 10);
    assert_eq!(old["last_status"], "degraded");
    assert_eq!(old["last_success_rate"], 66.7);
    assert_eq!(old["selected_models"], json!(["gpt-4o", "claude-3-haiku"]));
    assert_eq!(old["visitor_channel_actions_enabled"], true);
    assert_eq!(old["source_url"], "https://old.example.com/signup");
    // Columns added by version 2 have their defaults.
    assert_eq!(old["probe_mode"], "stream");
    assert_eq!(old["check_mode"], "challenge");
    assert_eq!(old["slow_ms"], 10000);
    assert_eq!(items[0]["name"], "second");
    assert_eq!(items[0]["enabled"], false);
    let (_, _, v) = d
        .send(Method::POST, "/api/targets/1/reveal_key", Some(token), None)
        .await;
    assert_eq!(v["item"]["api_key"], "sk-fixture-key-0000000000000001");

    let (_, _, runs) = d
        .send(Method::GET, "/api/targets/1/runs", Some(token), None)
        .await;
    let runs = runs["items"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[0]["status"], "interrupted",
        "a run left running by a crash is recovered"
    );
    assert!(runs[0]["finished_at"].as_f64().is_some());
    assert_eq!(runs[1]["status"], "completed");
    let (_, _, logs) = d
        .send(
            Method::GET,
            "/api/targets/1/logs?run_id=1",
            Some(token),
            None,
        )
        .await;
    assert_eq!(logs["count"], 3);
    assert_eq!(logs["run"]["id"], 1);
    let models: Vec<&str> = logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["gpt-4o-mini", "claude-3-haiku", "gpt-4o"]);
    let (_, _, settings) = d
        .send(Method::GET, "/api/admin/settings", Some(token), None)
        .await;
    assert_eq!(settings["item"]["visitor_mode_enabled"], true);
    assert_eq!(settings["item"]["log_max_size_mb"], 123);

    d.stop().await;
    let conn = rusqlite::Connection::open(dir.join("registry.db")).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, apimond::store::migrations::LATEST);
    drop(conn);
    env.push(("API_MONITOR_TOKEN", ADMIN_TOKEN));
    d.restart_with(&env).await;
    let (s, _) = d.admin(Method::GET, "/api/targets", None).await;
    assert_eq!(s, StatusCode::OK, "an upgraded database opens again");
}

#[tokio::test]
async fn a_database_from_a_newer_apimond_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    {
        let conn = rusqlite::Connection::open(dir.join("registry.db")).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
    }
    let mut env = STANDARD.to_vec();
    env.push(("APIMON_SECRET_KEY", FIXTURE_KEY));
    let err = start_raw(&dir, &env).await.err().expect("refused");
    assert!(
        format!("{err:#}").contains("schema is version 999, newer than this apimond"),
        "{err:#}"
    );
}

#[tokio::test]
async fn no_file_under_the_data_dir_ever_holds_a_plaintext_channel_key() {
    let d = TestDaemon::start().await;
    let first = "sk-plaintext-hunt-first-0123456789";
    let second = "sk-plaintext-hunt-second-9876543210";
    let assert_absent = |stage: &str| {
        let files = d.data_files();
        assert!(files.iter().any(|(p, _)| p.ends_with("registry.db")));
        for (path, bytes) in &files {
            for key in [first, second] {
                assert!(
                    !contains(bytes, key),
                    "{stage}: {} holds {key}",
                    path.display()
                );
            }
        }
    };
    let id = d.create_target("hunted", first).await;
    assert_absent("after create");
    let (s, _) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{id}"),
            Some(&json!({"api_key": second})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_absent("after update");
    let (s, _) = d
        .admin(Method::DELETE, &format!("/api/targets/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_absent("after delete");
}

#[tokio::test]
async fn extra_header_values_are_sealed_at_rest_masked_when_shown_and_still_sent() {
    let up = fake_upstream(&["gpt-4o"], 0).await;
    let mut d = TestDaemon::start().await;
    let value = "Bearer hdr-secret-value-0123456789";
    let id = d
        .create_on(
            "with-header",
            &up.base_url(),
            json!({"extra_headers": {"X-Relay-Auth": value}}),
        )
        .await;
    let assert_absent = |d: &TestDaemon, stage: &str, secret: &str| {
        for (path, bytes) in d.data_files() {
            assert!(
                !contains(&bytes, secret),
                "{stage}: {} holds the header value",
                path.display()
            );
        }
    };
    assert_absent(&d, "after create", value);

    let (_, t) = d
        .admin(Method::GET, &format!("/api/targets/{id}"), None)
        .await;
    let shown = t["item"]["extra_headers"]["x-relay-auth"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(shown, "Beare…6789", "masked like a key: {t}");
    let (_, list) = d.admin(Method::GET, "/api/targets", None).await;
    assert!(!list.to_string().contains(value));

    // Sent back as shown, the header keeps its value: the probe still carries it.
    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{id}"),
            Some(&json!({"extra_headers": {"x-relay-auth": shown}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    d.trigger(id).await;
    d.wait_run(id).await;
    let sent = up.last_headers().expect("the relay was probed");
    assert_eq!(sent["x-relay-auth"], value);
    assert_absent(&d, "after a run", value);

    // A database from before header values were secrets holds them in plaintext:
    // they are sealed at the next start, and the plaintext leaves every file.
    let legacy = "legacy-plaintext-header-value-42";
    d.stop().await;
    {
        let conn = rusqlite::Connection::open(d.dir.join("registry.db")).unwrap();
        conn.execute(
            "UPDATE targets SET extra_headers = ?1 WHERE id = ?2",
            rusqlite::params![json!({"x-legacy": legacy}).to_string(), id],
        )
        .unwrap();
    }
    d.restart_with(STANDARD).await;
    assert_absent(&d, "after sealing at start", legacy);
    let (_, t) = d
        .admin(Method::GET, &format!("/api/targets/{id}"), None)
        .await;
    assert_eq!(t["item"]["extra_headers"]["x-legacy"], "legac…e-42", "{t}");
    d.trigger(id).await;
    d.wait_run(id).await;
    assert_eq!(up.last_headers().unwrap()["x-legacy"], legacy);
}
