//! The `plain` profile's own HTTP/1.1 way to a relay reached directly (no outbound
//! proxy), for the proxy's requests. reqwest drives each pooled connection in a task
//! of its own, so a request and every chunk of its answer cross from task to task
//! (and often from thread to thread) on the way; here the connection is driven by the
//! request that uses it: the task serving the proxy's client polls it while it waits
//! for the answer and while it passes the body on, and puts it back in the pool when
//! the body has ended. A client that goes away drops the connection, so the relay sees
//! the hang-up at once.
//!
//! Same as the reqwest client it stands beside: rustls with the same web PKI roots
//! (`verify_ssl` honoured), the connect timeout, idle connections closed after
//! [`POOL_IDLE`], `Accept: */*` unless the request names one, `TCP_NODELAY`, redirects
//! followed by the same rules.

// foldhash (seeded per process) costs far less than SipHash per lookup; the keys
// are the origins of configured channels.
use foldhash::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

use super::classify::ErrorClass;
use super::clients::{POOL_IDLE, Response, failure};
use super::result::Failure;
use super::settings::CONNECT_TIMEOUT;

/// Redirects followed at most, as reqwest's default policy.
const MAX_REDIRECTS: usize = 10;

/// Idle connections kept per relay at most; more are closed when they come back.
const MAX_IDLE_PER_ORIGIN: usize = 256;

/// The proxy variables reqwest reads from the environment: when one is set, requests
/// go through reqwest, which honours them (and `NO_PROXY`).
const PROXY_VARIABLES: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Whether the environment names a proxy for reqwest to use.
pub(super) fn environment_names_a_proxy() -> bool {
    PROXY_VARIABLES
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

thread_local! {
    /// The pool a thread's connections go back to: 0 (shared) unless the thread runs a
    /// runtime of its own (see [`pin_direct_pool_to_this_thread`]).
    static POOL_SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Keeps the connections this thread opens for this thread: for a thread running a
/// single-threaded runtime of its own (`slot` > 0, one per thread), whose sockets are
/// driven by that runtime. Another thread's requests would be woken from here.
pub fn pin_direct_pool_to_this_thread(slot: usize) {
    POOL_SLOT.with(|s| s.set(slot));
}

/// Where a connection goes, and the pool it belongs to: connections are pooled per
/// origin and slot.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Origin {
    tls: bool,
    host: String,
    port: u16,
    slot: usize,
}

/// A TCP or TLS stream.
enum Wire {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Wire::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Wire::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Wire::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Wire::Tcp(s) => s.is_write_vectored(),
            Wire::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Wire::Tcp(s) => Pin::new(s).poll_flush(cx),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Wire::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One HTTP/1.1 connection: the handle requests are sent with, and the connection
/// itself, which makes progress only while somebody polls it. Kept boxed: it is the
/// better part of a kilobyte, moved in and out of the pool and into every answer.
struct Conn {
    send: SendRequest<Full<Bytes>>,
    driver: Connection<TokioIo<Wire>, Full<Bytes>>,
}

impl Conn {
    /// Moves the connection on; false once it has ended (closed or failed).
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        Pin::new(&mut self.driver).poll(cx).is_pending()
    }

    /// Waits until the connection can take a request: false if it ended instead.
    async fn ready(&mut self) -> bool {
        std::future::poll_fn(|cx| {
            if !self.drive(cx) {
                return Poll::Ready(false);
            }
            match self.send.poll_ready(cx) {
                Poll::Ready(r) => Poll::Ready(r.is_ok()),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

/// Direct HTTP/1.1 connections to relays, pooled per origin.
pub(super) struct Direct {
    verify_ssl: bool,
    tls: OnceLock<Result<tokio_rustls::TlsConnector, String>>,
    idle: Mutex<HashMap<Origin, Vec<Idle>>>,
}

/// A pooled connection and since when it has been idle.
type Idle = (Box<Conn>, Instant);

impl Direct {
    pub(super) fn new(verify_ssl: bool) -> Direct {
        Direct {
            verify_ssl,
            tls: OnceLock::new(),
            idle: Mutex::default(),
        }
    }

    /// Whether this client sends to `url` (else reqwest does): http and https URLs
    /// without credentials in them.
    pub(super) fn takes(url: &Url) -> bool {
        matches!(url.scheme(), "http" | "https")
            && url.username().is_empty()
            && url.password().is_none()
            && url.host().is_some()
    }

    /// Sends a request and follows up to [`MAX_REDIRECTS`] redirects as reqwest does:
    /// 307 and 308 resend the request, 301, 302 and 303 turn a POST into a GET without
    /// a body, and credentials are not sent on to another host.
    pub(super) async fn send(
        self: &Arc<Self>,
        mut method: Method,
        mut url: Url,
        mut headers: HeaderMap,
        mut body: Option<Bytes>,
    ) -> Result<Response, Failure> {
        for _ in 0..=MAX_REDIRECTS {
            let (head, incoming, conn, origin) =
                self.exchange(&method, &url, &headers, &body).await?;
            let status = head.status.as_u16();
            let next = match head.headers.get(header::LOCATION) {
                Some(to) if matches!(status, 301 | 302 | 303 | 307 | 308) => to
                    .to_str()
                    .ok()
                    .and_then(|to| url.join(to).ok())
                    .filter(Direct::takes),
                _ => None,
            };
            let Some(next) = next else {
                let body = Answer {
                    conn,
                    client: self.clone(),
                    origin,
                    body: incoming,
                };
                return Ok(Response {
                    status,
                    headers: head.headers,
                    body: Box::pin(body),
                });
            };
            if matches!(status, 301..=303) && method == Method::POST {
                method = Method::GET;
                body = None;
                headers.remove(header::CONTENT_TYPE);
                headers.remove(header::CONTENT_ENCODING);
            }
            if next.host_str() != url.host_str()
                || next.port_or_known_default() != url.port_or_known_default()
            {
                for name in [
                    header::AUTHORIZATION,
                    header::COOKIE,
                    header::PROXY_AUTHORIZATION,
                    header::WWW_AUTHENTICATE,
                ] {
                    headers.remove(name);
                }
            }
            url = next;
        }
        Err(Failure::new(
            ErrorClass::Network,
            format!("too many redirects (more than {MAX_REDIRECTS})"),
        ))
    }

    /// One request and the head of its answer, on a pooled connection or a new one;
    /// the connection comes back unless it ended.
    async fn exchange(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        body: &Option<Bytes>,
    ) -> Result<
        (
            hyper::http::response::Parts,
            Incoming,
            Option<Box<Conn>>,
            Origin,
        ),
        Failure,
    > {
        let origin = Origin {
            tls: url.scheme() == "https",
            host: url.host_str().unwrap_or_default().to_string(),
            port: url.port_or_known_default().unwrap_or(80),
            slot: POOL_SLOT.with(|s| s.get()),
        };
        // `host[:port]` as the URL writes it (no credentials: see `takes`).
        let host = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let mut headers = headers.clone();
        headers.insert(
            header::HOST,
            HeaderValue::from_str(host).map_err(|e| failure(&e, None, false, false))?,
        );
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        let target: hyper::Uri = url[url::Position::BeforePath..url::Position::AfterQuery]
            .parse()
            .map_err(|e| failure(&e, None, false, false))?;
        let mut req = hyper::Request::new(match body {
            Some(b) => Full::new(b.clone()),
            None => Full::default(),
        });
        *req.method_mut() = method.clone();
        *req.uri_mut() = target;
        *req.headers_mut() = headers;
        // A kept-alive connection the relay closed just as the request went out is
        // given up for a new one: only when the request was never sent (hyper gives
        // it back then).
        let mut retried = false;
        loop {
            let (mut conn, was_idle) = match self.idle_conn(&origin).await {
                Some(c) => (c, true),
                None => (Box::pin(self.connect(url, &origin)).await?, false),
            };
            let mut answer = std::pin::pin!(conn.send.try_send_request(req));
            let mut alive = true;
            let result = std::future::poll_fn(|cx| {
                if alive {
                    alive = conn.drive(cx);
                }
                answer.as_mut().poll(cx)
            })
            .await;
            match result {
                Ok(answer) => {
                    let (head, incoming) = answer.into_parts();
                    return Ok((head, incoming, alive.then_some(conn), origin));
                }
                Err(mut e) => {
                    let unsent = e.take_message();
                    let e = e.into_error();
                    match unsent {
                        Some(r) if e.is_canceled() && was_idle && !retried => {
                            retried = true;
                            req = r;
                        }
                        _ => {
                            let timeout = e.is_timeout();
                            return Err(failure(&SendError(e), None, timeout, false));
                        }
                    }
                }
            }
        }
    }

    /// The newest idle connection to `origin` that is still open and ready.
    async fn idle_conn(&self, origin: &Origin) -> Option<Box<Conn>> {
        loop {
            let (mut conn, since) = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.get_mut(origin)?.pop()?
            };
            if since.elapsed() < POOL_IDLE && conn.ready().await {
                return Some(conn);
            }
        }
    }

    /// Puts a connection whose answer has been read back in the pool.
    fn release(&self, origin: &Origin, conn: Box<Conn>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = match idle.get_mut(origin) {
            Some(conns) => conns,
            None => idle.entry(origin.clone()).or_default(),
        };
        // The oldest are at the front: those past the idle limit are closed.
        let expired = conns
            .iter()
            .take_while(|(_, since)| since.elapsed() >= POOL_IDLE)
            .count();
        conns.drain(..expired);
        if conns.len() < MAX_IDLE_PER_ORIGIN {
            conns.push((conn, Instant::now()));
        }
    }

    async fn connect(&self, url: &Url, origin: &Origin) -> Result<Box<Conn>, Failure> {
        let timed_out = || {
            Failure::new(
                ErrorClass::Timeout,
                format!("connecting timed out after {} s", CONNECT_TIMEOUT.as_secs()),
            )
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, async {
            match url.host() {
                Some(url::Host::Ipv4(ip)) => {
                    TcpStream::connect(SocketAddr::from((ip, origin.port))).await
                }
                Some(url::Host::Ipv6(ip)) => {
                    TcpStream::connect(SocketAddr::from((ip, origin.port))).await
                }
                _ => TcpStream::connect((origin.host.as_str(), origin.port)).await,
            }
        })
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| connect_failure(&e))?;
        let _ = tcp.set_nodelay(true);
        let wire = if origin.tls {
            let connector = self
                .tls
                .get_or_init(|| tls_connector(self.verify_ssl))
                .as_ref()
                .map_err(|e| Failure::new(ErrorClass::Tls, e.clone()))?;
            let name = match url.host() {
                Some(url::Host::Ipv4(ip)) => rustls::pki_types::ServerName::from(ip),
                Some(url::Host::Ipv6(ip)) => rustls::pki_types::ServerName::from(ip),
                _ => rustls::pki_types::ServerName::try_from(origin.host.clone())
                    .map_err(|e| Failure::new(ErrorClass::Tls, format!("tls: {e}")))?,
            };
            let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| Failure::new(ErrorClass::Tls, format!("tls handshake: {e}")))?;
            Wire::Tls(Box::new(tls))
        } else {
            Wire::Tcp(tcp)
        };
        let (send, driver) = http1::handshake(TokioIo::new(wire))
            .await
            .map_err(|e| failure(&SendError(e), None, false, false))?;
        Ok(Box::new(Conn { send, driver }))
    }
}

fn connect_failure(e: &std::io::Error) -> Failure {
    let class = if e.kind() == std::io::ErrorKind::TimedOut {
        ErrorClass::Timeout
    } else {
        ErrorClass::Network
    };
    Failure::new(class, format!("tcp connect error: {e}"))
}

/// hyper's error, read as reqwest words it.
#[derive(Debug)]
struct SendError(hyper::Error);

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error sending request")
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The answer's body: it drives its connection while it is read, and gives the
/// connection back to the pool once it has ended.
struct Answer {
    conn: Option<Box<Conn>>,
    client: Arc<Direct>,
    origin: Origin,
    body: Incoming,
}

impl Answer {
    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.client.release(&self.origin, conn);
        }
    }
}

impl Stream for Answer {
    type Item = Result<Bytes, Failure>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(conn) = this.conn.as_mut()
            && !conn.drive(cx)
        {
            // Ended: what it had read is still in the body, then its end or error.
            this.conn = None;
        }
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    if this.body.is_end_stream() {
                        this.release();
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.conn = None;
                    let timeout = e.is_timeout();
                    return Poll::Ready(Some(Err(failure(&e, None, timeout, true))));
                }
                Poll::Ready(None) => {
                    this.release();
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

fn tls_connector(verify: bool) -> Result<tokio_rustls::TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let mut config = if verify {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// `verify_ssl = false`: any certificate is accepted (its signatures still have to
/// be sound), as the reqwest client does.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
