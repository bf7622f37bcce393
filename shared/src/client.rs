//! Clients of a running apimond: the control socket (JSON-RPC) with its path search,
//! and the HTTP API of a remote daemon. Requests are built from [`Request`]; the
//! methods whose replies apimonctl reads field by field have typed calls here.

use std::path::{Path, PathBuf};

use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::traits::tokio::Stream as _;
use interprocess::local_socket::{GenericFilePath, ToFsName};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::Secret;
use crate::rpc::params::{BackupRead, Export, Hello, Import, NoParams, TargetRef};
use crate::rpc::reply::{
    BackupChunk, BackupStarted, ExportChunk, HelloReply, ImportReply, StatusReply, Subscribed,
    TriggerReply,
};
use crate::rpc::{MAX_LINE, MAX_REPLY, Message, PROTOCOL_VERSION, Request, RpcError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon answered on any of these paths.
    #[error("cannot reach apimond; tried:\n{}", .0.iter().map(|(p, e)| format!("  {}: {e}", p.display())).collect::<Vec<_>>().join("\n"))]
    Unreachable(Vec<(PathBuf, String)>),
    #[error("{0}")]
    Rpc(RpcError),
    #[error("the connection to apimond failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("apimond sent something unexpected: {0}")]
    Protocol(String),
    /// An HTTP error from a remote daemon: status and detail.
    #[error("{detail} (HTTP {status})")]
    Http { status: u16, detail: String },
    #[error("cannot reach {url}: {reason}")]
    HttpUnreachable { url: String, reason: String },
}

/// Where the control socket may be, in the order tried: the explicit path (`--socket`
/// or `APIMON_SOCKET`), the user's runtime directory, the system one, the data
/// directory (`DATA_DIR`, else the platform default).
pub fn socket_candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("APIMON_SOCKET") {
        return vec![p];
    }
    let mut out = Vec::new();
    if let Some(dir) = var("XDG_RUNTIME_DIR") {
        out.push(dir.join("apimon").join("apimond.sock"));
    }
    out.push(PathBuf::from("/run/apimon/apimond.sock"));
    let data = var("DATA_DIR").or_else(|| {
        directories::ProjectDirs::from("", "", "apimon").map(|d| d.data_dir().to_path_buf())
    });
    if let Some(d) = data {
        out.push(d.join("apimond.sock"));
    }
    out
}

/// A connection to apimond's control socket.
pub struct RpcClient {
    conn: BufReader<Stream>,
    next_id: u64,
    pub path: PathBuf,
    pub daemon_version: String,
}

impl RpcClient {
    /// Connects to the first candidate that answers and exchanges versions.
    pub async fn connect(candidates: &[PathBuf]) -> Result<RpcClient, ClientError> {
        let mut tried = Vec::new();
        for path in candidates {
            let name = match path.as_path().to_fs_name::<GenericFilePath>() {
                Ok(n) => n,
                Err(e) => {
                    tried.push((path.clone(), e.to_string()));
                    continue;
                }
            };
            match Stream::connect(name).await {
                Ok(stream) => {
                    let mut client = RpcClient {
                        conn: BufReader::new(stream),
                        next_id: 1,
                        path: path.clone(),
                        daemon_version: String::new(),
                    };
                    let hello: HelloReply = client
                        .call_as(&Request::Hello(Hello {
                            version: crate::VERSION.into(),
                            protocol: PROTOCOL_VERSION.into(),
                        }))
                        .await?;
                    client.daemon_version = hello.version;
                    return Ok(client);
                }
                Err(e) => tried.push((path.clone(), e.to_string())),
            }
        }
        Err(ClientError::Unreachable(tried))
    }

    /// Sends one request and waits for its answer (notifications in between are
    /// skipped).
    pub async fn call(&mut self, request: &Request) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = request.to_line(id);
        if line.len() > MAX_LINE {
            return Err(ClientError::Protocol(format!(
                "request larger than {MAX_LINE} bytes"
            )));
        }
        self.conn.get_mut().write_all(line.as_bytes()).await?;
        loop {
            let msg = self.read().await?;
            if msg.id.as_ref().and_then(Value::as_u64) == Some(id) {
                if let Some(e) = msg.error {
                    return Err(ClientError::Rpc(e));
                }
                return Ok(msg.result.unwrap_or(Value::Null));
            }
        }
    }

    /// Sends one request and reads its answer as the reply type of its method.
    async fn call_as<R: DeserializeOwned>(&mut self, request: &Request) -> Result<R, ClientError> {
        let result = self.call(request).await?;
        serde_json::from_value(result).map_err(|e| {
            ClientError::Protocol(format!(
                "a `{}` reply of another shape: {e}",
                request.method()
            ))
        })
    }

    pub async fn status(&mut self) -> Result<StatusReply, ClientError> {
        self.call_as(&Request::Status(NoParams {})).await
    }

    /// Starts a run of the target, or queues it; a run already going is an RPC error
    /// with code `CONFLICT`.
    pub async fn trigger(&mut self, target: TargetRef) -> Result<TriggerReply, ClientError> {
        self.call_as(&Request::RunsTrigger(target)).await
    }

    /// Asks for `event` notifications on this connection; read them with [`Self::read`].
    pub async fn subscribe(&mut self) -> Result<Subscribed, ClientError> {
        self.call_as(&Request::EventsSubscribe(NoParams {})).await
    }

    pub async fn export_chunk(&mut self, params: Export) -> Result<ExportChunk, ClientError> {
        self.call_as(&Request::Export(params)).await
    }

    pub async fn import_chunk(&mut self, params: Import) -> Result<ImportReply, ClientError> {
        self.call_as(&Request::Import(params)).await
    }

    pub async fn backup_start(&mut self) -> Result<BackupStarted, ClientError> {
        self.call_as(&Request::BackupStart(NoParams {})).await
    }

    pub async fn backup_read(&mut self, params: BackupRead) -> Result<BackupChunk, ClientError> {
        self.call_as(&Request::BackupRead(params)).await
    }

    /// The next message from the daemon (for subscriptions: notifications).
    pub async fn read(&mut self) -> Result<Message, ClientError> {
        let mut buf = Vec::new();
        let n = (&mut self.conn)
            .take(MAX_REPLY as u64 + 1)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "apimond closed the connection",
            )));
        }
        if buf.len() > MAX_REPLY {
            return Err(ClientError::Protocol("a reply over the size limit".into()));
        }
        serde_json::from_slice(&buf).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Writes raw bytes (tests use it to send malformed frames).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.conn.get_mut().write_all(bytes).await?;
        Ok(())
    }
}

/// The HTTP API of a (remote) daemon, with a Bearer token.
pub struct HttpClient {
    base: String,
    token: Option<Secret>,
    http: reqwest::Client,
}

impl HttpClient {
    pub fn new(base: &str, token: Option<Secret>) -> HttpClient {
        HttpClient {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("the HTTP client builds"),
        }
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| ClientError::HttpUnreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::HttpUnreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            let detail = value["detail"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(ClientError::Http { status, detail });
        }
        Ok(value)
    }
}
