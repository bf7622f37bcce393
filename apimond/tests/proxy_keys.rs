//! Proxy keys, as an admin manages them over HTTP and the control socket and as the
//! proxy's key check sees them: secrets shown once, limits that refuse with the right
//! status, bad input refused with nothing written, keys never in the log.

mod common;

use std::time::{Duration, Instant};

use apimond::service::proxy_keys::KeyRefusal;
use common::proxy::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn a_key_is_created_listed_patched_and_revoked_and_its_secret_is_shown_once() {
    let d = TestDaemon::start().await;
    let target = d
        .create_target("relay-a", "sk-channel-key-0123456789")
        .await;
    let (s, v) = d
        .admin(
            Method::POST,
            "/api/proxy/keys",
            Some(&json!({
                "name": "ci", "description": "for CI",
                "allowed_target_ids": [target], "allowed_models": ["relay-a/gpt-4o"],
            })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let secret = v["proxy_key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("sk-") && secret.len() >= 35, "{secret}");
    let item = &v["item"];
    let id = item["id"].as_i64().unwrap();
    assert_eq!(item["key_prefix"], secret[..12]);
    for field in [
        "id",
        "name",
        "key_prefix",
        "allowed_target_ids",
        "allowed_models",
        "description",
        "enabled",
        "created_at",
        "revoked_at",
        "last_used_at",
        "last_used_target_id",
    ] {
        assert!(
            item.get(field).is_some(),
            "seed field {field} missing: {item}"
        );
    }
    assert_eq!(item["status"], "active");
    assert_eq!(item["usage_today"]["requests"], 0);

    // The secret works at once, and appears nowhere else.
    let grant = d.core().proxy_keys.authenticate(&secret, CLIENT).unwrap();
    assert_eq!(grant.key_id, Some(id));
    assert!(grant.allows_target(target) && !grant.allows_target(target + 1));
    assert!(grant.allows_model("relay-a", "gpt-4o") && !grant.allows_model("relay-a", "o3"));
    let (_, list, _) = d
        .send(Method::GET, "/api/proxy/keys", Some(ADMIN_TOKEN), None)
        .await;
    let (_, one, _) = d
        .send(
            Method::GET,
            &format!("/api/proxy/keys/{id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    for text in [&list, &one] {
        assert!(text.contains("\"ci\"") && !text.contains(&secret), "{text}");
        assert!(!text.contains(&apimond::service::proxy_key_admin::key_digest(&secret)));
    }
    let record = d.core().store.get_proxy_key(id).await.unwrap().unwrap();
    assert!(!format!("{record:?}").contains(&record.key_hash));

    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/proxy/keys/{id}"),
            Some(&json!({
                "name": "ci-2", "description": null, "allowed_target_ids": [],
                "allowed_models": [], "rpm_limit": 600, "daily_token_budget": 100000,
                "expires_at": apimond::store::now() + 86_400.0,
            })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["item"]["name"], "ci-2");
    assert_eq!(v["item"]["description"], "");
    assert_eq!(v["item"]["rpm_limit"], 600);
    assert_eq!(v["item"]["daily_token_budget"], 100000);
    assert!(
        d.core()
            .proxy_keys
            .authenticate(&secret, CLIENT)
            .unwrap()
            .allows_target(target + 1)
    );

    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/proxy/keys/{id}"),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(
        (s, &v["item"]["status"]),
        (StatusCode::OK, &json!("disabled"))
    );
    let refusal = d
        .core()
        .proxy_keys
        .authenticate(&secret, CLIENT)
        .unwrap_err();
    assert_eq!(
        (refusal.clone(), refusal.status()),
        (KeyRefusal::Disabled, 403)
    );
    d.admin(
        Method::PATCH,
        &format!("/api/proxy/keys/{id}"),
        Some(&json!({"enabled": true})),
    )
    .await;

    let (s, v) = d
        .admin(Method::DELETE, &format!("/api/proxy/keys/{id}"), None)
        .await;
    assert_eq!((s, &v["ok"]), (StatusCode::OK, &json!(true)), "{v}");
    let refusal = d
        .core()
        .proxy_keys
        .authenticate(&secret, CLIENT)
        .unwrap_err();
    assert_eq!(
        (refusal.clone(), refusal.status()),
        (KeyRefusal::Revoked, 403)
    );
    let (_, v) = d.admin(Method::GET, "/api/proxy/keys", None).await;
    assert!(v["items"][0]["revoked_at"].is_f64(), "{v}");
    assert_eq!(v["items"][0]["status"], "revoked");
    // Revocation is final.
    let (s, _) = d
        .admin(
            Method::PATCH,
            &format!("/api/proxy/keys/{id}"),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // No file under the data directory holds the secret: only its digest is stored.
    d.core().store.checkpoint().await.unwrap();
    for (path, bytes) in d.data_files() {
        assert!(
            !contains(&bytes, &secret),
            "{} holds the key",
            path.display()
        );
    }
}

#[tokio::test]
async fn keys_are_for_admins_only_and_bad_input_is_refused_naming_the_field() {
    let d = TestDaemon::start().await;
    let target = d
        .create_target("relay-a", "sk-channel-key-0123456789")
        .await;
    let (_, _) = create_key(&d, json!({"name": "kept"})).await;
    for (token, status) in [(Some(VISITOR_TOKEN), 403), (None, 401)] {
        for (method, path) in [
            (Method::GET, "/api/proxy/keys"),
            (Method::POST, "/api/proxy/keys"),
            (Method::PATCH, "/api/proxy/keys/1"),
            (Method::DELETE, "/api/proxy/keys/1"),
            (Method::GET, "/api/proxy/usage"),
        ] {
            let (s, _, v) = d
                .send(method.clone(), path, token, Some(&json!({"name": "x"})))
                .await;
            assert_eq!(s.as_u16(), status, "{method} {path}: {v}");
        }
    }
    let cases = [
        (json!({}), "name:"),
        (json!({"name": ""}), "name:"),
        (json!({"name": "x".repeat(129)}), "name:"),
        (
            json!({"name": "k", "description": "d".repeat(513)}),
            "description:",
        ),
        (
            json!({"name": "k", "allowed_target_ids": [target + 100]}),
            "allowed_target_ids:",
        ),
        (
            json!({"name": "k", "allowed_target_ids": "1"}),
            "allowed_target_ids:",
        ),
        (
            json!({"name": "k", "allowed_models": ["gpt-4o"]}),
            "allowed_models[0]:",
        ),
        (
            json!({"name": "k", "allowed_models": ["/gpt-4o"]}),
            "allowed_models[0]:",
        ),
        (json!({"name": "k", "rpm_limit": 0}), "rpm_limit:"),
        (
            json!({"name": "k", "daily_token_budget": -5}),
            "daily_token_budget:",
        ),
        (json!({"name": "k", "expires_at": 1000}), "expires_at:"),
        (
            json!({"name": "k", "expires_at": "tomorrow"}),
            "expires_at:",
        ),
        (json!({"name": "k", "enabled": "yes"}), "enabled:"),
        (json!({"name": "k", "colour": "red"}), "colour:"),
    ];
    for (body, field) in &cases {
        let (s, v) = d.admin(Method::POST, "/api/proxy/keys", Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.starts_with(field), "{body}: {detail}");
        let (s, v) = d
            .admin(Method::PATCH, "/api/proxy/keys/1", Some(body))
            .await;
        if *field != "name:" || body.get("name").is_some() {
            assert_eq!(s, StatusCode::BAD_REQUEST, "PATCH {body}: {v}");
        }
    }
    let (s, _, _) = d
        .send(Method::POST, "/api/proxy/keys", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for (method, path, status) in [
        (Method::PATCH, "/api/proxy/keys/99", 404),
        (Method::DELETE, "/api/proxy/keys/99", 404),
        (Method::GET, "/api/proxy/keys/99", 404),
        (Method::GET, "/api/proxy/keys/abc", 400),
        (Method::DELETE, "/api/proxy/keys/0", 404),
    ] {
        let (s, v) = d
            .admin(method.clone(), path, Some(&json!({"name": "n"})))
            .await;
        assert_eq!(s.as_u16(), status, "{method} {path}: {v}");
        assert!(v["detail"].is_string(), "{v}");
    }
    for (query, field) in [
        ("key_id=x", "key_id:"),
        ("target_id=-1", "target_id:"),
        ("since=yesterday", "since:"),
        ("since=200&until=100", "since:"),
        ("group_by=colour", "group_by:"),
        ("group_by=hour,day", "group_by:"),
        ("colour=red", "colour:"),
    ] {
        let (s, v) = d
            .admin(Method::GET, &format!("/api/proxy/usage?{query}"), None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert!(
            v["detail"].as_str().unwrap().starts_with(field),
            "{query}: {v}"
        );
    }
    // Nothing was written: the one key is as it was.
    let (_, v) = d.admin(Method::GET, "/api/proxy/keys", None).await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["name"], "kept");
    assert_eq!(items[0]["allowed_models"], json!([]));
    assert_eq!(items[0]["rpm_limit"], Value::Null);
}

#[tokio::test]
async fn keys_are_managed_over_the_control_socket_and_the_secret_is_shown_once() {
    use shared::client::{ClientError, RpcClient};
    use shared::rpc::key_params::{KeyRef, KeysCreate, KeysEdit, KeysUsage};
    use shared::rpc::params::NoParams;
    use shared::rpc::{Request, code};

    let d = TestDaemon::start().await;
    d.create_target("relay-a", "sk-channel-key-0123456789")
        .await;
    let mut c = RpcClient::connect(&[d.socket_path().to_path_buf()])
        .await
        .unwrap();
    let created = c
        .call(&Request::KeysCreate(KeysCreate {
            fields: json!({"name": "ci", "allowed_models": ["relay-a/gpt-4o"], "rpm_limit": 60}),
        }))
        .await
        .unwrap();
    let secret = created["proxy_key"].as_str().unwrap().to_string();
    let id = created["item"]["id"].as_i64().unwrap();
    let grant = d.core().proxy_keys.authenticate(&secret, CLIENT).unwrap();
    assert_eq!(grant.key_id, Some(id));

    let list = c.call(&Request::KeysList(NoParams {})).await.unwrap();
    let shown = c
        .call(&Request::KeysGet(KeyRef::new("name:ci")))
        .await
        .unwrap();
    assert_eq!(shown["item"]["id"], id);
    for v in [&list, &shown] {
        assert!(!v.to_string().contains(&secret), "{v}");
    }
    let edited = c
        .call(&Request::KeysEdit(KeysEdit {
            key: "ci".into(),
            fields: json!({"rpm_limit": null, "description": "nightly"}),
        }))
        .await
        .unwrap();
    assert_eq!(edited["item"]["rpm_limit"], Value::Null);
    assert_eq!(edited["item"]["description"], "nightly");

    let err = |e: ClientError| match e {
        ClientError::Rpc(r) => (r.code, r.message),
        other => panic!("{other}"),
    };
    let (c1, m) = err(c
        .call(&Request::KeysEdit(KeysEdit {
            key: "ci".into(),
            fields: json!({"rpm_limit": 0}),
        }))
        .await
        .unwrap_err());
    assert_eq!(c1, code::INVALID_PARAMS);
    assert!(m.starts_with("rpm_limit:"), "{m}");
    let (c2, m) = err(c
        .call(&Request::KeysRevoke(KeyRef::new("99")))
        .await
        .unwrap_err());
    assert_eq!(c2, code::NOT_FOUND, "{m}");

    d.core()
        .proxy_keys
        .record(usage(Some(id), None, "relay-a/gpt-4o", (7, 3)));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = c
            .call(&Request::KeysUsage(KeysUsage {
                key: Some("ci".into()),
                group_by: Some("model".into()),
                ..KeysUsage::default()
            }))
            .await
            .unwrap();
        if v["totals"]["requests"] == 1 {
            assert_eq!(v["items"][0]["model"], "gpt-4o");
            assert_eq!(v["totals"]["tokens"], 10);
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let revoked = c
        .call(&Request::KeysRevoke(KeyRef::new(id.to_string())))
        .await
        .unwrap();
    assert_eq!(revoked["ok"], true);
    assert_eq!(
        d.core()
            .proxy_keys
            .authenticate(&secret, CLIENT)
            .unwrap_err(),
        KeyRefusal::Revoked
    );
}

#[tokio::test]
async fn the_daemons_log_never_holds_a_key_even_at_debug_level() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_apimond"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", tmp.path().join("data"))
        .env("PORT", "0")
        .env("API_MONITOR_TOKEN", ADMIN_TOKEN)
        .env("APIMON_SOCKET", tmp.path().join("apimond.sock"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(a) = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|v| v["fields"]["address"].as_str().map(String::from))
            {
                let _ = tx.send(a);
            }
            sink.lock().unwrap().push_str(&line);
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("apimond starts");
    let http = reqwest::Client::new();
    let call = |method: Method, path: &str, body: Option<Value>| {
        let mut req = http
            .request(method, format!("http://{address}{path}"))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let created = call(
        Method::POST,
        "/api/proxy/keys",
        Some(json!({"name": "logged"})),
    )
    .await;
    let secret = created["proxy_key"].as_str().unwrap().to_string();
    call(Method::GET, "/api/proxy/keys", None).await;
    call(
        Method::PATCH,
        "/api/proxy/keys/1",
        Some(json!({"rpm_limit": 5})),
    )
    .await;
    call(Method::DELETE, "/api/proxy/keys/1", None).await;
    let mut rpc = shared::client::RpcClient::connect(&[tmp.path().join("apimond.sock")])
        .await
        .unwrap();
    let over_socket = rpc
        .call(&shared::rpc::Request::KeysCreate(
            shared::rpc::key_params::KeysCreate {
                fields: json!({"name": "by-socket"}),
            },
        ))
        .await
        .unwrap()["proxy_key"]
        .as_str()
        .unwrap()
        .to_string();
    drop(rpc);
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(100));
    let log = log.lock().unwrap().clone();
    assert!(
        log.contains("proxy key created") && log.contains("proxy key revoked"),
        "{log}"
    );
    for key in [&secret, &over_socket] {
        assert!(!log.contains(key.as_str()), "the log holds a key");
    }
    assert!(!log.contains(&apimond::service::proxy_key_admin::key_digest(&secret)));
}
