//! Configuration: environment variables and an optional TOML file, validated into one
//! [`Config`]. The environment wins over the file. Every error names the variable, the
//! value (unless it is a secret) and what is allowed, in one line.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use shared::Secret;

/// Where a value came from; values from the environment or the file are authoritative
/// and shown read-only in the admin panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Env,
    File,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::Env => "the environment",
            Source::File => "the config file",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub socket_path: PathBuf,
    pub socket_group: Option<String>,
    pub admin_token: Option<Secret>,
    pub visitor_token: Option<Secret>,
    pub admin_password: Option<Secret>,
    pub proxy_master_token: Option<Secret>,
    pub default_interval_min: Option<u32>,
    pub log_cleanup_enabled: Option<bool>,
    pub log_max_size_mb: Option<u64>,
    pub detect_concurrency: usize,
    pub max_parallel_targets: usize,
    /// Probes in flight to one upstream host, across all runs.
    pub host_concurrency: usize,
    pub retention_raw_days: u32,
    pub retention_hourly_days: u32,
    pub retention_daily_days: u32,
    pub trusted_proxies: Vec<IpNet>,
    /// Route rules tried before the built-in table (`ROUTE_RULES`).
    pub route_rules: Vec<shared::probe::RouteRule>,
    pub secret_key: Option<Secret>,
    pub log_format: LogFormat,
    /// Which variables were given, and where.
    pub sources: BTreeMap<&'static str, Source>,
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

/// Every variable apimond reads, with whether its value is secret (never echoed).
pub const VARIABLES: &[(&str, bool)] = &[
    ("PORT", false),
    ("HOST", false),
    ("DATA_DIR", false),
    ("APIMON_SOCKET", false),
    ("APIMON_SOCKET_GROUP", false),
    ("API_MONITOR_TOKEN", true),
    ("API_MONITOR_TOKEN_VISITOR", true),
    ("ADMIN_PANEL_PASSWORD", true),
    ("PROXY_MASTER_TOKEN", true),
    ("DEFAULT_INTERVAL_MIN", false),
    ("LOG_CLEANUP_ENABLED", false),
    ("LOG_MAX_SIZE_MB", false),
    ("MONITOR_DETECT_CONCURRENCY", false),
    ("MONITOR_MAX_PARALLEL_TARGETS", false),
    ("MONITOR_HOST_CONCURRENCY", false),
    ("RETENTION_RAW_DAYS", false),
    ("RETENTION_HOURLY_DAYS", false),
    ("RETENTION_DAILY_DAYS", false),
    ("TRUSTED_PROXIES", false),
    ("ROUTE_RULES", false),
    ("APIMON_SECRET_KEY", true),
    ("LOG_FORMAT", false),
];

/// Systemd-provided directories, read only to choose defaults.
const SYSTEMD_VARIABLES: &[&str] = &["STATE_DIRECTORY", "RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR"];

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
        let file = match (
            config_path,
            env.get("APIMON_CONFIG").filter(|v| !v.is_empty()),
        ) {
            (Some(p), _) => Some((p.to_path_buf(), "--config")),
            (None, Some(p)) => Some((PathBuf::from(p), "APIMON_CONFIG")),
            (None, None) => None,
        };
        let file_values = match file {
            Some((path, how)) => read_file(&path, how)?,
            None => HashMap::new(),
        };
        let mut raw = Raw {
            values: HashMap::new(),
            sources: BTreeMap::new(),
        };
        for (name, _) in VARIABLES {
            let from_env = env.get(*name).filter(|v| !v.is_empty());
            if let Some(v) = from_env {
                raw.values.insert(name, v.clone());
                raw.sources.insert(name, Source::Env);
            } else if let Some(v) = file_values.get(*name).filter(|v| !v.is_empty()) {
                raw.values.insert(name, v.clone());
                raw.sources.insert(name, Source::File);
            }
        }
        let sysenv = |k: &str| {
            debug_assert!(SYSTEMD_VARIABLES.contains(&k));
            env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from)
        };

        let port = raw.parse_int("PORT", 0, 65535, 8081)? as u16;
        let host = match raw.get("HOST") {
            None => IpAddr::from([127, 0, 0, 1]),
            Some("localhost") => IpAddr::from([127, 0, 0, 1]),
            Some(v) => v.parse().map_err(|_| {
                raw.invalid("HOST", "an IP address such as 127.0.0.1, 0.0.0.0 or ::")
            })?,
        };
        let data_dir = match raw.get("DATA_DIR") {
            Some(v) => PathBuf::from(v),
            None => match sysenv("STATE_DIRECTORY") {
                // systemd may pass several directories separated by ':'; the first is ours.
                Some(p) => PathBuf::from(p.to_string_lossy().split(':').next().unwrap_or("")),
                None => directories::ProjectDirs::from("", "", "apimon")
                    .map(|d| d.data_dir().to_path_buf())
                    .ok_or_else(|| {
                        ConfigError::Other(
                            "cannot find a home directory for the default DATA_DIR; set DATA_DIR"
                                .into(),
                        )
                    })?,
            },
        };
        let socket_path = match raw.get("APIMON_SOCKET") {
            Some(v) => PathBuf::from(v),
            None => default_socket_path(
                sysenv("RUNTIME_DIRECTORY"),
                sysenv("XDG_RUNTIME_DIR"),
                &data_dir,
            ),
        };
        let socket_group = raw.get("APIMON_SOCKET_GROUP").map(str::to_string);
        if let Some(g) = &socket_group
            && !g
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(raw.invalid("APIMON_SOCKET_GROUP", "a group name"));
        }

        let admin_token = raw.token("API_MONITOR_TOKEN", 8)?;
        let visitor_token = raw.token("API_MONITOR_TOKEN_VISITOR", 8)?;
        let admin_password = raw.token("ADMIN_PANEL_PASSWORD", 8)?;
        let proxy_master_token = raw.token("PROXY_MASTER_TOKEN", 8)?;
        if let (Some(a), Some(v)) = (&admin_token, &visitor_token)
            && a == v
        {
            return Err(ConfigError::Other(
                "API_MONITOR_TOKEN_VISITOR must differ from API_MONITOR_TOKEN".into(),
            ));
        }

        let default_interval_min = raw
            .opt_int("DEFAULT_INTERVAL_MIN", 1, 1440)?
            .map(|v| v as u32);
        let log_cleanup_enabled = raw.opt_bool("LOG_CLEANUP_ENABLED")?;
        let log_max_size_mb = raw
            .opt_int("LOG_MAX_SIZE_MB", 0, 102_400)?
            .map(|v| v as u64);
        let detect_concurrency = raw.parse_int("MONITOR_DETECT_CONCURRENCY", 1, 256, 3)? as usize;
        let max_parallel_targets =
            raw.parse_int("MONITOR_MAX_PARALLEL_TARGETS", 1, 256, 2)? as usize;
        let host_concurrency = raw.parse_int("MONITOR_HOST_CONCURRENCY", 1, 4096, 16)? as usize;
        let retention_raw_days = raw.parse_int("RETENTION_RAW_DAYS", 1, 3650, 7)? as u32;
        let retention_hourly_days = raw.parse_int("RETENTION_HOURLY_DAYS", 1, 3650, 30)? as u32;
        let retention_daily_days = raw.parse_int("RETENTION_DAILY_DAYS", 1, 36_500, 400)? as u32;

        let mut trusted_proxies = Vec::new();
        if let Some(v) = raw.get("TRUSTED_PROXIES") {
            for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let net = part
                    .parse::<IpNet>()
                    .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| ConfigError::Invalid {
                        variable: "TRUSTED_PROXIES",
                        value: v.to_string(),
                        allowed: format!(
                            "`{part}` is not a CIDR; expected a comma-separated list such as 10.0.0.0/8,::1/128"
                        ),
                    })?;
                trusted_proxies.push(net.trunc());
            }
        }

        let mut route_rules = Vec::new();
        if let Some(v) = raw.get("ROUTE_RULES") {
            for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let rule = part.split_once('=').and_then(|(pattern, protocol)| {
                    let protocol = shared::probe::Protocol::parse(protocol.trim())?;
                    let pattern = pattern.trim();
                    (!pattern.is_empty()).then(|| shared::probe::RouteRule {
                        pattern: pattern.to_string(),
                        protocol,
                    })
                });
                route_rules.push(rule.ok_or_else(|| ConfigError::Invalid {
                    variable: "ROUTE_RULES",
                    value: v.to_string(),
                    allowed: format!(
                        "`{part}` is not a rule; expected comma-separated glob=protocol pairs with protocol openai, responses, anthropic or gemini, e.g. *deepseek*=anthropic"
                    ),
                })?);
            }
        }

        let secret_key = raw.get("APIMON_SECRET_KEY").map(Secret::new);
        if let Some(k) = &secret_key
            && crate::store::crypto::parse_key(k.expose()).is_none()
        {
            return Err(raw.invalid(
                "APIMON_SECRET_KEY",
                "64 hexadecimal characters (32 bytes), e.g. from `openssl rand -hex 32`",
            ));
        }

        let log_format = match raw.get("LOG_FORMAT") {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(raw.invalid("LOG_FORMAT", "`text` or `json`")),
        };

        Ok(Config {
            host,
            port,
            data_dir,
            socket_path,
            socket_group,
            admin_token,
            visitor_token,
            admin_password,
            proxy_master_token,
            default_interval_min,
            log_cleanup_enabled,
            log_max_size_mb,
            detect_concurrency,
            max_parallel_targets,
            host_concurrency,
            retention_raw_days,
            retention_hourly_days,
            retention_daily_days,
            trusted_proxies,
            route_rules,
            secret_key,
            log_format,
            sources: raw.sources,
        })
    }

    /// Where a variable was given, if it was.
    pub fn source_of(&self, variable: &str) -> Option<Source> {
        self.sources.get(variable).copied()
    }
}

fn default_socket_path(
    runtime_directory: Option<PathBuf>,
    xdg_runtime_dir: Option<PathBuf>,
    data_dir: &Path,
) -> PathBuf {
    if let Some(dir) = runtime_directory {
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        return PathBuf::from(first).join("apimond.sock");
    }
    if let Some(dir) = xdg_runtime_dir {
        return dir.join("apimon").join("apimond.sock");
    }
    data_dir.join("apimond.sock")
}

/// Reads the TOML file into variable name → string value. Keys are the variable
/// names, in upper or lower case; an unknown key is an error (a typo must not be
/// silently ignored).
fn read_file(path: &Path, how: &'static str) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.display().to_string(),
        how,
        reason: e.to_string(),
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.display().to_string(),
        how,
        reason: format!("not valid TOML: {}", e.message()),
    })?;
    let mut out = HashMap::new();
    for (key, value) in table {
        let name = key.to_ascii_uppercase();
        if !VARIABLES.iter().any(|(v, _)| *v == name) {
            return Err(ConfigError::File {
                path: path.display().to_string(),
                how,
                reason: format!(
                    "unknown setting `{key}`; known settings: {}",
                    VARIABLES
                        .iter()
                        .map(|(v, _)| v.to_ascii_lowercase())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(ConfigError::File {
                    path: path.display().to_string(),
                    how,
                    reason: format!("`{key}` must be a string, number or boolean, not {other}"),
                });
            }
        };
        out.insert(name, text);
    }
    Ok(out)
}

struct Raw {
    values: HashMap<&'static str, String>,
    sources: BTreeMap<&'static str, Source>,
}

impl Raw {
    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|s| s.trim())
    }

    fn invalid(&self, variable: &'static str, allowed: impl Into<String>) -> ConfigError {
        let secret = VARIABLES
            .iter()
            .any(|(name, secret)| *name == variable && *secret);
        let value = if secret {
            "<hidden>".to_string()
        } else {
            self.values.get(variable).cloned().unwrap_or_default()
        };
        ConfigError::Invalid {
            variable,
            value,
            allowed: allowed.into(),
        }
    }

    fn opt_int(&self, name: &'static str, min: i64, max: i64) -> Result<Option<i64>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(self.invalid(name, format!("an integer from {min} to {max}"))),
            },
        }
    }

    fn parse_int(
        &self,
        name: &'static str,
        min: i64,
        max: i64,
        default: i64,
    ) -> Result<i64, ConfigError> {
        Ok(self.opt_int(name, min, max)?.unwrap_or(default))
    }

    fn opt_bool(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("true" | "1" | "yes" | "on") => Ok(Some(true)),
            Some("false" | "0" | "no" | "off") => Ok(Some(false)),
            Some(_) => Err(self.invalid(name, "true or false (also 1/0, yes/no, on/off)")),
        }
    }

    fn token(&self, name: &'static str, min_len: usize) -> Result<Option<Secret>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => {
                let len = v.chars().count();
                if len < min_len
                    || len > 256
                    || v.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    Err(self.invalid(name, format!("{min_len} to 256 characters without spaces")))
                } else {
                    Ok(Some(Secret::new(v)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m.entry("DATA_DIR".into())
            .or_insert_with(|| "/tmp/apimon-test".into());
        m
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        Config::from_sources(&env(pairs), None)
            .expect_err("must be rejected")
            .to_string()
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::from_sources(&env(&[]), None).unwrap();
        assert_eq!(c.port, 8081);
        assert_eq!(c.host, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(c.detect_concurrency, 3);
        assert_eq!(c.max_parallel_targets, 2);
        assert_eq!(c.default_interval_min, None);
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(
            c.socket_path,
            PathBuf::from("/tmp/apimon-test/apimond.sock")
        );
        assert!(!c.sources.contains_key("PORT"));
    }

    #[test]
    fn each_bad_value_names_the_variable_the_value_and_what_is_allowed() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("PORT", "abc")],
                "invalid PORT=abc: an integer from 0 to 65535",
            ),
            (
                &[("PORT", "70000")],
                "invalid PORT=70000: an integer from 0 to 65535",
            ),
            (
                &[("DEFAULT_INTERVAL_MIN", "0")],
                "invalid DEFAULT_INTERVAL_MIN=0: an integer from 1 to 1440",
            ),
            (
                &[("HOST", "nowhere")],
                "invalid HOST=nowhere: an IP address",
            ),
            (
                &[("LOG_CLEANUP_ENABLED", "maybe")],
                "invalid LOG_CLEANUP_ENABLED=maybe: true or false",
            ),
            (
                &[("LOG_MAX_SIZE_MB", "-1")],
                "invalid LOG_MAX_SIZE_MB=-1: an integer from 0 to 102400",
            ),
            (
                &[("MONITOR_DETECT_CONCURRENCY", "0")],
                "invalid MONITOR_DETECT_CONCURRENCY=0: an integer from 1 to 256",
            ),
            (
                &[("MONITOR_MAX_PARALLEL_TARGETS", "x")],
                "invalid MONITOR_MAX_PARALLEL_TARGETS=x: an integer from 1 to 256",
            ),
            (
                &[("TRUSTED_PROXIES", "10.0.0.0/8,300.1.1.1/8")],
                "invalid TRUSTED_PROXIES=10.0.0.0/8,300.1.1.1/8: `300.1.1.1/8` is not a CIDR",
            ),
            (
                &[("LOG_FORMAT", "xml")],
                "invalid LOG_FORMAT=xml: `text` or `json`",
            ),
            (
                &[("API_MONITOR_TOKEN", "short")],
                "invalid API_MONITOR_TOKEN=<hidden>: 8 to 256 characters",
            ),
            (
                &[("APIMON_SECRET_KEY", "not-hex-and-secret")],
                "invalid APIMON_SECRET_KEY=<hidden>: 64 hexadecimal characters",
            ),
        ];
        for (pairs, want) in cases {
            let got = err(pairs);
            assert!(
                got.starts_with(want),
                "{pairs:?}: got `{got}`, want `{want}`"
            );
            assert!(!got.contains('\n'), "one line: {got}");
        }
    }

    #[test]
    fn secrets_are_never_echoed_in_errors() {
        let got = err(&[("API_MONITOR_TOKEN", "has space in it")]);
        assert!(!got.contains("has space"), "{got}");
    }

    #[test]
    fn route_rules_come_before_the_built_in_table() {
        let c = Config::from_sources(
            &env(&[("ROUTE_RULES", "*deepseek*=anthropic, claude-openai*=openai")]),
            None,
        )
        .unwrap();
        assert_eq!(c.route_rules.len(), 2);
        assert_eq!(c.route_rules[0].pattern, "*deepseek*");
        assert_eq!(c.route_rules[1].protocol, shared::probe::Protocol::Openai);
    }

    #[test]
    fn trusted_proxies_accept_cidrs_and_bare_addresses() {
        let c = Config::from_sources(
            &env(&[("TRUSTED_PROXIES", "10.1.2.3/8, ::1, 192.168.0.1")]),
            None,
        )
        .unwrap();
        let shown: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/8", "::1/128", "192.168.0.1/32"]);
    }

    #[test]
    fn the_environment_wins_over_the_file_and_sources_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("apimon.toml");
        std::fs::write(
            &file,
            "port = 9000\ndefault_interval_min = 15\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
        )
        .unwrap();
        let c = Config::from_sources(&env(&[("PORT", "9100")]), Some(&file)).unwrap();
        assert_eq!(c.port, 9100);
        assert_eq!(c.source_of("PORT"), Some(Source::Env));
        assert_eq!(c.default_interval_min, Some(15));
        assert_eq!(c.source_of("DEFAULT_INTERVAL_MIN"), Some(Source::File));
        assert_eq!(c.trusted_proxies.len(), 1);
    }

    #[test]
    fn the_file_is_found_through_apimon_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("apimon.toml");
        std::fs::write(&file, "LOG_MAX_SIZE_MB = 42\n").unwrap();
        let c =
            Config::from_sources(&env(&[("APIMON_CONFIG", file.to_str().unwrap())]), None).unwrap();
        assert_eq!(c.log_max_size_mb, Some(42));
    }

    #[test]
    fn an_unreadable_or_wrong_file_stops_the_start() {
        let e = Config::from_sources(&env(&[]), Some(Path::new("/nonexistent/apimon.toml")))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot read config file /nonexistent/apimon.toml (--config):"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("apimon.toml");
        std::fs::write(&file, "prot = 1\n").unwrap();
        let e = Config::from_sources(&env(&[]), Some(&file))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown setting `prot`"), "{e}");
        std::fs::write(&file, "port = = 1\n").unwrap();
        let e = Config::from_sources(&env(&[]), Some(&file))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid TOML"), "{e}");
        std::fs::write(&file, "port = \"abc\"\n").unwrap();
        let e = Config::from_sources(&env(&[]), Some(&file))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid PORT=abc"), "{e}");
    }

    #[test]
    fn systemd_directories_choose_the_defaults() {
        let mut e = HashMap::new();
        e.insert("STATE_DIRECTORY".to_string(), "/var/lib/apimon".to_string());
        e.insert("RUNTIME_DIRECTORY".to_string(), "/run/apimon".to_string());
        let c = Config::from_sources(&e, None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/apimon"));
        assert_eq!(c.socket_path, PathBuf::from("/run/apimon/apimond.sock"));
        let mut e = HashMap::new();
        e.insert("DATA_DIR".to_string(), "data".to_string());
        e.insert("XDG_RUNTIME_DIR".to_string(), "/run/user/1000".to_string());
        let c = Config::from_sources(&e, None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(
            c.socket_path,
            PathBuf::from("/run/user/1000/apimon/apimond.sock")
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c =
            Config::from_sources(&env(&[("PORT", ""), ("API_MONITOR_TOKEN", "")]), None).unwrap();
        assert_eq!(c.port, 8081);
        assert!(c.admin_token.is_none());
    }

    #[test]
    fn debug_output_hides_tokens() {
        let c = Config::from_sources(
            &env(&[("API_MONITOR_TOKEN", "admin-token-very-secret")]),
            None,
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}
