//! Reading what the proxy served (admin only): `GET /api/proxy/usage` and
//! `keys.usage`, filtered by key, channel, model and time, grouped as asked. Short
//! recent ranges read the raw rows; longer ones the hourly or daily rollups plus the
//! rows not folded into them yet.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::query::QueryString;
use super::{Caller, Core, ServiceError, ServiceResult};
use crate::store::proxy_usage::{UsageFilter, UsageGroup, UsageGrouping, UsageSource, UsageSums};

/// Ranges up to this long (and within raw retention) are read from raw rows.
const RAW_RANGE_MAX_S: f64 = 2.0 * 86_400.0;
/// The range when `since` is not given.
const DEFAULT_RANGE_S: f64 = 86_400.0;

/// `GET /api/proxy/usage?key_id=&target_id=&model=&since=&until=&group_by=`.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageQuery {
    /// `Some(None)` asks for the master token's use (`key_id=master`).
    pub key_id: Option<Option<i64>>,
    pub target_id: Option<i64>,
    pub model: Option<String>,
    pub since: Option<f64>,
    pub until: Option<f64>,
    /// Comma-separated: any of `key`, `target`, `model`, and one of `hour`, `day`.
    pub group_by: Option<String>,
}

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest(msg.into())
}

fn time_field(name: &str, v: Option<&String>) -> ServiceResult<Option<f64>> {
    match v.map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(Some)
            .ok_or_else(|| bad(format!("{name}: must be a time in Unix seconds"))),
    }
}

fn id_field(name: &str, v: Option<&String>) -> ServiceResult<Option<i64>> {
    match v.map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| bad(format!("{name}: must be a positive integer id"))),
    }
}

impl UsageQuery {
    pub fn from_query(q: &QueryString) -> ServiceResult<UsageQuery> {
        let key_id = match q.get("key_id").map(|s| s.trim()) {
            None | Some("") => None,
            Some("master") => Some(None),
            Some(_) => Some(Some(
                id_field("key_id", q.get("key_id"))?.expect("not empty"),
            )),
        };
        if let Some(k) = q.keys().find(|k| {
            !["key_id", "target_id", "model", "since", "until", "group_by"].contains(&k.as_str())
        }) {
            return Err(bad(format!("{k}: unknown query parameter")));
        }
        Ok(UsageQuery {
            key_id,
            target_id: id_field("target_id", q.get("target_id"))?,
            model: q.get("model").filter(|m| !m.is_empty()).cloned(),
            since: time_field("since", q.get("since"))?,
            until: time_field("until", q.get("until"))?,
            group_by: q.get("group_by").filter(|g| !g.is_empty()).cloned(),
        })
    }
}

fn grouping(spec: Option<&str>) -> ServiceResult<(UsageGrouping, Vec<&'static str>)> {
    let mut g = UsageGrouping::default();
    let mut names: Vec<&'static str> = Vec::new();
    for part in spec.unwrap_or("").split(',').map(str::trim) {
        let name = match part {
            "" => continue,
            "key" => {
                g.key = true;
                "key"
            }
            "target" => {
                g.target = true;
                "target"
            }
            "model" => {
                g.model = true;
                "model"
            }
            "hour" | "day" => {
                let size = if part == "hour" { 3600 } else { 86_400 };
                if g.bucket_s.is_some_and(|s| s != size) {
                    return Err(bad("group_by: at most one of `hour` and `day`"));
                }
                g.bucket_s = Some(size);
                if size == 3600 { "hour" } else { "day" }
            }
            other => {
                return Err(bad(format!(
                    "group_by: `{other}` is not one of key, target, model, hour, day"
                )));
            }
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok((g, names))
}

fn sums_json(s: &UsageSums) -> Value {
    json!({
        "requests": s.requests,
        "errors": s.errors,
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
        "tokens": s.input_tokens + s.output_tokens,
        "estimated_requests": s.estimated_requests,
        "avg_total_ms": (s.requests > 0).then(|| s.total_ms_sum / s.requests as f64),
    })
}

impl Core {
    /// Usage totals and, when grouped, one item per group (in order of time, key,
    /// target, model). Key id 0 of the store is the master token: shown as
    /// `key_id: null, key_name: "master"`.
    pub async fn proxy_usage(&self, caller: &Caller, q: UsageQuery) -> ServiceResult<Value> {
        caller.require_admin()?;
        let now = crate::store::now();
        let until = q.until.unwrap_or(now + 1.0);
        let since = q.since.unwrap_or(until - DEFAULT_RANGE_S);
        if since >= until {
            return Err(bad("since: must be before until"));
        }
        let (grouping, names) = grouping(q.group_by.as_deref())?;
        let r = self.config.retention;
        let raw_from = now - f64::from(r.raw_days) * 86_400.0;
        let hourly_from = now - f64::from(r.hourly_days) * 86_400.0;
        let source = if since >= raw_from && until - since <= RAW_RANGE_MAX_S {
            UsageSource::Raw
        } else if grouping.bucket_s == Some(3600) || since >= hourly_from {
            UsageSource::Hour
        } else {
            UsageSource::Day
        };
        let filter = UsageFilter {
            key_id: q.key_id,
            target_id: q.target_id,
            model: q.model.clone(),
            since,
            until,
        };
        let groups = self.store.usage(filter, grouping, source).await?;
        let names_of_keys: HashMap<i64, String> = if grouping.key {
            self.store
                .list_proxy_keys()
                .await?
                .into_iter()
                .map(|k| (k.id, k.name))
                .collect()
        } else {
            HashMap::new()
        };
        let mut totals = UsageSums::default();
        let mut items = Vec::new();
        for (g, s) in &groups {
            totals.requests += s.requests;
            totals.errors += s.errors;
            totals.input_tokens += s.input_tokens;
            totals.output_tokens += s.output_tokens;
            totals.estimated_requests += s.estimated_requests;
            totals.total_ms_sum += s.total_ms_sum;
            if !names.is_empty() {
                items.push(self.usage_item(g, s, &names_of_keys));
            }
        }
        Ok(json!({
            "items": items,
            "totals": sums_json(&totals),
            "since": since,
            "until": until,
            "source": source.as_str(),
            "group_by": names,
        }))
    }

    fn usage_item(&self, g: &UsageGroup, s: &UsageSums, key_names: &HashMap<i64, String>) -> Value {
        let mut item = sums_json(s);
        let obj = item.as_object_mut().expect("an object");
        if let Some(b) = g.bucket_start {
            obj.insert("bucket_start".into(), json!(b as f64));
        }
        if let Some(k) = g.key_id {
            let (id, name) = match k {
                0 => (Value::Null, Some("master".to_string())),
                k => (json!(k), key_names.get(&k).cloned()),
            };
            obj.insert("key_id".into(), id);
            obj.insert("key_name".into(), json!(name));
        }
        if let Some(t) = g.target_id {
            obj.insert(
                "target_id".into(),
                if t == 0 { Value::Null } else { json!(t) },
            );
        }
        if let Some(m) = &g.model {
            obj.insert("model".into(), json!(m));
        }
        item
    }
}
