//! The two ways to reach a daemon: the control socket (every command) and the HTTP
//! API of a remote daemon (`--url`: status, target ls|show, runs, models, run,
//! check). Both give the same JSON shapes, so commands print the same either way.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};
use shared::Secret;
use shared::client::{ClientError, HttpClient, RpcClient, socket_candidates};
use shared::rpc::Request;
use shared::rpc::params::{NoParams, RunsList, RunsLogs, TargetRef};

use crate::error::CliError;

pub enum Conn {
    Rpc(RpcClient),
    Http(HttpClient),
}

/// What asking for a run got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triggered {
    Started,
    /// Waiting behind the parallel limit.
    Queued,
    /// A run of the target was already running or queued.
    AlreadyGoing,
}

impl Conn {
    pub async fn open(
        socket: Option<&Path>,
        url: Option<&str>,
        token_env: Option<&str>,
    ) -> Result<Conn, CliError> {
        if let Some(url) = url.filter(|u| !u.is_empty()) {
            let token = match token_env {
                Some(var) => Some(Secret::new(std::env::var(var).map_err(|_| {
                    CliError::Usage(format!("--token-env {var}: the variable is not set"))
                })?)),
                None => None,
            };
            return Ok(Conn::Http(HttpClient::new(url, token)));
        }
        if token_env.is_some() {
            return Err(CliError::Usage("--token-env goes with --url".into()));
        }
        Ok(Conn::Rpc(
            RpcClient::connect(&socket_candidates(socket)).await?,
        ))
    }

    /// The socket connection, for commands that only exist there.
    pub fn rpc(&mut self, command: &str) -> Result<&mut RpcClient, CliError> {
        match self {
            Conn::Rpc(c) => Ok(c),
            Conn::Http(_) => Err(CliError::Usage(format!(
                "`apimonctl {command}` works over the control socket only; run it on the daemon's machine without --url"
            ))),
        }
    }

    /// Version, uptime, counts, running and queued runs, scheduler lag.
    pub async fn status(&mut self) -> Result<Value, CliError> {
        match self {
            Conn::Rpc(c) => {
                let s = c.status().await?;
                Ok(json!({
                    "version": s.version, "uptime_s": s.uptime_s, "targets": s.dashboard,
                    "running_targets": s.running_targets, "queued_targets": s.queued_targets,
                    "scheduler_lag_s": s.scheduler_lag_s, "health": s.health,
                }))
            }
            Conn::Http(h) => {
                let health = h.request(Method::GET, "/api/health", None).await?;
                let dash = h.request(Method::GET, "/api/dashboard", None).await?;
                Ok(json!({
                    "version": health["version"], "uptime_s": health["uptime_s"], "targets": dash,
                    "running_targets": health["running_targets"], "queued_targets": health["queued_targets"],
                    "scheduler_lag_s": health["scheduler_lag_s"],
                    "health": {"live": health["live"], "ready": health["ready"],
                        "problems": health["problems"]},
                }))
            }
        }
    }

    /// Every target, with its latest model results.
    pub async fn targets(&mut self) -> Result<Vec<Value>, CliError> {
        let v = match self {
            Conn::Rpc(c) => c.call(&Request::TargetsList(NoParams {})).await?,
            Conn::Http(h) => {
                // The compact form, asked for by name: the default is the Go
                // program's full history objects.
                h.request(
                    Method::GET,
                    "/api/targets?history=0&history_format=compact",
                    None,
                )
                .await?
            }
        };
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// A target's id from what the user typed: digits are an id, `name:x` is a name.
    pub async fn resolve(&mut self, ident: &str) -> Result<i64, CliError> {
        match self {
            Conn::Rpc(c) => {
                let v = c.call(&Request::TargetsGet(TargetRef::new(ident))).await?;
                Ok(v["item"]["id"].as_i64().unwrap_or_default())
            }
            Conn::Http(_) => {
                if let Some(id) = ident
                    .parse::<i64>()
                    .ok()
                    .filter(|_| ident.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Ok(id);
                }
                let name = ident.strip_prefix("name:").unwrap_or(ident);
                self.targets()
                    .await?
                    .iter()
                    .find(|t| t["name"] == name)
                    .and_then(|t| t["id"].as_i64())
                    .ok_or_else(|| CliError::NotFound(format!("no target named `{name}`")))
            }
        }
    }

    pub async fn target(&mut self, id: i64) -> Result<Value, CliError> {
        let v = match self {
            Conn::Rpc(c) => {
                c.call(&Request::TargetsGet(TargetRef::new(id.to_string())))
                    .await?
            }
            Conn::Http(h) => {
                h.request(Method::GET, &format!("/api/targets/{id}"), None)
                    .await?
            }
        };
        Ok(v["item"].clone())
    }

    /// Starts a run; a target already running or queued is not an error here but
    /// [`Triggered::AlreadyGoing`], so callers can wait for that run instead.
    pub async fn trigger(&mut self, id: i64) -> Result<Triggered, CliError> {
        let queued = match self {
            Conn::Rpc(c) => c
                .trigger(TargetRef::new(id.to_string()))
                .await
                .map(|r| r.queued),
            // Read leniently: a remote daemon may be of another version.
            Conn::Http(h) => h
                .request(Method::POST, &format!("/api/targets/{id}/run"), None)
                .await
                .map(|v| v["queued"] == true),
        };
        match queued {
            Ok(true) => Ok(Triggered::Queued),
            Ok(false) => Ok(Triggered::Started),
            Err(ClientError::Rpc(e)) if e.code == shared::rpc::code::CONFLICT => {
                Ok(Triggered::AlreadyGoing)
            }
            Err(ClientError::Http { status: 409, .. }) => Ok(Triggered::AlreadyGoing),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn runs(&mut self, id: i64, limit: u32) -> Result<Vec<Value>, CliError> {
        let v = match self {
            Conn::Rpc(c) => {
                c.call(&Request::RunsList(RunsList {
                    target: id.to_string(),
                    limit: Some(limit.into()),
                }))
                .await?
            }
            Conn::Http(h) => {
                h.request(
                    Method::GET,
                    &format!("/api/targets/{id}/runs?limit={limit}"),
                    None,
                )
                .await?
            }
        };
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// The probe rows of a run (the latest by default) and the run.
    pub async fn logs(&mut self, id: i64, run: Option<i64>) -> Result<Value, CliError> {
        Ok(match self {
            Conn::Rpc(c) => {
                c.call(&Request::RunsLogs(RunsLogs {
                    target: id.to_string(),
                    run_id: run,
                    limit: None,
                }))
                .await?
            }
            Conn::Http(h) => {
                let q = run.map(|r| format!("?run_id={r}")).unwrap_or_default();
                h.request(Method::GET, &format!("/api/targets/{id}/logs{q}"), None)
                    .await?
            }
        })
    }

    /// How many probes a run of the target makes (for the progress bar).
    pub async fn probed_count(&mut self, id: i64) -> Result<usize, CliError> {
        let v = match self {
            Conn::Rpc(c) => {
                c.call(&Request::TargetsModels(TargetRef::new(id.to_string())))
                    .await?
            }
            Conn::Http(h) => {
                h.request(Method::GET, &format!("/api/targets/{id}/models"), None)
                    .await?
            }
        };
        Ok(v["item"]["probed"].as_array().map(Vec::len).unwrap_or(0))
    }
}
