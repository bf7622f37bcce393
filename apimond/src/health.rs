//! Whether the daemon is alive and ready, from the parts that do the work: the store
//! takes writes, its writer thread moves, the scheduler passes. `/api/health`,
//! `apimonctl status` and the systemd watchdog all ask [`readiness`]. Also here: the
//! watchdog loop (pings only while the scheduler and the store writer are alive, so
//! systemd restarts a daemon that hangs) and the write check that lets the store
//! notice by itself that space came back.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use shared::rpc::reply::Readiness;
use tokio_util::sync::CancellationToken;

use crate::scheduler::{STALL, Scheduler};
use crate::store::{Store, Writability};

/// The daemon's readiness now.
pub fn readiness(store: &Store, scheduler: &Scheduler) -> Readiness {
    let mut problems = Vec::new();
    let store_writable = match store.health().writability() {
        Writability::Writable => true,
        Writability::Unwritable(why) => {
            problems.push(why);
            false
        }
    };
    let store_writer_alive = store.writer_alive();
    if !store_writer_alive {
        problems.push(format!(
            "the store's writer has been on one batch for {} s",
            store.health().writer_busy_for().as_secs()
        ));
    }
    let scheduler_ticking = scheduler.ticking();
    if !scheduler_ticking {
        problems.push(format!(
            "the scheduler has not passed for {} s (limit {} s)",
            scheduler.since_last_pass().as_secs(),
            STALL.as_secs()
        ));
    }
    Readiness {
        live: true,
        ready: problems.is_empty(),
        store_writable,
        store_writer_alive,
        scheduler_ticking,
        problems,
    }
}

/// How often an unwritable store tries a write, to notice that space came back.
const WRITE_CHECK_EVERY: Duration = Duration::from_secs(2);

/// While the store cannot write, tries a small write every [`WRITE_CHECK_EVERY`], so
/// health and writes recover by themselves once the disk has room again.
pub async fn recheck_writes(store: Store, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(WRITE_CHECK_EVERY) => {}
            _ = stop.cancelled() => return,
        }
        if matches!(store.health().writability(), Writability::Unwritable(_)) {
            let _ = store.check_writable().await;
        }
    }
}

/// Where systemd listens for notifications (`NOTIFY_SOCKET`): a path, or an abstract
/// name written with a leading `@`.
#[derive(Debug, Clone)]
pub struct NotifySocket(PathBuf);

impl NotifySocket {
    pub fn new(path: impl Into<PathBuf>) -> NotifySocket {
        NotifySocket(path.into())
    }

    /// From `NOTIFY_SOCKET`, when systemd set it.
    pub fn from_env() -> Option<NotifySocket> {
        std::env::var_os("NOTIFY_SOCKET")
            .filter(|v| !v.is_empty())
            .map(|v| NotifySocket(v.into()))
    }

    /// Sends one notification (`READY=1`, `WATCHDOG=1`, …).
    pub fn send(&self, state: &str) -> std::io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        let raw = self.0.as_os_str().as_encoded_bytes();
        if let Some(name) = raw.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            socket.send_to(state.as_bytes(), &self.0)?;
        }
        Ok(())
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for this process when
/// `WATCHDOG_PID` is set).
pub fn watchdog_interval_from_env() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Sends `WATCHDOG=1` every half `interval` while the scheduler and the store writer
/// are alive; stays silent while either is stuck, so systemd restarts the daemon.
/// A full disk does not stop the pings: a restart would not free space.
pub async fn watchdog(
    notify: NotifySocket,
    interval: Duration,
    store: Store,
    scheduler: std::sync::Arc<Scheduler>,
    stop: CancellationToken,
) {
    let mut silent = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval / 2) => {}
            _ = stop.cancelled() => return,
        }
        let r = readiness(&store, &scheduler);
        if r.scheduler_ticking && r.store_writer_alive {
            if silent {
                tracing::info!("watchdog pings resume");
                silent = false;
            }
            if let Err(e) = notify.send("WATCHDOG=1") {
                tracing::warn!(error = %e, "cannot ping the systemd watchdog");
            }
        } else if !silent {
            silent = true;
            tracing::error!(problems = ?r.problems, "apimond is stuck: watchdog pings stop, so systemd will restart it");
        }
    }
}
