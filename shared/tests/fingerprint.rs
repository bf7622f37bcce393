//! The `browser` profile's TLS fingerprint against real Chromium's: testkit's recorder
//! reads the ClientHello of a fresh connection to `https://localhost:PORT` (so SNI is
//! sent) and computes its JA4 (checked against FoxIO's published examples in
//! `testkit::ja4`). It must equal the literal captured by the same recorder from the
//! real Chromium 149 the profile emulates, and differ from the one captured from
//! Chromium 156 only as documented below; the `plain` profile's must match neither.
//! JA4 sorts ciphers and extensions, so Chrome's per-connection extension shuffling
//! does not change it (JA3 would). The captures are a one-time developer step
//! (`scripts/capture-ja4.sh`); these tests only compare against the literals.

use std::collections::BTreeMap;
use std::time::Duration;

use shared::Secret;
use shared::probe::route::default_rules;
use shared::probe::{CheckMode, ClientProfile, ProbeSettings, Prober};
use testkit::HelloRecorder;
use testkit::ja4::ClientHello;

/// Captured with `scripts/capture-ja4.sh --chromium-149` from Chromium 149.0.7827.0 (the
/// headless shell shipped in the npm package `@sparticuz/chromium@149.0.0`, tarball
/// SHA-1 `584bbeb7…`), headless with a fresh profile; the same value three runs out of
/// three. This is the release wreq-util's Chrome 149 emulation imitates, and the JA4
/// other recorders publish for real Chrome 136 to 149 (Chrome 149.0.7827.201, Chrome
/// 146 on tls.browserleaks.com).
const CHROMIUM_149_JA4: &str = "t13d1516h2_8daaf6152771_d8a2da3f94cd";
const CHROMIUM_149_JA4_R: &str = "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0017,001b,0023,002b,002d,0033,44cd,fe0d,ff01_0403,0804,0401,0503,0805,0501,0806,0601";

/// Captured with `scripts/capture-ja4.sh` from Debian's Chromium 156.0.8078.108
/// (bookworm), headless with a fresh profile. FoxIO publishes the same JA4 for a Chrome
/// hello of this generation (`python/test/testdata/sigalg-grease.pcapng.json`).
///
/// It differs from Chromium 149 by exactly two additions that the BoringSSL inside
/// wreq cannot send: the ML-DSA signature algorithms (`0904,0905,0906`, from Chromium
/// 150 on) and the `trust_anchors` extension (`ca34`).
/// `the_browser_profile_is_chromium_156_but_for_two_additions` pins that difference,
/// so any other drift fails.
const CHROMIUM_156_JA4: &str = "t13d1517h2_8daaf6152771_cb7bf5808d99";
const CHROMIUM_156_JA4_R: &str = "t13d1517h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0017,001b,0023,002b,002d,0033,44cd,ca34,fe0d,ff01_0904,0905,0906,0403,0804,0401,0503,0805,0501,0806,0601";

async fn hello_of(profile: ClientProfile) -> ClientHello {
    let recorder = HelloRecorder::start(0).await.expect("a free port");
    let s = ProbeSettings {
        base_url: recorder.url(),
        api_key: Secret::new("sk-fingerprint-test-0000"),
        timeout: Duration::from_secs(5),
        verify_ssl: false,
        anthropic_version: "2023-06-01".into(),
        extra_headers: BTreeMap::new(),
        user_agent: None,
        max_tokens: None,
        check_mode: CheckMode::Challenge,
        prompt: "hi".into(),
        slow_ms: 10_000,
        route_overrides: Vec::new(),
        proxy: Default::default(),
        client_profile: profile,
    };
    // The recorder refuses the handshake: discovery fails, the hello is recorded.
    let e = Prober::new(default_rules()).discover(&s).await.unwrap_err();
    let hellos = recorder.wait_for(1, Duration::from_secs(5)).await;
    let hello = hellos
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no hello: {e}"));
    assert_eq!(
        hello.server_name.as_deref(),
        Some("localhost"),
        "SNI is sent"
    );
    hello
}

#[tokio::test]
async fn the_browser_profile_has_chromium_149s_ja4() {
    let hello = hello_of(ClientProfile::Browser).await;
    assert_eq!(hello.ja4(), CHROMIUM_149_JA4, "{}", hello.ja4_r());
    // The raw form too: the same ciphers, extensions and signature algorithms in the
    // same order, not only the same hashes.
    assert_eq!(hello.ja4_r(), CHROMIUM_149_JA4_R);
}

#[tokio::test]
async fn the_browser_profile_is_chromium_156_but_for_two_additions() {
    let hello = hello_of(ClientProfile::Browser).await;
    let without_additions = CHROMIUM_156_JA4_R
        .replacen("t13d1517h2", "t13d1516h2", 1)
        .replacen(",ca34", "", 1)
        .replacen("_0904,0905,0906,", "_", 1);
    assert_eq!(hello.ja4_r(), without_additions);
    // The ciphers, and so JA4's middle part, are Chromium's exactly.
    assert_eq!(
        hello.ja4()[..23],
        CHROMIUM_156_JA4[..23].replacen("1517", "1516", 1)
    );
}

#[tokio::test]
async fn the_plain_profile_looks_like_neither() {
    let hello = hello_of(ClientProfile::Plain).await;
    assert!(hello.ja4().starts_with("t13d"), "{}", hello.ja4());
    assert_ne!(hello.ja4(), CHROMIUM_149_JA4);
    assert_ne!(hello.ja4_r(), CHROMIUM_149_JA4_R);
    assert_ne!(hello.ja4(), CHROMIUM_156_JA4);
}
