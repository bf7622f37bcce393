//! The HTTP server: the JSON API under `/api` and the browser pages. Handlers are thin
//! adapters over the service layer.

pub mod admin;
pub mod api;
pub mod client;
pub mod connection;
pub mod error;
pub mod extract;
pub mod pages;
pub mod proxy_keys;
pub mod serve;
pub mod sse;
pub mod threads;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, patch, post};

pub use extract::AppState;

async fn not_found(uri: axum::http::Uri) -> Response {
    error::detail(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", uri.path()),
    )
}

async fn method_not_allowed() -> Response {
    error::detail(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

async fn api_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/health", get(api::health))
        .route("/api/dashboard", get(api::dashboard))
        .route(
            "/api/targets",
            get(api::list_targets).post(api::create_target),
        )
        .route("/api/targets/reorder", post(api::reorder_targets))
        .route(
            "/api/targets/{id}",
            get(api::get_target)
                .patch(api::update_target)
                .delete(api::delete_target),
        )
        .route("/api/targets/{id}/reveal_key", post(api::reveal_key))
        .route("/api/targets/{id}/run", post(api::trigger_run))
        .route(
            "/api/targets/{id}/models",
            get(api::target_models).patch(api::set_target_models),
        )
        .route("/api/events", get(sse::events))
        .route("/api/targets/{id}/runs", get(api::list_runs))
        .route("/api/targets/{id}/logs", get(api::run_logs))
        .route("/api/targets/{id}/stats", get(api::target_stats))
        .route("/api/targets/{id}/errors", get(api::target_errors))
        .route("/api/admin/login", post(admin::login))
        .route("/api/admin/logout", post(admin::logout))
        .route(
            "/api/admin/settings",
            get(admin::get_settings).patch(admin::update_settings),
        )
        .route("/api/admin/settings/reveal", post(admin::reveal_setting))
        .route("/api/admin/channels", get(admin::channels))
        .route(
            "/api/admin/channels/{id}/models",
            get(admin::channel_models).patch(api::set_target_models),
        )
        .route(
            "/api/admin/channels/{id}/advanced",
            patch(admin::update_channel_advanced),
        )
        .route("/api/admin/resources", get(admin::resources))
        .route(
            "/api/proxy/keys",
            get(proxy_keys::list).post(proxy_keys::create),
        )
        .route(
            "/api/proxy/keys/{id}",
            get(proxy_keys::show)
                .patch(proxy_keys::update)
                .delete(proxy_keys::revoke),
        )
        .route("/api/proxy/usage", get(proxy_keys::usage))
        .merge(pages::routes())
        .method_not_allowed_fallback(method_not_allowed);
    api.fallback(not_found)
        .layer(DefaultBodyLimit::max(extract::API_BODY_LIMIT))
        .layer(axum::middleware::map_response(api_headers))
        .with_state(state)
}
