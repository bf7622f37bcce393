//! Test support: real daemons started in-process on a free loopback port with a
//! temporary data directory, and a small HTTP client for the JSON API.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use apimond::{Config, Daemon};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";
pub const VISITOR_TOKEN: &str = "visitor-token-for-tests-0123456789";
pub const PASSWORD: &str = "panel-password-for-tests";

pub fn env_for(dir: &Path, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("DATA_DIR".into(), dir.display().to_string());
    env.insert("PORT".into(), "0".into());
    env.insert("HOST".into(), "127.0.0.1".into());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env.retain(|_, v| !v.is_empty());
    env
}

/// Starts a daemon on `dir` with exactly these variables (plus DATA_DIR, PORT=0).
pub async fn start_raw(dir: &Path, extra: &[(&str, &str)]) -> anyhow::Result<Daemon> {
    let config = Config::from_sources(&env_for(dir, extra), None)?;
    Daemon::start(config).await
}

pub struct TestDaemon {
    pub daemon: Option<Daemon>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub base: String,
    pub http: reqwest::Client,
}

/// The usual test configuration: known admin token, visitor token and password.
pub const STANDARD: &[(&str, &str)] = &[
    ("API_MONITOR_TOKEN", ADMIN_TOKEN),
    ("API_MONITOR_TOKEN_VISITOR", VISITOR_TOKEN),
    ("ADMIN_PANEL_PASSWORD", PASSWORD),
];

impl TestDaemon {
    pub async fn start() -> TestDaemon {
        Self::start_with(STANDARD).await
    }

    pub async fn start_with(extra: &[(&str, &str)]) -> TestDaemon {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut t = Self::start_in(&dir, extra).await;
        t._tmp = Some(tmp);
        t
    }

    pub async fn start_in(dir: &Path, extra: &[(&str, &str)]) -> TestDaemon {
        let daemon = start_raw(dir, extra).await.expect("daemon starts");
        let base = format!("http://{}", daemon.http_addr());
        TestDaemon {
            daemon: Some(daemon),
            dir: dir.to_path_buf(),
            _tmp: None,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the daemon and keeps the data directory (and its temporary parent).
    pub async fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await.expect("clean shutdown");
        }
    }

    /// Stops, then starts again on the same data directory with `extra`.
    pub async fn restart_with(&mut self, extra: &[(&str, &str)]) {
        self.stop().await;
        let daemon = start_raw(&self.dir, extra).await.expect("daemon restarts");
        self.base = format!("http://{}", daemon.http_addr());
        self.daemon = Some(daemon);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

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

    /// Every regular file under the data directory, with its bytes.
    pub fn data_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if let Ok(bytes) = std::fs::read(&p) {
                    out.push((p, bytes));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir, &mut out);
        out
    }
}

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

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
