//! [`HelloRecorder`]: a TLS endpoint on loopback that records the ClientHello of every
//! connection and answers it with a `handshake_failure` alert. Reached as
//! `https://localhost:PORT/`, clients send SNI, so the JA4 read from the hello is the
//! one a relay behind bot protection would see. Nothing past the hello is needed, so
//! no certificate is involved and any client (a real browser included) can be
//! recorded.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::ja4::ClientHello;
use crate::state::lock;

/// Largest ClientHello read (Chrome's, with a post-quantum key share, is about 2 KiB).
const HELLO_MAX: usize = 64 * 1024;

/// A running recorder; dropping it stops listening.
pub struct HelloRecorder {
    port: u16,
    hellos: Arc<Mutex<Vec<ClientHello>>>,
    arrived: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl HelloRecorder {
    /// Listens on 127.0.0.1 (and ::1 where available) at a free port, or at `port`.
    pub async fn start(port: u16) -> std::io::Result<HelloRecorder> {
        let v4 = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let port = v4.local_addr()?.port();
        // `localhost` may resolve to ::1 first; a machine without IPv6 just lacks it.
        let v6 = TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
            .await
            .ok();
        let hellos = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let tasks = std::iter::once(v4)
            .chain(v6)
            .map(|listener| {
                let (hellos, arrived) = (hellos.clone(), arrived.clone());
                tokio::spawn(async move {
                    while let Ok((tcp, _)) = listener.accept().await {
                        let (hellos, arrived) = (hellos.clone(), arrived.clone());
                        tokio::spawn(async move {
                            if let Ok(hello) = record(tcp).await {
                                lock(&hellos).push(hello);
                                arrived.notify_waiters();
                            }
                        });
                    }
                })
            })
            .collect();
        Ok(HelloRecorder {
            port,
            hellos,
            arrived,
            tasks,
        })
    }

    /// `https://localhost:PORT`: a name, so clients send SNI.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every ClientHello recorded so far, oldest first.
    pub fn hellos(&self) -> Vec<ClientHello> {
        lock(&self.hellos).clone()
    }

    /// Waits until `n` hellos have arrived or `timeout` passed; returns what arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ClientHello> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let now = self.hellos();
            if now.len() >= n {
                return now;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.hellos();
            }
        }
    }
}

impl Drop for HelloRecorder {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Reads handshake records until the first handshake message is whole, parses it and
/// refuses the handshake.
async fn record(mut tcp: TcpStream) -> Result<ClientHello, String> {
    let io = |e: std::io::Error| e.to_string();
    let mut message = Vec::new();
    loop {
        let mut header = [0u8; 5];
        tcp.read_exact(&mut header).await.map_err(io)?;
        if header[0] != 22 {
            return Err(format!("TLS record type {}, not a handshake", header[0]));
        }
        let len = u16::from_be_bytes([header[3], header[4]]) as usize;
        let mut fragment = vec![0u8; len];
        tcp.read_exact(&mut fragment).await.map_err(io)?;
        message.extend(fragment);
        if message.len() >= 4 {
            let want = 4
                + ((message[1] as usize) << 16 | (message[2] as usize) << 8 | message[3] as usize);
            if want > HELLO_MAX {
                return Err("ClientHello too large".into());
            }
            if message.len() >= want {
                message.truncate(want);
                break;
            }
        }
    }
    // Fatal handshake_failure: the client stops here.
    let _ = tcp.write_all(&[21, 3, 3, 0, 2, 2, 40]).await;
    let _ = tcp.shutdown().await;
    ClientHello::parse(&message)
}
