//! Input an attacker (or a confused script) sends that apimond refuses with a 4xx
//! naming the problem, writing nothing: framing headers in `extra_headers`, names
//! that show nothing or read backwards, repeated JSON keys, cookie writes that are not
//! JSON, and cookie writes from a page whose host is a (rebindable) DNS name.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn target_count(d: &TestDaemon) -> usize {
    let (_, v) = d.admin(Method::GET, "/api/targets", None).await;
    v["items"].as_array().unwrap().len()
}

fn target(name: &str) -> Value {
    json!({"name": name, "base_url": "http://127.0.0.1:9", "api_key": "sk-refusals-0123456789"})
}

#[tokio::test]
async fn framing_and_hop_by_hop_extra_headers_are_refused_naming_the_header() {
    let d = TestDaemon::start().await;
    for header in [
        "Content-Length",
        "transfer-encoding",
        "Host",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "TE",
        "Trailer",
        "Proxy-Authorization",
    ] {
        let mut body = target("framing");
        body["extra_headers"] = json!({ header: "1" });
        let (s, v) = d.admin(Method::POST, "/api/targets", Some(&body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{header}: {v}");
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("`{header}`")), "{detail}");
    }
    assert_eq!(target_count(&d).await, 0);
    // An ordinary custom header is still taken, on create and on change.
    let mut body = target("fine");
    body["extra_headers"] = json!({"X-Tenant": "tenant-42"});
    let (s, v) = d.admin(Method::POST, "/api/targets", Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["item"]["id"].as_i64().unwrap();
    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{id}"),
            Some(&json!({"extra_headers": {"transfer-encoding": "chunked"}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn invisible_names_and_bidi_overrides_are_refused() {
    let d = TestDaemon::start().await;
    for name in [
        "\u{200B}",
        "\u{200B}\u{200C}\u{FEFF}",
        " \u{2060} ",
        "\u{3164}",
        "safe\u{202E}txt.exe",
        "a\u{2066}b\u{2069}",
    ] {
        let (s, v) = d
            .admin(Method::POST, "/api/targets", Some(&target(name)))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{name:?}: {v}");
        assert!(v["detail"].as_str().unwrap().starts_with("name: "), "{v}");
    }
    assert_eq!(target_count(&d).await, 0);
    for name in ["relay-α", "中转站", "ok\u{200D}name", "عربي"] {
        let (s, v) = d
            .admin(Method::POST, "/api/targets", Some(&target(name)))
            .await;
        assert_eq!(s, StatusCode::OK, "{name:?}: {v}");
    }
}

#[tokio::test]
async fn a_json_body_with_a_repeated_key_is_refused() {
    let d = TestDaemon::start().await;
    let raw = r#"{"name": "first", "base_url": "http://127.0.0.1:9", "api_key": "sk-refusals-0123456789", "name": "second"}"#;
    let resp = d
        .http
        .post(d.url("/api/targets"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("`name` appears twice"),
        "{v}"
    );
    assert_eq!(target_count(&d).await, 0);
}

async fn login_cookie(d: &TestDaemon) -> String {
    let resp = d
        .http
        .post(d.url("/api/admin/login"))
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn cookie_writes_must_be_json_while_bearer_scripts_keep_working() {
    let d = TestDaemon::start().await;
    let cookie = login_cookie(&d).await;
    let body = serde_json::to_string(&target("typed")).unwrap();
    for (content_type, want) in [
        (Some("text/plain"), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (
            Some("application/x-www-form-urlencoded"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (None, StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (Some("application/json; charset=utf-8"), StatusCode::OK),
    ] {
        let mut req = d
            .http
            .post(d.url("/api/targets"))
            .header("cookie", &cookie)
            .header("origin", &d.base)
            .body(body.clone());
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, want, "{content_type:?}: {v}");
        if want != StatusCode::OK {
            assert!(v["detail"].as_str().unwrap().contains("application/json"));
            assert_eq!(target_count(&d).await, 0);
        }
    }
    // A body-less cookie write (logout, run) needs no type.
    let resp = d
        .http
        .post(d.url("/api/targets/1/run"))
        .header("cookie", &cookie)
        .header("origin", &d.base)
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // The README's `curl -d` (a form type) with the Bearer token still works.
    let resp = d
        .http
        .post(d.url("/api/targets"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_json::to_string(&target("curl")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// A cookie write sent to the daemon as if reached under `host`, from `origin`.
async fn cookie_write_as(d: &TestDaemon, cookie: &str, host: &str, origin: &str) -> StatusCode {
    d.http
        .post(d.url("/api/targets"))
        .header("cookie", cookie)
        .header("host", host)
        .header("origin", origin)
        .json(&target(&format!("o-{}", rand_suffix())))
        .send()
        .await
        .unwrap()
        .status()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

#[tokio::test]
async fn without_public_url_a_cookie_write_is_accepted_only_from_an_ip_or_localhost_host() {
    let d = TestDaemon::start().await;
    let cookie = login_cookie(&d).await;
    let port = d.daemon.as_ref().unwrap().http_addr().port();
    let own = format!("127.0.0.1:{port}");
    let local = format!("localhost:{port}");
    let rebound = format!("rebind.attacker.example:{port}");
    assert_eq!(
        cookie_write_as(&d, &cookie, &own, &format!("http://{own}")).await,
        StatusCode::OK
    );
    assert_eq!(
        cookie_write_as(&d, &cookie, &local, &format!("http://{local}")).await,
        StatusCode::OK
    );
    // A DNS-rebinding page: its Origin matches the Host it sent, and both are a name.
    assert_eq!(
        cookie_write_as(&d, &cookie, &rebound, &format!("http://{rebound}")).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn with_public_url_a_cookie_write_must_come_from_it() {
    let d = TestDaemon::start_with(&[
        STANDARD[0],
        STANDARD[2],
        ("PUBLIC_URL", "https://Monitor.Example.com/panel/"),
    ])
    .await;
    let cookie = login_cookie(&d).await;
    let port = d.daemon.as_ref().unwrap().http_addr().port();
    let own = format!("127.0.0.1:{port}");
    assert_eq!(
        cookie_write_as(
            &d,
            &cookie,
            "monitor.example.com",
            "https://monitor.example.com"
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        cookie_write_as(&d, &cookie, &own, &format!("http://{own}")).await,
        StatusCode::FORBIDDEN,
        "the IP is not the public origin"
    );
    assert_eq!(
        cookie_write_as(
            &d,
            &cookie,
            "monitor.example.com",
            "http://monitor.example.com"
        )
        .await,
        StatusCode::FORBIDDEN,
        "another scheme is another origin"
    );
}

#[tokio::test]
async fn a_bad_public_url_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = start_raw(dir.path(), &[("PUBLIC_URL", "monitor.example.com")])
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("PUBLIC_URL"), "{err}");
}
