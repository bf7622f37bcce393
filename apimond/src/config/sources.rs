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

/// The given values, by variable (its main name), before parsing. Empty values count
/// as unset.
pub(super) struct Raw {
    values: HashMap<&'static str, String>,
    pub(super) sources: BTreeMap<&'static str, Source>,
    /// The name each given variable was given under, where that is an alias.
    pub(super) given_names: BTreeMap<&'static str, &'static str>,
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
            given_names: BTreeMap::new(),
        };
        for variable in VARIABLES {
            // The environment wins over the file for the setting as a whole, whichever
            // of its names each one uses.
            let given = match given_once(variable, env, Source::Env)? {
                Some(given) => Some((given, Source::Env)),
                None => given_once(variable, &file_values, Source::File)?
                    .map(|given| (given, Source::File)),
            };
            if let Some(((name, value), source)) = given {
                raw.values.insert(variable.name, value);
                raw.sources.insert(variable.name, source);
                if name != variable.name {
                    raw.given_names.insert(variable.name, name);
                }
            }
        }
        Ok(raw)
    }

    /// The name `variable` was given under: an alias, or its main name.
    pub(super) fn name_of(&self, variable: &Variable) -> &'static str {
        self.given_names
            .get(variable.name)
            .copied()
            .unwrap_or(variable.name)
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
            variable: self.name_of(variable),
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

/// The one value `variable` is given in `values` under any of its names, with the
/// name it came under (the first given, in the table's order). Two names with
/// different values are an error naming both, never the values: apimond cannot know
/// which one the operator meant.
fn given_once(
    variable: &Variable,
    values: &HashMap<String, String>,
    source: Source,
) -> Result<Option<(&'static str, String)>, ConfigError> {
    let mut given: Option<(&'static str, String)> = None;
    for name in variable.names() {
        let Some(value) = values.get(name).filter(|v| !v.is_empty()) else {
            continue;
        };
        match &given {
            None => given = Some((name, value.clone())),
            Some((first, seen)) if seen.trim() != value.trim() => {
                return Err(ConfigError::Other(format!(
                    "{first} and {name} are both set in {}, to different values; they name one setting: set only one of them, or both to the same value",
                    source.describe()
                )));
            }
            Some(_) => {}
        }
    }
    Ok(given)
}

/// Reads the TOML file into variable name → string value. Keys are the variable
/// names (an alias included), in upper or lower case; an unknown key is an error (a
/// typo must not be silently ignored), and so are two spellings of one key with
/// different values.
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
    let mut spelled: HashMap<String, String> = HashMap::new();
    for (key, value) in table {
        let name = key.to_ascii_uppercase();
        if variables::find(&name).is_none() {
            return Err(file_error(format!(
                "unknown setting `{key}`; known settings: {}",
                VARIABLES
                    .iter()
                    .flat_map(Variable::names)
                    .map(str::to_ascii_lowercase)
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
        // `port` and `PORT` in one file: one key, two spellings.
        if let Some(first) = spelled.get(&name)
            && out.get(&name) != Some(&text)
        {
            return Err(file_error(format!(
                "`{first}` and `{key}` are one setting with different values; keep one"
            )));
        }
        spelled.insert(name.clone(), key);
        out.insert(name, text);
    }
    Ok(out)
}
