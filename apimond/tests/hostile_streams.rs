//! Hostile peers of the control socket and of event streams: a hundred connections
//! each sending almost 4 MiB without a newline, more connections than the cap, and
//! subscribers (socket and SSE) that stop reading while events keep coming. Memory
//! stays flat and everyone else keeps being answered.

mod common;

use std::time::{Duration, Instant};

use apimond::events::Event;
use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};

/// Memory is measured for the whole test process: the tests of this file run one at
/// a time, so one test's connections never show in another's figure.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// Publishes `n` events of about 1 KiB each.
fn flood(d: &TestDaemon, n: usize) {
    let added: Vec<String> = (0..25).map(|i| format!("model-{i:034}")).collect();
    for _ in 0..n {
        d.core().bus.publish(Event::ModelsChanged {
            target_id: 1,
            target_name: "flood".into(),
            added: added.clone(),
            removed: vec![],
            total: 25,
            ts: 0.0,
        });
    }
}

async fn status_over_socket(d: &TestDaemon) -> Result<(), String> {
    let mut rpc = shared::client::RpcClient::connect(&[d.socket_path().to_path_buf()])
        .await
        .map_err(|e| e.to_string())?;
    rpc.status().await.map(|_| ()).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_connections_sending_huge_lines_keep_memory_bounded() {
    let _serial = one_at_a_time().await;
    let d = TestDaemon::start().await;
    let chunk = vec![b'x'; 256 * 1024];
    let before = rss_bytes();
    let mut peers = Vec::new();
    for _ in 0..100 {
        let mut s = UnixStream::connect(d.socket_path()).await.unwrap();
        // 3.75 MiB of one line, never finished.
        for _ in 0..15 {
            s.write_all(&chunk).await.unwrap();
        }
        peers.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = rss_bytes().saturating_sub(before);
    eprintln!(
        "rss grew {} MB with 100 connections holding 3.75 MiB lines",
        grown / 1_000_000
    );
    assert!(grown < 48 * 1024 * 1024, "grew {grown} bytes");
    status_over_socket(&d)
        .await
        .expect("a normal peer is still answered");
    // Each one is told when its line ends: too busy, or answered as usual.
    let mut busy = 0;
    for s in peers.iter_mut() {
        s.write_all(b"\n").await.unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).await.unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["error"]["code"] == shared::rpc::code::TOO_MANY {
            busy += 1;
        }
    }
    assert!(
        busy >= 90,
        "the shared budget holds a few lines, not 100: {busy}"
    );
}

#[tokio::test]
async fn connections_over_the_cap_are_told_and_closed_and_places_come_back() {
    let _serial = one_at_a_time().await;
    let d = TestDaemon::start().await;
    let mut held = Vec::new();
    for _ in 0..apimond::rpc::MAX_CONNECTIONS {
        held.push(UnixStream::connect(d.socket_path()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = UnixStream::connect(d.socket_path()).await.unwrap();
    let mut answer = String::new();
    extra.read_to_string(&mut answer).await.unwrap();
    let v: Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(v["error"]["code"], shared::rpc::code::TOO_MANY, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("128"));
    held.clear();
    let deadline = Instant::now() + Duration::from_secs(5);
    while status_over_socket(&d).await.is_err() {
        assert!(Instant::now() < deadline, "places never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_subscriber_that_stops_reading_keeps_memory_flat() {
    let _serial = one_at_a_time().await;
    let d = TestDaemon::start().await;
    let mut s = UnixStream::connect(d.socket_path()).await.unwrap();
    s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}\n")
        .await
        .unwrap();
    let mut reader = BufReader::new(s);
    let mut reply = String::new();
    reader.read_line(&mut reply).await.unwrap();
    assert!(reply.contains("subscribed"), "{reply}");
    // Fill the bus and the socket buffers once, then measure another flood.
    flood(&d, 20_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let warm = rss_bytes();
    flood(&d, 40_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = rss_bytes().saturating_sub(warm);
    eprintln!(
        "socket subscriber stalled: rss grew {} KB over 40,000 more events",
        grown / 1000
    );
    assert!(grown < 8 * 1024 * 1024, "grew {grown} bytes");
    status_over_socket(&d).await.expect("others are answered");
    // When it reads again it learns what it missed.
    let mut saw_lagged = false;
    for _ in 0..100_000 {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line.contains("\"lagged\"") {
            saw_lagged = true;
            break;
        }
    }
    assert!(saw_lagged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sse_reader_keeps_memory_flat_and_is_dropped_after_the_stall_timeout() {
    let _serial = one_at_a_time().await;
    let d = TestDaemon::start_with(&[STANDARD[0], ("HTTP_STALL_TIMEOUT_S", "2")]).await;
    // The daemon's own listeners (the proxy's routing view follows the bus).
    let own = d.core().bus.subscribers();
    let mut s = TcpStream::connect(d.daemon.as_ref().unwrap().http_addr())
        .await
        .unwrap();
    s.write_all(
        format!("GET /api/events?token={ADMIN_TOKEN} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut head = [0u8; 512];
    let n = s.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));
    assert_eq!(d.core().bus.subscribers(), own + 1);
    flood(&d, 20_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let warm = rss_bytes();
    flood(&d, 40_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = rss_bytes().saturating_sub(warm);
    eprintln!(
        "SSE reader stalled: rss grew {} KB over 40,000 more events",
        grown / 1000
    );
    assert!(grown < 8 * 1024 * 1024, "grew {grown} bytes");
    // Its writes made no progress: the connection is dropped, the stream with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.core().bus.subscribers() > own {
        assert!(
            Instant::now() < deadline,
            "the stalled stream was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_slow_but_flowing_event_stream_is_never_cut() {
    let _serial = one_at_a_time().await;
    let d = TestDaemon::start_with(&[STANDARD[0], ("HTTP_STALL_TIMEOUT_S", "1")]).await;
    let mut sse = d.events(Some(ADMIN_TOKEN)).await;
    assert_eq!(sse.next(5).await.unwrap().0, "connected");
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        flood(&d, 1);
        let (name, _) = sse.next(5).await.expect("the stream still flows");
        assert_eq!(name, "models_changed");
    }
}
