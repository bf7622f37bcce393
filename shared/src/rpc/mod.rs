//! The control protocol: newline-delimited JSON-RPC 2.0 over a Unix socket. One
//! request per line, one response per line; `events.subscribe` is answered, then
//! followed by `event` notifications until the client leaves.
//!
//! This module owns the limits, the error codes and the response envelope; the
//! requests (one enum, one params struct per method) and the replies the CLI reads are
//! in [`request`], [`params`] (proxy keys' in [`key_params`]) and [`reply`]. Their wire form is pinned by the golden
//! files under `shared/tests/rpc_golden/`.

pub mod key_params;
pub mod notification;
pub mod params;
pub mod reply;
pub mod request;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use notification::Notification;
pub use request::{CallError, Request};

/// Bumped when a method changes incompatibly; `hello` compares it. The golden files
/// of each version live in `shared/tests/rpc_golden/v{PROTOCOL_VERSION}/`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line apimond accepts: room for one target at the API's 2 MiB body
/// limit. Bulk transfers (export, import) are chunked to stay within it.
pub const MAX_LINE: usize = 4 * 1024 * 1024;
/// Longest reply line a client reads (the target list of a large install is a few MB).
pub const MAX_REPLY: usize = 64 * 1024 * 1024;
/// Most targets per export or import chunk.
pub const CHUNK: usize = 100;
/// Most bytes of targets per export or import chunk, so a chunk and its framing fit
/// in [`MAX_LINE`].
pub const CHUNK_BYTES: usize = MAX_LINE / 2;

/// JSON-RPC error codes.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL: i64 = -32603;
    /// The peer may not use the socket.
    pub const FORBIDDEN: i64 = -32003;
    pub const NOT_FOUND: i64 = -32004;
    pub const CONFLICT: i64 = -32009;
    pub const TOO_MANY: i64 = -32029;
    /// apimond cannot do it now (its disk is full or read-only); try again later.
    pub const UNAVAILABLE: i64 = -32503;
    /// apimonctl and apimond speak different protocol versions.
    pub const VERSION_MISMATCH: i64 = -32010;
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// A response or a notification, as a client reads them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub jsonrpc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
    /// Set on notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

impl Message {
    pub fn result(id: Value, result: Value) -> Message {
        Message {
            jsonrpc: "2.0".into(),
            id: Some(id),
            result: Some(result),
            error: None,
            method: None,
            params: None,
        }
    }

    pub fn error(id: Value, code: i64, message: impl Into<String>) -> Message {
        Message {
            jsonrpc: "2.0".into(),
            id: Some(id),
            result: None,
            error: Some(RpcError {
                code,
                message: message.into(),
            }),
            method: None,
            params: None,
        }
    }

    pub fn notification(method: &str, params: Value) -> Message {
        Message {
            jsonrpc: "2.0".into(),
            id: None,
            result: None,
            error: None,
            method: Some(method.into()),
            params: Some(params),
        }
    }

    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("messages serialise");
        s.push('\n');
        s
    }
}
