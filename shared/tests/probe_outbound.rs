//! Probes through outbound proxies: testkit's local HTTP (CONNECT and forwarding) and
//! SOCKS5 proxies, with and without credentials, the global default against a
//! target's own choice, and a wrong proxy failing as `network` without leaking the
//! proxy's password or the key. Real HTTP over loopback.

use std::collections::BTreeMap;
use std::time::Duration;

use shared::Secret;
use shared::probe::route::default_rules;
use shared::probe::{
    CheckMode, ClientProfile, ErrorClass, ProbeSettings, Prober, ProxyChoice, ProxyUrl,
};
use testkit::{FakeConfig, FakeUpstream, HttpProxy, Socks5Proxy};

const KEY: &str = "sk-fake-upstream-key-0123456789";
const PASSWORD: &str = "pr0xy-pa55word";

fn settings(base: &str, proxy: ProxyChoice, profile: ClientProfile) -> ProbeSettings {
    ProbeSettings {
        base_url: base.to_string(),
        api_key: Secret::new(KEY),
        timeout: Duration::from_secs(5),
        verify_ssl: false,
        anthropic_version: "2023-06-01".into(),
        extra_headers: BTreeMap::new(),
        user_agent: None,
        max_tokens: None,
        check_mode: CheckMode::Challenge,
        prompt: "Say hi".into(),
        slow_ms: 10_000,
        route_overrides: Vec::new(),
        proxy,
        client_profile: profile,
    }
}

fn via(url: &str) -> ProxyChoice {
    ProxyChoice::Via(ProxyUrl::parse(url).expect("a valid proxy URL"))
}

async fn relays() -> [FakeUpstream; 2] {
    let config = FakeConfig {
        api_key: KEY.into(),
        ..FakeConfig::default()
    };
    [
        FakeUpstream::start(config.clone()).await,
        FakeUpstream::start_tls(config).await,
    ]
}

/// Discovery and a streamed probe through `proxy` to both relays (plain HTTP is
/// forwarded, HTTPS tunnelled) pass, with both client profiles.
async fn probes_pass_through(proxy: &str) {
    let p = Prober::new(default_rules());
    for (up, profile) in relays().await.into_iter().flat_map(|up| {
        let up = std::sync::Arc::new(up);
        ClientProfile::ALL.map(|profile| (up.clone(), profile))
    }) {
        let s = settings(&up.base_url(), via(proxy), profile);
        let models = p.discover(&s).await.expect("discovery through the proxy");
        assert!(models.contains(&"gpt-4o-mini".to_string()));
        let r = p.probe(&s, "gpt-4o-mini", true).await;
        assert!(r.success, "{} {profile:?}: {:?}", up.base_url(), r.error);
        assert!(up.requests() >= 1);
    }
}

#[tokio::test]
async fn probes_pass_through_an_http_proxy_with_and_without_credentials() {
    let open = HttpProxy::start(None).await;
    probes_pass_through(&open.url()).await;
    assert!(open.relayed() >= 4, "the proxy relayed {}", open.relayed());

    let guarded = HttpProxy::start(Some(("alice", PASSWORD))).await;
    probes_pass_through(&guarded.url()).await;
    assert!(guarded.relayed() >= 4);
    assert_eq!(guarded.refused(), 0);
}

#[tokio::test]
async fn probes_pass_through_a_socks5_proxy_with_and_without_credentials() {
    let open = Socks5Proxy::start(None).await;
    probes_pass_through(&open.url()).await;
    assert!(open.relayed() >= 4);

    let guarded = Socks5Proxy::start(Some(("alice", PASSWORD))).await;
    probes_pass_through(&guarded.url()).await;
    assert!(guarded.relayed() >= 4);
    assert_eq!(guarded.refused(), 0);
    let socks5h = guarded.url().replacen("socks5://", "socks5h://", 1);
    probes_pass_through(&socks5h).await;
}

#[tokio::test]
async fn the_default_proxy_applies_unless_the_target_chooses() {
    let [up, _] = relays().await;
    let default = HttpProxy::start(None).await;
    let own = Socks5Proxy::start(None).await;
    let p = Prober::new(default_rules())
        .with_default_proxy(Some(ProxyUrl::parse(&default.url()).unwrap()));

    let r = p
        .probe(
            &settings(&up.base_url(), ProxyChoice::Default, ClientProfile::Browser),
            "gpt-4o",
            false,
        )
        .await;
    assert!(r.success, "{:?}", r.error);
    assert_eq!(default.relayed(), 1);
    assert_eq!(default.last_destination(), Some(up.addr().to_string()));

    let r = p
        .probe(
            &settings(&up.base_url(), ProxyChoice::Direct, ClientProfile::Plain),
            "gpt-4o",
            false,
        )
        .await;
    assert!(r.success, "{:?}", r.error);
    assert_eq!(
        default.accepted(),
        1,
        "direct must not touch the default proxy"
    );

    let r = p
        .probe(
            &settings(&up.base_url(), via(&own.url()), ClientProfile::Browser),
            "gpt-4o",
            false,
        )
        .await;
    assert!(r.success, "{:?}", r.error);
    assert_eq!(own.relayed(), 1);
    assert_eq!(default.accepted(), 1);
}

/// The failure is `network` and names the proxy only masked.
fn assert_proxy_failure(error_class: Option<ErrorClass>, error: &str, what: &str) {
    assert_eq!(error_class, Some(ErrorClass::Network), "{what}: {error}");
    assert!(error.contains("proxy"), "{what}: {error}");
    assert!(!error.contains(PASSWORD), "{what}: {error}");
    assert!(!error.contains(KEY), "{what}: {error}");
    assert!(!error.contains("alice"), "{what}: {error}");
}

#[tokio::test]
async fn a_wrong_proxy_fails_as_network_without_leaking_its_password() {
    let [plain, tls] = relays().await;
    let p = Prober::new(default_rules());
    // Nothing listens there: bind a port and let it go.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let http_guarded = HttpProxy::start(Some(("alice", PASSWORD))).await;
    let socks_guarded = Socks5Proxy::start(Some(("alice", PASSWORD))).await;
    let wrong_password = |url: String| url.replace(PASSWORD, "wrong-pa55word-but-long");
    let cases = [
        format!("http://alice:{PASSWORD}@127.0.0.1:{dead_port}"),
        format!("socks5://alice:{PASSWORD}@127.0.0.1:{dead_port}"),
        wrong_password(http_guarded.url()),
        wrong_password(socks_guarded.url()),
        // Credentials missing altogether.
        format!("http://{}", http_guarded.addr()),
        format!("socks5://{}", socks_guarded.addr()),
    ];
    for proxy in &cases {
        for (up, profile) in [
            (&plain, ClientProfile::Browser),
            (&tls, ClientProfile::Browser),
            (&plain, ClientProfile::Plain),
            (&tls, ClientProfile::Plain),
        ] {
            let s = settings(&up.base_url(), via(proxy), profile);
            let r = p.probe(&s, "gpt-4o", true).await;
            assert!(!r.success, "{proxy} → {} {profile:?}", up.base_url());
            assert_proxy_failure(r.error_class, r.error.as_deref().unwrap_or(""), proxy);
            let e = p.discover(&s).await.unwrap_err();
            assert_proxy_failure(Some(e.class), &e.message, proxy);
        }
    }
    assert!(http_guarded.refused() >= 8);
    assert!(socks_guarded.refused() >= 8);
    assert_eq!(plain.requests() + tls.requests(), 0);
}
