//! Admin-only reads: the channel list of the admin panel and the resources the daemon
//! uses (process memory and CPU, database and log sizes, container limits).

use std::path::Path;

use serde_json::{Value, json};
use shared::rpc::reply::StatusReply;

use super::{Caller, Core, ServiceError, ServiceResult};

impl Core {
    /// What `apimonctl status` shows: version, uptime, counts, runs, scheduler lag.
    pub async fn status(&self, caller: &Caller) -> ServiceResult<StatusReply> {
        caller.require_admin()?;
        let dashboard = self.dashboard(caller).await?;
        Ok(StatusReply {
            version: shared::VERSION.into(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            started_at: self.started_at,
            data_dir: self.config.paths.data_dir.display().to_string(),
            http: format!("{}:{}", self.config.listen.host, self.config.listen.port),
            running_targets: self.running_targets(),
            queued_targets: self.scheduler.queued(),
            scheduler_lag_s: self.scheduler.lag_s(),
            dashboard,
        })
    }

    /// The admin token and panel password in force, for `apimonctl credentials`.
    pub fn credentials(&self, caller: &Caller) -> ServiceResult<Value> {
        caller.require_admin()?;
        let s = self.settings();
        let source = |var: &str| {
            self.config
                .source_of(var)
                .map(|s| s.describe())
                .unwrap_or("generated and stored")
        };
        Ok(json!({
            "admin_token": s.admin_token.expose(),
            "admin_token_source": source("API_MONITOR_TOKEN"),
            "admin_panel_password": s.admin_password.expose(),
            "admin_panel_password_source": source("ADMIN_PANEL_PASSWORD"),
            "file": self.config.paths.data_dir.join(crate::service::settings::CREDENTIALS_FILE).display().to_string(),
        }))
    }

    pub async fn admin_channels(&self, caller: &Caller) -> ServiceResult<Value> {
        caller.require_admin()?;
        let items: Vec<Value> = self
            .store
            .list_targets()
            .await?
            .iter()
            .map(|t| {
                crate::service::targets::target_view(
                    t,
                    caller,
                    &self.settings(),
                    self.scheduler.is_running(t.id),
                )
            })
            .collect();
        Ok(json!({ "items": items }))
    }

    pub async fn resources(&self, caller: &Caller) -> ServiceResult<Value> {
        caller.require_admin()?;
        let data_dir = self.config.paths.data_dir.clone();
        let db_bytes = self.store.disk_usage();
        let uptime = self.started.elapsed().as_secs_f64();
        let started_at = self.started_at;
        tokio::task::spawn_blocking(move || {
            let process = process_usage();
            let cpu_seconds = process.as_ref().map(|p| p.1);
            json!({
                "item": {
                    "process": {
                        "pid": std::process::id(),
                        "rss_bytes": process.as_ref().map(|p| p.0),
                        "cpu_seconds": cpu_seconds,
                        "cpu_percent_avg": cpu_seconds.map(|c| if uptime > 0.0 { (c / uptime * 1000.0).round() / 10.0 } else { 0.0 }),
                        "threads": process.as_ref().map(|p| p.2),
                    },
                    "db_bytes": db_bytes,
                    "log_dir_bytes": dir_size(&data_dir.join("logs")),
                    "data_dir": data_dir.display().to_string(),
                    "uptime_s": uptime,
                    "started_at": started_at,
                    "host": {
                        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                        "memory_bytes": meminfo_total(),
                    },
                    "container": cgroup_limits(),
                }
            })
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))
    }
}

/// (resident bytes, CPU seconds, threads) of this process, from /proc.
fn process_usage() -> Option<(u64, f64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let rss = field("VmRSS:")? * 1024;
    let threads = field("Threads:").unwrap_or(0);
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and
    // 13th of those.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    Some((rss, (utime + stime) / ticks, threads))
}

fn meminfo_total() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Memory and CPU limits of the cgroup we run in (v2, else v1); nulls when unlimited
/// or not in a container.
fn cgroup_limits() -> Value {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let num = |s: Option<String>| s.and_then(|v| v.parse::<u64>().ok());
    let (memory_limit, memory_current, cpu_limit) =
        if let Some(max) = read("/sys/fs/cgroup/memory.max") {
            let cpu = read("/sys/fs/cgroup/cpu.max").and_then(|v| {
                let mut parts = v.split_whitespace();
                let quota = parts.next()?.parse::<f64>().ok()?;
                let period = parts.next()?.parse::<f64>().ok()?;
                Some(quota / period)
            });
            (
                num(Some(max)),
                num(read("/sys/fs/cgroup/memory.current")),
                cpu,
            )
        } else {
            let limit =
                num(read("/sys/fs/cgroup/memory/memory.limit_in_bytes")).filter(|v| *v < (1 << 62));
            let cpu = match (
                read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").and_then(|v| v.parse::<f64>().ok()),
                read("/sys/fs/cgroup/cpu/cpu.cfs_period_us").and_then(|v| v.parse::<f64>().ok()),
            ) {
                (Some(q), Some(p)) if q > 0.0 && p > 0.0 => Some(q / p),
                _ => None,
            };
            (
                limit,
                num(read("/sys/fs/cgroup/memory/memory.usage_in_bytes")),
                cpu,
            )
        };
    json!({
        "memory_limit_bytes": memory_limit,
        "memory_current_bytes": memory_current,
        "cpu_limit_cores": cpu_limit,
    })
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
