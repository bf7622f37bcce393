//! Configuration: environment variables and an optional TOML file, validated into one
//! [`Config`] grouped by who uses it. The environment wins over the file. Every error
//! names the variable, the value (unless it is a secret) and what is allowed, in one line.
//! The variables, their kinds, bounds and defaults are listed once, in [`variables`].

mod parsers;
mod sources;
pub mod variables;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use shared::Secret;

use parsers::SystemdDirs;
use sources::Raw;
pub use sources::Source;
use variables::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub paths: Paths,
    pub auth: Auth,
    pub scheduler: Scheduling,
    pub retention: Retention,
    pub logging: Logging,
    pub panel: PanelDefaults,
    pub proxy: Proxying,
    /// `APIMON_SECRET_KEY`: the key for stored secrets, else the one in `DATA_DIR`.
    pub secret_key: Option<Secret>,
    /// `APIMON_TIMEZONE`: where budget days (proxy keys' daily token budgets) begin.
    pub time_zone: jiff::tz::TimeZone,
    /// Which variables were given (by main name), and where.
    pub sources: BTreeMap<&'static str, Source>,
    /// The alias a variable was given under, where it was not its main name.
    pub given_names: BTreeMap<&'static str, &'static str>,
}

/// Where the HTTP server listens.
#[derive(Debug, Clone)]
pub struct Listen {
    pub host: IpAddr,
    pub port: u16,
    /// `PUBLIC_URL`: the origin of the panel as users reach it, when set.
    pub public_origin: Option<String>,
    pub limits: HttpLimits,
    /// `HTTP_THREADS`, 0 (two per CPU) resolved.
    pub threads: usize,
}

/// What one HTTP client may hold of the server: time to send a request, to read a
/// response, and connections.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub header_timeout: std::time::Duration,
    pub body_timeout: std::time::Duration,
    pub stall_timeout: std::time::Duration,
    pub max_connections: usize,
    pub max_per_client: usize,
}

/// Where the daemon keeps its data and its control socket.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub socket_path: PathBuf,
    pub socket_group: Option<String>,
}

/// Who may call: the tokens and password given by configuration (else stored or
/// generated, see `service::settings`), and the proxies whose `X-Forwarded-For` is
/// believed.
#[derive(Debug, Clone)]
pub struct Auth {
    pub admin_token: Option<Secret>,
    pub visitor_token: Option<Secret>,
    pub admin_password: Option<Secret>,
    pub proxy_master_token: Option<Secret>,
    pub trusted_proxies: Vec<IpNet>,
}

/// How runs are scheduled and probed.
#[derive(Debug, Clone)]
pub struct Scheduling {
    /// Probes in flight within one run.
    pub detect_concurrency: usize,
    /// Runs in flight at once.
    pub max_parallel_targets: usize,
    /// Probes in flight to one upstream host, across all runs.
    pub host_concurrency: usize,
    /// Route rules tried before the built-in table (`ROUTE_RULES`).
    pub route_rules: Vec<shared::probe::RouteRule>,
    /// The proxy probes go through unless a target chooses (`OUTBOUND_PROXY`).
    pub outbound_proxy: Option<shared::probe::ProxyUrl>,
}

/// The proxy's limits (`PROXY_*` variables).
#[derive(Debug, Clone, Copy)]
pub struct Proxying {
    pub first_byte_timeout: std::time::Duration,
    pub idle_timeout: std::time::Duration,
    pub breaker_cooldown: std::time::Duration,
}

/// How many days each kind of probe data is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub raw_days: u32,
    pub hourly_days: u32,
    pub daily_days: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Logging {
    pub format: LogFormat,
}

/// Settings the admin panel can change, when configuration pins them; `None` leaves
/// them to the panel (stored value, else the default in the variables table).
#[derive(Debug, Clone, Copy)]
pub struct PanelDefaults {
    pub default_interval_min: Option<u32>,
    pub log_cleanup_enabled: Option<bool>,
    pub log_max_size_mb: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("invalid {variable}={value}: {allowed}")]
    Invalid {
        variable: &'static str,
        value: String,
        allowed: String,
    },
    #[error("cannot read config file {path} ({how}): {reason}")]
    File {
        path: String,
        how: &'static str,
        reason: String,
    },
    #[error("{0}")]
    Other(String),
}

/// HTTP threads when `HTTP_THREADS` is 0: two per CPU. Each thread is one event
/// loop over its connections, so a thread the kernel preempts holds up every request
/// on it until it runs again; on a busy machine (relays, clients or other services on
/// the same cores) a woken process preempts the thread with the most CPU time, and
/// with one thread per CPU that is ours. Two per CPU halves each thread's share and
/// what one preemption holds up. In the proxy bench (2 CPUs shared with the load
/// generator and the relay) it served 5–13% more requests per second than one thread
/// per CPU, at 32 to 256 connections. At most 256, as for a set count.
pub fn default_http_threads(cpus: usize) -> usize {
    (cpus.max(1) * 2).min(256)
}

impl Config {
    /// Loads from the process environment and the file named by `config_path` (the
    /// `--config` flag) or `APIMON_CONFIG`.
    pub fn load(config_path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::from_sources(&env, config_path)
    }

    /// Loads from an explicit environment map: what tests use to start daemons without
    /// touching the process environment.
    pub fn from_sources(
        env: &HashMap<String, String>,
        config_path: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let raw = Raw::gather(env, config_path)?;
        let systemd = SystemdDirs::from_env(env);
        // Read in the table's order, so that with several bad values the first one in
        // `VARIABLES` is the one reported.
        let port = raw.int(&PORT)? as u16;
        let host = parsers::host(&raw)?;
        let data_dir = parsers::data_dir(&raw, &systemd)?;
        let paths = Paths {
            socket_path: parsers::socket_path(&raw, &systemd, &data_dir),
            socket_group: parsers::socket_group(&raw)?,
            data_dir,
        };
        let admin_token = raw.token(&API_MONITOR_TOKEN)?;
        let visitor_token = raw.token(&API_MONITOR_TOKEN_VISITOR)?;
        let admin_password = raw.token(&ADMIN_PANEL_PASSWORD)?;
        let proxy_master_token = raw.token(&PROXY_MASTER_TOKEN)?;
        if let (Some(a), Some(v)) = (&admin_token, &visitor_token)
            && a == v
        {
            return Err(ConfigError::Other(format!(
                "{} must differ from {}",
                raw.name_of(&API_MONITOR_TOKEN_VISITOR),
                raw.name_of(&API_MONITOR_TOKEN)
            )));
        }
        let panel = PanelDefaults {
            default_interval_min: raw.opt_int(&DEFAULT_INTERVAL_MIN)?.map(|v| v as u32),
            log_cleanup_enabled: raw.opt_bool(&LOG_CLEANUP_ENABLED)?,
            log_max_size_mb: raw.opt_int(&LOG_MAX_SIZE_MB)?.map(|v| v as u64),
        };
        let detect_concurrency = raw.int(&MONITOR_DETECT_CONCURRENCY)? as usize;
        let max_parallel_targets = raw.int(&MONITOR_MAX_PARALLEL_TARGETS)? as usize;
        let host_concurrency = raw.int(&MONITOR_HOST_CONCURRENCY)? as usize;
        let retention = Retention {
            raw_days: raw.int(&RETENTION_RAW_DAYS)? as u32,
            hourly_days: raw.int(&RETENTION_HOURLY_DAYS)? as u32,
            daily_days: raw.int(&RETENTION_DAILY_DAYS)? as u32,
        };
        let auth = Auth {
            admin_token,
            visitor_token,
            admin_password,
            proxy_master_token,
            trusted_proxies: parsers::trusted_proxies(&raw)?,
        };
        let scheduler = Scheduling {
            detect_concurrency,
            max_parallel_targets,
            host_concurrency,
            route_rules: parsers::route_rules(&raw)?,
            outbound_proxy: parsers::outbound_proxy(&raw)?,
        };
        let secret_key = parsers::secret_key(&raw)?;
        let logging = Logging {
            format: parsers::log_format(&raw)?,
        };
        let time_zone = parsers::time_zone(&raw)?;
        let secs = |v: &Variable| raw.int(v).map(|n| std::time::Duration::from_secs(n as u64));
        let proxy = Proxying {
            first_byte_timeout: secs(&PROXY_FIRST_BYTE_TIMEOUT_S)?,
            idle_timeout: secs(&PROXY_IDLE_TIMEOUT_S)?,
            breaker_cooldown: secs(&PROXY_BREAKER_COOLDOWN_S)?,
        };
        let listen = Listen {
            port,
            host,
            public_origin: parsers::public_origin(&raw)?,
            limits: HttpLimits {
                header_timeout: secs(&HTTP_HEADER_TIMEOUT_S)?,
                body_timeout: secs(&HTTP_BODY_TIMEOUT_S)?,
                stall_timeout: secs(&HTTP_STALL_TIMEOUT_S)?,
                max_connections: raw.int(&HTTP_MAX_CONNECTIONS)? as usize,
                max_per_client: raw.int(&HTTP_MAX_CONNECTIONS_PER_CLIENT)? as usize,
            },
            threads: match raw.int(&HTTP_THREADS)? {
                0 => default_http_threads(
                    std::thread::available_parallelism().map_or(1, |n| n.get()),
                ),
                n => n as usize,
            },
        };
        Ok(Config {
            listen,
            paths,
            auth,
            scheduler,
            retention,
            logging,
            panel,
            proxy,
            secret_key,
            time_zone,
            sources: raw.sources,
            given_names: raw.given_names,
        })
    }

    /// Where a variable (by main name) was given, if it was.
    pub fn source_of(&self, variable: &str) -> Option<Source> {
        self.sources.get(variable).copied()
    }

    /// The name a variable was given under (an alias such as the Go program's
    /// `API_MONITOR_TOKEN_ADMIN`), else its main name: what messages should name.
    pub fn name_of(&self, variable: &variables::Variable) -> &'static str {
        self.given_names
            .get(variable.name)
            .copied()
            .unwrap_or(variable.name)
    }
}
