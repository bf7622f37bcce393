//! The HTTP side of a probe: the `Prober` and its cache of clients (built in
//! `clients`), sending through the target's profile and proxy, the common and
//! per-protocol auth headers, capped body reads and `Retry-After`. Discovery and probe
//! attempts add `impl Prober` blocks in their own modules.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::classify::ErrorClass;
use super::clients::{ClientKey, HttpClient, Response};
use super::outbound::{Egress, ProxyUrl};
use super::result::Failure;
use super::route::{Protocol, RouteRule};
use super::settings::{ClientProfile, ProbeSettings};

pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Reads a body until its end, the cap or the deadline. `Ok(None)` means the cap was
/// passed and reading stopped.
pub(super) async fn read_capped(
    resp: Response,
    deadline: tokio::time::Instant,
    cap: usize,
) -> Result<Option<Vec<u8>>, Failure> {
    let mut stream = resp.body;
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| {
                Failure::new(
                    ErrorClass::Timeout,
                    "the reply did not finish within timeout_s",
                )
            })?;
        match next {
            None => return Ok(Some(out)),
            Some(Err(f)) => return Err(f),
            Some(Ok(chunk)) => {
                if out.len() + chunk.len() > cap {
                    return Ok(None);
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
}

/// Distinct clients kept at most; past it the cache starts afresh (clients in use live
/// on in the probes holding them). Only edits of many targets' proxies get there.
const MAX_CLIENTS: usize = 64;

/// Probes relays: routes models, builds and caches the HTTP clients.
#[derive(Clone)]
pub struct Prober {
    clients: Arc<Mutex<HashMap<ClientKey, HttpClient>>>,
    rules: Vec<RouteRule>,
    default_proxy: Option<ProxyUrl>,
}

/// A request a probe sends.
pub(super) struct Outgoing<'a> {
    pub(super) url: &'a str,
    pub(super) headers: HeaderMap,
    /// A JSON body, sent with POST; `None` is a GET.
    pub(super) json: Option<&'a serde_json::Value>,
}

impl Prober {
    /// A prober routing with `rules` (the global table; targets add their overrides),
    /// connecting directly unless a target names a proxy.
    pub fn new(rules: Vec<RouteRule>) -> Prober {
        Prober {
            clients: Arc::default(),
            rules,
            default_proxy: None,
        }
    }

    /// Sends the probes of targets without a proxy of their own through `proxy`
    /// (`OUTBOUND_PROXY`).
    pub fn with_default_proxy(mut self, proxy: Option<ProxyUrl>) -> Prober {
        self.default_proxy = proxy;
        self
    }

    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    /// The way a target's probes leave this machine.
    pub fn egress_for(&self, s: &ProbeSettings) -> Egress {
        s.proxy.resolve(self.default_proxy.as_ref())
    }

    pub(super) fn client(&self, key: ClientKey) -> Result<HttpClient, Failure> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = HttpClient::build(&key)?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Sends a request with the target's client; a failure names neither the relay's
    /// URL nor the proxy's credentials.
    pub(super) async fn send(
        &self,
        s: &ProbeSettings,
        req: Outgoing<'_>,
    ) -> Result<Response, Failure> {
        let key = ClientKey {
            profile: s.client_profile,
            verify_ssl: s.verify_ssl,
            egress: self.egress_for(s),
        };
        let proxy = key.egress.proxy().cloned();
        let scrub_proxy = |mut f: Failure| {
            if let Some(p) = &proxy {
                f.message = p.scrub(&f.message);
            }
            f
        };
        let client = self.client(key).map_err(scrub_proxy)?;
        let resp = client
            .send(req.url, req.headers, req.json)
            .await
            .map_err(|mut f| {
                if let Some(p) = &proxy {
                    // Say the proxy was on the way: its failures read like the relay's.
                    f.message = format!("through the proxy {}: {}", p.masked(), f.message);
                }
                scrub_proxy(f)
            })?;
        if let Some(p) = &proxy
            && resp.status == 407
        {
            // A forwarded plain-HTTP request gets the proxy's refusal as a reply; it is
            // the way out that failed, not the relay.
            return Err(proxy_refused(p));
        }
        Ok(resp)
    }

    fn common_headers(&self, s: &ProbeSettings) -> HeaderMap {
        let mut h = HeaderMap::new();
        // The browser profile sends Chrome's User-Agent unless the target sets one.
        let ua = match (&s.user_agent, s.client_profile) {
            (Some(ua), _) => Some(ua.clone()),
            (None, ClientProfile::Plain) => Some(format!("apimon/{}", crate::VERSION)),
            (None, ClientProfile::Browser) => None,
        };
        if let Some(v) = ua.and_then(|ua| HeaderValue::from_str(&ua).ok()) {
            h.insert(reqwest::header::USER_AGENT, v);
        }
        if s.client_profile == ClientProfile::Browser {
            // Chrome's `fetch()` asks for anything; its navigation `Accept` (HTML
            // first) would be odd on an API call.
            h.insert(reqwest::header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        for (k, v) in &s.extra_headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v.expose()),
            ) {
                h.insert(name, value);
            }
        }
        h
    }

    pub(super) fn auth_headers(&self, s: &ProbeSettings, protocol: Protocol) -> HeaderMap {
        let mut h = self.common_headers(s);
        let key = s.api_key.expose();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(mut v) = HeaderValue::from_str(value) {
                v.set_sensitive(true);
                h.insert(name, v);
            }
        };
        match protocol {
            Protocol::Openai | Protocol::Responses => {
                put("authorization", &format!("Bearer {key}"))
            }
            Protocol::Anthropic => {
                put("x-api-key", key);
                put("anthropic-version", &s.anthropic_version);
            }
            Protocol::Gemini => put("x-goog-api-key", key),
        }
        h
    }
}

fn proxy_refused(p: &ProxyUrl) -> Failure {
    Failure::new(
        ErrorClass::Network,
        format!(
            "the proxy {} refused the request: HTTP 407 Proxy Authentication Required (check its user name and password)",
            p.masked()
        ),
    )
}
