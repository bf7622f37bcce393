//! TCP listeners whose accept queue holds a burst of connections.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Connections the kernel may hold for an accept loop (it caps this at
/// `net.core.somaxconn`). The usual 128 overflows when a thousand SDK clients connect at
/// once, and a connection whose SYN is dropped waits a second for its retry.
pub const BACKLOG: u32 = 4096;

/// A listener on `addr` with a backlog of [`BACKLOG`].
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}
