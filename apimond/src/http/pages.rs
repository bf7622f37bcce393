//! The browser pages and their static assets, embedded from `web/` (read from disk in
//! debug builds, so a reload shows an edit; compiled in for release). Pages are public:
//! their data comes through the JSON API and its permissions. Every answer carries the
//! security headers; assets are revalidated by ETag (the file's SHA-256).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use super::extract::{AppState, cookie};
use crate::service::auth::SESSION_COOKIE;

#[derive(RustEmbed)]
#[folder = "../web/"]
#[include = "pages/*.html"]
#[include = "assets/**/*"]
#[include = "vendor/**/*"]
struct Web;

/// No inline script or style, no `eval`: everything the pages run is a file served
/// from here. `connect-src 'self'` covers the API and the event stream.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page routes and the embedded file each serves.
const PAGES: &[(&str, &str)] = &[
    ("/", "pages/index.html"),
    ("/index.html", "pages/index.html"),
    ("/viewer.html", "pages/viewer.html"),
    ("/analysis.html", "pages/analysis.html"),
    ("/admin/login", "pages/admin-login.html"),
    ("/docs/proxy", "pages/docs-proxy.html"),
];

pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for (route, file) in PAGES {
        let file: &'static str = file;
        router = router.route(route, get(move |headers: HeaderMap| page(file, headers)));
    }
    router
        .route("/admin.html", get(admin_page))
        .route("/admin", get(|| async { Redirect::to("/admin.html") }))
        .route("/assets/{*path}", get(asset))
        .route("/vendor/{*path}", get(vendor))
        .route("/favicon.ico", get(favicon))
}

async fn page(file: &'static str, headers: HeaderMap) -> Response {
    serve(file, &headers)
}

/// The admin panel needs an admin session (the cookie `/admin/login` sets); without one
/// the browser is sent to the login page, as the Go program does.
async fn admin_page(State(core): State<AppState>, headers: HeaderMap) -> Response {
    let signed_in = cookie(&headers, SESSION_COOKIE).is_some_and(|s| core.sessions.is_valid(s));
    if signed_in {
        serve("pages/admin.html", &headers)
    } else {
        Redirect::to("/admin/login").into_response()
    }
}

async fn favicon(headers: HeaderMap) -> Response {
    serve("assets/icon.svg", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("assets/{path}"), &headers)
}

async fn vendor(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("vendor/{path}"), &headers)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Web::get(path) else {
        return with_security_headers((StatusCode::NOT_FOUND, "not found").into_response());
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = file.data.into_owned().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Always revalidate: a new binary serves new files under the same names, and the
    // ETag makes the check a cheap 304.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_security_headers(resp)
}

fn with_security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    resp
}
