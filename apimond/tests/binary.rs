//! The `apimond` binary as an operator runs it: flags, configuration errors, JSON
//! logs without secrets, and a clean exit on SIGTERM and SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_apimond");

fn apimond(dir: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", dir)
        .env("PORT", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

#[test]
fn help_and_version_exit_zero() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("apimond {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config"));
}

#[test]
fn each_bad_configuration_value_stops_the_start_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("PORT", "abc")],
            "apimond: invalid PORT=abc: an integer from 0 to 65535",
        ),
        (
            &[("DEFAULT_INTERVAL_MIN", "0")],
            "apimond: invalid DEFAULT_INTERVAL_MIN=0: an integer from 1 to 1440",
        ),
        (
            &[("TRUSTED_PROXIES", "10.0.0.0/33")],
            "apimond: invalid TRUSTED_PROXIES=10.0.0.0/33: `10.0.0.0/33` is not a CIDR",
        ),
        (
            &[("LOG_CLEANUP_ENABLED", "sometimes")],
            "apimond: invalid LOG_CLEANUP_ENABLED=sometimes",
        ),
        (
            &[("MONITOR_DETECT_CONCURRENCY", "-3")],
            "apimond: invalid MONITOR_DETECT_CONCURRENCY=-3",
        ),
        (
            &[("APIMON_CONFIG", "/nonexistent/apimon.toml")],
            "apimond: cannot read config file /nonexistent/apimon.toml (APIMON_CONFIG)",
        ),
    ];
    for (env, want) in cases {
        let out = apimond(tmp.path(), env).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with(want), "{env:?}: {err}");
    }
    // --config with an unreadable file.
    let out = apimond(tmp.path(), &[])
        .args(["--config", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read config file /nonexistent/x.toml (--config)")
    );
}

struct Running {
    child: Child,
    address: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

/// Starts the binary with JSON logs and waits for its "listening" line.
fn spawn(dir: &std::path::Path) -> Running {
    spawn_with(dir, &[])
}

/// [`spawn`] with more variables.
fn spawn_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Running {
    let mut env = env.to_vec();
    env.push(("LOG_FORMAT", "json"));
    let mut child = apimond(dir, &env)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("every log line is JSON");
            if let Some(a) = v["fields"]["address"].as_str() {
                let _ = tx.send(a.to_string());
            }
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("apimond logs its address");
    Running {
        child,
        address,
        log,
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "apimond did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_and_sigint_stop_it_cleanly_and_logs_hold_no_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut run = spawn(&dir);
        let health = reqwest::blocking::get(format!("http://{}/api/health", run.address)).unwrap();
        assert!(health.status().is_success());
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(run.child.id() as i32, signal) }, 0);
        let status = wait_exit(&mut run.child);
        assert_eq!(status.code(), Some(0), "signal {signal}");
        std::thread::sleep(Duration::from_millis(100));
        let log = run.log.lock().unwrap().clone();
        assert!(log.contains("apimond stopped"), "{log}");
        let creds: toml::Table =
            toml::from_str(&std::fs::read_to_string(dir.join("credentials.toml")).unwrap())
                .unwrap();
        for secret in [
            creds["admin_token"].as_str().unwrap(),
            creds["admin_panel_password"].as_str().unwrap(),
        ] {
            assert!(
                !log.contains(secret),
                "the log holds a generated credential"
            );
        }
        assert!(
            log.contains("credentials.toml") || signal == libc::SIGINT,
            "the first start names the credentials file"
        );
    }
}

#[test]
fn a_second_process_on_the_same_data_dir_exits_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut first = spawn(&dir);
    let out = apimond(&dir, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another apimond is already using DATA_DIR"),
        "{err}"
    );
    assert!(err.contains(&first.child.id().to_string()), "{err}");
    unsafe { libc::kill(first.child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut first.child).code(), Some(0));
}

#[test]
fn the_go_programs_token_names_are_read_and_two_that_disagree_stop_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = apimond(
        &dir,
        &[
            ("API_MONITOR_TOKEN", "readme-admin-token-0123"),
            ("API_MONITOR_TOKEN_ADMIN", "compose-admin-token-0123"),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with(
            "apimond: API_MONITOR_TOKEN and API_MONITOR_TOKEN_ADMIN are both set in the environment, to different values"
        ),
        "{err}"
    );
    assert!(
        !err.contains("readme-admin") && !err.contains("compose-admin"),
        "{err}"
    );
    assert!(!dir.exists(), "a refused start creates nothing");

    // As the Go program's compose file sets them: the admin token works, the settings
    // name the variable it came from, and nothing was generated for it.
    let token = "compose-admin-token-0123";
    let mut run = spawn_with(
        &dir,
        &[
            ("API_MONITOR_TOKEN_ADMIN", token),
            ("API_MONITOR_TOKEN_VISITOR", "compose-visitor-token-0123"),
        ],
    );
    let client = reqwest::blocking::Client::new();
    let get = |token: &str| {
        client
            .get(format!("http://{}/api/admin/settings", run.address))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    let settings: serde_json::Value = get(token).json().unwrap();
    assert_eq!(
        settings["read_only"]["api_monitor_token_admin"],
        "API_MONITOR_TOKEN_ADMIN"
    );
    assert_eq!(
        settings["read_only"]["api_monitor_token_visitor"],
        "API_MONITOR_TOKEN_VISITOR"
    );
    let visitor = get("compose-visitor-token-0123");
    assert_eq!(visitor.status(), reqwest::StatusCode::FORBIDDEN);
    let refused = client
        .patch(format!("http://{}/api/admin/settings", run.address))
        .bearer_auth(token)
        .json(&serde_json::json!({"api_monitor_token_admin": "another-admin-token-0123"}))
        .send()
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::CONFLICT);
    let detail: serde_json::Value = refused.json().unwrap();
    assert_eq!(
        detail["detail"],
        "api_monitor_token_admin: set by API_MONITOR_TOKEN_ADMIN in the environment; change it there and restart"
    );
    let creds = std::fs::read_to_string(dir.join("credentials.toml")).unwrap();
    assert!(!creds.contains("admin_token"), "{creds}");
    unsafe { libc::kill(run.child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut run.child).code(), Some(0));
    assert!(!run.log.lock().unwrap().contains(token));
}
