//! The one table of variables apimond reads: each variable's name, whether its value is
//! secret, its kind with bounds and default, and, for the ones the admin panel can
//! change, the settings API field it pins. The environment/file parsing (`config`) and
//! the admin settings API (`service::settings`) both validate from here, so a bound is
//! written once.

/// An inclusive range of integers a variable or field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntRange {
    pub min: i64,
    pub max: i64,
}

impl IntRange {
    pub fn contains(self, n: i64) -> bool {
        (self.min..=self.max).contains(&n)
    }

    /// What is allowed, as both error messages phrase it.
    pub fn describe(self) -> String {
        format!("an integer from {} to {}", self.min, self.max)
    }
}

/// Minutes between probes of one target: `DEFAULT_INTERVAL_MIN` and a target's
/// `interval_min` share it.
pub const INTERVAL_MINUTES: IntRange = IntRange { min: 1, max: 1440 };

/// Most models one target may probe (`max_models`) or select (`selected_models`).
pub const MODELS_PER_TARGET_MAX: usize = 5000;

/// Longest token or password, in characters.
pub const TOKEN_MAX_CHARS: usize = 256;

/// What a token is when nothing sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenDefault {
    /// Unset: the feature it guards is off.
    Empty,
    /// Generated from this many random bytes (hex) at first start and stored; the admin
    /// panel cannot clear it.
    Generated { random_bytes: usize },
}

/// A token or password: its shortest length and what it is when nothing sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRule {
    pub min_chars: usize,
    pub default: TokenDefault,
}

impl TokenRule {
    /// Within the length bounds, with no whitespace or control characters.
    pub fn accepts(self, token: &str) -> bool {
        let len = token.chars().count();
        (self.min_chars..=TOKEN_MAX_CHARS).contains(&len)
            && !token.chars().any(|c| c.is_whitespace() || c.is_control())
    }

    /// What is allowed, as both error messages phrase it.
    pub fn describe(self) -> String {
        format!(
            "{} to {TOKEN_MAX_CHARS} characters without spaces",
            self.min_chars
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int {
        range: IntRange,
        default: i64,
    },
    Bool {
        default: bool,
    },
    Token(TokenRule),
    /// An address, path, list, key or name with its own hand-written parser in
    /// `config::parsers`, which also owns its default.
    Special,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    /// A secret value is never echoed in an error or a log.
    pub secret: bool,
    pub kind: Kind,
    /// The admin settings API field this variable pins, when the panel can change it.
    pub panel_field: Option<&'static str>,
    /// Other names of the same setting (the Go program's), accepted everywhere the
    /// main name is. Two names given different values stop the start.
    pub aliases: &'static [&'static str],
}

impl Variable {
    const fn int(name: &'static str, min: i64, max: i64, default: i64) -> Variable {
        Variable::of(
            name,
            Kind::Int {
                range: IntRange { min, max },
                default,
            },
        )
    }

    const fn bool(name: &'static str, default: bool) -> Variable {
        Variable::of(name, Kind::Bool { default })
    }

    const fn token(name: &'static str, default: TokenDefault) -> Variable {
        Variable {
            secret: true,
            ..Variable::of(
                name,
                Kind::Token(TokenRule {
                    min_chars: 8,
                    default,
                }),
            )
        }
    }

    const fn special(name: &'static str) -> Variable {
        Variable::of(name, Kind::Special)
    }

    const fn of(name: &'static str, kind: Kind) -> Variable {
        Variable {
            name,
            secret: false,
            kind,
            panel_field: None,
            aliases: &[],
        }
    }

    const fn also(self, aliases: &'static [&'static str]) -> Variable {
        Variable { aliases, ..self }
    }

    /// The main name, then the aliases.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + use<> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }

    const fn secret(self) -> Variable {
        Variable {
            secret: true,
            ..self
        }
    }

    const fn in_panel(self, field: &'static str) -> Variable {
        Variable {
            panel_field: Some(field),
            ..self
        }
    }
}

pub const PORT: Variable = Variable::int("PORT", 0, 65535, 8081);
pub const HOST: Variable = Variable::special("HOST");
pub const DATA_DIR: Variable = Variable::special("DATA_DIR");
pub const APIMON_SOCKET: Variable = Variable::special("APIMON_SOCKET");
pub const APIMON_SOCKET_GROUP: Variable = Variable::special("APIMON_SOCKET_GROUP");
/// The Go program's compose file names it `API_MONITOR_TOKEN_ADMIN`; its README
/// `API_MONITOR_TOKEN`. Both work.
pub const API_MONITOR_TOKEN: Variable = Variable::token(
    "API_MONITOR_TOKEN",
    TokenDefault::Generated { random_bytes: 24 },
)
.in_panel("api_monitor_token_admin")
.also(&["API_MONITOR_TOKEN_ADMIN"]);
pub const API_MONITOR_TOKEN_VISITOR: Variable =
    Variable::token("API_MONITOR_TOKEN_VISITOR", TokenDefault::Empty)
        .in_panel("api_monitor_token_visitor");
pub const ADMIN_PANEL_PASSWORD: Variable = Variable::token(
    "ADMIN_PANEL_PASSWORD",
    TokenDefault::Generated { random_bytes: 12 },
)
.in_panel("admin_panel_password");
pub const PROXY_MASTER_TOKEN: Variable =
    Variable::token("PROXY_MASTER_TOKEN", TokenDefault::Empty).in_panel("proxy_master_token");
pub const DEFAULT_INTERVAL_MIN: Variable = Variable::of(
    "DEFAULT_INTERVAL_MIN",
    Kind::Int {
        range: INTERVAL_MINUTES,
        default: 30,
    },
)
.in_panel("default_interval_min");
pub const LOG_CLEANUP_ENABLED: Variable =
    Variable::bool("LOG_CLEANUP_ENABLED", true).in_panel("log_cleanup_enabled");
pub const LOG_MAX_SIZE_MB: Variable =
    Variable::int("LOG_MAX_SIZE_MB", 0, 102_400, 500).in_panel("log_max_size_mb");
pub const MONITOR_DETECT_CONCURRENCY: Variable =
    Variable::int("MONITOR_DETECT_CONCURRENCY", 1, 256, 3);
pub const MONITOR_MAX_PARALLEL_TARGETS: Variable =
    Variable::int("MONITOR_MAX_PARALLEL_TARGETS", 1, 256, 2);
pub const MONITOR_HOST_CONCURRENCY: Variable =
    Variable::int("MONITOR_HOST_CONCURRENCY", 1, 4096, 16);
pub const RETENTION_RAW_DAYS: Variable = Variable::int("RETENTION_RAW_DAYS", 1, 3650, 7);
pub const RETENTION_HOURLY_DAYS: Variable = Variable::int("RETENTION_HOURLY_DAYS", 1, 3650, 30);
pub const RETENTION_DAILY_DAYS: Variable = Variable::int("RETENTION_DAILY_DAYS", 1, 36_500, 400);
pub const TRUSTED_PROXIES: Variable = Variable::special("TRUSTED_PROXIES");
pub const ROUTE_RULES: Variable = Variable::special("ROUTE_RULES");
/// May carry the proxy's password: secret.
pub const OUTBOUND_PROXY: Variable = Variable::special("OUTBOUND_PROXY").secret();
pub const APIMON_SECRET_KEY: Variable = Variable::special("APIMON_SECRET_KEY").secret();
pub const LOG_FORMAT: Variable = Variable::special("LOG_FORMAT");
/// The time zone of budget days (proxy keys' daily token budgets): `UTC` or an IANA name.
pub const APIMON_TIMEZONE: Variable = Variable::special("APIMON_TIMEZONE");
/// The proxy's wait for an upstream's response headers (and a stream's first bytes).
pub const PROXY_FIRST_BYTE_TIMEOUT_S: Variable =
    Variable::int("PROXY_FIRST_BYTE_TIMEOUT_S", 1, 3600, 120);
/// The proxy's longest silence between two chunks of an upstream body.
pub const PROXY_IDLE_TIMEOUT_S: Variable = Variable::int("PROXY_IDLE_TIMEOUT_S", 1, 3600, 120);
/// How long a tripped circuit breaker keeps a channel's model out before a trial.
pub const PROXY_BREAKER_COOLDOWN_S: Variable =
    Variable::int("PROXY_BREAKER_COOLDOWN_S", 1, 3600, 30);
/// The address users reach the panel at (`https://monitor.example.com`): cookie writes
/// must carry it as their `Origin`.
pub const PUBLIC_URL: Variable = Variable::special("PUBLIC_URL");
/// How long a client may take to send a request's headers, and how long a kept-alive
/// connection may sit idle between requests.
pub const HTTP_HEADER_TIMEOUT_S: Variable = Variable::int("HTTP_HEADER_TIMEOUT_S", 1, 600, 20);
/// How long a request body may go without sending a byte.
pub const HTTP_BODY_TIMEOUT_S: Variable = Variable::int("HTTP_BODY_TIMEOUT_S", 1, 3600, 30);
/// How long a response may wait on a client that reads nothing (a stalled stream reader).
pub const HTTP_STALL_TIMEOUT_S: Variable = Variable::int("HTTP_STALL_TIMEOUT_S", 1, 3600, 60);
/// Open HTTP connections in all (also bounded by the open-file limit).
pub const HTTP_MAX_CONNECTIONS: Variable =
    Variable::int("HTTP_MAX_CONNECTIONS", 16, 1_000_000, 10_000);
/// Open HTTP connections from one client (an IPv6 /64); `TRUSTED_PROXIES` are exempt.
/// The default leaves room for 1,000 proxy streams from one host.
pub const HTTP_MAX_CONNECTIONS_PER_CLIENT: Variable =
    Variable::int("HTTP_MAX_CONNECTIONS_PER_CLIENT", 1, 1_000_000, 1_200);
/// Threads serving HTTP connections, each with the connections it was handed from
/// start to end; 0 is two per CPU (see `config::default_http_threads`).
pub const HTTP_THREADS: Variable = Variable::int("HTTP_THREADS", 0, 256, 0);

/// Every variable apimond reads, in the order they are checked (with several bad values,
/// the first here is the one reported) and listed for an unknown key in the file.
pub const VARIABLES: &[Variable] = &[
    PORT,
    HOST,
    DATA_DIR,
    APIMON_SOCKET,
    APIMON_SOCKET_GROUP,
    API_MONITOR_TOKEN,
    API_MONITOR_TOKEN_VISITOR,
    ADMIN_PANEL_PASSWORD,
    PROXY_MASTER_TOKEN,
    DEFAULT_INTERVAL_MIN,
    LOG_CLEANUP_ENABLED,
    LOG_MAX_SIZE_MB,
    MONITOR_DETECT_CONCURRENCY,
    MONITOR_MAX_PARALLEL_TARGETS,
    MONITOR_HOST_CONCURRENCY,
    RETENTION_RAW_DAYS,
    RETENTION_HOURLY_DAYS,
    RETENTION_DAILY_DAYS,
    TRUSTED_PROXIES,
    ROUTE_RULES,
    OUTBOUND_PROXY,
    APIMON_SECRET_KEY,
    LOG_FORMAT,
    APIMON_TIMEZONE,
    PROXY_FIRST_BYTE_TIMEOUT_S,
    PROXY_IDLE_TIMEOUT_S,
    PROXY_BREAKER_COOLDOWN_S,
    PUBLIC_URL,
    HTTP_HEADER_TIMEOUT_S,
    HTTP_BODY_TIMEOUT_S,
    HTTP_STALL_TIMEOUT_S,
    HTTP_MAX_CONNECTIONS,
    HTTP_MAX_CONNECTIONS_PER_CLIENT,
    HTTP_THREADS,
];

/// The variable named `name` (by its main name or an alias), if apimond reads one.
pub fn find(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.names().any(|n| n == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_panel_fields_belong_to_plain_kinds() {
        let names: Vec<&str> = VARIABLES.iter().flat_map(Variable::names).collect();
        for (i, name) in names.iter().enumerate() {
            assert!(!names[..i].contains(name), "{name} twice");
        }
        for v in VARIABLES {
            if v.panel_field.is_some() {
                assert_ne!(v.kind, Kind::Special, "{} in the panel", v.name);
            }
            if let Kind::Token(_) = v.kind {
                assert!(v.secret, "{} is a token", v.name);
            }
        }
    }

    #[test]
    fn tokens_are_bounded_and_without_spaces() {
        let Kind::Token(rule) = API_MONITOR_TOKEN.kind else {
            panic!("API_MONITOR_TOKEN is a token");
        };
        assert!(rule.accepts("12345678"));
        assert!(!rule.accepts("1234567"));
        assert!(!rule.accepts(&"x".repeat(TOKEN_MAX_CHARS + 1)));
        assert!(!rule.accepts("has space in it"));
        assert_eq!(rule.describe(), "8 to 256 characters without spaces");
    }

    #[test]
    fn the_go_programs_names_find_their_variable() {
        assert_eq!(find("API_MONITOR_TOKEN_ADMIN"), Some(&API_MONITOR_TOKEN));
        assert_eq!(find("API_MONITOR_TOKEN"), Some(&API_MONITOR_TOKEN));
        assert_eq!(
            find("API_MONITOR_TOKEN_VISITOR"),
            Some(&API_MONITOR_TOKEN_VISITOR)
        );
        assert_eq!(find("NOPE"), None);
    }
}
