//! The JSON API as tests call it: one request helper returning status, body and
//! parsed JSON, clients from other loopback addresses, and the target calls many
//! tests start with.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{ADMIN_TOKEN, TestDaemon, UPSTREAM_KEY};

impl TestDaemon {
    /// Sends a request with an optional Bearer token and JSON body; returns the status,
    /// the raw body text and the parsed JSON (Null when not JSON).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, String, Value) {
        send_with(&self.http, method, &self.url(path), token, body, &[]).await
    }

    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let (s, _, v) = self.send(method, path, Some(ADMIN_TOKEN), body).await;
        (s, v)
    }

    /// Creates a target as admin and returns its id.
    pub async fn create_target(&self, name: &str, key: &str) -> i64 {
        let (s, v) = self
            .admin(
                Method::POST,
                "/api/targets",
                Some(&serde_json::json!({
                    "name": name,
                    "base_url": "http://127.0.0.1:9",
                    "api_key": key,
                })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["item"]["id"].as_i64().unwrap()
    }

    /// Creates a target on a fake relay with extra fields; returns its id.
    pub async fn create_on(&self, name: &str, base_url: &str, extra: Value) -> i64 {
        let mut body =
            serde_json::json!({"name": name, "base_url": base_url, "api_key": UPSTREAM_KEY});
        if let Value::Object(m) = extra {
            body.as_object_mut().unwrap().extend(m);
        }
        let (s, v) = self.admin(Method::POST, "/api/targets", Some(&body)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["item"]["id"].as_i64().unwrap()
    }

    /// Triggers a run as admin and returns the answer.
    pub async fn trigger(&self, id: i64) -> (StatusCode, Value) {
        self.admin(Method::POST, &format!("/api/targets/{id}/run"), None)
            .await
    }

    /// Waits until the target's latest run is no longer running; returns it.
    pub async fn wait_run(&self, id: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, v) = self
                .admin(Method::GET, &format!("/api/targets/{id}/runs"), None)
                .await;
            if let Some(run) = v["items"].get(0)
                && run["status"] != "running"
                && !self.core().scheduler.is_running(id)
            {
                return run.clone();
            }
            assert!(
                Instant::now() < deadline,
                "run of target {id} did not finish"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// [`TestDaemon::send`] with any client, full URL and extra headers.
pub async fn send_with(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (StatusCode, String, Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request reaches the daemon");
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, text, json)
}

/// A client whose connections come from another loopback address, to stand for a
/// different machine.
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}
