//! `apimonctl keys …`, the real binary against a real daemon over its socket: the
//! secret printed once, limits set and cleared, usage read back, exit codes.

use std::net::IpAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use apimond::service::proxy_keys::{KeyRefusal, ProxyEndpoint, ProxyUsage};
use apimond::testing::{ADMIN_TOKEN, TestDaemon};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_apimonctl");
const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Runs apimonctl against the daemon's socket (or with `extra` flags first).
async fn ctl(d: &TestDaemon, args: &[&str]) -> Output {
    let mut full: Vec<String> = vec!["--socket".into(), d.socket_path().display().to_string()];
    full.extend(args.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&full)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("APIMON_TOKEN", ADMIN_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(o: &Output) -> String {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(0), "stdout: {out}\nstderr: {err}");
    out
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

#[tokio::test]
async fn keys_are_created_listed_edited_and_revoked_with_the_secret_printed_once() {
    let d = TestDaemon::start_with(&[("API_MONITOR_TOKEN", ADMIN_TOKEN)]).await;
    let target = d
        .create_target("relay-a", "sk-channel-key-0123456789")
        .await;
    let created = ctl(
        &d,
        &[
            "keys",
            "create",
            "--name",
            "ci",
            "--target",
            "relay-a",
            "--model",
            "relay-a/gpt-4o",
            "--rpm",
            "60",
            "--daily-tokens",
            "1000",
            "--expires",
            "30d",
        ],
    )
    .await;
    let (stdout, stderr) = text(&created);
    assert_eq!(code(&created), 0, "{stdout}{stderr}");
    // Standard output is the secret alone, so it can be captured; the note goes to
    // standard error.
    let secret = stdout.trim().to_string();
    assert!(
        secret.starts_with("sk-") && !secret.contains(' '),
        "{stdout}"
    );
    assert!(stderr.contains("shown only now"), "{stderr}");
    let grant = d.core().proxy_keys.authenticate(&secret, CLIENT).unwrap();
    assert_eq!(grant.allowed_target_ids, vec![target]);
    assert_eq!(grant.allowed_models, vec!["relay-a/gpt-4o".to_string()]);

    let table = ok(&ctl(&d, &["keys", "ls"]).await);
    assert!(
        table.contains("ci") && table.contains(&secret[..12]),
        "{table}"
    );
    let listed: Value =
        serde_json::from_str(&ok(&ctl(&d, &["--json", "keys", "ls"]).await)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let shown: Value =
        serde_json::from_str(&ok(&ctl(&d, &["--json", "keys", "show", "ci"]).await)).unwrap();
    assert_eq!(shown["rpm_limit"], 60);
    assert_eq!(shown["daily_token_budget"], 1000);
    let in_30_days = apimond::store::now() + 30.0 * 86_400.0;
    assert!(
        (shown["expires_at"].as_f64().unwrap() - in_30_days).abs() < 60.0,
        "{shown}"
    );
    for out in [&table, &listed.to_string(), &shown.to_string()] {
        assert!(!out.contains(&secret), "the secret is shown once only");
    }
    let show_table = ok(&ctl(&d, &["keys", "show", "1"]).await);
    assert!(show_table.contains("relay-a/gpt-4o") && !show_table.contains(&secret));

    ok(&ctl(
        &d,
        &[
            "keys",
            "edit",
            "ci",
            "--rpm",
            "none",
            "--expires",
            "never",
            "--disable",
        ],
    )
    .await);
    let shown: Value =
        serde_json::from_str(&ok(&ctl(&d, &["--json", "keys", "show", "ci"]).await)).unwrap();
    assert_eq!(
        (&shown["rpm_limit"], &shown["expires_at"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(shown["status"], "disabled");
    assert_eq!(
        d.core()
            .proxy_keys
            .authenticate(&secret, CLIENT)
            .unwrap_err(),
        KeyRefusal::Disabled
    );
    ok(&ctl(&d, &["keys", "edit", "ci", "--enable", "--all-models"]).await);
    assert!(
        d.core()
            .proxy_keys
            .authenticate(&secret, CLIENT)
            .unwrap()
            .allowed_models
            .is_empty()
    );

    // Usage recorded by the proxy, read back.
    d.core().proxy_keys.record(ProxyUsage {
        at: apimond::store::now(),
        key_id: grant.key_id,
        target_id: Some(target),
        requested_model: "relay-a/gpt-4o".into(),
        upstream_model: Some("gpt-4o".into()),
        endpoint: ProxyEndpoint::Chat,
        stream: true,
        status: 200,
        attempts: 1,
        ttfb_ms: Some(3.0),
        ttft_ms: Some(4.0),
        total_ms: 40.0,
        input_tokens: Some(12),
        output_tokens: Some(30),
        tokens_estimated: true,
        error_class: None,
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let usage = loop {
        let v: Value = serde_json::from_str(&ok(&ctl(
            &d,
            &[
                "--json",
                "keys",
                "usage",
                "--key",
                "ci",
                "--since",
                "1h",
                "--group-by",
                "model",
            ],
        )
        .await))
        .unwrap();
        if v["totals"]["requests"] == 1 || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(usage["totals"]["tokens"], 42, "{usage}");
    assert_eq!(usage["totals"]["estimated_requests"], 1);
    let table = ok(&ctl(&d, &["keys", "usage", "--group-by", "key,model"]).await);
    assert!(
        table.contains("gpt-4o") && table.contains("ci") && table.contains("42"),
        "{table}"
    );

    ok(&ctl(&d, &["keys", "revoke", "ci"]).await);
    assert_eq!(
        d.core()
            .proxy_keys
            .authenticate(&secret, CLIENT)
            .unwrap_err(),
        KeyRefusal::Revoked
    );
}

#[tokio::test]
async fn bad_key_commands_exit_with_the_documented_codes_and_change_nothing() {
    let d = TestDaemon::start_with(&[("API_MONITOR_TOKEN", ADMIN_TOKEN)]).await;
    ok(&ctl(&d, &["keys", "create", "--name", "kept"]).await);
    for (args, want) in [
        (vec!["keys", "edit", "kept"], 2),
        (vec!["keys", "edit", "kept", "--rpm", "lots"], 2),
        (vec!["keys", "edit", "kept", "--expires", "someday"], 2),
        (vec!["keys", "edit", "kept", "--model", "no-slash"], 2),
        (vec!["keys", "create", "--name", "x", "--target", "nope"], 4),
        (vec!["keys", "show", "nope"], 4),
        (vec!["keys", "revoke", "42"], 4),
        (vec!["keys", "usage", "--group-by", "colour"], 2),
        (vec!["keys", "usage", "--since", "sometime"], 2),
    ] {
        let o = ctl(&d, &args).await;
        let (out, err) = text(&o);
        assert_eq!(code(&o), want, "{args:?}: {out}{err}");
        assert!(!err.is_empty(), "{args:?} says why");
    }
    // Over HTTP the key commands are refused plainly: they need the socket.
    let o = tokio::task::spawn_blocking({
        let base = d.base.clone();
        move || {
            Command::new(BIN)
                .args(["--url", &base, "--token-env", "APIMON_TOKEN", "keys", "ls"])
                .env("APIMON_TOKEN", ADMIN_TOKEN)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(code(&o), 2, "{}", text(&o).1);
    assert!(text(&o).1.contains("control socket only"));
    let listed: Value =
        serde_json::from_str(&ok(&ctl(&d, &["--json", "keys", "ls"]).await)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "kept");
    assert_eq!(listed[0]["rpm_limit"], Value::Null);
}
