//! Live and ready: `/api/health` and `apimonctl status` say whether the store takes
//! writes and the scheduler passes; the systemd watchdog is pinged over a real
//! `NOTIFY_SOCKET` datagram socket only while the scheduler and the store writer are
//! alive (a test hook wedges the scheduler).

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use apimond::health::NotifySocket;
use common::*;
use reqwest::StatusCode;
use serde_json::Value;

async fn health(d: &TestDaemon) -> (StatusCode, Value) {
    let resp = d.http.get(d.url("/api/health")).send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn status(d: &TestDaemon) -> shared::rpc::reply::StatusReply {
    let mut rpc = shared::client::RpcClient::connect(&[d.socket_path().to_path_buf()])
        .await
        .unwrap();
    rpc.status().await.unwrap()
}

/// The watchdog pings that arrive within `window`.
fn pings_within(sock: &UnixDatagram, window: Duration) -> usize {
    let deadline = Instant::now() + window;
    let mut n = 0;
    let mut buf = [0u8; 256];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(len) => {
                assert_eq!(&buf[..len], b"WATCHDOG=1");
                n += 1;
            }
            Err(_) => break,
        }
    }
    n
}

#[tokio::test]
async fn a_healthy_daemon_is_live_and_ready_with_the_seed_fields() {
    let d = TestDaemon::start().await;
    let (s, v) = health(&d).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["live"], true);
    assert_eq!(v["ready"], true);
    assert!(v["running_targets"].is_array());
    assert_eq!(v["checks"]["store_writable"], true);
    assert_eq!(v["checks"]["scheduler_ticking"], true);
    assert_eq!(v["checks"]["store_writer_alive"], true);
    let st = status(&d).await;
    let h = st.health.expect("status carries readiness");
    assert!(h.live && h.ready && h.problems.is_empty(), "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_scheduler_stops_the_watchdog_pings_and_readiness_until_it_moves_again() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let d = TestDaemon::start().await;
    d.daemon
        .as_ref()
        .unwrap()
        .start_watchdog(NotifySocket::new(&path), Duration::from_millis(400));
    let sock = std::sync::Arc::new(sock);
    let s = sock.clone();
    let healthy = tokio::task::spawn_blocking(move || pings_within(&s, Duration::from_secs(2)))
        .await
        .unwrap();
    assert!(healthy >= 7, "a ping every 200 ms: {healthy} in 2 s");

    d.core().scheduler.wedge_for_tests(true);
    let wedged_at = Instant::now();
    // Pings go on until the stall limit passes, then stop.
    let limit = apimond::scheduler::STALL;
    let deadline = wedged_at + limit + Duration::from_secs(5);
    loop {
        let s = sock.clone();
        let n = tokio::task::spawn_blocking(move || pings_within(&s, Duration::from_secs(1)))
            .await
            .unwrap();
        if n == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "pings never stopped");
    }
    assert!(
        wedged_at.elapsed() >= limit - Duration::from_secs(1),
        "stopped before the stall limit: {:?}",
        wedged_at.elapsed()
    );
    let (code, v) = health(&d).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["live"], true);
    assert_eq!(v["ready"], false);
    assert_eq!(v["ok"], false);
    assert_eq!(v["checks"]["scheduler_ticking"], false);
    assert!(
        v["problems"][0].as_str().unwrap().contains("scheduler"),
        "{v}"
    );
    let st = status(&d).await.health.unwrap();
    assert!(!st.ready && !st.scheduler_ticking);

    d.core().scheduler.wedge_for_tests(false);
    let s = sock.clone();
    let again = tokio::task::spawn_blocking(move || pings_within(&s, Duration::from_secs(2)))
        .await
        .unwrap();
    assert!(again >= 5, "pings resume: {again}");
    assert_eq!(health(&d).await.0, StatusCode::OK);
}

#[test]
fn the_binary_pings_the_watchdog_systemd_asks_for() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_apimond"))
        .env_clear()
        .env("DATA_DIR", tmp.path().join("data"))
        .env("PORT", "0")
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "300000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    while seen.iter().filter(|m| *m == "WATCHDOG=1").count() < 3 {
        let n = sock.recv(&mut buf).expect("notifications arrive");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(seen.iter().any(|m| m.contains("READY=1")), "{seen:?}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}
