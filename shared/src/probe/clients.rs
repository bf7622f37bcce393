//! The two HTTP client profiles behind one face. `browser` is wreq emulating Chrome
//! (its TLS ClientHello, HTTP/2 settings, header order and default headers), so relays
//! behind bot protection answer it as they answer the Go program; `plain` is reqwest
//! with rustls (and, for the proxy's requests to relays reached without an outbound
//! proxy, its own HTTP/1.1 connections in `direct`). Both are built here for a
//! [`ClientKey`] (profile, `verify_ssl`, the way out), and both hand back a
//! [`Response`]: status, headers and a body stream whose errors are already
//! [`Failure`]s.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::HeaderMap;

use super::classify::ErrorClass;
use super::direct::{Direct, environment_names_a_proxy};
use super::outbound::Egress;
use super::result::Failure;
use super::settings::{CONNECT_TIMEOUT, ClientProfile};

/// The Chrome release the `browser` profile looks like: the newest wreq-util ships.
/// Its JA4 is pinned against a real Chromium's in `shared/tests/fingerprint.rs`.
pub(super) const CHROME: wreq_util::Profile = wreq_util::Profile::Chrome149;

/// Idle pooled connections are closed after this long.
pub(super) const POOL_IDLE: Duration = Duration::from_secs(30);

/// Which client a probe needs: clients are built once per combination and shared by
/// every probe that needs the same one (connection pools included).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct ClientKey {
    pub(super) profile: ClientProfile,
    pub(super) verify_ssl: bool,
    pub(super) egress: Egress,
}

#[derive(Clone)]
pub(super) enum HttpClient {
    /// reqwest, and for the proxy's requests to relays reached directly, the
    /// [`Direct`] connections beside it.
    Plain(reqwest::Client, Option<Arc<Direct>>),
    Browser(wreq::Client),
}

/// A body as it arrives, chunk by chunk.
pub(super) type Body = Pin<Box<dyn Stream<Item = Result<Bytes, Failure>> + Send>>;

/// A reply: its head, and its body still to be read.
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Body,
}

impl HttpClient {
    pub(super) fn build(key: &ClientKey) -> Result<HttpClient, Failure> {
        let unusable = |what: &str, e: &dyn std::fmt::Display| {
            let via = key
                .egress
                .proxy()
                .map(|p| format!(" with the proxy {}", p.masked()))
                .unwrap_or_default();
            Failure::new(
                ErrorClass::Network,
                format!("cannot build the {what} HTTP client{via}: {e}"),
            )
        };
        match key.profile {
            ClientProfile::Plain => {
                let mut b = reqwest::Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .danger_accept_invalid_certs(!key.verify_ssl)
                    .pool_idle_timeout(POOL_IDLE);
                match &key.egress {
                    Egress::Environment => {}
                    Egress::Direct => b = b.no_proxy(),
                    Egress::Via(p) => {
                        let proxy =
                            reqwest::Proxy::all(p.expose()).map_err(|e| unusable("plain", &e))?;
                        b = b.proxy(proxy);
                    }
                }
                let direct = match &key.egress {
                    Egress::Direct => true,
                    Egress::Environment => !environment_names_a_proxy(),
                    Egress::Via(_) => false,
                };
                let direct = direct.then(|| Arc::new(Direct::new(key.verify_ssl)));
                b.build()
                    .map(|c| HttpClient::Plain(c, direct))
                    .map_err(|e| unusable("plain", &e))
            }
            ClientProfile::Browser => {
                let emulation = wreq_util::Emulation::builder()
                    .profile(CHROME)
                    .platform(wreq_util::Platform::Windows)
                    .build();
                let mut b = wreq::Client::builder()
                    .emulation(emulation)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .pool_idle_timeout(POOL_IDLE)
                    .tls_cert_verification(key.verify_ssl)
                    .tls_verify_hostname(key.verify_ssl)
                    // As the plain client (and Go's) does: follow up to 10 redirects.
                    .redirect(wreq::redirect::Policy::limited(10));
                match &key.egress {
                    Egress::Environment => {}
                    Egress::Direct => b = b.no_proxy(),
                    Egress::Via(p) => {
                        let proxy =
                            wreq::Proxy::all(p.expose()).map_err(|e| unusable("browser", &e))?;
                        b = b.proxy(proxy);
                    }
                }
                b.build()
                    .map(HttpClient::Browser)
                    .map_err(|e| unusable("browser", &e))
            }
        }
    }

    /// Sends a GET, or a POST of `json`, with `headers` on top of the client's own.
    pub(super) async fn send(
        &self,
        url: &str,
        headers: HeaderMap,
        json: Option<&serde_json::Value>,
    ) -> Result<Response, Failure> {
        match self {
            HttpClient::Plain(c, _) => {
                let b = match json {
                    Some(body) => c.post(url).json(body),
                    None => c.get(url),
                };
                let mut r = b
                    .headers(headers)
                    .send()
                    .await
                    .map_err(|e| plain_failure(&e))?;
                Ok(Response {
                    status: r.status().as_u16(),
                    headers: std::mem::take(r.headers_mut()),
                    body: Box::pin(r.bytes_stream().map(|c| c.map_err(|e| plain_failure(&e)))),
                })
            }
            HttpClient::Browser(c) => {
                let b = match json {
                    Some(body) => c.post(url).json(body),
                    None => c.get(url),
                };
                let mut r = b
                    .headers(headers)
                    .send()
                    .await
                    .map_err(|e| browser_failure(&e))?;
                Ok(Response {
                    status: r.status().as_u16(),
                    headers: std::mem::take(r.headers_mut()),
                    body: Box::pin(r.bytes_stream().map(|c| c.map_err(|e| browser_failure(&e)))),
                })
            }
        }
    }
}

impl HttpClient {
    /// Sends any method with a ready body (the proxy's requests, passed through as the
    /// client wrote them).
    pub(super) async fn send_bytes(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Response, Failure> {
        match self {
            HttpClient::Plain(c, direct) => {
                if let Some(direct) = direct
                    && Direct::takes(&url)
                {
                    return direct.send(method, url, headers, body).await;
                }
                let mut b = c.request(method, url).headers(headers);
                if let Some(body) = body {
                    b = b.body(body);
                }
                // Boxed, as the browser's: this future stays the size of the direct
                // client's, which the proxy moves with every request.
                let mut r = Box::pin(b.send()).await.map_err(|e| plain_failure(&e))?;
                Ok(Response {
                    status: r.status().as_u16(),
                    headers: std::mem::take(r.headers_mut()),
                    body: Box::pin(r.bytes_stream().map(|c| c.map_err(|e| plain_failure(&e)))),
                })
            }
            HttpClient::Browser(c) => {
                let mut b = c.request(method, url.as_str()).headers(headers);
                if let Some(body) = body {
                    b = b.body(body);
                }
                let mut r = Box::pin(b.send()).await.map_err(|e| browser_failure(&e))?;
                Ok(Response {
                    status: r.status().as_u16(),
                    headers: std::mem::take(r.headers_mut()),
                    body: Box::pin(r.bytes_stream().map(|c| c.map_err(|e| browser_failure(&e)))),
                })
            }
        }
    }
}

fn plain_failure(e: &reqwest::Error) -> Failure {
    failure(
        e,
        e.url().map(|u| u.as_str().to_string()),
        e.is_timeout(),
        e.is_body() || e.is_decode(),
    )
}

fn browser_failure(e: &wreq::Error) -> Failure {
    failure(
        e,
        e.uri().map(|u| u.to_string()),
        e.is_timeout(),
        e.is_body() || e.is_decode(),
    )
}

/// A client error as a failure: classed by its chain of messages, without the relay's
/// URL.
pub(super) fn failure(
    e: &(dyn std::error::Error + 'static),
    url: Option<String>,
    timeout: bool,
    body: bool,
) -> Failure {
    // The chain's messages tell TLS problems apart from other connection failures.
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        chain.push_str(&s.to_string().to_lowercase());
        chain.push_str(": ");
        source = s.source();
    }
    // The relay's URL stays out of the message: it is shown where the URL itself may
    // not be (visitors without `visitor_show_base_url`).
    if let Some(url) = url {
        let url = url.to_lowercase();
        chain = chain
            .replace(&format!(" for url ({url})"), "")
            .replace(&format!(" for uri ({url})"), "")
            .replace(&url, "[url]");
    }
    // Failing to set up the way through a proxy is a network failure, even when the
    // SOCKS "handshake" is what failed.
    let proxy_setup = ["socks error", "tunnel error", "proxy connect error"]
        .iter()
        .any(|w| chain.contains(w));
    let class = if proxy_setup {
        ErrorClass::Network
    } else if ["certificate", "tls", "ssl", "handshake", "unknownissuer"]
        .iter()
        .any(|w| chain.contains(w))
    {
        ErrorClass::Tls
    } else if timeout {
        ErrorClass::Timeout
    } else if body {
        ErrorClass::StreamBroken
    } else {
        ErrorClass::Network
    };
    Failure::new(class, chain.trim_end_matches(": ").to_string())
}
