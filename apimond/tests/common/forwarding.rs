//! What the proxy tests share: a daemon with a master token, channels on fake relays
//! probed once, and waiting until the proxy's routing view shows what a test needs.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use apimond::testing::{TestDaemon, UPSTREAM_KEY};
use reqwest::Method;
use serde_json::{Value, json};

pub const MASTER: &str = "sk-master-proxy-token-for-tests-0123";

pub const ENV: &[(&str, &str)] = &[
    ("API_MONITOR_TOKEN", apimond::testing::ADMIN_TOKEN),
    ("API_MONITOR_TOKEN_VISITOR", apimond::testing::VISITOR_TOKEN),
    ("ADMIN_PANEL_PASSWORD", apimond::testing::PASSWORD),
    ("PROXY_MASTER_TOKEN", MASTER),
];

pub async fn daemon_with(extra: &[(&str, &str)]) -> TestDaemon {
    let mut env: Vec<(&str, &str)> = ENV.to_vec();
    env.extend_from_slice(extra);
    TestDaemon::start_with(&env).await
}

/// A fake relay listing `models`, with events `gap_ms` apart in streams.
pub async fn relay(models: &[&str], gap_ms: u64) -> testkit::FakeUpstream {
    testkit::FakeUpstream::start(relay_config(models, gap_ms)).await
}

pub fn relay_config(models: &[&str], gap_ms: u64) -> testkit::FakeConfig {
    testkit::FakeConfig {
        models: models.iter().map(|m| m.to_string()).collect(),
        api_key: UPSTREAM_KEY.into(),
        event_gap: Duration::from_millis(gap_ms),
        ..testkit::FakeConfig::default()
    }
}

/// Creates a channel on `base_url` probing only `probed` (all listed models when
/// empty), runs it once and waits for the run.
pub async fn channel(d: &TestDaemon, name: &str, base_url: &str, probed: &[&str]) -> i64 {
    let id = d
        .create_on(
            name,
            base_url,
            json!({"selected_models": probed, "client_profile": "plain"}),
        )
        .await;
    let (s, v) = d.trigger(id).await;
    assert!(s.is_success(), "{v}");
    d.wait_run(id).await;
    id
}

/// Waits until `GET /v1/models` (master token) lists `id`, or lists it no more.
pub async fn wait_listed(d: &TestDaemon, id: &str, listed: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ids = model_ids(d, MASTER).await;
        if ids.iter().any(|x| x == id) == listed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} listed={listed} never came: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

pub async fn model_ids(d: &TestDaemon, key: &str) -> Vec<String> {
    let (s, body, v) = d.send(Method::GET, "/v1/models", Some(key), None).await;
    assert_eq!(s, 200, "{body}");
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// A chat request through the proxy: status, headers and the body text.
pub async fn chat(
    d: &TestDaemon,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    post(d, "/v1/chat/completions", key, body, headers).await
}

pub async fn post(
    d: &TestDaemon,
    path: &str,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = d.http.post(d.url(path)).bearer_auth(key).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("the proxy answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

pub fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16})
}

pub fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The text a reply carries, plain or streamed, in any of the four protocols: every
/// string under `content`, `text` or `delta`, in order.
pub fn said(body: &str) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("content" | "text" | "delta", Value::String(s)) => out.push_str(s),
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        walk(&v, &mut out);
        return out;
    }
    for line in body.lines() {
        if let Some(data) = line.strip_prefix("data:")
            && let Ok(v) = serde_json::from_str::<Value>(data.trim())
        {
            walk(&v, &mut out);
        }
    }
    out
}
