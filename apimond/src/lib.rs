//! apimond: the apimon daemon. [`Daemon::start`] brings up the store, the service
//! layer and the HTTP server from a [`Config`]; [`run`] does that and waits for
//! SIGTERM or SIGINT. Tests start real daemons in-process through [`Daemon::start`].

pub mod config;
pub mod events;
pub mod http;
pub mod rpc;
pub mod runlog;
pub mod runner;
pub mod scheduler;
pub mod service;
pub mod sketch;
pub mod store;
#[cfg(feature = "test-support")]
pub mod testing;

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::watch;

pub use config::Config;
use service::{Core, Settings};
use store::{SecretBox, Store};

pub const LOCK_FILE: &str = "apimond.lock";
/// How long in-flight requests get to finish after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A running daemon.
pub struct Daemon {
    http_addr: SocketAddr,
    core: Arc<Core>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    socket: Option<rpc::ControlSocket>,
    _lock: File,
}

fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create DATA_DIR {}", dir.display()))?;
    } else if !dir.is_dir() {
        bail!("DATA_DIR {} exists and is not a directory", dir.display());
    }
    Ok(())
}

/// Takes the data directory's lock so a second daemon cannot share it.
fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .mode(0o600)
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another apimond is already using DATA_DIR {} (lock {} held by pid {}); stop it or choose another DATA_DIR",
                dir.display(),
                path.display(),
                holder.trim()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

impl Daemon {
    pub async fn start(config: Config) -> anyhow::Result<Daemon> {
        create_data_dir(&config.data_dir)?;
        let lock = lock_data_dir(&config.data_dir)?;

        let data_dir = config.data_dir.clone();
        let given_key = config.secret_key.clone();
        let store = tokio::task::spawn_blocking(move || {
            let secrets =
                SecretBox::load_or_create(&data_dir, given_key.as_ref().map(|k| k.expose()))?;
            Store::open(&data_dir, secrets)
        })
        .await?
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;

        let interrupted = store.recover_interrupted_runs().await?;
        if interrupted > 0 {
            tracing::warn!(
                runs = interrupted,
                "marked runs left unfinished by the last stop as interrupted"
            );
        }

        let stored = store.load_settings().await?;
        let (settings, generated) = Settings::resolve(&config, &stored);
        let any_generated = !generated.is_empty();
        if any_generated {
            store.save_settings(generated).await?;
        }
        let credentials = service::settings::write_credentials_file(&config, &settings)
            .context("cannot write the credentials file")?;
        if any_generated && let Some(path) = &credentials {
            tracing::info!(file = %path.display(), "generated admin credentials; they are in this file (also: apimonctl credentials)");
        }

        let addr = SocketAddr::new(config.host, config.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (HOST/PORT)"))?;
        let http_addr = listener.local_addr()?;
        // Streams (SSE, proxied replies) go out event by event: no Nagle delay.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });

        let core = Core::new(config, store, settings);
        let socket = rpc::bind(
            core.clone(),
            &core.config.socket_path,
            core.config.socket_group.as_deref(),
        )?;
        let scheduler = tokio::spawn(core.clone().scheduler_loop());
        let retention = tokio::spawn(retention_loop(core.clone()));
        let app = http::router(core.clone());
        let (stop, mut stopped) = watch::channel(false);
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
        });
        tracing::info!(address = %http_addr, data_dir = %core.config.data_dir.display(), version = shared::VERSION, "apimond listening");
        Ok(Daemon {
            http_addr,
            core,
            stop,
            server,
            background: vec![scheduler, retention],
            socket: Some(socket),
            _lock: lock,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The control socket's path.
    pub fn socket_path(&self) -> &std::path::Path {
        &self.core.config.socket_path
    }

    /// Stops scheduling, lets runs in flight end and requests finish within the grace
    /// period, closes event streams, marks runs cut short as interrupted, and
    /// checkpoints the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(socket) = self.socket.take() {
            socket.close();
        }
        if !self.core.stop_scheduler(SHUTDOWN_GRACE).await {
            tracing::warn!(
                "runs still in flight after the grace period; they will be marked interrupted"
            );
        }
        for task in &self.background {
            task.abort();
        }
        let _ = self.stop.send(true);
        match tokio::time::timeout(SHUTDOWN_GRACE, self.server).await {
            Ok(joined) => joined??,
            Err(_) => tracing::warn!("requests still open after the grace period; closing them"),
        }
        let cut = self.core.store.recover_interrupted_runs().await?;
        if cut > 0 {
            tracing::warn!(runs = cut, "runs cut short by the stop marked interrupted");
        }
        self.core.store.checkpoint().await?;
        tracing::info!("apimond stopped");
        Ok(())
    }
}

/// How often new probe rows are folded into the rollups.
const ROLLUP_EVERY: Duration = Duration::from_secs(60);
/// How often old probe rows, rollups and run logs are pruned.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Rows folded into the rollups per transaction.
const ROLLUP_BATCH: i64 = 20_000;

/// Folds every new probe row into the rollups.
pub async fn roll_up_all(core: &Core) {
    loop {
        match core.store.roll_up(ROLLUP_BATCH).await {
            Ok(n) if n as i64 == ROLLUP_BATCH => continue,
            Ok(_) => break,
            Err(e) => {
                tracing::error!(error = %e, "rolling up probe rows failed");
                break;
            }
        }
    }
}

async fn retention_loop(core: Arc<Core>) {
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        roll_up_all(&core).await;
        if last_prune.is_some_and(|t| t.elapsed() < RETENTION_EVERY) {
            tokio::time::sleep(ROLLUP_EVERY).await;
            continue;
        }
        last_prune = Some(std::time::Instant::now());
        let t = store::now();
        let day = 86_400.0;
        let c = &core.config;
        match core
            .store
            .prune(
                t - c.retention_raw_days as f64 * day,
                t - c.retention_hourly_days as f64 * day,
                t - c.retention_daily_days as f64 * day,
            )
            .await
        {
            Ok((rows, runs, rollups)) if rows + runs + rollups > 0 => {
                tracing::info!(rows, runs, rollups, "pruned old probe data");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "pruning old probe data failed"),
        }
        runner::prune_logs(&core, true).await;
        tokio::time::sleep(ROLLUP_EVERY).await;
    }
}

async fn stop_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// Starts the daemon, tells systemd it is ready, and runs until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let daemon = Daemon::start(config).await?;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let signal = stop_signal().await?;
    tracing::info!(signal, "stopping");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    daemon.shutdown().await
}
