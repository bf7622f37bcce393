//! The threads HTTP connections live on. Each runs a single-threaded runtime of its
//! own and serves the connections handed to it from start to end, so one request
//! (read, routed, proxied to a relay over a connection driven by the same task, its
//! answer written back) never waits for a wake-up from another thread: on a small
//! machine those cross-thread wake-ups cost more than the request's own work. The
//! accept loop stays on the main runtime and deals connections out in turn; work a
//! request starts that outlives it (runs, upkeep) goes to the main runtime through
//! the lifecycle, never here.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// What serves a connection, given its socket (registered on the thread it runs on).
pub type Job =
    Box<dyn FnOnce(tokio::net::TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

struct Handoff {
    tcp: std::net::TcpStream,
    job: Job,
}

/// The connection threads, and every connection started on them.
pub struct Threads {
    senders: Vec<mpsc::UnboundedSender<Handoff>>,
    next: AtomicUsize,
    connections: TaskTracker,
}

impl Threads {
    /// Starts `count` threads (at least one).
    pub fn start(count: usize) -> std::io::Result<Threads> {
        let connections = TaskTracker::new();
        let mut senders = Vec::new();
        for n in 0..count.max(1) {
            let (tx, mut rx) = mpsc::unbounded_channel::<Handoff>();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let tracker = connections.clone();
            std::thread::Builder::new()
                .name(format!("apimon-http-{n}"))
                .spawn(move || {
                    shared::probe::pin_direct_pool_to_this_thread(n + 1);
                    runtime.block_on(async move {
                        while let Some(Handoff { tcp, job }) = rx.recv().await {
                            match tokio::net::TcpStream::from_std(tcp) {
                                Ok(tcp) => {
                                    tokio::spawn(tracker.track_future(job(tcp)));
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "cannot take over an HTTP connection")
                                }
                            }
                        }
                        // No more connections come: serve the open ones to their end.
                        tracker.close();
                        tracker.wait().await;
                    });
                })?;
            senders.push(tx);
        }
        Ok(Threads {
            senders,
            next: AtomicUsize::new(0),
            connections,
        })
    }

    /// Hands `tcp` (from `peer`) to the next thread, where `job` serves it as a task
    /// of its own.
    pub fn hand_over(&self, tcp: tokio::net::TcpStream, peer: SocketAddr, job: Job) {
        let tcp = match tcp.into_std() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(client = %peer, error = %e, "cannot hand an HTTP connection over");
                return;
            }
        };
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
        if self.senders[n].send(Handoff { tcp, job }).is_err() {
            tracing::warn!(client = %peer, "an HTTP connection thread has ended");
        }
    }

    /// Takes no more connections and waits until every open one has ended.
    pub async fn finish(self) {
        drop(self.senders);
        self.connections.close();
        self.connections.wait().await;
    }
}
