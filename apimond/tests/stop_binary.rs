//! SIGTERM to the real binary while a run hangs on an upstream that never answers:
//! apimond still exits 0 within its bound, removes the control socket, and the run
//! is recorded as interrupted.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_apimond");

/// The grace for runs, then for requests, plus start-up slack: the stop's bound.
const STOP_BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_hanging_upstream_exits_zero_in_time_and_removes_the_socket() {
    let up = fake_upstream(&["gpt-4o-hang"], 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let socket = tmp.path().join("apimond.sock");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", &data)
        .env("PORT", port.to_string())
        .env("APIMON_SOCKET", &socket)
        .env("API_MONITOR_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/api/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "apimond did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, _, v) = send_with(
        &http,
        Method::POST,
        &format!("{base}/api/targets"),
        Some(ADMIN_TOKEN),
        Some(&json!({"name": "hangs", "base_url": up.base_url(), "api_key": UPSTREAM_KEY, "timeout_s": 200.0})),
        &[],
    )
    .await;
    assert!(s.is_success(), "{v}");
    let id = v["item"]["id"].as_i64().unwrap();
    let (s, _, v) = send_with(
        &http,
        Method::POST,
        &format!("{base}/api/targets/{id}/run"),
        Some(ADMIN_TOKEN),
        None,
        &[],
    )
    .await;
    assert!(s.is_success(), "{v}");
    // Let the probe reach the upstream and hang there.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(socket.exists());

    let stop = Instant::now();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stop.elapsed() < STOP_BOUND,
            "apimond did not exit within {STOP_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = stop.elapsed();
    eprintln!("stopped in {took:?} with a hanging upstream");
    assert_eq!(status.code(), Some(0));
    assert!(!socket.exists(), "the control socket is removed");

    let d = TestDaemon::start_in(&data, STANDARD).await;
    let (_, v) = d
        .admin(Method::GET, &format!("/api/targets/{id}/runs"), None)
        .await;
    let run: &Value = &v["items"][0];
    assert_eq!(run["status"], "interrupted", "{run}");
}
