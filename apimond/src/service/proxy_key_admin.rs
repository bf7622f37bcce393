//! Managing proxy keys (admin only): create (the secret shown once), list, show, edit
//! and revoke, with the seed's bounds. Every write refreshes the proxy's in-memory
//! index before it answers, so the key works (or stops working) at once.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::validate::Body;
use super::{Caller, Core, ServiceError, ServiceResult};
use crate::store::proxy_keys::{KeyWriteRefusal, ProxyKeyFields, ProxyKeyRecord};

/// Random characters after `sk-`: 48 of 62 give about 285 bits.
const KEY_RANDOM_CHARS: usize = 48;
/// Characters of a key kept to recognise it by (the Go program's 12).
pub const KEY_PREFIX_CHARS: usize = 12;
pub const NAME_MAX: usize = 128;
pub const DESCRIPTION_MAX: usize = 512;
/// Most allowed targets or models per key.
pub const ALLOWED_MAX: usize = 1000;
/// `channel/model`: a channel name (≤ 128) and a model name (≤ 256).
const MODEL_NAME_MAX: usize = NAME_MAX + 1 + 256;
pub const RPM_MAX: i64 = 1_000_000;
pub const BUDGET_MAX: i64 = 1_000_000_000_000;
/// Latest accepted `expires_at`: the year 9999.
const EXPIRES_MAX: f64 = 253_402_300_799.0;

/// A new key's secret: `sk-` and random letters and digits from the OS RNG.
pub fn generate_key() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(3 + KEY_RANDOM_CHARS);
    out.push_str("sk-");
    let mut buf = [0u8; 64];
    while out.len() < 3 + KEY_RANDOM_CHARS {
        getrandom::fill(&mut buf).expect("the operating system's random source failed");
        // 248 = 4 × 62: rejecting the bytes above keeps every character equally likely.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == 3 + KEY_RANDOM_CHARS {
                break;
            }
            out.push(ALPHABET[(*b % 62) as usize] as char);
        }
    }
    out
}

/// The stored form of a key: its SHA-256 hex digest.
pub fn key_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest(msg.into())
}

/// The fields a create or PATCH body may carry, each checked; `None` = not sent.
#[derive(Default)]
struct FieldsSent {
    name: Option<String>,
    description: Option<String>,
    enabled: Option<bool>,
    allowed_target_ids: Option<Vec<i64>>,
    allowed_models: Option<Vec<String>>,
    expires_at: Option<Option<f64>>,
    rpm_limit: Option<Option<u32>>,
    daily_token_budget: Option<Option<u64>>,
}

fn read_fields(raw: &[u8]) -> ServiceResult<FieldsSent> {
    let mut body = Body::parse(raw)?;
    let mut f = FieldsSent {
        name: body.string("name", 1, NAME_MAX)?,
        ..FieldsSent::default()
    };
    f.description = body
        .nullable_string("description", DESCRIPTION_MAX)?
        .map(Option::unwrap_or_default);
    f.enabled = body.bool("enabled")?;
    f.allowed_target_ids = body.id_list("allowed_target_ids", ALLOWED_MAX)?;
    if let Some(models) = body.string_list("allowed_models", ALLOWED_MAX, 3, MODEL_NAME_MAX)? {
        for (i, m) in models.iter().enumerate() {
            match m.split_once('/') {
                Some((channel, model)) if !channel.is_empty() && !model.is_empty() => {}
                _ => {
                    return Err(bad(format!(
                        "allowed_models[{i}]: `{m}` is not a `channel/model` name"
                    )));
                }
            }
        }
        f.allowed_models = Some(models);
    }
    f.expires_at = match body.value("expires_at") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => {
            let t = v
                .as_f64()
                .filter(|t| t.is_finite() && *t > 0.0 && *t <= EXPIRES_MAX);
            match t {
                Some(t) if t > crate::store::now() => Some(Some(t)),
                Some(_) => return Err(bad("expires_at: must be in the future")),
                None => {
                    return Err(bad(
                        "expires_at: must be a time in Unix seconds (a number) or null",
                    ));
                }
            }
        }
    };
    f.rpm_limit = body
        .nullable_int("rpm_limit", 1, RPM_MAX)?
        .map(|o| o.map(|n| n as u32));
    f.daily_token_budget = body
        .nullable_int("daily_token_budget", 1, BUDGET_MAX)?
        .map(|o| o.map(|n| n as u64));
    body.finish()?;
    Ok(f)
}

impl FieldsSent {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.enabled.is_none()
            && self.allowed_target_ids.is_none()
            && self.allowed_models.is_none()
            && self.expires_at.is_none()
            && self.rpm_limit.is_none()
            && self.daily_token_budget.is_none()
    }

    fn apply(self, to: &mut ProxyKeyFields) {
        if let Some(v) = self.name {
            to.name = v;
        }
        if let Some(v) = self.description {
            to.description = v;
        }
        if let Some(v) = self.enabled {
            to.enabled = v;
        }
        if let Some(v) = self.allowed_target_ids {
            to.allowed_target_ids = v;
        }
        if let Some(v) = self.allowed_models {
            to.allowed_models = v;
        }
        if let Some(v) = self.expires_at {
            to.expires_at = v;
        }
        if let Some(v) = self.rpm_limit {
            to.rpm_limit = v;
        }
        if let Some(v) = self.daily_token_budget {
            to.daily_token_budget = v;
        }
    }
}

fn refused(r: KeyWriteRefusal) -> ServiceError {
    match r {
        KeyWriteRefusal::UnknownTarget(id) => {
            bad(format!("allowed_target_ids: no target with id {id}"))
        }
        KeyWriteRefusal::Revoked => {
            ServiceError::Conflict("this proxy key was revoked; revocation is final".into())
        }
    }
}

fn not_found(id: i64) -> ServiceError {
    ServiceError::NotFound(format!("no proxy key with id {id}"))
}

impl Core {
    /// A key as the API shows it: the seed's fields, the limits, a `status` and today's
    /// use as counted in memory. Never the secret or its digest.
    pub fn proxy_key_view(&self, k: &ProxyKeyRecord) -> Value {
        let now = crate::store::now();
        let status = if k.revoked_at.is_some() {
            "revoked"
        } else if !k.enabled {
            "disabled"
        } else if k.expires_at.is_some_and(|t| t <= now) {
            "expired"
        } else {
            "active"
        };
        let (last_used_at, last_used_target_id) = match self.proxy_keys.last_used(k.id) {
            Some((t, target)) if k.last_used_at.is_none_or(|s| s <= t) => (Some(t), target),
            _ => (k.last_used_at, k.last_used_target_id),
        };
        let today = self.proxy_keys.usage_today(k.id);
        let (day_start, _) = self.proxy_keys.budget_day().bounds(now);
        json!({
            "id": k.id,
            "name": k.name,
            "key_prefix": k.key_prefix,
            "allowed_target_ids": k.allowed_target_ids,
            "allowed_models": k.allowed_models,
            "description": k.description,
            "enabled": k.enabled,
            "created_at": k.created_at,
            "updated_at": k.updated_at,
            "revoked_at": k.revoked_at,
            "last_used_at": last_used_at,
            "last_used_target_id": last_used_target_id,
            "expires_at": k.expires_at,
            "rpm_limit": k.rpm_limit,
            "daily_token_budget": k.daily_token_budget,
            "status": status,
            "usage_today": {
                "requests": today.requests,
                "tokens": today.tokens,
                "day_start": day_start,
                "time_zone": self.proxy_keys.budget_day().zone_name(),
            },
        })
    }

    /// The id of the key the user named: all digits is an id, `name:x` or other text a
    /// name. A name several keys share is refused (unless only one is not revoked).
    pub async fn resolve_proxy_key(&self, ident: &str) -> ServiceResult<i64> {
        let name = match ident.strip_prefix("name:") {
            Some(n) => n,
            None if !ident.is_empty() && ident.bytes().all(|b| b.is_ascii_digit()) => {
                let id: i64 = ident.parse().map_err(|_| not_found(-1))?;
                return match self.store.get_proxy_key(id).await? {
                    Some(_) => Ok(id),
                    None => Err(not_found(id)),
                };
            }
            None => ident,
        };
        let keys = self.store.list_proxy_keys().await?;
        let named: Vec<&ProxyKeyRecord> = keys.iter().filter(|k| k.name == name).collect();
        let live: Vec<&&ProxyKeyRecord> = named.iter().filter(|k| k.revoked_at.is_none()).collect();
        match (named.as_slice(), live.as_slice()) {
            ([], _) => Err(ServiceError::NotFound(format!(
                "no proxy key named `{name}`"
            ))),
            ([one], _) => Ok(one.id),
            (_, [one]) => Ok(one.id),
            _ => Err(ServiceError::Conflict(format!(
                "several proxy keys are named `{name}`; name one by its id"
            ))),
        }
    }

    async fn refresh_keys(&self) -> ServiceResult<()> {
        self.proxy_keys.reload(&self.store, false).await?;
        Ok(())
    }

    /// `GET /api/proxy/keys`, `keys.list`: every key, revoked ones too, oldest first.
    pub async fn list_proxy_keys(&self, caller: &Caller) -> ServiceResult<Value> {
        caller.require_admin()?;
        let keys = self.store.list_proxy_keys().await?;
        let items: Vec<Value> = keys.iter().map(|k| self.proxy_key_view(k)).collect();
        Ok(json!({ "items": items }))
    }

    /// `keys.show`: one key.
    pub async fn get_proxy_key(&self, caller: &Caller, id: i64) -> ServiceResult<Value> {
        caller.require_admin()?;
        let k = self
            .store
            .get_proxy_key(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(json!({ "item": self.proxy_key_view(&k) }))
    }

    /// `POST /api/proxy/keys`, `keys.create`: answers `{"item", "proxy_key"}`, the one
    /// time the secret is shown.
    pub async fn create_proxy_key(&self, caller: &Caller, raw: &[u8]) -> ServiceResult<Value> {
        caller.require_admin()?;
        let sent = read_fields(raw)?;
        let Some(name) = sent.name.clone() else {
            return Err(bad("name: required, 1 to 128 characters"));
        };
        let mut fields = ProxyKeyFields {
            name,
            description: String::new(),
            enabled: true,
            allowed_target_ids: Vec::new(),
            allowed_models: Vec::new(),
            expires_at: None,
            rpm_limit: None,
            daily_token_budget: None,
        };
        sent.apply(&mut fields);
        let secret = generate_key();
        let prefix: String = secret.chars().take(KEY_PREFIX_CHARS).collect();
        let record = self
            .store
            .create_proxy_key(key_digest(&secret), prefix, fields)
            .await?
            .map_err(refused)?;
        self.refresh_keys().await?;
        tracing::info!(key_id = record.id, name = %record.name, "proxy key created");
        Ok(json!({
            "ok": true,
            "item": self.proxy_key_view(&record),
            "proxy_key": secret,
        }))
    }

    /// `PATCH /api/proxy/keys/{id}`, `keys.edit`: answers `{"ok", "item"}`.
    pub async fn update_proxy_key(
        &self,
        caller: &Caller,
        id: i64,
        raw: &[u8],
    ) -> ServiceResult<Value> {
        caller.require_admin()?;
        let sent = read_fields(raw)?;
        if sent.is_empty() {
            return Err(bad(
                "nothing to change: send name, description, enabled, allowed_target_ids, \
                 allowed_models, expires_at, rpm_limit or daily_token_budget",
            ));
        }
        let record = self
            .store
            .update_proxy_key(id, move |f| sent.apply(f))
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound => not_found(id),
                e => e.into(),
            })?
            .map_err(refused)?;
        self.refresh_keys().await?;
        tracing::info!(key_id = id, "proxy key changed");
        Ok(json!({ "ok": true, "item": self.proxy_key_view(&record) }))
    }

    /// `DELETE /api/proxy/keys/{id}`, `keys.revoke`: the key stops working at once;
    /// its row and usage stay. Answers `{"ok": true}`.
    pub async fn revoke_proxy_key(&self, caller: &Caller, id: i64) -> ServiceResult<Value> {
        caller.require_admin()?;
        let record = self.store.revoke_proxy_key(id).await.map_err(|e| match e {
            crate::store::StoreError::NotFound => not_found(id),
            e => e.into(),
        })?;
        self.refresh_keys().await?;
        tracing::info!(key_id = id, "proxy key revoked");
        Ok(json!({ "ok": true, "item": self.proxy_key_view(&record) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sk_and_48_letters_or_digits_and_differ() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), 51);
        assert!(a.starts_with("sk-"));
        assert!(a[3..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(key_digest("abc").len(), 64);
    }

    #[test]
    fn bad_fields_are_named() {
        let e = |body: &str| match read_fields(body.as_bytes()) {
            Err(ServiceError::BadRequest(m)) => m,
            _ => panic!("{body} accepted"),
        };
        assert!(e(r#"{"name": ""}"#).starts_with("name:"));
        assert!(e(r#"{"allowed_models": ["gpt-4o"]}"#).starts_with("allowed_models[0]:"));
        assert!(e(r#"{"rpm_limit": 0}"#).starts_with("rpm_limit:"));
        assert!(e(r#"{"expires_at": 5}"#).starts_with("expires_at:"));
        assert!(e(r#"{"description": 5}"#).starts_with("description:"));
        assert!(e(r#"{"nope": 1}"#).starts_with("nope:"));
        assert!(e(r#"{"allowed_target_ids": ["x"]}"#).starts_with("allowed_target_ids[0]:"));
    }
}
