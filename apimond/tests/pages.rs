//! The browser pages as HTTP sees them: every page served from the binary with its
//! security headers, assets revalidated by ETag, the admin panel behind the admin
//! session, and the admin-only reveal of a secret setting the panel's reveal and copy
//! use. (What the pages do in a browser is tested by `web/tests/` through Playwright.)

mod common;

use common::*;
use reqwest::{Method, StatusCode, header};
use serde_json::json;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_page_is_served_with_a_csp_that_allows_no_inline_script_or_eval() {
    let d = TestDaemon::start().await;
    for path in [
        "/",
        "/viewer.html",
        "/analysis.html",
        "/admin/login",
        "/docs/proxy",
    ] {
        let resp = d.http.get(d.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers().clone();
        assert_eq!(
            h[header::CONTENT_TYPE],
            "text/html; charset=utf-8",
            "{path}"
        );
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self';"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        let body = resp.text().await.unwrap();
        assert!(body.starts_with("<!doctype html>"), "{path}");
        // No inline script: every <script> names a file.
        for tag in body.split("<script").skip(1) {
            assert!(
                tag.trim_start().starts_with("src=") || tag.contains(" src="),
                "{path}: inline script"
            );
        }
    }
}

#[tokio::test]
async fn assets_are_revalidated_by_etag_and_unknown_ones_are_404() {
    let d = TestDaemon::start().await;
    let resp = d.http.get(d.url("/assets/app.css")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/css; charset=utf-8"
    );
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-cache");
    let etag = resp.headers()[header::ETAG].to_str().unwrap().to_string();
    let again = d
        .http
        .get(d.url("/assets/app.css"))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let js = d.http.get(d.url("/assets/js/api.js")).send().await.unwrap();
    assert_eq!(
        js.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    let vendored = d
        .http
        .get(d.url("/vendor/sortablejs/LICENSE"))
        .send()
        .await
        .unwrap();
    assert_eq!(vendored.status(), StatusCode::OK);
    for missing in ["/assets/nope.js", "/assets/../Cargo.toml", "/vendor/x"] {
        let r = d.http.get(d.url(missing)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{missing}");
    }
}

#[tokio::test]
async fn the_admin_panel_redirects_to_the_login_without_an_admin_session() {
    let d = TestDaemon::start().await;
    let client = no_redirects();
    let resp = client.get(d.url("/admin.html")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/admin/login");
    // A forged cookie is no session.
    let forged = client
        .get(d.url("/admin.html"))
        .header(header::COOKIE, "apimon_admin=deadbeef")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::SEE_OTHER);

    let login = client
        .post(d.url("/api/admin/login"))
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let panel = client
        .get(d.url("/admin.html"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(panel.status(), StatusCode::OK);
    assert!(panel.text().await.unwrap().contains("settings-form"));
}

#[tokio::test]
async fn a_secret_setting_is_revealed_to_admins_only() {
    let d = TestDaemon::start().await;
    let body = json!({"field": "api_monitor_token_admin"});
    let (s, v) = d
        .admin(Method::POST, "/api/admin/settings/reveal", Some(&body))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["item"]["value"], ADMIN_TOKEN);
    let (s, _, _) = d
        .send(
            Method::POST,
            "/api/admin/settings/reveal",
            Some(VISITOR_TOKEN),
            Some(&body),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = d
        .send(
            Method::POST,
            "/api/admin/settings/reveal",
            None,
            Some(&body),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Only secrets, and only known ones.
    for field in ["visitor_mode_enabled", "nope"] {
        let (s, v) = d
            .admin(
                Method::POST,
                "/api/admin/settings/reveal",
                Some(&json!({"field": field})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{field}");
        assert!(v["detail"].as_str().unwrap().starts_with("field:"), "{v}");
    }
}
