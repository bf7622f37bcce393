//! Export and import of targets (for `apimonctl export|import`): every editable field,
//! the key only when asked for, in chunks so each fits a control-socket line.

use serde_json::{Value, json};
use shared::rpc::reply::{ExportChunk, ImportReply, SkippedTarget};

use super::{Caller, Core, ServiceError, ServiceResult};
use crate::store::targets::TargetRecord;

/// The editable fields of a target, as `POST /api/targets` takes them.
fn exported(t: &TargetRecord, with_secrets: bool) -> Value {
    let mut v = json!({
        "name": t.name,
        "base_url": t.base_url,
        "enabled": t.enabled,
        "interval_min": t.interval_min,
        "timeout_s": t.timeout_s,
        "verify_ssl": t.verify_ssl,
        "prompt": t.prompt,
        "anthropic_version": t.anthropic_version,
        "max_models": t.max_models,
        "source_url": t.source_url,
        "sort_order": t.sort_order,
        "visitor_channel_actions_enabled": t.visitor_channel_actions_enabled,
        "selected_models": t.selected_models,
        "exclude_models": t.exclude_models,
        "probe_mode": t.probe_mode,
        "check_mode": t.check_mode,
        "max_tokens": t.max_tokens,
        "slow_ms": t.slow_ms,
        "user_agent": t.user_agent,
        "route_overrides": t.route_overrides,
        "client_profile": t.client_profile,
    });
    // Credentials in the URL and header values are secrets too.
    let headers: serde_json::Map<String, Value> = t
        .extra_headers
        .iter()
        .map(|(k, val)| {
            let shown = if with_secrets {
                val.expose().to_string()
            } else {
                val.masked()
            };
            (k.clone(), json!(shown))
        })
        .collect();
    v["extra_headers"] = Value::Object(headers);
    v["proxy_url"] = match &t.proxy {
        shared::probe::ProxyChoice::Default => Value::Null,
        shared::probe::ProxyChoice::Direct => json!(shared::probe::DIRECT),
        // Masked, it imports as "keep": the target gets the default proxy.
        shared::probe::ProxyChoice::Via(p) if !with_secrets => json!(p.masked()),
        shared::probe::ProxyChoice::Via(p) => json!(p.expose()),
    };
    if with_secrets {
        v["api_key"] = json!(t.api_key.expose());
    } else {
        v["base_url"] = json!(super::targets::mask_url_credentials(&t.base_url));
    }
    v
}

impl Core {
    /// One chunk of the export: `limit` targets from `offset`, and where the next
    /// chunk starts (null at the end).
    pub async fn export_targets(
        &self,
        caller: &Caller,
        with_secrets: bool,
        offset: usize,
        limit: usize,
    ) -> ServiceResult<ExportChunk> {
        caller.require_admin()?;
        let all = self.store.list_targets().await?;
        // At most `limit` targets and about CHUNK_BYTES of them (at least one), so
        // the reply line stays within the control socket's limits.
        let mut items: Vec<Value> = Vec::new();
        let mut bytes = 0usize;
        for t in all.iter().skip(offset).take(limit) {
            let v = exported(t, with_secrets);
            let size = v.to_string().len();
            if !items.is_empty() && bytes + size > shared::rpc::CHUNK_BYTES {
                break;
            }
            bytes += size;
            items.push(v);
        }
        let next = (offset + items.len() < all.len()).then_some(offset + items.len());
        if with_secrets && !items.is_empty() {
            tracing::info!(targets = items.len(), "targets exported with their keys");
        }
        Ok(ExportChunk {
            next_offset: next.map(|n| n as u64),
            total: all.len() as u64,
            items,
        })
    }

    /// Creates each target; one that cannot be created (a name taken, a field out of
    /// bounds, no key) is reported and the rest go on.
    pub async fn import_targets(
        &self,
        caller: &Caller,
        items: &[Value],
    ) -> ServiceResult<ImportReply> {
        caller.require_admin()?;
        let mut created = Vec::new();
        let mut skipped = Vec::new();
        for item in items {
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            if item.get("api_key").is_none() {
                skipped.push(SkippedTarget {
                    name,
                    reason: "no api_key: export with --with-secrets to move keys".into(),
                });
                continue;
            }
            let raw = serde_json::to_vec(item).expect("JSON values serialise");
            match self.create_target(caller, &raw).await {
                Ok(v) => created.push(v["item"]["id"].as_i64().unwrap_or_default()),
                Err(e @ (ServiceError::BadRequest(_) | ServiceError::Conflict(_))) => {
                    skipped.push(SkippedTarget {
                        name,
                        reason: e.to_string(),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(ImportReply {
            created: created.len() as u64,
            ids: created,
            skipped,
        })
    }
}
