//! What a visitor may read of a relay's address: nothing, unless the
//! `visitor_show_base_url` setting is on. The view leaves `base_url` out; this hides
//! the address where it leaks into text (errors such as "error sending request for
//! url (https://relay.example/v1/models)", DNS failures naming the host, relay
//! replies): every string of an answer or event about a target, for such callers.

use serde_json::Value;

use super::{Caller, Core};

/// What the address is replaced with.
pub const HIDDEN: &str = "[hidden]";

/// The forms a relay's address takes in text, longest first: the base URL, its
/// origin, `host:port` and the host.
pub fn relay_marks(base_url: &str) -> Vec<String> {
    let mut marks = vec![base_url.trim_end_matches('/').to_ascii_lowercase()];
    if let Ok(u) = url::Url::parse(base_url) {
        marks.push(u.origin().ascii_serialization().to_ascii_lowercase());
        if let Some(host) = u.host_str() {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if let Some(port) = u.port_or_known_default() {
                marks.push(format!("{host}:{port}").to_ascii_lowercase());
            }
            marks.push(host.to_ascii_lowercase());
        }
    }
    // Very short hosts ("db") would blank ordinary words.
    marks.retain(|m| m.len() >= 4);
    marks.sort_by_key(|m| std::cmp::Reverse(m.len()));
    marks.dedup();
    marks
}

/// `text` with every mark replaced (ASCII case ignored), in one pass so a
/// replacement is never searched again.
pub fn hide_in_text(text: &str, marks: &[String]) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut i = 0;
    while i < text.len() {
        // Marks are longest first: the longest form at this position wins.
        match marks.iter().find(|m| lower[i..].starts_with(m.as_str())) {
            Some(m) => {
                out.push_str(&text[at..i]);
                out.push_str(HIDDEN);
                i += m.len();
                at = i;
            }
            None => i += text[i..].chars().next().map_or(1, char::len_utf8),
        }
    }
    out.push_str(&text[at..]);
    out
}

/// Hides the marks in every string of `v`.
pub fn hide_in_value(v: &mut Value, marks: &[String]) {
    match v {
        Value::String(s) => {
            let lower = s.to_ascii_lowercase();
            if marks.iter().any(|m| lower.contains(m.as_str())) {
                *s = hide_in_text(s, marks);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| hide_in_value(i, marks)),
        Value::Object(map) => map.values_mut().for_each(|i| hide_in_value(i, marks)),
        _ => {}
    }
}

impl Core {
    /// Whether this caller must not learn relay addresses.
    pub fn hides_relays_from(&self, caller: &Caller) -> bool {
        !caller.is_admin() && !self.settings().visitor_show_base_url
    }

    /// Hides the relay at `base_url` in `v` when this caller must not see it.
    pub fn hide_relay_of(&self, base_url: &str, caller: &Caller, v: &mut Value) {
        if self.hides_relays_from(caller) {
            hide_in_value(v, &relay_marks(base_url));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_origin_host_and_port_are_hidden_in_any_case() {
        let marks = relay_marks("https://Relay.Example.com:8443/v1/");
        let text = "error sending request for url (https://relay.example.com:8443/v1/models): \
                    dns error looking up RELAY.EXAMPLE.COM; tried relay.example.com:8443";
        let out = hide_in_text(text, &marks);
        assert!(!out.to_lowercase().contains("relay.example"), "{out}");
        assert!(out.contains("[hidden]/models"), "{out}");
        let mut v = serde_json::json!({"items": [{"error": text, "n": 1}]});
        hide_in_value(&mut v, &marks);
        assert!(!v.to_string().to_lowercase().contains("example"), "{v}");
    }
}
