//! The real `apimonctl` binary against a real daemon started in-process on a
//! temporary data directory and socket, with a fake relay behind it.
//! One file for the CLI binary, so every pinned behaviour of `apimonctl` sits in one
//! place next to the `ctl` harness all its tests drive it through.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use apimond::testing::{ADMIN_TOKEN, TestDaemon, UPSTREAM_KEY, contains, start_raw};
use reqwest::Method;
use serde_json::{Value, json};
use testkit::{FakeConfig, FakeUpstream};

const BIN: &str = env!("CARGO_BIN_EXE_apimonctl");

/// A daemon that knows only the admin token, the way an operator's CLI meets it.
async fn start() -> TestDaemon {
    TestDaemon::start_with(&[("API_MONITOR_TOKEN", ADMIN_TOKEN)]).await
}

async fn fake(models: &[&str]) -> FakeUpstream {
    FakeUpstream::start(FakeConfig {
        models: models.iter().map(|m| m.to_string()).collect(),
        api_key: UPSTREAM_KEY.into(),
        ..FakeConfig::default()
    })
    .await
}

/// Runs apimonctl with these arguments, environment and standard input.
async fn ctl(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let stdin = stdin.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let mut c = Command::new(BIN);
        c.args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        {
            let mut input = child.stdin.take().unwrap();
            if let Some(s) = &stdin {
                input.write_all(s.as_bytes()).unwrap();
            }
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// A test daemon driven by the real binary, over its socket or its HTTP API.
trait Ctl {
    async fn ctl(&self, args: &[&str]) -> Output;
    async fn ctl_http(&self, args: &[&str]) -> Output;
    async fn json(&self, args: &[&str]) -> Value;
    async fn add(&self, name: &str, base: &str, extra: &[&str]) -> i64;
}

impl Ctl for TestDaemon {
    async fn ctl(&self, args: &[&str]) -> Output {
        let socket = self.socket_path().display().to_string();
        let mut full = vec!["--socket", socket.as_str()];
        full.extend_from_slice(args);
        ctl(&full, &[("RELAY_KEY", UPSTREAM_KEY)], None).await
    }

    async fn ctl_http(&self, args: &[&str]) -> Output {
        let mut full = vec!["--url", self.base.as_str(), "--token-env", "APIMON_TOKEN"];
        full.extend_from_slice(args);
        ctl(&full, &[("APIMON_TOKEN", ADMIN_TOKEN)], None).await
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.push("--json");
        let out = self.ctl(&full).await;
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out.stdout)))
    }

    async fn add(&self, name: &str, base: &str, extra: &[&str]) -> i64 {
        let mut args = vec![
            "target",
            "add",
            "--name",
            name,
            "--base-url",
            base,
            "--api-key-env",
            "RELAY_KEY",
        ];
        args.extend_from_slice(extra);
        let v = self.json(&args).await;
        v["id"].as_i64().unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_commands_work_over_the_socket_and_keep_the_key_secret() {
    let e = start().await;
    // A key on standard input: stored encrypted, never printed.
    let stdin_key = "sk-given-on-stdin-0123456789abcdef";
    let socket = e.socket_path().display().to_string();
    let out = ctl(
        &[
            "--socket",
            &socket,
            "target",
            "add",
            "--name",
            "stdin-relay",
            "--base-url",
            "http://127.0.0.1:9",
            "--disabled",
        ],
        &[],
        Some(&format!("{stdin_key}\n")),
    )
    .await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "added target 1 (stdin-relay)\n");
    assert!(!text(&out.stderr).contains(stdin_key));
    for (path, bytes) in e.data_files() {
        assert!(
            !contains(&bytes, stdin_key),
            "{} holds the key",
            path.display()
        );
    }
    let core = e.core();
    let t = core.store.get_target(1).await.unwrap().unwrap();
    assert_eq!(t.api_key.expose(), stdin_key);

    // A second one from an environment variable, with options.
    let id = e
        .add(
            "env-relay",
            "http://127.0.0.1:9",
            &[
                "--disabled",
                "--models",
                "gpt-4o,claude-3-haiku",
                "--interval-min",
                "15",
                "--check-mode",
                "prompt",
            ],
        )
        .await;
    assert_eq!(id, 2);

    // The table is pinned.
    let out = e.ctl(&["target", "ls"]).await;
    assert_eq!(code(&out), 0);
    assert_eq!(
        text(&out.stdout),
        "┌────┬─────────────┬─────────┬────────┬───────────┬──────────┬────────────────┐
│ ID │ NAME        │ ENABLED │ STATUS │ MODELS OK │ INTERVAL │ LAST RUN (UTC) │
├────┼─────────────┼─────────┼────────┼───────────┼──────────┼────────────────┤
│ 1  │ stdin-relay │ no      │ -      │ -         │ 30 min   │ -              │
│ 2  │ env-relay   │ no      │ -      │ -         │ 15 min   │ -              │
└────┴─────────────┴─────────┴────────┴───────────┴──────────┴────────────────┘
"
    );
    let list = e.json(&["target", "ls"]).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(
        list[1]["selected_models"],
        json!(["gpt-4o", "claude-3-haiku"])
    );
    assert_eq!(list[1]["check_mode"], "prompt");
    assert!(
        !list.to_string().contains(UPSTREAM_KEY) && !list.to_string().contains(stdin_key),
        "keys masked"
    );

    // Ids, names and `name:` all find targets.
    assert_eq!(e.json(&["target", "show", "env-relay"]).await["id"], 2);
    assert_eq!(e.json(&["target", "show", "2"]).await["name"], "env-relay");
    let e2 = e.add("42", "http://127.0.0.1:9", &["--disabled"]).await;
    assert_eq!(e.json(&["target", "show", "name:42"]).await["id"], e2);

    // edit covers the fields.
    let v = e
        .json(&[
            "target",
            "edit",
            "env-relay",
            "--probe-mode",
            "both",
            "--models",
            "",
            "--timeout-s",
            "12.5",
            "--header",
            "X-Tenant: a",
        ])
        .await;
    assert_eq!(v["probe_mode"], "both");
    assert_eq!(v["selected_models"], json!([]));
    assert_eq!(v["timeout_s"], 12.5);
    assert!(v["extra_headers"]["x-tenant"].is_string());
    let v = e.json(&["target", "enable", "env-relay"]).await;
    assert_eq!(v["enabled"], true);
    let v = e.json(&["target", "disable", "2"]).await;
    assert_eq!(v["enabled"], false);
    let out = e.ctl(&["target", "rm", "stdin-relay"]).await;
    assert_eq!(text(&out.stdout), "deleted target 1\n");
    let out = e.ctl(&["target", "show", "stdin-relay"]).await;
    assert_eq!(code(&out), 4, "not found");
    assert_eq!(
        text(&out.stderr),
        "apimonctl: no target named `stdin-relay`\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_say_what_went_wrong() {
    let e = start().await;
    // 2: usage.
    assert_eq!(code(&e.ctl(&["target", "frobnicate"]).await), 2);
    let out = e.ctl(&["target", "edit", "x"]).await;
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    let out = e
        .ctl(&[
            "target",
            "add",
            "--name",
            "bad",
            "--base-url",
            "http://127.0.0.1:9",
            "--api-key-env",
            "RELAY_KEY",
            "--interval-min",
            "0",
        ])
        .await;
    assert_eq!(code(&out), 2, "a bad field is a usage error");
    assert_eq!(
        text(&out.stderr),
        "apimonctl: interval_min: must be an integer from 1 to 1440\n"
    );
    let out = ctl(
        &[
            "--socket",
            &e.socket_path().display().to_string(),
            "target",
            "add",
            "--name",
            "n",
            "--base-url",
            "http://x",
        ],
        &[],
        Some(""),
    )
    .await;
    assert_eq!(code(&out), 2, "no key");
    // 3: no daemon, naming every path tried.
    let out = ctl(
        &["--socket", "/nonexistent/apimond.sock", "status"],
        &[],
        None,
    )
    .await;
    assert_eq!(code(&out), 3);
    assert!(
        text(&out.stderr).contains("/nonexistent/apimond.sock"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(
        &["status"],
        &[
            ("XDG_RUNTIME_DIR", "/nonexistent/xdg"),
            ("DATA_DIR", "/nonexistent/data"),
        ],
        None,
    )
    .await;
    assert_eq!(code(&out), 3);
    let err = text(&out.stderr);
    for tried in [
        "/nonexistent/xdg/apimon/apimond.sock",
        "/run/apimon/apimond.sock",
        "/nonexistent/data/apimond.sock",
    ] {
        assert!(err.contains(tried), "{err}");
    }
    let out = ctl(&["--url", "http://127.0.0.1:9", "status"], &[], None).await;
    assert_eq!(code(&out), 3);
    // 4: not found.
    assert_eq!(code(&e.ctl(&["runs", "999"]).await), 4);
    // 0.
    let out = e.ctl(&["status"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(&format!("apimond {}", env!("CARGO_PKG_VERSION"))));
    // Socket-only commands say so over HTTP.
    let out = e.ctl_http(&["credentials"]).await;
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("works over the control socket only"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_models_and_check_give_the_same_answers_over_both_transports() {
    let up_bad = fake(&["gpt-4o", "gpt-4o-err500"]).await;
    let up_good = fake(&["gpt-4o", "claude-3-haiku"]).await;
    let e = start().await;
    let degraded = e.add("degraded", &up_bad.base_url(), &["--disabled"]).await;
    let healthy = e.add("healthy", &up_good.base_url(), &["--disabled"]).await;

    let out = e.ctl(&["run", "degraded", "--wait"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("degraded: run started\n"), "{stdout}");
    assert!(stdout.contains("│ degraded │ degraded │ 1/2"), "{stdout}");

    // models: the same table over the socket and over HTTP.
    let sock = e.ctl(&["models", "degraded"]).await;
    let http = e.ctl_http(&["models", "degraded"]).await;
    assert_eq!(code(&sock), 0);
    assert_eq!(text(&sock.stdout), text(&http.stdout));
    let rows = e.json(&["models", &degraded.to_string()]).await;
    let items = rows["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["model"], "gpt-4o");
    assert_eq!(items[0]["status"], "ok");
    assert_eq!(items[1]["error_class"], "upstream_5xx");
    let run_id = rows["run"]["id"].as_i64().unwrap();
    let by_run = e
        .json(&["models", "degraded", "--run", &run_id.to_string()])
        .await;
    assert_eq!(by_run["items"], rows["items"]);
    let runs = e.json(&["runs", "degraded"]).await;
    assert_eq!(runs[0]["id"], run_id);
    assert_eq!(runs[0]["result"], "degraded");
    let http_runs = e.ctl_http(&["runs", "degraded", "--json"]).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&http_runs.stdout).unwrap(),
        runs
    );
    assert_eq!(
        text(&e.ctl(&["runs", "degraded"]).await.stdout),
        text(&e.ctl_http(&["runs", "degraded"]).await.stdout)
    );
    assert_eq!(
        text(&e.ctl(&["target", "ls"]).await.stdout),
        text(&e.ctl_http(&["target", "ls"]).await.stdout)
    );
    assert_eq!(
        text(&e.ctl(&["status"]).await.stdout).lines().nth(1),
        text(&e.ctl_http(&["status"]).await.stdout).lines().nth(1)
    );

    // check: degraded crosses `--fail-on degraded` but not the default `down`.
    for transport in ["socket", "http"] {
        let run = |args: Vec<&'static str>| {
            let e = &e;
            async move {
                if transport == "socket" {
                    e.ctl(&args).await
                } else {
                    e.ctl_http(&args).await
                }
            }
        };
        let out = run(vec!["check", "degraded", "--fail-on", "degraded"]).await;
        assert_eq!(code(&out), 1, "{transport}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("check failed: degraded at or past `degraded`"));
        let out = run(vec!["check", "degraded"]).await;
        assert_eq!(code(&out), 0, "{transport}: {}", text(&out.stderr));
        let out = run(vec!["check", "healthy", "--fail-on", "degraded"]).await;
        assert_eq!(code(&out), 0, "{transport}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("│ healthy │ healthy │ 2/2"),
            "{}",
            text(&out.stdout)
        );
        let out = run(vec![
            "check",
            "healthy",
            "degraded",
            "--fail-on",
            "degraded",
            "--json",
        ])
        .await;
        assert_eq!(code(&out), 1);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v[0]["status"], "healthy");
        assert_eq!(v[1]["status"], "degraded");
    }
    let _ = healthy;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_runs_the_engine_with_no_daemon() {
    let up = fake(&["gpt-4o", "claude-3-haiku", "gpt-4o-err401"]).await;
    let base = up.base_url();
    let out = ctl(
        &["probe", "--base-url", &base, "--api-key-env", "K", "--json"],
        &[("K", UPSTREAM_KEY)],
        None,
    )
    .await;
    assert_eq!(
        code(&out),
        0,
        "degraded is below the default threshold: {}",
        text(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["target_status"], "degraded");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[2]["error_class"], "auth");
    assert!(
        !out.stdout
            .windows(UPSTREAM_KEY.len())
            .any(|w| w == UPSTREAM_KEY.as_bytes()),
        "the echoed key is scrubbed"
    );
    let out = ctl(
        &[
            "probe",
            "--base-url",
            &base,
            "--api-key-env",
            "K",
            "--fail-on",
            "degraded",
        ],
        &[("K", UPSTREAM_KEY)],
        None,
    )
    .await;
    assert_eq!(code(&out), 1);
    assert!(text(&out.stdout).contains("status: degraded"));
    let out = ctl(
        &[
            "probe",
            "--base-url",
            &base,
            "--api-key-env",
            "K",
            "--model",
            "claude-3-haiku",
        ],
        &[("K", UPSTREAM_KEY)],
        None,
    )
    .await;
    assert_eq!(code(&out), 0);
    let table = text(&out.stdout);
    assert!(
        table.contains("│ claude-3-haiku │ ok     │ anthropic │ 200  │"),
        "{table}"
    );
    // A model probed both ways counts once, with its worse outcome: `garbage` breaks
    // only streams, so the one model fails and the relay is down.
    let out = ctl(
        &[
            "probe",
            "--base-url",
            &base,
            "--api-key-env",
            "K",
            "--model",
            "gpt-4o-garbage",
            "--mode",
            "both",
            "--json",
        ],
        &[("K", UPSTREAM_KEY)],
        None,
    )
    .await;
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["target_status"], "down");
    assert_eq!(v["results"].as_array().unwrap().len(), 2);
    let out = ctl(
        &["probe", "--base-url", &base, "--api-key-env", "UNSET"],
        &[],
        None,
    )
    .await;
    assert_eq!(code(&out), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_prints_a_runs_events_in_order() {
    let up = fake(&["gpt-4o", "claude-3-haiku"]).await;
    let e = start().await;
    let id = e.add("watched", &up.base_url(), &["--disabled"]).await;
    // The daemon's own listeners (the proxy's routing view) are subscribed already.
    let listeners = e.core().bus.subscribers();
    let socket = e.socket_path().display().to_string();
    let mut child = std::process::Command::new(BIN)
        .args(["--socket", &socket, "events", "--follow", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut types = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
            let t = v["type"].as_str().unwrap().to_string();
            types.push(t.clone());
            if t == "run_completed" {
                break;
            }
        }
        types
    });
    // Start the run once the child is subscribed.
    let bus = &e.core().bus;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while bus.subscribers() == listeners {
        assert!(
            std::time::Instant::now() < deadline,
            "events --follow never subscribed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = e.ctl(&["run", &id.to_string()]).await;
    assert_eq!(code(&out), 0);
    let types = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(
        types,
        [
            "run_started",
            "model_result",
            "model_result",
            "run_completed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_export_import_and_completions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // No token in the environment: the generated one is printed.
    let d = start_raw(&dir, &[]).await.unwrap();
    let socket = d.socket_path().display().to_string();
    let out = ctl(&["--socket", &socket, "credentials", "--json"], &[], None).await;
    let creds: Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = std::fs::read_to_string(dir.join("credentials.toml")).unwrap();
    assert!(file.contains(creds["admin_token"].as_str().unwrap()));
    assert_eq!(creds["admin_token_source"], "generated and stored");

    let e = start().await;
    e.add(
        "one",
        "http://127.0.0.1:9",
        &["--disabled", "--models", "a,b"],
    )
    .await;
    e.add(
        "two",
        "http://127.0.0.1:9/v1",
        &["--disabled", "--interval-min", "7"],
    )
    .await;
    let export = tmp.path().join("export.json");
    let out = e
        .ctl(&["export", "--with-secrets", "-o", export.to_str().unwrap()])
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&export).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = ctl(
        &["--socket", &socket, "import", export.to_str().unwrap()],
        &[],
        None,
    )
    .await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "imported 2 targets\n");
    let src = e.core().store.list_targets().await.unwrap();
    let dst = d.core().store.list_targets().await.unwrap();
    assert_eq!(src.len(), dst.len());
    for (a, b) in src.iter().zip(&dst) {
        assert_eq!(
            (
                &a.name,
                &a.base_url,
                &a.api_key,
                a.interval_min,
                &a.selected_models
            ),
            (
                &b.name,
                &b.base_url,
                &b.api_key,
                b.interval_min,
                &b.selected_models
            )
        );
    }
    // Importing again skips the names already there and says so.
    let out = ctl(
        &["--socket", &socket, "import", export.to_str().unwrap()],
        &[],
        None,
    )
    .await;
    assert_eq!(code(&out), 5);
    assert!(text(&out.stdout).contains("skipped one: a target named `one` already exists"));
    // Without --with-secrets there are no keys in the file, nor URL credentials or
    // header values.
    e.add(
        "creds",
        "http://user:hunter2@127.0.0.1:9",
        &["--disabled", "--header", "Cookie: session-secret-value"],
    )
    .await;
    let out = e.ctl(&["export"]).await;
    let exported = text(&out.stdout);
    assert!(!exported.contains(UPSTREAM_KEY));
    assert!(
        !exported.contains("hunter2") && !exported.contains("session-secret-value"),
        "{exported}"
    );
    d.shutdown().await.unwrap();

    let out = ctl(&["completions", "bash"], &[], None).await;
    assert_eq!(code(&out), 0);
    assert!(text(&out.stdout).contains("_apimonctl"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_larger_than_a_request_line_still_arrive() {
    let e = start().await;
    // Four targets with 5000 long model names each: about 5 MB of target list.
    let models: Vec<String> = (0..5000)
        .map(|i| format!("{i:05}-{}", "m".repeat(240)))
        .collect();
    for n in 0..4 {
        let (status, v) = e
            .admin(
                Method::POST,
                "/api/targets",
                Some(&json!({"name": format!("big-{n}"), "base_url": "http://127.0.0.1:9", "api_key": UPSTREAM_KEY, "enabled": false, "selected_models": models})),
            )
            .await;
        assert!(status.is_success(), "{v}");
    }
    let list = e.json(&["target", "ls"]).await;
    assert_eq!(list.as_array().unwrap().len(), 4);
    let file = e.dir.parent().unwrap().join("big.json");
    let out = e
        .ctl(&["export", "--with-secrets", "-o", file.to_str().unwrap()])
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc["targets"].as_array().unwrap().len(), 4);
    assert_eq!(
        doc["targets"][3]["selected_models"]
            .as_array()
            .unwrap()
            .len(),
        5000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_line_relay_error_is_one_line_cut_to_the_width_and_whole_in_json() {
    let up = fake(&["gpt-4o", "gpt-4o-multiline"]).await;
    let e = start().await;
    e.add("litellm", &up.base_url(), &["--disabled"]).await;
    let out = e.ctl(&["run", "litellm", "--wait"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));

    // The whole message, newlines included, only under --json.
    let rows = e.json(&["models", "litellm"]).await;
    let row = rows["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "gpt-4o-multiline")
        .unwrap_or_else(|| panic!("{rows}"));
    let error = row["error"].as_str().unwrap_or_else(|| panic!("{row}"));
    assert!(
        error.contains("Error code: 400\nReceived Model Group=gpt-4o-multiline\n\tAvailable"),
        "{error}"
    );

    // Not on a terminal and no width given: one line per row, nothing cut.
    let table = text(&e.ctl(&["models", "litellm"]).await.stdout);
    let row = table
        .lines()
        .find(|l| l.contains("gpt-4o-multiline"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains(
            "HTTP 400: litellm.BadRequestError: OpenAIException - Error code: 400 Received Model Group=gpt-4o-multiline Available Model Group Fallbacks=None"
        ),
        "{row}"
    );
    assert_eq!(
        table.lines().count(),
        6,
        "borders, header and two rows:\n{table}"
    );

    // At a width of 120 columns (over the socket and over HTTP alike): every line fits,
    // the error, the widest cell, is cut with an ellipsis, rows stay one line each.
    let socket = e.socket_path().display().to_string();
    let url = e.base.clone();
    for args in [
        vec!["--socket", socket.as_str(), "models", "litellm"],
        vec![
            "--url",
            url.as_str(),
            "--token-env",
            "APIMON_TOKEN",
            "models",
            "litellm",
        ],
    ] {
        let out = ctl(
            &args,
            &[("COLUMNS", "120"), ("APIMON_TOKEN", ADMIN_TOKEN)],
            None,
        )
        .await;
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        let table = text(&out.stdout);
        assert_eq!(table.lines().count(), 6, "{table}");
        for line in table.lines() {
            assert!(
                line.chars().count() <= 120,
                "{} wide: {line}",
                line.chars().count()
            );
        }
        let row = table
            .lines()
            .find(|l| l.contains("│ gpt-4o-multiline │ fail "))
            .unwrap_or_else(|| panic!("{table}"));
        assert!(row.contains("HTTP 400: litellm"), "{row}");
        assert!(row.contains('…'), "{row}");
        assert!(!row.contains("Fallbacks=None"), "{row}");
    }
}

/// The id of the target's latest run.
async fn latest_run(e: &TestDaemon, target: &str) -> i64 {
    e.json(&["runs", target, "--limit", "1"]).await[0]["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_max_age_judges_recent_runs_and_runs_only_the_others() {
    let up = fake(&["gpt-4o"]).await;
    let broken = fake(&["gpt-4o-err500"]).await;
    let e = start().await;
    for name in ["recent", "stale", "never"] {
        e.add(name, &up.base_url(), &["--disabled"]).await;
    }
    e.add("down", &broken.base_url(), &["--disabled"]).await;
    assert_eq!(code(&e.ctl(&["run", "stale", "--wait"]).await), 0);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(code(&e.ctl(&["run", "recent", "down", "--wait"]).await), 0);
    let recent = latest_run(&e, "recent").await;
    let stale = latest_run(&e, "stale").await;

    // Over the socket: `recent` finished within 3 s and is judged as it is; `stale` is
    // older and `never` has no run, so both run now.
    let out = e
        .ctl(&[
            "check",
            "recent",
            "stale",
            "never",
            "--max-age",
            "3s",
            "--json",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["run_id"], recent, "{v}");
    assert_eq!(v[0]["reused"], true);
    assert!(v[1]["run_id"].as_i64().unwrap() > stale, "{v}");
    assert_eq!(v[1]["reused"], false);
    assert!(v[2]["run_id"].is_i64(), "{v}");
    assert_eq!(v[2]["reused"], false);
    for row in v.as_array().unwrap() {
        assert_eq!(row["status"], "healthy", "{row}");
    }
    assert_eq!(latest_run(&e, "recent").await, recent, "no new run");
    assert_eq!(latest_run(&e, "stale").await, v[1]["run_id"]);

    // Over HTTP, a longer age: every run is recent, nothing runs again, and the table
    // and exit code are the usual ones (`down` crosses the default threshold).
    let runs_before: Vec<i64> = [
        latest_run(&e, "recent").await,
        latest_run(&e, "stale").await,
        latest_run(&e, "never").await,
        latest_run(&e, "down").await,
    ]
    .to_vec();
    let out = e
        .ctl_http(&[
            "check",
            "recent",
            "stale",
            "never",
            "down",
            "--max-age",
            "10m",
        ])
        .await;
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("check failed: down at or past `down`"),
        "{}",
        text(&out.stderr)
    );
    let table = text(&out.stdout);
    assert!(table.contains("│ recent │ healthy │ 1/1"), "{table}");
    assert!(table.contains("│ down   │ down    │ 0/1"), "{table}");
    let runs_after = vec![
        latest_run(&e, "recent").await,
        latest_run(&e, "stale").await,
        latest_run(&e, "never").await,
        latest_run(&e, "down").await,
    ];
    assert_eq!(runs_before, runs_after, "no target ran again");

    // A bad duration is a usage error.
    let out = e.ctl(&["check", "--max-age", "soon"]).await;
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_goes_through_a_proxy_from_the_environment_with_either_client() {
    let up = fake(&["gpt-4o"]).await;
    let base = up.base_url();
    let proxy = testkit::HttpProxy::start(Some(("bob", "proxy-pass-0123"))).await;
    let with_creds = proxy.url();
    for profile in ["browser", "plain"] {
        let before = proxy.relayed();
        let out = ctl(
            &[
                "probe",
                "--base-url",
                &base,
                "--api-key-env",
                "K",
                "--proxy-env",
                "P",
                "--client-profile",
                profile,
                "--json",
            ],
            &[("K", UPSTREAM_KEY), ("P", with_creds.as_str())],
            None,
        )
        .await;
        assert_eq!(code(&out), 0, "{profile}: {}", text(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["target_status"], "healthy", "{profile}: {v}");
        assert!(proxy.relayed() > before, "{profile}: the proxy carried it");
    }
    // A proxy URL the engine cannot take is a usage error that shows no password.
    let out = ctl(
        &[
            "probe",
            "--base-url",
            &base,
            "--api-key-env",
            "K",
            "--proxy-env",
            "P",
        ],
        &[
            ("K", UPSTREAM_KEY),
            ("P", "ftp://bob:proxy-pass-0123@127.0.0.1:21"),
        ],
        None,
    )
    .await;
    assert_eq!(code(&out), 2);
    assert!(
        !text(&out.stderr).contains("proxy-pass-0123"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(
        &[
            "probe",
            "--base-url",
            &base,
            "--api-key-env",
            "K",
            "--client-profile",
            "edge",
        ],
        &[("K", UPSTREAM_KEY)],
        None,
    )
    .await;
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("expected browser or plain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakers_lists_a_channel_model_tripped_by_live_failures() {
    let relay = fake(&["gpt-4o-mini"]).await;
    let master = "sk-master-for-the-cli-test-0123456789";
    let d = TestDaemon::start_with(&[
        ("API_MONITOR_TOKEN", ADMIN_TOKEN),
        ("PROXY_MASTER_TOKEN", master),
    ])
    .await;
    let id = d.add("alpha", &relay.base_url(), &[]).await;
    d.admin(Method::POST, &format!("/api/targets/{id}/run"), None)
        .await;
    d.wait_run(id).await;
    let out = d.ctl(&["breakers"]).await;
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("every breaker is closed"));

    relay.set_failure("gpt-4o-mini", Some(testkit::Failure::Status(503)));
    for _ in 0..3 {
        let (s, body, _) = apimond::testing::send_with(
            &d.http,
            Method::POST,
            &d.url("/v1/chat/completions"),
            Some(master),
            Some(&json!({"model": "alpha/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})),
            &[],
        )
        .await;
        assert_eq!(s, 503, "{body}");
    }
    let v = d.json(&["breakers"]).await;
    let b = &v["items"][0];
    assert_eq!(
        (
            b["target_name"].as_str(),
            b["model"].as_str(),
            b["state"].as_str()
        ),
        (Some("alpha"), Some("gpt-4o-mini"), Some("open")),
        "{v}"
    );
    assert_eq!(b["failures"], 3);
    let out = d.ctl(&["breakers"]).await;
    let table = text(&out.stdout);
    assert!(table.contains("alpha") && table.contains("open"), "{table}");
}

/// Runs `apimonctl ARGS | true` under `pipefail`: the reader is gone before apimonctl
/// writes, so every print meets a closed pipe.
fn into_closed_pipe(socket: &str, args: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{BIN}' --socket '{socket}' {args} | true"
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_into_a_closed_pipe_ends_quietly_with_success() {
    let e = start().await;
    for i in 0..50 {
        e.add(&format!("piped-{i}"), "http://127.0.0.1:9", &[])
            .await;
    }
    let socket = e.socket_path().display().to_string();
    for args in [
        "target ls",
        "target ls --json",
        "status",
        "runs piped-1",
        "--help",
    ] {
        let socket = socket.clone();
        let out = tokio::task::spawn_blocking(move || into_closed_pipe(&socket, args))
            .await
            .unwrap();
        assert_eq!(code(&out), 0, "{args}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "{args}");
    }
}
