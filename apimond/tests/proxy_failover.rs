//! Failover before the first byte: a 5xx, a 429 or silence before headers on one
//! channel sends the request to the next candidate for the same bare model; when every
//! candidate fails, the last upstream error comes back as it was.

mod common;
#[path = "common/forwarding.rs"]
mod forwarding;

use std::time::Duration;

use forwarding::*;
use testkit::Failure;

async fn two_channels(
    extra: &[(&str, &str)],
) -> (
    apimond::testing::TestDaemon,
    testkit::FakeUpstream,
    testkit::FakeUpstream,
    i64,
    i64,
) {
    let relay_a = relay(&["gpt-4o-mini"], 0).await;
    let relay_b = relay(&["gpt-4o-mini"], 0).await;
    let d = daemon_with(extra).await;
    let a = channel(&d, "alpha", &relay_a.base_url(), &[]).await;
    let b = channel(&d, "beta", &relay_b.base_url(), &[]).await;
    // Both in the routing view (refreshed from the bus), or a request may see one only.
    wait_listed(&d, "alpha/gpt-4o-mini", true).await;
    wait_listed(&d, "beta/gpt-4o-mini", true).await;
    relay_a.clear_received();
    relay_b.clear_received();
    (d, relay_a, relay_b, a, b)
}

#[tokio::test]
async fn a_5xx_429_or_silence_before_headers_fails_over_to_the_next_channel() {
    let (d, relay_a, relay_b, a, b) = two_channels(&[("PROXY_FIRST_BYTE_TIMEOUT_S", "1")]).await;
    for failure in [
        Failure::Status(500),
        Failure::Status(503),
        Failure::Status(429),
        Failure::HangBeforeHeaders,
    ] {
        relay_a.set_failure("gpt-4o-mini", Some(failure));
        relay_a.clear_received();
        relay_b.clear_received();
        // Equal channels take turns: two requests put alpha first once.
        for _ in 0..2 {
            let (s, h, t) = chat(&d, MASTER, &ask("gpt-4o-mini"), &[]).await;
            assert_eq!(s, 200, "{failure:?}: {t}");
            assert_eq!(
                header(&h, "x-proxy-target-id"),
                b.to_string(),
                "{failure:?}"
            );
        }
        assert_eq!(relay_a.received().len(), 1, "{failure:?}: alpha tried once");
        assert_eq!(relay_b.received().len(), 2, "{failure:?}");
        relay_a.clear_failures();
        // A success resets alpha's breaker before the next kind of failure.
        let (s, _, t) = chat(&d, MASTER, &ask("alpha/gpt-4o-mini"), &[]).await;
        assert_eq!(s, 200, "{t}");
    }
    let _ = a;
}

#[tokio::test]
async fn when_every_channel_fails_the_last_upstream_error_is_passed_on() {
    let (d, relay_a, relay_b, _, _) = two_channels(&[]).await;
    relay_a.set_failure("gpt-4o-mini", Some(Failure::Status(503)));
    relay_b.set_failure("gpt-4o-mini", Some(Failure::Status(503)));
    let (s, h, t) = chat(&d, MASTER, &ask("gpt-4o-mini"), &[]).await;
    assert_eq!(s, 503, "{t}");
    assert!(!header(&h, "x-proxy-target-id").is_empty());
    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
    assert!(v["error"]["message"].is_string(), "the relay's body: {t}");
    assert_eq!(relay_a.received().len() + relay_b.received().len(), 2);

    // A non-retryable client error is not retried elsewhere.
    relay_a.clear_received();
    relay_b.clear_received();
    relay_a.set_failure("gpt-4o-mini", Some(Failure::Status(400)));
    relay_b.set_failure("gpt-4o-mini", Some(Failure::Status(400)));
    let (s, _, t) = chat(&d, MASTER, &ask("gpt-4o-mini"), &[]).await;
    assert_eq!(s, 400, "{t}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(relay_a.received().len() + relay_b.received().len(), 1);
}
