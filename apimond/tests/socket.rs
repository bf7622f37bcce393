//! The control socket as a client sees it: permissions, stale and live sockets,
//! malformed frames, the version handshake.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use serde_json::{Value, json};
use shared::client::{ClientError, RpcClient};
use shared::rpc::params::{Hello, NoParams, TargetsAdd};
use shared::rpc::{Request, code};

const STATUS: Request = Request::Status(NoParams {});

async fn connect(path: &std::path::Path) -> RpcClient {
    RpcClient::connect(&[path.to_path_buf()])
        .await
        .expect("the socket answers")
}

#[tokio::test]
async fn the_socket_is_private_and_removed_on_a_clean_stop() {
    let mut d = TestDaemon::start().await;
    let path = d.daemon.as_ref().unwrap().socket_path().to_path_buf();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    d.stop().await;
    assert!(!path.exists(), "removed on shutdown");
}

#[tokio::test]
async fn with_a_socket_group_it_is_0660_and_owned_by_that_group() {
    // SAFETY: getegid/getgrgid only read process and group database state.
    let gid = unsafe { libc::getegid() };
    let name = unsafe {
        let g = libc::getgrgid(gid);
        assert!(!g.is_null(), "the test user's group has a name");
        std::ffi::CStr::from_ptr((*g).gr_name)
            .to_string_lossy()
            .into_owned()
    };
    let tmp = tempfile::tempdir().unwrap();
    let sock_dir = tmp.path().join("run");
    let sock = sock_dir.join("apimond.sock");
    let mut env = STANDARD.to_vec();
    let sock_s = sock.display().to_string();
    env.push(("APIMON_SOCKET", sock_s.as_str()));
    env.push(("APIMON_SOCKET_GROUP", name.as_str()));
    let d = TestDaemon::start_with(&env).await;
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), gid);
    assert_eq!(
        std::fs::metadata(&sock_dir).unwrap().permissions().mode() & 0o777,
        0o750
    );
    let mut c = connect(&sock).await;
    assert_eq!(
        c.call(&STATUS).await.unwrap()["version"],
        env!("CARGO_PKG_VERSION")
    );
    drop(d);
    let mut env = STANDARD.to_vec();
    env.push(("APIMON_SOCKET_GROUP", "no-such-group-apimon-test"));
    let tmp2 = tempfile::tempdir().unwrap();
    let err = start_raw(&tmp2.path().join("data"), &env)
        .await
        .err()
        .expect("refused");
    assert!(
        format!("{err:#}").contains("APIMON_SOCKET_GROUP=no-such-group-apimon-test: no such group"),
        "{err:#}"
    );
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_a_live_one_is_not_stolen() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("apimond.sock");
    // A socket file nobody listens on, as a crash leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let sock_s = sock.display().to_string();
    let mut env = STANDARD.to_vec();
    env.push(("APIMON_SOCKET", sock_s.as_str()));
    let d = TestDaemon::start_with(&env).await;
    let mut c = connect(&sock).await;
    assert!(c.call(&STATUS).await.is_ok());

    // A path that is not a socket is never deleted.
    let not_a_socket = tmp.path().join("precious.db");
    std::fs::write(&not_a_socket, b"data").unwrap();
    let p = not_a_socket.display().to_string();
    let mut bad = STANDARD.to_vec();
    bad.push(("APIMON_SOCKET", p.as_str()));
    let other = tempfile::tempdir().unwrap();
    let err = start_raw(&other.path().join("data"), &bad)
        .await
        .err()
        .expect("refused");
    assert!(
        format!("{err:#}").contains("exists and is not a socket"),
        "{err:#}"
    );
    assert_eq!(std::fs::read(&not_a_socket).unwrap(), b"data");

    // A second daemon (its own data dir) on the same socket refuses to start.
    let other = tempfile::tempdir().unwrap();
    let err = start_raw(&other.path().join("data"), &env)
        .await
        .err()
        .expect("refused");
    assert!(
        format!("{err:#}").contains("another apimond is listening on the control socket"),
        "{err:#}"
    );
    // The first one still answers.
    assert!(c.call(&STATUS).await.is_ok());
    drop(d);
}

#[tokio::test]
async fn malformed_frames_get_their_codes_and_the_connection_keeps_working() {
    let d = TestDaemon::start().await;
    let path = d.daemon.as_ref().unwrap().socket_path().to_path_buf();
    let mut c = connect(&path).await;
    let mut expect = async |raw: &[u8], want: i64| {
        c.send_raw(raw).await.unwrap();
        let msg = c.read().await.unwrap();
        let err = msg
            .error
            .unwrap_or_else(|| panic!("{}: no error", String::from_utf8_lossy(raw)));
        assert_eq!(
            err.code,
            want,
            "{}: {}",
            String::from_utf8_lossy(raw),
            err.message
        );
        assert!(!err.message.is_empty());
    };
    expect(b"this is not json\n", code::PARSE_ERROR).await;
    expect(b"[1, 2, 3]\n", code::INVALID_REQUEST).await;
    expect(
        b"{\"jsonrpc\": \"2.0\", \"method\": \"status\"}\n",
        code::INVALID_REQUEST,
    )
    .await;
    expect(
        b"{\"jsonrpc\": \"1.0\", \"id\": 1, \"method\": \"status\"}\n",
        code::INVALID_REQUEST,
    )
    .await;
    expect(
        b"{\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": \"no.such\"}\n",
        code::METHOD_NOT_FOUND,
    )
    .await;
    expect(
        b"{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\": \"targets.get\", \"params\": {}}\n",
        code::INVALID_PARAMS,
    )
    .await;
    expect(
        b"{\"jsonrpc\": \"2.0\", \"id\": 4, \"method\": \"targets.get\", \"params\": [1]}\n",
        code::INVALID_PARAMS,
    )
    .await;
    expect(b"{\"jsonrpc\": \"2.0\", \"id\": 5, \"method\": \"targets.get\", \"params\": {\"target\": \"999\"}}\n", code::NOT_FOUND).await;
    let mut long = vec![b'x'; shared::rpc::MAX_LINE + 10];
    long.push(b'\n');
    expect(&long, code::INVALID_REQUEST).await;
    // The same connection still serves.
    let v = c.call(&STATUS).await.unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    // Bad field values come back as invalid params naming the field.
    let e = c
        .call(&Request::TargetsAdd(TargetsAdd {
            fields: json!({"name": "x", "base_url": "http://127.0.0.1:9", "api_key": "k", "interval_min": 0}),
        }))
        .await
        .unwrap_err();
    match e {
        ClientError::Rpc(r) => {
            assert_eq!(r.code, code::INVALID_PARAMS);
            assert_eq!(r.message, "interval_min: must be an integer from 1 to 1440");
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_client_with_another_protocol_version_is_told_plainly() {
    let d = TestDaemon::start().await;
    let path = d.daemon.as_ref().unwrap().socket_path().to_path_buf();
    let mut c = connect(&path).await;
    let e = c
        .call(&Request::Hello(Hello {
            version: "9.9.9".into(),
            protocol: 99,
        }))
        .await
        .unwrap_err();
    match e {
        ClientError::Rpc(r) => {
            assert_eq!(r.code, code::VERSION_MISMATCH);
            assert!(
                r.message
                    .contains("apimonctl 9.9.9 speaks control protocol 99"),
                "{}",
                r.message
            );
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_subscription_streams_events_and_a_slow_one_is_told_it_lagged() {
    let up = fake_upstream(&["gpt-4o"], 0).await;
    let d = TestDaemon::start().await;
    let id = d
        .create_on("sub", &up.base_url(), json!({"enabled": false}))
        .await;
    let path = d.daemon.as_ref().unwrap().socket_path().to_path_buf();
    let mut c = connect(&path).await;
    assert_eq!(
        c.call(&Request::EventsSubscribe(NoParams {}))
            .await
            .unwrap()["subscribed"],
        true
    );
    d.trigger(id).await;
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("run_completed") {
        let m = tokio::time::timeout(std::time::Duration::from_secs(20), c.read())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.method.as_deref(), Some("event"));
        seen.push(m.params.unwrap()["type"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["run_started", "model_result", "run_completed"]);
    // A subscriber that stops reading misses events and is told how many.
    for i in 0..60_000 {
        d.core().bus.publish(apimond::events::Event::TargetDeleted {
            target_id: i,
            ts: 0.0,
        });
    }
    let mut lagged = None;
    loop {
        let m = tokio::time::timeout(std::time::Duration::from_secs(20), c.read())
            .await
            .unwrap()
            .unwrap();
        if m.method.as_deref() == Some("lagged") {
            lagged = m.params.as_ref().and_then(|p| p["missed"].as_u64());
        }
        if let Some(Value::Object(p)) = &m.params
            && p.get("target_id") == Some(&json!(59_999))
        {
            break;
        }
    }
    assert!(lagged.is_some_and(|n| n > 0));
}
