//! The probe engine: discovery, routing, one module per protocol, stream parsing,
//! classification, the answer challenge and statuses. HTTP in, results out: no
//! database, no scheduling, so `apimonctl probe` can run it without a daemon.
//!
//! One question per module: `settings` (what a probe is asked to do), `result` (what
//! it hands back), `transport` (the `Prober`'s HTTP clients, headers, capped reads),
//! `clients` (the `browser` and `plain` client profiles), `direct` (the proxy's own
//! HTTP/1.1 connections for `plain`), `outbound` (the proxy a probe goes through),
//! `discovery` (the model list), `attempt` (one probe and its retry), `stream` (a
//! streamed reply), `judge` (whether a reply passes), `select` (which models a run
//! probes), `forward` (the proxy's requests through a target's client).

pub mod challenge;
pub mod classify;
pub mod protocol;
pub mod route;
pub mod sse;
pub mod status;

mod attempt;
mod clients;
mod direct;
mod discovery;
mod forward;
mod judge;
mod outbound;
mod result;
mod select;
mod settings;
mod stream;
mod transport;

pub use classify::ErrorClass;
pub use direct::pin_direct_pool_to_this_thread;
pub use discovery::normalise_base_url;
pub use forward::{UpstreamBody, UpstreamClient, UpstreamError, UpstreamResponse, UpstreamUrl};
pub use judge::models_match;
pub use outbound::{DIRECT, Egress, PROXY_SCHEMES, ProxyChoice, ProxyUrl};
pub use result::{DiscoveryError, ProbeResult, scrub};
pub use route::{Protocol, RouteRule};
pub use select::select_models;
pub use settings::{
    BODY_CAP, CONNECT_TIMEOUT, CheckMode, ClientProfile, MAX_RETRY_WAIT, ProbeMode, ProbeSettings,
    STREAM_CAP, default_max_tokens,
};
pub use status::{ModelStatus, TargetStatus};
pub use transport::Prober;
