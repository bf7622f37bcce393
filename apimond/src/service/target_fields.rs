//! The fields of a target a client may send: each one's bounds and parsing, into a
//! [`TargetPatch`] applied to the stored record. Create, update and the admin panel's
//! advanced form all read bodies through here.
//!
//! A target read back and sent again must work, as with the Go program: its
//! read-only fields are skipped, its masked key and masked `base_url` credentials
//! keep the stored values, and fields apimon does not know are ignored and named
//! back to the client (`ignored_fields`), so a misspelt field is still seen.

use std::collections::BTreeMap;

use serde_json::Value;

use shared::Secret;
use shared::probe::{
    CheckMode, ClientProfile, DIRECT, ProbeMode, Protocol, ProxyChoice, ProxyUrl, RouteRule,
};

use super::validate::Body;
use super::{ServiceError, ServiceResult};
use crate::config::variables::{INTERVAL_MINUTES, MODELS_PER_TARGET_MAX};
use crate::store::targets::TargetRecord;

/// Fields of the admin panel's "advanced" form (`PATCH /api/admin/channels/{id}/advanced`).
pub const ADVANCED_FIELDS: &[&str] = &[
    "verify_ssl",
    "prompt",
    "anthropic_version",
    "max_models",
    "visitor_channel_actions_enabled",
    "timeout_s",
    "probe_mode",
    "check_mode",
    "max_tokens",
    "slow_ms",
    "exclude_models",
    "extra_headers",
    "user_agent",
    "route_overrides",
    "proxy_url",
    "client_profile",
];

/// Fields a target shows but a client cannot set: sent back with the rest of an
/// item, they are skipped without a word.
pub const READ_ONLY_FIELDS: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "last_run_at",
    "last_status",
    "last_total",
    "last_success",
    "last_fail",
    "last_log_file",
    "last_error",
    "last_success_rate",
    "running",
    "can_operate",
    "latest_models",
    "history_runs",
];

/// Hides credentials embedded in a URL (`https://user:pass@host` → `https://***@host`).
pub fn mask_url_credentials(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_password(None);
            let _ = u.set_username("***");
            u.to_string()
        }
        _ => raw.to_string(),
    }
}

/// The character every masked secret carries (`sk-ab…wxyz`); no key has it, since
/// keys are ASCII.
const MASK_MARK: char = '…';

/// An `api_key` as sent.
#[derive(Debug)]
enum KeyChange {
    /// A new key.
    New(Secret),
    /// A masked key, as the API shows it: the stored key stays if it is its mask.
    AsShown(String),
}

/// A validated change to a target; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct TargetPatch {
    name: Option<String>,
    base_url: Option<String>,
    api_key: Option<KeyChange>,
    enabled: Option<bool>,
    interval_min: Option<i64>,
    timeout_s: Option<f64>,
    verify_ssl: Option<bool>,
    prompt: Option<String>,
    anthropic_version: Option<String>,
    max_models: Option<i64>,
    source_url: Option<Option<String>>,
    sort_order: Option<i64>,
    visitor_channel_actions_enabled: Option<bool>,
    selected_models: Option<Vec<String>>,
    exclude_models: Option<Vec<String>>,
    probe_mode: Option<ProbeMode>,
    check_mode: Option<CheckMode>,
    max_tokens: Option<Option<i64>>,
    slow_ms: Option<i64>,
    extra_headers: Option<BTreeMap<String, Secret>>,
    user_agent: Option<Option<String>>,
    route_overrides: Option<Vec<RouteRule>>,
    /// Fields of the body that are no target field, by name.
    ignored: Vec<String>,
    proxy: Option<ProxyField>,
    client_profile: Option<ClientProfile>,
}

/// `proxy_url` as sent: a choice, or the masked URL a `GET` showed (credentials `***`),
/// which keeps the stored proxy: a mask is never stored.
#[derive(Debug)]
enum ProxyField {
    Set(ProxyChoice),
    AsShown(String),
}

pub(super) fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest(msg.into())
}

/// One of a closed set of values, given as its name.
fn one_of<T: Copy>(
    body: &mut Body,
    name: &str,
    all: &[T],
    as_str: fn(T) -> &'static str,
) -> ServiceResult<Option<T>> {
    match body.string(name, 1, 32)? {
        None => Ok(None),
        Some(v) => all
            .iter()
            .copied()
            .find(|x| as_str(*x) == v)
            .map(Some)
            .ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|x| as_str(*x)).collect();
                bad(format!("{name}: must be one of {}", names.join(", ")))
            }),
    }
}

fn base_url(body: &mut Body) -> ServiceResult<Option<String>> {
    let Some(raw) = body.string("base_url", 3, 512)? else {
        return Ok(None);
    };
    let parsed = url::Url::parse(&raw).map_err(|e| {
        bad(format!(
            "base_url: not a valid URL ({e}); expected e.g. https://relay.example.com"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad(
            "base_url: must be an http:// or https:// URL with a host",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("base_url: must not have a query or fragment"));
    }
    Ok(Some(raw))
}

fn api_key(body: &mut Body) -> ServiceResult<Option<KeyChange>> {
    match body.value("api_key") {
        None => Ok(None),
        Some(Value::String(s)) if s.contains(MASK_MARK) => {
            Ok(Some(KeyChange::AsShown(s.trim().to_string())))
        }
        Some(Value::String(s)) => {
            let s = s.trim();
            let len = s.chars().count();
            if !(1..=2048).contains(&len) {
                return Err(bad(format!(
                    "api_key: must be 1 to 2048 characters, got {len}"
                )));
            }
            if s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
            {
                return Err(bad("api_key: must be printable ASCII without spaces"));
            }
            Ok(Some(KeyChange::New(Secret::new(s))))
        }
        Some(_) => Err(bad("api_key: must be a string")),
    }
}

/// Headers that frame the message, belong to one hop or name the host: set by hand
/// they corrupt the request (a wrong length, a second encoding, a foreign `Host`).
fn is_framing_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "content-length"
            | "transfer-encoding"
            | "host"
            | "connection"
            | "keep-alive"
            | "upgrade"
            | "te"
            | "trailer"
            | "expect"
            | "http2-settings"
    ) || n.starts_with("proxy-")
}

/// `extra_headers`: header name to value. Values often carry credentials (custom auth
/// headers), so they are secrets: sealed at rest and masked wherever they are shown.
fn extra_headers(body: &mut Body) -> ServiceResult<Option<BTreeMap<String, Secret>>> {
    let map = match body.value("extra_headers") {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(BTreeMap::new())),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(bad(
                "extra_headers: must be an object of header name to value",
            ));
        }
    };
    if map.len() > 32 {
        return Err(bad("extra_headers: at most 32 headers"));
    }
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let valid_name = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(bad(format!(
                "extra_headers: `{name}` is not a valid header name"
            )));
        }
        if is_framing_header(&name) {
            return Err(bad(format!(
                "extra_headers: `{name}` cannot be set; it frames or routes the request, which the HTTP client decides"
            )));
        }
        let Value::String(v) = value else {
            return Err(bad(format!("extra_headers.{name}: must be a string")));
        };
        if v.len() > 1024 || v.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(bad(format!(
                "extra_headers.{name}: must be at most 1024 characters without control characters"
            )));
        }
        out.insert(name.to_ascii_lowercase(), Secret::new(v));
    }
    Ok(Some(out))
}

/// `route_overrides`: `[{"pattern": "glob", "protocol": "openai|responses|anthropic|gemini"}]`,
/// tried before the global route table.
fn route_overrides(body: &mut Body) -> ServiceResult<Option<Vec<RouteRule>>> {
    let items = match body.value("route_overrides") {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(Vec::new())),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(bad(
                "route_overrides: must be a list of {\"pattern\", \"protocol\"} objects",
            ));
        }
    };
    if items.len() > 100 {
        return Err(bad("route_overrides: at most 100 rules"));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let mut b = Body::from_value(item)
            .map_err(|_| bad(format!("route_overrides[{i}]: must be an object")))?;
        let pattern = b
            .string("pattern", 1, 256)
            .map_err(|e| bad(format!("route_overrides[{i}].{e}")))?
            .ok_or_else(|| bad(format!("route_overrides[{i}].pattern: required")))?;
        let protocol = b
            .string("protocol", 1, 32)
            .map_err(|e| bad(format!("route_overrides[{i}].{e}")))?
            .ok_or_else(|| bad(format!("route_overrides[{i}].protocol: required")))?;
        let protocol = Protocol::parse(&protocol).ok_or_else(|| {
            bad(format!(
                "route_overrides[{i}].protocol: must be one of openai, responses, anthropic, gemini"
            ))
        })?;
        b.finish()
            .map_err(|e| bad(format!("route_overrides[{i}].{e}")))?;
        out.push(RouteRule { pattern, protocol });
    }
    Ok(Some(out))
}

/// `proxy_url`: `null` or `""` for the global default (`OUTBOUND_PROXY`), `"direct"`
/// for no proxy even when a default is set, else an `http`, `https`, `socks5` or
/// `socks5h` URL with a host and a port, optionally with credentials.
fn proxy_url(body: &mut Body) -> ServiceResult<Option<ProxyField>> {
    let raw = match body.value("proxy_url") {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(ProxyField::Set(ProxyChoice::Default))),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err(bad("proxy_url: must be a string or null")),
    };
    if raw.is_empty() {
        return Ok(Some(ProxyField::Set(ProxyChoice::Default)));
    }
    if raw.eq_ignore_ascii_case(DIRECT) {
        return Ok(Some(ProxyField::Set(ProxyChoice::Direct)));
    }
    if raw.chars().count() > 2048 {
        return Err(bad("proxy_url: at most 2048 characters"));
    }
    let parsed = ProxyUrl::parse(&raw).map_err(|e| bad(format!("proxy_url: {e}")))?;
    if parsed.masked() == raw && raw.contains("://***@") {
        return Ok(Some(ProxyField::AsShown(raw)));
    }
    Ok(Some(ProxyField::Set(ProxyChoice::Via(parsed))))
}

impl TargetPatch {
    /// Reads every target field the body carries; read-only fields are skipped and
    /// unknown ones kept aside ([`TargetPatch::ignored_fields`]).
    pub fn from_body(mut body: Body) -> ServiceResult<TargetPatch> {
        for field in READ_ONLY_FIELDS {
            body.value(field);
        }
        let b = &mut body;
        let p = TargetPatch {
            name: b.name("name", 1, 128)?,
            base_url: base_url(b)?,
            api_key: api_key(b)?,
            enabled: b.bool("enabled")?,
            interval_min: b.int("interval_min", INTERVAL_MINUTES.min, INTERVAL_MINUTES.max)?,
            timeout_s: b.float("timeout_s", 3.0, 300.0)?,
            verify_ssl: b.bool("verify_ssl")?,
            prompt: b.string("prompt", 1, 4000)?,
            anthropic_version: b.string("anthropic_version", 4, 64)?,
            max_models: b.int("max_models", 0, MODELS_PER_TARGET_MAX as i64)?,
            source_url: b.nullable_string("source_url", 1024)?,
            sort_order: b.int("sort_order", 1, 1_000_000)?,
            visitor_channel_actions_enabled: b.bool("visitor_channel_actions_enabled")?,
            selected_models: b.string_list("selected_models", MODELS_PER_TARGET_MAX, 1, 256)?,
            exclude_models: b.string_list("exclude_models", 500, 1, 256)?,
            probe_mode: one_of(b, "probe_mode", &ProbeMode::ALL, ProbeMode::as_str)?,
            check_mode: one_of(b, "check_mode", &CheckMode::ALL, CheckMode::as_str)?,
            max_tokens: b.nullable_int("max_tokens", 16, 65_536)?,
            slow_ms: b.int("slow_ms", 100, 600_000)?,
            extra_headers: extra_headers(b)?,
            user_agent: b.nullable_string("user_agent", 512)?,
            route_overrides: route_overrides(b)?,
            proxy: proxy_url(b)?,
            client_profile: one_of(
                b,
                "client_profile",
                &ClientProfile::ALL,
                ClientProfile::as_str,
            )?,
            ignored: Vec::new(),
        };
        Ok(TargetPatch {
            ignored: body.unread(),
            ..p
        })
    }

    /// Fields of the body that are no target field: ignored, as the Go program
    /// does, and named in the answer.
    pub fn ignored_fields(&self) -> &[String] {
        &self.ignored
    }

    /// Applies the change to a stored target, or to a new one's defaults. A masked
    /// key that is not the stored key's mask is refused: it would store the mask.
    pub fn apply(mut self, t: &mut TargetRecord) -> ServiceResult<()> {
        let api_key = match self.api_key.take() {
            None => None,
            Some(KeyChange::New(key)) => Some(key),
            Some(KeyChange::AsShown(shown))
                if !t.api_key.is_empty() && shown == t.api_key.masked() =>
            {
                None
            }
            Some(KeyChange::AsShown(_)) => {
                return Err(bad(
                    "api_key: this is a masked key (it has `…`) and not the stored key's mask; send the whole key",
                ));
            }
        };
        // A URL sent back as it was shown, its credentials masked, keeps them.
        if self
            .base_url
            .as_ref()
            .is_some_and(|u| *u != t.base_url && *u == mask_url_credentials(&t.base_url))
        {
            self.base_url = None;
        }
        // A header sent back as it was shown (masked) keeps its stored value; another
        // masked value would store the mask.
        if let Some(headers) = self.extra_headers.as_mut() {
            for (name, value) in headers.iter_mut() {
                match t.extra_headers.get(name) {
                    Some(stored) if value.expose() == stored.masked() => *value = stored.clone(),
                    _ if value.expose().contains(MASK_MARK) => {
                        return Err(bad(format!(
                            "extra_headers.{name}: this is a masked value (it has `…`) and not the stored value's mask; send the whole value"
                        )));
                    }
                    _ => {}
                }
            }
        }
        match self.proxy.take() {
            None => {}
            Some(ProxyField::Set(choice)) => t.proxy = choice,
            // Sent back as shown: the stored proxy, credentials and all, stays.
            Some(ProxyField::AsShown(shown)) => match &t.proxy {
                ProxyChoice::Via(p) if p.masked() == shown => {}
                _ => {
                    return Err(bad(
                        "proxy_url: its credentials are masked (`***`) and it is not the stored proxy; send the whole URL",
                    ));
                }
            },
        }
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(v) = self.$field { t.$field = v; }
            )*};
        }
        if let Some(key) = api_key {
            t.api_key = key;
        }
        set!(
            name,
            base_url,
            enabled,
            interval_min,
            timeout_s,
            verify_ssl,
            prompt,
            anthropic_version,
            max_models,
            source_url,
            sort_order,
            visitor_channel_actions_enabled,
            selected_models,
            exclude_models,
            probe_mode,
            check_mode,
            max_tokens,
            slow_ms,
            extra_headers,
            user_agent,
            route_overrides,
            client_profile
        );
        Ok(())
    }
}
