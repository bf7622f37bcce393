//! Who may do what (SPEC §6), lockouts and rate limits (§10), and what visitors can
//! see, against real daemons over loopback HTTP.
//! One file for access, so every pinned rule of who may do what sits in one place next
//! to the route table and expected-status matrix its tests check against.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Family {
    Public,
    Read,
    Write,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Nobody,
    VisitorToken,
    VisitorMode,
    AdminToken,
    AdminCookie,
    WrongToken,
}

struct Route {
    method: Method,
    path: String,
    body: Option<Value>,
    family: Family,
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// One request per route family member, each able to succeed for an admin: targets
/// they change are created fresh for every caller.
async fn routes(d: &TestDaemon) -> Vec<Route> {
    let n = UNIQUE.fetch_add(1, Ordering::SeqCst);
    let t = d
        .create_target(&format!("matrix-{n}"), "sk-matrix-key-000000000000")
        .await;
    // A target of its own for the run trigger: one run per target at a time.
    let fresh = d
        .create_target(&format!("fresh-{n}"), "sk-fresh-key-000000000000")
        .await;
    let doomed = d
        .create_target(&format!("doomed-{n}"), "sk-doomed-key-000000000000")
        .await;
    let r = |method: Method, path: String, body: Option<Value>, family| Route {
        method,
        path,
        body,
        family,
    };
    vec![
        r(Method::GET, "/api/health".into(), None, Family::Public),
        r(Method::GET, "/api/dashboard".into(), None, Family::Read),
        r(Method::GET, "/api/targets".into(), None, Family::Read),
        r(Method::GET, format!("/api/targets/{t}"), None, Family::Read),
        r(
            Method::GET,
            format!("/api/targets/{t}/runs"),
            None,
            Family::Read,
        ),
        r(
            Method::GET,
            format!("/api/targets/{t}/logs"),
            None,
            Family::Read,
        ),
        r(
            Method::GET,
            format!("/api/targets/{t}/models"),
            None,
            Family::Read,
        ),
        r(
            Method::GET,
            format!("/api/targets/{t}/stats"),
            None,
            Family::Read,
        ),
        r(
            Method::PATCH,
            format!("/api/targets/{t}/models"),
            Some(json!({"selected_models": []})),
            Family::Write,
        ),
        r(
            Method::POST,
            format!("/api/targets/{fresh}/run"),
            None,
            Family::Write,
        ),
        r(
            Method::GET,
            format!("/api/admin/channels/{t}/models"),
            None,
            Family::Admin,
        ),
        r(
            Method::PATCH,
            format!("/api/admin/channels/{t}/models"),
            Some(json!({"selected_models": []})),
            Family::Admin,
        ),
        r(
            Method::POST,
            "/api/targets".into(),
            Some(
                json!({"name": format!("created-{n}"), "base_url": "http://127.0.0.1:9", "api_key": "sk-x"}),
            ),
            Family::Write,
        ),
        r(
            Method::PATCH,
            format!("/api/targets/{t}"),
            Some(json!({"interval_min": 7})),
            Family::Write,
        ),
        r(
            Method::DELETE,
            format!("/api/targets/{doomed}"),
            None,
            Family::Write,
        ),
        r(
            Method::POST,
            "/api/targets/reorder".into(),
            Some(json!({"ids": [t]})),
            Family::Write,
        ),
        r(
            Method::POST,
            format!("/api/targets/{t}/reveal_key"),
            None,
            Family::Admin,
        ),
        r(
            Method::GET,
            "/api/admin/settings".into(),
            None,
            Family::Admin,
        ),
        r(
            Method::PATCH,
            "/api/admin/settings".into(),
            Some(json!({"log_max_size_mb": 400})),
            Family::Admin,
        ),
        r(
            Method::GET,
            "/api/admin/channels".into(),
            None,
            Family::Admin,
        ),
        r(
            Method::PATCH,
            format!("/api/admin/channels/{t}/advanced"),
            Some(json!({"max_models": 3})),
            Family::Admin,
        ),
        r(
            Method::GET,
            "/api/admin/resources".into(),
            None,
            Family::Admin,
        ),
    ]
}

fn expected(who: Who, family: Family) -> StatusCode {
    use Family::*;
    use Who::*;
    match (who, family) {
        (_, Public) => StatusCode::OK,
        (AdminToken | AdminCookie, _) => StatusCode::OK,
        (Nobody | WrongToken, _) => StatusCode::UNAUTHORIZED,
        (VisitorToken | VisitorMode, Read) => StatusCode::OK,
        (VisitorToken | VisitorMode, Write | Admin) => StatusCode::FORBIDDEN,
    }
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
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(
        !set.contains("Secure"),
        "plain HTTP gets no Secure flag: {set}"
    );
    set.split(';').next().unwrap().to_string()
}

async fn call(d: &TestDaemon, who: Who, cookie: &str, route: &Route) -> (StatusCode, String) {
    let token = match who {
        Who::AdminToken => Some(ADMIN_TOKEN),
        Who::VisitorToken => Some(VISITOR_TOKEN),
        Who::WrongToken => Some("not-the-token-at-all"),
        _ => None,
    };
    let origin = d.base.clone();
    let headers: Vec<(&str, &str)> = if who == Who::AdminCookie {
        vec![("cookie", cookie), ("origin", origin.as_str())]
    } else {
        vec![]
    };
    // Wrong tokens come from a new address each time, so the failed-token limit (tested
    // on its own below) does not turn these 401s into 429s.
    let http = if who == Who::WrongToken {
        let n = UNIQUE.fetch_add(1, Ordering::SeqCst);
        client_from(&format!("127.0.{}.{}", 10 + n / 200, 1 + n % 200))
    } else {
        d.http.clone()
    };
    let (s, raw, _) = send_with(
        &http,
        route.method.clone(),
        &d.url(&route.path),
        token,
        route.body.as_ref(),
        &headers,
    )
    .await;
    (s, raw)
}

#[tokio::test]
async fn every_route_family_answers_each_kind_of_caller_as_the_spec_table_says() {
    let d = TestDaemon::start().await;
    let cookie = login_cookie(&d).await;
    for who in [
        Who::Nobody,
        Who::VisitorToken,
        Who::AdminToken,
        Who::AdminCookie,
        Who::WrongToken,
    ] {
        for route in routes(&d).await {
            let (s, raw) = call(&d, who, &cookie, &route).await;
            assert_eq!(
                s,
                expected(who, route.family),
                "{who:?} {} {}: {raw}",
                route.method,
                route.path
            );
            if !s.is_success() {
                let v: Value = serde_json::from_str(&raw).expect("errors are JSON");
                assert!(v["detail"].is_string(), "{raw}");
            }
        }
    }

    // Visitor mode on: anonymous callers read like visitors; a wrong token is still refused.
    let (s, v) = d
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(&json!({"visitor_mode_enabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for who in [
        Who::VisitorMode,
        Who::WrongToken,
        Who::VisitorToken,
        Who::AdminToken,
    ] {
        for route in routes(&d).await {
            let (s, raw) = call(&d, who, &cookie, &route).await;
            assert_eq!(
                s,
                expected(who, route.family),
                "{who:?} {} {}: {raw}",
                route.method,
                route.path
            );
        }
    }
    let (_, _, v) = d.send(Method::GET, "/api/targets", None, None).await;
    assert_eq!(v["permissions"]["role"], "visitor");
    assert_eq!(v["items"][0]["can_operate"], false);
}

#[tokio::test]
async fn a_visitor_with_a_bad_body_learns_nothing_but_forbidden() {
    let d = TestDaemon::start().await;
    let (s, _, _) = d
        .send(
            Method::POST,
            "/api/targets",
            Some(VISITOR_TOKEN),
            Some(&json!({"name": ""})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let resp = d
        .http
        .post(d.url("/api/targets"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cookie_writes_must_come_from_this_origin_and_logout_ends_the_session() {
    let d = TestDaemon::start().await;
    let cookie = login_cookie(&d).await;
    let url = d.url("/api/targets");
    let body = json!({"name": "via-cookie", "base_url": "http://127.0.0.1:9", "api_key": "sk-c"});
    let own = d.base.clone();
    for (origin, want) in [
        (None, StatusCode::FORBIDDEN),
        (Some("https://evil.example.com"), StatusCode::FORBIDDEN),
        (Some("null"), StatusCode::FORBIDDEN),
        (Some(own.as_str()), StatusCode::OK),
    ] {
        let mut headers = vec![("cookie", cookie.as_str())];
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        let (s, raw, _) = send_with(&d.http, Method::POST, &url, None, Some(&body), &headers).await;
        assert_eq!(s, want, "origin {origin:?}: {raw}");
    }
    // Reads with the cookie need no Origin.
    let (s, _, _) = send_with(
        &d.http,
        Method::GET,
        &url,
        None,
        None,
        &[("cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = send_with(
        &d.http,
        Method::POST,
        &d.url("/api/admin/logout"),
        None,
        None,
        &[("cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = send_with(
        &d.http,
        Method::GET,
        &url,
        None,
        None,
        &[("cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the session ended");
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_that_client_out_but_not_others() {
    let d = TestDaemon::start().await;
    let login = |client: reqwest::Client, password: &'static str| {
        let url = d.url("/api/admin/login");
        async move {
            let resp = client
                .post(url)
                .json(&json!({"password": password}))
                .send()
                .await
                .unwrap();
            let retry = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (resp.status(), retry)
        }
    };
    let attacker = client_from("127.0.0.1");
    for _ in 0..4 {
        assert_eq!(
            login(attacker.clone(), "wrong-password").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Now the attacker must wait, even with the right password.
    let (s, retry) = login(attacker.clone(), PASSWORD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Another client is not affected.
    assert_eq!(
        login(client_from("127.0.0.2"), PASSWORD).await.0,
        StatusCode::OK
    );
    // After the wait the right password works again.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(login(attacker.clone(), PASSWORD).await.0, StatusCode::OK);
    // Malformed login bodies are 400, not counted as guesses.
    let resp = attacker
        .post(d.url("/api/admin/login"))
        .json(&json!({"pass": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

/// Logs in from `client` with `password`; the status and the session cookie, if any.
async fn login_as(
    d: &TestDaemon,
    client: &reqwest::Client,
    password: &str,
) -> (StatusCode, Option<String>) {
    let resp = client
        .post(d.url("/api/admin/login"))
        .json(&json!({"password": password}))
        .send()
        .await
        .unwrap();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    (resp.status(), cookie)
}

#[tokio::test]
async fn the_admin_token_is_a_login_password_too_with_the_same_back_off() {
    let d = TestDaemon::start().await;
    let settings_with = |cookie: String| {
        let d = &d;
        async move {
            send_with(
                &d.http,
                Method::GET,
                &d.url("/api/admin/settings"),
                None,
                None,
                &[("cookie", cookie.as_str())],
            )
            .await
            .0
        }
    };
    // Both secrets open an admin session, as the Go program's login takes its token.
    for password in [PASSWORD, ADMIN_TOKEN] {
        let (s, cookie) = login_as(&d, &d.http, password).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(settings_with(cookie.unwrap()).await, StatusCode::OK);
    }
    // The visitor token is no password.
    let (s, cookie) = login_as(&d, &client_from("127.0.0.3"), VISITOR_TOKEN).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(cookie.is_none());

    // Wrong guesses back off, and then the admin token waits like the password.
    let attacker = client_from("127.0.0.4");
    for _ in 0..4 {
        assert_eq!(
            login_as(&d, &attacker, "wrong-password").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    for password in [ADMIN_TOKEN, PASSWORD] {
        let (s, cookie) = login_as(&d, &attacker, password).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{password}");
        assert!(cookie.is_none());
    }
    assert_eq!(
        login_as(&d, &client_from("127.0.0.5"), ADMIN_TOKEN).await.0,
        StatusCode::OK,
        "another client is not held back"
    );
}

#[tokio::test]
async fn a_changed_admin_token_logs_in_and_the_old_one_no_longer_does() {
    // Only the password pinned: the admin token is the panel's to change.
    let d = TestDaemon::start_with(&[("ADMIN_PANEL_PASSWORD", PASSWORD)]).await;
    let (_, cookie) = login_as(&d, &d.http, PASSWORD).await;
    let cookie = cookie.unwrap();
    let old = d.core().settings().admin_token.expose().to_string();
    assert_eq!(login_as(&d, &d.http, &old).await.0, StatusCode::OK);
    let new_token = "a-new-admin-token-0123456789";
    let origin = d.base.clone();
    let (s, raw, _) = send_with(
        &d.http,
        Method::PATCH,
        &d.url("/api/admin/settings"),
        None,
        Some(&json!({"api_monitor_token_admin": new_token})),
        &[("cookie", cookie.as_str()), ("origin", origin.as_str())],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{raw}");
    assert_eq!(login_as(&d, &d.http, new_token).await.0, StatusCode::OK);
    assert_eq!(
        login_as(&d, &client_from("127.0.0.6"), &old).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn failed_tokens_are_rate_limited_but_a_valid_token_is_never_refused() {
    let d = TestDaemon::start().await;
    let client = client_from("127.0.0.3");
    let url = d.url("/api/targets");
    for i in 0..10 {
        let (s, _, _) = send_with(
            &client,
            Method::GET,
            &url,
            Some("guess-guess-guess"),
            None,
            &[],
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let resp = client
        .get(&url)
        .bearer_auth("guess-guess-guess")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    for token in [ADMIN_TOKEN, VISITOR_TOKEN] {
        let (s, _, _) = send_with(&client, Method::GET, &url, Some(token), None, &[]).await;
        assert_eq!(s, StatusCode::OK, "a valid token from a limited client");
    }
    // Other clients are unaffected.
    let (s, _, _) = send_with(
        &client_from("127.0.0.4"),
        Method::GET,
        &url,
        Some("guess"),
        None,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_forged_forwarded_for_neither_bypasses_limits_nor_locks_out_someone_else() {
    // No trusted proxies: the header is ignored entirely.
    let d = TestDaemon::start().await;
    let attacker = client_from("127.0.0.5");
    let url = d.url("/api/admin/login");
    for i in 0..6 {
        let forged = format!("198.51.100.{i}");
        let resp = attacker
            .post(&url)
            .header("x-forwarded-for", forged)
            .json(&json!({"password": "guess"}))
            .send()
            .await
            .unwrap();
        let want = if i < 4 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(
            resp.status(),
            want,
            "attempt {i}: rotating the header does not help"
        );
    }
    // The attacker claimed to be 127.0.0.6; that client can still log in.
    let victim = client_from("127.0.0.6");
    let resp = victim
        .post(&url)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_is_read_from_the_right_of_forwarded_for() {
    let mut env = STANDARD.to_vec();
    env.push(("TRUSTED_PROXIES", "127.0.0.7/32"));
    let d = TestDaemon::start_with(&env).await;
    let proxy = client_from("127.0.0.7");
    let url = d.url("/api/admin/login");
    let attempt = |xff: &'static str, password: &'static str| {
        let proxy = proxy.clone();
        let url = url.clone();
        async move {
            proxy
                .post(url)
                .header("x-forwarded-for", xff)
                .json(&json!({"password": password}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // The client forges a leftmost entry; the proxy appends the real address.
    for _ in 0..4 {
        assert_eq!(
            attempt("203.0.113.50, 198.51.100.9", "guess").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        attempt("198.51.100.9", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        attempt("203.0.113.50", PASSWORD).await,
        StatusCode::OK,
        "the forged address is not locked"
    );
    // A proxy that adds its hop as a second header line: the last line is read first.
    let status = proxy
        .post(&url)
        .header("x-forwarded-for", "203.0.113.77")
        .header("x-forwarded-for", "198.51.100.9")
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "keyed by the proxy's line, not the forged one"
    );
    assert_eq!(
        attempt("198.51.100.10", PASSWORD).await,
        StatusCode::OK,
        "other clients of the proxy log in"
    );
    // An untrusted peer's header is ignored: 127.0.0.8 is its own client.
    let resp = client_from("127.0.0.8")
        .post(&url)
        .header("x-forwarded-for", "198.51.100.9")
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// Asserts none of `secrets` appears in any read endpoint's raw JSON for this caller.
async fn assert_reads_hide(
    d: &TestDaemon,
    token: Option<&str>,
    id: i64,
    secrets: &[&str],
) -> Vec<String> {
    let mut bodies = Vec::new();
    for path in [
        "/api/dashboard".to_string(),
        "/api/targets".to_string(),
        format!("/api/targets/{id}"),
        format!("/api/targets/{id}/runs"),
        format!("/api/targets/{id}/logs"),
        format!("/api/targets/{id}/logs?scope=all"),
        "/api/health".to_string(),
    ] {
        let (s, raw, _) = d.send(Method::GET, &path, token, None).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        for secret in secrets {
            assert!(
                !raw.contains(secret),
                "{path} shows `{secret}` to {token:?}: {raw}"
            );
        }
        bodies.push(raw);
    }
    bodies
}

#[tokio::test]
async fn visitors_never_see_keys_tokens_or_hidden_urls() {
    let mut env = STANDARD.to_vec();
    env.push(("PROXY_MASTER_TOKEN", "proxy-master-token-secret-42"));
    let d = TestDaemon::start_with(&env).await;
    let key = "sk-visitor-must-not-see-0123456789";
    let (s, v) = d
        .admin(
            Method::POST,
            "/api/targets",
            Some(&json!({
                "name": "hidden",
                "base_url": "http://relayuser:relaypass@127.0.0.9:9/v1",
                "api_key": key,
                "source_url": "https://signup.hidden-relay.example.com",
                "extra_headers": {"cookie": "cf_clearance=secret-cookie-value"},
            })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["item"]["id"].as_i64().unwrap();
    let masked = v["item"]["api_key"].as_str().unwrap().to_string();
    let always_hidden = [
        key,
        masked.as_str(),
        "relaypass",
        "secret-cookie-value",
        ADMIN_TOKEN,
        VISITOR_TOKEN,
        PASSWORD,
        "proxy-master-token-secret-42",
        "api_key",
    ];
    let mut with_urls = always_hidden.to_vec();
    with_urls.extend(["127.0.0.9", "signup.hidden"]);
    assert_reads_hide(&d, Some(VISITOR_TOKEN), id, &with_urls).await;
    d.admin(
        Method::PATCH,
        "/api/admin/settings",
        Some(&json!({"visitor_mode_enabled": true})),
    )
    .await;
    assert_reads_hide(&d, None, id, &with_urls).await;

    // With visitor_show_base_url the URL appears, still without its credentials.
    let (s, _) = d
        .admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(&json!({"visitor_show_base_url": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let bodies = assert_reads_hide(&d, Some(VISITOR_TOKEN), id, &always_hidden).await;
    assert!(
        bodies[1].contains("http://***@127.0.0.9:9/v1"),
        "{}",
        bodies[1]
    );
    assert_reads_hide(&d, None, id, &always_hidden).await;

    // Admins see masked forms, never the whole key or tokens.
    let (_, raw, _) = d
        .send(Method::GET, "/api/admin/settings", Some(ADMIN_TOKEN), None)
        .await;
    for secret in [
        ADMIN_TOKEN,
        VISITOR_TOKEN,
        PASSWORD,
        "proxy-master-token-secret-42",
    ] {
        assert!(!raw.contains(secret), "settings show {secret}");
    }
    let (_, raw, _) = d
        .send(Method::GET, "/api/targets", Some(ADMIN_TOKEN), None)
        .await;
    assert!(
        !raw.contains(key) && !raw.contains("relaypass") && !raw.contains("secret-cookie-value")
    );
}
