//! Targets (channels): create, read, change, delete, reorder, reveal the key; the
//! dashboard counts and the runs and logs reads. What each caller may see is decided
//! here, once: admins get masked keys, visitors no keys and `base_url` only when the
//! `visitor_show_base_url` setting is on.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::models::{CompactHistory, ListedModel, compact_histories, full_history};
use crate::store::history::ModelLatest;
use shared::Secret;
use shared::probe::{CheckMode, ProbeMode, Protocol, RouteRule};

use super::query::{HistoryFormat, ListTargetsQuery, LogsQuery, Parsed, RunsQuery, StatsQuery};
use super::validate::Body;
use super::{Caller, Core, ServiceError, ServiceResult, Settings};
use crate::config::variables::{INTERVAL_MINUTES, MODELS_PER_TARGET_MAX};
use crate::store::runs::LogScope;
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
];

/// A validated change to a target; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct TargetPatch {
    name: Option<String>,
    base_url: Option<String>,
    api_key: Option<Secret>,
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
}

fn bad(msg: impl Into<String>) -> ServiceError {
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

fn api_key(body: &mut Body) -> ServiceResult<Option<Secret>> {
    match body.value("api_key") {
        None => Ok(None),
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
            Ok(Some(Secret::new(s)))
        }
        Some(_) => Err(bad("api_key: must be a string")),
    }
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

impl TargetPatch {
    /// Reads every target field the body carries; unknown fields are refused.
    pub fn from_body(mut body: Body) -> ServiceResult<TargetPatch> {
        let b = &mut body;
        let p = TargetPatch {
            name: b.string("name", 1, 128)?,
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
        };
        body.finish()?;
        Ok(p)
    }

    pub fn apply(mut self, t: &mut TargetRecord) {
        // A header sent back as it was shown (masked) keeps its stored value.
        if let Some(headers) = self.extra_headers.as_mut() {
            for (name, value) in headers.iter_mut() {
                if let Some(stored) = t.extra_headers.get(name)
                    && value.expose() == stored.masked()
                {
                    *value = stored.clone();
                }
            }
        }
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(v) = self.$field { t.$field = v; }
            )*};
        }
        set!(
            name,
            base_url,
            api_key,
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
            route_overrides
        );
    }
}

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

/// The JSON form of a target for this caller.
pub fn target_view(t: &TargetRecord, caller: &Caller, settings: &Settings, running: bool) -> Value {
    let admin = caller.is_admin();
    let mut v = json!({
        "id": t.id,
        "name": t.name,
        "enabled": t.enabled,
        "interval_min": t.interval_min,
        "timeout_s": t.timeout_s,
        "verify_ssl": t.verify_ssl,
        "prompt": t.prompt,
        "anthropic_version": t.anthropic_version,
        "max_models": t.max_models,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "last_run_at": t.last_run_at,
        "last_status": t.last_status,
        "last_total": t.last_total,
        "last_success": t.last_success,
        "last_fail": t.last_fail,
        "last_log_file": t.last_log_file,
        "last_error": t.last_error,
        "sort_order": t.sort_order,
        "visitor_channel_actions_enabled": t.visitor_channel_actions_enabled,
        "selected_models": t.selected_models,
        "exclude_models": t.exclude_models,
        "probe_mode": t.probe_mode,
        "check_mode": t.check_mode,
        "max_tokens": t.max_tokens,
        "slow_ms": t.slow_ms,
        "route_overrides": t.route_overrides,
        "running": running,
        "can_operate": admin || t.visitor_channel_actions_enabled,
        "last_success_rate": match (t.last_total, t.last_success) {
            (Some(total), Some(ok)) if total > 0 => json!(((ok as f64) * 1000.0 / total as f64).round() / 10.0),
            _ => Value::Null,
        },
    });
    let obj = v.as_object_mut().expect("a JSON object");
    if admin || settings.visitor_show_base_url {
        obj.insert("base_url".into(), json!(mask_url_credentials(&t.base_url)));
        obj.insert("source_url".into(), json!(t.source_url));
    }
    if admin {
        obj.insert("api_key".into(), json!(t.api_key.masked()));
        obj.insert("user_agent".into(), json!(t.user_agent));
        let headers: Map<String, Value> = t
            .extra_headers
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.masked())))
            .collect();
        obj.insert("extra_headers".into(), Value::Object(headers));
    }
    v
}

impl Core {
    fn view(&self, t: &TargetRecord, caller: &Caller) -> Value {
        target_view(t, caller, &self.settings(), self.scheduler.is_running(t.id))
    }

    /// A target named by the command line: all digits is an id, `name:…` forces a
    /// name, anything else is a name.
    pub async fn resolve_target(&self, ident: &str) -> ServiceResult<i64> {
        let by_name = |name: &str| name.to_string();
        let name = match ident.strip_prefix("name:") {
            Some(n) => by_name(n),
            None if !ident.is_empty() && ident.bytes().all(|b| b.is_ascii_digit()) => {
                let id: i64 = ident
                    .parse()
                    .map_err(|_| ServiceError::NotFound(format!("no target with id {ident}")))?;
                self.load_target(id).await?;
                return Ok(id);
            }
            None => by_name(ident),
        };
        self.store
            .list_targets()
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .map(|t| t.id)
            .ok_or_else(|| ServiceError::NotFound(format!("no target named `{name}`")))
    }

    async fn load_target(&self, id: i64) -> ServiceResult<TargetRecord> {
        self.store
            .get_target(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no target with id {id}")))
    }

    /// The target list with each target's latest model results and their history:
    /// `history` points per model (default 30, at most 100) in the compact encoding,
    /// or the seed's objects with `history_format=full`. Returned serialised: the list
    /// of 10,000 models is written straight out, without a JSON tree in between.
    pub async fn list_targets(
        &self,
        caller: &Caller,
        query: Parsed<ListTargetsQuery>,
    ) -> ServiceResult<Box<RawValue>> {
        caller.require_reader()?;
        let query = query?;
        let n = query.history;
        let full = query.format == HistoryFormat::Full;
        let (targets, mut latest) =
            tokio::try_join!(self.store.list_targets(), self.store.model_latest(None, n))?;

        #[derive(serde::Serialize)]
        struct Item<'a, H: serde::Serialize> {
            #[serde(flatten)]
            target: Value,
            #[serde(skip_serializing_if = "Option::is_none")]
            history_runs: Option<Vec<(i64, i64)>>,
            latest_models: Vec<ListedModel<'a, H>>,
        }
        #[derive(serde::Serialize)]
        struct List<I> {
            items: Vec<I>,
            permissions: Value,
            history_format: &'static str,
        }
        let models: Vec<(&TargetRecord, Vec<ModelLatest>)> = targets
            .iter()
            .map(|t| (t, latest.remove(&t.id).unwrap_or_default()))
            .collect();
        let permissions = json!({ "role": caller.role.as_str() });
        let text = if full {
            let items: Vec<Item<'_, Vec<Value>>> = models
                .iter()
                .map(|(t, ms)| Item {
                    target: self.view(t, caller),
                    history_runs: None,
                    latest_models: ms
                        .iter()
                        .map(|m| ListedModel::new(m, full_history(&m.history, n)))
                        .collect(),
                })
                .collect();
            serde_json::to_string(&List {
                items,
                permissions,
                history_format: "full",
            })
        } else {
            let items: Vec<Item<'_, CompactHistory>> = models
                .iter()
                .map(|(t, ms)| {
                    let (runs, histories) = compact_histories(ms, n);
                    Item {
                        target: self.view(t, caller),
                        history_runs: Some(runs),
                        latest_models: ms
                            .iter()
                            .zip(histories)
                            .map(|(m, h)| ListedModel::new(m, h))
                            .collect(),
                    }
                })
                .collect();
            serde_json::to_string(&List {
                items,
                permissions,
                history_format: "compact",
            })
        };
        let text = text.map_err(|e| ServiceError::Internal(e.to_string()))?;
        RawValue::from_string(text).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// One target with its latest model results and their history in the seed's
    /// object form.
    pub async fn get_target(&self, caller: &Caller, id: i64) -> ServiceResult<Value> {
        caller.require_reader()?;
        let t = self.load_target(id).await?;
        let models = self
            .store
            .model_latest(Some(id), 30)
            .await?
            .remove(&id)
            .unwrap_or_default();
        let mut v = self.view(&t, caller);
        let latest: Vec<Value> = models
            .iter()
            .map(|m| {
                super::models::latest_view(m, json!(super::models::full_history(&m.history, 30)))
            })
            .collect();
        v["latest_models"] = json!(latest);
        Ok(json!({ "item": v }))
    }

    /// Changes a stored target in one transaction and tells subscribers.
    pub(crate) async fn edit_target<F>(&self, id: i64, edit: F) -> ServiceResult<TargetRecord>
    where
        F: FnOnce(&mut TargetRecord) + Send + 'static,
    {
        let t = self
            .store
            .update_target(id, move |t| {
                edit(t);
                Ok::<(), ServiceError>(())
            })
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound => {
                    ServiceError::NotFound(format!("no target with id {id}"))
                }
                other => other.into(),
            })??;
        self.target_changed(id).await;
        Ok(t)
    }

    /// Tells subscribers a target changed.
    pub async fn target_changed(&self, id: i64) {
        if let Ok(Some(t)) = self.store.get_target(id).await {
            self.bus.publish(crate::events::Event::TargetUpdated {
                target_id: t.id,
                target_name: t.name,
                last_status: t.last_status,
                enabled: t.enabled,
                ts: crate::store::now(),
            });
        }
    }

    pub async fn create_target(&self, caller: &Caller, raw: &[u8]) -> ServiceResult<Value> {
        caller.require_admin()?;
        let body = Body::parse(raw)?;
        for required in ["name", "base_url", "api_key"] {
            if !body.has(required) {
                return Err(bad(format!("{required}: required")));
            }
        }
        let patch = TargetPatch::from_body(body)?;
        let mut t = TargetRecord::new_with_defaults(self.settings().default_interval_min.into());
        patch.apply(&mut t);
        let t = self.store.create_target(t).await?;
        tracing::info!(target_id = t.id, name = %t.name, "target created");
        self.target_changed(t.id).await;
        Ok(json!({ "item": self.view(&t, caller) }))
    }

    pub async fn update_target(
        &self,
        caller: &Caller,
        id: i64,
        raw: &[u8],
    ) -> ServiceResult<Value> {
        caller.require_admin()?;
        self.apply_target_patch(caller, id, Body::parse(raw)?).await
    }

    async fn apply_target_patch(
        &self,
        caller: &Caller,
        id: i64,
        body: Body,
    ) -> ServiceResult<Value> {
        if body.is_empty() {
            return Err(bad("nothing to change: send at least one field"));
        }
        let patch = TargetPatch::from_body(body)?;
        let t = self.edit_target(id, move |t| patch.apply(t)).await?;
        tracing::info!(target_id = id, "target updated");
        Ok(json!({ "item": self.view(&t, caller) }))
    }

    /// The admin panel's advanced form: the same change, limited to its fields.
    pub async fn update_target_advanced(
        &self,
        caller: &Caller,
        id: i64,
        raw: &[u8],
    ) -> ServiceResult<Value> {
        caller.require_admin()?;
        let body = Body::parse(raw)?;
        let value = body.keys();
        if let Some(k) = value
            .iter()
            .find(|k| !ADVANCED_FIELDS.contains(&k.as_str()))
        {
            return Err(bad(format!(
                "{k}: not an advanced field (allowed: {}); use PATCH /api/targets/{id}",
                ADVANCED_FIELDS.join(", ")
            )));
        }
        self.apply_target_patch(caller, id, body).await
    }

    pub async fn delete_target(&self, caller: &Caller, id: i64) -> ServiceResult<Value> {
        caller.require_admin()?;
        if !self.store.delete_target(id).await? {
            return Err(ServiceError::NotFound(format!("no target with id {id}")));
        }
        tracing::info!(target_id = id, "target deleted");
        self.bus.publish(crate::events::Event::TargetDeleted {
            target_id: id,
            ts: crate::store::now(),
        });
        Ok(json!({ "ok": true, "id": id }))
    }

    /// Reorders targets: `{"ids": [3, 1, 2]}` numbers them in that order, or
    /// `{"items": [{"id": 3, "sort_order": 10}, …]}` sets each one.
    pub async fn reorder_targets(&self, caller: &Caller, raw: &[u8]) -> ServiceResult<Value> {
        caller.require_admin()?;
        let mut body = Body::parse(raw)?;
        let mut orders: Vec<(i64, i64)> = Vec::new();
        if let Some(ids) = body.id_list("ids", 10_000)? {
            orders.extend(
                ids.into_iter()
                    .enumerate()
                    .map(|(i, id)| (id, i as i64 + 1)),
            );
        }
        if let Some(items) = body.value("items") {
            let Value::Array(items) = items else {
                return Err(bad(
                    "items: must be a list of {\"id\", \"sort_order\"} objects",
                ));
            };
            if items.len() > 10_000 {
                return Err(bad("items: at most 10000 items"));
            }
            for (i, item) in items.into_iter().enumerate() {
                let mut b = Body::from_value(item)
                    .map_err(|_| bad(format!("items[{i}]: must be an object")))?;
                let id = b
                    .int("id", 1, i64::MAX)?
                    .ok_or_else(|| bad(format!("items[{i}].id: required")))?;
                let order = b
                    .int("sort_order", 1, 1_000_000)?
                    .ok_or_else(|| bad(format!("items[{i}].sort_order: required")))?;
                b.finish().map_err(|e| bad(format!("items[{i}].{e}")))?;
                orders.push((id, order));
            }
        }
        body.finish()?;
        if orders.is_empty() {
            return Err(bad(
                "send `ids` (ordered list) or `items` (id and sort_order each)",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some((id, _)) = orders.iter().find(|(id, _)| !seen.insert(*id)) {
            return Err(bad(format!("target {id} appears twice")));
        }
        let n = orders.len();
        self.store.reorder_targets(orders).await?;
        Ok(json!({ "ok": true, "updated": n }))
    }

    /// The one call that returns a channel key in full.
    pub async fn reveal_key(&self, caller: &Caller, id: i64) -> ServiceResult<Value> {
        caller.require_admin()?;
        let t = self.load_target(id).await?;
        tracing::info!(target_id = id, client = %caller.client, "api key revealed to an admin");
        Ok(json!({ "item": { "id": t.id, "name": t.name, "api_key": t.api_key.expose() } }))
    }

    pub async fn dashboard(&self, caller: &Caller) -> ServiceResult<Value> {
        caller.require_reader()?;
        let targets = self.store.list_targets().await?;
        let status = |s: &[&str]| {
            targets
                .iter()
                .filter(|t| t.last_status.as_deref().is_some_and(|v| s.contains(&v)))
                .count()
        };
        Ok(json!({
            "total_targets": targets.len(),
            "enabled_targets": targets.iter().filter(|t| t.enabled).count(),
            "running_targets": self.running_targets().len(),
            "queued_runs": self.scheduler.queued().len(),
            "scheduler_lag_s": self.scheduler.lag_s(),
            "healthy": status(&["healthy"]),
            "degraded": status(&["degraded"]),
            "down_or_error": status(&["down", "error"]),
            "no_models": status(&["no_models"]),
        }))
    }

    pub fn health(&self) -> Value {
        json!({
            "ok": true,
            "running_targets": self.running_targets(),
            "queued_targets": self.scheduler.queued(),
            "scheduler_lag_s": self.scheduler.lag_s(),
            "version": shared::VERSION,
            "uptime_s": self.started.elapsed().as_secs_f64(),
        })
    }

    pub async fn list_runs(
        &self,
        caller: &Caller,
        id: i64,
        query: Parsed<RunsQuery>,
    ) -> ServiceResult<Value> {
        caller.require_reader()?;
        let RunsQuery { limit } = query?;
        let t = self.load_target(id).await?;
        let runs = self.store.list_runs(id, limit).await?;
        Ok(json!({ "items": runs, "target": self.view(&t, caller) }))
    }

    pub async fn run_logs(
        &self,
        caller: &Caller,
        id: i64,
        query: Parsed<LogsQuery>,
    ) -> ServiceResult<Value> {
        caller.require_reader()?;
        let LogsQuery {
            scope,
            limit,
            offset,
        } = query?;
        let t = self.load_target(id).await?;
        let (run, rows) = self.store.run_logs(id, scope, limit, offset).await?;
        if let (LogScope::Run(Some(r)), None) = (scope, &run) {
            return Err(ServiceError::NotFound(format!(
                "target {id} has no run {r}"
            )));
        }
        Ok(json!({
            "items": rows,
            "count": rows.len(),
            "offset": offset,
            "run": run,
            "target": self.view(&t, caller),
        }))
    }
}

impl Core {
    /// Rollups of a target: per model and hour (`period=hour`, default last 2 days) or
    /// day (`period=day`, default last 30 days), with counts and p50/p95 of total time
    /// and time to first token.
    pub async fn target_stats(
        &self,
        caller: &Caller,
        id: i64,
        query: Parsed<StatsQuery>,
    ) -> ServiceResult<Value> {
        caller.require_reader()?;
        let StatsQuery { period, days } = query?;
        let period = period.as_str();
        self.load_target(id).await?;
        self.upkeep.roll_up_all().await;
        let since = crate::store::now() - days as f64 * 86_400.0;
        let items = self.store.rollups(id, period, since).await?;
        Ok(json!({ "items": items, "period": period, "since": since, "target_id": id }))
    }
}
