//! What a client asked the proxy for: which API, the key it presented, the model it
//! named (and where in the body), whether it streams, and the channel it pinned.
//! Bodies are never re-serialised: the model id is found in place and, when it must
//! change, spliced.

use std::borrow::Cow;
use std::ops::Range;

use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use shared::probe::Protocol;

use super::keys::ProxyEndpoint;
use super::refusal::Refusal;

/// Largest request body the proxy takes.
pub const BODY_LIMIT: usize = 10 * 1024 * 1024;

/// The APIs the proxy forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    Responses,
    Messages,
    Embeddings,
    Gemini { stream: bool },
}

impl Api {
    /// The wire protocol: which auth header the channel's key goes in, how streams
    /// are read for usage.
    pub fn protocol(self) -> Protocol {
        match self {
            Api::Chat | Api::Embeddings => Protocol::Openai,
            Api::Responses => Protocol::Responses,
            Api::Messages => Protocol::Anthropic,
            Api::Gemini { .. } => Protocol::Gemini,
        }
    }

    pub fn endpoint(self) -> ProxyEndpoint {
        match self {
            Api::Chat => ProxyEndpoint::Chat,
            Api::Responses => ProxyEndpoint::Responses,
            Api::Messages => ProxyEndpoint::Messages,
            Api::Embeddings => ProxyEndpoint::Embeddings,
            Api::Gemini { stream: false } => ProxyEndpoint::GeminiGenerate,
            Api::Gemini { stream: true } => ProxyEndpoint::GeminiStream,
        }
    }

    /// The APIs whose upstream path names no model, in the order of [`Api::fixed_slot`].
    pub const FIXED: [Api; 4] = [Api::Chat, Api::Responses, Api::Messages, Api::Embeddings];

    /// Where the API is in [`Api::FIXED`]; `None` for Gemini (the model is in its path).
    pub fn fixed_slot(self) -> Option<usize> {
        Api::FIXED.iter().position(|a| *a == self)
    }

    /// The upstream path for `model` (below the channel's base URL).
    pub fn upstream_path(self, model: &str) -> Cow<'static, str> {
        match self {
            Api::Chat => "/v1/chat/completions".into(),
            Api::Responses => "/v1/responses".into(),
            Api::Messages => "/v1/messages".into(),
            Api::Embeddings => "/v1/embeddings".into(),
            Api::Gemini { stream } => {
                let method = if stream {
                    "streamGenerateContent"
                } else {
                    "generateContent"
                };
                format!("/v1beta/models/{model}:{method}").into()
            }
        }
    }
}

/// The key a client presented, in the first place SDKs put it: `Authorization:
/// Bearer` (openai), `x-api-key` (anthropic), `x-goog-api-key` (google-genai), `?key=`.
pub fn presented_key<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<Cow<'a, str>> {
    let header_value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(v) = header_value(header::AUTHORIZATION.as_str())
        && let Some((scheme, token)) = v.split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        return Some(Cow::Borrowed(token.trim()));
    }
    if let Some(v) = header_value("x-api-key").or_else(|| header_value("x-goog-api-key")) {
        return Some(Cow::Borrowed(v));
    }
    query_param(query?, "key")
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The channel a request pins (`X-Target-Id` or `?target_id=`).
pub fn pinned_target(headers: &HeaderMap, query: Option<&str>) -> Result<Option<i64>, Refusal> {
    let raw = headers
        .get("x-target-id")
        .map(|v| Cow::Borrowed(v.to_str().unwrap_or("")))
        .or_else(|| query.and_then(|q| query_param(q, "target_id")));
    match raw {
        None => Ok(None),
        Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("X-Target-Id / target_id must be a channel id (an integer), got {v:?}"),
            )
        }),
    }
}

/// The client's query without what the proxy consumed (`key`, `target_id`), for the
/// upstream URL.
pub fn upstream_query(query: Option<&str>) -> Option<String> {
    let q = query?;
    if !q.contains("key=") && !q.contains("target_id=") {
        return (!q.is_empty()).then(|| q.to_string());
    }
    let kept: Vec<&str> = q
        .split('&')
        .filter(|p| {
            let name = p.split('=').next().unwrap_or("");
            name != "key" && name != "target_id" && !p.is_empty()
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// What the proxy reads from a JSON body.
#[derive(Debug)]
pub struct BodyFields {
    pub model: Option<String>,
    /// Where the model's JSON string (quotes included) sits in the body.
    pub model_span: Option<Range<usize>>,
    pub stream: bool,
    pub include_usage: bool,
}

/// Reads the model and stream flags of a JSON body without building it as a value.
pub fn read_fields(body: &[u8]) -> Result<BodyFields, Refusal> {
    let bad = |m: String| Refusal::new(StatusCode::BAD_REQUEST, "invalid_request_error", m);
    let f: Fields<'_> = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the request body is not a JSON object: {e}")))?;
    let (model, model_span) = match f.model {
        None => (None, None),
        Some(raw) => {
            let text = raw.get();
            let model: String =
                serde_json::from_str(text).map_err(|_| bad("model: must be a string".into()))?;
            let start = text.as_ptr() as usize - body.as_ptr() as usize;
            (Some(model), Some(start..start + text.len()))
        }
    };
    Ok(BodyFields {
        model,
        model_span,
        stream: f.stream.unwrap_or(false),
        include_usage: f
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
    })
}

/// The body with the model's string replaced by `model` (the rest byte for byte).
pub fn with_model(body: &Bytes, span: &Range<usize>, model: &str) -> Bytes {
    let encoded = serde_json::to_string(model).expect("a string serialises");
    let mut out = BytesMut::with_capacity(body.len() - span.len() + encoded.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(encoded.as_bytes());
    out.extend_from_slice(&body[span.end..]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_replaced_in_place_and_nothing_else_changes() {
        let body = Bytes::from_static(
            br#"{ "messages":[{"role":"user","content":"model"}],  "model" : "chan/gpt-4o", "stream":true}"#,
        );
        let f = read_fields(&body).unwrap();
        assert_eq!(f.model.as_deref(), Some("chan/gpt-4o"));
        assert!(f.stream && !f.include_usage);
        let out = with_model(&body, f.model_span.as_ref().unwrap(), "gpt-4o");
        assert_eq!(
            &out[..],
            br#"{ "messages":[{"role":"user","content":"model"}],  "model" : "gpt-4o", "stream":true}"#
        );
    }

    #[test]
    fn escaped_models_and_bad_bodies() {
        let body = br#"{"model":"a\/b","stream_options":{"include_usage":true}}"#;
        let f = read_fields(body).unwrap();
        assert_eq!(f.model.as_deref(), Some("a/b"));
        assert!(f.include_usage);
        assert!(read_fields(b"[1]").is_err());
        assert!(read_fields(br#"{"model": 3}"#).is_err());
        assert!(read_fields(b"{}").unwrap().model.is_none());
    }

    #[test]
    fn keys_come_from_each_sdks_place_and_the_query_loses_them() {
        let mut h = HeaderMap::new();
        assert_eq!(
            presented_key(&h, Some("alt=sse&key=k1")).as_deref(),
            Some("k1")
        );
        h.insert("x-goog-api-key", "k2".parse().unwrap());
        assert_eq!(presented_key(&h, None).as_deref(), Some("k2"));
        h.insert("x-api-key", "k3".parse().unwrap());
        assert_eq!(presented_key(&h, None).as_deref(), Some("k3"));
        h.insert("authorization", "Bearer k4".parse().unwrap());
        assert_eq!(presented_key(&h, None).as_deref(), Some("k4"));
        assert_eq!(
            upstream_query(Some("alt=sse&key=k1&target_id=3")).as_deref(),
            Some("alt=sse")
        );
        assert_eq!(upstream_query(Some("key=k1")), None);
        assert_eq!(
            upstream_query(Some("beta=true")).as_deref(),
            Some("beta=true")
        );
    }
}
