//! A target's models: what discovery found, what is selected, excluded and probed,
//! with each model's latest result; and changing the selection.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use shared::probe::{self, ModelStatus, route};

use super::validate::Body;
use super::{Caller, Core, ServiceError, ServiceResult};
use crate::store::history::{HistoryPoint, ModelLatest};

/// A model's history in the list's compact encoding: two characters a point, so 10,000
/// models with 30 points stay well under 3 MB.
#[derive(Serialize)]
pub struct CompactHistory {
    /// One character per run: `1` ok, `2` slow, `0` fail, `-` not probed.
    s: String,
    /// Total time per run as one character of `A–Z a–z 0–9 - _` (index i stands for
    /// about 1.25^(i − 0.5) ms, within 12 %); `.` where not probed. Exact values are in
    /// the full history.
    l: String,
    /// Error class of failures, by position.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    e: BTreeMap<usize, &'static str>,
}

/// The compact history of a target's models, aligned on its last runs: per target
/// `history_runs` (`[run_id, unix seconds]`, oldest first), per model a
/// [`CompactHistory`] with one position per run.
pub fn compact_histories(
    models: &[ModelLatest],
    n: usize,
) -> (Vec<(i64, i64)>, Vec<CompactHistory>) {
    let mut runs: Vec<(i64, i64)> = models
        .iter()
        .flat_map(|m| m.history.iter().map(|p| (p.run_id, p.ts)))
        .collect();
    runs.sort_unstable();
    runs.dedup_by_key(|r| r.0);
    if runs.len() > n {
        runs.drain(..runs.len() - n);
    }
    let histories = models
        .iter()
        .map(|m| {
            let mut h = CompactHistory {
                s: String::with_capacity(runs.len()),
                l: String::with_capacity(runs.len()),
                e: BTreeMap::new(),
            };
            // Both lists are in run order: walk them together.
            let mut points = m.history.iter().peekable();
            for (i, (run_id, _)) in runs.iter().enumerate() {
                while points.peek().is_some_and(|p| p.run_id < *run_id) {
                    points.next();
                }
                match points.peek().filter(|p| p.run_id == *run_id) {
                    Some(p) => {
                        h.s.push(match p.status {
                            ModelStatus::Fail => '0',
                            ModelStatus::Slow => '2',
                            ModelStatus::Ok => '1',
                        });
                        h.l.push(
                            crate::sketch::BUCKET_CHARS
                                [crate::sketch::bucket_of(p.total_ms as f64) as usize]
                                as char,
                        );
                        if let Some(class) = p.error_class {
                            h.e.insert(i, class.as_str());
                        }
                    }
                    None => {
                        h.s.push('-');
                        h.l.push('.');
                    }
                }
            }
            h
        })
        .collect();
    (runs, histories)
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// A model in the target list: the seed's `latest_models` fields (always there) and
/// apimon's (nulls and defaults left out to keep 10,000 models small).
#[derive(Serialize)]
pub struct ListedModel<'a, H: Serialize> {
    protocol: &'a str,
    model: &'a str,
    success: bool,
    status: &'static str,
    duration: f64,
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_class: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttft_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens_per_s: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    model_mismatch: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    returned_model: Option<&'a str>,
    history: H,
}

impl<'a, H: Serialize> ListedModel<'a, H> {
    pub fn new(m: &'a ModelLatest, history: H) -> Self {
        let r = &m.result;
        ListedModel {
            protocol: &m.protocol,
            model: &m.model,
            success: r.success,
            status: r.status.as_str(),
            duration: round(r.total_ms / 1000.0, 3),
            error: r.error.as_deref(),
            error_class: r.error_class.as_deref(),
            status_code: r.status_code,
            ttft_ms: r.ttft_ms.map(|t| round(t, 1)),
            tokens_per_s: r.tokens_per_s,
            model_mismatch: r.model_mismatch,
            returned_model: r.returned_model.as_deref().filter(|_| r.model_mismatch),
            history,
        }
    }
}

/// One point of a model's history in the seed's form (`success, duration, timestamp,
/// error, status_code`) plus apimon's `run_id` and `status`. A typed struct rather
/// than a JSON tree: the default target list writes 300,000 of them.
#[derive(Serialize)]
pub struct FullPoint {
    run_id: i64,
    success: bool,
    status: &'static str,
    duration: f64,
    timestamp: i64,
    /// The error class of a failure.
    error: Option<&'static str>,
    status_code: Option<u16>,
}

/// The seed's history objects, oldest first.
pub fn full_history(points: &[HistoryPoint], n: usize) -> Vec<FullPoint> {
    let start = points.len().saturating_sub(n);
    points[start..]
        .iter()
        .map(|p| FullPoint {
            run_id: p.run_id,
            success: p.status != ModelStatus::Fail,
            status: p.status.as_str(),
            duration: p.total_ms as f64 / 1000.0,
            timestamp: p.ts,
            error: p.error_class.map(|c| c.as_str()),
            status_code: p.status_code,
        })
        .collect()
}

/// One model's latest result in the seed's `latest_models` shape plus apimon's fields.
pub fn latest_view(m: &ModelLatest, history: Value) -> Value {
    let r = &m.result;
    json!({
        "protocol": m.protocol,
        "model": m.model,
        "success": r.success,
        "status": r.status,
        "duration": r.total_ms / 1000.0,
        "error": r.error,
        "error_class": r.error_class,
        "status_code": r.status_code,
        "ttft_ms": r.ttft_ms,
        "total_ms": r.total_ms,
        "tokens_per_s": r.tokens_per_s,
        "route": r.route,
        "endpoint": r.endpoint,
        "route_rule": r.route_rule,
        "path": r.path,
        "stream": r.stream,
        "returned_model": r.returned_model,
        "model_mismatch": r.model_mismatch,
        "timestamp": r.timestamp,
        "run_id": m.run_id,
        "history": history,
    })
}

impl Core {
    /// A target's models: the Go program's `target_name` and `available_models`
    /// (`model, protocol, success` of each discovered model; `success` is false for a
    /// model not probed yet) and `selected_models`, plus apimon's view of each model:
    /// selected, excluded, probed, its route and its latest result.
    pub async fn target_models(&self, caller: &Caller, id: i64) -> ServiceResult<Value> {
        caller.require_reader()?;
        let t = self
            .store
            .get_target(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no target with id {id}")))?;
        let discovered = self.store.discovered_models(id).await?;
        let probed = probe::select_models(
            &discovered,
            &t.selected_models,
            &t.exclude_models,
            t.max_models.max(0) as usize,
        );
        let latest = self
            .store
            .model_latest(Some(id), 30)
            .await?
            .remove(&id)
            .unwrap_or_default();
        let rules = self.prober.rules();
        let mut available = Vec::with_capacity(discovered.len());
        let mut models = Vec::with_capacity(discovered.len());
        for m in &discovered {
            let r = route::route_for(m, &t.route_overrides, rules);
            let names = r.protocol.seed_names();
            let last = latest.iter().find(|l| &l.model == m);
            available.push(json!({
                "model": m,
                "protocol": names.protocol,
                "success": last.is_some_and(|l| l.result.success),
            }));
            models.push(json!({
                "model": m,
                "selected": t.selected_models.is_empty() || t.selected_models.contains(m),
                "excluded": route::matches_any(m, &t.exclude_models),
                "probed": probed.contains(m),
                "protocol": names.protocol,
                "route": names.route,
                "endpoint": names.endpoint,
                "route_rule": r.rule,
                "latest": last.map(|l| latest_view(l, Value::Null)),
            }));
        }
        let mut v = json!({
            "item": {
                "target_id": id,
                "target_name": t.name,
                "available_models": available,
                "discovered": discovered,
                "selected_models": t.selected_models,
                "exclude_models": t.exclude_models,
                "max_models": t.max_models,
                "probed": probed,
                "models": models,
            }
        });
        self.hide_relay_of(&t.base_url, caller, &mut v);
        Ok(v)
    }

    /// `{"selected_models": [...]}` (empty = all), checked against the discovered list
    /// once there is one; `exclude_models` may come along.
    pub async fn set_target_models(
        &self,
        caller: &Caller,
        id: i64,
        raw: &[u8],
    ) -> ServiceResult<Value> {
        caller.require_admin()?;
        let mut body = Body::parse(raw)?;
        let selected = body.string_list("selected_models", 5000, 1, 256)?;
        let exclude = body.string_list("exclude_models", 500, 1, 256)?;
        body.finish()?;
        if selected.is_none() && exclude.is_none() {
            return Err(ServiceError::BadRequest("selected_models: required".into()));
        }
        let discovered = match self.store.discovered_models(id).await {
            Ok(d) => d,
            Err(crate::store::StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => {
                return Err(ServiceError::NotFound(format!("no target with id {id}")));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(sel) = &selected
            && !discovered.is_empty()
        {
            let unknown: Vec<&str> = sel
                .iter()
                .filter(|m| !discovered.contains(m))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                let shown: Vec<&str> = unknown.iter().take(10).copied().collect();
                return Err(ServiceError::BadRequest(format!(
                    "selected_models: {} not offered by this channel: {}",
                    unknown.len(),
                    shown.join(", ")
                )));
            }
        }
        self.edit_target(id, move |t| {
            if let Some(s) = selected {
                t.selected_models = s;
            }
            if let Some(e) = exclude {
                t.exclude_models = e;
            }
            Ok(())
        })
        .await?;
        let mut answer = self.target_models(caller, id).await?;
        answer["ok"] = json!(true);
        Ok(answer)
    }
}
