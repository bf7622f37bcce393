//! apimond: the apimon daemon. [`Daemon::start`] brings up the store, the service
//! layer and the HTTP server from a [`Config`]; [`run`] does that and waits for
//! SIGTERM or SIGINT. Tests start real daemons in-process through [`Daemon::start`].
//!
//! This file wires the parts together, and is the only place that knows them all.
//! Lower layers never call up: the store depends on nothing; the scheduler on the
//! store; the runner on the store, the event bus, upkeep and the scheduler's slot
//! types; the service layer on those; HTTP and the control socket on the service.
//! The scheduler decides when a run starts and hands its slot to the launcher built
//! here, which starts the runner.

pub mod config;
pub mod events;
pub mod fd_limit;
pub mod health;
pub mod http;
pub mod lifecycle;
pub mod maintenance;
pub mod proxy;
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

pub use config::Config;
use lifecycle::Lifecycle;
use maintenance::Upkeep;
use runner::RunContext;
use scheduler::{HostLimits, Scheduler};
use service::{Core, CoreParts, Settings};
use store::Store;

pub const LOCK_FILE: &str = "apimond.lock";
/// How long each stage of a stop may take: runs in flight to finish, then open
/// requests, then every remaining task.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A running daemon.
pub struct Daemon {
    http_addr: SocketAddr,
    core: Arc<Core>,
    life: Lifecycle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
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
        create_data_dir(&config.paths.data_dir)?;
        let lock = lock_data_dir(&config.paths.data_dir)?;

        let data_dir = config.paths.data_dir.clone();
        let given_key = config.secret_key.clone();
        let store = tokio::task::spawn_blocking(move || {
            // Under the lock: a Go api_monitor database is upgraded here, before opening.
            let secrets = store::go_upgrade::prepare(
                &data_dir,
                &data_dir.join(runlog::LOG_DIR),
                given_key.as_ref().map(|k| k.expose()),
            )?;
            Store::open(&data_dir, secrets)
        })
        .await?
        .with_context(|| {
            format!(
                "cannot open the store in {}",
                config.paths.data_dir.display()
            )
        })?;

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

        let addr = SocketAddr::new(config.listen.host, config.listen.port);
        let listener = shared::listen::listen(addr)
            .with_context(|| format!("cannot listen on {addr} (HOST/PORT)"))?;
        let http_addr = listener.local_addr()?;
        let files = fd_limit::raise();
        let admission = http::serve::Admission::new(
            config.listen.limits,
            files.map_or(1024, |f| f.soft),
            config.auth.trusted_proxies.clone(),
        );
        tracing::info!(
            open_files_soft = files.map(|f| f.soft),
            open_files_hard = files.map(|f| f.hard),
            max_connections = admission.cap(),
            "open-file limit"
        );

        let life = Lifecycle::default();
        let bus = events::Bus::default();
        let prober = shared::probe::Prober::new(
            config
                .scheduler
                .route_rules
                .iter()
                .cloned()
                .chain(shared::probe::route::default_rules())
                .collect(),
        )
        .with_default_proxy(config.scheduler.outbound_proxy.clone());
        if let Some(p) = &config.scheduler.outbound_proxy {
            tracing::info!(proxy = %p.masked(), "probes go through OUTBOUND_PROXY unless a target chooses");
        }
        let upkeep = Arc::new(Upkeep::new(
            store.clone(),
            config.paths.data_dir.clone(),
            config.retention,
            service::log_policy(&settings),
        ));
        let runs = Arc::new(RunContext {
            store: store.clone(),
            bus: bus.clone(),
            prober: prober.clone(),
            hosts: Arc::new(HostLimits::new(config.scheduler.host_concurrency)),
            upkeep: upkeep.clone(),
            data_dir: config.paths.data_dir.clone(),
            detect_concurrency: config.scheduler.detect_concurrency,
            stop_probing: life.scheduling.clone(),
            cut: life.runs.clone(),
        });
        let launcher = {
            let life = life.clone();
            Box::new(move |slot| {
                life.spawn(runner::run_target(runs.clone(), slot));
            })
        };
        let scheduler = Scheduler::new(
            store.clone(),
            config.scheduler.max_parallel_targets,
            launcher,
            life.scheduling.clone(),
        );
        let core = Core::new(
            config,
            store,
            settings,
            CoreParts {
                scheduler: scheduler.clone(),
                bus,
                prober,
                upkeep: upkeep.clone(),
                streams_closed: life.streams.clone(),
            },
        );
        core.proxy_keys
            .reload(&core.store, true)
            .await
            .context("cannot load the proxy keys")?;
        if let Some(writer) = core.take_usage_writer() {
            life.spawn(writer.run(life.usage.clone()));
        }
        // The proxy routes on an in-memory view, loaded before the first request.
        let proxy = proxy::Proxy::new(core.clone());
        let keep_fresh = proxy.clone().keep_view_fresh(life.upkeep.clone());
        proxy.refresh().await;
        life.spawn(keep_fresh);
        let socket = rpc::bind(
            core.clone(),
            proxy.clone(),
            &core.config.paths.socket_path,
            core.config.paths.socket_group.as_deref(),
            &life,
        )?;
        life.spawn(scheduler.run());
        life.spawn(upkeep.run(life.upkeep.clone()));
        life.spawn(health::recheck_writes(
            core.store.clone(),
            life.upkeep.clone(),
        ));
        let shortcut = proxy::shortcut(proxy.clone());
        let app = proxy::router(proxy).merge(http::router(core.clone()));
        let stopped = life.http.clone();
        let server = life.spawn(http::serve::serve(
            listener,
            app,
            Some(shortcut),
            admission,
            core.config.listen.threads,
            stopped,
        ));
        tracing::info!(address = %http_addr, data_dir = %core.config.paths.data_dir.display(), version = shared::VERSION, "apimond listening");
        let daemon = Daemon {
            http_addr,
            core,
            life,
            server,
            socket: Some(socket),
            _lock: lock,
        };
        // Under systemd with `WatchdogSec=`: NOTIFY_SOCKET and WATCHDOG_USEC are set.
        if let (Some(notify), Some(interval)) = (
            health::NotifySocket::from_env(),
            health::watchdog_interval_from_env(),
        ) {
            tracing::info!(
                interval_ms = interval.as_millis() as u64,
                "pinging the systemd watchdog while the scheduler and the store writer are alive"
            );
            daemon.start_watchdog(notify, interval);
        }
        Ok(daemon)
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Pings systemd's watchdog on `notify` every half `interval` while the scheduler
    /// and the store writer are alive (see [`health::watchdog`]).
    pub fn start_watchdog(&self, notify: health::NotifySocket, interval: Duration) {
        self.life.spawn(health::watchdog(
            notify,
            interval,
            self.core.store.clone(),
            self.core.scheduler.clone(),
            self.life.upkeep.clone(),
        ));
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The control socket's path.
    pub fn socket_path(&self) -> &std::path::Path {
        &self.core.config.paths.socket_path
    }

    /// Ends event streams and control-socket connections, stops scheduling, lets runs
    /// in flight end within the grace period (then cuts them short, recorded as
    /// interrupted), lets open requests finish, stops upkeep, waits for every task the
    /// daemon started, and checkpoints the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let life = self.life.clone();
        life.streams.cancel();
        if let Some(socket) = self.socket.take() {
            socket.close();
        }
        if !self.core.scheduler.drain(SHUTDOWN_GRACE).await {
            tracing::warn!("runs still in flight after the grace period; cutting them short");
            life.runs.cancel();
        }
        life.http.cancel();
        life.upkeep.cancel();
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.server).await {
            Ok(joined) => joined??,
            Err(_) => {
                tracing::warn!("requests still open after the grace period; closing them");
                self.server.abort();
            }
        }
        life.cancel_all();
        if tokio::time::timeout(SHUTDOWN_GRACE, life.wait_for_tasks())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = life.tasks(),
                "tasks still running after the grace period"
            );
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

impl Drop for Daemon {
    /// A daemon dropped without [`Daemon::shutdown`] (a test that ends early) still
    /// stops every task it started.
    fn drop(&mut self) {
        self.life.cancel_all();
        if let Some(socket) = self.socket.take() {
            socket.close();
        }
    }
}

/// Puts the backup `file` (from `apimonctl backup`) in place as the database of
/// `config`'s data directory, with no daemon running on it: refused while another
/// apimond holds the directory's lock. See [`store::backup::restore`].
pub fn restore(config: &Config, file: &Path) -> anyhow::Result<store::backup::Restored> {
    if !file.is_file() {
        bail!("{} is not a backup file", file.display());
    }
    create_data_dir(&config.paths.data_dir)?;
    let _lock = lock_data_dir(&config.paths.data_dir)?;
    let key = config.secret_key.as_ref().map(|k| k.expose());
    store::backup::restore(&config.paths.data_dir, file, key)
        .with_context(|| format!("cannot restore {}", file.display()))
}

/// SIGTERM and SIGINT, caught from the moment this is called: a signal that comes
/// before anyone awaits [`StopSignals::recv`] is kept, never the default action (an
/// abrupt exit), even one sent right after READY=1.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Starts the daemon, tells systemd it is ready, and runs until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut signals = StopSignals::install()?;
    let daemon = Daemon::start(config).await?;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let signal = signals.recv().await;
    tracing::info!(signal, "stopping");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    daemon.shutdown().await
}
