//! The real `apimond` binary under a service manager's eyes: `Type=notify` readiness
//! on a `NOTIFY_SOCKET` the test provides (READY=1 only once the HTTP listener and
//! the control socket accept), STOPPING=1 on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_apimond");

/// The next notification datagram, as its `KEY=value` lines.
fn next_notification(sock: &UnixDatagram) -> Vec<String> {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn ready_is_sent_only_once_http_and_the_control_socket_accept() {
    let tmp = tempfile::tempdir().unwrap();
    let notify_path = tmp.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let data = tmp.path().join("data");
    let socket = tmp.path().join("run").join("apimond.sock");
    let mut child = Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", &data)
        .env("PORT", "0")
        .env("APIMON_SOCKET", &socket)
        .env("LOG_FORMAT", "json")
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(a) = v["fields"]["address"].as_str() {
                let _ = tx.send(a.to_string());
            }
        }
    });

    let first = next_notification(&notify);
    assert!(first.contains(&"READY=1".to_string()), "{first:?}");
    // At the moment READY=1 arrives, both listeners answer a real request.
    let address = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the address was logged before READY=1");
    let mut http = std::net::TcpStream::connect(&address).expect("HTTP accepts at READY=1");
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    http.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    http.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut rpc = UnixStream::connect(&socket).expect("the control socket accepts at READY=1");
    rpc.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let hello = shared::rpc::Request::Hello(shared::rpc::params::Hello {
        version: shared::VERSION.into(),
        protocol: shared::rpc::PROTOCOL_VERSION.into(),
    });
    rpc.write_all(hello.to_line(1).as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(&rpc).read_line(&mut line).unwrap();
    let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(reply["result"]["daemon"], "apimond", "{line}");

    // SAFETY: kill sends a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    // Watchdog pings may come in between; STOPPING=1 must follow.
    let stopping = (0..20)
        .map(|_| next_notification(&notify))
        .find(|n| n.contains(&"STOPPING=1".to_string()));
    assert!(stopping.is_some(), "STOPPING=1 on SIGTERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!socket.exists(), "the socket is removed on a clean stop");
}
