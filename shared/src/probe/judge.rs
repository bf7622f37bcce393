//! Judging a complete reply: whether it passes (text, filter, challenge answer), and
//! what of it goes into the `ProbeResult` (content, returned model, tokens, speed).

// The error side carries the partial reply for the record; it is built at most twice
// per probe, so its size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use super::challenge::Challenge;
use super::classify::ErrorClass;
use super::protocol::{Finish, Reply, snippet};
use super::result::{Failure, ProbeResult};
use super::settings::CONTENT_KEEP;
use super::settings::ProbeSettings;
use super::stream::Timing;

/// Decides whether a complete reply passes: not empty, not filtered, and with the
/// challenge answer when one was asked.
pub(super) fn judge(
    reply: Reply,
    challenge: Option<&Challenge>,
) -> Result<Reply, (Failure, Option<Reply>)> {
    let text = reply.text.trim();
    if text.is_empty() {
        let (class, msg) = match &reply.finish {
            Some(Finish::ContentFilter) => (
                ErrorClass::ContentFilter,
                "the reply was blocked by a content filter".to_string(),
            ),
            Some(Finish::Length) if !reply.reasoning.is_empty() => (
                ErrorClass::BadResponse,
                "empty reply: reasoning used the whole token budget; raise max_tokens".to_string(),
            ),
            _ if !reply.reasoning.is_empty() => (
                ErrorClass::BadResponse,
                "empty reply: only reasoning came back".to_string(),
            ),
            Some(Finish::Length) => (
                ErrorClass::BadResponse,
                "empty reply: the token budget ran out".to_string(),
            ),
            _ => (
                ErrorClass::BadResponse,
                "empty reply: no text came back".to_string(),
            ),
        };
        return Err((Failure::new(class, msg).answered(200), Some(reply)));
    }
    if let Some(c) = challenge
        && !c.passes(text)
    {
        let msg = format!(
            "wrong answer: the reply did not contain `{}` (reply: {})",
            c.expected,
            snippet(text)
        );
        return Err((
            Failure::new(ErrorClass::WrongAnswer, msg).answered(200),
            Some(reply),
        ));
    }
    Ok(reply)
}

pub(super) fn fill_reply(
    result: &mut ProbeResult,
    reply: &Reply,
    timing: &Timing,
    total: Duration,
    settings: &ProbeSettings,
) {
    // Scrub the whole text before cutting it, so no part of a key survives the cut.
    result.content = settings
        .scrub(&reply.text)
        .chars()
        .take(CONTENT_KEEP)
        .collect();
    result.returned_model = reply.model.clone();
    result.model_mismatch = reply
        .model
        .as_deref()
        .is_some_and(|m| !models_match(&result.model, m));
    let (tokens, estimated) = match reply.usage_tokens {
        Some(n) => (Some(n), false),
        None if !reply.text.is_empty() || !reply.reasoning.is_empty() => {
            // About four characters a token for Latin text: an estimate, flagged so.
            let chars = reply.text.chars().count() + reply.reasoning.chars().count();
            (Some(chars.div_ceil(4) as u64), true)
        }
        None => (None, false),
    };
    result.output_tokens = tokens;
    result.tokens_estimated = estimated;
    // Generation speed: tokens over the time from first token to the end when
    // streamed, over the whole time otherwise.
    let span = match (result.stream, timing.first_token) {
        (true, Some(ft)) if total > ft + Duration::from_millis(1) => total - ft,
        _ => total,
    };
    result.tokens_per_s = tokens
        .filter(|n| *n > 0)
        .map(|n| ((n as f64 / span.as_secs_f64().max(0.001)) * 10.0).round() / 10.0);
}

/// Whether the `model` a reply names is the one asked for: equal, or a dated or
/// suffixed form of it (`gpt-4o` and `gpt-4o-2024-08-06`), ignoring case and any
/// `provider/` or `models/` prefix.
pub fn models_match(asked: &str, returned: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim().to_lowercase();
        s.rsplit('/').next().unwrap_or(&s).to_string()
    };
    let (a, r) = (norm(asked), norm(returned));
    // A dated or versioned suffix: `-2024-08-06`, `-20241022`, `-0613`, `@20240620`,
    // `-latest`, `-preview`; not `-mini`, which names another model.
    let suffixed = |long: &str, short: &str| {
        long.strip_prefix(short).is_some_and(|rest| {
            rest.starts_with(['-', '@', ':', '_'])
                && rest[1..].split(['-', '@', ':', '_', '.']).all(|part| {
                    !part.is_empty()
                        && (part.chars().all(|c| c.is_ascii_digit())
                            || matches!(part, "latest" | "preview" | "exp" | "beta")
                            || (part.starts_with('v')
                                && part[1..].chars().all(|c| c.is_ascii_digit())))
                })
        })
    };
    a == r || suffixed(&a, &r) || suffixed(&r, &a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_and_suffixed_ids_are_not_mismatches() {
        assert!(models_match("gpt-4o", "gpt-4o-2024-08-06"));
        assert!(models_match("gpt-4o-2024-08-06", "gpt-4o"));
        assert!(models_match(
            "claude-3-5-sonnet",
            "claude-3-5-sonnet-20241022"
        ));
        assert!(models_match("GPT-4o", "openai/gpt-4o"));
        assert!(models_match("gemini-1.5-pro", "models/gemini-1.5-pro-002"));
        assert!(models_match("gpt-4-turbo", "gpt-4-turbo-preview"));
        assert!(models_match(
            "claude-3-5-sonnet",
            "claude-3-5-sonnet@20240620"
        ));
        assert!(
            !models_match("gpt-4o", "gpt-4o-mini"),
            "a smaller sibling is a different model"
        );
        assert!(!models_match("gpt-4o", "gpt-3.5-turbo"));
        assert!(!models_match("claude-3-opus", "claude-3-haiku"));
        assert!(
            !models_match("gpt-4", "gpt-4o"),
            "a different model, not a suffix"
        );
    }
}
