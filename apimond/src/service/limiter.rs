//! Per-client limits on failed credentials. A client is an IP address; IPv6 clients
//! are keyed by their /64, since one host usually holds a whole /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failed token attempts allowed per client in [`TOKEN_WINDOW`].
pub const TOKEN_FAILURES_PER_WINDOW: u32 = 10;
pub const TOKEN_WINDOW: Duration = Duration::from_secs(60);

/// Run requests a visitor may make per client in [`VISITOR_RUN_WINDOW`].
pub const VISITOR_RUNS_PER_WINDOW: u32 = 6;
pub const VISITOR_RUN_WINDOW: Duration = Duration::from_secs(60);

/// Failed password logins a client may make before it must wait.
pub const FREE_LOGIN_FAILURES: u32 = 4;
/// The longest wait after repeated failed logins.
pub const MAX_LOGIN_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Entries idle this long are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Bound on tracked clients.
const MAX_CLIENTS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(_) => ClientKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(bits.into()))
                }
            },
        }
    }
}

/// Per-client (time, count) entries, forgetting idle clients now and then and bounded
/// in size, so a flood of addresses cannot grow memory without end.
struct ClientMap {
    entries: HashMap<ClientKey, (Instant, u32)>,
    last_prune: Option<Instant>,
}

impl ClientMap {
    fn new() -> Self {
        Self {
            entries: HashMap::new(),
            last_prune: None,
        }
    }

    fn prune(&mut self, now: Instant) {
        let due = self
            .last_prune
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60));
        if due {
            self.entries
                .retain(|_, (t, _)| now.duration_since(*t) < FORGET_AFTER);
            self.last_prune = Some(now);
        }
        if self.entries.len() >= MAX_CLIENTS {
            // Keep the newest half.
            let mut stamps: Vec<Instant> = self.entries.values().map(|(t, _)| *t).collect();
            stamps.sort_unstable();
            let cut = stamps[stamps.len() / 2];
            self.entries.retain(|_, (t, _)| *t >= cut);
        }
    }
}

/// Counts events (failed tokens, run requests) per client in fixed windows.
pub struct Window {
    limit: u32,
    window: Duration,
    clients: ClientMap,
}

impl Window {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            clients: ClientMap::new(),
        }
    }

    /// Counts one event; returns how long the client must wait if it is now over the
    /// limit.
    pub fn hit(&mut self, key: ClientKey, now: Instant) -> Option<Duration> {
        self.clients.prune(now);
        let window = self.window;
        let entry = self.clients.entries.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        (entry.1 > self.limit).then(|| window.saturating_sub(now.duration_since(entry.0)))
    }
}

/// Exponential back-off of password logins per client.
pub struct Backoff {
    clients: ClientMap,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            clients: ClientMap::new(),
        }
    }
}

impl Backoff {
    /// How long the client must still wait before trying again, if at all.
    pub fn wait(&self, key: ClientKey, now: Instant) -> Option<Duration> {
        let (last, failures) = self.clients.entries.get(&key)?;
        let delay = backoff_delay(*failures)?;
        let until = *last + delay;
        (until > now).then(|| until - now)
    }

    pub fn fail(&mut self, key: ClientKey, now: Instant) {
        self.clients.prune(now);
        let entry = self.clients.entries.entry(key).or_insert((now, 0));
        entry.0 = now;
        entry.1 = entry.1.saturating_add(1);
    }

    pub fn succeed(&mut self, key: ClientKey) {
        self.clients.entries.remove(&key);
    }
}

/// No wait for the first few failures, then 2 s, 4 s, 8 s … up to the cap.
fn backoff_delay(failures: u32) -> Option<Duration> {
    if failures < FREE_LOGIN_FAILURES {
        return None;
    }
    let exp = (failures - FREE_LOGIN_FAILURES).min(16);
    Some(Duration::from_secs(2u64 << exp).min(MAX_LOGIN_BACKOFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a = ClientKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientKey::of("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = ClientKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = ClientKey::of("::ffff:10.0.0.1".parse().unwrap());
        assert_eq!(mapped, ClientKey::of("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn token_failures_are_limited_per_window() {
        let mut w = Window::new(3, Duration::from_secs(60));
        let k = ClientKey::of("10.0.0.1".parse().unwrap());
        let other = ClientKey::of("10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(w.hit(k, t0), None);
        }
        let wait = w.hit(k, t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(wait, Duration::from_secs(50));
        assert_eq!(w.hit(other, t0), None);
        assert_eq!(w.hit(k, t0 + Duration::from_secs(61)), None);
    }

    #[test]
    fn login_backoff_doubles_and_resets_on_success() {
        let mut b = Backoff::default();
        let k = ClientKey::of("10.0.0.1".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..FREE_LOGIN_FAILURES - 1 {
            b.fail(k, t0);
        }
        assert_eq!(b.wait(k, t0), None);
        b.fail(k, t0);
        assert_eq!(b.wait(k, t0), Some(Duration::from_secs(2)));
        b.fail(k, t0);
        assert_eq!(b.wait(k, t0), Some(Duration::from_secs(4)));
        assert_eq!(b.wait(k, t0 + Duration::from_secs(5)), None);
        for _ in 0..40 {
            b.fail(k, t0);
        }
        assert_eq!(b.wait(k, t0), Some(MAX_LOGIN_BACKOFF));
        b.succeed(k);
        assert_eq!(b.wait(k, t0), None);
    }
}
