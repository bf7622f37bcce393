//! A stand-in for `service::proxy_keys` (branch proxy-keys) until it is merged: the
//! same seam, with only the master token. Deleted at the merge.

use std::net::IpAddr;
use std::time::Instant;

use axum::http::StatusCode;

use crate::service::Core;
use crate::service::auth::secret_eq;
use crate::service::limiter::ClientKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyEndpoint {
    Chat,
    Responses,
    Messages,
    GeminiGenerate,
    GeminiStream,
    Embeddings,
    Models,
}

#[derive(Debug, Clone)]
pub struct KeyGrant {
    pub key_id: Option<i64>,
    pub name: String,
    pub allowed_target_ids: Vec<i64>,
    pub allowed_models: Vec<String>,
}

impl KeyGrant {
    pub fn allows_target(&self, target_id: i64) -> bool {
        self.allowed_target_ids.is_empty() || self.allowed_target_ids.contains(&target_id)
    }

    pub fn allows_model(&self, target_name: &str, model: &str) -> bool {
        self.allowed_models.is_empty()
            || self.allowed_models.iter().any(|m| {
                m.len() == target_name.len() + 1 + model.len()
                    && m.starts_with(target_name)
                    && m.as_bytes()[target_name.len()] == b'/'
                    && m.ends_with(model)
            })
    }
}

#[derive(Debug, Clone)]
pub enum KeyRefusal {
    Unknown,
    RateLimited { retry_after_s: u64 },
}

impl KeyRefusal {
    pub fn status(&self) -> StatusCode {
        match self {
            KeyRefusal::Unknown => StatusCode::UNAUTHORIZED,
            KeyRefusal::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn message(&self) -> String {
        match self {
            KeyRefusal::Unknown => "invalid proxy key".into(),
            KeyRefusal::RateLimited { .. } => {
                "too many failed proxy keys from this client; try again later".into()
            }
        }
    }

    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            KeyRefusal::RateLimited { retry_after_s } => Some(*retry_after_s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProxyUsage {
    pub at: f64,
    pub key_id: Option<i64>,
    pub target_id: Option<i64>,
    pub requested_model: String,
    pub upstream_model: Option<String>,
    pub endpoint: ProxyEndpoint,
    pub stream: bool,
    pub status: u16,
    pub attempts: u8,
    pub ttfb_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub tokens_estimated: bool,
    pub error_class: Option<String>,
}

/// Authenticates a presented proxy key (master token only, in this stand-in).
pub fn authenticate(core: &Core, presented: &str, client: IpAddr) -> Result<KeyGrant, KeyRefusal> {
    let settings = core.settings();
    if let Some(master) = &settings.proxy_master_token
        && secret_eq(presented, master.expose())
    {
        return Ok(KeyGrant {
            key_id: None,
            name: "master".into(),
            allowed_target_ids: Vec::new(),
            allowed_models: Vec::new(),
        });
    }
    let limited = core
        .token_failures
        .lock()
        .expect("limiter poisoned")
        .hit(ClientKey::of(client), Instant::now());
    Err(match limited {
        Some(d) => KeyRefusal::RateLimited {
            retry_after_s: d.as_secs().max(1),
        },
        None => KeyRefusal::Unknown,
    })
}

/// Records one proxied request (the stand-in keeps nothing).
pub fn record(_core: &Core, usage: ProxyUsage) {
    tracing::debug!(?usage, "proxied request");
}
