//! `GET /api/admin/resources`: what the daemon uses (process memory and CPU, database
//! and log sizes) and the cgroup it runs in (v2, else v1): its CPU and memory usage
//! and limits, in the Go program's `container` keys, with `sample_time_ms` so a page
//! polling it can turn two CPU totals into a rate.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use super::{Caller, Core, ServiceError, ServiceResult};

/// Where cgroup file systems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// v1 reports "no limit" as a huge page-aligned number rather than a word.
const V1_UNLIMITED: u64 = 1 << 62;

/// The cgroup apimond runs in, as the Go program reports it. `available` is true only
/// when a cgroup file system was found and it sets a CPU or memory limit: outside a
/// container (or in one without limits) it is false, and the usage figures that could
/// be read are still given. A figure that cannot be read, or a limit that is not set,
/// is null.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Container {
    pub available: bool,
    /// 1 or 2; null when no cgroup file system was found.
    pub cgroup_version: Option<u8>,
    pub cpu_usage_seconds_total: Option<f64>,
    pub cpu_limit_cores: Option<f64>,
    pub memory_usage_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    /// apimon's earlier name of `memory_usage_bytes`.
    pub memory_current_bytes: Option<u64>,
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn read_u64(path: &Path) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

/// The directory of our own cgroup under a hierarchy mounted at `mount`: the path
/// `/proc/self/cgroup` names, when it exists there (no cgroup namespace), else the
/// mount itself (a container sees its own cgroup at the root).
fn own_dir(mount: &Path, path: &str) -> PathBuf {
    let dir = mount.join(path.trim_start_matches('/'));
    if dir.is_dir() {
        dir
    } else {
        mount.to_path_buf()
    }
}

/// Reads the cgroup described by `self_cgroup` (the text of `/proc/self/cgroup`)
/// under `root` (normally `/sys/fs/cgroup`).
pub fn read_container(root: &Path, self_cgroup: &str) -> Container {
    let mut c = if root.join("cgroup.controllers").is_file() {
        read_v2(root, self_cgroup)
    } else {
        read_v1(root, self_cgroup)
    };
    c.available = c.cgroup_version.is_some()
        && (c.cpu_limit_cores.is_some() || c.memory_limit_bytes.is_some());
    c.memory_current_bytes = c.memory_usage_bytes;
    c
}

fn read_v2(root: &Path, self_cgroup: &str) -> Container {
    let path = self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/");
    let dir = own_dir(root, path);
    let cpu_limit = read_trimmed(&dir.join("cpu.max")).and_then(|v| {
        let mut parts = v.split_whitespace();
        // `max 100000` is no limit.
        let quota = parts.next()?.parse::<f64>().ok()?;
        let period = parts.next()?.parse::<f64>().ok()?;
        (quota > 0.0 && period > 0.0).then(|| quota / period)
    });
    let cpu_usage = read_trimmed(&dir.join("cpu.stat")).and_then(|stat| {
        let usec = stat
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))?
            .trim()
            .parse::<f64>()
            .ok()?;
        Some(usec / 1e6)
    });
    Container {
        available: false,
        cgroup_version: Some(2),
        cpu_usage_seconds_total: cpu_usage,
        cpu_limit_cores: cpu_limit,
        memory_usage_bytes: read_u64(&dir.join("memory.current")),
        // `max` is no limit and does not parse.
        memory_limit_bytes: read_u64(&dir.join("memory.max")),
        memory_current_bytes: None,
    }
}

fn read_v1(root: &Path, self_cgroup: &str) -> Container {
    // The directory of one controller: its hierarchy is mounted under the
    // controller's name, or under the joined names of a shared hierarchy
    // (`cpu,cpuacct`).
    let controller_dir = |name: &str| -> Option<PathBuf> {
        let (controllers, path) = self_cgroup.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == name)
                .then_some((controllers, path))
        })?;
        [root.join(name), root.join(controllers)]
            .into_iter()
            .find(|m| m.is_dir())
            .map(|m| own_dir(&m, path))
    };
    let memory = controller_dir("memory");
    let cpu = controller_dir("cpu");
    let cpuacct = controller_dir("cpuacct");
    let found = memory.is_some() || cpu.is_some() || cpuacct.is_some();
    let cpu_limit = cpu.as_ref().and_then(|d| {
        // A quota of -1 is no limit.
        let quota = read_trimmed(&d.join("cpu.cfs_quota_us"))?
            .parse::<f64>()
            .ok()?;
        let period = read_trimmed(&d.join("cpu.cfs_period_us"))?
            .parse::<f64>()
            .ok()?;
        (quota > 0.0 && period > 0.0).then(|| quota / period)
    });
    Container {
        available: false,
        cgroup_version: found.then_some(1),
        cpu_usage_seconds_total: cpuacct
            .as_ref()
            .and_then(|d| read_u64(&d.join("cpuacct.usage")))
            .map(|ns| ns as f64 / 1e9),
        cpu_limit_cores: cpu_limit,
        memory_usage_bytes: memory
            .as_ref()
            .and_then(|d| read_u64(&d.join("memory.usage_in_bytes"))),
        memory_limit_bytes: memory
            .as_ref()
            .and_then(|d| read_u64(&d.join("memory.limit_in_bytes")))
            .filter(|v| *v < V1_UNLIMITED),
        memory_current_bytes: None,
    }
}

impl Core {
    /// The Go program's keys (`sample_time_ms`, `container`) at the top, apimon's
    /// figures under `item` (whose `container` is the same object).
    pub async fn resources(&self, caller: &Caller) -> ServiceResult<Value> {
        caller.require_admin()?;
        let data_dir = self.config.paths.data_dir.clone();
        let db_bytes = self.store.disk_usage();
        let uptime = self.started.elapsed().as_secs_f64();
        let started_at = self.started_at;
        tokio::task::spawn_blocking(move || {
            let sample_time_ms = (crate::store::now() * 1000.0).round() as i64;
            let process = process_usage();
            let cpu_seconds = process.as_ref().map(|p| p.cpu_seconds);
            let self_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let container = read_container(Path::new(CGROUP_ROOT), &self_cgroup);
            json!({
                "sample_time_ms": sample_time_ms,
                "container": container,
                "item": {
                    "sample_time_ms": sample_time_ms,
                    "process": {
                        "pid": std::process::id(),
                        "rss_bytes": process.as_ref().map(|p| p.rss_bytes),
                        "cpu_seconds": cpu_seconds,
                        "cpu_percent_avg": cpu_seconds.map(|c| if uptime > 0.0 { (c / uptime * 1000.0).round() / 10.0 } else { 0.0 }),
                        "threads": process.as_ref().map(|p| p.threads),
                    },
                    "open_files": {
                        "soft_limit": crate::fd_limit::current().map(|l| l.soft),
                        "hard_limit": crate::fd_limit::current().map(|l| l.hard),
                        "soft_limit_at_start": crate::fd_limit::at_start().map(|l| l.soft),
                        "open": crate::fd_limit::open_count(),
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
                    "container": container,
                }
            })
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))
    }
}

/// What this process uses, from /proc.
struct ProcessUsage {
    rss_bytes: u64,
    cpu_seconds: f64,
    threads: u64,
}

fn process_usage() -> Option<ProcessUsage> {
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
    Some(ProcessUsage {
        rss_bytes: rss,
        cpu_seconds: (utime + stime) / ticks,
        threads,
    })
}

fn meminfo_total() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn a_v2_container_with_limits_reports_them_from_its_own_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "cgroup.controllers", "cpu memory");
        // The root's files must not be read when our own cgroup is there.
        write(root, "memory.current", "1");
        write(root, "app.slice/apimon/memory.max", "536870912\n");
        write(root, "app.slice/apimon/memory.current", "10485760\n");
        write(root, "app.slice/apimon/cpu.max", "150000 100000\n");
        write(
            root,
            "app.slice/apimon/cpu.stat",
            "usage_usec 2500000\nuser_usec 2000000\n",
        );
        let c = read_container(root, "0::/app.slice/apimon\n");
        assert_eq!(
            c,
            Container {
                available: true,
                cgroup_version: Some(2),
                cpu_usage_seconds_total: Some(2.5),
                cpu_limit_cores: Some(1.5),
                memory_usage_bytes: Some(10_485_760),
                memory_limit_bytes: Some(536_870_912),
                memory_current_bytes: Some(10_485_760),
            }
        );
    }

    #[test]
    fn a_v2_cgroup_without_limits_is_not_available_but_shows_its_usage() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        // A cgroup namespace: /proc/self/cgroup names a path that is not under the
        // mount, whose root is our own cgroup.
        write(root, "cgroup.controllers", "cpu memory");
        write(root, "memory.max", "max\n");
        write(root, "memory.current", "4096\n");
        write(root, "cpu.max", "max 100000\n");
        write(root, "cpu.stat", "usage_usec 1000\n");
        let c = read_container(root, "0::/../outside\n");
        assert!(!c.available);
        assert_eq!(c.cgroup_version, Some(2));
        assert_eq!(c.memory_limit_bytes, None);
        assert_eq!(c.cpu_limit_cores, None);
        assert_eq!(c.memory_usage_bytes, Some(4096));
        assert_eq!(c.cpu_usage_seconds_total, Some(0.001));
    }

    #[test]
    fn a_v1_hierarchy_is_read_per_controller_and_huge_limits_mean_none() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let self_cgroup = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n";
        write(
            root,
            "memory/docker/abc/memory.limit_in_bytes",
            "268435456\n",
        );
        write(root, "memory/docker/abc/memory.usage_in_bytes", "1048576\n");
        write(root, "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000\n");
        write(root, "cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
        write(root, "cpu,cpuacct/docker/abc/cpuacct.usage", "3000000000\n");
        let c = read_container(root, self_cgroup);
        assert_eq!(
            c,
            Container {
                available: true,
                cgroup_version: Some(1),
                cpu_usage_seconds_total: Some(3.0),
                cpu_limit_cores: Some(0.5),
                memory_usage_bytes: Some(1_048_576),
                memory_limit_bytes: Some(268_435_456),
                memory_current_bytes: Some(1_048_576),
            }
        );

        write(
            root,
            "memory/docker/abc/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        write(root, "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
        let c = read_container(root, self_cgroup);
        assert!(!c.available, "no limit set: {c:?}");
        assert_eq!((c.memory_limit_bytes, c.cpu_limit_cores), (None, None));
        assert_eq!(c.memory_usage_bytes, Some(1_048_576));
    }

    #[test]
    fn no_cgroup_file_system_is_not_available_and_has_no_version() {
        let tmp = tempfile::tempdir().unwrap();
        let c = read_container(&tmp.path().join("missing"), "");
        assert_eq!(
            c,
            Container {
                available: false,
                cgroup_version: None,
                cpu_usage_seconds_total: None,
                cpu_limit_cores: None,
                memory_usage_bytes: None,
                memory_limit_bytes: None,
                memory_current_bytes: None,
            }
        );
    }
}
