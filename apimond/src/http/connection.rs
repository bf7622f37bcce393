//! One HTTP connection and what it may hold: its request headers (and the idle time
//! between kept-alive requests) must arrive within `HTTP_HEADER_TIMEOUT_S`, a
//! request body may not pause longer than `HTTP_BODY_TIMEOUT_S`, and a response
//! the client stops reading is dropped after `HTTP_STALL_TIMEOUT_S`. A response
//! that keeps flowing (SSE, proxied streams) is never cut: only a write that makes no
//! progress counts. hyper's own answers to unparsable requests (400, 414, 431) get
//! the API's JSON `detail` body here, as they leave. After the last answer, what the
//! client still sends (a body refused unread) is read and dropped for a moment before
//! the socket closes, so the client reads the answer rather than a reset.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use futures_util::FutureExt;
use futures_util::future::Either;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::HttpLimits;

/// Largest request head (request line and headers): larger gets 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A response on its way.
pub type Answer = Pin<Box<dyn Future<Output = axum::response::Response> + Send>>;

/// Requests served before the router: the proxy's generation endpoints, the hot path,
/// where the router's own work per request (matching, extensions, a boxed service)
/// is a share worth saving. Everything else goes to the router.
pub trait Shortcut: Send + Sync + 'static {
    /// Which of this shortcut's routes requests of `method` to `path` take, if any.
    fn route(&self, method: &axum::http::Method, path: &str) -> Option<usize>;

    /// Serves a request `route` took, from `peer`.
    fn serve(&self, route: usize, req: axum::extract::Request, peer: SocketAddr) -> Answer;
}

/// Since when (ms after `epoch`) the connection's writes have been blocked; 0 = not.
struct WriteWatch {
    epoch: Instant,
    blocked_since_ms: AtomicU64,
}

impl WriteWatch {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn blocked(&self) {
        let _ = self.blocked_since_ms.compare_exchange(
            0,
            self.now_ms(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    fn progressed(&self) {
        self.blocked_since_ms.store(0, Ordering::Relaxed);
    }

    fn stalled_for(&self) -> Duration {
        match self.blocked_since_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.now_ms().saturating_sub(since)),
        }
    }
}

/// The socket as hyper sees it: notes blocked writes, and gives hyper's body-less
/// parse-error answers a JSON body.
struct WatchedIo {
    inner: TcpStream,
    watch: Arc<WriteWatch>,
    /// A rewritten error answer still to send, and how much of it went out.
    pending: Option<(Vec<u8>, usize)>,
    /// Set once the answer is complete and the write side shut.
    linger: Option<Linger>,
}

/// After the last answer on a connection, how long what the client still sends (the
/// rest of a body refused before it was read, say a 413) is read and dropped before
/// the socket closes: in all, and without a byte. Closing a socket with unread bytes
/// resets the connection, and a client still writing its body would see that reset
/// instead of the answer.
const LINGER_IN_ALL: Duration = Duration::from_secs(10);
const LINGER_PAUSE: Duration = Duration::from_secs(2);

struct Linger {
    end: Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Linger {
    fn new() -> Linger {
        let now = Instant::now();
        Linger {
            end: now + LINGER_IN_ALL,
            timer: Box::pin(tokio::time::sleep(LINGER_PAUSE)),
        }
    }

    /// Bytes arrived: whether to go on waiting for more.
    fn arrived(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.end {
            return false;
        }
        let next = (now + LINGER_PAUSE).min(self.end);
        self.timer.as_mut().reset(next.into());
        true
    }
}

/// hyper's automatic answer to a request it could not parse, with a JSON body added:
/// `None` for anything else.
fn with_json_body(head: &[u8]) -> Option<Vec<u8>> {
    let is_http1 = head.starts_with(b"HTTP/1.1 ") || head.starts_with(b"HTTP/1.0 ");
    if !is_http1 || head.len() < 12 || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let message = match &head[9..12] {
        b"400" => "malformed HTTP request: the request line or a header cannot be parsed",
        b"414" => "the request URI is too long",
        b"431" => "the request headers are too large (at most 64 KiB in all)",
        _ => return None,
    };
    let text = std::str::from_utf8(head).ok()?;
    let lines: Vec<&str> = text[..text.len() - 4].split("\r\n").collect();
    // hyper's own answer has no body, says so, and carries no content type.
    let lower: Vec<String> = lines.iter().map(|l| l.to_ascii_lowercase()).collect();
    if !lower.iter().any(|l| l == "content-length: 0")
        || lower.iter().any(|l| l.starts_with("content-type:"))
    {
        return None;
    }
    let body = serde_json::json!({ "detail": message }).to_string();
    let mut out = format!(
        "{}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        lines[0],
        body.len()
    );
    for (line, low) in lines.iter().zip(&lower).skip(1) {
        if !low.starts_with("content-length:") && !low.starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

impl WatchedIo {
    /// Sends what is left of a rewritten answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some((bytes, sent)) = self.pending.take() {
            if sent == bytes.len() {
                break;
            }
            match self.write_inner(cx, &bytes[sent..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => self.pending = Some((bytes, sent + n)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.pending = Some((bytes, sent));
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn write_inner(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => {
                self.watch.blocked();
                Poll::Pending
            }
            ready => {
                self.watch.progressed();
                ready
            }
        }
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        ready!(this.drain(cx))?;
        if let Some(answer) = with_json_body(buf) {
            this.pending = Some((answer, 0));
            // hyper's bytes are taken; the rewritten ones go out now or on flush.
            return match this.drain(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Ready(Ok(buf.len())),
            };
        }
        this.write_inner(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        ready!(this.drain(cx))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && let Some(answer) = with_json_body(first)
        {
            // hyper's own error answer: its bytes are taken, the rewritten ones sent.
            let taken = first.len();
            this.pending = Some((answer, 0));
            return match this.drain(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Ready(Ok(taken)),
            };
        }
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => {
                this.watch.blocked();
                Poll::Pending
            }
            ready => {
                this.watch.progressed();
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drain(cx))?;
        let this = &mut *self;
        if this.linger.is_none() {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.linger = Some(Linger::new());
        }
        let linger = this.linger.as_mut().expect("set above");
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    if !linger.arrived() {
                        return Poll::Ready(Ok(()));
                    }
                }
                // The client closed (or reset): nothing left to wait for.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => break,
            }
        }
        ready!(linger.timer.as_mut().poll(cx));
        Poll::Ready(Ok(()))
    }
}

/// A request body stopped arriving.
#[derive(Debug)]
pub struct BodyTimedOut(pub Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body stopped arriving for {} s",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for BodyTimedOut {}

/// A request body that fails with [`BodyTimedOut`] when no bytes come for `pause`.
/// The timer starts only when the handler waits for the body.
struct TimedBody {
    inner: Incoming,
    pause: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let pause = self.pause;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(Box::new(BodyTimedOut(pause)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves HTTP/1.1 on one accepted connection until the client leaves, a limit ends
/// it, or `stop` (then the request in progress finishes and the connection closes).
pub async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    shortcut: Option<Arc<dyn Shortcut>>,
    limits: HttpLimits,
    stop: CancellationToken,
) {
    let watch = Arc::new(WriteWatch {
        epoch: Instant::now(),
        blocked_since_ms: AtomicU64::new(0),
    });
    let io = TokioIo::new(WatchedIo {
        inner: tcp,
        watch: watch.clone(),
        pending: None,
        linger: None,
    });
    let pause = limits.body_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(|inner| {
            axum::body::Body::new(TimedBody {
                inner,
                pause,
                timer: None,
            })
        });
        if let Some(shortcut) = &shortcut
            && let Some(route) = shortcut.route(req.method(), req.uri().path())
        {
            return Either::Left(shortcut.serve(route, req, peer).map(Ok));
        }
        req.extensions_mut().insert(ConnectInfo(peer));
        Either::Right(app.clone().oneshot(req))
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    // The stop and the stalled-write check are watched by a task of their own, which
    // tells this one through `control`: the connection is polled on every socket
    // event, and polling a timer and the shared stop token each time costs more than
    // reading one flag.
    let control = Arc::new(Control::default());
    let (ended, ended_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(watch_connection(
        control.clone(),
        watch,
        limits,
        stop,
        peer,
        ended_rx,
    ));
    let mut stopping = false;
    std::future::poll_fn(|cx| {
        control.waker.register(cx.waker());
        let flags = control.flags.load(Ordering::Acquire);
        if flags & Control::CLOSE != 0 {
            return Poll::Ready(());
        }
        if flags & Control::GRACEFUL != 0 && !stopping {
            stopping = true;
            conn.as_mut().graceful_shutdown();
        }
        let result = ready!(conn.as_mut().poll(cx));
        if let Err(e) = result {
            tracing::debug!(client = %peer, error = %e, "HTTP connection ended");
        }
        Poll::Ready(())
    })
    .await;
    drop(ended);
}

/// What a connection's watcher tells it.
#[derive(Default)]
struct Control {
    flags: std::sync::atomic::AtomicU8,
    waker: futures_util::task::AtomicWaker,
}

impl Control {
    /// The daemon is stopping: finish the request in progress, then close.
    const GRACEFUL: u8 = 1;
    /// Close now.
    const CLOSE: u8 = 2;

    fn tell(&self, flag: u8) {
        self.flags.fetch_or(flag, Ordering::Release);
        self.waker.wake();
    }
}

/// Watches one connection until it ends (`ended` resolves): passes the daemon's stop
/// on, and closes it once its client has not taken a byte of a response for the
/// stall limit (noticed within a quarter of it).
async fn watch_connection(
    control: Arc<Control>,
    writes: Arc<WriteWatch>,
    limits: HttpLimits,
    stop: CancellationToken,
    peer: SocketAddr,
    mut ended: tokio::sync::oneshot::Receiver<()>,
) {
    let mut check =
        tokio::time::interval((limits.stall_timeout / 4).max(Duration::from_millis(250)));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = &mut ended => return,
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                control.tell(Control::GRACEFUL);
            }
            _ = check.tick() => {
                if writes.stalled_for() >= limits.stall_timeout {
                    tracing::info!(client = %peer, seconds = limits.stall_timeout.as_secs(), "closed an HTTP connection whose client stopped reading (HTTP_STALL_TIMEOUT_S)");
                    control.tell(Control::CLOSE);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_parse_error_answers_get_a_json_detail() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Thu, 26 Nov 2026 13:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(with_json_body(head).unwrap()).unwrap();
        let (h, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(h.starts_with("HTTP/1.1 431 "));
        assert!(h.contains("content-type: application/json"));
        assert!(h.contains("date: Thu"));
        assert!(h.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["detail"].as_str().unwrap().contains("too large"));
    }

    #[test]
    fn answers_with_a_body_or_another_status_pass_unchanged() {
        assert!(
            with_json_body(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n")
                .is_none()
        );
        assert!(with_json_body(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(
            with_json_body(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n").is_none()
        );
        assert!(with_json_body(b"{\"detail\": \"HTTP/1.1 400\"}").is_none());
    }
}
