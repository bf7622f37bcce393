//! Request extractors: the authenticated caller (with the Origin check for cookie
//! writes) and the JSON body, both failing with the API's JSON errors.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::client::client_ip;
use super::connection::BodyTimedOut;
use super::error::{AppError, detail};
use crate::service::auth::{Credentials, SESSION_COOKIE};
use crate::service::{Caller, Core, ServiceError};

pub type AppState = Arc<Core>;

/// The request body limit of the JSON API.
pub const API_BODY_LIMIT: usize = 2 * 1024 * 1024;

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn query_token(parts: &Parts) -> Option<String> {
    url::form_urlencoded::parse(parts.uri.query()?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// The client address of a request, honouring trusted proxies.
pub fn request_client(parts: &Parts, core: &Core) -> std::net::IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    client_behind(peer, &parts.headers, core)
}

/// The client address of a request from `peer` with `headers`, honouring trusted
/// proxies.
pub fn client_behind(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    core: &Core,
) -> std::net::IpAddr {
    // Proxies may add their hop as another header line rather than appending to the
    // first one: read them all, in order.
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined = (!xff.is_empty()).then(|| xff.join(","));
    client_ip(peer, joined.as_deref(), &core.config.auth.trusted_proxies)
}

/// Whether the request reached us over HTTPS (told by a trusted proxy).
pub fn is_https(parts: &Parts, core: &Core) -> bool {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    let proxies = &core.config.auth.trusted_proxies;
    let trusted = peer.is_some_and(|p| proxies.iter().any(|n| n.contains(&p)));
    trusted
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The `scheme://host[:port]` of an `Origin` header, lower-cased.
fn origin_of(headers: &HeaderMap) -> Option<url::Url> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    url::Url::parse(origin).ok().filter(|u| u.host().is_some())
}

/// A cookie-authenticated write must come from our own pages. With `PUBLIC_URL` set
/// its `Origin` must be that URL's origin. Without it, the `Origin` must name the
/// host the request was sent to, and that host must be an IP address or `localhost`:
/// a name could be rebound by DNS to this machine from an attacker's page.
pub fn origin_allowed(headers: &HeaderMap, public_origin: Option<&str>) -> bool {
    let Some(origin) = origin_of(headers) else {
        return false;
    };
    if let Some(public) = public_origin {
        return origin
            .origin()
            .ascii_serialization()
            .eq_ignore_ascii_case(public);
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let authority = match (origin.host_str(), origin.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return false,
    };
    let literal_or_local = match origin.host() {
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    literal_or_local && authority.eq_ignore_ascii_case(host)
}

/// A cookie-authenticated write carries JSON, or nothing: a form or `text/plain`
/// body is what a cross-site page can send without asking.
fn json_or_empty(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE) {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|t| t.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")),
        None => {
            let length = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            !headers.contains_key(header::TRANSFER_ENCODING) && length.unwrap_or(0) == 0
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        core: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let client = request_client(parts, core);
        // EventSource cannot send headers, so the SSE route also takes ?token=.
        let from_query = (parts.uri.path() == "/api/events")
            .then(|| query_token(parts))
            .flatten();
        let token = bearer(&parts.headers).or(from_query.as_deref());
        let creds = Credentials {
            token,
            session: cookie(&parts.headers, SESSION_COOKIE),
        };
        let caller = core.authenticate(creds, client)?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let public = core.config.listen.public_origin.as_deref();
        if caller.via_cookie && !safe && !origin_allowed(&parts.headers, public) {
            let expected = match public {
                Some(p) => format!("PUBLIC_URL's origin {p}"),
                None => "this host, reached by IP address or localhost (set PUBLIC_URL to serve the panel under a name)".into(),
            };
            return Err(AppError(ServiceError::Forbidden(format!(
                "cross-site request refused: a request made with the admin cookie must carry an Origin header of {expected}"
            ))));
        }
        if caller.via_cookie && !safe && !json_or_empty(&parts.headers) {
            return Err(AppError(ServiceError::UnsupportedMediaType(
                "a request made with the admin cookie must send its body as Content-Type: application/json".into(),
            )));
        }
        Ok(caller)
    }
}

/// A request body of at most [`API_BODY_LIMIT`] bytes. It is parsed by the service
/// after the permission check, so a caller who may not write learns nothing from
/// validation errors.
pub struct ApiBody(pub Bytes);

pub struct BodyRejection(Response);

impl IntoResponse for BodyRejection {
    fn into_response(self) -> Response {
        self.0
    }
}

/// The body timeout behind a failed body read, if that is what failed.
fn timed_out<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimedOut> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<BodyTimedOut>() {
            return Some(t);
        }
        cause = c.source();
    }
    None
}

impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = BodyRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBody)
            .map_err(|e| {
                BodyRejection(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    detail(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "request body is larger than {} MiB",
                            API_BODY_LIMIT / 1024 / 1024
                        ),
                    )
                } else if let Some(t) = timed_out(&e) {
                    let mut resp = detail(StatusCode::REQUEST_TIMEOUT, t.to_string());
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    resp
                } else {
                    detail(e.status(), format!("cannot read the request body: {e}"))
                })
            })
    }
}

/// The `{id}` of a path, for an extractor of `what` ids (`target`, `proxy key`): text
/// that is no integer is a bad request (400, as the Go program answers); an integer
/// below 1 names nothing (404).
pub async fn path_id<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    what: &str,
) -> Result<i64, AppError> {
    let axum::extract::Path(params) = axum::extract::Path::<
        std::collections::HashMap<String, String>,
    >::from_request_parts(parts, state)
    .await
    .map_err(|e| AppError(ServiceError::BadRequest(e.to_string())))?;
    let raw = params.get("id").map(String::as_str).unwrap_or("");
    let id = raw.parse::<i64>().map_err(|_| {
        AppError(ServiceError::BadRequest(format!(
            "{what} id: `{raw}` is not an integer"
        )))
    })?;
    if id < 1 {
        return Err(AppError(ServiceError::NotFound(format!(
            "no {what} with id {id}"
        ))));
    }
    Ok(id)
}
