//! The Anthropic Messages API (`POST /v1/messages`): reading its request body into the
//! chat-completions shape the behaviours and the planner understand, and writing a [`Plan`] as
//! Anthropic's message object, event stream and error bodies.

use crate::plan::{Completion, Pacing, Plan, PlanBody, filtered_completion};
use crate::render::{Frame, error_response, json_response, sse_response, streamed_response};
use crate::reply::Failure;
use crate::wire::Meta;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::collections::VecDeque;

/// Rewrites a Messages API body as a chat-completions body: `system` becomes a system message,
/// `tool_use` blocks become `tool_calls`, `tool_result` blocks become `tool` messages (before
/// the text of the same user turn), and `tools[].input_schema` becomes function parameters.
pub(crate) fn to_chat_body(body: &Value) -> Value {
    let mut messages = Vec::new();
    let system = match body.get("system") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => block_text(blocks),
        _ => String::new(),
    };
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        let blocks = match message.get("content") {
            Some(Value::String(text)) => {
                messages.push(json!({"role": role, "content": text}));
                continue;
            }
            Some(Value::Array(blocks)) => blocks,
            _ => continue,
        };
        if role == "assistant" {
            let field = |block: &Value, name: &str| block.get(name).cloned().unwrap_or(Value::Null);
            let calls = blocks
                .iter()
                .filter(|block| kind(block) == "tool_use")
                .map(|block| {
                    (
                        field(block, "id"),
                        field(block, "name"),
                        field(block, "input"),
                    )
                });
            messages.push(crate::wire::assistant_message(block_text(blocks), calls));
            continue;
        }
        for block in blocks.iter().filter(|block| kind(block) == "tool_result") {
            let content = match block.get("content") {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Array(parts)) => block_text(parts),
                _ => String::new(),
            };
            messages.push(json!({
                "role": "tool",
                "tool_call_id": block.get("tool_use_id").cloned().unwrap_or(Value::Null),
                "content": content,
            }));
        }
        if blocks.iter().any(|block| kind(block) == "text") {
            messages.push(json!({"role": role, "content": block_text(blocks)}));
        }
    }
    let tools: Vec<Value> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|tool| {
            json!({"type": "function", "function": {
                "name": tool.get("name").cloned().unwrap_or(Value::Null),
                "description": tool.get("description").cloned().unwrap_or(Value::Null),
                "parameters": tool.get("input_schema").cloned().unwrap_or(Value::Null),
            }})
        })
        .collect();
    json!({
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "stream": body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        "messages": messages,
        "tools": tools,
    })
}

fn kind(block: &Value) -> &str {
    block.get("type").and_then(Value::as_str).unwrap_or("")
}

fn block_text(blocks: &[Value]) -> String {
    blocks
        .iter()
        .filter(|block| kind(block) == "text")
        .filter_map(|block| block.get("text").and_then(Value::as_str))
        .collect()
}

/// Anthropic's error body.
pub(crate) fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

fn default_error_body(status: StatusCode) -> Value {
    let reason = status.canonical_reason().unwrap_or("error");
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    };
    let message = format!("fake-llm scripted error: {} {reason}", status.as_u16());
    error_body(kind, &message)
}

fn stop_reason(finish_reason: &str) -> &str {
    match finish_reason {
        "stop" => "end_turn",
        "tool_calls" => "tool_use",
        "length" => "max_tokens",
        "content_filter" => "refusal",
        other => other,
    }
}

fn usage_object(usage: Option<(u64, u64)>, cache: Option<(u64, u64)>, output: u64) -> Value {
    let (input, _) = usage.unwrap_or_default();
    let (creation, read) = cache.unwrap_or_default();
    json!({
        "input_tokens": input,
        "cache_creation_input_tokens": creation,
        "cache_read_input_tokens": read,
        "output_tokens": output,
    })
}

fn event(name: &str, data: &Value) -> Frame {
    Frame::Data(Bytes::from(format!("event: {name}\ndata: {data}\n\n")))
}

fn message_start(meta: &Meta, usage: Option<Value>) -> Frame {
    let mut message = json!({
        "id": meta.id,
        "type": "message",
        "role": "assistant",
        "model": meta.model,
        "content": [],
        "stop_reason": null,
        "stop_sequence": null,
    });
    if let Some(usage) = usage {
        message["usage"] = usage;
    }
    event(
        "message_start",
        &json!({"type": "message_start", "message": message}),
    )
}

/// `message_start`, then a text block start and one `text_delta` per piece (no block stop).
fn text_start(meta: &Meta, pieces: &[String], usage: Option<Value>) -> VecDeque<Frame> {
    let mut frames = VecDeque::from([
        message_start(meta, usage),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", &json!({"type": "ping"})),
    ]);
    for piece in pieces {
        frames.push_back(event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    frames
}

fn block_stop(index: usize) -> Frame {
    event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    )
}

fn completion_frames(meta: &Meta, completion: &Completion) -> VecDeque<Frame> {
    let start_usage = completion
        .usage
        .map(|_| usage_object(completion.usage, completion.cache, 1));
    let (mut frames, mut index) = if completion.text.is_some() {
        let mut frames = text_start(meta, &completion.pieces, start_usage);
        frames.push_back(block_stop(0));
        (frames, 1)
    } else {
        (VecDeque::from([message_start(meta, start_usage)]), 0)
    };
    for call in &completion.calls {
        frames.push_back(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block":
                    {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}}),
        ));
        let fragments: &[String] = if call.fragments.is_empty() {
            &[String::new()]
        } else {
            &call.fragments
        };
        for fragment in fragments {
            frames.push_back(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": fragment}}),
            ));
        }
        frames.push_back(block_stop(index));
        index += 1;
    }
    let mut delta = json!({
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason(completion.finish_reason), "stop_sequence": null},
    });
    if let Some((_, output)) = completion.usage {
        delta["usage"] = json!({"output_tokens": output});
    }
    frames.push_back(event("message_delta", &delta));
    frames.push_back(event("message_stop", &json!({"type": "message_stop"})));
    frames
}

/// A non-streaming Messages API answer.
fn message(meta: &Meta, completion: &Completion) -> Value {
    let mut content = Vec::new();
    if let Some(text) = &completion.text {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in &completion.calls {
        let input = serde_json::from_str::<Value>(&call.arguments)
            .unwrap_or_else(|_| Value::Object(Map::new()));
        content.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
    }
    let mut message = json!({
        "id": meta.id,
        "type": "message",
        "role": "assistant",
        "model": meta.model,
        "content": content,
        "stop_reason": stop_reason(completion.finish_reason),
        "stop_sequence": null,
    });
    if let Some((_, output)) = completion.usage {
        message["usage"] = usage_object(completion.usage, completion.cache, output);
    }
    message
}

pub(crate) async fn render(plan: Plan, meta: Meta, stream: bool) -> Response {
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    let body = match plan.body {
        // Anthropic refuses in a 200 answer.
        PlanBody::Failure(Failure::ContentFilter) => PlanBody::Complete(filtered_completion()),
        other => other,
    };
    let early = |usage: Option<(u64, u64)>| usage.map(|usage| usage_object(Some(usage), None, 1));
    match body {
        PlanBody::Error {
            status,
            body,
            headers,
        } => error_response(status, body, &headers, default_error_body),
        PlanBody::Failure(failure) => {
            let (status, kind, message) = match failure {
                Failure::ContextOverflow => (
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "prompt is too long: 210000 tokens > 200000 maximum",
                ),
                Failure::QuotaExhausted | Failure::ContentFilter => (
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
                ),
            };
            json_response(status, &error_body(kind, message))
        }
        PlanBody::Complete(completion) if stream => {
            sse_response(completion_frames(&meta, &completion), plan.pacing)
        }
        PlanBody::Complete(completion) => {
            json_response(StatusCode::OK, &message(&meta, &completion))
        }
        PlanBody::StreamError {
            pieces,
            error,
            usage,
        } if stream => {
            let mut frames = text_start(&meta, &pieces, early(usage));
            frames.push_back(event("error", &error_body(&error.kind, &error.message)));
            sse_response(frames, plan.pacing)
        }
        PlanBody::StreamError { error, .. } => {
            json_response(StatusCode::OK, &error_body(&error.kind, &error.message))
        }
        PlanBody::Cut { pieces, usage, .. } if stream => {
            let mut frames = text_start(&meta, &pieces, early(usage));
            frames.push_back(Frame::Abort);
            sse_response(frames, plan.pacing)
        }
        PlanBody::Cut { text, .. } => {
            let full = json!({"id": meta.id, "type": "message", "content":
                              [{"type": "text", "text": text}]})
            .to_string();
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
    fn converts_messages_api_bodies() {
        let body = json!({
            "model": "m",
            "stream": true,
            "system": [{"type": "text", "text": "be brief"}],
            "tools": [{"name": "calculator", "description": "d", "input_schema": {"type": "object"}}],
            "messages": [
                {"role": "user", "content": "what is 6*7?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "ok"},
                    {"type": "tool_use", "id": "call_1", "name": "calculator",
                     "input": {"expression": "6*7"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1",
                     "content": [{"type": "text", "text": "42"}]},
                    {"type": "text", "text": "and?"}
                ]}
            ]
        });
        assert_eq!(
            to_chat_body(&body),
            json!({
                "model": "m",
                "stream": true,
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "what is 6*7?"},
                    {"role": "assistant", "content": "ok", "tool_calls": [
                        {"id": "call_1", "type": "function", "function":
                            {"name": "calculator", "arguments": "{\"expression\":\"6*7\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                    {"role": "user", "content": "and?"}
                ],
                "tools": [{"type": "function", "function":
                    {"name": "calculator", "description": "d", "parameters": {"type": "object"}}}]
            })
        );
    }
}
