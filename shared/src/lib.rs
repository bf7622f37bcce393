//! What both `apimond` and `apimonctl` use: secrets, the control-socket RPC protocol,
//! the clients (control socket with its path search, remote HTTP API), the probe engine.

pub mod client;
pub mod listen;
pub mod rpc;
pub mod secret;

pub use secret::Secret;

/// The version both binaries report; `hello` compares it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod probe;
