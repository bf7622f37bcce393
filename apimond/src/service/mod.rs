//! The operations users ask for, each once, with validation and permissions. The
//! HTTP handlers and the control socket's methods are thin adapters over [`Core`].

pub mod admin;
pub mod auth;
pub mod backup;
pub mod budget_day;
pub mod limiter;
pub mod models;
pub mod overview;
pub mod proxy_access;
pub mod proxy_key_admin;
pub mod proxy_keys;
pub mod proxy_usage;
pub mod query;
pub mod relay_hiding;
pub mod resources;
pub mod run_reads;
pub mod runs;
pub mod settings;
pub mod stats;
pub mod target_fields;
pub mod targets;
pub mod transfer;
pub mod validate;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::events::Bus;
use crate::maintenance::{LogPolicy, Upkeep};
use crate::scheduler::Scheduler;
use crate::store::{Store, StoreError};

pub use auth::{Caller, Role};
pub use settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: Duration,
    },
    /// The request's body is of a type this operation does not take (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// apimond cannot do it now (the disk is full or read-only); it will again once
    /// the cause is gone (503).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            StoreError::NotFound => ServiceError::NotFound("not found".into()),
            StoreError::UnknownTarget(id) => {
                ServiceError::NotFound(format!("no target with id {id}"))
            }
            StoreError::Unwritable(why) => {
                ServiceError::Unavailable(format!("cannot save now: {why}"))
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ServiceError::Internal(other.to_string())
            }
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Everything the operations share. One per daemon.
pub struct Core {
    pub config: Config,
    pub store: Store,
    pub settings: RwLock<Arc<Settings>>,
    pub sessions: auth::Sessions,
    /// Failed tokens per client: the API's and the proxy's keys count together.
    pub token_failures: Arc<Mutex<limiter::Window>>,
    /// The proxy's keys, limits and usage recording.
    pub proxy_keys: proxy_keys::ProxyKeys,
    /// Taken once by the daemon, which runs it.
    usage_writer: Mutex<Option<proxy_keys::UsageWriter>>,
    /// Visitors' run requests per client.
    pub visitor_runs: Mutex<limiter::Window>,
    pub login_backoff: Mutex<limiter::Backoff>,
    /// Serialises settings changes so two panels cannot interleave.
    pub settings_write: tokio::sync::Mutex<()>,
    /// Bumped on every settings change; open event streams end then, so a revoked
    /// token or a visitor mode turned off stops them (clients reconnect and are
    /// checked again).
    pub settings_changed: tokio::sync::watch::Sender<u64>,
    pub scheduler: Arc<Scheduler>,
    pub bus: Bus,
    pub prober: shared::probe::Prober,
    pub upkeep: Arc<Upkeep>,
    /// Cancelled when apimond stops: open event streams (SSE, socket subscriptions)
    /// end then.
    pub streams_closed: CancellationToken,
    pub started: Instant,
    pub started_at: f64,
    /// Snapshots taken for `apimonctl backup`, waiting to be read.
    pub backups: backup::Backups,
}

/// The parts of the daemon the service layer drives, built and wired by the daemon.
pub struct CoreParts {
    pub scheduler: Arc<Scheduler>,
    pub bus: Bus,
    pub prober: shared::probe::Prober,
    pub upkeep: Arc<Upkeep>,
    pub streams_closed: CancellationToken,
}

impl Core {
    pub fn new(config: Config, store: Store, settings: Settings, parts: CoreParts) -> Arc<Core> {
        parts.upkeep.set_log_policy(log_policy(&settings));
        let token_failures = Arc::new(Mutex::new(limiter::Window::new(
            limiter::TOKEN_FAILURES_PER_WINDOW,
            limiter::TOKEN_WINDOW,
        )));
        let (proxy_keys, usage_writer) = proxy_keys::ProxyKeys::new(
            store.clone(),
            token_failures.clone(),
            budget_day::BudgetDay::new(config.time_zone.clone()),
        );
        proxy_keys.set_master(settings.proxy_master_token.as_ref().map(|t| t.expose()));
        let backups = backup::Backups::new(&config.paths.data_dir);
        Arc::new(Core {
            scheduler: parts.scheduler,
            bus: parts.bus,
            prober: parts.prober,
            upkeep: parts.upkeep,
            streams_closed: parts.streams_closed,
            visitor_runs: Mutex::new(limiter::Window::new(
                limiter::VISITOR_RUNS_PER_WINDOW,
                limiter::VISITOR_RUN_WINDOW,
            )),
            config,
            store,
            settings: RwLock::new(Arc::new(settings)),
            sessions: auth::Sessions::default(),
            token_failures,
            proxy_keys,
            usage_writer: Mutex::new(Some(usage_writer)),
            login_backoff: Mutex::new(limiter::Backoff::default()),
            settings_write: tokio::sync::Mutex::new(()),
            settings_changed: tokio::sync::watch::channel(0).0,
            started: Instant::now(),
            started_at: crate::store::now(),
            backups,
        })
    }

    /// The settings in force now; changes replace the whole snapshot.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .expect("settings lock poisoned")
            .clone()
    }

    /// The task that writes proxy usage rows, for the daemon to run; `None` after the
    /// first call.
    pub fn take_usage_writer(&self) -> Option<proxy_keys::UsageWriter> {
        self.usage_writer.lock().expect("poisoned").take()
    }

    pub fn running_targets(&self) -> Vec<i64> {
        self.scheduler.running()
    }
}

/// The run-log policy the settings ask for.
pub fn log_policy(s: &Settings) -> LogPolicy {
    LogPolicy {
        cleanup_enabled: s.log_cleanup_enabled,
        max_bytes: s.log_max_size_mb * 1024 * 1024,
    }
}
