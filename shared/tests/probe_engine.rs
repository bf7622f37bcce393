//! The probe engine against the fake upstream: every protocol streamed and plain,
//! every misbehaviour classified, the retry, timeouts, size caps, the answer check and
//! discovery failures. Real HTTP over loopback. Every behaviour runs with both client
//! profiles (`browser::…` and `plain::…`): they must not differ in what they report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shared::Secret;
use shared::probe::route::default_rules;
use shared::probe::{
    CheckMode, ClientProfile, ErrorClass, ModelStatus, ProbeSettings, Prober, Protocol,
};
use testkit::{Discovery, FakeConfig, FakeUpstream};

const KEY: &str = "sk-fake-upstream-key-0123456789";

fn settings(base: &str, profile: ClientProfile) -> ProbeSettings {
    ProbeSettings {
        base_url: format!("{base}/v1/"),
        api_key: Secret::new(KEY),
        timeout: Duration::from_secs(5),
        verify_ssl: true,
        anthropic_version: "2023-06-01".into(),
        extra_headers: BTreeMap::new(),
        user_agent: None,
        max_tokens: None,
        check_mode: CheckMode::Challenge,
        prompt: "Say hi".into(),
        slow_ms: 10_000,
        route_overrides: Vec::new(),
        proxy: Default::default(),
        client_profile: profile,
    }
}

async fn fake() -> FakeUpstream {
    FakeUpstream::start(FakeConfig {
        api_key: KEY.into(),
        slow_delay: Duration::from_millis(1200),
        ..FakeConfig::default()
    })
    .await
}

async fn every_protocol_passes_streamed_and_plain_with_timings(profile: ClientProfile) {
    let up = fake().await;
    let p = Prober::new(default_rules());
    let s = settings(&up.base_url(), profile);
    for (model, protocol) in [
        ("gpt-4o", Protocol::Openai),
        ("gpt-5-mini", Protocol::Responses),
        ("claude-3-5-sonnet", Protocol::Anthropic),
        ("gemini-2.0-flash", Protocol::Gemini),
    ] {
        for stream in [true, false] {
            let r = p.probe(&s, model, stream).await;
            assert!(r.success, "{model} stream={stream}: {:?}", r.error);
            assert_eq!(r.status, ModelStatus::Ok);
            assert_eq!(r.protocol, protocol);
            assert_eq!(r.stream, stream);
            assert_eq!(r.status_code, Some(200));
            assert!(r.ttfb_ms.is_some() && r.ttft_ms.is_some(), "{model}: {r:?}");
            assert!(r.ttft_ms.unwrap() >= r.ttfb_ms.unwrap());
            assert!(r.total_ms >= r.ttft_ms.unwrap());
            assert!(r.output_tokens.unwrap() > 0);
            assert!(r.tokens_per_s.unwrap() > 0.0);
            assert_eq!(r.returned_model.as_deref(), Some(model), "{model}");
            assert!(!r.model_mismatch);
            assert!(!r.content.is_empty());
            assert_eq!(r.attempts, 1);
            assert!(r.error_class.is_none());
        }
    }
    let headers = up.last_headers().unwrap();
    assert_eq!(headers["x-goog-api-key"], KEY, "gemini's own auth header");
}

async fn each_protocol_sends_its_own_auth_headers_and_extra_headers(profile: ClientProfile) {
    let up = fake().await;
    let p = Prober::new(default_rules());
    let mut s = settings(&up.base_url(), profile);
    s.extra_headers
        .insert("x-relay-tenant".into(), shared::Secret::new("team-a"));
    s.user_agent = Some("Mozilla/5.0 (apimon test)".into());
    s.anthropic_version = "2024-01-01".into();
    for (model, header, value) in [
        ("gpt-4o", "authorization", format!("Bearer {KEY}")),
        ("claude-3-haiku", "x-api-key", KEY.to_string()),
        ("gemini-pro", "x-goog-api-key", KEY.to_string()),
    ] {
        assert!(p.probe(&s, model, false).await.success);
        let h = up.last_headers().unwrap();
        assert_eq!(h[header], value.as_str(), "{model}");
        assert_eq!(h["x-relay-tenant"], "team-a");
        assert_eq!(h["user-agent"], "Mozilla/5.0 (apimon test)");
        if model.starts_with("claude") {
            assert_eq!(h["anthropic-version"], "2024-01-01");
            assert!(
                h.get("authorization").is_none(),
                "no Bearer where x-api-key is used"
            );
        }
    }
    // The body: max_tokens for chat models, max_completion_tokens for reasoning ones.
    p.probe(&s, "gpt-4o", false).await;
    assert_eq!(up.last_body().unwrap()["max_tokens"], 512);
    p.probe(&s, "o3-mini-override", false).await;
    assert!(
        up.last_body().unwrap().get("max_output_tokens").is_some(),
        "o3 goes to /v1/responses"
    );
    s.route_overrides = vec![shared::probe::RouteRule {
        pattern: "o3*".into(),
        protocol: Protocol::Openai,
    }];
    s.max_tokens = Some(64);
    let r = p.probe(&s, "o3-mini", true).await;
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.route_rule, "o3*");
    assert_eq!(up.last_body().unwrap()["max_completion_tokens"], 64);
}

async fn time_to_first_token_ignores_a_role_only_chunk(profile: ClientProfile) {
    let up = fake().await;
    let p = Prober::new(default_rules());
    let s = settings(&up.base_url(), profile);
    // The role-only chunk and headers come at once; the content 1.2 s later.
    for model in ["gpt-4o-slow", "claude-slow", "gpt-5-slow"] {
        let r = p.probe(&s, model, true).await;
        assert!(r.success, "{model}: {:?}", r.error);
        assert!(
            r.ttfb_ms.unwrap() < 800.0,
            "{model}: headers came early: {r:?}"
        );
        assert!(
            r.ttft_ms.unwrap() >= 1150.0,
            "{model}: the first token is the content: {r:?}"
        );
    }
    // A role-only chunk followed by silence never counts as a first token.
    let mut short = s.clone();
    short.timeout = Duration::from_secs(3);
    let r = p.probe(&short, "gpt-4o-roleonlyhang", true).await;
    assert_eq!(r.error_class, Some(ErrorClass::Timeout), "{r:?}");
    assert_eq!(r.ttft_ms, None);
    // Reasoning deltas do count.
    let r = p.probe(&s, "gpt-4o-reasoning", true).await;
    assert!(r.success, "{:?}", r.error);
}

async fn a_passing_probe_over_slow_ms_is_slow(profile: ClientProfile) {
    let up = fake().await;
    let p = Prober::new(default_rules());
    let mut s = settings(&up.base_url(), profile);
    s.slow_ms = 500;
    let r = p.probe(&s, "gpt-4o-slow", true).await;
    assert!(r.success);
    assert_eq!(r.status, ModelStatus::Slow);
}

/// (model, streamed, expected class, requests the fake should have seen)
const MISBEHAVIOURS: &[(&str, bool, ErrorClass, usize)] = &[
    ("gpt-4o-err500", true, ErrorClass::Upstream5xx, 2),
    ("gpt-4o-err503", false, ErrorClass::Upstream5xx, 2),
    ("claude-err529", true, ErrorClass::Upstream5xx, 2),
    ("gpt-4o-err429", true, ErrorClass::RateLimit, 2),
    ("gpt-4o-quota", true, ErrorClass::Quota, 1),
    ("gpt-4o-err401", true, ErrorClass::Auth, 1),
    ("gpt-4o-notfound", false, ErrorClass::ModelNotFound, 1),
    ("gpt-4o-err400", true, ErrorClass::BadRequest, 1),
    ("gpt-4o-error200", false, ErrorClass::Upstream5xx, 2),
    ("gpt-4o-error200s", true, ErrorClass::Upstream5xx, 2),
    ("gpt-4o-cnfail", false, ErrorClass::Quota, 1),
    ("gpt-4o-codefail", false, ErrorClass::ModelNotFound, 1),
    ("gpt-4o-midstream", true, ErrorClass::StreamBroken, 1),
    ("claude-midstream", true, ErrorClass::StreamBroken, 1),
    ("gpt-5-midstream", true, ErrorClass::StreamBroken, 1),
    ("gemini-midstream", true, ErrorClass::StreamBroken, 1),
    ("gpt-4o-nonjson", false, ErrorClass::BadResponse, 1),
    ("gpt-4o-nonjsons", true, ErrorClass::BadResponse, 1),
    ("gpt-4o-emptytext", true, ErrorClass::BadResponse, 1),
    ("claude-emptytext", false, ErrorClass::BadResponse, 1),
    ("gpt-4o-reasoningonly", true, ErrorClass::BadResponse, 1),
    ("gemini-reasoningonly", false, ErrorClass::BadResponse, 1),
    ("gpt-4o-cut", true, ErrorClass::StreamBroken, 1),
    ("claude-cut", true, ErrorClass::StreamBroken, 1),
    ("gpt-5-cut", true, ErrorClass::StreamBroken, 1),
    ("gemini-cut", true, ErrorClass::StreamBroken, 1),
    ("gpt-4o-cutplain", false, ErrorClass::BadResponse, 1),
    ("gpt-4o-wronganswer", true, ErrorClass::WrongAnswer, 1),
    ("claude-wronganswer", false, ErrorClass::WrongAnswer, 1),
    ("gpt-4o-filter", true, ErrorClass::ContentFilter, 1),
    ("gemini-filter", false, ErrorClass::ContentFilter, 1),
    ("gpt-4o-garbage", true, ErrorClass::BadResponse, 1),
    ("gpt-4o-huge", false, ErrorClass::BadResponse, 1),
    ("gpt-4o-huges", true, ErrorClass::BadResponse, 1),
];

async fn every_misbehaviour_fails_with_its_class_and_only_momentary_ones_retry(
    profile: ClientProfile,
) {
    let up = fake().await;
    let p = Prober::new(default_rules());
    let s = settings(&up.base_url(), profile);
    for (model, stream, class, requests) in MISBEHAVIOURS {
        let r = p.probe(&s, model, *stream).await;
        assert!(!r.success, "{model}: {r:?}");
        assert_eq!(r.status, ModelStatus::Fail);
        assert_eq!(
            r.error_class,
            Some(*class),
            "{model} stream={stream}: {:?}",
            r.error
        );
        assert!(r.error.as_deref().is_some_and(|e| !e.is_empty()));
        assert_eq!(up.requests_for(model), *requests, "{model}: requests");
        assert_eq!(r.attempts as usize, *requests, "{model}: attempts");
        assert!(!r.error.unwrap().contains(KEY), "{model}: the key leaked");
    }
    let r = p.probe(&s, "gpt-4o-reasoningonly2", true).await;
    assert!(
        r.error.unwrap().contains("reasoning"),
        "empty after reasoning says so"
    );
    let r = p.probe(&s, "gpt-4o-emptytext2", true).await;
    assert_ne!(
        r.error_class,
        Some(ErrorClass::WrongAnswer),
        "empty is never a wrong answer"
    );
}

async fn momentary_failures_that_recover_pass_on_the_retry(profile: ClientProfile) {
    let up = fake().await;
    let p = Prober::new(default_rules());
    let s = settings(&up.base_url(), profile);
    for model in ["gpt-4o-flaky", "claude-flaky429"] {
        let started = Instant::now();
        let r = p.probe(&s, model, true).await;
        assert!(r.success, "{model}: {:?}", r.error);
        assert_eq!(r.attempts, 2);
        assert_eq!(up.requests_for(model), 2);
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "waited for Retry-After or the default pause"
        );
    }
}

async fn relay_framing_and_returned_model_quirks_are_handled(profile: ClientProfile) {
    let up = fake().await;
    let p = Prober::new(default_rules());
    let s = settings(&up.base_url(), profile);
    for model in [
        "gpt-4o-relay",
        "claude-relay",
        "gpt-5-relay",
        "gemini-relay",
    ] {
        let r = p.probe(&s, model, true).await;
        assert!(r.success, "{model}: {:?}", r.error);
    }
    let r = p.probe(&s, "gpt-4o-wrongmodel", true).await;
    assert!(r.success);
    assert!(r.model_mismatch);
    assert_eq!(r.returned_model.as_deref(), Some("some-other-model"));
    let r = p.probe(&s, "gpt-4o-datedmodel", false).await;
    assert!(r.success);
    assert!(
        !r.model_mismatch,
        "a dated form is the same model: {:?}",
        r.returned_model
    );
}

async fn prompt_mode_passes_any_text_and_challenge_mode_needs_the_answer(profile: ClientProfile) {
    let up = fake().await;
    let p = Prober::new(default_rules());
    let mut s = settings(&up.base_url(), profile);
    s.check_mode = CheckMode::Prompt;
    let r = p.probe(&s, "gpt-4o-wronganswer", true).await;
    assert!(r.success, "prompt mode passes on any text: {:?}", r.error);
    assert_eq!(up.last_body().unwrap()["messages"][0]["content"], "Say hi");
    s.check_mode = CheckMode::Challenge;
    let r = p.probe(&s, "gpt-4o-wronganswer", true).await;
    assert_eq!(r.error_class, Some(ErrorClass::WrongAnswer));
}

async fn a_hanging_model_times_out_within_its_limit(profile: ClientProfile) {
    let up = fake().await;
    let p = Prober::new(default_rules());
    let mut s = settings(&up.base_url(), profile);
    s.timeout = Duration::from_secs(3);
    for (model, stream) in [
        ("gpt-4o-hang", true),
        ("gpt-4o-endless", true),
        ("gpt-4o-endless", false),
    ] {
        let started = Instant::now();
        let r = p.probe(&s, model, stream).await;
        let took = started.elapsed();
        assert!(!r.success);
        assert!(
            matches!(
                r.error_class,
                Some(ErrorClass::Timeout) | Some(ErrorClass::BadResponse)
            ),
            "{model}: {r:?}"
        );
        // Two attempts of at most timeout_s each, plus the pause between them.
        assert!(
            took < Duration::from_secs(3 * 2 + 2),
            "{model} took {took:?}"
        );
        assert!(
            r.total_ms <= 3000.0 + 500.0,
            "one attempt stays within timeout_s: {}",
            r.total_ms
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        up.dropped() >= 3,
        "the fake saw the client hang up: {}",
        up.dropped()
    );
    assert_eq!(up.in_flight(), 0, "nothing left hanging");
}

async fn over_size_replies_stop_being_read(profile: ClientProfile) {
    let up = fake().await;
    let p = Prober::new(default_rules());
    let s = settings(&up.base_url(), profile);
    let before = up.dropped();
    let r = p.probe(&s, "gpt-4o-huge", false).await;
    assert_eq!(r.error_class, Some(ErrorClass::BadResponse));
    assert!(r.error.unwrap().contains("stopped reading"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        up.dropped() > before,
        "the client hung up instead of reading 64 MiB"
    );
}

async fn discovery_lists_models_and_every_failure_is_a_clear_error(profile: ClientProfile) {
    let up = fake().await;
    let p = Prober::new(default_rules());
    let mut s = settings(&up.base_url(), profile);
    up.set_models(vec!["b".into(), "a".into(), "b".into()]);
    assert_eq!(
        p.discover(&s).await.unwrap(),
        ["b", "a"],
        "order kept, duplicates dropped"
    );
    s.timeout = Duration::from_secs(3);
    for (d, class, words) in [
        (Discovery::Status(500), ErrorClass::Upstream5xx, "HTTP 500"),
        (Discovery::Status(401), ErrorClass::Auth, "HTTP 401"),
        (
            Discovery::NonJson,
            ErrorClass::BadResponse,
            "did not answer JSON",
        ),
        (
            Discovery::MissingData,
            ErrorClass::BadResponse,
            "without a data[] list",
        ),
        (Discovery::Empty, ErrorClass::BadResponse, "empty list"),
        (Discovery::Hang, ErrorClass::Timeout, "within timeout_s"),
    ] {
        up.set_discovery(d);
        let e = p.discover(&s).await.unwrap_err();
        assert_eq!(e.class, class, "{}", e.message);
        assert!(e.message.contains(words), "{}", e.message);
        assert!(e.message.starts_with("model discovery failed"));
    }
    // A wrong key: the relay echoes it, the message does not.
    up.set_discovery(Discovery::Ok);
    s.api_key = Secret::new("sk-wrong-key-echoed-back-0000");
    let e = p.discover(&s).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Auth);
    assert!(
        !e.message.contains("sk-wrong-key-echoed-back-0000"),
        "{}",
        e.message
    );
    assert!(e.message.contains("[redacted]"), "{}", e.message);
}

async fn connection_failures_are_network_errors(profile: ClientProfile) {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let p = Prober::new(default_rules());
    let s = settings(&format!("http://127.0.0.1:{port}"), profile);
    let r = p.probe(&s, "gpt-4o", true).await;
    assert_eq!(r.error_class, Some(ErrorClass::Network), "{r:?}");
    assert!(!r.transport_success);
    let error = r.error.clone().unwrap();
    assert!(
        !error.contains(&port.to_string()),
        "the relay URL stays out of the message: {error}"
    );
    assert_eq!(r.attempts, 2, "network failures retry once");
}

async fn a_self_signed_relay_fails_as_tls_unless_verify_ssl_is_off(profile: ClientProfile) {
    let up = FakeUpstream::start_tls(FakeConfig {
        api_key: KEY.into(),
        ..FakeConfig::default()
    })
    .await;
    assert!(up.base_url().starts_with("https://"));
    let p = Prober::new(default_rules());
    let mut s = settings(&up.base_url(), profile);
    let r = p.probe(&s, "gpt-4o", true).await;
    assert_eq!(r.error_class, Some(ErrorClass::Tls), "{r:?}");
    assert_eq!(r.attempts, 1, "a certificate problem is not retried");
    assert!(!r.transport_success);
    let e = p.discover(&s).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Tls, "{}", e.message);

    s.verify_ssl = false;
    let r = p.probe(&s, "claude-3-haiku", true).await;
    assert!(r.success, "{:?}", r.error);
    assert!(p.discover(&s).await.is_ok());
}

#[tokio::test]
async fn the_browser_profile_sends_chrome_headers_and_plain_its_own() {
    let up = fake().await;
    let p = Prober::new(default_rules());
    let r = p
        .probe(
            &settings(&up.base_url(), ClientProfile::Browser),
            "gpt-4o",
            true,
        )
        .await;
    assert!(r.success, "{:?}", r.error);
    let h = up.last_headers().unwrap();
    let ua = h["user-agent"].to_str().unwrap();
    assert!(
        ua.starts_with("Mozilla/5.0") && ua.contains("Chrome/"),
        "{ua}"
    );
    assert!(h["sec-ch-ua"].to_str().unwrap().contains("Chromium"));
    assert_eq!(h["accept"], "*/*");
    assert!(h.contains_key("accept-language"));

    let r = p
        .probe(
            &settings(&up.base_url(), ClientProfile::Plain),
            "gpt-4o",
            true,
        )
        .await;
    assert!(r.success, "{:?}", r.error);
    let h = up.last_headers().unwrap();
    assert!(h["user-agent"].to_str().unwrap().starts_with("apimon/"));
    assert!(!h.contains_key("sec-ch-ua"));
}

/// Runs each behaviour once per client profile, as `browser::name` and `plain::name`.
macro_rules! with_each_profile {
    ($($name:ident),* $(,)?) => {
        mod browser {
            $(#[tokio::test]
            async fn $name() {
                super::$name(shared::probe::ClientProfile::Browser).await
            })*
        }
        mod plain {
            $(#[tokio::test]
            async fn $name() {
                super::$name(shared::probe::ClientProfile::Plain).await
            })*
        }
    };
}

with_each_profile!(
    every_protocol_passes_streamed_and_plain_with_timings,
    each_protocol_sends_its_own_auth_headers_and_extra_headers,
    time_to_first_token_ignores_a_role_only_chunk,
    a_passing_probe_over_slow_ms_is_slow,
    every_misbehaviour_fails_with_its_class_and_only_momentary_ones_retry,
    momentary_failures_that_recover_pass_on_the_retry,
    relay_framing_and_returned_model_quirks_are_handled,
    prompt_mode_passes_any_text_and_challenge_mode_needs_the_answer,
    a_hanging_model_times_out_within_its_limit,
    over_size_replies_stop_being_read,
    discovery_lists_models_and_every_failure_is_a_clear_error,
    connection_failures_are_network_errors,
    a_self_signed_relay_fails_as_tls_unless_verify_ssl_is_off,
);
