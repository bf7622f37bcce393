//! Settings the admin panel can change. A value given by the environment or the config
//! file is authoritative: shown read-only, a change refused with 409 naming the
//! variable. Otherwise the stored value wins, else the default. Changes apply at once.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use shared::Secret;

use super::validate::Body;
use super::{Caller, Core, ServiceError, ServiceResult};
use crate::config::Config;
use crate::config::variables::{self, Kind, TokenDefault, TokenRule, Variable};
use crate::store::settings::SettingChange;

pub const CREDENTIALS_FILE: &str = "credentials.toml";

#[derive(Debug, Clone)]
pub struct Settings {
    pub admin_token: Secret,
    pub visitor_token: Option<Secret>,
    pub admin_password: Secret,
    pub proxy_master_token: Option<Secret>,
    pub visitor_mode_enabled: bool,
    pub visitor_show_base_url: bool,
    pub log_cleanup_enabled: bool,
    pub log_max_size_mb: u64,
    pub default_interval_min: u32,
}

/// One setting of the admin panel: its API name, the variable that can pin it (whose
/// kind, bounds and default it takes from the variables table), else its own kind.
struct Field {
    name: &'static str,
    variable: Option<&'static Variable>,
    kind: Kind,
}

impl Field {
    /// A setting that configuration can pin: everything comes from its variable.
    const fn pinned_by(variable: &'static Variable) -> Field {
        let Some(name) = variable.panel_field else {
            panic!("a variable without a panel field");
        };
        Field {
            name,
            variable: Some(variable),
            kind: variable.kind,
        }
    }

    /// A setting only the panel changes.
    const fn panel_only(name: &'static str, kind: Kind) -> Field {
        Field {
            name,
            variable: None,
            kind,
        }
    }

    fn is_secret(&self) -> bool {
        matches!(self.kind, Kind::Token(_))
    }

    /// A secret that is generated when nothing sets it, so it can never be cleared.
    fn is_required_secret(&self) -> bool {
        matches!(
            self.kind,
            Kind::Token(TokenRule {
                default: TokenDefault::Generated { .. },
                ..
            })
        )
    }

    /// The value when neither configuration nor the store has one, in stored form
    /// (empty for a token: generated or unset).
    fn default_value(&self) -> String {
        match self.kind {
            Kind::Int { default, .. } => default.to_string(),
            Kind::Bool { default } => default.to_string(),
            Kind::Token(_) | Kind::Special => String::new(),
        }
    }
}

/// Every changeable setting, in the order they are checked.
const FIELDS: &[Field] = &[
    Field::pinned_by(&variables::API_MONITOR_TOKEN),
    Field::pinned_by(&variables::API_MONITOR_TOKEN_VISITOR),
    Field::pinned_by(&variables::ADMIN_PANEL_PASSWORD),
    Field::pinned_by(&variables::PROXY_MASTER_TOKEN),
    Field::panel_only("visitor_mode_enabled", Kind::Bool { default: false }),
    Field::panel_only("visitor_show_base_url", Kind::Bool { default: false }),
    Field::pinned_by(&variables::LOG_CLEANUP_ENABLED),
    Field::pinned_by(&variables::LOG_MAX_SIZE_MB),
    Field::pinned_by(&variables::DEFAULT_INTERVAL_MIN),
];

fn generate_secret(bytes: usize) -> Secret {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).expect("the operating system's random source failed");
    Secret::new(hex::encode(raw))
}

impl Settings {
    /// The current value of a field in its stored (string) form.
    fn get(&self, name: &str) -> String {
        let opt = |s: &Option<Secret>| {
            s.as_ref()
                .map(|s| s.expose().to_string())
                .unwrap_or_default()
        };
        match name {
            "api_monitor_token_admin" => self.admin_token.expose().to_string(),
            "api_monitor_token_visitor" => opt(&self.visitor_token),
            "admin_panel_password" => self.admin_password.expose().to_string(),
            "proxy_master_token" => opt(&self.proxy_master_token),
            "visitor_mode_enabled" => self.visitor_mode_enabled.to_string(),
            "visitor_show_base_url" => self.visitor_show_base_url.to_string(),
            "log_cleanup_enabled" => self.log_cleanup_enabled.to_string(),
            "log_max_size_mb" => self.log_max_size_mb.to_string(),
            "default_interval_min" => self.default_interval_min.to_string(),
            _ => unreachable!("unknown setting {name}"),
        }
    }

    fn set(&mut self, name: &str, value: &str) {
        let opt = |v: &str| (!v.is_empty()).then(|| Secret::new(v));
        match name {
            "api_monitor_token_admin" => self.admin_token = Secret::new(value),
            "api_monitor_token_visitor" => self.visitor_token = opt(value),
            "admin_panel_password" => self.admin_password = Secret::new(value),
            "proxy_master_token" => self.proxy_master_token = opt(value),
            "visitor_mode_enabled" => self.visitor_mode_enabled = value == "true",
            "visitor_show_base_url" => self.visitor_show_base_url = value == "true",
            "log_cleanup_enabled" => self.log_cleanup_enabled = value == "true",
            // A stored number that does not parse leaves the value (the default, at start).
            "log_max_size_mb" => {
                self.log_max_size_mb = value.parse().unwrap_or(self.log_max_size_mb)
            }
            "default_interval_min" => {
                self.default_interval_min = value.parse().unwrap_or(self.default_interval_min)
            }
            _ => unreachable!("unknown setting {name}"),
        }
    }

    /// Resolves the settings at start: configuration, else stored, else default; the
    /// admin token and panel password are generated when none of those has one.
    /// Returns the settings and the changes to store (generated secrets).
    pub fn resolve(
        config: &Config,
        stored: &HashMap<String, String>,
    ) -> (Settings, Vec<SettingChange>) {
        // Blank here; every field gets its default from the table first.
        let mut s = Settings {
            admin_token: Secret::default(),
            visitor_token: None,
            admin_password: Secret::default(),
            proxy_master_token: None,
            visitor_mode_enabled: false,
            visitor_show_base_url: false,
            log_cleanup_enabled: false,
            log_max_size_mb: 0,
            default_interval_min: 0,
        };
        let mut generated = Vec::new();
        for f in FIELDS {
            s.set(f.name, &f.default_value());
            if let Some(v) = stored.get(f.name) {
                s.set(f.name, v);
            }
            if let Some(v) = configured(config, f.name) {
                s.set(f.name, &v);
            }
            if let Kind::Token(TokenRule {
                default: TokenDefault::Generated { random_bytes },
                ..
            }) = f.kind
                && s.get(f.name).is_empty()
            {
                let value = generate_secret(random_bytes);
                s.set(f.name, value.expose());
                generated.push(SettingChange {
                    key: f.name,
                    value: Some(value.expose().to_string()),
                    secret: true,
                });
            }
        }
        (s, generated)
    }
}

/// The value given by environment or file for a setting, in stored form.
fn configured(config: &Config, name: &str) -> Option<String> {
    let secret = |s: &Option<Secret>| s.as_ref().map(|s| s.expose().to_string());
    match name {
        "api_monitor_token_admin" => secret(&config.auth.admin_token),
        "api_monitor_token_visitor" => secret(&config.auth.visitor_token),
        "admin_panel_password" => secret(&config.auth.admin_password),
        "proxy_master_token" => secret(&config.auth.proxy_master_token),
        "log_cleanup_enabled" => config.panel.log_cleanup_enabled.map(|b| b.to_string()),
        "log_max_size_mb" => config.panel.log_max_size_mb.map(|n| n.to_string()),
        "default_interval_min" => config.panel.default_interval_min.map(|n| n.to_string()),
        _ => None,
    }
}

/// The variable that pins a field, by the name it was given under (the Go program's
/// `API_MONITOR_TOKEN_ADMIN` stays `API_MONITOR_TOKEN_ADMIN`).
fn read_only_variable(config: &Config, f: &Field) -> Option<&'static str> {
    f.variable
        .filter(|v| config.source_of(v.name).is_some())
        .map(|v| config.name_of(v))
}

/// Writes the credentials that were not given by configuration to the 0600
/// credentials file (removing it when there are none), so `apimonctl credentials`
/// and an operator can find them without the log ever holding them.
pub fn write_credentials_file(
    config: &Config,
    settings: &Settings,
) -> std::io::Result<Option<PathBuf>> {
    let path = config.paths.data_dir.join(CREDENTIALS_FILE);
    let mut values = toml::Table::new();
    // The file's keys, and the variables whose credentials they hold.
    for (key, variable) in [
        ("admin_token", &variables::API_MONITOR_TOKEN),
        ("admin_panel_password", &variables::ADMIN_PANEL_PASSWORD),
    ] {
        if config.source_of(variable.name).is_none() {
            let field = Field::pinned_by(variable);
            values.insert(key.into(), toml::Value::String(settings.get(field.name)));
        }
    }
    let any = !values.is_empty();
    // TOML escaping keeps any password character readable back.
    let body = format!(
        "# apimon credentials generated or changed in the admin panel; keep private\n{}",
        toml::to_string(&values).map_err(std::io::Error::other)?
    );
    if !any {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        return Ok(None);
    }
    write_private(&path, body.as_bytes())?;
    Ok(Some(path))
}

/// Replaces a file atomically with a 0600 one.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Core {
    pub fn settings_view(&self, caller: &Caller) -> ServiceResult<Value> {
        caller.require_admin()?;
        let s = self.settings();
        let mut item = serde_json::Map::new();
        let mut read_only = serde_json::Map::new();
        for f in FIELDS {
            let raw = s.get(f.name);
            let shown = match f.kind {
                Kind::Token(_) => Value::String(shared::secret::mask(&raw)),
                Kind::Bool { .. } => Value::Bool(raw == "true"),
                Kind::Int { .. } => json!(raw.parse::<i64>().unwrap_or_default()),
                Kind::Special => unreachable!("{} is not a panel kind", f.name),
            };
            if f.is_secret() {
                item.insert(format!("{}_set", f.name), Value::Bool(!raw.is_empty()));
            }
            item.insert(f.name.to_string(), shown);
            if let Some(var) = read_only_variable(&self.config, f) {
                read_only.insert(f.name.to_string(), Value::String(var.to_string()));
            }
        }
        Ok(json!({ "item": item, "read_only": read_only }))
    }

    /// Applies a partial change. Every field is checked before anything is written; a
    /// field pinned by configuration may only be sent back unchanged.
    pub async fn update_settings(&self, caller: &Caller, raw: &[u8]) -> ServiceResult<Value> {
        caller.require_admin()?;
        let mut body = Body::parse(raw)?;
        // The `<secret>_set` flags of a settings object read back are derived; ignore them.
        for f in FIELDS {
            if f.is_secret() {
                body.value(&format!("{}_set", f.name));
            }
        }
        let _guard = self.settings_write.lock().await;
        let current = self.settings();
        let mut changes: Vec<SettingChange> = Vec::new();
        for f in FIELDS {
            let Some(value) = body.value(f.name) else {
                continue;
            };
            let now = current.get(f.name);
            let new = match (f.kind, &value) {
                (Kind::Token(_), Value::String(s)) => s.trim().to_string(),
                (Kind::Token(_), Value::Null) if !f.is_required_secret() => String::new(),
                (Kind::Bool { .. }, Value::Bool(b)) => b.to_string(),
                (Kind::Int { range, .. }, Value::Number(n)) => match n.as_i64() {
                    Some(i) if range.contains(i) => i.to_string(),
                    _ => return Err(bad_field(f)),
                },
                _ => return Err(bad_field(f)),
            };
            let is_secret = f.is_secret();
            // A settings object read back and sent again carries masked secrets.
            let unchanged =
                new == now || (is_secret && !now.is_empty() && new == shared::secret::mask(&now));
            if unchanged {
                continue;
            }
            if let Some(var) = read_only_variable(&self.config, f) {
                let source = f.variable.and_then(|v| self.config.source_of(v.name));
                return Err(ServiceError::Conflict(format!(
                    "{}: set by {var} in {}; change it there and restart",
                    f.name,
                    source.map(|s| s.describe()).unwrap_or("configuration"),
                )));
            }
            if let Kind::Token(rule) = f.kind
                && !new.is_empty()
            {
                if !rule.accepts(&new) {
                    return Err(bad_field(f));
                }
            } else if is_secret && f.is_required_secret() {
                return Err(bad_field(f));
            }
            changes.push(SettingChange {
                key: f.name,
                value: if new.is_empty() { None } else { Some(new) },
                secret: is_secret,
            });
        }
        body.finish()?;

        let mut next = (*current).clone();
        for c in &changes {
            next.set(c.key, c.value.as_deref().unwrap_or(""));
        }
        if let Some(v) = &next.visitor_token
            && v == &next.admin_token
        {
            return Err(ServiceError::BadRequest(
                "api_monitor_token_visitor: must differ from the admin token".into(),
            ));
        }
        let credentials_changed = changes
            .iter()
            .any(|c| c.key == "api_monitor_token_admin" || c.key == "admin_panel_password");
        let password_changed = changes.iter().any(|c| c.key == "admin_panel_password");
        let changed: Vec<&str> = changes.iter().map(|c| c.key).collect();
        tracing::info!(fields = ?changed, "settings changed");
        if !changes.is_empty() {
            self.store.save_settings(changes).await?;
            *self.settings.write().expect("settings lock poisoned") = Arc::new(next.clone());
            self.proxy_keys
                .set_master(next.proxy_master_token.as_ref().map(|t| t.expose()));
            self.upkeep.set_log_policy(super::log_policy(&next));
            self.settings_changed.send_modify(|v| *v += 1);
        }
        if password_changed {
            self.sessions.end_all();
        }
        if credentials_changed {
            let config = self.config.clone();
            tokio::task::spawn_blocking(move || write_credentials_file(&config, &next))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))?
                .map_err(|e| {
                    ServiceError::Internal(format!("cannot write the credentials file: {e}"))
                })?;
        }
        // `ok` as the Go program answers a settings change.
        let mut answer = self.settings_view(caller)?;
        answer["ok"] = Value::Bool(true);
        Ok(answer)
    }
}

fn bad_field(f: &Field) -> ServiceError {
    ServiceError::BadRequest(match f.kind {
        Kind::Token(rule) if f.is_required_secret() => {
            format!("{}: must be {}", f.name, rule.describe())
        }
        Kind::Token(rule) => format!(
            "{}: must be {}, or empty to clear it",
            f.name,
            rule.describe()
        ),
        Kind::Bool { .. } => format!("{}: must be true or false", f.name),
        Kind::Int { range, .. } => format!("{}: must be {}", f.name, range.describe()),
        Kind::Special => unreachable!("{} is not a panel kind", f.name),
    })
}

impl Core {
    /// `POST /api/admin/settings/reveal` with `{"field": "..."}`: the whole value of one
    /// secret setting, for the admin panel's reveal and copy. Admin only, logged, like
    /// a channel key's reveal.
    pub fn reveal_setting(&self, caller: &Caller, raw: &[u8]) -> ServiceResult<Value> {
        caller.require_admin()?;
        let mut body = Body::parse(raw)?;
        let name = match body.value("field") {
            Some(Value::String(n)) => n,
            _ => {
                return Err(ServiceError::BadRequest(
                    "field: required, the name of a secret setting".into(),
                ));
            }
        };
        body.finish()?;
        let Some(field) = FIELDS.iter().find(|f| f.name == name && f.is_secret()) else {
            let secrets: Vec<&str> = FIELDS
                .iter()
                .filter(|f| f.is_secret())
                .map(|f| f.name)
                .collect();
            return Err(ServiceError::BadRequest(format!(
                "field: must be one of {}",
                secrets.join(", ")
            )));
        };
        tracing::info!(field = field.name, client = %caller.client, "setting revealed to an admin");
        Ok(json!({ "item": { "field": field.name, "value": self.settings().get(field.name) } }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_the_panel_changes_is_one_field_with_its_bounds() {
        for v in variables::VARIABLES
            .iter()
            .filter(|v| v.panel_field.is_some())
        {
            let fields: Vec<&Field> = FIELDS
                .iter()
                .filter(|f| f.variable.is_some_and(|p| p.name == v.name))
                .collect();
            assert_eq!(fields.len(), 1, "{}", v.name);
            assert_eq!(Some(fields[0].name), v.panel_field);
            assert_eq!(fields[0].kind, v.kind);
        }
    }

    #[test]
    fn defaults_come_from_the_table() {
        let config = Config::from_sources(
            &HashMap::from([("DATA_DIR".to_string(), "unused".to_string())]),
            None,
        )
        .unwrap();
        let (s, generated) = Settings::resolve(&config, &HashMap::new());
        assert_eq!(s.default_interval_min, 30);
        assert_eq!(s.log_max_size_mb, 500);
        assert!(s.log_cleanup_enabled);
        assert!(!s.visitor_mode_enabled && !s.visitor_show_base_url);
        assert!(s.visitor_token.is_none() && s.proxy_master_token.is_none());
        assert_eq!(s.admin_token.expose().len(), 48);
        assert_eq!(s.admin_password.expose().len(), 24);
        assert_eq!(generated.len(), 2);

        let stored = HashMap::from([("log_max_size_mb".to_string(), "lots".to_string())]);
        let (s, _) = Settings::resolve(&config, &stored);
        assert_eq!(s.log_max_size_mb, 500, "a stored value that does not parse");
    }
}
