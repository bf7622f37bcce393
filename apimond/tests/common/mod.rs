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

pub const UPSTREAM_KEY: &str = "sk-fake-upstream-key-0123456789";

/// A fake relay offering `models`, answering every probe after `delay`.
pub async fn fake_upstream(models: &[&str], delay_ms: u64) -> testkit::FakeUpstream {
    testkit::FakeUpstream::start(testkit::FakeConfig {
        models: models.iter().map(|m| m.to_string()).collect(),
        api_key: UPSTREAM_KEY.into(),
        probe_delay: std::time::Duration::from_millis(delay_ms),
        slow_delay: std::time::Duration::from_millis(1200),
        ..testkit::FakeConfig::default()
    })
    .await
}

impl TestDaemon {
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
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
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
                std::time::Instant::now() < deadline,
                "run of target {id} did not finish"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn core(&self) -> &std::sync::Arc<apimond::service::Core> {
        self.daemon.as_ref().expect("running").core()
    }

    /// Opens `/api/events` with a token.
    pub async fn events(&self, token: Option<&str>) -> SseReader {
        let mut url = self.url("/api/events");
        if let Some(t) = token {
            url.push_str(&format!("?token={t}"));
        }
        let resp = self.http.get(url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        SseReader {
            resp,
            parser: shared::probe::sse::SseParser::new(),
            pending: std::collections::VecDeque::new(),
        }
    }
}

/// Reads server-sent events from a response.
pub struct SseReader {
    pub resp: reqwest::Response,
    parser: shared::probe::sse::SseParser,
    pending: std::collections::VecDeque<shared::probe::sse::SseEvent>,
}

impl SseReader {
    /// The next event's name and JSON data, waiting at most `secs`.
    pub async fn next(&mut self, secs: u64) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(e) = self.pending.pop_front() {
                let data = serde_json::from_str(&e.data).unwrap_or(Value::Null);
                return Some((e.event.unwrap_or_default(), data));
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?
                .ok()??;
            self.pending.extend(self.parser.feed(&chunk));
        }
    }

    /// Events until one named `until` (included).
    pub async fn until(&mut self, until: &str, secs: u64) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        while let Some((name, data)) = self.next(secs).await {
            let done = name == until;
            out.push((name, data));
            if done {
                return out;
            }
        }
        panic!(
            "no `{until}` event within {secs} s; got {:?}",
            out.iter().map(|e| &e.0).collect::<Vec<_>>()
        );
    }
}
