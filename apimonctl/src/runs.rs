//! `apimonctl run|runs|models|check`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::probe::TargetStatus;

use crate::Threshold;
use crate::error::CliError;
use crate::output::{Out, cell, ms, time};
use crate::transport::{Conn, Triggered};

const POLL: Duration = Duration::from_millis(400);

/// A run being waited for: the target, and the lowest run id that counts as "this run".
struct Waiting {
    id: i64,
    name: String,
    min_run: i64,
    probes: usize,
}

/// Starts a run of each target (or finds the one already going).
async fn start(
    conn: &mut Conn,
    idents: &[String],
    out: &Out,
    quiet: bool,
) -> Result<Vec<Waiting>, CliError> {
    let mut waiting = Vec::new();
    for ident in idents {
        let id = conn.resolve(ident).await?;
        let before = conn.runs(id, 1).await?;
        let latest = before.first().and_then(|r| r["id"].as_i64()).unwrap_or(0);
        let latest_running = before.first().is_some_and(|r| r["status"] == "running");
        let triggered = conn.trigger(id).await?;
        let already = triggered == Triggered::AlreadyGoing;
        let min_run = if already && latest_running {
            latest
        } else {
            latest + 1
        };
        let target = conn.target(id).await?;
        let name = cell(&target["name"]);
        if !quiet && !out.json {
            let what = match triggered {
                Triggered::AlreadyGoing => format!(
                    "already {}",
                    if latest_running { "running" } else { "queued" }
                ),
                Triggered::Queued => "queued".into(),
                Triggered::Started => "started".into(),
            };
            println!("{name}: run {what}");
        }
        let probes = conn.probed_count(id).await.unwrap_or(0);
        waiting.push(Waiting {
            id,
            name,
            min_run,
            probes,
        });
    }
    Ok(waiting)
}

/// Waits for every run to finish; returns each target's finished run.
async fn wait(
    conn: &mut Conn,
    waiting: &[Waiting],
    timeout: Duration,
    out: &Out,
) -> Result<Vec<Value>, CliError> {
    let deadline = Instant::now() + timeout;
    let total: usize = waiting.iter().map(|w| w.probes).sum();
    let bar = (out.tty && !out.json).then(|| {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} probes {elapsed}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let mut done: Vec<Option<Value>> = vec![None; waiting.len()];
    loop {
        let mut progress = 0usize;
        for (i, w) in waiting.iter().enumerate() {
            if done[i].is_some() {
                progress += w.probes;
                continue;
            }
            let runs = conn.runs(w.id, 5).await?;
            // Newest first: the oldest run from `min_run` on is the one started for us.
            let mine = runs
                .iter()
                .rfind(|r| r["id"].as_i64().unwrap_or(0) >= w.min_run)
                .cloned();
            match mine {
                Some(r) if r["status"] != "running" => {
                    progress += w.probes;
                    done[i] = Some(r);
                }
                Some(r) if bar.is_some() => {
                    let logs = conn.logs(w.id, r["id"].as_i64()).await?;
                    progress += logs["count"].as_u64().unwrap_or(0) as usize;
                }
                Some(_) => {}
                None => {
                    // The target is marked running before the trigger is answered, so
                    // not running and no row means the run ended without being recorded
                    // (a full disk, say): waiting longer would wait forever.
                    let t = conn.target(w.id).await?;
                    if t["running"] == false {
                        progress += w.probes;
                        done[i] = Some(serde_json::json!({
                            "id": null,
                            "status": "error",
                            "error": "the run ended without being recorded; see `apimonctl status` and the apimond log",
                        }));
                    }
                }
            }
        }
        if let Some(b) = &bar {
            let left = done.iter().filter(|d| d.is_none()).count();
            b.set_message(format!("{left} run(s) going"));
            b.set_position(progress.min(total) as u64);
        }
        if done.iter().all(Option::is_some) {
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            return Ok(done.into_iter().flatten().collect());
        }
        if Instant::now() > deadline {
            if let Some(b) = bar {
                b.abandon();
            }
            let left: Vec<&str> = waiting
                .iter()
                .zip(&done)
                .filter(|(_, d)| d.is_none())
                .map(|(w, _)| w.name.as_str())
                .collect();
            return Err(CliError::Other(format!(
                "runs did not finish within {} s: {}",
                timeout.as_secs(),
                left.join(", ")
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn run(
    conn: &mut Conn,
    targets: &[String],
    wait_for: bool,
    out: &Out,
) -> Result<ExitCode, CliError> {
    let waiting = start(conn, targets, out, false).await?;
    if !wait_for {
        if out.json {
            out.print_json(&json!(
                waiting
                    .iter()
                    .map(|w| json!({"target_id": w.id, "name": w.name}))
                    .collect::<Vec<_>>()
            ));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let runs = wait(conn, &waiting, Duration::from_secs(3600), out).await?;
    summary(&waiting, &runs, &vec![false; runs.len()], out)?;
    Ok(ExitCode::SUCCESS)
}

/// One row per finished run, with the target's status; returns each status.
/// `reused[i]` says the run was an earlier one, recent enough for `check --max-age`.
fn summary(
    waiting: &[Waiting],
    runs: &[Value],
    reused: &[bool],
    out: &Out,
) -> Result<Vec<(String, TargetStatus)>, CliError> {
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    let mut statuses = Vec::new();
    for ((w, r), reused) in waiting.iter().zip(runs).zip(reused) {
        // Only a completed run (or a run ended by a discovery error) says how the
        // target is; an interrupted one proves nothing and fails the check.
        let status = match (r["status"].as_str(), r["result"].as_str()) {
            (Some("completed"), Some(result)) => result.to_string(),
            (Some("error"), _) => "error".to_string(),
            (Some(other), _) => other.to_string(),
            (None, _) => "error".to_string(),
        };
        let parsed = TargetStatus::parse(&status).unwrap_or(TargetStatus::Error);
        statuses.push((w.name.clone(), parsed));
        rows.push(vec![
            w.name.clone(),
            out.status(&status),
            format!("{}/{}", cell(&r["success"]), cell(&r["total"])),
            cell(&r["id"]),
            cell(&r["error"]),
        ]);
        json_rows.push(json!({
            "target_id": w.id, "name": w.name, "status": status, "run_id": r["id"],
            "run_status": r["status"], "total": r["total"], "success": r["success"], "fail": r["fail"], "error": r["error"],
            "reused": reused,
        }));
    }
    if out.json {
        out.print_json(&json!(json_rows));
    } else {
        out.table(&["TARGET", "STATUS", "MODELS OK", "RUN", "ERROR"], rows);
    }
    Ok(statuses)
}

/// The target's latest run, when it can stand for a new one under `check --max-age`:
/// it finished at most `max_age` before `now` with a verdict on the target (completed,
/// or ended by a discovery error). A running or interrupted run says nothing yet.
fn recent_verdict(latest: Option<&Value>, max_age: Duration, now: f64) -> Option<Value> {
    let run = latest?;
    let finished = run["finished_at"].as_f64()?;
    let verdict = matches!(run["status"].as_str(), Some("completed" | "error"));
    (verdict && now - finished <= max_age.as_secs_f64()).then(|| run.clone())
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The runs `check` judges, in the order of `idents`, and whether each is an earlier
/// run reused: with `max_age`, targets whose latest run is recent enough are judged by
/// it, and only the others are run (and waited for).
async fn runs_to_judge(
    conn: &mut Conn,
    idents: &[String],
    max_age: Option<Duration>,
    timeout: Duration,
    out: &Out,
) -> Result<(Vec<Waiting>, Vec<Value>, Vec<bool>), CliError> {
    let Some(max_age) = max_age else {
        let waiting = start(conn, idents, out, true).await?;
        let runs = wait(conn, &waiting, timeout, out).await?;
        let reused = vec![false; runs.len()];
        return Ok((waiting, runs, reused));
    };
    let now = unix_now();
    // Per target: the recent run to reuse, or `None` for one to run now.
    let mut judged: Vec<Option<(Waiting, Value)>> = Vec::new();
    let mut stale = Vec::new();
    for ident in idents {
        let id = conn.resolve(ident).await?;
        let latest = conn.runs(id, 1).await?;
        match recent_verdict(latest.first(), max_age, now) {
            Some(run) => {
                let name = cell(&conn.target(id).await?["name"]);
                let w = Waiting {
                    id,
                    name,
                    min_run: 0,
                    probes: 0,
                };
                judged.push(Some((w, run)));
            }
            None => {
                judged.push(None);
                stale.push(id.to_string());
            }
        }
    }
    let mut fresh = if stale.is_empty() {
        Vec::new()
    } else {
        let waiting = start(conn, &stale, out, true).await?;
        let runs = wait(conn, &waiting, timeout, out).await?;
        waiting.into_iter().zip(runs).collect()
    }
    .into_iter();
    let (mut waiting, mut runs, mut reused) = (Vec::new(), Vec::new(), Vec::new());
    for j in judged {
        let (w, r, old) = match j {
            Some((w, r)) => (w, r, true),
            None => {
                let (w, r) = fresh.next().expect("one new run per stale target");
                (w, r, false)
            }
        };
        waiting.push(w);
        runs.push(r);
        reused.push(old);
    }
    Ok((waiting, runs, reused))
}

pub async fn check(
    conn: &mut Conn,
    targets: &[String],
    fail_on: Threshold,
    timeout: u64,
    max_age: Option<Duration>,
    out: &Out,
) -> Result<ExitCode, CliError> {
    let idents: Vec<String> = if targets.is_empty() {
        conn.targets()
            .await?
            .iter()
            .filter(|t| t["enabled"] == true)
            .map(|t| cell(&t["id"]))
            .collect()
    } else {
        targets.to_vec()
    };
    if idents.is_empty() {
        return Err(CliError::Usage(
            "no targets to check: none is enabled; name them on the command line".into(),
        ));
    }
    let (waiting, runs, reused) =
        runs_to_judge(conn, &idents, max_age, Duration::from_secs(timeout), out).await?;
    let statuses = summary(&waiting, &runs, &reused, out)?;
    let failing: Vec<&str> = statuses
        .iter()
        .filter(|(_, s)| s.severity() >= fail_on.severity())
        .map(|(n, _)| n.as_str())
        .collect();
    if failing.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        let threshold = match fail_on {
            Threshold::Degraded => "degraded",
            Threshold::Down => "down",
        };
        eprintln!(
            "apimonctl: check failed: {} at or past `{threshold}`",
            failing.join(", ")
        );
        Ok(ExitCode::from(1))
    }
}

pub async fn list(
    conn: &mut Conn,
    ident: &str,
    limit: u32,
    out: &Out,
) -> Result<ExitCode, CliError> {
    let id = conn.resolve(ident).await?;
    let runs = conn.runs(id, limit).await?;
    if out.json {
        out.print_json(&json!(runs));
        return Ok(ExitCode::SUCCESS);
    }
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                cell(&r["id"]),
                time(&r["started_at"]),
                out.status(&cell(&r["status"])),
                out.status(&cell(&r["result"])),
                format!("{}/{}", cell(&r["success"]), cell(&r["total"])),
                cell(&r["error"]),
            ]
        })
        .collect();
    out.table(
        &[
            "RUN",
            "STARTED (UTC)",
            "STATUS",
            "RESULT",
            "MODELS OK",
            "ERROR",
        ],
        rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// The table of probe results shared by `models` and `probe`.
pub fn results_table(out: &Out, rows: &[Value]) {
    let rows = rows
        .iter()
        .map(|r| {
            vec![
                cell(&r["model"]),
                out.status(&cell(&r["status"])),
                // `route` names the API (chat, responses, anthropic, gemini);
                // `protocol` is only its wire family.
                cell(&r["route"]),
                cell(&r["status_code"]),
                ms(&r["ttft_ms"]),
                ms(&r["total_ms"]),
                r["tokens_per_s"]
                    .as_f64()
                    .map(|t| format!("{t:.1}"))
                    .unwrap_or_else(|| "-".into()),
                cell(&r["error_class"]),
                cell(&r["error"]),
            ]
        })
        .collect();
    out.table(
        &[
            "MODEL", "STATUS", "ROUTE", "HTTP", "TTFT", "TOTAL", "TOK/S", "CLASS", "ERROR",
        ],
        rows,
    );
}

pub async fn models(
    conn: &mut Conn,
    ident: &str,
    run: Option<i64>,
    out: &Out,
) -> Result<ExitCode, CliError> {
    let id = conn.resolve(ident).await?;
    let logs = conn.logs(id, run).await?;
    let mut rows = logs["items"].as_array().cloned().unwrap_or_default();
    rows.sort_by(|a, b| {
        cell(&a["model"])
            .cmp(&cell(&b["model"]))
            .then(cell(&a["stream"]).cmp(&cell(&b["stream"])))
    });
    if out.json {
        out.print_json(&json!({"run": logs["run"], "items": rows}));
        return Ok(ExitCode::SUCCESS);
    }
    if logs["run"].is_null() {
        println!("no runs yet; start one with `apimonctl run {ident}`");
        return Ok(ExitCode::SUCCESS);
    }
    results_table(out, &rows);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_recent_finished_verdict_stands_for_a_new_run() {
        let age = Duration::from_secs(600);
        let now = 10_000.0;
        let run =
            |status: &str, finished: Value| json!({"status": status, "finished_at": finished});
        let judged = |r: Value| recent_verdict(Some(&r), age, now).is_some();
        assert!(judged(run("completed", json!(now - 599.0))));
        assert!(
            judged(run("error", json!(now - 10.0))),
            "a discovery error is a verdict"
        );
        assert!(!judged(run("completed", json!(now - 601.0))), "too old");
        assert!(
            !judged(run("interrupted", json!(now - 10.0))),
            "proves nothing"
        );
        assert!(!judged(run("running", Value::Null)));
        assert!(recent_verdict(None, age, now).is_none(), "never ran");
    }
}
