//! The configuration as an operator meets it: defaults, the file, and one-line errors
//! naming the variable, the value and what is allowed.

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.entry("DATA_DIR".into())
        .or_insert_with(|| "/tmp/apimon-test".into());
    m
}

fn err(pairs: &[(&str, &str)]) -> String {
    Config::from_sources(&env(pairs), None)
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn defaults_match_the_spec() {
    let c = Config::from_sources(&env(&[]), None).unwrap();
    assert_eq!(c.listen.port, 8081);
    assert_eq!(c.listen.host, IpAddr::from([127, 0, 0, 1]));
    assert_eq!(c.scheduler.detect_concurrency, 3);
    assert_eq!(c.scheduler.max_parallel_targets, 2);
    assert_eq!(c.panel.default_interval_min, None);
    assert!(c.auth.trusted_proxies.is_empty());
    assert_eq!(
        c.paths.socket_path,
        PathBuf::from("/tmp/apimon-test/apimond.sock")
    );
    assert!(!c.sources.contains_key("PORT"));
    assert_eq!(c.time_zone, jiff::tz::TimeZone::UTC);
    let berlin = Config::from_sources(&env(&[("APIMON_TIMEZONE", "Europe/Berlin")]), None);
    assert_eq!(berlin.unwrap().time_zone.iana_name(), Some("Europe/Berlin"));
}

#[test]
fn http_threads_default_to_two_per_cpu_and_a_set_count_is_kept() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let c = Config::from_sources(&env(&[]), None).unwrap();
    assert_eq!(c.listen.threads, 2 * cpus);
    let zero = Config::from_sources(&env(&[("HTTP_THREADS", "0")]), None).unwrap();
    assert_eq!(zero.listen.threads, 2 * cpus);
    let three = Config::from_sources(&env(&[("HTTP_THREADS", "3")]), None).unwrap();
    assert_eq!(three.listen.threads, 3);
    assert_eq!(default_http_threads(1), 2);
    assert_eq!(default_http_threads(0), 2, "no CPU count still serves");
    assert_eq!(
        default_http_threads(512),
        256,
        "the most a set count may be"
    );
}

#[test]
fn each_bad_value_names_the_variable_the_value_and_what_is_allowed() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("PORT", "abc")],
            "invalid PORT=abc: an integer from 0 to 65535",
        ),
        (
            &[("PORT", "70000")],
            "invalid PORT=70000: an integer from 0 to 65535",
        ),
        (
            &[("DEFAULT_INTERVAL_MIN", "0")],
            "invalid DEFAULT_INTERVAL_MIN=0: an integer from 1 to 1440",
        ),
        (
            &[("HOST", "nowhere")],
            "invalid HOST=nowhere: an IP address",
        ),
        (
            &[("LOG_CLEANUP_ENABLED", "maybe")],
            "invalid LOG_CLEANUP_ENABLED=maybe: true or false",
        ),
        (
            &[("LOG_MAX_SIZE_MB", "-1")],
            "invalid LOG_MAX_SIZE_MB=-1: an integer from 0 to 102400",
        ),
        (
            &[("MONITOR_DETECT_CONCURRENCY", "0")],
            "invalid MONITOR_DETECT_CONCURRENCY=0: an integer from 1 to 256",
        ),
        (
            &[("MONITOR_MAX_PARALLEL_TARGETS", "x")],
            "invalid MONITOR_MAX_PARALLEL_TARGETS=x: an integer from 1 to 256",
        ),
        (
            &[("TRUSTED_PROXIES", "10.0.0.0/8,300.1.1.1/8")],
            "invalid TRUSTED_PROXIES=10.0.0.0/8,300.1.1.1/8: `300.1.1.1/8` is not a CIDR",
        ),
        (
            &[("LOG_FORMAT", "xml")],
            "invalid LOG_FORMAT=xml: `text` or `json`",
        ),
        (
            &[("APIMON_TIMEZONE", "Mars/Olympus")],
            "invalid APIMON_TIMEZONE=Mars/Olympus: `UTC` or an IANA time zone name",
        ),
        (
            &[("API_MONITOR_TOKEN", "short")],
            "invalid API_MONITOR_TOKEN=<hidden>: 8 to 256 characters",
        ),
        (
            &[("APIMON_SECRET_KEY", "not-hex-and-secret")],
            "invalid APIMON_SECRET_KEY=<hidden>: 64 hexadecimal characters",
        ),
        (
            &[("OUTBOUND_PROXY", "ftp://bob:hunter2-secret@proxy:21")],
            "invalid OUTBOUND_PROXY=<hidden>: the scheme must be one of http, https, socks5, socks5h",
        ),
        (
            &[("OUTBOUND_PROXY", "socks5://bob:hunter2-secret@proxy")],
            "invalid OUTBOUND_PROXY=<hidden>: a proxy URL needs a port",
        ),
    ];
    for (pairs, want) in cases {
        let got = err(pairs);
        assert!(
            got.starts_with(want),
            "{pairs:?}: got `{got}`, want `{want}`"
        );
        assert!(!got.contains('\n'), "one line: {got}");
    }
}

#[test]
fn secrets_are_never_echoed_in_errors() {
    let got = err(&[("API_MONITOR_TOKEN", "has space in it")]);
    assert!(!got.contains("has space"), "{got}");
    let got = err(&[("OUTBOUND_PROXY", "http://bob:hunter2-secret@proxy/x")]);
    assert!(!got.contains("hunter2"), "{got}");
}

#[test]
fn an_outbound_proxy_is_read_and_never_printed_whole() {
    let c = Config::from_sources(
        &env(&[(
            "OUTBOUND_PROXY",
            "socks5h://bob:hunter2-secret@10.0.0.2:1080",
        )]),
        None,
    )
    .unwrap();
    let p = c.scheduler.outbound_proxy.as_ref().expect("a proxy");
    assert_eq!(p.expose(), "socks5h://bob:hunter2-secret@10.0.0.2:1080");
    assert!(!format!("{c:?}").contains("hunter2"));
    let none = Config::from_sources(&env(&[]), None).unwrap();
    assert!(none.scheduler.outbound_proxy.is_none());
}

#[test]
fn route_rules_come_before_the_built_in_table() {
    let c = Config::from_sources(
        &env(&[("ROUTE_RULES", "*deepseek*=anthropic, claude-openai*=openai")]),
        None,
    )
    .unwrap();
    assert_eq!(c.scheduler.route_rules.len(), 2);
    assert_eq!(c.scheduler.route_rules[0].pattern, "*deepseek*");
    assert_eq!(
        c.scheduler.route_rules[1].protocol,
        shared::probe::Protocol::Openai
    );
}

#[test]
fn trusted_proxies_accept_cidrs_and_bare_addresses() {
    let c = Config::from_sources(
        &env(&[("TRUSTED_PROXIES", "10.1.2.3/8, ::1, 192.168.0.1")]),
        None,
    )
    .unwrap();
    let shown: Vec<String> = c
        .auth
        .trusted_proxies
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(shown, ["10.0.0.0/8", "::1/128", "192.168.0.1/32"]);
}

#[test]
fn the_environment_wins_over_the_file_and_sources_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apimon.toml");
    std::fs::write(
        &file,
        "port = 9000\ndefault_interval_min = 15\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
    )
    .unwrap();
    let c = Config::from_sources(&env(&[("PORT", "9100")]), Some(&file)).unwrap();
    assert_eq!(c.listen.port, 9100);
    assert_eq!(c.source_of("PORT"), Some(Source::Env));
    assert_eq!(c.panel.default_interval_min, Some(15));
    assert_eq!(c.source_of("DEFAULT_INTERVAL_MIN"), Some(Source::File));
    assert_eq!(c.auth.trusted_proxies.len(), 1);
}

#[test]
fn the_file_is_found_through_apimon_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apimon.toml");
    std::fs::write(&file, "LOG_MAX_SIZE_MB = 42\n").unwrap();
    let c = Config::from_sources(&env(&[("APIMON_CONFIG", file.to_str().unwrap())]), None).unwrap();
    assert_eq!(c.panel.log_max_size_mb, Some(42));
}

#[test]
fn an_unreadable_or_wrong_file_stops_the_start() {
    let e = Config::from_sources(&env(&[]), Some(Path::new("/nonexistent/apimon.toml")))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("cannot read config file /nonexistent/apimon.toml (--config):"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apimon.toml");
    std::fs::write(&file, "prot = 1\n").unwrap();
    let e = Config::from_sources(&env(&[]), Some(&file))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown setting `prot`"), "{e}");
    std::fs::write(&file, "port = = 1\n").unwrap();
    let e = Config::from_sources(&env(&[]), Some(&file))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not valid TOML"), "{e}");
    std::fs::write(&file, "port = \"abc\"\n").unwrap();
    let e = Config::from_sources(&env(&[]), Some(&file))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("invalid PORT=abc"), "{e}");
}

#[test]
fn systemd_directories_choose_the_defaults() {
    let mut e = HashMap::new();
    e.insert("STATE_DIRECTORY".to_string(), "/var/lib/apimon".to_string());
    e.insert("RUNTIME_DIRECTORY".to_string(), "/run/apimon".to_string());
    let c = Config::from_sources(&e, None).unwrap();
    assert_eq!(c.paths.data_dir, PathBuf::from("/var/lib/apimon"));
    assert_eq!(
        c.paths.socket_path,
        PathBuf::from("/run/apimon/apimond.sock")
    );
    let mut e = HashMap::new();
    e.insert("DATA_DIR".to_string(), "data".to_string());
    e.insert("XDG_RUNTIME_DIR".to_string(), "/run/user/1000".to_string());
    let c = Config::from_sources(&e, None).unwrap();
    assert_eq!(c.paths.data_dir, PathBuf::from("data"));
    assert_eq!(
        c.paths.socket_path,
        PathBuf::from("/run/user/1000/apimon/apimond.sock")
    );
}

#[test]
fn empty_values_count_as_unset() {
    let c = Config::from_sources(&env(&[("PORT", ""), ("API_MONITOR_TOKEN", "")]), None).unwrap();
    assert_eq!(c.listen.port, 8081);
    assert!(c.auth.admin_token.is_none());
}

#[test]
fn debug_output_hides_tokens() {
    let c = Config::from_sources(
        &env(&[("API_MONITOR_TOKEN", "admin-token-very-secret")]),
        None,
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("very-secret"));
}

#[test]
fn the_go_programs_admin_token_name_works_and_is_remembered() {
    let c = Config::from_sources(
        &env(&[("API_MONITOR_TOKEN_ADMIN", "go-admin-token-0123")]),
        None,
    )
    .unwrap();
    assert_eq!(
        c.auth.admin_token.as_ref().map(|t| t.expose()),
        Some("go-admin-token-0123")
    );
    assert_eq!(c.source_of("API_MONITOR_TOKEN"), Some(Source::Env));
    assert_eq!(
        c.name_of(&variables::API_MONITOR_TOKEN),
        "API_MONITOR_TOKEN_ADMIN"
    );

    // Both names with the same value: one token, named by the main name.
    let c = Config::from_sources(
        &env(&[
            ("API_MONITOR_TOKEN", "same-admin-token-0123"),
            ("API_MONITOR_TOKEN_ADMIN", "same-admin-token-0123"),
        ]),
        None,
    )
    .unwrap();
    assert_eq!(
        c.auth.admin_token.as_ref().map(|t| t.expose()),
        Some("same-admin-token-0123")
    );
    assert_eq!(
        c.name_of(&variables::API_MONITOR_TOKEN),
        "API_MONITOR_TOKEN"
    );
}

#[test]
fn two_names_with_different_values_stop_the_start_naming_both_but_no_value() {
    let got = err(&[
        ("API_MONITOR_TOKEN", "first-admin-token-0123"),
        ("API_MONITOR_TOKEN_ADMIN", "second-admin-token-0123"),
    ]);
    assert_eq!(
        got,
        "API_MONITOR_TOKEN and API_MONITOR_TOKEN_ADMIN are both set in the environment, \
         to different values; they name one setting: set only one of them, or both to the \
         same value"
    );
    assert!(!got.contains("first-admin") && !got.contains("second-admin"));
}

#[test]
fn errors_name_the_alias_that_was_given() {
    let got = err(&[("API_MONITOR_TOKEN_ADMIN", "short")]);
    assert!(
        got.starts_with("invalid API_MONITOR_TOKEN_ADMIN=<hidden>: 8 to 256 characters"),
        "{got}"
    );
    let got = err(&[
        ("API_MONITOR_TOKEN_ADMIN", "one-token-for-both-0123"),
        ("API_MONITOR_TOKEN_VISITOR", "one-token-for-both-0123"),
    ]);
    assert_eq!(
        got,
        "API_MONITOR_TOKEN_VISITOR must differ from API_MONITOR_TOKEN_ADMIN"
    );
}

#[test]
fn the_file_takes_either_name_and_refuses_two_that_disagree() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apimon.toml");
    std::fs::write(
        &file,
        "api_monitor_token_admin = \"file-admin-token-0123\"\n",
    )
    .unwrap();
    let c = Config::from_sources(&env(&[]), Some(&file)).unwrap();
    assert_eq!(
        c.auth.admin_token.as_ref().map(|t| t.expose()),
        Some("file-admin-token-0123")
    );
    assert_eq!(c.source_of("API_MONITOR_TOKEN"), Some(Source::File));
    assert_eq!(
        c.name_of(&variables::API_MONITOR_TOKEN),
        "API_MONITOR_TOKEN_ADMIN"
    );

    // The environment wins over the file for the setting, whatever name each uses.
    let c = Config::from_sources(
        &env(&[("API_MONITOR_TOKEN", "env-admin-token-0123")]),
        Some(&file),
    )
    .unwrap();
    assert_eq!(
        c.auth.admin_token.as_ref().map(|t| t.expose()),
        Some("env-admin-token-0123")
    );
    assert_eq!(
        c.name_of(&variables::API_MONITOR_TOKEN),
        "API_MONITOR_TOKEN"
    );

    std::fs::write(
        &file,
        "api_monitor_token = \"file-admin-token-0123\"\nAPI_MONITOR_TOKEN_ADMIN = \"other-admin-token-0123\"\n",
    )
    .unwrap();
    let e = Config::from_sources(&env(&[]), Some(&file))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "API_MONITOR_TOKEN and API_MONITOR_TOKEN_ADMIN are both set in the config file, to different values"
        ),
        "{e}"
    );
    assert!(
        !e.contains("file-admin") && !e.contains("other-admin"),
        "{e}"
    );

    // One key in two spellings.
    std::fs::write(&file, "port = 9000\nPORT = 9001\n").unwrap();
    let e = Config::from_sources(&env(&[]), Some(&file))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("are one setting with different values; keep one"),
        "{e}"
    );
    std::fs::write(&file, "port = 9000\nPORT = 9000\n").unwrap();
    assert_eq!(
        Config::from_sources(&env(&[]), Some(&file))
            .unwrap()
            .listen
            .port,
        9000
    );
}
