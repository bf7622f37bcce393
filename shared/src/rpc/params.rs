//! One params struct per method, as apimonctl writes them and apimond reads them.
//!
//! Serialising is derived. Reading is written out field by field rather than derived,
//! so that each error names its field in the words apimond has always used
//! (`target: required, a string`), and the fields that were always lenient (`hello`,
//! `with_secrets`, `fields`) stay lenient.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A params object being read: each getter takes its field out and, on a wrong type,
/// says which field and what it must be.
pub(super) struct Fields(pub(super) Map<String, Value>);

impl Fields {
    pub(super) fn take(&mut self, name: &str) -> Value {
        self.0.remove(name).unwrap_or(Value::Null)
    }

    pub(super) fn string(&mut self, name: &str) -> Result<String, String> {
        match self.take(name) {
            Value::String(s) => Ok(s),
            _ => Err(format!("{name}: required, a string")),
        }
    }

    /// Absent and `null` are both "not given".
    fn int(&mut self, name: &str) -> Result<Option<i64>, String> {
        match self.take(name) {
            Value::Null => Ok(None),
            v => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("{name}: must be an integer")),
        }
    }
}

/// Reads a params object with `read`, turning its message into the deserialiser's
/// error.
pub(super) fn read<'de, D, T>(
    d: D,
    read: impl FnOnce(&mut Fields) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let mut fields = Fields(Map::deserialize(d)?);
    read(&mut fields).map_err(D::Error::custom)
}

/// The params of a method that takes none (`{}` on the wire; extra fields are ignored).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NoParams {}

/// `hello`: who is calling and which protocol it speaks. Read leniently (a missing
/// protocol is 0), so a client of any version gets told plainly that it does not fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hello {
    pub version: String,
    pub protocol: u64,
}

impl<'de> Deserialize<'de> for Hello {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, |f| {
            Ok(Hello {
                version: f.take("version").as_str().unwrap_or("unknown").to_string(),
                protocol: f.take("protocol").as_u64().unwrap_or(0),
            })
        })
    }
}

/// One target, as the user named it: all digits is an id, `name:x` (or any other
/// text) a name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetRef {
    pub target: String,
}

impl TargetRef {
    pub fn new(target: impl Into<String>) -> TargetRef {
        TargetRef {
            target: target.into(),
        }
    }
}

impl<'de> Deserialize<'de> for TargetRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, |f| {
            Ok(TargetRef {
                target: f.string("target")?,
            })
        })
    }
}

/// `targets.add`: the fields of the new target, as the API's create body. apimond
/// validates them; here they are any JSON (absent is `null`).
#[derive(Clone, PartialEq, Serialize)]
pub struct TargetsAdd {
    pub fields: Value,
}

impl<'de> Deserialize<'de> for TargetsAdd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, |f| {
            Ok(TargetsAdd {
                fields: f.take("fields"),
            })
        })
    }
}

/// `targets.edit`: the target and the fields to change, as the API's update body.
#[derive(Clone, PartialEq, Serialize)]
pub struct TargetsEdit {
    pub target: String,
    pub fields: Value,
}

impl<'de> Deserialize<'de> for TargetsEdit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, |f| {
            Ok(TargetsEdit {
                target: f.string("target")?,
                fields: f.take("fields"),
            })
        })
    }
}

/// `runs.list`: a target's latest runs; apimond's default and range apply to `limit`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunsList {
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

impl<'de> Deserialize<'de> for RunsList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, |f| {
            Ok(RunsList {
                target: f.string("target")?,
                limit: f.int("limit")?,
            })
        })
    }
}

/// `runs.logs`: the probe rows of one run, the latest when `run_id` is none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunsLogs {
    pub target: String,
    /// Written as `null` when none, as apimonctl always has.
    pub run_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

impl<'de> Deserialize<'de> for RunsLogs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, |f| {
            Ok(RunsLogs {
                target: f.string("target")?,
                run_id: f.int("run_id")?,
                limit: f.int("limit")?,
            })
        })
    }
}

/// `export`: one chunk of the targets from `offset`, with their keys or masked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Export {
    pub with_secrets: bool,
    pub offset: u64,
}

impl<'de> Deserialize<'de> for Export {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, |f| {
            // Anything but `true` exports masked keys, and a negative offset reads
            // from the start, as they always have.
            let with_secrets = f.take("with_secrets").as_bool().unwrap_or(false);
            let offset = f.int("offset")?.unwrap_or(0).max(0) as u64;
            Ok(Export {
                with_secrets,
                offset,
            })
        })
    }
}

/// `import`: one chunk of exported targets to create.
#[derive(Clone, PartialEq, Serialize)]
pub struct Import {
    pub items: Vec<Value>,
}

impl<'de> Deserialize<'de> for Import {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, |f| match f.take("items") {
            Value::Array(items) => Ok(Import { items }),
            _ => Err("items: required, a list of targets".into()),
        })
    }
}

/// `backup.read`: the bytes of snapshot `backup_id` from `offset`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupRead {
    pub backup_id: String,
    pub offset: u64,
}

impl<'de> Deserialize<'de> for BackupRead {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d, |f| {
            let backup_id = f.string("backup_id")?;
            let offset = match f.int("offset")? {
                None => 0,
                Some(o) if o >= 0 => o as u64,
                Some(_) => return Err("offset: must be 0 or more".into()),
            };
            Ok(BackupRead { backup_id, offset })
        })
    }
}

/// Target fields may carry an API key, imports many: their `Debug` shows the shape,
/// never the values.
fn hidden_fields(v: &Value) -> String {
    match v {
        Value::Object(m) => format!("{{{}}}", m.keys().cloned().collect::<Vec<_>>().join(", ")),
        other => format!("<{}>", json_kind(other)),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

impl fmt::Debug for TargetsAdd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetsAdd")
            .field("fields", &format_args!("{}", hidden_fields(&self.fields)))
            .finish()
    }
}

impl fmt::Debug for TargetsEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetsEdit")
            .field("target", &self.target)
            .field("fields", &format_args!("{}", hidden_fields(&self.fields)))
            .finish()
    }
}

impl fmt::Debug for Import {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Import")
            .field("items", &format_args!("<{} targets>", self.items.len()))
            .finish()
    }
}
