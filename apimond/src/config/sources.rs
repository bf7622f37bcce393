//! Where values come from: the environment and the optional TOML file, merged into one
//! map of raw strings with the source of each, and the reads of plain kinds (integers,
//! booleans, tokens) validated against the variables table.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use shared::Secret;

use super::ConfigError;
use super::variables::{self, Kind, VARIABLES, Variable};

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

/// The given values, by variable, before parsing. Empty values count as unset.
pub(super) struct Raw {
    values: HashMap<&'static str, String>,
    pub(super) sources: BTreeMap<&'static str, Source>,
}

impl Raw {
    /// Reads the file named by `config_path` (the `--config` flag) or `APIMON_CONFIG`,
    /// then lets the environment win over it.
    pub(super) fn gather(
        env: &HashMap<String, String>,
        config_path: Option<&Path>,
    ) -> Result<Raw, ConfigError> {
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
        for Variable { name, .. } in VARIABLES {
            let from_env = env.get(*name).filter(|v| !v.is_empty());
            if let Some(v) = from_env {
                raw.values.insert(name, v.clone());
                raw.sources.insert(name, Source::Env);
            } else if let Some(v) = file_values.get(*name).filter(|v| !v.is_empty()) {
                raw.values.insert(name, v.clone());
                raw.sources.insert(name, Source::File);
            }
        }
        Ok(raw)
    }

    pub(super) fn get(&self, variable: &Variable) -> Option<&str> {
        self.values.get(variable.name).map(|s| s.trim())
    }

    /// The error for `variable`'s given value, hidden when it is a secret.
    pub(super) fn invalid(&self, variable: &Variable, allowed: impl Into<String>) -> ConfigError {
        let value = if variable.secret {
            "<hidden>".to_string()
        } else {
            self.values.get(variable.name).cloned().unwrap_or_default()
        };
        ConfigError::Invalid {
            variable: variable.name,
            value,
            allowed: allowed.into(),
        }
    }

    /// An integer variable, `None` when unset.
    pub(super) fn opt_int(&self, variable: &Variable) -> Result<Option<i64>, ConfigError> {
        let Kind::Int { range, .. } = variable.kind else {
            unreachable!("{} is not an integer", variable.name)
        };
        match self.get(variable) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if range.contains(n) => Ok(Some(n)),
                _ => Err(self.invalid(variable, range.describe())),
            },
        }
    }

    /// An integer variable, its default when unset.
    pub(super) fn int(&self, variable: &Variable) -> Result<i64, ConfigError> {
        let Kind::Int { default, .. } = variable.kind else {
            unreachable!("{} is not an integer", variable.name)
        };
        Ok(self.opt_int(variable)?.unwrap_or(default))
    }

    /// A boolean variable, `None` when unset.
    pub(super) fn opt_bool(&self, variable: &Variable) -> Result<Option<bool>, ConfigError> {
        debug_assert!(
            matches!(variable.kind, Kind::Bool { .. }),
            "{}",
            variable.name
        );
        match self.get(variable).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("true" | "1" | "yes" | "on") => Ok(Some(true)),
            Some("false" | "0" | "no" | "off") => Ok(Some(false)),
            Some(_) => Err(self.invalid(variable, "true or false (also 1/0, yes/no, on/off)")),
        }
    }

    /// A token variable, `None` when unset.
    pub(super) fn token(&self, variable: &Variable) -> Result<Option<Secret>, ConfigError> {
        let Kind::Token(rule) = variable.kind else {
            unreachable!("{} is not a token", variable.name)
        };
        match self.get(variable) {
            None => Ok(None),
            Some(v) if rule.accepts(v) => Ok(Some(Secret::new(v))),
            Some(_) => Err(self.invalid(variable, rule.describe())),
        }
    }
}

/// Reads the TOML file into variable name → string value. Keys are the variable
/// names, in upper or lower case; an unknown key is an error (a typo must not be
/// silently ignored).
fn read_file(path: &Path, how: &'static str) -> Result<HashMap<String, String>, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        how,
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| file_error(format!("not valid TOML: {}", e.message())))?;
    let mut out = HashMap::new();
    for (key, value) in table {
        let name = key.to_ascii_uppercase();
        if variables::find(&name).is_none() {
            return Err(file_error(format!(
                "unknown setting `{key}`; known settings: {}",
                VARIABLES
                    .iter()
                    .map(|v| v.name.to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
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
                return Err(file_error(format!(
                    "`{key}` must be a string, number or boolean, not {other}"
                )));
            }
        };
        out.insert(name, text);
    }
    Ok(out)
}
