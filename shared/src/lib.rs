//! What both `apimond` and `apimonctl` use: secrets, data types, and (with later
//! issues) the RPC protocol, socket path resolution, clients and the probe engine.

pub mod client;
pub mod rpc;
pub mod secret;

pub use secret::Secret;

/// The version both binaries report; `hello` compares it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod probe;
