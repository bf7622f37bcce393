//! The hand-written parsers of the variables whose values are not a plain integer,
//! boolean or token: addresses, paths, names, lists, keys and the log format. Each owns
//! its variable's default and its message of what is allowed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use shared::Secret;
use shared::probe::{Protocol, ProxyUrl, RouteRule};

use super::sources::Raw;
use super::variables::{
    APIMON_SECRET_KEY, APIMON_SOCKET, APIMON_SOCKET_GROUP, APIMON_TIMEZONE, DATA_DIR, HOST,
    LOG_FORMAT, OUTBOUND_PROXY, PUBLIC_URL, ROUTE_RULES, TRUSTED_PROXIES,
};
use super::{ConfigError, LogFormat};

/// Systemd-provided directories, read only to choose defaults.
pub(super) struct SystemdDirs {
    state_directory: Option<PathBuf>,
    runtime_directory: Option<PathBuf>,
    xdg_runtime_dir: Option<PathBuf>,
}

impl SystemdDirs {
    pub(super) fn from_env(env: &HashMap<String, String>) -> SystemdDirs {
        let dir = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        SystemdDirs {
            state_directory: dir("STATE_DIRECTORY"),
            runtime_directory: dir("RUNTIME_DIRECTORY"),
            xdg_runtime_dir: dir("XDG_RUNTIME_DIR"),
        }
    }
}

/// systemd may pass several directories separated by ':'; the first is ours.
fn first_of(dirs: &Path) -> PathBuf {
    PathBuf::from(dirs.to_string_lossy().split(':').next().unwrap_or(""))
}

pub(super) fn host(raw: &Raw) -> Result<IpAddr, ConfigError> {
    match raw.get(&HOST) {
        None | Some("localhost") => Ok(IpAddr::from([127, 0, 0, 1])),
        Some(v) => v
            .parse()
            .map_err(|_| raw.invalid(&HOST, "an IP address such as 127.0.0.1, 0.0.0.0 or ::")),
    }
}

pub(super) fn data_dir(raw: &Raw, systemd: &SystemdDirs) -> Result<PathBuf, ConfigError> {
    if let Some(v) = raw.get(&DATA_DIR) {
        return Ok(PathBuf::from(v));
    }
    if let Some(p) = &systemd.state_directory {
        return Ok(first_of(p));
    }
    directories::ProjectDirs::from("", "", "apimon")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| {
            ConfigError::Other(
                "cannot find a home directory for the default DATA_DIR; set DATA_DIR".into(),
            )
        })
}

pub(super) fn socket_path(raw: &Raw, systemd: &SystemdDirs, data_dir: &Path) -> PathBuf {
    if let Some(v) = raw.get(&APIMON_SOCKET) {
        return PathBuf::from(v);
    }
    if let Some(dir) = &systemd.runtime_directory {
        return first_of(dir).join("apimond.sock");
    }
    if let Some(dir) = &systemd.xdg_runtime_dir {
        return dir.join("apimon").join("apimond.sock");
    }
    data_dir.join("apimond.sock")
}

pub(super) fn socket_group(raw: &Raw) -> Result<Option<String>, ConfigError> {
    match raw.get(&APIMON_SOCKET_GROUP) {
        Some(g)
            if !g
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            Err(raw.invalid(&APIMON_SOCKET_GROUP, "a group name"))
        }
        group => Ok(group.map(str::to_string)),
    }
}

pub(super) fn trusted_proxies(raw: &Raw) -> Result<Vec<IpNet>, ConfigError> {
    let Some(v) = raw.get(&TRUSTED_PROXIES) else {
        return Ok(Vec::new());
    };
    let mut nets = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let net = part
            .parse::<IpNet>()
            .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| ConfigError::Invalid {
                variable: TRUSTED_PROXIES.name,
                value: v.to_string(),
                allowed: format!(
                    "`{part}` is not a CIDR; expected a comma-separated list such as 10.0.0.0/8,::1/128"
                ),
            })?;
        nets.push(net.trunc());
    }
    Ok(nets)
}

pub(super) fn route_rules(raw: &Raw) -> Result<Vec<RouteRule>, ConfigError> {
    let Some(v) = raw.get(&ROUTE_RULES) else {
        return Ok(Vec::new());
    };
    let mut rules = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let rule = part.split_once('=').and_then(|(pattern, protocol)| {
            let protocol = Protocol::parse(protocol.trim())?;
            let pattern = pattern.trim();
            (!pattern.is_empty()).then(|| RouteRule {
                pattern: pattern.to_string(),
                protocol,
            })
        });
        rules.push(rule.ok_or_else(|| ConfigError::Invalid {
            variable: ROUTE_RULES.name,
            value: v.to_string(),
            allowed: format!(
                "`{part}` is not a rule; expected comma-separated glob=protocol pairs with protocol openai, responses, anthropic or gemini, e.g. *deepseek*=anthropic"
            ),
        })?);
    }
    Ok(rules)
}

/// The proxy probes go through unless a target chooses otherwise. The error never
/// repeats the value: it may hold the proxy's password.
pub(super) fn outbound_proxy(raw: &Raw) -> Result<Option<ProxyUrl>, ConfigError> {
    raw.get(&OUTBOUND_PROXY)
        .map(|v| ProxyUrl::parse(v).map_err(|e| raw.invalid(&OUTBOUND_PROXY, e)))
        .transpose()
}

pub(super) fn secret_key(raw: &Raw) -> Result<Option<Secret>, ConfigError> {
    let key = raw.get(&APIMON_SECRET_KEY).map(Secret::new);
    if let Some(k) = &key
        && crate::store::crypto::parse_key(k.expose()).is_none()
    {
        return Err(raw.invalid(
            &APIMON_SECRET_KEY,
            "64 hexadecimal characters (32 bytes), e.g. from `openssl rand -hex 32`",
        ));
    }
    Ok(key)
}

pub(super) fn log_format(raw: &Raw) -> Result<LogFormat, ConfigError> {
    match raw.get(&LOG_FORMAT) {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(_) => Err(raw.invalid(&LOG_FORMAT, "`text` or `json`")),
    }
}

/// `APIMON_TIMEZONE`: `UTC` (the default) or an IANA zone name from the built-in zone
/// database.
pub(super) fn time_zone(raw: &Raw) -> Result<jiff::tz::TimeZone, ConfigError> {
    match raw.get(&APIMON_TIMEZONE) {
        None => Ok(jiff::tz::TimeZone::UTC),
        Some(name) if name.eq_ignore_ascii_case("utc") => Ok(jiff::tz::TimeZone::UTC),
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|_| {
            raw.invalid(
                &APIMON_TIMEZONE,
                "`UTC` or an IANA time zone name such as `Europe/Berlin` or `Asia/Shanghai`",
            )
        }),
    }
}

/// `PUBLIC_URL` as the `Origin` a browser sends from it: `scheme://host[:port]`.
pub(super) fn public_origin(raw: &Raw) -> Result<Option<String>, ConfigError> {
    let Some(v) = raw.get(&PUBLIC_URL) else {
        return Ok(None);
    };
    let allowed = "an http or https URL such as https://monitor.example.com";
    let url = url::Url::parse(v).map_err(|_| raw.invalid(&PUBLIC_URL, allowed))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(raw.invalid(&PUBLIC_URL, allowed));
    }
    Ok(Some(url.origin().ascii_serialization()))
}
