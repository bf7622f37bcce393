//! What a proxy key may do ([`KeyGrant`]) and why one is refused ([`KeyRefusal`], with
//! its HTTP status, `Retry-After` and message): the answers of
//! `ProxyKeys::authenticate`.

use super::ServiceError;

/// What a key may do: returned by `ProxyKeys::authenticate`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyGrant {
    /// `None` for the master token.
    pub key_id: Option<i64>,
    pub name: String,
    /// Channels the key may use; empty = all.
    pub allowed_target_ids: Vec<i64>,
    /// `channel/model` names the key may use, exact and case-sensitive; empty = all.
    pub allowed_models: Vec<String>,
}

impl KeyGrant {
    pub fn allows_target(&self, target_id: i64) -> bool {
        self.allowed_target_ids.is_empty() || self.allowed_target_ids.contains(&target_id)
    }

    /// Whether the key may use `model` on the channel named `target_name`.
    pub fn allows_model(&self, target_name: &str, model: &str) -> bool {
        self.allowed_models.is_empty()
            || self.allowed_models.iter().any(|m| {
                m.len() == target_name.len() + 1 + model.len()
                    && m.starts_with(target_name)
                    && m.as_bytes()[target_name.len()] == b'/'
                    && m.ends_with(model)
            })
    }
}

/// Why a request's key was refused. [`KeyRefusal::status`] is the HTTP status,
/// [`KeyRefusal::retry_after_s`] the `Retry-After` for 429s, `Display` the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRefusal {
    /// No key was presented.
    Missing,
    /// No key or master token matches (counted against the client, see
    /// `ProxyKeys::authenticate`).
    Unknown,
    /// The client presented too many unknown keys lately (shared with the API's token
    /// limit, SPEC §10); a valid key is still accepted.
    TooManyFailures {
        retry_after_s: u64,
    },
    Revoked,
    Disabled,
    Expired,
    RateLimited {
        retry_after_s: u64,
        rpm_limit: u32,
    },
    /// The key's daily token budget is used up until the budget day ends.
    BudgetSpent {
        retry_after_s: u64,
        daily_token_budget: u64,
    },
}

impl KeyRefusal {
    pub fn status(&self) -> u16 {
        match self {
            KeyRefusal::Missing | KeyRefusal::Unknown => 401,
            KeyRefusal::Revoked | KeyRefusal::Disabled | KeyRefusal::Expired => 403,
            KeyRefusal::TooManyFailures { .. }
            | KeyRefusal::RateLimited { .. }
            | KeyRefusal::BudgetSpent { .. } => 429,
        }
    }

    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            KeyRefusal::TooManyFailures { retry_after_s }
            | KeyRefusal::RateLimited { retry_after_s, .. }
            | KeyRefusal::BudgetSpent { retry_after_s, .. } => Some(*retry_after_s),
            _ => None,
        }
    }
}

impl std::fmt::Display for KeyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRefusal::Missing => f.write_str(
                "no proxy key: send it as `Authorization: Bearer <key>`, `x-api-key`, \
                 `x-goog-api-key` or `?key=`",
            ),
            KeyRefusal::Unknown => f.write_str("invalid proxy key"),
            KeyRefusal::TooManyFailures { retry_after_s } => write!(
                f,
                "too many invalid keys from this client; try again in {retry_after_s} s"
            ),
            KeyRefusal::Revoked => f.write_str("this proxy key was revoked"),
            KeyRefusal::Disabled => f.write_str("this proxy key is disabled"),
            KeyRefusal::Expired => f.write_str("this proxy key has expired (expires_at)"),
            KeyRefusal::RateLimited {
                retry_after_s,
                rpm_limit,
            } => write!(
                f,
                "this proxy key's limit of {rpm_limit} requests per minute (rpm_limit) is \
                 reached; retry in {retry_after_s} s"
            ),
            KeyRefusal::BudgetSpent {
                retry_after_s,
                daily_token_budget,
            } => write!(
                f,
                "this proxy key's daily token budget of {daily_token_budget} \
                 (daily_token_budget) is spent; it renews in {retry_after_s} s"
            ),
        }
    }
}

impl From<KeyRefusal> for ServiceError {
    fn from(r: KeyRefusal) -> Self {
        let message = r.to_string();
        match r.status() {
            401 => ServiceError::Unauthorized(message),
            403 => ServiceError::Forbidden(message),
            _ => ServiceError::TooManyRequests {
                message,
                retry_after: std::time::Duration::from_secs(r.retry_after_s().unwrap_or(1)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(models: &[&str]) -> KeyGrant {
        KeyGrant {
            key_id: Some(1),
            name: "k".into(),
            allowed_target_ids: vec![],
            allowed_models: models.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn allowed_models_are_exact_channel_slash_model_names() {
        let g = grant(&["relay-a/gpt-4o", "b/x/y"]);
        assert!(g.allows_model("relay-a", "gpt-4o"));
        assert!(!g.allows_model("relay-a", "gpt-4o-mini"));
        assert!(!g.allows_model("Relay-a", "gpt-4o"));
        assert!(!g.allows_model("relay", "a/gpt-4o"));
        assert!(g.allows_model("b", "x/y"));
        assert!(!g.allows_model("b/x", "z"));
        assert!(grant(&[]).allows_model("any", "thing"));
    }

    #[test]
    fn an_empty_target_list_allows_every_target() {
        let mut g = grant(&[]);
        assert!(g.allows_target(7));
        g.allowed_target_ids = vec![2];
        assert!(g.allows_target(2) && !g.allows_target(7));
    }

    #[test]
    fn refusals_carry_their_status_and_name_the_limit() {
        let r = KeyRefusal::RateLimited {
            retry_after_s: 3,
            rpm_limit: 10,
        };
        assert_eq!((r.status(), r.retry_after_s()), (429, Some(3)));
        assert!(r.to_string().contains("rpm_limit"));
        assert_eq!(KeyRefusal::Expired.status(), 403);
        assert!(KeyRefusal::Expired.to_string().contains("expired"));
        assert_eq!(KeyRefusal::Unknown.status(), 401);
    }
}
