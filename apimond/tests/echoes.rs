//! An upstream that echoes the key upper-cased and without its `sk-` prefix, and
//! names its own address, in its error: nobody sees the key (admins neither), and
//! visitors see no relay address either while `visitor_show_base_url` is off — in
//! target lists, one target, runs, logs, models and the event stream.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

/// A relay refusing every request with an error that echoes `key` in two disguises
/// and its own URL. Returns its base URL.
async fn echoing_relay(key: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || async move {
        let message = format!(
            "Invalid key {} (also tried {}); see http://{addr}/docs or ask {}",
            key.to_uppercase(),
            key.trim_start_matches("sk-"),
            addr.ip()
        );
        (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"message": message, "code": "invalid_api_key"}})),
        )
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_keys_and_the_relay_address_never_reach_visitors() {
    const KEY: &str = "sk-Echo-Me-Please-0123456789abcdef";
    let base = echoing_relay(KEY).await;
    let d = TestDaemon::start().await;
    let (s, v) = d
        .admin(
            Method::POST,
            "/api/targets",
            Some(&json!({"name": "echo", "base_url": base, "api_key": KEY})),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let id = v["item"]["id"].as_i64().unwrap();
    let mut visitor_events = d.events(Some(VISITOR_TOKEN)).await;
    assert_eq!(visitor_events.next(5).await.unwrap().0, "connected");
    d.trigger(id).await;
    let run = d.wait_run(id).await;
    assert_eq!(run["status"], "error", "{run}");

    let host = base.trim_start_matches("http://");
    let ip = host.split(':').next().unwrap();
    let key_bits = ["echo-me-please", "ECHO-ME-PLEASE", "0123456789abcdef"];
    let paths = [
        "/api/targets".to_string(),
        format!("/api/targets/{id}"),
        format!("/api/targets/{id}/runs"),
        format!("/api/targets/{id}/logs"),
        format!("/api/targets/{id}/models"),
    ];
    let mut admin_saw_host = false;
    for path in &paths {
        let (_, admin_text, _) = d.send(Method::GET, path, Some(ADMIN_TOKEN), None).await;
        let (s, visitor_text, _) = d.send(Method::GET, path, Some(VISITOR_TOKEN), None).await;
        assert!(s.is_success(), "{path}: {visitor_text}");
        for text in [&admin_text, &visitor_text] {
            for bit in key_bits {
                assert!(!text.contains(bit), "{path} shows `{bit}`: {text}");
            }
        }
        admin_saw_host |= admin_text.contains(host);
        assert!(
            !visitor_text.contains(host),
            "{path} shows the relay to visitors"
        );
        assert!(
            !visitor_text.contains(ip),
            "{path} shows the relay's IP to visitors"
        );
    }
    assert!(admin_saw_host, "admins still see the relay");
    assert!(
        run["error"].as_str().unwrap().contains("[redacted]"),
        "{run}"
    );

    // The event stream too.
    let mut saw_completed = false;
    while let Some((name, data)) = visitor_events.next(5).await {
        let text = data.to_string();
        for bit in key_bits {
            assert!(!text.contains(bit), "{name}: {text}");
        }
        assert!(!text.contains(host) && !text.contains(ip), "{name}: {text}");
        if name == "run_completed" {
            saw_completed = true;
            break;
        }
    }
    assert!(saw_completed);
}
