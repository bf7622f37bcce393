//! One run of one target: discover, filter, probe every model with at most
//! `MONITOR_DETECT_CONCURRENCY` probes in flight (and the per-host cap), store each
//! result as it comes, write the JSONL log, publish events, decide the target status.
//! The runner sees only its [`RunContext`], never the service layer: the scheduler
//! hands it a [`RunSlot`] through the launcher the daemon wires in.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use shared::probe::{self, ModelStatus, ProbeResult, ProbeSettings, TargetStatus};
use tokio_util::sync::CancellationToken;

use crate::events::{Bus, Event};
use crate::maintenance::Upkeep;
use crate::runlog::RunLog;
use crate::scheduler::{HostLimits, RunSlot};
use crate::store::probe_runs::RunFinish;
use crate::store::runs::RunStatus;
use crate::store::targets::TargetRecord;
use crate::store::{Store, now};

/// The probe settings of a target.
pub fn probe_settings(t: &TargetRecord) -> ProbeSettings {
    ProbeSettings {
        base_url: t.base_url.clone(),
        api_key: t.api_key.clone(),
        timeout: Duration::from_secs_f64(t.timeout_s),
        verify_ssl: t.verify_ssl,
        anthropic_version: t.anthropic_version.clone(),
        extra_headers: t.extra_headers.clone(),
        user_agent: t.user_agent.clone(),
        max_tokens: t.max_tokens.map(|n| n as u32),
        check_mode: t.check_mode,
        prompt: t.prompt.clone(),
        slow_ms: t.slow_ms.max(0) as u64,
        route_overrides: t.route_overrides.clone(),
        proxy: t.proxy.clone(),
        client_profile: t.client_profile,
    }
}

/// The host a target's probes go to, for the per-host cap.
fn host_of(base_url: &str) -> String {
    url::Url::parse(base_url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_else(|| base_url.to_string())
}

/// What a run needs, and nothing more.
pub struct RunContext {
    pub store: Store,
    pub bus: Bus,
    pub prober: probe::Prober,
    pub hosts: Arc<HostLimits>,
    pub upkeep: Arc<Upkeep>,
    pub data_dir: PathBuf,
    /// `MONITOR_DETECT_CONCURRENCY`: probes in flight within one run.
    pub detect_concurrency: usize,
    /// Cancelled when apimond stops scheduling: a run takes no new probes.
    pub stop_probing: CancellationToken,
    /// Cancelled when the grace period is over: a run abandons its probes in flight
    /// and is recorded as interrupted.
    pub cut: CancellationToken,
}

/// Runs the slot's target. The slot is the run's place among the parallel runs; the
/// target is marked finished once the run is stored.
pub async fn run_target(ctx: Arc<RunContext>, mut slot: RunSlot) {
    let target_id = slot.target_id;
    if let Err(e) = run(&ctx, &mut slot).await {
        tracing::error!(target_id, error = %e, "run failed");
        // Never leave a run `running`: close it as an error. When the disk is full
        // that write fails too, so it is tried again until space returns (or apimond
        // stops, whose start marks it interrupted).
        let message = format!("the run failed inside apimond: {e}");
        let mut attempt = 0u32;
        loop {
            match ctx.store.fail_running_runs(target_id, &message).await {
                Ok(ids) => {
                    slot.finished_announcing(|| publish_failed(&ctx, target_id, ids, &message));
                    break;
                }
                Err(e) if attempt < CLOSE_RETRIES && !ctx.cut.is_cancelled() => {
                    if attempt == 0 {
                        tracing::warn!(target_id, error = %e, "cannot close the failed run yet; retrying");
                    }
                    attempt += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(CLOSE_RETRY_EVERY) => {}
                        _ = ctx.cut.cancelled() => {}
                    }
                }
                Err(e) => {
                    tracing::error!(target_id, error = %e, "cannot close the failed run");
                    break;
                }
            }
        }
    }
    slot.finished();
}

/// How often, and how many times, a failed run's closing write is tried again.
const CLOSE_RETRY_EVERY: Duration = Duration::from_secs(2);
const CLOSE_RETRIES: u32 = 900;

fn publish_failed(ctx: &RunContext, target_id: i64, ids: Vec<i64>, message: &str) {
    for run_id in ids {
        ctx.bus.publish(Event::RunCompleted {
            target_id,
            target_name: String::new(),
            run_id,
            status: TargetStatus::Error.as_str(),
            target_status: TargetStatus::Error.as_str(),
            run_status: RunStatus::Error.as_str(),
            total: 0,
            success: 0,
            fail: 0,
            error: Some(message.to_string()),
            ts: now(),
        });
    }
}

/// How a run that apimond's stop cut short ends.
fn cut_short(statuses: &[ModelStatus], log_file: Option<String>) -> RunFinish {
    let total = statuses.len() as i64;
    let success = statuses.iter().filter(|s| **s != ModelStatus::Fail).count() as i64;
    RunFinish {
        status: RunStatus::Interrupted,
        result: TargetStatus::of_run(false, statuses),
        total,
        success,
        fail: total - success,
        error: Some("apimond stopped before the run finished".into()),
        log_file,
    }
}

async fn run(ctx: &RunContext, slot: &mut RunSlot) -> anyhow::Result<()> {
    let (target_id, trigger) = (slot.target_id, slot.trigger);
    let Some(target) = ctx.store.get_target(target_id).await? else {
        return Ok(());
    };
    let run = ctx.store.start_run(target_id, trigger.as_str()).await?;
    tracing::info!(
        target_id,
        run_id = run.id,
        trigger = trigger.as_str(),
        "run started"
    );
    ctx.bus.publish(Event::RunStarted {
        target_id,
        target_name: target.name.clone(),
        run_id: run.id,
        trigger: trigger.as_str(),
        ts: now(),
    });
    let mut log = RunLog::create(&ctx.data_dir, &ctx.upkeep.active_logs, target_id, run.id).await;
    let settings = probe_settings(&target);
    let host = host_of(&target.base_url);

    let discovered = tokio::select! {
        d = async {
            let _host = ctx.hosts.permit(&host).await;
            ctx.prober.discover(&settings).await
        } => Some(d),
        _ = ctx.cut.cancelled() => None,
    };
    let finish = match discovered {
        None => cut_short(&[], log.stored_name()),
        Some(Err(e)) => {
            log.write("discovery", json!({"success": false, "error_class": e.class, "error": e.message, "status_code": e.status_code}))
                .await;
            RunFinish {
                status: RunStatus::Error,
                result: TargetStatus::Error,
                total: 0,
                success: 0,
                fail: 0,
                error: Some(e.message),
                log_file: log.stored_name(),
            }
        }
        Some(Ok(models)) => {
            let count = models.len();
            let (added, removed) = ctx
                .store
                .set_discovered_models(target_id, models.clone())
                .await?;
            log.write(
                "discovery",
                json!({"success": true, "models": count, "added": added, "removed": removed}),
            )
            .await;
            if !added.is_empty() || !removed.is_empty() {
                ctx.bus.publish(Event::ModelsChanged {
                    target_id,
                    target_name: target.name.clone(),
                    added,
                    removed,
                    total: count,
                    ts: now(),
                });
            }
            let selected = probe::select_models(
                &models,
                &target.selected_models,
                &target.exclude_models,
                target.max_models.max(0) as usize,
            );
            ctx.store.forget_models(target_id, selected.clone()).await?;
            probe_all(ctx, &target, &settings, &host, run.id, &selected, &mut log).await?
        }
    };
    let interrupted = finish.status == RunStatus::Interrupted;
    log.write(
        "run_completed",
        json!({"status": finish.status, "target_status": finish.result, "total": finish.total, "success": finish.success, "fail": finish.fail, "error": finish.error}),
    )
    .await;
    log.close().await;
    let completed = Event::RunCompleted {
        target_id,
        target_name: target.name.clone(),
        run_id: run.id,
        status: finish.result.as_str(),
        target_status: finish.result.as_str(),
        run_status: finish.status.as_str(),
        total: finish.total,
        success: finish.success,
        fail: finish.fail,
        error: finish.error.clone(),
        ts: now(),
    };
    let result = finish.result.as_str();
    // Store first, then announce: whoever reacts to the event reads the stored run.
    if interrupted {
        ctx.store
            .interrupt_run(run.id, finish.total, finish.success, finish.fail)
            .await?;
    } else {
        ctx.store.finish_run(run.id, target_id, finish).await?;
    }
    let updated = Event::TargetUpdated {
        target_id,
        target_name: target.name.clone(),
        // An interrupted run leaves the stored status as it was.
        last_status: if interrupted {
            target.last_status.clone()
        } else {
            Some(result.to_string())
        },
        enabled: target.enabled,
        ts: now(),
    };
    slot.finished_announcing(|| {
        ctx.bus.publish(completed);
        ctx.bus.publish(updated);
    });
    tracing::info!(target_id, run_id = run.id, status = result, "run finished");
    ctx.upkeep.prune_logs(false).await;
    Ok(())
}

async fn probe_all(
    ctx: &RunContext,
    target: &TargetRecord,
    settings: &ProbeSettings,
    host: &str,
    run_id: i64,
    models: &[String],
    log: &mut RunLog<'_>,
) -> anyhow::Result<RunFinish> {
    let jobs: Vec<(String, bool)> = models
        .iter()
        .flat_map(|m| {
            target
                .probe_mode
                .streams()
                .iter()
                .map(move |s| (m.clone(), *s))
        })
        .collect();
    let mut jobs = jobs.into_iter();
    let stop = ctx.stop_probing.clone();
    // Stop taking new probes once apimond is stopping; probes in flight finish.
    let pending = futures_util::stream::iter(std::iter::from_fn(move || {
        if stop.is_cancelled() {
            None
        } else {
            jobs.next()
        }
    }));
    let concurrency = ctx.detect_concurrency;
    let mut results = pending
        .map(|(model, stream)| async move {
            let _host = ctx.hosts.permit(host).await;
            ctx.prober.probe(settings, &model, stream).await
        })
        .buffer_unordered(concurrency);

    // A model probed in both modes counts once, with the worse outcome.
    let mut by_model: BTreeMap<String, ModelStatus> = BTreeMap::new();
    let mut probes = 0usize;
    // Results go to the store in small batches (events and the log see each at once).
    let mut batch: Vec<ProbeResult> = Vec::with_capacity(concurrency);
    loop {
        let next = tokio::select! {
            r = results.next() => r,
            // Past the grace period: probes still in flight are dropped.
            _ = ctx.cut.cancelled() => None,
        };
        let Some(r) = next else { break };
        probes += 1;
        publish(ctx, target.id, run_id, &r, log).await;
        let entry = by_model.entry(r.model.clone()).or_insert(r.status);
        if severity(r.status) > severity(*entry) {
            *entry = r.status;
        }
        batch.push(r);
        if batch.len() >= concurrency {
            ctx.store
                .record_probes(run_id, target.id, std::mem::take(&mut batch))
                .await?;
        }
    }
    drop(results);
    if !batch.is_empty() {
        ctx.store.record_probes(run_id, target.id, batch).await?;
    }
    let statuses: Vec<ModelStatus> = by_model.values().copied().collect();
    let expected = models.len() * target.probe_mode.streams().len();
    if probes < expected {
        return Ok(cut_short(&statuses, log.stored_name()));
    }
    let success = statuses.iter().filter(|s| **s != ModelStatus::Fail).count() as i64;
    let total = statuses.len() as i64;
    Ok(RunFinish {
        status: RunStatus::Completed,
        result: TargetStatus::of_run(false, &statuses),
        total,
        success,
        fail: total - success,
        error: None,
        log_file: log.stored_name(),
    })
}

fn severity(s: ModelStatus) -> u8 {
    match s {
        ModelStatus::Ok => 0,
        ModelStatus::Slow => 1,
        ModelStatus::Fail => 2,
    }
}

/// Logs a result to the run's JSONL file and publishes it.
async fn publish(
    ctx: &RunContext,
    target_id: i64,
    run_id: i64,
    r: &ProbeResult,
    log: &mut RunLog<'_>,
) {
    log.write("probe", serde_json::to_value(r).expect("plain data"))
        .await;
    let names = r.protocol.seed_names();
    ctx.bus.publish(Event::ModelResult {
        target_id,
        run_id,
        model: r.model.clone(),
        protocol: names.protocol,
        route: names.route,
        endpoint: names.endpoint,
        stream: r.stream,
        success: r.success,
        status: r.status.as_str(),
        status_code: r.status_code,
        ttft_ms: r.ttft_ms,
        total_ms: r.total_ms,
        tokens_per_s: r.tokens_per_s,
        error_class: r.error_class.map(|c| c.as_str()),
        error: r.error.clone(),
        model_mismatch: r.model_mismatch,
        ts: now(),
    });
}
