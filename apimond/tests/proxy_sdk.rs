//! The proxy driven by the real openai, anthropic and google-genai Python SDKs: this
//! test starts three fake relays (with their control APIs) and a daemon, makes probed
//! channels on them and a proxy key, runs the pytest suite in `tests/sdk/` with the
//! addresses and keys in its environment, then reads every relay's records back: the
//! client's keys never reached an upstream, and every request that did carried the
//! channel's key.
//!
//! It needs the SDKs' virtual environment, so it is ignored by a plain `cargo test`;
//! `scripts/test-proxy-sdk.sh` makes the environment and runs it with
//! `APIMON_SDK_PYTHON` set.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, TestDaemon, UPSTREAM_KEY};
use reqwest::Method;
use serde_json::json;
use testkit::{FakeConfig, FakeUpstream};

const MASTER: &str = "sk-master-token-for-the-sdk-tests-0123456789";

/// Models every relay lists; the scenario models keep one test's traffic apart from
/// another's.
const SHARED_MODELS: &[&str] = &[
    "gpt-4o-mini",
    "claude-3-5-haiku",
    "gemini-2.0-flash",
    "text-embedding-3-small",
    "gpt-failover",
    "gpt-firstbyte",
    "gpt-spaced",
    "claude-spaced",
    "gemini-spaced",
    "gpt-leaving",
    "claude-leaving",
];
/// Only on relay A, so no other channel hides its breaker or its usage.
const A_ONLY: &[&str] = &["gpt-breaker", "gpt-usage", "gpt-echo"];
/// On relays B and C: C's port is the one that stops listening.
const B_AND_C: &[&str] = &["gpt-refused"];

async fn relay(models: &[&str]) -> FakeUpstream {
    FakeUpstream::start(FakeConfig {
        models: models.iter().map(|m| m.to_string()).collect(),
        api_key: UPSTREAM_KEY.into(),
        ..FakeConfig::default()
    })
    .await
}

/// Creates a channel on `base_url`, runs its probes once and waits for the run.
async fn channel(d: &TestDaemon, name: &str, base_url: &str) -> i64 {
    let id = d
        .create_on(name, base_url, json!({"client_profile": "plain"}))
        .await;
    let (s, v) = d.trigger(id).await;
    assert!(s.is_success(), "{v}");
    d.wait_run(id).await;
    id
}

/// Waits until the proxy lists `id` for the master token.
async fn wait_listed(d: &TestDaemon, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, body, v) = d.send(Method::GET, "/v1/models", Some(MASTER), None).await;
        let listed = s == 200
            && v["data"]
                .as_array()
                .is_some_and(|a| a.iter().any(|m| m["id"] == id));
        if listed {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never listed: {s} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the SDKs' virtual environment: run scripts/test-proxy-sdk.sh"]
async fn the_real_sdks_work_through_the_proxy() {
    let python = std::env::var("APIMON_SDK_PYTHON")
        .expect("APIMON_SDK_PYTHON names the virtual environment's python");
    let mut a_models = SHARED_MODELS.to_vec();
    a_models.extend_from_slice(A_ONLY);
    let relay_a = relay(&a_models).await;
    let mut b_models = SHARED_MODELS.to_vec();
    b_models.extend_from_slice(B_AND_C);
    let relay_b = relay(&b_models).await;
    let relay_c = relay(B_AND_C).await;
    let controls = [
        relay_a.serve_control().await,
        relay_b.serve_control().await,
        relay_c.serve_control().await,
    ];
    let d = TestDaemon::start_with(&[
        ("API_MONITOR_TOKEN", ADMIN_TOKEN),
        ("PROXY_MASTER_TOKEN", MASTER),
        ("PROXY_BREAKER_COOLDOWN_S", "1"),
    ])
    .await;
    let alpha = channel(&d, "alpha", &relay_a.base_url()).await;
    let beta = channel(&d, "beta", &relay_b.base_url()).await;
    let gamma = channel(&d, "gamma", &relay_c.base_url()).await;
    for id in ["alpha/gpt-usage", "beta/gpt-4o-mini", "gamma/gpt-refused"] {
        wait_listed(&d, id).await;
    }
    let (s, v) = d
        .admin(
            Method::POST,
            "/api/proxy/keys",
            Some(&json!({"name": "sdk tests"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let key = v["proxy_key"].as_str().expect("the new key").to_string();
    let keys_file = tempfile::NamedTempFile::new().unwrap();
    // Only the SDK calls below reach the relays from here on.
    for r in [&relay_a, &relay_b, &relay_c] {
        r.clear_received();
    }

    let root = repo_root();
    let mut pytest = tokio::process::Command::new(&python);
    pytest
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/sdk"])
        .current_dir(&root)
        .env("APIMON_URL", &d.base)
        .env("APIMON_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("APIMON_MASTER_TOKEN", MASTER)
        .env("APIMON_PROXY_KEY", &key)
        .env("APIMON_CHANNEL_KEY", UPSTREAM_KEY)
        .env(
            "APIMON_CHANNELS",
            json!({"alpha": alpha, "beta": beta, "gamma": gamma}).to_string(),
        )
        .env(
            "APIMON_RELAYS",
            json!({"a": controls[0], "b": controls[1], "c": controls[2]}).to_string(),
        )
        .env("APIMON_SDK_KEYS_FILE", keys_file.path())
        .kill_on_drop(true);
    let status = tokio::time::timeout(Duration::from_secs(900), pytest.status())
        .await
        .expect("the SDK tests finish within 15 minutes")
        .expect("python starts");
    assert!(status.success(), "the SDK tests failed: {status}");

    // Every key a client presented: the master token, this key, and those the tests made.
    let mut client_keys = vec![MASTER.to_string(), key];
    client_keys.extend(
        std::fs::read_to_string(keys_file.path())
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from),
    );
    assert!(client_keys.len() > 2, "the tests made keys of their own");
    let mut generation = 0;
    for (name, r) in [("a", &relay_a), ("b", &relay_b), ("c", &relay_c)] {
        for record in r.received() {
            for k in &client_keys {
                assert!(
                    !record.mentions(k),
                    "relay {name} received a client's key in {} {}",
                    record.method,
                    record.path
                );
            }
            if record.model.is_some() {
                generation += 1;
                let carried = ["authorization", "x-api-key", "x-goog-api-key"]
                    .iter()
                    .any(|h| record.header(h).is_some_and(|v| v.contains(UPSTREAM_KEY)))
                    || record.query.contains(UPSTREAM_KEY);
                assert!(
                    carried,
                    "relay {name}: {} without the channel key",
                    record.path
                );
            }
        }
    }
    assert!(
        generation >= 40,
        "only {generation} requests reached the relays"
    );
}
