//! The probe engine: discovery, routing, one module per protocol, stream parsing,
//! classification, the answer challenge and statuses. HTTP in, results out: no
//! database, no scheduling, so `apimonctl probe` can run it without a daemon.

pub mod challenge;
pub mod classify;
pub mod engine;
pub mod protocol;
pub mod route;
pub mod sse;
pub mod status;

pub use classify::ErrorClass;
pub use engine::{CheckMode, DiscoveryError, ProbeResult, ProbeSettings, Prober, select_models};
pub use route::{Protocol, RouteRule};
pub use status::{ModelStatus, TargetStatus};
