//! Provider-neutral chat types and the [`ChatModel`] trait every provider adapter implements.
//! Adapters translate these to and from their wire format; nothing else sees a wire format.

use crate::error::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool calls requested by an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn system(text: impl Into<String>) -> Self {
        Self::text(Role::System, text)
    }
    pub fn user(text: impl Into<String>) -> Self {
        Self::text(Role::User, text)
    }
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::text(Role::Assistant, text)
    }
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(text.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: Role::Tool,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.into()),
        }
    }
}

/// A tool call requested by the model. `arguments` is kept as the raw JSON text the model
/// produced, because models do produce invalid JSON and the run must record what was asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The provider's own model name (without the `provider/` prefix).
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// JSON Schema the answer must match (structured output). Adapters use the provider's
    /// native structured output where it has one; the engine validates either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
    /// Ask the provider to cache the prompt prefix (Anthropic `cache_control` breakpoints on
    /// the tools, the system prompt and the conversation so far; OpenAI and Gemini cache
    /// without being asked).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prompt_cache: bool,
}

/// Token counts of one model call as the provider reported them.
///
/// `input_tokens` counts every prompt token, cached or not; `cache_read_tokens` and
/// `cache_write_tokens` are the parts of it read from / written to the provider's prompt cache
/// (priced differently). Anthropic reports the three parts separately; adapters add them up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_tokens: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
    }

    /// Prompt tokens billed at the plain input price.
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cache_read_tokens)
            .saturating_sub(self.cache_write_tokens)
    }

    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// Why the model stopped. Unknown provider values are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    #[serde(untagged)]
    Other(String),
}

impl FinishReason {
    pub fn parse(s: &str) -> Self {
        match s {
            "stop" | "end_turn" | "STOP" => Self::Stop,
            "length" | "max_tokens" | "MAX_TOKENS" => Self::Length,
            "tool_calls" | "tool_use" | "function_call" => Self::ToolCalls,
            "content_filter" | "SAFETY" => Self::ContentFilter,
            other => Self::Other(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
            Self::Other(s) => s,
        }
    }
}

/// The complete outcome of one model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The model name the provider reported (or the requested one).
    pub model: String,
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: FinishReason,
    /// `None` when the provider did not report usage.
    pub usage: Option<Usage>,
}

/// A failed model call, after the adapter's bounded retries.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProviderError {
    /// One of the `provider_*` codes.
    pub code: ErrorCode,
    pub message: String,
    /// The last HTTP status received, if any.
    pub status: Option<u16>,
    /// How many HTTP attempts were made.
    pub attempts: u32,
    /// Whether part of the answer already reached the caller's sink. A call that failed after
    /// streaming must not be failed over to another model (the text would be duplicated).
    pub streamed: bool,
    /// Usage the provider reported before failing (e.g. `message_start` of a stream that later
    /// broke): billed, so it is recorded.
    pub usage: Option<Usage>,
}

impl ProviderError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status: None,
            attempts: 1,
            streamed: false,
            usage: None,
        }
    }
}

/// Receives streamed text as it arrives. Implementations must be cheap and must not block.
pub trait DeltaSink: Send + Sync {
    fn text_delta(&self, text: &str);
}

/// A sink that drops everything (non-streaming callers).
pub struct NoDeltas;

impl DeltaSink for NoDeltas {
    fn text_delta(&self, _text: &str) {}
}

/// A model provider. One implementation per wire protocol (OpenAI-compatible today; Anthropic and
/// Gemini slot in beside it). Implementations own retries and timeouts: callers never retry.
#[async_trait::async_trait]
pub trait ChatModel: Send + Sync {
    /// Runs one chat completion, streaming text deltas to `sink` as they arrive, and returns the
    /// assembled response. Tool-call argument fragments are joined per call index.
    async fn chat(
        &self,
        request: &ChatRequest,
        sink: &dyn DeltaSink,
    ) -> Result<ChatResponse, ProviderError>;
}
