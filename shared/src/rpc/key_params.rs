//! The params of the proxy key methods (`keys.*`), read field by field like the
//! others in [`super::params`].

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::params::{Fields, read};

/// One proxy key as the user named it: all digits is an id, `name:x` (or any other
/// text) a name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRef {
    pub key: String,
}

impl KeyRef {
    pub fn new(key: impl Into<String>) -> KeyRef {
        KeyRef { key: key.into() }
    }
}

impl<'de> Deserialize<'de> for KeyRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, |f| {
            Ok(KeyRef {
                key: f.string("key")?,
            })
        })
    }
}

/// `keys.create`: the new key's fields, as the API's create body (apimond validates).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeysCreate {
    pub fields: Value,
}

impl<'de> Deserialize<'de> for KeysCreate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, |f| {
            Ok(KeysCreate {
                fields: f.take("fields"),
            })
        })
    }
}

/// `keys.edit`: the key and the fields to change, as the API's PATCH body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeysEdit {
    pub key: String,
    pub fields: Value,
}

impl<'de> Deserialize<'de> for KeysEdit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, |f| {
            Ok(KeysEdit {
                key: f.string("key")?,
                fields: f.take("fields"),
            })
        })
    }
}

/// `keys.usage`: what `GET /api/proxy/usage` takes, with the key (`master` for the
/// master token) and the target named as the user named them.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct KeysUsage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<f64>,
    /// Comma-separated: `key`, `target`, `model`, and `hour` or `day`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
}

fn opt_string(f: &mut Fields, name: &str) -> Result<Option<String>, String> {
    match f.take(name) {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(format!("{name}: must be a string")),
    }
}

fn opt_number(f: &mut Fields, name: &str) -> Result<Option<f64>, String> {
    match f.take(name) {
        Value::Null => Ok(None),
        v => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("{name}: must be a number")),
    }
}

impl<'de> Deserialize<'de> for KeysUsage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, |f| {
            Ok(KeysUsage {
                key: opt_string(f, "key")?,
                target: opt_string(f, "target")?,
                model: opt_string(f, "model")?,
                since: opt_number(f, "since")?,
                until: opt_number(f, "until")?,
                group_by: opt_string(f, "group_by")?,
            })
        })
    }
}
