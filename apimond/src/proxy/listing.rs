//! The model lists SDKs ask for: `GET /v1/models` (OpenAI's shape) and
//! `GET /v1beta/models` (Gemini's), listing exactly the ids a key may use now: each
//! `channel/model` routing would accept, and each bare model with at least one
//! candidate. The Gemini list keeps the models the route table sends to Gemini.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use shared::probe::Protocol;
use shared::probe::route::route_for;

use super::Proxy;
use super::forward::authenticate;
use super::keys::{KeyGrant, ProxyEndpoint, ProxyUsage};
use super::refusal::Refusal;
use super::select::usable;
use super::view::Channel;

/// One id the key may use: the channel that owns it (none for a bare model) and the
/// model id on the wire.
struct Listed {
    id: String,
    owner: String,
    model: String,
    gemini: bool,
}

fn speaks_gemini(proxy: &Proxy, c: &Channel, model: &str) -> bool {
    route_for(
        model,
        &c.settings.route_overrides,
        proxy.core.prober.rules(),
    )
    .protocol
        == Protocol::Gemini
}

fn listed(proxy: &Proxy, grant: &KeyGrant) -> Vec<Listed> {
    let view = proxy.view.snapshot();
    let mut out = Vec::new();
    let mut bare: BTreeSet<(&str, bool)> = BTreeSet::new();
    for c in &view.channels {
        let mut models: Vec<&String> = c.models.keys().collect();
        models.sort();
        for m in models {
            if usable(c, m, grant, &proxy.breakers, true) {
                out.push(Listed {
                    id: format!("{}/{m}", c.name),
                    owner: c.name.clone(),
                    model: m.clone(),
                    gemini: speaks_gemini(proxy, c, m),
                });
            }
            if usable(c, m, grant, &proxy.breakers, false) {
                bare.insert((m.as_str(), speaks_gemini(proxy, c, m)));
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (m, gemini) in bare {
        if seen.insert(m) {
            out.push(Listed {
                id: m.to_string(),
                owner: "apimon".into(),
                model: m.to_string(),
                gemini,
            });
        }
    }
    out
}

fn record(proxy: &Proxy, grant: &KeyGrant, started: std::time::Instant) {
    proxy.core.proxy_keys.record(ProxyUsage {
        at: crate::store::now(),
        key_id: grant.key_id,
        target_id: None,
        requested_model: String::new(),
        upstream_model: None,
        endpoint: ProxyEndpoint::Models,
        stream: false,
        status: 200,
        attempts: 0,
        ttfb_ms: None,
        ttft_ms: None,
        total_ms: started.elapsed().as_secs_f64() * 1000.0,
        input_tokens: None,
        output_tokens: None,
        tokens_estimated: false,
        error_class: None,
    });
}

fn gemini_item(l: &Listed) -> Value {
    json!({
        "name": format!("models/{}", l.id),
        "baseModelId": l.model,
        "displayName": l.id,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent"],
    })
}

fn openai_item(l: &Listed) -> Value {
    json!({"id": l.id, "object": "model", "created": 0, "owned_by": l.owner})
}

/// Whether a request comes from a Gemini client: google-genai lists models at
/// `/v1/models` (without `api_version="v1beta"`) and expects Gemini's shape there.
fn from_gemini_client(parts: &axum::http::request::Parts) -> bool {
    parts.uri.path().starts_with("/v1beta/")
        || parts.headers.contains_key("x-goog-api-key")
        || parts.headers.contains_key("x-goog-api-client")
        || parts
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("key=")))
}

/// `GET /v1/models`: OpenAI's shape, or Gemini's for a Gemini client.
pub async fn openai_models(proxy: std::sync::Arc<Proxy>, req: Request) -> Response<Body> {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    if from_gemini_client(&parts) {
        return gemini_models(proxy, Request::from_parts(parts, body)).await;
    }
    let grant = match authenticate(&proxy, &parts, None) {
        Ok(g) => g,
        Err(r) => return r.into_response(),
    };
    let data: Vec<Value> = listed(&proxy, &grant).iter().map(openai_item).collect();
    record(&proxy, &grant, started);
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /v1/models/{id}` (and `/v1beta/models/{id}`): one model of the list, in the
/// asking client's shape.
pub async fn openai_model(
    proxy: std::sync::Arc<Proxy>,
    id: String,
    req: Request,
) -> Response<Body> {
    let (parts, _) = req.into_parts();
    let grant = match authenticate(&proxy, &parts, None) {
        Ok(g) => g,
        Err(r) => return r.into_response(),
    };
    let gemini = from_gemini_client(&parts);
    let id = if gemini {
        id.strip_prefix("models/").unwrap_or(&id).to_string()
    } else {
        id
    };
    match listed(&proxy, &grant).iter().find(|l| l.id == id) {
        Some(l) if gemini => axum::Json(gemini_item(l)).into_response(),
        Some(l) => axum::Json(openai_item(l)).into_response(),
        None => Refusal::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("model {id} is not available to this key now; GET /v1/models lists what is"),
        )
        .into_response(),
    }
}

/// `GET /v1beta/models` (and Gemini's `?key=`): the Gemini SDK's model list.
pub async fn gemini_models(proxy: std::sync::Arc<Proxy>, req: Request) -> Response<Body> {
    let started = std::time::Instant::now();
    let (parts, _) = req.into_parts();
    let grant = match authenticate(&proxy, &parts, None) {
        Ok(g) => g,
        Err(r) => return r.into_response(),
    };
    let models: Vec<Value> = listed(&proxy, &grant)
        .iter()
        .filter(|l| l.gemini)
        .map(gemini_item)
        .collect();
    record(&proxy, &grant, started);
    axum::Json(json!({"models": models})).into_response()
}
