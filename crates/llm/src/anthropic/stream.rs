//! Folding an Anthropic Messages stream into a response: `text_delta`s pass through as they
//! come, `input_json_delta` fragments are joined per content-block index, usage is summed from
//! `message_start` and `message_delta`, and an `error` event fails the attempt.
//!
//! Anthropic reports uncached input, cache writes and cache reads as three separate counts;
//! [`Usage::input_tokens`] is their sum (the whole prompt) and the cache fields keep the parts.

use crate::failure::AttemptFailure;
use crate::openai::assemble::{PartialCall, Parts, assemble};
use crate::openai::wire::error_value_message;
use crate::sse::SseEvent;
use crate::streaming::StreamFold;
use crate::text::truncate;
use agentry_core::chat::{ChatResponse, Usage};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: Option<String>,
    index: Option<usize>,
    message: Option<MessageStart>,
    content_block: Option<ContentBlock>,
    delta: Option<Delta>,
    usage: Option<WireUsage>,
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct MessageStart {
    model: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    id: Option<String>,
    name: Option<String>,
    input: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    partial_json: Option<String>,
    stop_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

/// A `tool_use` block being collected.
#[derive(Debug, Default)]
struct ToolBlock {
    id: String,
    name: String,
    /// The `input` of `content_block_start`, used when no fragments follow.
    initial_input: Option<Value>,
    json: String,
}

#[derive(Debug, Default)]
pub(crate) struct AnthropicStream {
    model: Option<String>,
    content: String,
    tools: BTreeMap<usize, ToolBlock>,
    stop_reason: Option<String>,
    input: Option<u64>,
    cache_write: Option<u64>,
    cache_read: Option<u64>,
    output: Option<u64>,
    done: bool,
}

impl AnthropicStream {
    fn usage(&mut self, usage: &WireUsage) {
        // message_delta carries cumulative counts; later values replace earlier ones.
        if let Some(n) = usage.input_tokens {
            self.input = Some(n);
        }
        if let Some(n) = usage.cache_creation_input_tokens {
            self.cache_write = Some(n);
        }
        if let Some(n) = usage.cache_read_input_tokens {
            self.cache_read = Some(n);
        }
        if let Some(n) = usage.output_tokens {
            self.output = Some(n);
        }
    }

    fn total_usage(&self) -> Option<Usage> {
        let input = [self.input, self.cache_write, self.cache_read];
        if input.iter().all(Option::is_none) && self.output.is_none() {
            return None;
        }
        Some(Usage {
            input_tokens: input.iter().flatten().sum(),
            output_tokens: self.output.unwrap_or(0),
            cache_read_tokens: self.cache_read.unwrap_or(0),
            cache_write_tokens: self.cache_write.unwrap_or(0),
        })
    }
}

impl StreamFold for AnthropicStream {
    fn apply(&mut self, event: &SseEvent) -> Result<Option<String>, AttemptFailure> {
        let data = event.data.trim();
        if data.is_empty() {
            return match event.event.as_deref() {
                Some("error") => Err(AttemptFailure::ErrorEvent("(empty error event)".into())),
                _ => Ok(None),
            };
        }
        let parsed: Event = serde_json::from_str(data).map_err(|error| {
            AttemptFailure::BadResponse(format!(
                "unparsable stream event ({error}): {}",
                truncate(data, 200)
            ))
        })?;
        let kind = parsed.kind.as_deref().or(event.event.as_deref());
        match kind {
            Some("error") => {
                let value: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                let message = match &parsed.error {
                    Some(error) => describe_error(error),
                    None => error_value_message(&value),
                };
                Err(AttemptFailure::ErrorEvent(message))
            }
            Some("message_start") => {
                if let Some(message) = parsed.message {
                    if self.model.is_none() {
                        self.model = message.model.filter(|model| !model.is_empty());
                    }
                    if let Some(usage) = &message.usage {
                        self.usage(usage);
                    }
                }
                Ok(None)
            }
            Some("content_block_start") => {
                let index = parsed.index.unwrap_or(0);
                let Some(block) = parsed.content_block else {
                    return Ok(None);
                };
                match block.kind.as_deref() {
                    Some("tool_use") => {
                        self.tools.insert(
                            index,
                            ToolBlock {
                                id: block.id.unwrap_or_default(),
                                name: block.name.unwrap_or_default(),
                                initial_input: block.input,
                                json: String::new(),
                            },
                        );
                        Ok(None)
                    }
                    Some("text") => Ok(self.text(block.text.unwrap_or_default())),
                    _ => Ok(None),
                }
            }
            Some("content_block_delta") => {
                let index = parsed.index.unwrap_or(0);
                let Some(delta) = parsed.delta else {
                    return Ok(None);
                };
                match delta.kind.as_deref() {
                    Some("text_delta") => Ok(self.text(delta.text.unwrap_or_default())),
                    Some("input_json_delta") => {
                        let block = self.tools.entry(index).or_default();
                        block
                            .json
                            .push_str(delta.partial_json.as_deref().unwrap_or_default());
                        Ok(None)
                    }
                    // thinking_delta, signature_delta, citations_delta: not part of the answer.
                    _ => Ok(None),
                }
            }
            Some("message_delta") => {
                if let Some(reason) = parsed
                    .delta
                    .and_then(|delta| delta.stop_reason)
                    .filter(|reason| !reason.is_empty())
                {
                    self.stop_reason = Some(reason);
                }
                if let Some(usage) = &parsed.usage {
                    self.usage(usage);
                }
                Ok(None)
            }
            Some("message_stop") => {
                self.done = true;
                Ok(None)
            }
            // ping, content_block_stop and event types added later.
            _ => Ok(None),
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn is_complete(&self) -> bool {
        self.done || self.stop_reason.is_some()
    }

    fn usage(&self) -> Option<Usage> {
        self.total_usage()
    }

    fn finish(self, requested_model: &str) -> Result<ChatResponse, AttemptFailure> {
        if !self.is_complete() {
            return Err(AttemptFailure::Interrupted(
                "the stream ended before a stop_reason or message_stop".to_string(),
            ));
        }
        let usage = self.total_usage();
        let finish_reason = self.stop_reason.map(|reason| match reason.as_str() {
            "end_turn" | "stop_sequence" => "stop".to_string(),
            "refusal" => "content_filter".to_string(),
            _ => reason,
        });
        let calls = self
            .tools
            .into_values()
            .map(|block| PartialCall {
                id: block.id,
                name: block.name,
                arguments: if block.json.is_empty() {
                    block
                        .initial_input
                        .filter(|input| !input.is_null())
                        .map_or_else(|| "{}".to_string(), |input| input.to_string())
                } else {
                    block.json
                },
            })
            .collect();
        let parts = Parts {
            model: self.model,
            content: self.content,
            calls,
            finish_reason,
            usage,
        };
        assemble(parts, requested_model)
    }
}

impl AnthropicStream {
    fn text(&mut self, text: String) -> Option<String> {
        if text.is_empty() {
            return None;
        }
        self.content.push_str(&text);
        Some(text)
    }
}

/// `{"type": "overloaded_error", "message": "Overloaded"}` → `overloaded_error: Overloaded`.
fn describe_error(error: &Value) -> String {
    let message = error_value_message(error);
    match error.get("type").and_then(Value::as_str) {
        Some(kind) if !message.contains(kind) => format!("{kind}: {message}"),
        _ => message,
    }
}

/// The message of an Anthropic error body (`{"type":"error","error":{"type","message"}}`).
pub(crate) fn error_message(body: &str) -> String {
    match serde_json::from_str::<Value>(body.trim()) {
        Ok(value) => match value.get("error") {
            Some(error) if error.is_object() => describe_error(error),
            _ => error_value_message(&value),
        },
        Err(_) => crate::openai::wire::error_message(body),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use agentry_core::chat::FinishReason;

    fn run(events: &[(&str, &str)]) -> (Vec<String>, Result<ChatResponse, AttemptFailure>) {
        let mut state = AnthropicStream::default();
        let mut texts = Vec::new();
        for (name, data) in events {
            let event = SseEvent {
                event: Some(name.to_string()),
                data: data.to_string(),
                id: None,
            };
            match state.apply(&event) {
                Ok(Some(text)) => texts.push(text),
                Ok(None) => {}
                Err(error) => return (texts, Err(error)),
            }
        }
        (texts, state.finish("requested"))
    }

    #[test]
    fn folds_text_tools_and_usage() {
        let (texts, response) = run(&[
            (
                "message_start",
                r#"{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":5,"cache_creation_input_tokens":7,"cache_read_input_tokens":11,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"calc","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"x\":"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_2","name":"now","input":{}}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]);
        assert_eq!(texts, ["Hi"]);
        let response = response.unwrap();
        assert_eq!(response.model, "claude-x");
        assert_eq!(response.content.as_deref(), Some("Hi"));
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        let calls: Vec<(&str, &str, &str)> = response
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(
            calls,
            [("toolu_1", "calc", r#"{"x":1}"#), ("toolu_2", "now", "{}")]
        );
        assert_eq!(
            response.usage,
            Some(Usage {
                input_tokens: 5 + 7 + 11,
                output_tokens: 9,
                cache_read_tokens: 11,
                cache_write_tokens: 7,
            })
        );
    }

    #[test]
    fn maps_stop_reasons() {
        for (reason, expected) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("pause_turn", FinishReason::Other("pause_turn".into())),
        ] {
            let delta = format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":"{reason}"}},"usage":{{"output_tokens":1}}}}"#
            );
            let (_, response) = run(&[("message_delta", &delta)]);
            assert_eq!(response.unwrap().finish_reason, expected, "{reason}");
        }
    }

    #[test]
    fn a_refusal_without_text_is_content_filtered() {
        let (_, response) = run(&[(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"refusal"},"usage":{"output_tokens":1}}"#,
        )]);
        assert!(matches!(response, Err(AttemptFailure::ContentFiltered(_))));
        let (texts, response) = run(&[
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I can"}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"refusal"}}"#,
            ),
        ]);
        assert_eq!(texts, ["I can"]);
        assert_eq!(response.unwrap().finish_reason, FinishReason::ContentFilter);
    }

    #[test]
    fn error_events_and_truncation_fail() {
        let (texts, response) = run(&[
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"part"}}"#,
            ),
            (
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
        ]);
        assert_eq!(texts, ["part"]);
        assert_eq!(
            response.unwrap_err(),
            AttemptFailure::ErrorEvent("overloaded_error: Overloaded".into())
        );
        let (_, response) = run(&[(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"cut"}}"#,
        )]);
        assert!(matches!(response, Err(AttemptFailure::Interrupted(_))));
        let (_, response) = run(&[("message_start", "{not json")]);
        assert!(matches!(response, Err(AttemptFailure::BadResponse(_))));
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#
            ),
            "authentication_error: invalid x-api-key"
        );
        assert_eq!(error_message("<h1>502 Bad Gateway</h1>"), "502 Bad Gateway");
    }
}
