//! Test support for apimond's integration tests: the shared test daemon from
//! `apimond::testing`, plus the fake relay setup only these tests use.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub use apimond::testing::*;

pub mod proxy;

/// A fake relay offering `models`, answering every probe after `delay`.
pub async fn fake_upstream(models: &[&str], delay_ms: u64) -> testkit::FakeUpstream {
    testkit::FakeUpstream::start(testkit::FakeConfig {
        models: models.iter().map(|m| m.to_string()).collect(),
        api_key: UPSTREAM_KEY.into(),
        probe_delay: std::time::Duration::from_millis(delay_ms),
        slow_delay: std::time::Duration::from_millis(1200),
        ..testkit::FakeConfig::default()
    })
    .await
}
