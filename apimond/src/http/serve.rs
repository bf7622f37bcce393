//! The HTTP accept loop: who may open a connection. Caps the connections in all and
//! per client (an IPv4 address or an IPv6 /64; `TRUSTED_PROXIES` are exempt from the
//! per-client cap), says so in the log when a cap refuses someone (at most once per
//! interval), and on stop lets every open connection finish its request.
//! What one connection may do (timeouts) is `http::connection`; the threads
//! connections are served on, `http::threads`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::connection;
use super::threads::Threads;
use crate::config::HttpLimits;

/// Files kept free of HTTP connections for the store, run logs, outbound probes and
/// the control socket, so a flood of clients never starves them.
const RESERVED_FILES: u64 = 1024;

/// How often the log may say that a cap refused connections.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The connection cap in all: the configured one, lowered to fit the open-file limit.
pub fn total_cap(configured: usize, soft_fd_limit: u64) -> usize {
    let room = soft_fd_limit
        .saturating_sub(RESERVED_FILES)
        .max(soft_fd_limit / 2);
    configured.min(room.max(16) as usize)
}

/// The key a client's connections are counted under: IPv6 clients by /64, as the
/// rate limits key them.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::from(seg)
        }
        v4 => v4,
    }
}

/// Open connections, in all and per client.
#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// Refusals since the last log line, by cap.
struct Refusals {
    total: u64,
    per_client: u64,
    last_logged: Option<Instant>,
}

/// Who is connected, shared by the accept loop and the connections' release guards.
pub struct Admission {
    limits: HttpLimits,
    cap: usize,
    trusted: Vec<IpNet>,
    counts: Mutex<Counts>,
    refusals: Mutex<Refusals>,
}

/// Held by an open connection; gives its place back when dropped.
pub struct Admitted {
    admission: Arc<Admission>,
    key: Option<IpAddr>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut c = self.admission.counts.lock().expect("counts poisoned");
        c.total -= 1;
        if let Some(key) = self.key
            && let Some(n) = c.per_client.get_mut(&key)
        {
            *n -= 1;
            if *n == 0 {
                c.per_client.remove(&key);
            }
        }
    }
}

impl Admission {
    pub fn new(limits: HttpLimits, soft_fd_limit: u64, trusted: Vec<IpNet>) -> Arc<Admission> {
        Arc::new(Admission {
            cap: total_cap(limits.max_connections, soft_fd_limit),
            limits,
            trusted,
            counts: Mutex::default(),
            refusals: Mutex::new(Refusals {
                total: 0,
                per_client: 0,
                last_logged: None,
            }),
        })
    }

    /// The cap in all, after fitting it to the open-file limit.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.lock().expect("counts poisoned").total
    }

    /// A place for a connection from `peer`, or `None` when a cap is reached.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admitted> {
        let peer = peer.to_canonical();
        let exempt = self.trusted.iter().any(|n| n.contains(&peer));
        let key = (!exempt).then(|| client_key(peer));
        let mut c = self.counts.lock().expect("counts poisoned");
        let refused_by = if c.total >= self.cap {
            Some(false)
        } else if let Some(k) = key
            && c.per_client.get(&k).copied().unwrap_or(0) >= self.limits.max_per_client
        {
            Some(true)
        } else {
            None
        };
        if let Some(per_client) = refused_by {
            drop(c);
            self.note_refusal(peer, per_client);
            return None;
        }
        c.total += 1;
        if let Some(k) = key {
            *c.per_client.entry(k).or_default() += 1;
        }
        Some(Admitted {
            admission: self.clone(),
            key,
        })
    }

    fn note_refusal(&self, peer: IpAddr, per_client: bool) {
        let mut r = self.refusals.lock().expect("refusals poisoned");
        if per_client {
            r.per_client += 1;
        } else {
            r.total += 1;
        }
        let due = r
            .last_logged
            .is_none_or(|t| t.elapsed() >= REFUSAL_LOG_INTERVAL);
        if due {
            tracing::warn!(
                client = %peer,
                refused_over_total_cap = r.total,
                refused_over_client_cap = r.per_client,
                max_connections = self.cap,
                max_per_client = self.limits.max_per_client,
                "HTTP connection cap reached: refusing new connections (HTTP_MAX_CONNECTIONS, HTTP_MAX_CONNECTIONS_PER_CLIENT)"
            );
            r.total = 0;
            r.per_client = 0;
            r.last_logged = Some(Instant::now());
        }
    }
}

/// Accepts connections until `stop`, then lets the open ones finish their request
/// (each closes after its response) and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shortcut: Option<Arc<dyn connection::Shortcut>>,
    admission: Arc<Admission>,
    threads: usize,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let threads = Threads::start(threads)?;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => break,
        };
        let (tcp, peer): (tokio::net::TcpStream, SocketAddr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors or a connection reset before accept: wait a
                // little rather than spin.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(place) = admission.admit(peer.ip()) else {
            drop(tcp);
            continue;
        };
        // Streams (SSE, proxied replies) go out event by event: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let shortcut = shortcut.clone();
        let limits = admission.limits;
        let stop = stop.clone();
        threads.hand_over(
            tcp,
            peer,
            Box::new(move |tcp| {
                Box::pin(async move {
                    connection::serve(tcp, peer, app, shortcut, limits, stop).await;
                    drop(place);
                })
            }),
        );
    }
    drop(listener);
    threads.finish().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_client: usize) -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            stall_timeout: Duration::from_secs(1),
            max_connections: total,
            max_per_client: per_client,
        }
    }

    #[test]
    fn the_total_cap_leaves_files_for_the_rest_of_the_daemon() {
        assert_eq!(total_cap(10_000, 1024), 512);
        assert_eq!(total_cap(10_000, 20_000), 10_000);
        assert_eq!(total_cap(10_000, 4096), 3072);
    }

    #[test]
    fn a_client_over_its_cap_is_refused_while_others_and_trusted_proxies_get_in() {
        let a = Admission::new(
            limits(100, 2),
            1 << 20,
            vec!["10.0.0.1/32".parse().unwrap()],
        );
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<_> = (0..2).map(|_| a.admit(one).unwrap()).collect();
        assert!(a.admit(one).is_none(), "third from one client");
        assert!(a.admit("192.0.2.2".parse().unwrap()).is_some());
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let through_proxy: Vec<_> = (0..10).map(|_| a.admit(proxy).unwrap()).collect();
        drop(held);
        assert!(a.admit(one).is_some(), "places come back when closed");
        assert_eq!(through_proxy.len(), 10);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a = Admission::new(limits(100, 1), 1 << 20, vec![]);
        let _x = a.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert!(a.admit("2001:db8::2".parse().unwrap()).is_none());
        assert!(a.admit("2001:db8:0:1::1".parse().unwrap()).is_some());
    }

    #[test]
    fn the_total_cap_refuses_everyone_once_reached() {
        let a = Admission::new(limits(16, 100), 1 << 20, vec![]);
        let _held: Vec<_> = (0..16)
            .map(|i| a.admit(IpAddr::from([192, 0, 2, i as u8])).unwrap())
            .collect();
        assert!(a.admit("198.51.100.1".parse().unwrap()).is_none());
        assert_eq!(a.open(), 16);
    }
}
