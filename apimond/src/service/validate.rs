//! Reading request bodies field by field with the bounds the API promises. Each
//! accessor removes its field; [`Body::finish`] then rejects whatever is left, so a
//! misspelt field is an error instead of being silently ignored. Lengths are counted in
//! characters.

use serde_json::{Map, Value};

use super::ServiceError;

mod strict_json;

pub struct Body {
    fields: Map<String, Value>,
}

fn bad(msg: String) -> ServiceError {
    ServiceError::BadRequest(msg)
}

impl Body {
    pub fn parse(bytes: &[u8]) -> Result<Body, ServiceError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(bad("request body is empty; send a JSON object".into()));
        }
        let value = strict_json::parse(bytes)
            .map_err(|e| bad(format!("request body is not valid JSON: {e}")))?;
        Self::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Body, ServiceError> {
        match value {
            Value::Object(fields) => Ok(Body { fields }),
            _ => Err(bad("request body must be a JSON object".into())),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn keys(&self) -> Vec<String> {
        self.fields.keys().cloned().collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    /// Rejects any field nobody asked for.
    pub fn finish(self) -> Result<(), ServiceError> {
        match self.fields.keys().next() {
            None => Ok(()),
            Some(k) => Err(bad(format!("{k}: unknown field"))),
        }
    }

    /// The fields nobody asked for, for operations that ignore them rather than
    /// refuse them.
    pub fn unread(self) -> Vec<String> {
        self.fields.into_iter().map(|(k, _)| k).collect()
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        self.fields.remove(name)
    }

    /// A string of `min..=max` characters, trimmed, without control characters.
    pub fn string(
        &mut self,
        name: &str,
        min: usize,
        max: usize,
    ) -> Result<Option<String>, ServiceError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => check_str(name, s.trim(), min, max).map(Some),
            Some(_) => Err(bad(format!("{name}: must be a string"))),
        }
    }

    /// A name people pick a thing by: [`Body::string`] that must show at least one
    /// visible character and carry no bidirectional override, which would make it
    /// read as another name.
    pub fn name(
        &mut self,
        name: &str,
        min: usize,
        max: usize,
    ) -> Result<Option<String>, ServiceError> {
        let value = self.string(name, min, max)?;
        if let Some(v) = &value {
            check_name(name, v)?;
        }
        Ok(value)
    }

    /// Like [`Body::string`], but `null` (or an empty string) clears the value:
    /// `Some(None)`.
    pub fn nullable_string(
        &mut self,
        name: &str,
        max: usize,
    ) -> Result<Option<Option<String>>, ServiceError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Some(None)),
            Some(Value::String(s)) => check_str(name, s.trim(), 1, max).map(|s| Some(Some(s))),
            Some(_) => Err(bad(format!("{name}: must be a string or null"))),
        }
    }

    pub fn int(&mut self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ServiceError> {
        match self.take(name) {
            None => Ok(None),
            Some(v) => int_in(name, &v, min, max).map(Some),
        }
    }

    /// An integer, or `null` to clear: `Some(None)`.
    pub fn nullable_int(
        &mut self,
        name: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<Option<i64>>, ServiceError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => int_in(name, &v, min, max).map(|n| Some(Some(n))),
        }
    }

    pub fn float(&mut self, name: &str, min: f64, max: f64) -> Result<Option<f64>, ServiceError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() && (min..=max).contains(&f) => Ok(Some(f)),
                _ => Err(bad(format!(
                    "{name}: must be a number from {min:.1} to {max:.1}"
                ))),
            },
            Some(_) => Err(bad(format!(
                "{name}: must be a number from {min:.1} to {max:.1}"
            ))),
        }
    }

    pub fn bool(&mut self, name: &str) -> Result<Option<bool>, ServiceError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(bad(format!("{name}: must be true or false"))),
        }
    }

    /// A list of at most `max_items` strings of `min..=max` characters each, duplicates
    /// removed (first occurrence kept).
    pub fn string_list(
        &mut self,
        name: &str,
        max_items: usize,
        min: usize,
        max: usize,
    ) -> Result<Option<Vec<String>>, ServiceError> {
        let items = match self.take(name) {
            None => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(bad(format!("{name}: must be a list of strings"))),
        };
        if items.len() > max_items {
            return Err(bad(format!(
                "{name}: at most {max_items} items, got {}",
                items.len()
            )));
        }
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        let mut seen = std::collections::HashSet::new();
        for (i, item) in items.into_iter().enumerate() {
            let Value::String(s) = item else {
                return Err(bad(format!("{name}[{i}]: must be a string")));
            };
            let s = check_str(&format!("{name}[{i}]"), s.trim(), min, max)?;
            if seen.insert(s.clone()) {
                out.push(s);
            }
        }
        Ok(Some(out))
    }

    /// A list of integer ids.
    pub fn id_list(
        &mut self,
        name: &str,
        max_items: usize,
    ) -> Result<Option<Vec<i64>>, ServiceError> {
        let items = match self.take(name) {
            None => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(bad(format!("{name}: must be a list of ids"))),
        };
        if items.len() > max_items {
            return Err(bad(format!("{name}: at most {max_items} items")));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, v)| int_in(&format!("{name}[{i}]"), v, 1, i64::MAX))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A raw value, for fields with their own structure.
    pub fn value(&mut self, name: &str) -> Option<Value> {
        self.take(name)
    }
}

pub fn check_str(name: &str, s: &str, min: usize, max: usize) -> Result<String, ServiceError> {
    let len = s.chars().count();
    if len < min || len > max {
        let what = if min == 0 {
            format!("at most {max} characters")
        } else {
            format!("{min} to {max} characters")
        };
        return Err(bad(format!("{name}: must be {what}, got {len}")));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(bad(format!("{name}: must not contain control characters")));
    }
    Ok(s.to_string())
}

/// Characters that show nothing: zero-width spaces and joiners, word joiners and
/// invisible operators, the byte-order mark, the soft hyphen, fillers and blanks.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}')
}

/// Bidirectional embeddings, overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A name must show something and must not reorder how it reads.
pub fn check_name(field: &str, s: &str) -> Result<(), ServiceError> {
    if let Some(c) = s.chars().find(|c| is_bidi_control(*c)) {
        return Err(bad(format!(
            "{field}: must not contain bidirectional control characters (found U+{:04X})",
            c as u32
        )));
    }
    if s.chars().all(is_invisible) {
        return Err(bad(format!(
            "{field}: must contain a visible character (this one is only blank or invisible characters)"
        )));
    }
    Ok(())
}

fn int_in(name: &str, v: &Value, min: i64, max: i64) -> Result<i64, ServiceError> {
    // Accept 5.0 as 5 (JavaScript clients), refuse 5.5.
    let n = match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad(format!(
            "{name}: must be an integer from {min} to {max}"
        ))),
    }
}
