//! The real `apimonctl` binary's operations commands against an in-process daemon:
//! `backup` (a private file that restores to the same targets, never over an existing
//! file), `health` (the container health check) and `manpages` (the package build).

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use apimond::testing::{ADMIN_TOKEN, TestDaemon};

const BIN: &str = env!("CARGO_BIN_EXE_apimonctl");

/// Held while a child process is started, and around the in-process restore: a child
/// forked while the restore holds the data directory's lock would keep that lock
/// (flock) until it execs, and the daemon started next would find it taken.
static FORKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

async fn ctl(args: &[&str], env: &[(&str, String)]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut c = Command::new(BIN);
        c.args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &env {
            c.env(k, v);
        }
        let _forking = FORKS.lock().unwrap_or_else(|e| e.into_inner());
        let child = c
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(_forking);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_writes_a_private_file_that_restores_to_the_same_targets() {
    let mut d = TestDaemon::start_with(&[("API_MONITOR_TOKEN", ADMIN_TOKEN)]).await;
    for name in ["alpha", "beta"] {
        d.create_target(name, "sk-ops-test-key-0123456789").await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("apimon.backup");
    let socket = d.socket_path().display().to_string();
    let env = [("APIMON_SOCKET", socket)];
    let out = ctl(&["backup", file.to_str().unwrap()], &env).await;
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    let key_file = d.dir.join("secret.key").display().to_string();
    assert!(said.contains(&key_file), "names where the key is: {said}");
    assert!(said.contains("apimond --restore"), "{said}");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Never over an existing file: usage error, file untouched.
    let before = std::fs::read(&file).unwrap();
    let out = ctl(&["backup", file.to_str().unwrap()], &env).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let mut names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["apimon.backup"], "no partial file left");
    d.stop().await;

    let fresh = tmp.path().join("restored");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::copy(d.dir.join("secret.key"), fresh.join("secret.key")).unwrap();
    let config =
        apimond::Config::from_sources(&apimond::testing::env_for(&fresh, &[]), None).unwrap();
    let restored = {
        let _no_forks = FORKS.lock().unwrap_or_else(|e| e.into_inner());
        apimond::restore(&config, &file).unwrap()
    };
    assert_eq!(restored.targets, 2);
    let r = TestDaemon::start_in(&fresh, &[("API_MONITOR_TOKEN", ADMIN_TOKEN)]).await;
    let (_, list) = r
        .admin(reqwest::Method::GET, "/api/targets?history=0", None)
        .await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_answers_by_exit_code_without_a_token() {
    let d = TestDaemon::start_with(&[("API_MONITOR_TOKEN", ADMIN_TOKEN)]).await;
    let out = ctl(&["health", "--url", &d.base], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // PORT picks the local daemon when no --url is given.
    let port = d.base.rsplit(':').next().unwrap().to_string();
    let out = ctl(&["health"], &[("PORT", port)]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    drop(d);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = ctl(&["health", "--url", &url], &[]).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[tokio::test]
async fn manpages_writes_one_page_per_command() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ctl(&["manpages", tmp.path().to_str().unwrap()], &[]).await;
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(tmp.path().join("apimonctl.1")).unwrap();
    assert!(page.contains(".TH apimonctl 1"), "{page}");
    assert!(tmp.path().join("apimonctl-backup.1").exists());
    assert!(
        !page.contains("manpages"),
        "the hidden command stays hidden"
    );
}
