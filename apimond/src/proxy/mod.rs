//! The proxy data plane: `/v1/*` (and Gemini's `/v1beta/*`) forwarded to channels that
//! work. One question per module: `request` (what the client asked: API, key, model,
//! pin), `view` (the in-memory routing view, refreshed from the bus), `select` (which
//! channels, best first, or why none), `breaker` (per channel and model, fed by live
//! outcomes), `forward` (sending with failover), `relay` (the answer's body on its way,
//! idle limits, recording), `usage` (tokens read on the side), `listing` (the model
//! lists), `refusal` (the proxy's own errors). Keys and usage rows belong to
//! `service::proxy_keys`; this module only calls its seam.

pub mod breaker;
pub mod forward;
pub mod listing;
pub mod refusal;
pub mod relay;
pub mod request;
pub mod select;
pub mod usage;
pub mod view;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::service::{Caller, Core};
use breaker::Breakers;
use refusal::Refusal;
use request::Api;
use view::ViewHandle;

use crate::service::proxy_keys as keys;

/// The proxy's state: the service core, the routing view, the breakers.
pub struct Proxy {
    pub core: Arc<Core>,
    pub view: ViewHandle,
    pub breakers: Breakers,
    /// Turns taken among equally good channels.
    turn: AtomicUsize,
}

impl Proxy {
    pub fn new(core: Arc<Core>) -> Arc<Proxy> {
        Arc::new(Proxy {
            breakers: Breakers::new(core.config.proxy.breaker_cooldown, core.bus.clone()),
            view: ViewHandle::default(),
            turn: AtomicUsize::new(0),
            core,
        })
    }

    /// Keeps the routing view fresh until `stop`. Subscribes to the bus when called,
    /// not when first polled: call it before the first [`Proxy::refresh`] so a change
    /// made in between still reaches the view (and the daemon's listeners are counted
    /// from the moment it starts).
    pub fn keep_view_fresh(
        self: Arc<Self>,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let sub = self.core.bus.subscribe();
        let (store, prober) = (self.core.store.clone(), self.core.prober.clone());
        self.view.clone().keep_fresh(store, prober, sub, stop)
    }

    /// Rebuilds the routing view now (start-up, tests).
    pub async fn refresh(&self) {
        self.view.refresh(&self.core.store, &self.core.prober).await;
    }

    /// The breakers that are not closed, with channel names.
    pub fn breakers(&self) -> Vec<breaker::BreakerView> {
        let view = self.view.snapshot();
        self.breakers.list(|id| {
            view.channel(id)
                .map(|c| c.name.clone())
                .unwrap_or_else(|| format!("#{id}"))
        })
    }
}

type ProxyState = Arc<Proxy>;

/// The generation endpoints whose path names no model, served before the router
/// (by the same function as their routes below, without the router's work).
pub fn shortcut(proxy: Arc<Proxy>) -> Arc<dyn crate::http::connection::Shortcut> {
    Arc::new(Shortcut(proxy))
}

struct Shortcut(Arc<Proxy>);

/// What the shortcut takes: a `POST` to each path, as the API it is. The router has
/// the same routes (a daemon serves them there without the shortcut, and other
/// methods get their 405 there).
const SHORTCUT_ROUTES: [(&str, Api); 4] = [
    ("/v1/chat/completions", Api::Chat),
    ("/v1/responses", Api::Responses),
    ("/v1/messages", Api::Messages),
    ("/v1/embeddings", Api::Embeddings),
];

impl crate::http::connection::Shortcut for Shortcut {
    fn route(&self, method: &axum::http::Method, path: &str) -> Option<usize> {
        if method != axum::http::Method::POST {
            return None;
        }
        SHORTCUT_ROUTES.iter().position(|(p, _)| *p == path)
    }

    fn serve(
        &self,
        route: usize,
        req: Request,
        peer: std::net::SocketAddr,
    ) -> crate::http::connection::Answer {
        let api = SHORTCUT_ROUTES[route].1;
        Box::pin(forward::serve(self.0.clone(), api, req, None, Some(peer)))
    }
}

/// `POST …/models/{model}:generateContent|streamGenerateContent`.
async fn gemini(
    State(p): State<ProxyState>,
    Path(rest): Path<String>,
    req: Request,
) -> Response<Body> {
    let Some((model, method)) = rest.rsplit_once(':') else {
        return not_found(&rest);
    };
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return not_found(&rest),
    };
    forward::serve(
        p,
        Api::Gemini { stream },
        req,
        Some(model.to_string()),
        None,
    )
    .await
}

fn not_found(rest: &str) -> Response<Body> {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "not_found_error",
        format!(
            "no such endpoint: models/{rest} (expected models/{{model}}:generateContent or :streamGenerateContent)"
        ),
    )
    .into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response<Body> {
    Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("{method} is not allowed on {}", uri.path()),
    )
    .into_response()
}

async fn models(State(p): State<ProxyState>, req: Request) -> Response<Body> {
    listing::openai_models(p, req).await
}

async fn model(
    State(p): State<ProxyState>,
    Path(id): Path<String>,
    req: Request,
) -> Response<Body> {
    listing::openai_model(p, id, req).await
}

async fn gemini_models(State(p): State<ProxyState>, req: Request) -> Response<Body> {
    listing::gemini_models(p, req).await
}

/// `GET /api/proxy/breakers`: every breaker not closed (readers: no secrets in it).
async fn list_breakers(
    caller: Caller,
    Extension(p): Extension<ProxyState>,
) -> Result<Json<serde_json::Value>, crate::http::error::AppError> {
    caller.require_reader()?;
    Ok(Json(json!({ "items": p.breakers() })))
}

/// The proxy's routes, to merge into the daemon's router.
pub fn router(proxy: ProxyState) -> Router {
    let mut data = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{*rest}", get(model).post(gemini))
        .route("/v1beta/models", get(gemini_models))
        .route("/v1beta/models/{*rest}", get(model).post(gemini));
    for (path, api) in SHORTCUT_ROUTES {
        data = data.route(
            path,
            post(move |State(p): State<ProxyState>, req: Request| {
                forward::serve(p, api, req, None, None)
            }),
        );
    }
    let data = data
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(proxy.clone());
    let api = Router::new()
        .route("/api/proxy/breakers", get(list_breakers))
        .layer(Extension(proxy.clone()))
        .with_state(proxy.core.clone());
    data.merge(api)
}
