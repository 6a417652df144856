//! Embeddings: `POST /v1/embeddings` (OpenAI) and
//! `POST /v1beta/models/{model}:batchEmbedContents` (Gemini). Vectors are derived only from a
//! hash of each input text, so the same text always gets the same vector (across restarts
//! too) and tests can compute the expected vector with [`embedding_vector`].
//!
//! Scripts apply as for chat: an `error` or `failure` reply answers with that error, a `cut`
//! sends half a body and drops the connection, `delay_ms` delays the answer, a usage override
//! replaces the computed token count; any other reply kind answers normally.

use crate::plan::Pacing;
use crate::render::{Frame, error_response, json_response, streamed_response};
use crate::reply::{Failure, Reply, ReplyKind};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::Duration;

/// Vector length when the request asks for none.
pub const DEFAULT_DIMENSIONS: usize = 8;
/// Larger requested dimensions are clamped to this.
const MAX_DIMENSIONS: usize = 4096;

/// The fake's embedding of `text`: `dimensions` values in [-1, 1], normalised to length 1,
/// seeded by the FNV-1a hash of the text.
pub fn embedding_vector(text: &str, dimensions: usize) -> Vec<f32> {
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    }) | 1;
    let mut values: Vec<f32> = (0..dimensions.clamp(1, MAX_DIMENSIONS))
        .map(|_| {
            // xorshift64*: cheap, deterministic, good enough to spread vectors apart.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let bits = state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
            (bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        for value in &mut values {
            *value /= norm;
        }
    }
    values
}

/// Token estimate of one input, like the chat usage: ceil(chars / 4), at least 1.
fn tokens(text: &str) -> u64 {
    (text.chars().count().div_ceil(4) as u64).max(1)
}

/// The embedding protocol of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmbedProtocol {
    OpenAi,
    Gemini,
}

/// Inputs of an OpenAI body: `input` as a string or an array of strings.
fn openai_inputs(body: &Value) -> Vec<String> {
    match body.get("input") {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map_or_else(|| item.to_string(), str::to_string)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Inputs of a Gemini `batchEmbedContents` body, with each request's `outputDimensionality`.
fn gemini_inputs(body: &Value) -> Vec<(String, Option<usize>)> {
    body.get("requests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|request| {
            let text = request
                .pointer("/content/parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect::<String>();
            let dimensions = request
                .get("outputDimensionality")
                .and_then(Value::as_u64)
                .map(|n| n as usize);
            (text, dimensions)
        })
        .collect()
}

fn failure_response(protocol: EmbedProtocol, failure: Failure) -> Response {
    let (status, body) = match (protocol, failure) {
        (EmbedProtocol::OpenAi, Failure::QuotaExhausted) => (
            StatusCode::TOO_MANY_REQUESTS,
            crate::wire::error_body(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
        ),
        (EmbedProtocol::OpenAi, _) => (
            StatusCode::BAD_REQUEST,
            crate::wire::error_body(
                "This model's maximum context length is 8192 tokens, however you requested 9000 tokens.",
                "invalid_request_error",
                Some("context_length_exceeded"),
            ),
        ),
        (EmbedProtocol::Gemini, Failure::QuotaExhausted) => (
            StatusCode::TOO_MANY_REQUESTS,
            crate::gemini::error_body(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details.",
            ),
        ),
        (EmbedProtocol::Gemini, _) => (
            StatusCode::BAD_REQUEST,
            crate::gemini::error_body(
                400,
                "INVALID_ARGUMENT",
                "The input token count (9000) exceeds the maximum number of tokens allowed (2048).",
            ),
        ),
    };
    json_response(status, &body)
}

fn default_error_body(protocol: EmbedProtocol) -> fn(StatusCode) -> Value {
    fn openai(status: StatusCode) -> Value {
        crate::wire::error_body(
            &format!("fake-llm scripted error: {}", status.as_u16()),
            if status.is_server_error() {
                "server_error"
            } else {
                "invalid_request_error"
            },
            None,
        )
    }
    fn gemini(status: StatusCode) -> Value {
        crate::gemini::error_body(
            status.as_u16(),
            if status.is_server_error() {
                "UNAVAILABLE"
            } else {
                "INVALID_ARGUMENT"
            },
            &format!("fake-llm scripted error: {}", status.as_u16()),
        )
    }
    match protocol {
        EmbedProtocol::OpenAi => openai,
        EmbedProtocol::Gemini => gemini,
    }
}

/// Answers one embedding request (already recorded) with `reply`, if one was scripted.
pub(crate) async fn answer(
    protocol: EmbedProtocol,
    model: &str,
    body: &Value,
    reply: Option<Reply>,
) -> Response {
    let (kind, options) = match reply {
        Some(reply) => (Some(reply.kind), reply.options),
        None => (None, Default::default()),
    };
    if let Some(ms) = options.delay_ms.filter(|ms| *ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match kind {
        Some(ReplyKind::Error {
            status,
            body,
            headers,
        }) => return error_response(status, body, &headers, default_error_body(protocol)),
        Some(ReplyKind::Failure { failure }) => return failure_response(protocol, failure),
        Some(ReplyKind::Cut { .. }) => {
            let frames = VecDeque::from([
                Frame::Data(Bytes::from_static(
                    b"{\"data\": [{\"index\": 0, \"embedding\": [0.1,",
                )),
                Frame::Abort,
            ]);
            return streamed_response("application/json", frames, Pacing::default());
        }
        _ => {}
    }
    let usage_override = options
        .usage
        .filter(|_| !options.omit_usage)
        .map(|usage| usage.prompt_tokens);
    match protocol {
        EmbedProtocol::OpenAi => {
            let inputs = openai_inputs(body);
            let dimensions = body
                .get("dimensions")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_DIMENSIONS, |n| n as usize);
            // Listed last-first: OpenAI documents `index` as the order, and clients must use it.
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .rev()
                .map(|(index, text)| {
                    json!({"object": "embedding", "index": index,
                           "embedding": embedding_vector(text, dimensions)})
                })
                .collect();
            let prompt_tokens =
                usage_override.unwrap_or_else(|| inputs.iter().map(|text| tokens(text)).sum());
            let mut answer = json!({"object": "list", "data": data, "model": model});
            if !options.omit_usage {
                answer["usage"] =
                    json!({"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens});
            }
            json_response(StatusCode::OK, &answer)
        }
        EmbedProtocol::Gemini => {
            let embeddings: Vec<Value> = gemini_inputs(body)
                .iter()
                .map(|(text, dimensions)| {
                    let values = embedding_vector(text, dimensions.unwrap_or(DEFAULT_DIMENSIONS));
                    json!({"values": values})
                })
                .collect();
            json_response(StatusCode::OK, &json!({"embeddings": embeddings}))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_deterministic_normalised_and_distinct() {
        let a = embedding_vector("hello", 8);
        assert_eq!(a, embedding_vector("hello", 8));
        assert_eq!(a.len(), 8);
        let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_ne!(a, embedding_vector("hellp", 8));
        assert_eq!(embedding_vector("", 3).len(), 3);
        assert_eq!(embedding_vector("x", 0).len(), 1);
    }

    #[test]
    fn reads_inputs_of_both_protocols() {
        assert_eq!(openai_inputs(&json!({"input": "a"})), ["a"]);
        assert_eq!(openai_inputs(&json!({"input": ["a", "b"]})), ["a", "b"]);
        let gemini = gemini_inputs(&json!({"requests": [
            {"model": "models/m", "content": {"parts": [{"text": "x"}, {"text": "y"}]}},
            {"content": {"parts": [{"text": "z"}]}, "outputDimensionality": 4}
        ]}));
        assert_eq!(
            gemini,
            [("xy".to_string(), None), ("z".to_string(), Some(4))]
        );
    }
}
