//! Targets (channels): create, read, change, delete, reorder, reveal the key. What
//! each caller may see is decided here, once ([`target_view`]): admins get masked keys,
//! visitors no keys and `base_url` only when the `visitor_show_base_url` setting is on.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use shared::probe::{DIRECT, ProxyChoice};

use super::models::{
    CompactHistory, FullPoint, ListedModel, compact_histories, full_history, latest_view,
};
use crate::store::history::ModelLatest;

use super::query::{HistoryFormat, ListTargetsQuery, Parsed};
use super::relay_hiding::{hide_in_value, relay_marks};
pub use super::target_fields::mask_url_credentials;
use super::target_fields::{ADVANCED_FIELDS, TargetPatch, bad};
use super::validate::Body;
use super::{Caller, Core, ServiceError, ServiceResult, Settings};
use crate::store::targets::TargetRecord;

/// History points of each model in a single target's `latest_models`, as the Go
/// program shows them.
const ITEM_HISTORY: usize = 30;

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
        "client_profile": t.client_profile,
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
        let proxy = match &t.proxy {
            ProxyChoice::Default => Value::Null,
            ProxyChoice::Direct => json!(DIRECT),
            ProxyChoice::Via(p) => json!(p.masked()),
        };
        obj.insert("proxy_url".into(), proxy);
    }
    v
}

impl Core {
    pub(super) fn view(&self, t: &TargetRecord, caller: &Caller) -> Value {
        target_view(t, caller, &self.settings(), self.scheduler.is_running(t.id))
    }

    /// A target as one item: its view with `latest_models`, each model's latest
    /// result and its last 30 points of history in the seed's form. Every answer that
    /// carries one target (get, create, update, runs, logs) carries this.
    pub(super) async fn target_item(
        &self,
        t: &TargetRecord,
        caller: &Caller,
    ) -> ServiceResult<Value> {
        let models = self
            .store
            .model_latest(Some(t.id), ITEM_HISTORY)
            .await?
            .remove(&t.id)
            .unwrap_or_default();
        let mut v = self.view(t, caller);
        let latest: Vec<Value> = models
            .iter()
            .map(|m| latest_view(m, json!(full_history(&m.history, ITEM_HISTORY))))
            .collect();
        v["latest_models"] = json!(latest);
        if self.hides_relays_from(caller) {
            hide_in_value(&mut v, &relay_marks(&t.base_url));
        }
        Ok(v)
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

    pub(super) async fn load_target(&self, id: i64) -> ServiceResult<TargetRecord> {
        self.store
            .get_target(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no target with id {id}")))
    }

    /// The target list with each target's latest model results and their history:
    /// `history` points per model (default 30) as the seed's objects, or in the
    /// compact encoding with `history_format=compact`. Returned serialised: the list
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
            let items: Vec<Item<'_, Vec<FullPoint>>> = models
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
        let mut text = text.map_err(|e| ServiceError::Internal(e.to_string()))?;
        if self.hides_relays_from(caller) {
            // Visitors only, so the admins' large lists keep the direct path.
            let mut v: Value =
                serde_json::from_str(&text).map_err(|e| ServiceError::Internal(e.to_string()))?;
            if let Some(items) = v["items"].as_array_mut() {
                for (item, (t, _)) in items.iter_mut().zip(&models) {
                    hide_in_value(item, &relay_marks(&t.base_url));
                }
            }
            text = v.to_string();
        }
        RawValue::from_string(text).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// One target with its latest model results and their history in the seed's
    /// object form.
    pub async fn get_target(&self, caller: &Caller, id: i64) -> ServiceResult<Value> {
        caller.require_reader()?;
        let t = self.load_target(id).await?;
        Ok(json!({ "item": self.target_item(&t, caller).await? }))
    }

    /// Changes a stored target in one transaction and tells subscribers.
    pub(crate) async fn edit_target<F>(&self, id: i64, edit: F) -> ServiceResult<TargetRecord>
    where
        F: FnOnce(&mut TargetRecord) -> ServiceResult<()> + Send + 'static,
    {
        let t = self
            .store
            .update_target(id, edit)
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
        let ignored = patch.ignored_fields().to_vec();
        let mut t = TargetRecord::new_with_defaults(self.settings().default_interval_min.into());
        patch.apply(&mut t)?;
        let t = self.store.create_target(t).await?;
        tracing::info!(target_id = t.id, name = %t.name, "target created");
        self.target_changed(t.id).await;
        Ok(json!({
            "ok": true,
            "item": self.target_item(&t, caller).await?,
            "ignored_fields": ignored,
        }))
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
        let ignored = patch.ignored_fields().to_vec();
        let t = self.edit_target(id, move |t| patch.apply(t)).await?;
        tracing::info!(target_id = id, "target updated");
        Ok(json!({
            "ok": true,
            "item": self.target_item(&t, caller).await?,
            "ignored_fields": ignored,
        }))
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
}
