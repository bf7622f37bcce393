//! `POST /v1/embeddings`: one small vector per input, derived from the input's text so
//! the same text always gets the same vector; floats, or base64 of little-endian `f32`s
//! when the body asks `encoding_format: "base64"` (the openai SDK asks by default).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::auth::{auth_refusal, check_auth, presented_keys};
use super::canned::{Canned, canned, failure};
use super::generation::half_then_cut;
use super::{RecordSeq, forever, record_headers};
use crate::Failure;
use crate::behaviour::Behaviour;
use crate::body::fixed;
use crate::records::ReportedUsage;
use crate::state::{Flight, Shared};
use crate::wire::tokens;

const DIMENSIONS: usize = 8;

/// The inputs as texts: a string, a list of strings, or token arrays (shown as numbers).
fn inputs(input: &Value) -> Option<Vec<String>> {
    match input {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => {
            if items.iter().all(Value::is_number) {
                return Some(vec![input.to_string()]);
            }
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Some(s.clone()),
                    Value::Array(_) => Some(item.to_string()),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

/// A unit-length vector from the text's SHA-256.
fn vector(text: &str) -> Vec<f32> {
    let digest = Sha256::digest(text.as_bytes());
    let raw: Vec<f32> = digest
        .chunks(32 / DIMENSIONS)
        .map(|c| f32::from(u16::from_le_bytes([c[0], c[1]])) / 65535.0 - 0.5)
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    raw.iter().map(|x| x / norm).collect()
}

fn encoded(vector: &[f32], base64: bool) -> Value {
    if base64 {
        let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        json!(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        json!(vector)
    }
}

pub(super) async fn embeddings(
    State(shared): State<Arc<Shared>>,
    Extension(seq): Extension<RecordSeq>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    record_headers(&shared, &headers);
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let mut flight = Flight::start(shared.clone(), seq.0);
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let model = parsed
        .as_ref()
        .and_then(|b| b.get("model"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let nth = if model.is_empty() {
        0
    } else {
        shared.count_model(&model)
    };
    flight.asked_for(&model, false);
    if !shared.probe_delay.is_zero() {
        tokio::time::sleep(shared.probe_delay).await;
    }
    let presented = match check_auth(&shared, &headers, &query) {
        Ok(()) => presented_keys(&headers, &query)
            .first()
            .copied()
            .unwrap_or_default()
            .to_string(),
        Err(key) => return Canned::json(StatusCode::UNAUTHORIZED, auth_refusal(&key)).send(flight),
    };
    let Some(parsed) = parsed else {
        return Canned::bad_request("Request body is not valid JSON").send(flight);
    };
    if model.is_empty() {
        return Canned::bad_request("you must provide a model parameter").send(flight);
    }
    let Some(texts) = parsed.get("input").and_then(inputs) else {
        return Canned::bad_request("'input' must be a string or a non-empty list").send(flight);
    };
    let cut = match shared.failure_for(&model) {
        Some(Failure::HangBeforeHeaders) => return forever().await,
        Some(Failure::ErrorAfterFirstByte) => true,
        Some(Failure::Status(status)) => return failure(status, &presented, flight),
        None => false,
    };
    let behaviour = Behaviour::for_model(&model);
    if behaviour == Behaviour::Hang {
        return forever().await;
    }
    if let Some(canned) = canned(behaviour, false, nth, &model, &presented) {
        return canned.send(flight);
    }

    let base64 = parsed.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({"object": "embedding", "index": index, "embedding": encoded(&vector(text), base64)})
        })
        .collect();
    let input_tokens: u64 = texts.iter().map(|t| tokens(t.len())).sum();
    let reply = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens},
    })
    .to_string();
    if cut {
        return half_then_cut(flight, reply);
    }
    flight.log().usage(ReportedUsage {
        input_tokens,
        output_tokens: 0,
    });
    fixed(flight, StatusCode::OK, "application/json", &[], reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_unit_length_and_stable() {
        let a = vector("hello");
        assert_eq!(a.len(), DIMENSIONS);
        assert!((a.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
        assert_eq!(a, vector("hello"));
        assert_ne!(a, vector("hullo"));
    }

    #[test]
    fn inputs_take_the_shapes_the_api_accepts() {
        assert_eq!(inputs(&json!("a")), Some(vec!["a".to_string()]));
        assert_eq!(inputs(&json!(["a", "b"])).map(|v| v.len()), Some(2));
        assert_eq!(inputs(&json!([1, 2, 3])).map(|v| v.len()), Some(1));
        assert_eq!(inputs(&json!([])), None);
        assert_eq!(inputs(&json!(7)), None);
    }
}
