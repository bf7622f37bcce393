//! Output: tables sized to the terminal, or JSON with `--json`; colour only on a
//! terminal and without `NO_COLOR`.

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
        let width = tty
            .then(|| terminal_size::terminal_size().map(|(w, _)| w.0 as usize))
            .flatten();
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
            b.push_record(r);
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

/// A value for a table cell: strings bare, numbers as they are, null as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => other.to_string(),
    }
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
    fn unix_times_print_as_utc() {
        assert_eq!(time(&serde_json::json!(0.0)), "1970-01-01 00:00:00");
        assert_eq!(
            time(&serde_json::json!(1795671839.29)),
            "2026-11-26 05:43:59"
        );
        assert_eq!(time(&Value::Null), "-");
    }
}
