//! The proxy's way to a relay: the same client (profile, TLS settings, outbound proxy,
//! pooled keep-alive connections) and the same auth headers a probe of the target
//! uses, for requests whose bodies are passed through as the client wrote them.
//! [`Prober::upstream_client`] builds (or reuses) the client once per target, so the
//! proxy's hot path holds it and takes no lock to send.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::HeaderMap;

use super::classify::ErrorClass;
use super::clients::{ClientKey, HttpClient};
use super::outbound::ProxyUrl;
use super::route::Protocol;
use super::settings::ProbeSettings;
use super::transport::Prober;

/// Why an upstream request failed before or while its body was read: the class tells
/// connect errors, TLS, timeouts and broken bodies apart. The message names neither
/// the relay's URL nor the proxy's credentials.
#[derive(Debug, Clone)]
pub struct UpstreamError {
    pub class: ErrorClass,
    pub message: String,
}

/// A body as it arrives, chunk by chunk.
pub type UpstreamBody = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// A relay's answer: its head, and its body still to be read.
pub struct UpstreamResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: UpstreamBody,
}

/// A target's client, ready to send; cheap to clone (connection pools are shared).
#[derive(Clone)]
pub struct UpstreamClient {
    client: HttpClient,
    proxy: Option<ProxyUrl>,
}

impl Prober {
    /// The client a target's probes use, built once per combination of profile, TLS
    /// setting and way out.
    pub fn upstream_client(&self, s: &ProbeSettings) -> Result<UpstreamClient, UpstreamError> {
        let key = ClientKey {
            profile: s.client_profile,
            verify_ssl: s.verify_ssl,
            egress: self.egress_for(s),
        };
        let proxy = key.egress.proxy().cloned();
        let client = self.client(key).map_err(|f| UpstreamError {
            class: f.class,
            message: match &proxy {
                Some(p) => p.scrub(&f.message),
                None => f.message,
            },
        })?;
        Ok(UpstreamClient { client, proxy })
    }

    /// The headers a probe of `protocol` sends to the target: its auth header (the
    /// channel's key), `anthropic-version`, its `extra_headers` and User-Agent.
    pub fn upstream_headers(&self, s: &ProbeSettings, protocol: Protocol) -> HeaderMap {
        self.auth_headers(s, protocol)
    }
}

/// A parsed upstream URL: parse a channel's base once and derive each request's URL
/// from it (parsing a URL string, host and all, costs more than the rest of a
/// proxied request's routing).
pub type UpstreamUrl = reqwest::Url;

impl UpstreamClient {
    /// Sends a request; the answer comes back as soon as its headers did.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: UpstreamUrl,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let proxy = self.proxy.clone();
        let scrub = move |class: ErrorClass, message: String| UpstreamError {
            class,
            message: match &proxy {
                Some(p) => format!("through the proxy {}: {}", p.masked(), p.scrub(&message)),
                None => message,
            },
        };
        let resp = self
            .client
            .send_bytes(method, url, headers, body)
            .await
            .map_err(|f| scrub(f.class, f.message))?;
        if let Some(p) = &self.proxy
            && resp.status == 407
        {
            return Err(UpstreamError {
                class: ErrorClass::Network,
                message: format!(
                    "the proxy {} refused the request: HTTP 407 Proxy Authentication Required",
                    p.masked()
                ),
            });
        }
        let proxy = self.proxy.clone();
        Ok(UpstreamResponse {
            status: resp.status,
            headers: resp.headers,
            body: Box::pin(resp.body.map(move |chunk| {
                chunk.map_err(|f| UpstreamError {
                    class: f.class,
                    message: match &proxy {
                        Some(p) => p.scrub(&f.message),
                        None => f.message,
                    },
                })
            })),
        })
    }
}
