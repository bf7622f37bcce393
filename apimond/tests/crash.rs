//! The real `apimond` binary killed with SIGKILL while a run is in flight and a burst
//! of writes is being acknowledged, then started again on the same data directory:
//! the database passes SQLite's integrity check, every write answered 2xx is there,
//! and the run is `interrupted`, never left `running`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_apimond");

/// Starts the binary on `dir` and returns it with its HTTP base URL.
fn spawn(dir: &Path) -> (Child, String) {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", dir)
        .env("PORT", "0")
        .env("LOG_FORMAT", "json")
        .env("APIMON_SOCKET", dir.join("apimond.sock"));
    for (k, v) in STANDARD {
        c.env(k, v);
    }
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(a) = v["fields"]["address"].as_str() {
                let _ = tx.send(a.to_string());
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("apimond logs its address");
    (child, format!("http://{address}"))
}

async fn api(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
) -> (StatusCode, Value) {
    let (s, _, v) = send_with(
        http,
        method,
        &format!("{base}{path}"),
        Some(ADMIN_TOKEN),
        None,
        &[],
    )
    .await;
    (s, v)
}

async fn runs_of(http: &reqwest::Client, base: &str, id: i64) -> Vec<Value> {
    let (s, v) = api(http, base, Method::GET, &format!("/api/targets/{id}/runs")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_a_run_and_a_write_burst_loses_no_acknowledged_write() {
    // Every probe waits a minute: the run is surely in flight when the kill comes.
    let relay = fake_upstream(&["gpt-4o-mini", "claude-3-5-haiku"], 60_000).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (mut child, base) = spawn(&dir);
    let http = reqwest::Client::new();
    let (s, _, v) = send_with(
        &http,
        Method::POST,
        &format!("{base}/api/targets"),
        Some(ADMIN_TOKEN),
        Some(&json!({"name": "slow-relay", "base_url": relay.base_url(), "api_key": UPSTREAM_KEY})),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["item"]["id"].as_i64().unwrap();
    assert_eq!(
        api(
            &http,
            &base,
            Method::POST,
            &format!("/api/targets/{id}/run")
        )
        .await
        .0,
        StatusCode::OK
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let run_id = loop {
        let runs = runs_of(&http, &base, id).await;
        if let Some(r) = runs.iter().find(|r| r["status"] == "running") {
            break r["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "the run started: {runs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Four writers, each creating targets as fast as they are acknowledged.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let dead = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (http, base, acked, dead) =
                (http.clone(), base.clone(), acked.clone(), dead.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !dead.load(Ordering::Relaxed) {
                    let name = format!("burst-{w}-{n}");
                    let sent = http
                        .post(format!("{base}/api/targets"))
                        .bearer_auth(ADMIN_TOKEN)
                        .json(&json!({"name": name, "base_url": "http://127.0.0.1:9",
                            "api_key": "sk-burst-0123456789", "enabled": false}))
                        .send()
                        .await;
                    if let Ok(r) = sent
                        && r.status().is_success()
                    {
                        acked.lock().unwrap().push(name);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 60 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // SAFETY: SIGKILL to our own child, mid-burst.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    child.wait().unwrap();
    dead.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // The files as the crash left them, checked on a copy so the restart below meets
    // them untouched.
    let crashed = tmp.path().join("crashed");
    std::fs::create_dir_all(&crashed).unwrap();
    for f in ["registry.db", "registry.db-wal"] {
        if dir.join(f).exists() {
            std::fs::copy(dir.join(f), crashed.join(f)).unwrap();
        }
    }
    let conn = rusqlite::Connection::open(crashed.join("registry.db")).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    for name in &acked {
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM targets WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "acknowledged target {name} survived the crash");
    }
    let status: String = conn
        .query_row("SELECT status FROM runs WHERE id = ?1", [run_id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "running", "the crash left the run unfinished");
    drop(conn);

    // Restart: the run is interrupted, every acknowledged write is served.
    let (mut child, base) = spawn(&dir);
    let runs = runs_of(&http, &base, id).await;
    let run = runs
        .iter()
        .find(|r| r["id"] == run_id)
        .expect("the run is kept");
    assert_eq!(run["status"], "interrupted", "{run}");
    let (s, list) = api(&http, &base, Method::GET, "/api/targets?history=0").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for name in &acked {
        assert!(
            names.contains(&name.as_str()),
            "{name} is listed after the restart"
        );
    }
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let conn = rusqlite::Connection::open(dir.join("registry.db")).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}
