//! A string that must never be printed: tokens, passwords, channel keys.
//!
//! `Debug` and `Display` show a fixed placeholder, so a secret that ends up in a
//! log line, a panic message or a `{:?}` of a larger struct stays hidden.

use std::fmt;

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is sent or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A form safe to show an administrator: `sk-ab…wxyz`.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// Masks a credential for display: the first five and last four characters of a long
/// value, nothing of a short one (a short secret would be half revealed).
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    if chars.len() < 16 {
        return "…****".to_string();
    }
    let head: String = chars[..5].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("sk-very-secret-value-1234");
        assert!(!format!("{s:?}").contains("secret-value"));
        assert!(!format!("{s}").contains("secret-value"));
    }

    #[test]
    fn long_values_keep_head_and_tail_short_values_nothing() {
        assert_eq!(mask("sk-abcdefghijklmnopwxyz"), "sk-ab…wxyz");
        assert_eq!(mask("short-key"), "…****");
        assert_eq!(mask(""), "");
    }
}
