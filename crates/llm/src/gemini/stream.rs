//! Folding a Gemini `streamGenerateContent?alt=sse` stream into a response. Every event is a
//! whole `GenerateContentResponse`: text parts pass through as they come, function calls
//! arrive whole (Gemini sends no call ids; [`assemble`] generates them), and the last
//! `usageMetadata` counts. There is no end marker: the answer is complete once a candidate
//! carried a `finishReason` (or the prompt was blocked).

use crate::failure::AttemptFailure;
use crate::openai::assemble::{PartialCall, Parts, assemble};
use crate::openai::wire::error_value_message;
use crate::sse::SseEvent;
use crate::streaming::StreamFold;
use crate::text::truncate;
use agentry_core::chat::{ChatResponse, Usage};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    candidates: Option<Vec<Candidate>>,
    usage_metadata: Option<UsageMetadata>,
    model_version: Option<String>,
    prompt_feedback: Option<PromptFeedback>,
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    index: Option<u32>,
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Content {
    parts: Option<Vec<Part>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    text: Option<String>,
    thought: Option<bool>,
    function_call: Option<FunctionCall>,
}

#[derive(Debug, Deserialize)]
struct FunctionCall {
    id: Option<String>,
    name: Option<String>,
    args: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    /// The part of `promptTokenCount` served from a (possibly implicit) context cache.
    cached_content_token_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct GeminiStream {
    model: Option<String>,
    content: String,
    calls: Vec<PartialCall>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl StreamFold for GeminiStream {
    fn apply(&mut self, event: &SseEvent) -> Result<Option<String>, AttemptFailure> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(None);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|error| {
            AttemptFailure::BadResponse(format!(
                "unparsable stream event ({error}): {}",
                truncate(data, 200)
            ))
        })?;
        if let Some(error) = chunk.error.as_ref().filter(|error| !error.is_null()) {
            return Err(AttemptFailure::ErrorEvent(describe_error(error)));
        }
        if self.model.is_none() {
            self.model = chunk.model_version.filter(|model| !model.is_empty());
        }
        if let Some(usage) = chunk.usage_metadata {
            // Cumulative: the last report counts. Thinking tokens are billed as output.
            let input_tokens = usage.prompt_token_count.unwrap_or(0);
            self.usage = Some(Usage {
                input_tokens,
                output_tokens: usage.candidates_token_count.unwrap_or(0)
                    + usage.thoughts_token_count.unwrap_or(0),
                cache_read_tokens: usage
                    .cached_content_token_count
                    .unwrap_or(0)
                    .min(input_tokens),
                cache_write_tokens: 0,
            });
        }
        if let Some(reason) = chunk
            .prompt_feedback
            .and_then(|feedback| feedback.block_reason)
            .filter(|reason| !reason.is_empty())
        {
            // The prompt itself was blocked: no candidates will follow.
            self.finish_reason = Some(format!("prompt_blocked:{reason}"));
        }
        let mut text = String::new();
        let candidate = chunk
            .candidates
            .into_iter()
            .flatten()
            .find(|candidate| candidate.index.unwrap_or(0) == 0);
        if let Some(candidate) = candidate {
            let parts = candidate
                .content
                .and_then(|content| content.parts)
                .unwrap_or_default();
            for part in parts {
                if let Some(call) = part.function_call {
                    self.calls.push(PartialCall {
                        id: call.id.unwrap_or_default(),
                        name: call.name.unwrap_or_default(),
                        arguments: match call.args {
                            None | Some(Value::Null) => "{}".to_string(),
                            Some(args) => args.to_string(),
                        },
                    });
                } else if let Some(piece) = part.text
                    && part.thought != Some(true)
                {
                    text.push_str(&piece);
                }
            }
            if let Some(reason) = candidate.finish_reason.filter(|reason| !reason.is_empty()) {
                self.finish_reason = Some(reason);
            }
        }
        if text.is_empty() {
            return Ok(None);
        }
        self.content.push_str(&text);
        Ok(Some(text))
    }

    fn is_done(&self) -> bool {
        false
    }

    fn is_complete(&self) -> bool {
        self.finish_reason.is_some()
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn finish(self, requested_model: &str) -> Result<ChatResponse, AttemptFailure> {
        let Some(reason) = self.finish_reason else {
            return Err(AttemptFailure::Interrupted(
                "the stream ended before a finishReason".to_string(),
            ));
        };
        let filtered = matches!(
            reason.as_str(),
            "SAFETY" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        ) || reason.starts_with("prompt_blocked:");
        if filtered && self.content.is_empty() && self.calls.is_empty() {
            let detail = match reason.strip_prefix("prompt_blocked:") {
                Some(block) => format!("the prompt was blocked ({block})"),
                None => format!("finish reason {reason} and no content"),
            };
            return Err(AttemptFailure::ContentFiltered(detail));
        }
        let reason = match reason.as_str() {
            "STOP" => "stop".to_string(),
            "MAX_TOKENS" => "length".to_string(),
            "SAFETY" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
                "content_filter".to_string()
            }
            _ if reason.starts_with("prompt_blocked:") => "content_filter".to_string(),
            _ => reason,
        };
        let parts = Parts {
            model: self.model,
            content: self.content,
            calls: self.calls,
            finish_reason: Some(reason),
            usage: self.usage,
        };
        assemble(parts, requested_model)
    }
}

/// `{"code": 503, "message": "...", "status": "UNAVAILABLE"}` → `UNAVAILABLE: ...`.
fn describe_error(error: &Value) -> String {
    let message = error_value_message(error);
    match error.get("status").and_then(Value::as_str) {
        Some(status) if !message.contains(status) => format!("{status}: {message}"),
        _ => message,
    }
}

/// The message of a Gemini error body (`{"error": {"code", "message", "status"}}`; the
/// error may also come wrapped in a one-element array).
pub(crate) fn error_message(body: &str) -> String {
    let value = match serde_json::from_str::<Value>(body.trim()) {
        Ok(Value::Array(mut items)) if items.len() == 1 => items.remove(0),
        Ok(value) => value,
        Err(_) => return crate::openai::wire::error_message(body),
    };
    match value.get("error") {
        Some(error) if error.is_object() => describe_error(error),
        _ => error_value_message(&value),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use agentry_core::chat::FinishReason;

    fn run(events: &[&str]) -> (Vec<String>, Result<ChatResponse, AttemptFailure>) {
        let mut state = GeminiStream::default();
        let mut texts = Vec::new();
        for data in events {
            let event = SseEvent {
                event: None,
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
    fn folds_text_calls_and_the_last_usage() {
        let (texts, response) = run(&[
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"thinking","thought":true},{"text":"Hel"}]},"index":0}],"usageMetadata":{"promptTokenCount":4},"modelVersion":"gemini-x"}"#,
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"lo"},{"functionCall":{"name":"calc","args":{"x":1}}},{"functionCall":{"name":"now"}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":6,"thoughtsTokenCount":2,"cachedContentTokenCount":3}}"#,
        ]);
        assert_eq!(texts, ["Hel", "lo"]);
        let response = response.unwrap();
        assert_eq!(response.model, "gemini-x");
        assert_eq!(response.content.as_deref(), Some("Hello"));
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        assert_eq!(response.tool_calls[0].name, "calc");
        assert_eq!(response.tool_calls[0].arguments, r#"{"x":1}"#);
        assert_eq!(response.tool_calls[1].arguments, "{}");
        assert!(response.tool_calls[0].id.starts_with("call_"));
        assert_ne!(response.tool_calls[0].id, response.tool_calls[1].id);
        assert_eq!(
            response.usage,
            Some(Usage {
                input_tokens: 4,
                output_tokens: 8,
                cache_read_tokens: 3,
                cache_write_tokens: 0,
            })
        );
    }

    #[test]
    fn maps_finish_reasons_and_failures() {
        let finish = |reason: &str| {
            let data = format!(r#"{{"candidates":[{{"finishReason":"{reason}"}}]}}"#);
            run(&[&data]).1.unwrap().finish_reason
        };
        assert_eq!(finish("STOP"), FinishReason::Stop);
        assert_eq!(finish("MAX_TOKENS"), FinishReason::Length);
        assert_eq!(
            finish("RECITATION"),
            FinishReason::Other("RECITATION".into())
        );
        // A filter with no content is an error; with partial text the answer is kept.
        let empty = run(&[r#"{"candidates":[{"finishReason":"SAFETY"}]}"#]).1;
        assert_eq!(
            empty.unwrap_err(),
            AttemptFailure::ContentFiltered("finish reason SAFETY and no content".into())
        );
        let partial = run(&[
            r#"{"candidates":[{"content":{"parts":[{"text":"Sure"}]},"finishReason":"SAFETY"}]}"#,
        ])
        .1
        .unwrap();
        assert_eq!(partial.finish_reason, FinishReason::ContentFilter);
        assert_eq!(partial.content.as_deref(), Some("Sure"));
        let blocked = run(&[r#"{"promptFeedback":{"blockReason":"SAFETY"}}"#]).1;
        assert_eq!(
            blocked.unwrap_err(),
            AttemptFailure::ContentFiltered("the prompt was blocked (SAFETY)".into())
        );

        let (_, cut) = run(&[r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}"#]);
        assert!(matches!(cut, Err(AttemptFailure::Interrupted(_))));
        let (texts, error) = run(&[
            r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}"#,
            r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#,
        ]);
        assert_eq!(texts, ["a"]);
        assert_eq!(
            error.unwrap_err(),
            AttemptFailure::ErrorEvent("UNAVAILABLE: The model is overloaded.".into())
        );
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(
                r#"[{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}]"#
            ),
            "INVALID_ARGUMENT: API key not valid."
        );
    }
}
