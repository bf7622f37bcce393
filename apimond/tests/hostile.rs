//! Clients that try to hold the daemon's HTTP side hostage, tried as an attacker
//! would over real loopback TCP: thousands of idle or half-sent connections, headers
//! that are too large or unparsable, bodies that never end, idle keep-alives and a
//! reader that stops reading. Normal requests (from another loopback address, as
//! from another machine) and the control socket keep answering throughout.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Memory is measured for the whole test process: the tests of this file run one at
/// a time, so one test's connections never show in another's figure.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// This process's resident memory, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Reads until the server closes or `within` passes; `None` if still open then.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status and JSON body of a raw HTTP/1.1 answer.
fn parse_answer(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a full answer");
    let status = head[9..12].parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (status, serde_json::from_str(body).expect("a JSON body"))
}

async fn health_from(d: &TestDaemon, client: &reqwest::Client) -> StatusCode {
    client
        .get(d.url("/api/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("health answers")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_and_half_sent_connections_neither_stop_requests_nor_the_socket() {
    let _serial = one_at_a_time().await;
    // 2,000 client ends plus 1,200 server ends: more than a soft limit of 1,024.
    let limit = apimond::fd_limit::raise().unwrap();
    assert!(
        limit.soft >= 4096,
        "this test needs 4,096 open files: {limit:?}"
    );
    let d = TestDaemon::start_with(&[
        STANDARD[0],
        ("HTTP_HEADER_TIMEOUT_S", "4"),
        ("HTTP_MAX_CONNECTIONS_PER_CLIENT", "1200"),
    ])
    .await;
    let other = client_from("127.0.0.2");
    assert_eq!(health_from(&d, &other).await, StatusCode::OK);
    let before = rss_bytes();

    let mut held = Vec::new();
    for i in 0..2000 {
        let mut s = TcpStream::connect(d.daemon.as_ref().unwrap().http_addr())
            .await
            .unwrap();
        if i % 2 == 0 {
            // Half a request line and header, never finished.
            s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        held.push(s);
    }
    let opened = Instant::now();
    let after_open = rss_bytes();

    // Other clients and the control socket are served at once.
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(health_from(&d, &other).await, StatusCode::OK);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
    let mut rpc = shared::client::RpcClient::connect(&[d.socket_path().to_path_buf()])
        .await
        .expect("the control socket accepts while HTTP is flooded");
    let status = rpc.status().await.expect("status over the socket");
    assert!(status.version.len() > 1);

    // The daemon closes every one of them: the 800 over the per-client cap at once,
    // the rest when the header timeout passes.
    let mut closed_at_once = 0;
    let mut results = Vec::new();
    for s in held.iter_mut() {
        results.push(read_until_closed(s, Duration::from_millis(1)).await);
    }
    closed_at_once += results.iter().filter(|r| r.is_some()).count();
    assert!(
        (790..=810).contains(&closed_at_once),
        "the per-client cap of 1,200 refused the rest: {closed_at_once} closed at once"
    );
    for s in held.iter_mut() {
        let left = Duration::from_secs(10).saturating_sub(opened.elapsed());
        assert!(
            read_until_closed(s, left).await.is_some(),
            "an idle connection outlived the header timeout"
        );
    }
    assert!(opened.elapsed() >= Duration::from_secs(3));
    eprintln!(
        "rss before {} MB, with 2,000 idle connections open (1,200 held by the daemon) {} MB",
        before / 1_000_000,
        after_open / 1_000_000
    );
    assert!(
        after_open.saturating_sub(before) < 64 * 1024 * 1024,
        "memory grew by {} bytes",
        after_open - before
    );
}

#[tokio::test]
async fn oversized_headers_and_a_malformed_request_line_get_a_json_detail() {
    let _serial = one_at_a_time().await;
    let d = TestDaemon::start().await;
    let addr = d.daemon.as_ref().unwrap().http_addr();

    let mut s = TcpStream::connect(addr).await.unwrap();
    let big = format!(
        "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(80 * 1024)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let raw = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .unwrap();
    let (status, body) = parse_answer(&raw);
    assert_eq!(status, 431);
    assert!(
        body["detail"].as_str().unwrap().contains("too large"),
        "{body}"
    );

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"THIS IS NOT HTTP\r\n\r\n").await.unwrap();
    let raw = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .unwrap();
    let (status, body) = parse_answer(&raw);
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().unwrap().contains("malformed"),
        "{body}"
    );

    // A normal 400 from the API keeps its own detail.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /api/targets/abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let raw = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .unwrap();
    let (status, body) = parse_answer(&raw);
    assert!(status == 400 || status == 401, "{status}");
    assert!(!body["detail"].as_str().unwrap().contains("malformed"));
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_gets_408_and_the_connection_closes() {
    let _serial = one_at_a_time().await;
    let d = TestDaemon::start_with(&[STANDARD[0], ("HTTP_BODY_TIMEOUT_S", "1")]).await;
    let mut s = TcpStream::connect(d.daemon.as_ref().unwrap().http_addr())
        .await
        .unwrap();
    let head = format!(
        "POST /api/targets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"name\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let t = Instant::now();
    let raw = read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("the daemon gives up on the body");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    let (status, body) = parse_answer(&raw);
    assert_eq!(status, 408, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("stopped arriving")
    );
    let (_, v) = d.admin(reqwest::Method::GET, "/api/targets", None).await;
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        0,
        "nothing was written"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let _serial = one_at_a_time().await;
    let d = TestDaemon::start_with(&[STANDARD[0], ("HTTP_HEADER_TIMEOUT_S", "1")]).await;
    let mut s = TcpStream::connect(d.daemon.as_ref().unwrap().http_addr())
        .await
        .unwrap();
    s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let t = Instant::now();
    let rest = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("an idle kept-alive connection is closed");
    assert!(rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"));
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn the_open_file_limit_is_raised_and_reported() {
    let _serial = one_at_a_time().await;
    let d = TestDaemon::start().await;
    let (s, v) = d
        .admin(reqwest::Method::GET, "/api/admin/resources", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let files = &v["item"]["open_files"];
    let soft = files["soft_limit"].as_u64().unwrap();
    let hard = files["hard_limit"].as_u64().unwrap();
    assert_eq!(
        soft, hard,
        "the soft limit is raised to the hard one: {files}"
    );
    assert!(files["soft_limit_at_start"].as_u64().unwrap() <= soft);
    assert!(files["open"].as_u64().unwrap() > 3);
}

/// A burst of connections waits in the kernel's queue for the accept loop instead of
/// losing SYNs (a client whose SYN is dropped waits a second for its retry): the
/// listener's backlog is 4,096 or the system's cap if lower, not the usual 128.
#[tokio::test]
async fn the_listen_queue_holds_a_burst_of_thousands_of_connections() {
    let d = TestDaemon::start().await;
    let port = reqwest::Url::parse(&d.url("/")).unwrap().port().unwrap();
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("`ss` (iproute2) lists listening sockets");
    let listing = String::from_utf8(out.stdout).unwrap();
    // For a listening socket the Send-Q column is its backlog.
    let backlog: u32 = listing
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no listener on port {port} in: {listing}"));
    let cap: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(backlog, cap.min(4096));
}
