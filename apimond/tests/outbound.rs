//! How a daemon's probes leave: a target's `proxy_url` (set, shown masked, sealed at
//! rest, sent back as shown, `direct`, refused when malformed) and the global
//! `OUTBOUND_PROXY`, with runs going through testkit's local proxies to a fake relay.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{HttpProxy, Socks5Proxy};

const PROXY_PASSWORD: &str = "pr0xy-pa55word-unique";

async fn item(d: &TestDaemon, id: i64, token: &str) -> Value {
    let (s, _, v) = d
        .send(
            Method::GET,
            &format!("/api/targets/{id}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["item"].clone()
}

#[tokio::test]
async fn a_run_goes_through_the_targets_proxy_which_is_shown_masked_and_sealed() {
    let up = fake_upstream(&["gpt-4o", "claude-3-5-haiku"], 0).await;
    let proxy = Socks5Proxy::start(Some(("alice", PROXY_PASSWORD))).await;
    let d = TestDaemon::start().await;
    let id = d
        .create_on("proxied", &up.base_url(), json!({"proxy_url": proxy.url()}))
        .await;

    let admin = item(&d, id, ADMIN_TOKEN).await;
    let shown = format!("socks5://***@{}", proxy.addr());
    assert_eq!(admin["proxy_url"], json!(shown));
    let visitor = item(&d, id, VISITOR_TOKEN).await;
    assert!(visitor.get("proxy_url").is_none(), "{visitor}");

    d.trigger(id).await;
    let run = d.wait_run(id).await;
    assert_eq!(run["result"], "healthy", "{run}");
    // Connections are pooled: discovery and both probes may share one tunnel.
    assert!(proxy.relayed() >= 1);
    assert_eq!(up.requests(), 2);
    assert_eq!(proxy.last_destination(), Some(up.addr().to_string()));

    // Sent back as shown, the proxy stays; nothing on disk holds its password.
    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{id}"),
            Some(&json!({"proxy_url": shown, "timeout_s": 20})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["item"]["proxy_url"], json!(shown));
    // Had the mask been stored, the proxy would see user `***` without a password and
    // refuse the run.
    d.trigger(id).await;
    assert_eq!(d.wait_run(id).await["result"], "healthy");
    assert_eq!(up.requests(), 4);
    assert_eq!(proxy.refused(), 0);
    for (path, bytes) in d.data_files() {
        assert!(
            !contains(&bytes, PROXY_PASSWORD),
            "{} holds it",
            path.display()
        );
    }
}

#[tokio::test]
async fn a_bad_proxy_url_is_refused_without_echoing_it_and_changes_nothing() {
    let d = TestDaemon::start().await;
    let id = d.create_target("strict", "sk-strict-key-0000000001").await;
    for (bad, says) in [
        (json!("ftp://bob:hunter2-secret@proxy:21"), "scheme"),
        (json!("http://bob:hunter2-secret@proxy"), "port"),
        (
            json!("http://bob:hunter2-secret@proxy:3128/path"),
            "nothing after",
        ),
        (json!(3128), "string"),
    ] {
        let (s, v) = d
            .admin(
                Method::PATCH,
                &format!("/api/targets/{id}"),
                Some(&json!({"proxy_url": bad, "timeout_s": 20})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.starts_with("proxy_url: "), "{detail}");
        assert!(detail.contains(says), "{detail}");
        assert!(!detail.contains("hunter2"), "{detail}");
    }
    let t = item(&d, id, ADMIN_TOKEN).await;
    assert_eq!(t["proxy_url"], Value::Null);
    assert_eq!(t["timeout_s"], 30.0, "a refused request changes nothing");
}

#[tokio::test]
async fn outbound_proxy_is_the_default_and_direct_or_the_targets_own_win() {
    let up = fake_upstream(&["gpt-4o"], 0).await;
    let global = HttpProxy::start(Some(("alice", PROXY_PASSWORD))).await;
    let own = HttpProxy::start(None).await;
    let global_url = global.url();
    let mut env = STANDARD.to_vec();
    env.push(("OUTBOUND_PROXY", &global_url));
    let d = TestDaemon::start_with(&env).await;

    let by_default = d.create_on("default", &up.base_url(), json!({})).await;
    d.trigger(by_default).await;
    assert_eq!(d.wait_run(by_default).await["result"], "healthy");
    assert!(global.relayed() >= 1);
    assert_eq!(
        item(&d, by_default, ADMIN_TOKEN).await["proxy_url"],
        Value::Null
    );

    let seen = global.accepted();
    let direct = d
        .create_on("direct", &up.base_url(), json!({"proxy_url": "direct"}))
        .await;
    assert_eq!(item(&d, direct, ADMIN_TOKEN).await["proxy_url"], "direct");
    d.trigger(direct).await;
    assert_eq!(d.wait_run(direct).await["result"], "healthy");
    assert_eq!(global.accepted(), seen, "direct bypasses OUTBOUND_PROXY");

    let mine = d
        .create_on("own", &up.base_url(), json!({"proxy_url": own.url()}))
        .await;
    assert_eq!(
        item(&d, mine, ADMIN_TOKEN).await["proxy_url"],
        json!(own.url())
    );
    d.trigger(mine).await;
    assert_eq!(d.wait_run(mine).await["result"], "healthy");
    assert!(own.relayed() >= 1);
    assert_eq!(global.accepted(), seen);

    // Back to the default: null (or "") clears the target's choice.
    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{direct}"),
            Some(&json!({"proxy_url": ""})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["item"]["proxy_url"], Value::Null);
}

#[tokio::test]
async fn a_dead_proxy_fails_the_run_as_network_without_its_password() {
    let up = fake_upstream(&["gpt-4o"], 0).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let d = TestDaemon::start().await;
    let proxy = format!("http://alice:{PROXY_PASSWORD}@127.0.0.1:{port}");
    let id = d
        .create_on("dead", &up.base_url(), json!({"proxy_url": proxy}))
        .await;
    d.trigger(id).await;
    let run = d.wait_run(id).await;
    assert_eq!(run["result"], "error", "{run}");
    let t = item(&d, id, ADMIN_TOKEN).await;
    let error = t["last_error"].as_str().unwrap();
    assert!(error.contains("proxy"), "{error}");
    assert!(!error.contains(PROXY_PASSWORD), "{error}");
    assert!(!error.contains(UPSTREAM_KEY), "{error}");
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn client_profile_is_browser_by_default_and_plain_on_request() {
    let up = fake_upstream(&["gpt-4o"], 0).await;
    let d = TestDaemon::start().await;
    let id = d.create_on("profiled", &up.base_url(), json!({})).await;
    assert_eq!(
        item(&d, id, VISITOR_TOKEN).await["client_profile"],
        "browser"
    );
    d.trigger(id).await;
    assert_eq!(d.wait_run(id).await["result"], "healthy");
    let ua = up.last_headers().unwrap()["user-agent"].clone();
    assert!(ua.to_str().unwrap().contains("Chrome/"), "{ua:?}");

    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/admin/channels/{id}/advanced"),
            Some(&json!({"client_profile": "plain"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(item(&d, id, ADMIN_TOKEN).await["client_profile"], "plain");
    d.trigger(id).await;
    assert_eq!(d.wait_run(id).await["result"], "healthy");
    let ua = up.last_headers().unwrap()["user-agent"].clone();
    assert!(ua.to_str().unwrap().starts_with("apimon/"), "{ua:?}");

    let (s, v) = d
        .admin(
            Method::PATCH,
            &format!("/api/targets/{id}"),
            Some(&json!({"client_profile": "chrome"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["detail"], "client_profile: must be one of browser, plain");
}
