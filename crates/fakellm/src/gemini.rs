//! The Gemini API (`POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`): reading its request body into the chat-completions shape
//! the behaviours and the planner understand, and writing a [`Plan`] as Gemini's
//! `GenerateContentResponse` objects, SSE stream and error bodies. Like Gemini, the fake sends
//! function calls whole and without ids.

use crate::plan::{Completion, Pacing, Plan, PlanBody};
use crate::render::{Frame, error_response, json_response, sse_response, streamed_response};
use crate::reply::Failure;
use crate::wire::{Meta, sse_data};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::collections::VecDeque;

/// Rewrites a `generateContent` body as a chat-completions body: `systemInstruction` becomes a
/// system message, `model` contents become assistant messages with `tool_calls`,
/// `functionResponse` parts become `tool` messages, and `functionDeclarations` become tools.
pub(crate) fn to_chat_body(model: &str, stream: bool, body: &Value) -> Value {
    let mut messages = Vec::new();
    let system = body
        .pointer("/systemInstruction/parts")
        .and_then(Value::as_array)
        .map(|parts| parts_text(parts))
        .unwrap_or_default();
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system}));
    }
    for content in body
        .get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = content
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        let parts: &[Value] = content
            .get("parts")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if role == "model" {
            let field = |call: &Value, name: &str| call.get(name).cloned().unwrap_or(Value::Null);
            let calls = parts
                .iter()
                .filter_map(|part| part.get("functionCall"))
                .map(|call| (field(call, "id"), field(call, "name"), field(call, "args")));
            messages.push(crate::wire::assistant_message(parts_text(parts), calls));
            continue;
        }
        for response in parts.iter().filter_map(|part| part.get("functionResponse")) {
            let result = response.get("response").cloned().unwrap_or(Value::Null);
            let content = match result.get("result").or_else(|| result.get("content")) {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => result.to_string(),
            };
            messages.push(json!({
                "role": "tool",
                "name": response.get("name").cloned().unwrap_or(Value::Null),
                "content": content,
            }));
        }
        if parts.iter().any(|part| part.get("text").is_some()) {
            messages.push(json!({"role": "user", "content": parts_text(parts)}));
        }
    }
    let tools: Vec<Value> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tool| tool.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .map(|declaration| {
            json!({"type": "function", "function": {
                "name": declaration.get("name").cloned().unwrap_or(Value::Null),
                "description": declaration.get("description").cloned().unwrap_or(Value::Null),
                "parameters": declaration.get("parameters").cloned().unwrap_or(Value::Null),
            }})
        })
        .collect();
    json!({"model": model, "stream": stream, "messages": messages, "tools": tools})
}

fn parts_text(parts: &[Value]) -> String {
    parts
        .iter()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect()
}

fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        500..=599 => "INTERNAL",
        _ => "UNKNOWN",
    }
}

/// Gemini's error body.
pub(crate) fn error_body(code: u16, status: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

fn default_error_body(status: StatusCode) -> Value {
    let reason = status.canonical_reason().unwrap_or("error");
    let message = format!("fake-llm scripted error: {} {reason}", status.as_u16());
    error_body(status.as_u16(), status_name(status.as_u16()), &message)
}

fn finish_reason(finish_reason: &str) -> &str {
    match finish_reason {
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        // Gemini reports STOP for function calls too.
        _ => "STOP",
    }
}

fn usage_metadata(usage: (u64, u64)) -> Value {
    let (prompt, output) = usage;
    json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
    })
}

fn response(meta: &Meta, parts: Vec<Value>, finish: Option<&str>, usage: Option<Value>) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(finish) = finish {
        candidate["finishReason"] = Value::String(finish.to_string());
    }
    let mut object = json!({
        "candidates": [candidate],
        "modelVersion": meta.model,
        "responseId": meta.id,
    });
    if let Some(usage) = usage {
        object["usageMetadata"] = usage;
    }
    object
}

fn data(value: &Value) -> Frame {
    Frame::Data(Bytes::from(sse_data(value)))
}

fn call_parts(completion: &Completion) -> Vec<Value> {
    completion
        .calls
        .iter()
        .map(|call| {
            let args = serde_json::from_str::<Value>(&call.arguments)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| Value::Object(Map::new()));
            json!({"functionCall": {"name": call.name, "args": args}})
        })
        .collect()
}

fn text_frames(meta: &Meta, pieces: &[String], prompt: Option<u64>) -> VecDeque<Frame> {
    pieces
        .iter()
        .map(|piece| {
            let usage = prompt.map(|prompt| json!({"promptTokenCount": prompt}));
            data(&response(meta, vec![json!({"text": piece})], None, usage))
        })
        .collect()
}

fn completion_frames(meta: &Meta, completion: &Completion) -> VecDeque<Frame> {
    let mut frames = text_frames(
        meta,
        &completion.pieces,
        completion.usage.map(|(prompt, _)| prompt),
    );
    let last_parts = if completion.calls.is_empty() {
        vec![json!({"text": ""})]
    } else {
        call_parts(completion)
    };
    frames.push_back(data(&response(
        meta,
        last_parts,
        Some(finish_reason(completion.finish_reason)),
        completion.usage.map(usage_metadata),
    )));
    frames
}

pub(crate) async fn render(plan: Plan, meta: Meta, stream: bool) -> Response {
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    match plan.body {
        PlanBody::Error {
            status,
            body,
            headers,
        } => error_response(status, body, &headers, default_error_body),
        PlanBody::Failure(Failure::ContentFilter) => {
            // The prompt itself was blocked: a 200 answer without candidates.
            let blocked = json!({
                "promptFeedback": {"blockReason": "SAFETY"},
                "modelVersion": meta.model,
                "responseId": meta.id,
            });
            if stream {
                sse_response(VecDeque::from([data(&blocked)]), plan.pacing)
            } else {
                json_response(StatusCode::OK, &blocked)
            }
        }
        PlanBody::Failure(failure) => {
            let (status, name, message) = match failure {
                Failure::ContextOverflow => (
                    400,
                    "INVALID_ARGUMENT",
                    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
                ),
                _ => (
                    429,
                    "RESOURCE_EXHAUSTED",
                    "You exceeded your current quota, please check your plan and billing details.",
                ),
            };
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            json_response(status, &error_body(status.as_u16(), name, message))
        }
        PlanBody::Complete(completion) if stream => {
            sse_response(completion_frames(&meta, &completion), plan.pacing)
        }
        PlanBody::Complete(completion) => {
            let mut parts = Vec::new();
            if let Some(text) = &completion.text {
                parts.push(json!({"text": text}));
            }
            parts.extend(call_parts(&completion));
            let body = response(
                &meta,
                parts,
                Some(finish_reason(completion.finish_reason)),
                completion.usage.map(usage_metadata),
            );
            json_response(StatusCode::OK, &body)
        }
        PlanBody::StreamError {
            pieces,
            error,
            usage,
        } if stream => {
            let mut frames = text_frames(&meta, &pieces, usage.map(|(prompt, _)| prompt));
            frames.push_back(data(&error_body(503, &error.kind, &error.message)));
            sse_response(frames, plan.pacing)
        }
        PlanBody::StreamError { error, .. } => json_response(
            StatusCode::OK,
            &error_body(503, &error.kind, &error.message),
        ),
        PlanBody::Cut { pieces, usage, .. } if stream => {
            let mut frames = text_frames(&meta, &pieces, usage.map(|(prompt, _)| prompt));
            frames.push_back(Frame::Abort);
            sse_response(frames, plan.pacing)
        }
        PlanBody::Cut { text, .. } => {
            let full = response(&meta, vec![json!({"text": text})], None, None).to_string();
            let half: String = full.chars().take(full.chars().count() / 2).collect();
            let frames = VecDeque::from([Frame::Data(Bytes::from(half)), Frame::Abort]);
            streamed_response("application/json", frames, Pacing::default())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn converts_generate_content_bodies() {
        let body = json!({
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "tools": [{"functionDeclarations": [{"name": "calculator", "parameters": {}}]}],
            "contents": [
                {"role": "user", "parts": [{"text": "what is 6*7?"}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "calculator", "args": {"expression": "6*7"}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "calculator", "response": {"result": "42"}}}
                ]}
            ]
        });
        assert_eq!(
            to_chat_body("m", true, &body),
            json!({
                "model": "m",
                "stream": true,
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "what is 6*7?"},
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"id": null, "type": "function", "function":
                            {"name": "calculator", "arguments": "{\"expression\":\"6*7\"}"}}
                    ]},
                    {"role": "tool", "name": "calculator", "content": "42"}
                ],
                "tools": [{"type": "function", "function":
                    {"name": "calculator", "description": null, "parameters": {}}}]
            })
        );
    }
}
