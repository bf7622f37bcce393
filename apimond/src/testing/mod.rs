//! Test support shared by the workspace's integration tests (feature `test-support`):
//! real daemons started in-process on a free loopback port with a temporary data
//! directory and known tokens. [`api`] holds the HTTP client side, [`sse`] the event
//! stream reader. Release builds leave this module, `tempfile` and `reqwest` out.

mod api;
mod sse;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use api::{client_from, send_with};
pub use sse::SseReader;

use crate::service::Core;
use crate::{Config, Daemon};

pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";
pub const VISITOR_TOKEN: &str = "visitor-token-for-tests-0123456789";
pub const PASSWORD: &str = "panel-password-for-tests";
/// The key fake relays accept; targets created by [`TestDaemon::create_on`] carry it.
pub const UPSTREAM_KEY: &str = "sk-fake-upstream-key-0123456789";

/// The usual test configuration: known admin token, visitor token and password.
pub const STANDARD: &[(&str, &str)] = &[
    ("API_MONITOR_TOKEN", ADMIN_TOKEN),
    ("API_MONITOR_TOKEN_VISITOR", VISITOR_TOKEN),
    ("ADMIN_PANEL_PASSWORD", PASSWORD),
];

/// The daemon's environment: DATA_DIR, PORT=0 and loopback, then `extra`; a variable
/// set to "" in `extra` is left unset.
pub fn env_for(dir: &Path, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("DATA_DIR".into(), dir.display().to_string());
    env.insert("PORT".into(), "0".into());
    env.insert("HOST".into(), "127.0.0.1".into());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env.retain(|_, v| !v.is_empty());
    env
}

/// Starts a daemon on `dir` with exactly these variables (plus DATA_DIR, PORT=0).
pub async fn start_raw(dir: &Path, extra: &[(&str, &str)]) -> anyhow::Result<Daemon> {
    let config = Config::from_sources(&env_for(dir, extra), None)?;
    Daemon::start(config).await
}

/// A daemon under test, its data directory and an HTTP client pointed at it.
pub struct TestDaemon {
    pub daemon: Option<Daemon>,
    pub dir: PathBuf,
    /// Owns the data directory's temporary parent, when the daemon made one.
    _tmp: Option<tempfile::TempDir>,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestDaemon {
    pub async fn start() -> TestDaemon {
        Self::start_with(STANDARD).await
    }

    /// Starts on a fresh temporary data directory with exactly `extra`.
    pub async fn start_with(extra: &[(&str, &str)]) -> TestDaemon {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut t = Self::start_in(&dir, extra).await;
        t._tmp = Some(tmp);
        t
    }

    /// Starts on `dir`, which the caller keeps alive.
    pub async fn start_in(dir: &Path, extra: &[(&str, &str)]) -> TestDaemon {
        let daemon = start_raw(dir, extra).await.expect("daemon starts");
        let base = format!("http://{}", daemon.http_addr());
        TestDaemon {
            daemon: Some(daemon),
            dir: dir.to_path_buf(),
            _tmp: None,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the daemon and keeps the data directory (and its temporary parent).
    pub async fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await.expect("clean shutdown");
        }
    }

    /// Stops, then starts again on the same data directory with `extra`.
    pub async fn restart_with(&mut self, extra: &[(&str, &str)]) {
        self.stop().await;
        let daemon = start_raw(&self.dir, extra).await.expect("daemon restarts");
        self.base = format!("http://{}", daemon.http_addr());
        self.daemon = Some(daemon);
    }

    pub fn core(&self) -> &Arc<Core> {
        self.daemon.as_ref().expect("running").core()
    }

    /// The running daemon's control socket.
    pub fn socket_path(&self) -> &Path {
        self.daemon.as_ref().expect("running").socket_path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Every regular file under the data directory, with its bytes.
    pub fn data_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if let Ok(bytes) = std::fs::read(&p) {
                    out.push((p, bytes));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir, &mut out);
        out
    }
}

/// Whether `needle` occurs in `haystack`, for secrets searched in raw files.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
