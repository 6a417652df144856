//! The OpenAI chat-completions wire format: `chat.completion` objects, `chat.completion.chunk`
//! stream events and error bodies, field for field as OpenAI sends them.

use crate::plan::{Completion, PlannedCall};
use serde_json::{Value, json};

/// What every object of one response shares.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
}

pub(crate) fn usage(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

pub(crate) fn error_body(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// A non-streaming `chat.completion` object.
pub(crate) fn completion(meta: &Meta, completion: &Completion) -> Value {
    let mut message = json!({
        "role": "assistant",
        "content": completion.text,
        "refusal": null,
    });
    if !completion.calls.is_empty() {
        let calls: Vec<Value> = completion
            .calls
            .iter()
            .map(|call| {
                json!({
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                })
            })
            .collect();
        message["tool_calls"] = Value::Array(calls);
    }
    let mut object = json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": completion.finish_reason,
        }],
    });
    if let Some((prompt, output)) = completion.usage {
        object["usage"] = usage(prompt, output);
    }
    object
}

/// One `chat.completion.chunk` with a single choice. With `include_usage`, OpenAI puts
/// `"usage": null` on every chunk but the last, so the fake does too.
pub(crate) fn chunk(
    meta: &Meta,
    delta: Value,
    finish_reason: Option<&str>,
    include_usage: bool,
) -> Value {
    let mut object = json!({
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": [{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
    });
    if include_usage {
        object["usage"] = Value::Null;
    }
    object
}

/// The trailing usage chunk (`choices: []`) sent when `stream_options.include_usage` is set.
pub(crate) fn usage_chunk(meta: &Meta, prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": [],
        "usage": usage(prompt_tokens, completion_tokens),
    })
}

/// The first delta: it carries the role. Text answers start with empty content, tool-call
/// answers with null content, as OpenAI does.
pub(crate) fn role_delta(text_answer: bool) -> Value {
    if text_answer {
        json!({"role": "assistant", "content": "", "refusal": null})
    } else {
        json!({"role": "assistant", "content": null, "refusal": null})
    }
}

pub(crate) fn content_delta(piece: &str) -> Value {
    json!({"content": piece})
}

/// The first fragment of call `index`: id, type and name, with empty arguments.
pub(crate) fn call_start_delta(index: usize, call: &PlannedCall) -> Value {
    json!({"tool_calls": [{
        "index": index,
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": ""},
    }]})
}

/// A later fragment of call `index`: arguments only.
pub(crate) fn call_arguments_delta(index: usize, fragment: &str) -> Value {
    json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
}

/// An SSE `data:` event. JSON never contains a raw newline, so one `data:` line suffices.
pub(crate) fn sse_data(value: &Value) -> String {
    format!("data: {value}\n\n")
}

pub(crate) const SSE_DONE: &str = "data: [DONE]\n\n";

/// An assistant message in the chat-completions shape every protocol is converted into: its
/// text and its tool calls as `(id, name, arguments)`.
pub(crate) fn assistant_message(
    text: String,
    calls: impl Iterator<Item = (Value, Value, Value)>,
) -> Value {
    let calls: Vec<Value> = calls
        .map(|(id, name, arguments)| {
            serde_json::json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()},
            })
        })
        .collect();
    let mut message = serde_json::json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    message
}
