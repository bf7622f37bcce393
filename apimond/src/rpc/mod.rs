//! The control socket: newline-delimited JSON-RPC 2.0 on a Unix socket file (never the
//! abstract namespace), 0600 in a 0700 directory, or 0660 for `APIMON_SOCKET_GROUP`.
//! Peers are checked by their credentials. Handlers are thin adapters over the same
//! service layer as HTTP; a socket peer acts as admin.

mod lines;
mod methods;

use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use futures_util::SinkExt;
use interprocess::local_socket::traits::StreamCommon as _;
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use serde_json::Value;
use shared::rpc::{MAX_LINE, Message, Notification, code};
use tokio_util::codec::{FramedWrite, LinesCodec};
use tokio_util::sync::CancellationToken;

use crate::events::Received;
use crate::lifecycle::Lifecycle;
use crate::service::{Caller, Core, Role};
use lines::{Line, LineReader};

/// Who may talk to the socket: the daemon's own user, root, or, when a socket group
/// is set, whoever the file permissions let in.
pub fn peer_allowed(peer_uid: Option<u32>, own_uid: u32, group_mode: bool) -> bool {
    match peer_uid {
        Some(uid) => uid == own_uid || uid == 0 || group_mode,
        None => false,
    }
}

fn group_id(name: &str) -> anyhow::Result<u32> {
    let c = std::ffi::CString::new(name).context("APIMON_SOCKET_GROUP has a NUL byte")?;
    // SAFETY: getgrnam reads a C string and returns a pointer into static storage
    // that we read at once.
    let g = unsafe { libc::getgrnam(c.as_ptr()) };
    if g.is_null() {
        bail!("APIMON_SOCKET_GROUP={name}: no such group");
    }
    // SAFETY: non-null pointer from getgrnam.
    Ok(unsafe { (*g).gr_gid })
}

/// The bound socket. Its accept loop and connections end when the daemon's
/// `streams` token is cancelled; [`ControlSocket::close`] removes the file.
pub struct ControlSocket {
    pub path: PathBuf,
}

impl ControlSocket {
    pub fn close(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket: creates its directory, replaces a stale socket file, refuses a
/// live one, sets the permissions, and starts accepting.
pub fn bind(
    core: Arc<Core>,
    proxy: Arc<crate::proxy::Proxy>,
    path: &Path,
    group: Option<&str>,
    life: &Lifecycle,
) -> anyhow::Result<ControlSocket> {
    let gid = group.map(group_id).transpose()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(if gid.is_some() { 0o750 } else { 0o700 })
            .create(dir)
            .with_context(|| format!("cannot create the socket directory {}", dir.display()))?;
        if let Some(gid) = gid {
            chown_group(dir, gid)?;
        }
    }

    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            bail!(
                "{} exists and is not a socket; refusing to replace it (check APIMON_SOCKET)",
                path.display()
            );
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => bail!(
                "another apimond is listening on the control socket {} (APIMON_SOCKET); stop it or choose another socket",
                path.display()
            ),
            Err(_) => {
                std::fs::remove_file(path).with_context(|| {
                    format!("cannot remove the stale socket {}", path.display())
                })?;
                tracing::info!(path = %path.display(), "replaced a stale control socket");
            }
        }
    }
    let mode = if gid.is_some() { 0o660 } else { 0o600 };
    let name = path
        .to_fs_name::<GenericFilePath>()
        .with_context(|| format!("{} is not a usable socket path", path.display()))?;
    let listener = ListenerOptions::new()
        .name(name)
        .mode(mode)
        .create_tokio()
        .with_context(|| format!("cannot listen on the control socket {}", path.display()))?;
    // The mode above is applied at bind; set it again in case the umask trimmed it.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set permissions on {}", path.display()))?;
    if let Some(gid) = gid {
        chown_group(path, gid)?;
    }
    let group_mode = gid.is_some();
    // SAFETY: geteuid has no failure mode.
    let own_uid = unsafe { libc::geteuid() };
    let stop = life.streams.clone();
    let connections = life.clone();
    let places = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let budget = lines::budget();
    life.spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.cancelled() => break,
            };
            let stream = match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let peer = stream.peer_creds().ok().and_then(|c| c.euid());
            let core = core.clone();
            let proxy = proxy.clone();
            let stop = stop.clone();
            let budget = budget.clone();
            let place = places.clone().try_acquire_owned();
            connections.spawn(async move {
                let Ok(_place) = place else {
                    if cap_log_due() {
                        tracing::warn!(peer_uid = ?peer, max = MAX_CONNECTIONS, "control socket connection cap reached; refusing peers (logged at most every 10 s)");
                    }
                    refuse(stream, code::TOO_MANY, &format!("apimond already has {MAX_CONNECTIONS} control socket connections open; try again later")).await;
                    return;
                };
                if !peer_allowed(peer, own_uid, group_mode) {
                    tracing::warn!(peer_uid = ?peer, "refused a control socket peer");
                    refuse(stream, code::FORBIDDEN, "this user may not use the apimond control socket").await;
                    return;
                }
                serve(core, proxy, stream, stop, budget).await;
            });
        }
    });
    tracing::info!(path = %path.display(), mode = format!("{mode:o}"), "control socket listening");
    Ok(ControlSocket {
        path: path.to_path_buf(),
    })
}

/// Most control socket connections open at once; more are told so and closed.
pub const MAX_CONNECTIONS: usize = 128;

/// Whether a refusal over the cap may be logged now: at most every 10 s, so a peer
/// opening connections in a loop cannot flood the log.
fn cap_log_due() -> bool {
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().expect("poisoned");
    let due = last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10));
    if due {
        *last = Some(std::time::Instant::now());
    }
    due
}

/// Tells a peer why it is turned away, then closes.
async fn refuse(stream: interprocess::local_socket::tokio::Stream, code: i64, why: &str) {
    let (_, w) = tokio::io::split(stream);
    let mut out = FramedWrite::new(w, LinesCodec::new());
    let refusal = Message::error(Value::Null, code, why);
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        out.send(refusal.to_line().trim_end().to_string()),
    )
    .await;
}

fn chown_group(path: &Path, gid: u32) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, None, Some(gid))
        .with_context(|| format!("cannot give {} to the socket group", path.display()))
}

/// The caller every socket request runs as.
fn socket_caller() -> Caller {
    Caller {
        role: Role::Admin,
        via_cookie: false,
        client: IpAddr::from([127, 0, 0, 1]),
    }
}

/// Answers one peer until it leaves or apimond stops. A stop ends the connection
/// between requests (the peer reads the end), never in the middle of one: a request
/// already read is answered first.
async fn serve(
    core: Arc<Core>,
    proxy: Arc<crate::proxy::Proxy>,
    stream: interprocess::local_socket::tokio::Stream,
    stop: CancellationToken,
    budget: lines::LineBudget,
) {
    let (r, w) = tokio::io::split(stream);
    let mut reader = LineReader::new(tokio::io::BufReader::new(r), budget);
    let mut out = FramedWrite::new(w, LinesCodec::new_with_max_length(usize::MAX));
    let mut subscription = None;
    loop {
        let line = match &mut subscription {
            None => tokio::select! {
                line = reader.next() => line,
                _ = stop.cancelled() => return,
            },
            Some(sub) => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    line = reader.next() => line,
                    event = crate::events::Subscription::recv(sub) => {
                        let note = match event {
                            Received::Event(e) => Notification::Event(e.to_json()).to_message(),
                            Received::Lagged(missed) => Notification::Lagged { missed }.to_message(),
                            Received::Closed => return,
                        };
                        if out.send(note.to_line().trim_end().to_string()).await.is_err() {
                            return;
                        }
                        continue;
                    }
                }
            }
        };
        let reply = match line {
            Ok(None) | Err(_) => return,
            Ok(Some(Line::TooLong)) => Message::error(
                Value::Null,
                code::INVALID_REQUEST,
                format!("line longer than {MAX_LINE} bytes"),
            ),
            Ok(Some(Line::Busy)) => Message::error(
                Value::Null,
                code::TOO_MANY,
                "apimond is reading other large requests; send this one again shortly",
            ),
            Ok(Some(Line::Text(text))) if text.trim().is_empty() => continue,
            Ok(Some(Line::Text(text))) => {
                let (reply, subscribe) =
                    methods::handle(&core, &proxy, &socket_caller(), &text).await;
                if subscribe && subscription.is_none() {
                    subscription = Some(core.bus.subscribe());
                }
                reply
            }
        };
        if out
            .send(reply.to_line().trim_end().to_string())
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_daemon_user_root_or_the_socket_group_get_in() {
        assert!(peer_allowed(Some(1000), 1000, false));
        assert!(peer_allowed(Some(0), 1000, false));
        assert!(
            !peer_allowed(Some(1001), 1000, false),
            "another uid is refused"
        );
        assert!(
            !peer_allowed(None, 1000, false),
            "unknown credentials are refused"
        );
        assert!(
            peer_allowed(Some(1001), 1000, true),
            "the file mode admitted the group"
        );
    }
}
