//! Which protocol a model is probed through: one table of glob rules, first match
//! wins. Targets may put their own rules (`route_overrides`) in front of it.

use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// OpenAI Chat Completions.
    Openai,
    /// OpenAI Responses.
    Responses,
    /// Anthropic Messages.
    Anthropic,
    /// Gemini generateContent.
    Gemini,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::Openai,
        Protocol::Responses,
        Protocol::Anthropic,
        Protocol::Gemini,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Openai => "openai",
            Protocol::Responses => "responses",
            Protocol::Anthropic => "anthropic",
            Protocol::Gemini => "gemini",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The names the Go program gives this API in its log and model rows.
    pub fn seed_names(self) -> SeedNames {
        let (protocol, route, endpoint) = match self {
            Protocol::Openai => ("openai", "chat", "chat"),
            Protocol::Responses => ("openai", "responses", "responses"),
            Protocol::Anthropic => ("anthropic", "anthropic", "messages"),
            Protocol::Gemini => ("gemini", "gemini", "gemini"),
        };
        SeedNames {
            protocol,
            route,
            endpoint,
        }
    }

    /// The API a row names by its seed `protocol` and `route` (the Go program's rows
    /// and apimon's read the same way).
    pub fn from_seed_names(protocol: &str, route: &str) -> Option<Protocol> {
        Self::ALL.into_iter().find(|p| {
            let n = p.seed_names();
            n.protocol == protocol && n.route == route
        })
    }
}

/// The Go program's `(protocol, route, endpoint)` triple: `protocol` is the wire
/// family (`openai` also for the Responses API), `route` and `endpoint` name the API.
/// Log and model rows carry these; apimon's own route rule and request path go in
/// `route_rule` and `path` beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeedNames {
    pub protocol: &'static str,
    pub route: &'static str,
    pub endpoint: &'static str,
}

/// One rule: models whose id (lower-cased) matches the glob `pattern` use `protocol`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRule {
    pub pattern: String,
    pub protocol: Protocol,
}

/// The built-in table (SPEC §4.2).
pub fn default_rules() -> Vec<RouteRule> {
    let rule = |pattern: &str, protocol| RouteRule {
        pattern: pattern.into(),
        protocol,
    };
    vec![
        rule("*claude*", Protocol::Anthropic),
        rule("*gemini*", Protocol::Gemini),
        rule("*codex*", Protocol::Responses),
        rule("gpt-5*", Protocol::Responses),
        rule("o1*", Protocol::Responses),
        rule("o3*", Protocol::Responses),
        rule("o4*", Protocol::Responses),
    ]
}

/// The route of one model: the protocol and the rule that chose it (`default` when
/// none matched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub protocol: Protocol,
    pub rule: String,
}

/// Picks the route: the target's overrides, then `rules`, then Chat Completions.
pub fn route_for(model: &str, overrides: &[RouteRule], rules: &[RouteRule]) -> Route {
    let id = model.to_lowercase();
    let id = id.strip_prefix("models/").unwrap_or(&id);
    overrides
        .iter()
        .chain(rules)
        .find(|r| WildMatch::new(&r.pattern.to_lowercase()).matches(id))
        .map(|r| Route {
            protocol: r.protocol,
            rule: r.pattern.clone(),
        })
        .unwrap_or(Route {
            protocol: Protocol::Openai,
            rule: "default".into(),
        })
}

/// Whether `model` matches any of the glob patterns (for `exclude_models`).
pub fn matches_any(model: &str, patterns: &[String]) -> bool {
    let id = model.to_lowercase();
    patterns
        .iter()
        .any(|p| WildMatch::new(&p.to_lowercase()).matches(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_routes_each_family() {
        let rules = default_rules();
        let p = |m: &str| route_for(m, &[], &rules).protocol;
        assert_eq!(p("claude-3-5-sonnet-20241022"), Protocol::Anthropic);
        assert_eq!(p("anthropic/Claude-Opus-4"), Protocol::Anthropic);
        assert_eq!(p("gemini-2.5-pro"), Protocol::Gemini);
        assert_eq!(p("models/gemini-1.5-flash"), Protocol::Gemini);
        assert_eq!(p("gpt-5.1-codex"), Protocol::Responses);
        assert_eq!(p("gpt-5-mini"), Protocol::Responses);
        assert_eq!(p("o3-mini"), Protocol::Responses);
        assert_eq!(p("o4-mini-high"), Protocol::Responses);
        assert_eq!(p("gpt-4o"), Protocol::Openai);
        assert_eq!(p("deepseek-chat"), Protocol::Openai);
        assert_eq!(
            p("gpt-4o1-preview"),
            Protocol::Openai,
            "o1 only as a prefix"
        );
        assert_eq!(route_for("gpt-4o", &[], &rules).rule, "default");
    }

    #[test]
    fn each_api_has_the_go_programs_names_and_reads_back_from_them() {
        let names = |p: Protocol| {
            let n = p.seed_names();
            (n.protocol, n.route, n.endpoint)
        };
        assert_eq!(names(Protocol::Openai), ("openai", "chat", "chat"));
        assert_eq!(
            names(Protocol::Responses),
            ("openai", "responses", "responses")
        );
        assert_eq!(
            names(Protocol::Anthropic),
            ("anthropic", "anthropic", "messages")
        );
        assert_eq!(names(Protocol::Gemini), ("gemini", "gemini", "gemini"));
        for p in Protocol::ALL {
            let n = p.seed_names();
            assert_eq!(Protocol::from_seed_names(n.protocol, n.route), Some(p));
        }
        assert_eq!(Protocol::from_seed_names("openai", "messages"), None);
    }

    #[test]
    fn target_overrides_come_first() {
        let overrides = vec![RouteRule {
            pattern: "claude-*-openai".into(),
            protocol: Protocol::Openai,
        }];
        let r = route_for("claude-3-openai", &overrides, &default_rules());
        assert_eq!(r.protocol, Protocol::Openai);
        assert_eq!(r.rule, "claude-*-openai");
        assert_eq!(
            route_for("claude-3", &overrides, &default_rules()).protocol,
            Protocol::Anthropic
        );
    }

    #[test]
    fn exclusion_globs_match_case_insensitively() {
        let pats = vec!["*embedding*".to_string(), "DALL-E*".to_string()];
        assert!(matches_any("text-embedding-3-small", &pats));
        assert!(matches_any("dall-e-3", &pats));
        assert!(!matches_any("gpt-4o", &pats));
    }
}
