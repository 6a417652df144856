//! The response side of the chat-completions wire format, read leniently: every field is
//! optional and `null` is accepted anywhere, because OpenAI-compatible servers differ (Ollama,
//! vLLM, llama.cpp, LiteLLM all omit or null different fields).

use agentry_core::chat::Usage;
use serde::Deserialize;
use serde_json::Value;

/// A `chat.completion.chunk`.
#[derive(Debug, Deserialize)]
pub(crate) struct Chunk {
    pub(crate) model: Option<String>,
    pub(crate) choices: Option<Vec<ChunkChoice>>,
    pub(crate) usage: Option<WireUsage>,
    pub(crate) error: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChunkChoice {
    pub(crate) index: Option<u32>,
    pub(crate) delta: Option<Delta>,
    pub(crate) finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Delta {
    pub(crate) content: Option<String>,
    pub(crate) tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ToolCallDelta {
    pub(crate) index: Option<usize>,
    pub(crate) id: Option<String>,
    pub(crate) function: Option<FunctionPart>,
}

/// A function call or a fragment of one. `arguments` is normally a string; some servers send
/// a JSON object, which is kept as its JSON text.
#[derive(Debug, Deserialize)]
pub(crate) struct FunctionPart {
    pub(crate) name: Option<String>,
    pub(crate) arguments: Option<Value>,
}

impl FunctionPart {
    pub(crate) fn arguments_text(&self) -> Option<String> {
        match &self.arguments {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => Some(other.to_string()),
        }
    }
}

/// A non-streaming `chat.completion`.
#[derive(Debug, Deserialize)]
pub(crate) struct Completion {
    pub(crate) model: Option<String>,
    pub(crate) choices: Option<Vec<CompletionChoice>>,
    pub(crate) usage: Option<WireUsage>,
    pub(crate) error: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompletionChoice {
    pub(crate) index: Option<u32>,
    pub(crate) message: Option<CompletionMessage>,
    pub(crate) finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompletionMessage {
    pub(crate) content: Option<Value>,
    pub(crate) tool_calls: Option<Vec<CompletionToolCall>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompletionToolCall {
    pub(crate) id: Option<String>,
    pub(crate) function: Option<FunctionPart>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireUsage {
    pub(crate) prompt_tokens: Option<u64>,
    pub(crate) completion_tokens: Option<u64>,
    /// OpenAI's prompt-cache report: `cached_tokens` is the part of `prompt_tokens` read from
    /// the cache.
    pub(crate) prompt_tokens_details: Option<PromptTokensDetails>,
    /// DeepSeek reports cache hits beside `prompt_tokens` instead.
    pub(crate) prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PromptTokensDetails {
    pub(crate) cached_tokens: Option<u64>,
}

impl WireUsage {
    /// `None` when the object carries neither count.
    pub(crate) fn usage(&self) -> Option<Usage> {
        if self.prompt_tokens.is_none() && self.completion_tokens.is_none() {
            return None;
        }
        let input_tokens = self.prompt_tokens.unwrap_or(0);
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|details| details.cached_tokens)
            .or(self.prompt_cache_hit_tokens)
            .unwrap_or(0);
        Some(Usage {
            input_tokens,
            output_tokens: self.completion_tokens.unwrap_or(0),
            // A subset of the prompt by definition; a server reporting more is clamped rather
            // than allowed to make the uncached part negative.
            cache_read_tokens: cached.min(input_tokens),
            cache_write_tokens: 0,
        })
    }
}

/// A provider's error message from an error body or event: `{"error": {"message"}}`,
/// `{"error": "text"}`, `{"message"}` or `{"detail"}`; other text is tidied as is.
pub(crate) fn error_message(body: &str) -> String {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return "(empty body)".to_string();
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(value) => error_value_message(&value),
        Err(_) => crate::text::tidy(trimmed),
    }
}

/// The message of an `error` value, or of an object that contains one.
pub(crate) fn error_value_message(value: &Value) -> String {
    let error = value.get("error").unwrap_or(value);
    let text = match error {
        Value::String(text) => Some(text.clone()),
        Value::Object(fields) => ["message", "detail", "msg"]
            .iter()
            .find_map(|key| fields.get(*key))
            .map(|found| match found {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            }),
        _ => None,
    }
    .or_else(|| {
        value
            .get("detail")
            .or_else(|| value.get("message"))
            .map(|found| match found {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
    })
    .unwrap_or_else(|| value.to_string());
    crate::text::tidy(&text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn extracts_error_messages() {
        let cases = [
            (
                r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#,
                "Rate limit reached",
            ),
            (r#"{"error":"model not found"}"#, "model not found"),
            (r#"{"detail":"Not Found"}"#, "Not Found"),
            (
                r#"{"detail":[{"loc":["body"],"msg":"bad"}]}"#,
                r#"[{"loc":["body"],"msg":"bad"}]"#,
            ),
            (r#"{"message":"oops"}"#, "oops"),
            (r#"{"weird":1}"#, r#"{"weird":1}"#),
            (
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                "502 Bad Gateway",
            ),
            ("plain\n text", "plain text"),
            ("  ", "(empty body)"),
        ];
        for (body, expected) in cases {
            assert_eq!(error_message(body), expected, "{body}");
        }
    }

    #[test]
    fn usage_needs_a_count() {
        let usage: WireUsage = serde_json::from_str(r#"{"prompt_tokens":3}"#).unwrap();
        assert_eq!(
            usage.usage(),
            Some(Usage {
                input_tokens: 3,
                output_tokens: 0,
                ..Default::default()
            })
        );
        let empty: WireUsage = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.usage(), None);
    }

    #[test]
    fn usage_reads_cached_prompt_tokens() {
        let usage: WireUsage = serde_json::from_str(
            r#"{"prompt_tokens":2006,"completion_tokens":300,
                "prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0}}"#,
        )
        .unwrap();
        assert_eq!(
            usage.usage(),
            Some(Usage {
                input_tokens: 2006,
                output_tokens: 300,
                cache_read_tokens: 1920,
                cache_write_tokens: 0,
            })
        );
        let deepseek: WireUsage = serde_json::from_str(
            r#"{"prompt_tokens":10,"completion_tokens":1,"prompt_cache_hit_tokens":8}"#,
        )
        .unwrap();
        assert_eq!(deepseek.usage().unwrap().cache_read_tokens, 8);
        let odd: WireUsage = serde_json::from_str(
            r#"{"prompt_tokens":5,"prompt_tokens_details":{"cached_tokens":9}}"#,
        )
        .unwrap();
        assert_eq!(odd.usage().unwrap().cache_read_tokens, 5);
        let null_details: WireUsage =
            serde_json::from_str(r#"{"prompt_tokens":5,"prompt_tokens_details":null}"#).unwrap();
        assert_eq!(null_details.usage().unwrap().cache_read_tokens, 0);
    }
}
