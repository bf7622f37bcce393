//! Output: tables sized to the terminal, or JSON with `--json`; colour only on a
//! terminal and without `NO_COLOR`. A table row is one line: relays send multi-line
//! error messages (LiteLLM's, for one), so every cell has its whitespace collapsed
//! and its control characters dropped, and the widest cells are cut to the width with
//! an ellipsis; `--json` keeps the full text.

use std::io::IsTerminal;

use serde_json::Value;
use tabled::builder::Builder;
use tabled::settings::peaker::Priority;
use tabled::settings::{Style, Width};

pub struct Out {
    pub json: bool,
    pub color: bool,
    pub tty: bool,
    width: Option<usize>,
}

impl Out {
    pub fn new(json: bool) -> Out {
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let width = if tty {
            terminal_size::terminal_size().map(|(w, _)| w.0 as usize)
        } else {
            // Not a terminal: cut only when asked to, as `COLUMNS=100 apimonctl … | less`.
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.trim().parse().ok())
        };
        Out {
            json,
            color: tty && !no_color,
            tty,
            width,
        }
    }

    pub fn print_json(&self, v: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(v).expect("JSON values serialise")
        );
    }

    /// A table with a header row, fitted to the terminal.
    pub fn table(&self, headers: &[&str], rows: Vec<Vec<String>>) {
        let mut b = Builder::default();
        b.push_record(headers.iter().map(|h| h.to_string()));
        for r in rows {
            // Cells from `cell` are one line already; this also covers cells built
            // around them (and keeps the colour codes of `status`).
            b.push_record(r.iter().map(|c| collapse_whitespace(c)));
        }
        let mut t = b.build();
        t.with(Style::sharp());
        if let Some(w) = self.width {
            // Shrink the widest columns first (errors, names), not every column.
            t.with(Width::truncate(w).suffix("…").priority(Priority::max(true)));
        }
        println!("{t}");
    }

    /// A status word, coloured on a terminal.
    pub fn status(&self, s: &str) -> String {
        if !self.color {
            return s.to_string();
        }
        let code = match s {
            "healthy" | "ok" | "completed" => "32",
            "degraded" | "slow" | "no_models" | "queued" | "running" => "33",
            "down" | "error" | "fail" | "interrupted" => "31",
            _ => return s.to_string(),
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    }
}

/// A value for a table cell or a line of text: strings bare on one line, numbers as
/// they are, null as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => one_line(s),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => other.to_string(),
    }
}

/// `text` on one line: runs of whitespace (newlines and tabs included) become one
/// space, and other control characters are dropped, so a relay's message can neither
/// break a table row nor send escape sequences to the terminal.
pub fn one_line(text: &str) -> String {
    collapse_whitespace(&text.replace(|c: char| c.is_control() && !c.is_whitespace(), ""))
}

/// Runs of whitespace become one space, without the ends.
fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Milliseconds, rounded.
pub fn ms(v: &Value) -> String {
    v.as_f64()
        .map(|m| format!("{m:.0} ms"))
        .unwrap_or_else(|| "-".into())
}

/// A Unix time as a UTC date and time.
pub fn time(v: &Value) -> String {
    let Some(t) = v.as_f64().filter(|t| *t >= 0.0) else {
        return "-".into();
    };
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64);
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .replace('T', " ")
        .replace('Z', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_messages_become_one_line_without_control_characters() {
        let litellm = "litellm.BadRequestError: OpenAIException - Error code: 400\n\n  \
                       Received Model Group=gpt-4o\r\n\tAvailable Model Group Fallbacks=None";
        assert_eq!(
            cell(&Value::String(litellm.into())),
            "litellm.BadRequestError: OpenAIException - Error code: 400 Received Model \
             Group=gpt-4o Available Model Group Fallbacks=None"
        );
        assert_eq!(
            one_line("red \x1b[31malert\x1b[0m\u{7}"),
            "red [31malert[0m"
        );
        assert_eq!(cell(&serde_json::json!(null)), "-");
    }

    #[test]
    fn unix_times_print_as_utc() {
        assert_eq!(time(&serde_json::json!(0.0)), "1970-01-01 00:00:00");
        assert_eq!(
            time(&serde_json::json!(1795671839.29)),
            "2026-11-26 05:43:59"
        );
        assert_eq!(time(&Value::Null), "-");
    }
}
