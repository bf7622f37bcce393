//! The replies apimonctl reads field by field, as apimond writes them. Replies the
//! CLI only prints (targets, runs, logs, models, credentials) stay JSON values: the
//! HTTP API's shapes are their contract.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `hello`: the daemon's version and protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloReply {
    pub version: String,
    pub protocol: u32,
    /// Always `apimond`.
    pub daemon: String,
}

/// `status`: what the daemon is and is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    pub version: String,
    pub uptime_s: f64,
    /// Unix seconds.
    pub started_at: f64,
    pub data_dir: String,
    /// `host:port` of the HTTP server.
    pub http: String,
    /// Target ids with a run going, and waiting behind the parallel limit.
    pub running_targets: Vec<i64>,
    pub queued_targets: Vec<i64>,
    pub scheduler_lag_s: f64,
    /// Target counts by status, as `GET /api/dashboard`.
    pub dashboard: Value,
    /// Live and ready, as `GET /api/health` says (absent from daemons before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Readiness>,
}

/// Whether the daemon is alive and ready to do its work, and why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    /// The process answers.
    pub live: bool,
    /// Every check below passes.
    pub ready: bool,
    /// Writes reach the disk.
    pub store_writable: bool,
    /// The store's writer thread is running and not stuck on one batch.
    pub store_writer_alive: bool,
    /// The scheduler passed within its stall limit.
    pub scheduler_ticking: bool,
    /// What is wrong, in words, when not ready.
    pub problems: Vec<String>,
}

/// `runs.trigger` (and `POST /api/targets/{id}/run`): the run started or queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerReply {
    pub ok: bool,
    pub target_id: i64,
    pub queued: bool,
    pub message: String,
}

impl TriggerReply {
    pub fn new(target_id: i64, queued: bool) -> TriggerReply {
        TriggerReply {
            ok: true,
            target_id,
            queued,
            message: if queued {
                "run queued behind the parallel limit"
            } else {
                "run started"
            }
            .into(),
        }
    }
}

/// `events.subscribe`: `event` notifications follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    pub subscribed: bool,
}

/// `export`: one chunk of targets and where the next one starts (none at the end).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportChunk {
    /// Targets in the import format, keys masked unless asked for.
    pub items: Vec<Value>,
    pub next_offset: Option<u64>,
    pub total: u64,
}

/// Exported items may hold keys and header values (`--with-secrets`): never printed.
impl std::fmt::Debug for ExportChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportChunk")
            .field("items", &format_args!("<{} targets>", self.items.len()))
            .field("next_offset", &self.next_offset)
            .field("total", &self.total)
            .finish()
    }
}

/// `import`: how many targets were created, and which were not and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReply {
    pub created: u64,
    pub ids: Vec<i64>,
    pub skipped: Vec<SkippedTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedTarget {
    /// `?` when the item had no name.
    pub name: String,
    pub reason: String,
}

/// `backup.start`: a snapshot was taken and waits to be read with `backup.read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupStarted {
    pub backup_id: String,
    /// Bytes of the snapshot file.
    pub size: u64,
    /// SHA-256 of the whole file, hex: the CLI checks what it wrote against it.
    pub sha256: String,
    /// The schema version (`PRAGMA user_version`) of the snapshot.
    pub schema_version: i64,
    /// Unix seconds.
    pub taken_at: f64,
    /// Where the key that seals the snapshot's channel keys is: never in the snapshot.
    pub secret_key: SecretKeyLocation,
}

/// Where apimond's secret key comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum SecretKeyLocation {
    /// The key file in the data directory.
    File { path: String },
    /// The `APIMON_SECRET_KEY` variable.
    Environment { variable: String },
}

/// `backup.read`: bytes of a snapshot, base64, and where the next chunk starts (none
/// after the last; the snapshot is deleted then).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupChunk {
    pub offset: u64,
    /// Standard base64 of the bytes from `offset`.
    pub data: String,
    pub next_offset: Option<u64>,
}

/// The bytes hold sealed keys and the whole history: never printed.
impl std::fmt::Debug for BackupChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupChunk")
            .field("offset", &self.offset)
            .field(
                "data",
                &format_args!("<{} base64 characters>", self.data.len()),
            )
            .field("next_offset", &self.next_offset)
            .finish()
    }
}
