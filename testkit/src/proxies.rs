//! Local outbound proxies for tests, on 127.0.0.1 only: [`HttpProxy`] (HTTP `CONNECT`
//! tunnels and absolute-form forwarding, optional Basic credentials) and
//! [`Socks5Proxy`] (RFC 1928 `CONNECT`, optional RFC 1929 username/password). Each
//! counts the connections it accepted and the ones it let through, and relays bytes
//! both ways until either side closes.
//!
//! A forwarded (non-`CONNECT`) HTTP request pins its client connection to that
//! request's upstream: later requests on the same connection go to the same place,
//! which is all a test against one fake relay needs.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::state::lock;

/// Longest request head or SOCKS message accepted.
const HEAD_MAX: usize = 16 * 1024;

/// What both proxies count.
#[derive(Default)]
struct Counters {
    accepted: AtomicUsize,
    relayed: AtomicUsize,
    refused: AtomicUsize,
    last_destination: Mutex<Option<String>>,
}

/// The shared part of both proxies: the listener task and its counters.
struct Running {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Running {
    async fn start<F, Fut>(serve: F) -> Running
    where
        F: Fn(TcpStream, Arc<Counters>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("bind a test proxy");
        let addr = listener.local_addr().expect("a bound address");
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let task = tokio::spawn(async move {
            let serve = Arc::new(serve);
            while let Ok((tcp, _)) = listener.accept().await {
                c.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = tcp.set_nodelay(true);
                let (serve, c) = (serve.clone(), c.clone());
                tokio::spawn(async move {
                    let _ = serve(tcp, c).await;
                });
            }
        });
        Running {
            addr,
            counters,
            task,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

macro_rules! proxy_handle {
    ($name:ident, $scheme:literal) => {
        impl $name {
            pub fn addr(&self) -> SocketAddr {
                self.0.addr
            }

            /// `scheme://[user:password@]127.0.0.1:PORT`, as a target's `proxy_url`.
            pub fn url(&self) -> String {
                match &self.1 {
                    Some((u, p)) => format!("{}://{u}:{p}@{}", $scheme, self.0.addr),
                    None => format!("{}://{}", $scheme, self.0.addr),
                }
            }

            /// TCP connections accepted from clients.
            pub fn accepted(&self) -> usize {
                self.0.counters.accepted.load(Ordering::SeqCst)
            }

            /// Connections let through to an upstream.
            pub fn relayed(&self) -> usize {
                self.0.counters.relayed.load(Ordering::SeqCst)
            }

            /// Connections refused for missing or wrong credentials.
            pub fn refused(&self) -> usize {
                self.0.counters.refused.load(Ordering::SeqCst)
            }

            /// `host:port` of the latest destination a client asked for.
            pub fn last_destination(&self) -> Option<String> {
                self.0
                    .counters
                    .last_destination
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            }
        }
    };
}

type Credentials = Option<(String, String)>;

/// An HTTP proxy: `CONNECT host:port` tunnels, and absolute-form requests
/// (`GET http://host:port/path`) forwarded in origin form.
pub struct HttpProxy(Running, Credentials);
proxy_handle!(HttpProxy, "http");

impl HttpProxy {
    /// Starts a proxy; with `credentials`, clients must send them as
    /// `Proxy-Authorization: Basic` or get 407.
    pub async fn start(credentials: Option<(&str, &str)>) -> HttpProxy {
        let creds: Credentials = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
        let expected = creds.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let running = Running::start(move |tcp, c| serve_http(tcp, c, expected.clone())).await;
        HttpProxy(running, creds)
    }
}

async fn read_head(tcp: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte: nothing after the head may be consumed, it belongs to the upstream.
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= HEAD_MAX || tcp.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(head)
}

async fn serve_http(
    mut tcp: TcpStream,
    c: Arc<Counters>,
    expected: Option<String>,
) -> std::io::Result<()> {
    let head = read_head(&mut tcp).await?;
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("HTTP/1.1"),
    );
    let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    if let Some(expected) = &expected {
        let given = headers.iter().find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.eq_ignore_ascii_case("proxy-authorization")
                .then(|| value.trim())
        });
        if given != Some(expected.as_str()) {
            c.refused.fetch_add(1, Ordering::SeqCst);
            tcp.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                  Proxy-Authenticate: Basic realm=\"testkit\"\r\ncontent-length: 0\r\n\
                  connection: close\r\n\r\n",
            )
            .await?;
            return Ok(());
        }
    }
    if method.eq_ignore_ascii_case("CONNECT") {
        *lock(&c.last_destination) = Some(target.to_string());
        let Ok(mut upstream) = TcpStream::connect(target).await else {
            tcp.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                .await?;
            return Ok(());
        };
        c.relayed.fetch_add(1, Ordering::SeqCst);
        tcp.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
        let _ = upstream.set_nodelay(true);
        tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await?;
        return Ok(());
    }
    // Absolute form: `http://host:port/path` becomes `/path` sent to host:port.
    let Some(rest) = target.strip_prefix("http://") else {
        tcp.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    *lock(&c.last_destination) = Some(authority.clone());
    let mut upstream = TcpStream::connect(&authority).await?;
    let _ = upstream.set_nodelay(true);
    c.relayed.fetch_add(1, Ordering::SeqCst);
    let mut out = format!(
        "{method} {} {version}\r\n",
        if path.is_empty() { "/" } else { path }
    );
    for h in headers {
        let name = h.split(':').next().unwrap_or("").trim();
        if !name.eq_ignore_ascii_case("proxy-authorization")
            && !name.eq_ignore_ascii_case("proxy-connection")
        {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    upstream.write_all(out.as_bytes()).await?;
    tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await?;
    Ok(())
}

/// A SOCKS5 proxy (`CONNECT` only, IPv4, IPv6 and domain names).
pub struct Socks5Proxy(Running, Credentials);
proxy_handle!(Socks5Proxy, "socks5");

impl Socks5Proxy {
    /// Starts a proxy; with `credentials`, clients must authenticate with them
    /// (method 2) or are turned away.
    pub async fn start(credentials: Option<(&str, &str)>) -> Socks5Proxy {
        let creds: Credentials = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
        let expected = creds.clone();
        let running = Running::start(move |tcp, c| serve_socks(tcp, c, expected.clone())).await;
        Socks5Proxy(running, creds)
    }
}

async fn read_exact_vec(tcp: &mut TcpStream, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    tcp.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn serve_socks(
    mut tcp: TcpStream,
    c: Arc<Counters>,
    expected: Credentials,
) -> std::io::Result<()> {
    let greeting = read_exact_vec(&mut tcp, 2).await?;
    if greeting[0] != 5 {
        return Ok(());
    }
    let methods = read_exact_vec(&mut tcp, greeting[1] as usize).await?;
    let wanted = if expected.is_some() { 2 } else { 0 };
    if !methods.contains(&wanted) {
        c.refused.fetch_add(1, Ordering::SeqCst);
        tcp.write_all(&[5, 0xff]).await?;
        return Ok(());
    }
    tcp.write_all(&[5, wanted]).await?;
    if let Some((user, password)) = &expected {
        let head = read_exact_vec(&mut tcp, 2).await?;
        let given_user = read_exact_vec(&mut tcp, head[1] as usize).await?;
        let plen = read_exact_vec(&mut tcp, 1).await?[0] as usize;
        let given_password = read_exact_vec(&mut tcp, plen).await?;
        if given_user != user.as_bytes() || given_password != password.as_bytes() {
            c.refused.fetch_add(1, Ordering::SeqCst);
            tcp.write_all(&[1, 1]).await?;
            return Ok(());
        }
        tcp.write_all(&[1, 0]).await?;
    }
    let request = read_exact_vec(&mut tcp, 4).await?;
    if request[0] != 5 || request[1] != 1 {
        // Only CONNECT: "command not supported".
        tcp.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    }
    let host = match request[3] {
        1 => {
            let a = read_exact_vec(&mut tcp, 4).await?;
            Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
        }
        4 => {
            let a: [u8; 16] = read_exact_vec(&mut tcp, 16)
                .await?
                .try_into()
                .expect("16 bytes");
            format!("[{}]", std::net::Ipv6Addr::from(a))
        }
        3 => {
            let len = read_exact_vec(&mut tcp, 1).await?[0] as usize;
            String::from_utf8_lossy(&read_exact_vec(&mut tcp, len).await?).to_string()
        }
        _ => return Ok(()),
    };
    let port = u16::from_be_bytes(
        read_exact_vec(&mut tcp, 2)
            .await?
            .try_into()
            .expect("2 bytes"),
    );
    let destination = format!("{host}:{port}");
    *lock(&c.last_destination) = Some(destination.clone());
    let Ok(mut upstream) = TcpStream::connect(&destination).await else {
        // "connection refused"
        tcp.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    };
    let _ = upstream.set_nodelay(true);
    c.relayed.fetch_add(1, Ordering::SeqCst);
    tcp.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await?;
    Ok(())
}
