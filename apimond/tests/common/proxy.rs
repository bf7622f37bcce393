//! Helpers of the proxy key and usage tests: keys created over the API, usage rows as
//! the forwarder reports them, and waiting for them to be written.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use apimond::service::proxy_keys::{ProxyEndpoint, ProxyUsage};
use apimond::testing::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The client the key checks below come from; a loopback address, so the API can be
/// called from it too.
pub const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 7));

pub async fn create_key(d: &TestDaemon, body: Value) -> (i64, String) {
    let (s, v) = d.admin(Method::POST, "/api/proxy/keys", Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (
        v["item"]["id"].as_i64().unwrap(),
        v["proxy_key"].as_str().unwrap().to_string(),
    )
}

pub fn usage(
    key_id: Option<i64>,
    target_id: Option<i64>,
    model: &str,
    tokens: (u64, u64),
) -> ProxyUsage {
    ProxyUsage {
        at: apimond::store::now(),
        key_id,
        target_id,
        requested_model: model.into(),
        upstream_model: Some(model.rsplit('/').next().unwrap().into()),
        endpoint: ProxyEndpoint::Chat,
        stream: false,
        status: 200,
        attempts: 1,
        ttfb_ms: Some(5.0),
        ttft_ms: None,
        total_ms: 10.0,
        input_tokens: Some(tokens.0),
        output_tokens: Some(tokens.1),
        tokens_estimated: false,
        error_class: None,
    }
}

/// Waits until the usage API counts `n` requests for the query.
pub async fn wait_usage(d: &TestDaemon, query: &str, n: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = d
            .admin(Method::GET, &format!("/api/proxy/usage?{query}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["totals"]["requests"] == n {
            return v;
        }
        assert!(Instant::now() < deadline, "usage never reached {n}: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
