//! Who is calling: the admin token, an admin session from the panel login, the visitor
//! token, or nobody (a visitor when visitor mode is on). Every secret is compared in
//! constant time; failed tokens are rate-limited per client, but a valid token is
//! never refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::limiter::ClientKey;
use super::{Core, ServiceError, ServiceResult};

/// Admin sessions last this long after login.
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
pub const SESSION_COOKIE: &str = "apimon_admin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Visitor,
    /// No credentials, visitor mode off: only public routes.
    Nobody,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Visitor => "visitor",
            Role::Nobody => "nobody",
        }
    }
}

/// The caller of one request, as established by [`Core::authenticate`].
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub role: Role,
    /// Authenticated by the session cookie (cookie writes must pass the Origin check).
    pub via_cookie: bool,
    pub client: IpAddr,
}

impl Caller {
    pub fn require_reader(&self) -> ServiceResult<()> {
        match self.role {
            Role::Admin | Role::Visitor => Ok(()),
            Role::Nobody => Err(unauthorized()),
        }
    }

    pub fn require_admin(&self) -> ServiceResult<()> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Visitor => Err(ServiceError::Forbidden(
                "this needs the admin token or an admin login".into(),
            )),
            Role::Nobody => Err(unauthorized()),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

fn unauthorized() -> ServiceError {
    ServiceError::Unauthorized(
        "authentication required: send `Authorization: Bearer <token>` or log in at /admin/login"
            .into(),
    )
}

/// What a request presented.
#[derive(Default)]
pub struct Credentials<'a> {
    pub token: Option<&'a str>,
    pub session: Option<&'a str>,
}

pub fn secret_eq(a: &str, b: &str) -> bool {
    // Compare digests so the time taken does not depend on where or whether the lengths
    // differ.
    let da = Sha256::digest(a.as_bytes());
    let db = Sha256::digest(b.as_bytes());
    da.ct_eq(&db).into()
}

/// Admin sessions, keyed by the SHA-256 of the cookie value so a lookup reveals nothing
/// about stored values through timing.
#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Sessions {
    fn hash(value: &str) -> [u8; 32] {
        Sha256::digest(value.as_bytes()).into()
    }

    pub fn create(&self) -> String {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).expect("the operating system's random source failed");
        let value = hex::encode(raw);
        let now = Instant::now();
        let mut map = self.by_hash.lock().expect("sessions poisoned");
        map.retain(|_, expires| *expires > now);
        map.insert(Self::hash(&value), now + SESSION_TTL);
        value
    }

    pub fn is_valid(&self, value: &str) -> bool {
        let map = self.by_hash.lock().expect("sessions poisoned");
        map.get(&Self::hash(value))
            .is_some_and(|expires| *expires > Instant::now())
    }

    pub fn end(&self, value: &str) {
        self.by_hash
            .lock()
            .expect("sessions poisoned")
            .remove(&Self::hash(value));
    }

    pub fn end_all(&self) {
        self.by_hash.lock().expect("sessions poisoned").clear();
    }
}

impl Core {
    /// Establishes the caller's role. A token that matches nothing counts as a failure
    /// for the client and gets 401, or 429 once the client has failed too often; a
    /// matching token is accepted whatever the client's count.
    pub fn authenticate(&self, creds: Credentials<'_>, client: IpAddr) -> ServiceResult<Caller> {
        let settings = self.settings();
        let caller = |role, via_cookie| Caller {
            role,
            via_cookie,
            client,
        };
        if let Some(token) = creds.token {
            if secret_eq(token, settings.admin_token.expose()) {
                return Ok(caller(Role::Admin, false));
            }
            if let Some(v) = &settings.visitor_token
                && secret_eq(token, v.expose())
            {
                return Ok(caller(Role::Visitor, false));
            }
            let limited = self
                .token_failures
                .lock()
                .expect("limiter poisoned")
                .hit(ClientKey::of(client), Instant::now());
            return Err(match limited {
                Some(retry_after) => ServiceError::TooManyRequests {
                    message: "too many failed token attempts from this client; try again later"
                        .into(),
                    retry_after,
                },
                None => ServiceError::Unauthorized("invalid token".into()),
            });
        }
        if let Some(session) = creds.session
            && self.sessions.is_valid(session)
        {
            return Ok(caller(Role::Admin, true));
        }
        if settings.visitor_mode_enabled {
            return Ok(caller(Role::Visitor, false));
        }
        Ok(caller(Role::Nobody, false))
    }

    /// Checks the login password and opens a session; the returned value goes into the
    /// session cookie. The password is the panel password or, as with the Go program,
    /// the admin token. Repeated failures make the client wait, even for the right
    /// password, so guessing cannot go faster than the back-off.
    pub fn login(&self, client: IpAddr, password: &str) -> ServiceResult<String> {
        let key = ClientKey::of(client);
        let now = Instant::now();
        if let Some(wait) = self
            .login_backoff
            .lock()
            .expect("limiter poisoned")
            .wait(key, now)
        {
            return Err(ServiceError::TooManyRequests {
                message: format!(
                    "too many failed logins from this client; wait {} s",
                    wait.as_secs().max(1)
                ),
                retry_after: wait,
            });
        }
        let settings = self.settings();
        // Both compared every time (`|`, not `||`): the time taken does not tell which
        // secret matched.
        let matches = secret_eq(password, settings.admin_password.expose())
            | secret_eq(password, settings.admin_token.expose());
        if matches {
            self.login_backoff
                .lock()
                .expect("limiter poisoned")
                .succeed(key);
            Ok(self.sessions.create())
        } else {
            self.login_backoff
                .lock()
                .expect("limiter poisoned")
                .fail(key, now);
            tracing::warn!(client = %client, "failed admin login");
            Err(ServiceError::Unauthorized("wrong password".into()))
        }
    }

    /// `POST /api/admin/login` with `{"password": "..."}`.
    pub fn login_request(&self, client: IpAddr, raw: &[u8]) -> ServiceResult<String> {
        let mut body = super::validate::Body::parse(raw)?;
        let password = match body.value("password") {
            Some(serde_json::Value::String(p)) if !p.is_empty() && p.chars().count() <= 256 => p,
            _ => {
                return Err(ServiceError::BadRequest(
                    "password: required, a string of 1 to 256 characters".into(),
                ));
            }
        };
        body.finish()?;
        self.login(client, &password)
    }

    pub fn logout(&self, session: Option<&str>) {
        if let Some(s) = session {
            self.sessions.end(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_eq_compares_whole_values() {
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "abcd"));
        assert!(!secret_eq("", "a"));
    }

    #[test]
    fn sessions_expire_and_end() {
        let s = Sessions::default();
        let v = s.create();
        assert!(s.is_valid(&v));
        assert!(!s.is_valid("nope"));
        s.end(&v);
        assert!(!s.is_valid(&v));
    }
}
